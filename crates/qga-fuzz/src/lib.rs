//! Fuzz targets for everything the agent parses from outside: the wire (framer, JSON lexer and
//! parser, request envelope, argument decoding of every command), the configuration file, and
//! the /proc, /sys and /etc parsers of `qga-sys`.
//!
//! Each target is a function of a byte slice that must not panic, and checks an oracle where
//! one is cheap (chunking invariance, writer/parser round trips). The same functions run
//! under libFuzzer (`fuzz/`, cargo-fuzz, for long runs) and under [`mutate`], a small
//! stable-toolchain mutation engine that `tests/stable.rs` runs in CI over the checked-in
//! corpus (`fuzz/corpus/<target>/`). See `docs/fuzzing.md`.
#![forbid(unsafe_code)]

pub mod mutate;
pub mod targets;

/// A fuzz target: a name (the corpus directory) and the function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order the harness runs them.
pub const TARGETS: &[Target] = &[
    ("framer", targets::framer),
    ("request", targets::request),
    ("config", targets::config),
    ("mountinfo", targets::mountinfo),
    ("diskstats", targets::diskstats),
    ("net", targets::net),
    ("cpu", targets::cpu),
    ("osinfo", targets::osinfo),
    ("utmp", targets::utmp),
    ("passwd", targets::passwd),
    ("ssh", targets::ssh),
    ("misc", targets::misc),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}
