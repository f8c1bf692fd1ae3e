//! Hostile input, process level: for every case the agent must stay up, answer a resync and a
//! ping afterwards, send at most one reply per malformed message, and stay under a memory
//! bound. Each case is classified as proper (errors or replies) / silent / hung / crashed;
//! the test fails on any hung or crashed case, or a scenario whose replies are wrong, and
//! prints the table with the counts per class and the peak RSS against the bound.
//!
//! `million_pipelined_requests` (ignored: run against the release agent by scripts/vmtest,
//! `QGA_AGENT_BIN=<release qemu-ga> cargo test -p qga-agent --test hostile -- --ignored`)
//! pipelines 1,000,000 guest-sync requests and checks every reply in order.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Agent;

/// Peak resident memory the agent may reach over the whole suite (MiB).
const MEMORY_BOUND_MIB: u64 = 400;

#[derive(Debug, PartialEq, Clone, Copy)]
enum Outcome {
    Proper,
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
        // Outside any object: the agent once panicked on the oversized token's remains.
        case(
            "top-level string over 64 MiB",
            repeat("\"", "a", (64 << 20) + 1, "\"{\"execute\":\"guest-ping\"}"),
            2,
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
        Outcome::Proper
    };
    (outcome, replies)
}

/// A connection with a line reader: raw bytes out, reply lines in.
struct Conn {
    s: UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(agent: &Agent) -> Conn {
        let s = UnixStream::connect(&agent.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).is_ok()
    }

