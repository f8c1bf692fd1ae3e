//! Crash safety, process level: the agent is killed with SIGKILL at random points while it
//! allocates file handles, writes files, or enters and leaves the frozen state (through
//! guest-fsfreeze-freeze-list of a path that is no mount point, with a hook that takes a
//! while, so no real filesystem is frozen), then restarted on the same state directory.
//! After every restart: `qga.state` is complete and parses, no `qga.state.tmp` survives
//! the next allocation, handles never repeat, and the marker and the frozen mode agree.
//! Bounded in time (about 20 s); the seed is printed (`QGA_CRASH_SEED` repeats a run).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Agent;

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Sends `request` `n` times on a new connection from a thread; replies are collected as
/// they come until the agent dies.
fn pipeline(sock: &std::path::Path, request: String, n: usize) -> Arc<Mutex<Vec<String>>> {
    let replies = Arc::new(Mutex::new(Vec::new()));
    let s = UnixStream::connect(sock).unwrap();
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..n {
            if w.write_all(request.as_bytes()).is_err() {
                break;
            }
        }
    });
    let out = replies.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(s).lines() {
            match line {
                Ok(l) => out.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
    replies
}

fn reply(sock: &std::path::Path, request: &str) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

#[test]
fn test_kill_9_at_random_points_then_restart() {
    let seed: u64 = std::env::var("QGA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = seed;
    let state = tempfile::tempdir().unwrap();
    let statedir = state.path().to_str().unwrap().to_string();
    let hook = state.path().join("hook.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\n[ \"$1\" = freeze ] && sleep 0.02\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook_arg = format!("-F{}", hook.display());
    let marker = state.path().join("qga.state.isfrozen");
    let data = state.path().join("data");
    let mut seen: HashSet<i64> = HashSet::new();
    let (mut kills, mut restored_frozen) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && kills < 40 {
        let mut agent = Agent::start(&["-t", &statedir, &hook_arg]);
        // The state file is whole after any kill.
        let text = std::fs::read_to_string(state.path().join("qga.state")).unwrap();
        let counter = qga_agent::state::parse_fd_counter(&text)
            .unwrap_or_else(|| panic!("qga.state half written: {text:?} (seed {seed})"));
        assert!(
            seen.iter().all(|h| *h < counter),
            "counter {counter} at or below a handle already given out (seed {seed})"
        );
        // The marker and the frozen mode agree.
        let status = reply(&agent.sock, r#"{"execute":"guest-fsfreeze-status"}"#);
        if marker.exists() {
            assert_eq!(status, "{\"return\": \"frozen\"}\n", "seed {seed}");
            let open = reply(
                &agent.sock,
                r#"{"execute":"guest-file-open","arguments":{"path":"/dev/null"}}"#,
            );
            assert!(open.contains("has been disabled"), "{open} (seed {seed})");
            restored_frozen += 1;
            // What an administrator does after unfreezing by hand (the agent's own thaw
            // walks every real mount: that is for the VM suite).
            std::fs::remove_file(&marker).unwrap();
            continue;
        }
        assert_eq!(status, "{\"return\": \"thawed\"}\n", "seed {seed}");
        let replies = match xorshift(&mut rng) % 3 {
            0 => pipeline(
                &agent.sock,
                r#"{"execute":"guest-file-open","arguments":{"path":"/dev/null"}}"#.into(),
                3000,
            ),
            1 => {
                let open = format!(
                    r#"{{"execute":"guest-file-open","arguments":{{"path":"{}","mode":"a"}}}}"#,
                    data.display()
                );
                let h: i64 = reply(&agent.sock, &open)
                    .trim()
                    .strip_prefix("{\"return\": ")
                    .and_then(|r| r.strip_suffix('}'))
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(seen.insert(h), "handle {h} given out twice (seed {seed})");
                pipeline(
                    &agent.sock,
                    format!(
                        r#"{{"execute":"guest-file-write","arguments":{{"handle":{h},"buf-b64":"{}"}}}}{{"execute":"guest-file-flush","arguments":{{"handle":{h}}}}}"#,
                        "QUFB".repeat(1024)
                    ),
                    2000,
                )
            }
            _ => pipeline(
                &agent.sock,
                r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/nonexistent/qga"]}}{"execute":"guest-fsfreeze-status"}"#.into(),
                200,
            ),
        };
        std::thread::sleep(Duration::from_millis(xorshift(&mut rng) % 200));
        agent.child.kill().unwrap();
        agent.child.wait().unwrap();
        kills += 1;
        for l in replies.lock().unwrap().iter() {
            if let Some(h) = l
                .strip_prefix("{\"return\": ")
                .and_then(|r| r.strip_suffix('}'))
                .and_then(|r| r.parse::<i64>().ok())
                .filter(|h| *h >= 1000)
            {
                assert!(seen.insert(h), "handle {h} given out twice (seed {seed})");
            }
        }
    }
    println!(
        "seed {seed}: {kills} kills, {restored_frozen} restarts in frozen mode, {} distinct handles",
        seen.len()
    );
    assert!(kills >= 5, "too few rounds: {kills}");
}
