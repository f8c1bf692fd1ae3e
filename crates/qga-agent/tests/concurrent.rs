//! Several clients at once on a listening socket: each connection has its own parser and
//! its replies in order, a slow command on one does not hold up another, the state (file
//! handles, exec records) is shared, the limit holds, and SIGTERM ends every client.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Agent, exchange};

/// Writes an fsfreeze hook that sleeps `secs` on "freeze" and returns at once on "thaw".
fn slow_hook(dir: &std::path::Path, secs: u32) -> String {
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\n[ \"$1\" = freeze ] && sleep {secs}\nexit 0\n"),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    hook.to_str().unwrap().to_string()
}

/// Sends one request and returns the reply line (with its newline) and how long it took.
fn timed(c: &mut qga_client::Client<UnixStream>, request: &str) -> (String, Duration) {
    let t = Instant::now();
    c.send_raw(request.as_bytes()).unwrap();
    let r = c.read_reply().unwrap();
    (String::from_utf8(r.line).unwrap() + "\n", t.elapsed())
}

#[test]
fn test_ping_is_not_held_up_by_a_slow_freeze_hook_on_another_connection() {
    let hookdir = tempfile::tempdir().unwrap();
    let hook = slow_hook(hookdir.path(), 3);
    let agent = Agent::start(&[&format!("-F{hook}")]);
    let mut slow = agent.client();
    let mut fast = agent.client();
    // A freeze of a mount point that does not exist: the hook runs (3 s), nothing freezes.
    let started = Instant::now();
    slow.send_raw(
        br#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/nonexistent-qga"]}}"#,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let (line, took) = timed(
            &mut fast,
            &format!(r#"{{"execute":"guest-sync","arguments":{{"id":{i}}}}}"#),
        );
        assert_eq!(line, format!("{{\"return\": {i}}}\n"));
        let (line, took2) = timed(&mut fast, r#"{"execute":"guest-ping"}"#);
        assert_eq!(line, "{\"return\": {}}\n");
        worst = worst.max(took).max(took2);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "pings took too long"
    );
    assert!(worst < Duration::from_secs(1), "worst ping {worst:?}");
    let r = slow.read_reply().unwrap();
    assert_eq!(String::from_utf8(r.line).unwrap(), "{\"return\": 0}");
    assert!(started.elapsed() >= Duration::from_secs(3));
    // While the hook ran, the state was never "frozen" for the other client.
    assert_eq!(
        exchange(&agent, br#"{"execute":"guest-fsfreeze-status"}"#, 1),
        "{\"return\": \"thawed\"}\n"
    );
}

#[test]
fn test_each_connection_replies_in_order_with_its_own_parser() {
    let agent = Agent::start(&[]);
    let mut clients: Vec<_> = (0..4).map(|_| agent.client()).collect();
    // Half a request on each connection first: the parsers are separate.
    for c in &mut clients {
        c.send_raw(br#"{"execute":"guest-sync","#).unwrap();
    }
    for (n, c) in clients.iter_mut().enumerate() {
        let mut rest = format!(r#""arguments":{{"id":{n}}}}}"#);
        for k in 0..50 {
            rest.push_str(&format!(
                r#"{{"execute":"guest-sync","arguments":{{"id":{}}}}}"#,
                n * 1000 + k
            ));
        }
        c.send_raw(rest.as_bytes()).unwrap();
    }
    for (n, c) in clients.iter_mut().enumerate() {
        let first = c.read_reply().unwrap();
        assert_eq!(
            String::from_utf8(first.line).unwrap(),
            format!("{{\"return\": {n}}}")
        );
        for k in 0..50 {
            let r = c.read_reply().unwrap();
            assert_eq!(
                String::from_utf8(r.line).unwrap(),
                format!("{{\"return\": {}}}", n * 1000 + k)
            );
        }
    }
}

#[test]
fn test_handles_and_exec_records_are_shared_between_connections() {
    let agent = Agent::start(&[]);
    let path = agent.statedir().join("shared.txt");
    std::fs::write(&path, b"hello").unwrap();
    let mut a = agent.client();
    let mut b = agent.client();
    let (line, _) = timed(
        &mut a,
        &format!(
            r#"{{"execute":"guest-file-open","arguments":{{"path":"{}"}}}}"#,
            path.display()
        ),
    );
    let handle: i64 = line
        .trim()
        .trim_start_matches("{\"return\": ")
        .trim_end_matches('}')
        .parse()
        .unwrap();
    let (line, _) = timed(
        &mut b,
        &format!(r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle}}}}}"#),
    );
    assert_eq!(
        line,
        "{\"return\": {\"count\": 5, \"buf-b64\": \"aGVsbG8=\", \"eof\": true}}\n"
    );
    let (line, _) = timed(
        &mut b,
        &format!(r#"{{"execute":"guest-file-close","arguments":{{"handle":{handle}}}}}"#),
    );
    assert_eq!(line, "{\"return\": {}}\n");
    let (line, _) = timed(
        &mut a,
        &format!(r#"{{"execute":"guest-file-close","arguments":{{"handle":{handle}}}}}"#),
    );
    assert_eq!(
        line,
        format!(
            "{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"handle '{handle}' has not been found\"}}}}\n"
        )
    );
    // A process started on one connection is collected on another, once.
    let (line, _) = timed(
        &mut a,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/true"}}"#,
    );
    let pid: i64 = line
        .trim()
        .trim_start_matches("{\"return\": {\"pid\": ")
        .trim_end_matches("}}")
        .parse()
        .unwrap();
    let status = format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (line, _) = timed(&mut b, &status);
        if line.contains("\"exited\": true") {
            assert!(line.contains("\"exitcode\": 0"), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "{line}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (line, _) = timed(&mut a, &status);
    assert!(
        line.contains(&format!("PID {pid} does not exist")),
        "{line}"
    );
}

#[test]
fn test_connection_limit_keeps_extra_clients_waiting_as_qemu_ga() {
    let agent = Agent::start_with(&[], &[], "[general]\nmax-connections=1\n");
    let mut first = agent.client();
    let (line, _) = timed(&mut first, r#"{"execute":"guest-ping"}"#);
    assert_eq!(line, "{\"return\": {}}\n");
    // The second client connects (backlog) but is not served while the first stays.
    let mut second = UnixStream::connect(&agent.sock).unwrap();
    second
        .write_all(br#"{"execute":"guest-sync","arguments":{"id":7}}"#)
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(second.read(&mut buf).is_err(), "served beyond the limit");
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = second.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"{\"return\": 7}\n");
}

#[test]
fn test_sigterm_ends_the_agent_with_clients_connected() {
    let mut agent = Agent::start(&[]);
    let mut clients: Vec<_> = (0..3).map(|_| agent.client()).collect();
    for c in &mut clients {
        let (line, _) = timed(c, r#"{"execute":"guest-ping"}"#);
        assert_eq!(line, "{\"return\": {}}\n");
    }
    let pid = agent.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent.alive() {
        assert!(
            Instant::now() < deadline,
            "agent still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(agent.child.wait().unwrap().success());
}

#[test]
fn test_children_started_from_client_threads_have_no_signals_blocked() {
    let agent = Agent::start(&[]);
    let mut c = agent.client();
    let (line, _) = timed(
        &mut c,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/grep","arg":["^SigBlk","/proc/self/status"],"capture-output":true}}"#,
    );
    let pid = line
        .trim()
        .trim_start_matches("{\"return\": {\"pid\": ")
        .trim_end_matches("}}")
        .to_string();
    let status = format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (line, _) = timed(&mut c, &status);
        if line.contains("\"exited\": true") {
            // base64 of "SigBlk:\t0000000000000000\n"
            assert!(
                line.contains("U2lnQmxrOgkwMDAwMDAwMDAwMDAwMDAwCg=="),
                "{line}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{line}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
