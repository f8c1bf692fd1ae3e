//! Hostile input, process level: for every case the agent must stay up, answer a resync and a
//! ping afterwards, send at most one reply per malformed message, and stay under a memory
//! bound. Each case is classified as answered (errors or replies) / silent / hung / crashed;
//! the test fails on any hung or crashed case.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Agent;

/// Peak resident memory the agent may reach over the whole suite (MiB).
const MEMORY_BOUND_MIB: u64 = 400;

#[derive(Debug, PartialEq)]
enum Outcome {
    Answered,
    Silent,
    Hung,
    Crashed,
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    /// Most replies the input may produce.
    max_replies: usize,
}

fn case(name: &'static str, input: impl Into<Vec<u8>>, max_replies: usize) -> Case {
    Case {
        name,
        input: input.into(),
        max_replies,
    }
}

fn repeat(prefix: &str, unit: &str, n: usize, suffix: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + unit.len() * n + suffix.len());
    v.extend_from_slice(prefix.as_bytes());
    for _ in 0..n {
        v.extend_from_slice(unit.as_bytes());
    }
    v.extend_from_slice(suffix.as_bytes());
    v
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        case("truncated object then newline", "{\"execute\":\n", 0),
        case("unbalanced close", "}}}]]]", 6),
        case("garbage words", "hello world", 2),
        case("bad escapes", "{\"execute\":\"\\x\"}", 1),
        case("invalid utf-8", b"{\"execute\":\"\xc3\x28\"}".to_vec(), 1),
        case(
            "nul and control bytes",
            b"\x00\x01\x02\x7f{\"execute\":\"guest-ping\"}".to_vec(),
            4,
        ),
        case(
            "0xff mid message",
            b"{\"execute\":\"gue\xffst-ping\"}".to_vec(),
            2,
        ),
        case(
            "nesting 10",
            repeat("{\"execute\":\"guest-ping\",\"id\":", "[", 10, "")
                .into_iter()
                .chain(repeat("", "]", 10, "}"))
                .collect::<Vec<u8>>(),
            1,
        ),
        case(
            "nesting 1024",
            repeat("", "[", 1024, "")
                .into_iter()
                .chain(repeat("", "]", 1024, ""))
                .collect::<Vec<u8>>(),
            1,
        ),
        case(
            "nesting 1025",
            repeat("", "[", 1025, "")
                .into_iter()
                .chain(repeat("", "]", 1025, ""))
                .collect::<Vec<u8>>(),
            1,
        ),
        case(
            "nesting 100000",
            repeat("", "[", 100_000, "")
                .into_iter()
                .chain(repeat("", "]", 100_000, ""))
                .collect::<Vec<u8>>(),
            1,
        ),
        case(
            "string of 64 MiB",
            repeat(
                "{\"execute\":\"guest-ping\",\"id\":\"",
                "a",
                64 << 20,
                "\"}",
            ),
            1,
        ),
        case(
            "string of 200 MiB",
            repeat(
                "{\"execute\":\"guest-ping\",\"id\":\"",
                "a",
                200 << 20,
                "\"}",
            ),
            1,
        ),
        case(
            "3 Mi tokens",
            repeat("{\"execute\":\"guest-ping\",\"id\":[", "0,", 3 << 20, "0]}"),
            1,
        ),
        case(
            "unknown commands",
            repeat("", "{\"execute\":\"guest-nope\"}", 1000, ""),
            1000,
        ),
        case(
            "wrong types everywhere",
            "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":[],\"count\":{}}}{\"execute\":\"guest-exec\",\"arguments\":{\"path\":1,\"arg\":\"x\"}}{\"execute\":\"guest-set-vcpus\",\"arguments\":{\"vcpus\":[{\"logical-id\":true}]}}",
            3,
        ),
        case(
            "integer edges",
            "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":-9223372036854775808}}{\"execute\":\"guest-sync\",\"arguments\":{\"id\":18446744073709551616}}{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1e999}}",
            3,
        ),
        case(
            "file read counts",
            "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1,\"count\":-1}}{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1,\"count\":0}}{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1,\"count\":4611686018427387904}}",
            3,
        ),
        case(
            "invalid base64 and handles",
            "{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":5,\"buf-b64\":\"!!!\"}}{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":999999}}{\"execute\":\"guest-file-flush\",\"arguments\":{\"handle\":-1}}",
            3,
        ),
        case(
            "huge input-data",
            repeat(
                "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"true\",\"input-data\":\"",
                "QUFB",
                4 << 20,
                "\"}}",
            ),
            1,
        ),
    ];
    v.push(case(
        "many pipelined pings",
        repeat("", "{\"execute\":\"guest-ping\"}", 200_000, ""),
        200_000,
    ));
    v
}