    /// The next reply line without its newline, `None` on timeout or end of stream.
    fn line(&mut self) -> Option<String> {
        let mut chunk = vec![0u8; 1 << 16];
        // Only bytes not yet searched are searched (replies of tens of MiB).
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let i = searched + i;
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            searched = self.buf.len();
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn call(&mut self, request: &str) -> Option<String> {
        if !self.send(request.as_bytes()) {
            return None;
        }
        self.line()
    }
}

/// A scenario's verdict: the class, and what was seen (or what was wrong).
type Verdict = (Outcome, String);

fn verdict(agent: &mut Agent, ok: bool, detail: String) -> Verdict {
    if !agent.alive() {
        return (Outcome::Crashed, detail);
    }
    // The agent answers a new client afterwards.
    let mut c = Conn::open(agent);
    let pong = c.call("{\"execute\":\"guest-ping\",\"id\":\"after\"}");
    if pong.as_deref() != Some("{\"return\": {}, \"id\": \"after\"}") {
        return (Outcome::Hung, format!("no ping after: {pong:?}; {detail}"));
    }
    if ok {
        (Outcome::Proper, detail)
    } else {
        (Outcome::Silent, format!("WRONG: {detail}"))
    }
}

/// Pipelines `n` guest-exec requests without ever asking for a status: the records stop at
/// the configured limit with a clear error, no child stays a zombie, and collecting the
/// statuses frees the records.
fn exec_flood(agent: &mut Agent, limit: usize) -> Verdict {
    let n = limit + 8;
    let mut c = Conn::open(agent);
    let req = "{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"true\"}}".repeat(n);
    c.send(req.as_bytes());
    let replies: Vec<String> = (0..n).filter_map(|_| c.line()).collect();
    let pids: Vec<i64> = replies
        .iter()
        .filter_map(|l| {
            l.strip_prefix("{\"return\": {\"pid\": ")
                .and_then(|r| r.strip_suffix("}}"))
                .and_then(|p| p.parse().ok())
        })
        .collect();
    let full = format!(
        "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"too many processes whose status has not been collected (limit {limit})\"}}}}"
    );
    let refused = replies.iter().filter(|l| **l == full).count();
    let mut zombies = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    while zombies > 0 && Instant::now() < deadline {
        zombies = zombie_children(agent.child.id());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut collected = 0;
    for pid in &pids {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let r = c
                .call(&format!(
                    "{{\"execute\":\"guest-exec-status\",\"arguments\":{{\"pid\":{pid}}}}}"
                ))
                .unwrap_or_default();
            if r.contains("\"exited\": true") {
                collected += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let again = c
        .call("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"true\"}}")
        .unwrap_or_default();
    let ok = pids.len() == limit
        && refused == 8
        && zombies == 0
        && collected == limit
        && again.starts_with("{\"return\": {\"pid\": ");
    let detail = format!(
        "{} started, {refused} refused at the limit, {zombies} zombies, {collected} collected, exec after: {}",
        pids.len(),
        again.starts_with("{\"return\"")
    );
    verdict(agent, ok, detail)
}

/// Zombie children of `pid`.
fn zombie_children(pid: u32) -> usize {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) S ppid ...": fields after the last ')'.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.first() == Some(&"Z") && f.get(1) == Some(&pid.to_string().as_str())
        })
        .count()
}

/// Runs `sh -c script` with captured output and waits for its status line.
fn exec_and_wait(c: &mut Conn, script: &str) -> String {
    let r = c
        .call(&format!(
            "{{\"execute\":\"guest-exec\",\"arguments\":{{\"path\":\"/bin/sh\",\"arg\":[\"-c\",\"{script}\"],\"capture-output\":true}}}}"
        ))
        .unwrap_or_default();
    let Some(pid) = r
        .strip_prefix("{\"return\": {\"pid\": ")
        .and_then(|r| r.strip_suffix("}}"))
    else {
        return r;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let r = c
            .call(&format!(
                "{{\"execute\":\"guest-exec-status\",\"arguments\":{{\"pid\":{pid}}},\"id\":1}}"
            ))
            .unwrap_or_default();
        if !r.contains("\"exited\": false") {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    String::new()
}

/// 20 MB on stdout: 16 MiB kept, marked truncated, in one (22 MiB) reply.
fn huge_exec_output(agent: &mut Agent) -> Verdict {
    let mut c = Conn::open(agent);
    let r = exec_and_wait(&mut c, "head -c 20000000 /dev/zero");
    let data = r
        .split("\"out-data\": \"")
        .nth(1)
        .and_then(|d| d.split('"').next())
        .and_then(|b| qga_proto::b64::decode(b).ok())
        .map_or(0, |d| d.len());
    let ok = data == 16 << 20 && r.contains("\"out-truncated\": true");
    verdict(
        agent,
        ok,
        format!("{data} bytes kept, reply {} bytes", r.len()),
    )
}

/// With `max-reply-size`, a reply over the cap becomes one QEMU-style error carrying the id.
fn reply_over_cap(agent: &mut Agent, cap: usize) -> Verdict {
    let mut c = Conn::open(agent);
    let r = exec_and_wait(&mut c, "head -c 2000000 /dev/zero");
    // QEMU's member order puts the id first.
    let head = "{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"reply of ";
    let tail = format!("bytes exceeds the limit of {cap} bytes (max-reply-size)\"}}}}");
    let ok = r.starts_with(head) && r.ends_with(&tail);
    verdict(agent, ok, r)
}

/// Opens files until the handle limit: every request answered, a clear error past the
/// limit, unique handles, and closing them makes room again.
fn handle_exhaustion(agent: &mut Agent, limit: usize) -> Verdict {
    let mut c = Conn::open(agent);
    let n = limit + 10;
    let open = "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/dev/null\"}}";
    c.send(open.repeat(n).as_bytes());
    let replies: Vec<String> = (0..n).filter_map(|_| c.line()).collect();
    let handles: Vec<i64> = replies
        .iter()
        .filter_map(|l| {
            l.strip_prefix("{\"return\": ")
                .and_then(|r| r.strip_suffix('}'))
                .and_then(|h| h.parse().ok())
        })
        .collect();
    let full = format!(
        "failed to open file '/dev/null' (mode: 'r'): too many open handles (limit {limit})"
    );
    let refused = replies.iter().filter(|l| l.contains(&full)).count();
    let mut unique = handles.clone();
    unique.sort_unstable();
    unique.dedup();
    for h in &handles {
        c.call(&format!(
            "{{\"execute\":\"guest-file-close\",\"arguments\":{{\"handle\":{h}}}}}"
        ));
    }
    let again = c.call(open).unwrap_or_default();
    let ok = replies.len() == n
        && handles.len() == limit
        && unique.len() == limit
        && refused == 10
        && again.starts_with("{\"return\": ");
    verdict(
        agent,
        ok,
        format!(
            "{} opened (unique {}), {refused} refused, open after close: {}",
            handles.len(),
            unique.len(),
            again.starts_with("{\"return\"")
        ),
    )
}

/// Half a request, then the client goes away: the next client starts clean.
fn disconnect_mid_request(agent: &mut Agent) -> Verdict {
    for _ in 0..20 {
        let mut c = Conn::open(agent);
        c.send(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":");
    }
    let mut c = Conn::open(agent);
    let r = c.call("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":5}}");
    let ok = r.as_deref() == Some("{\"return\": 5}");
    verdict(agent, ok, format!("next client got {r:?}"))
}

/// Many requests, then the client closes without reading the replies (ECONNRESET/EPIPE on
/// the agent's side): the agent drops that client only.
fn disconnect_mid_reply(agent: &mut Agent) -> Verdict {
    for _ in 0..3 {
        let mut c = Conn::open(agent);
        c.send("{\"execute\":\"guest-info\"}".repeat(2000).as_bytes());
        // Read part of one reply, then go.
        let mut part = [0u8; 100];
        let _ = c.s.read(&mut part);
    }
    verdict(agent, true, "agent dropped the clients".into())
}

/// A second client while the first stays connected: with one connection at a time (qemu-ga)
/// the second waits until the first leaves; with several (`max-connections`) it is served at
/// once. Either way each client gets its own replies, in order, and nothing is lost.
fn second_client(agent: &mut Agent) -> Verdict {
    let mut a = Conn::open(agent);
    let a1 = a.call("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}");
    let mut b = Conn::open(agent);
    b.send(b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":21}}{\"execute\":\"guest-sync\",\"arguments\":{\"id\":22}}");
    let a2 = a.call("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":2}}");
    drop(a);
    let b1 = b.line();
    let b2 = b.line();
    let ok = a1.as_deref() == Some("{\"return\": 1}")
        && a2.as_deref() == Some("{\"return\": 2}")
        && b1.as_deref() == Some("{\"return\": 21}")
        && b2.as_deref() == Some("{\"return\": 22}");
    verdict(agent, ok, format!("a: {a1:?} {a2:?}; b: {b1:?} {b2:?}"))
}

/// A client that sends requests with large replies and never reads: the agent's writes are
/// bounded in time, so other clients are served again (at most the send timeout later).
fn client_stops_reading(agent: &mut Agent) -> Verdict {
    let stalled = Conn::open(agent);
    let big_id = "x".repeat(1 << 20);
    let req = format!("{{\"execute\":\"guest-ping\",\"id\":\"{big_id}\"}}").repeat(40);
    let mut w = stalled.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(req.as_bytes());
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let mut c = Conn::open(agent);
    c.s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let r = c.call("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":3}}");
    let waited = t.elapsed();
    // Ends the writer's blocked write at once.
    let _ = stalled.s.shutdown(std::net::Shutdown::Both);
    drop(stalled);
    let _ = writer.join();
    let ok = r.as_deref() == Some("{\"return\": 3}");
    verdict(
        agent,
        ok,
        format!("other client answered after {:.1} s", waited.as_secs_f64()),
    )
}

