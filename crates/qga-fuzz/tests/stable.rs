//! The fuzz targets on the stable toolchain: every corpus and regression input, then random
//! mutations of them for a bounded time. `QGA_FUZZ_SECS` (default 4 per target) and
//! `QGA_FUZZ_SEED` (default: the clock; printed) control a run; a failing input is saved
//! under `target/fuzz-failures/` and its path printed. Long runs with coverage feedback use
//! cargo-fuzz in `fuzz/` (docs/fuzzing.md).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qga_fuzz::mutate::{Rng, mutate};

/// Longest input the mutator builds.
const MAX_LEN: usize = 1 << 16;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The checked-in corpus and regression inputs of `name`, sorted by path.
fn corpus(name: &str) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for dir in ["fuzz/corpus", "fuzz/regressions"] {
        if let Ok(rd) = std::fs::read_dir(root().join(dir).join(name)) {
            files.extend(rd.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    let mut v: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    v.push(Vec::new());
    v
}

fn run_one(name: &str, f: fn(&[u8]), input: &[u8], seed: u64) {
    let ok = std::panic::catch_unwind(|| f(input)).is_ok();
    if !ok {
        let dir = root().join("target/fuzz-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}-{seed}-{}", input.len()));
        std::fs::write(&path, input).unwrap();
        panic!(
            "fuzz target {name} failed (seed {seed}); input saved to {}",
            path.display()
        );
    }
}

fn fuzz(name: &str) {
    let f = qga_fuzz::target(name).unwrap();
    let secs: u64 = std::env::var("QGA_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("QGA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let inputs = corpus(name);
    assert!(inputs.len() > 1, "no corpus for {name}");
    for input in &inputs {
        run_one(name, f, input, seed);
    }
    let mut rng = Rng::new(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut execs = 0u64;
    while Instant::now() < deadline {
        let a = &inputs[rng.below(inputs.len())];
        let b = &inputs[rng.below(inputs.len())];
        let input = mutate(&mut rng, a, b, MAX_LEN);
        run_one(name, f, &input, seed);
        execs += 1;
    }
    println!(
        "fuzz {name}: seed {seed}, corpus {} inputs, {execs} mutated executions in {secs} s",
        inputs.len()
    );
}

macro_rules! targets {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            fuzz(stringify!($name));
        }
    )*};
}

targets!(
    framer, request, config, mountinfo, diskstats, net, cpu, osinfo, utmp, passwd, ssh, misc
);

#[test]
fn test_every_target_has_a_test() {
    let tested = [
        "framer",
        "request",
        "config",
        "mountinfo",
        "diskstats",
        "net",
        "cpu",
        "osinfo",
        "utmp",
        "passwd",
        "ssh",
        "misc",
    ];
    let all: Vec<&str> = qga_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(all, tested);
}