fn hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Sends `input`, drains replies for a while, then checks a resync and a ping.
fn run_case(agent: &mut Agent, c: &Case) -> (Outcome, usize) {
    let mut s = UnixStream::connect(&agent.sock).unwrap();
    let mut w = s.try_clone().unwrap();
    let input = c.input.clone();
    let writer = std::thread::spawn(move || w.write_all(&input).is_ok());
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_since = Instant::now();
    let mut writer_done: Option<Instant> = None;
    // Read until the writer is done and the agent has been quiet for a moment.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                quiet_since = Instant::now();
            }
            Err(_) => {}
        }
        if writer.is_finished() {
            // Quiet counts from the end of the input: the agent may still be parsing it.
            let done = *writer_done.get_or_insert_with(Instant::now);
            if quiet_since.max(done).elapsed() > Duration::from_millis(1500) {
                break;
            }
        }
        if Instant::now() > deadline {
            return (Outcome::Hung, 0);
        }
    }
    let _ = writer.join();
    if !agent.alive() {
        return (Outcome::Crashed, 0);
    }
    let replies = got.iter().filter(|&&b| b == b'\n').count();
    // Resynchronise on the same connection, as a client would.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":777}}{\"execute\":\"guest-ping\",\"id\":\"p\"}").unwrap();
    let mut tail = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&tail).contains("\"id\": \"p\"") {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => tail.extend_from_slice(&buf[..n]),
            _ => break,
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let text = String::from_utf8_lossy(&tail);
    if !text.contains("\u{fffd}{\"return\": 777}")
        && !tail.windows(15).any(|w| w == b"\xff{\"return\": 777")
    {
        return (
            if agent.alive() {
                Outcome::Hung
            } else {
                Outcome::Crashed
            },
            replies,
        );
    }
    if !text.contains("{\"return\": {}, \"id\": \"p\"}") {
        return (Outcome::Hung, replies);
    }
    let outcome = if replies == 0 {
        Outcome::Silent
    } else {
        Outcome::Answered
    };
    (outcome, replies)
}

#[test]
fn test_hostile_inputs_never_hang_crash_or_flood() {
    let mut agent = Agent::start(&[]);
    let pid = agent.child.id();
    let mut report = Vec::new();
    let mut bad = Vec::new();
    for c in cases() {
        let (outcome, replies) = run_case(&mut agent, &c);
        if matches!(outcome, Outcome::Hung | Outcome::Crashed) || replies > c.max_replies {
            bad.push(format!(
                "{}: {outcome:?}, {replies} replies (at most {})",
                c.name, c.max_replies
            ));
        }
        report.push(format!(
            "{:<28} {:<12} {replies} replies",
            c.name,
            format!("{outcome:?}")
        ));
        if !agent.alive() {
            agent = Agent::start(&[]);
        }
    }
    // Connection storms: 1000 rapid connect/close cycles, and disconnects mid-request.
    for i in 0..1000 {
        let mut s = UnixStream::connect(&agent.sock).unwrap();
        if i % 3 == 0 {
            let _ = s.write_all(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":");
        }
    }
    assert!(agent.alive(), "agent died in connect/close cycles");
    let peak = hwm_kib(pid) / 1024;
    println!("{}", report.join("\n"));
    println!("peak RSS {peak} MiB (bound {MEMORY_BOUND_MIB} MiB)");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(peak < MEMORY_BOUND_MIB, "peak RSS {peak} MiB");
}