/// Configuration of the agent for the limit scenarios: small limits so they run quickly.
const LIMITS_CONF: &str =
    "[general]\nmax-exec-records=32\nmax-file-handles=32\nmax-reply-size=1048576\n";

#[test]
fn test_hostile_inputs_never_hang_crash_or_flood() {
    let mut agent = Agent::start(&[]);
    let pid = agent.child.id();
    let mut rows: Vec<(String, Outcome, String)> = Vec::new();
    let mut bad = Vec::new();
    for c in cases() {
        let t = Instant::now();
        let (outcome, replies) = run_case(&mut agent, &c);
        if matches!(outcome, Outcome::Hung | Outcome::Crashed) || replies > c.max_replies {
            bad.push(format!(
                "{}: {outcome:?}, {replies} replies (at most {})",
                c.name, c.max_replies
            ));
        }
        rows.push((
            c.name.to_string(),
            outcome,
            format!("{replies} replies ({:.1} s)", t.elapsed().as_secs_f64()),
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
    let storm = verdict(&mut agent, true, "1000 connect/close cycles".into());
    rows.push(("connect/close storm".into(), storm.0, storm.1));
    let peak = hwm_kib(pid) / 1024;
    report(&rows, peak, &bad);
}

/// Prints the table with the counts per class and the peak RSS; fails on a bad case.
fn report(rows: &[(String, Outcome, String)], peak: u64, bad: &[String]) {
    println!("{:<28} {:<8} detail", "case", "class");
    for (name, outcome, detail) in rows {
        println!("{name:<28} {:<8} {detail}", format!("{outcome:?}"));
    }
    let count = |o: Outcome| rows.iter().filter(|r| r.1 == o).count();
    println!(
        "{} cases: {} proper, {} silent, {} hung, {} crashed",
        rows.len(),
        count(Outcome::Proper),
        count(Outcome::Silent),
        count(Outcome::Hung),
        count(Outcome::Crashed)
    );
    println!("peak RSS {peak} MiB (bound {MEMORY_BOUND_MIB} MiB)");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(peak < MEMORY_BOUND_MIB, "peak RSS {peak} MiB");
}

/// Faults and resource limits: disconnects, concurrent and stalled clients, exec floods and
/// output, handle exhaustion, the reply cap.
#[test]
fn test_faults_and_limits_never_hang_or_crash() {
    type Scenario = fn(&mut Agent) -> Verdict;
    let on_default: [(&str, Scenario); 5] = [
        ("disconnect mid-request", disconnect_mid_request),
        ("disconnect mid-reply", disconnect_mid_reply),
        ("second client", second_client),
        ("client stops reading", client_stops_reading),
        ("huge exec output", huge_exec_output),
    ];
    let on_limited: [(&str, Scenario); 3] = [
        ("exec flood, no status", |a| exec_flood(a, 32)),
        ("handle exhaustion", |a| handle_exhaustion(a, 32)),
        ("reply over max-reply-size", |a| reply_over_cap(a, 1 << 20)),
    ];
    let mut agent = Agent::start(&[]);
    let mut limited = Agent::start_with(&[], &[], LIMITS_CONF);
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    let all = on_default
        .iter()
        .map(|c| (c, false))
        .chain(on_limited.iter().map(|c| (c, true)));
    for ((name, scenario), use_limited) in all {
        let t = Instant::now();
        let a = if use_limited {
            &mut limited
        } else {
            &mut agent
        };
        let (outcome, detail) = scenario(a);
        if !a.alive() {
            *a = Agent::start_with(&[], &[], if use_limited { LIMITS_CONF } else { "" });
        }
        if outcome != Outcome::Proper {
            bad.push(format!("{name}: {outcome:?}: {detail}"));
        }
        let detail = format!("{detail} ({:.1} s)", t.elapsed().as_secs_f64());
        rows.push(((*name).to_string(), outcome, detail));
    }
    let peak = (hwm_kib(agent.child.id()).max(hwm_kib(limited.child.id()))) / 1024;
    report(&rows, peak, &bad);
}

/// The agent to test for the million-request case: `QGA_AGENT_BIN` (the release build), else
/// the test build.
fn agent_bin() -> String {
    std::env::var("QGA_AGENT_BIN").unwrap_or_else(|_| common::AGENT.to_string())
}

#[test]
#[ignore = "1,000,000 requests: run against the release agent (scripts/vmtest does)"]
fn million_pipelined_requests() {
    const N: u64 = 1_000_000;
    let agent = Agent::start_program(&agent_bin(), &[], &[], "");
    let s = UnixStream::connect(&agent.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(1 << 20);
        for i in 0..N {
            batch.extend_from_slice(
                format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{i}}}}}").as_bytes(),
            );
            if batch.len() > (1 << 20) - 64 {
                w.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        w.write_all(&batch).unwrap();
    });
    let mut r = std::io::BufReader::with_capacity(1 << 20, s);
    let mut line = String::new();
    for i in 0..N {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        assert_eq!(line, format!("{{\"return\": {i}}}\n"), "reply {i}");
    }
    writer.join().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let peak = hwm_kib(agent.child.id()) / 1024;
    println!(
        "{N} pipelined guest-sync: all replies in order, {secs:.1} s ({:.0} req/s), peak RSS {peak} MiB (bound {MEMORY_BOUND_MIB} MiB)",
        N as f64 / secs
    );
    assert!(peak < MEMORY_BOUND_MIB);
}

/// A configuration the agent cannot use stops it (exit 1, a message naming the problem)
/// before it listens: it never runs with a policy or limits wider than written.
#[test]
fn test_config_errors_fail_closed() {
    for (args, conf, expect) in [
        (
            &["-a", "@core,@invnetory"][..],
            "",
            "unknown command group '@invnetory'",
        ),
        (&[][..], "[general]\nblock-rpcs=@exec;@files\n", "'@files'"),
        (
            &[][..],
            "[general]\nvsock-allow-cids=2,host\n",
            "vsock-allow-cids",
        ),
        (&[][..], "[general]\nmax-reply-size=10M\n", "max-reply-size"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let conf_path = dir.path().join("qemu-ga.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let sock = dir.path().join("sock");
        let out = std::process::Command::new(common::AGENT)
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(dir.path())
            .args(args)
            .env("QGA_CONF", &conf_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} {conf:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?} {conf:?}: {stderr}");
        assert!(!sock.exists(), "listened despite the error");
    }
}
