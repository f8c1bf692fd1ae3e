//! The `qemu-ga` binary: parse the command line and configuration, then run the agent.

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    qga_agent::run::main(&args, std::env::var_os("QGA_CONF").as_deref())
}
