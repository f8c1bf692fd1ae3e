//! Runs one fuzz target on files: `cargo run -p qga-fuzz --example run -- <target> <file>...`
//! (to reproduce a failure saved by the harness or by cargo-fuzz).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, files)) = args.split_first() else {
        eprintln!("usage: run <target> <file>...");
        std::process::exit(2);
    };
    let Some(f) = qga_fuzz::target(name) else {
        eprintln!("no target {name}");
        std::process::exit(2);
    };
    for file in files {
        match std::fs::read(file) {
            Ok(data) => f(&data),
            Err(e) => eprintln!("{file}: {e}"),
        }
        println!("{file}: ok");
    }
}
