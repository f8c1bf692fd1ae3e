//! The client library's handshake against a real agent: `sync` must find its own reply behind
//! stale replies, requests half-sent by an earlier client, the agent's error reply for the
//! 0xFF itself, replies queued before the client came (boot time on virtio-serial), garbage
//! and torn lines; and a call that timed out must not take its late reply for the next one.
//!
//! Runs against this workspace's agent, and against Debian's qemu-ga when it is installed
//! (`QGA_REQUIRE_REFERENCE=1` makes its absence a failure, as in the differential tests).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{AGENT, Agent};
use qga_client::{Client, ClientError, Target};
use qga_schema as s;

const REFERENCE: &str = "/usr/sbin/qemu-ga";

/// The agents to run against: ours, and qemu-ga when present.
fn programs() -> Vec<&'static str> {
    let mut p = vec![AGENT];
    if Path::new(REFERENCE).exists() {
        p.push(REFERENCE);
    } else {
        assert!(
            std::env::var_os("QGA_REQUIRE_REFERENCE").is_none(),
            "{REFERENCE} is required but missing"
        );
        eprintln!("{REFERENCE} not installed: only this workspace's agent is tested");
    }
    p
}

fn hostname<S: Read + Write>(c: &mut Client<S>) -> String {
    c.execute::<s::GuestGetHostName>(&s::NoArgs {})
        .unwrap()
        .host_name
}

#[test]
fn test_sync_skips_stale_replies_partial_request_and_the_ff_error() {
    for program in programs() {
        let agent = Agent::start_program(program, &[], &[], "");
        let expected = hostname(&mut agent.client());
        let mut c = agent.client();
        // Two requests whose replies nobody reads, then half a request: the 0xFF of the sync
        // ends it with an error reply ("stray '\uFFFD'" in qemu-ga), which sync must skip too.
        c.send_raw(
            b"{\"execute\":\"guest-ping\"}\n{\"execute\":\"guest-info\"}\n{\"execute\":\"gue",
        )
        .unwrap();
        c.sync().unwrap();
        assert_eq!(hostname(&mut c), expected, "{program}");
        // Twice in a row on the same connection works too.
        c.sync().unwrap();
        assert!(c.execute::<s::GuestGetTime>(&s::NoArgs {}).unwrap() > 0);
    }
}

/// A peer between client and agent: forwards both ways, first sending `inject` to the client,
/// putting `before_ff` in front of every 0xFF from the agent (noise on a serial line just
/// before a delimited reply), and holding the agent's replies back while `hold` is set.
struct Proxy {
    path: std::path::PathBuf,
    hold: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

fn proxy(agent_sock: &Path, inject: &'static [u8], before_ff: &'static [u8]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxy.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let hold = Arc::new(AtomicBool::new(false));
    let agent_sock = agent_sock.to_path_buf();
    let held = hold.clone();
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut agent = UnixStream::connect(&agent_sock).unwrap();
        let mut to_agent = agent.try_clone().unwrap();
        let mut from_client = client.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from_client, &mut to_agent);
            // The client left: let the agent see it, so it takes the next connection.
            let _ = to_agent.shutdown(std::net::Shutdown::Both);
        });
        client.write_all(inject).unwrap();
        agent
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut pending = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match agent.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    for &b in &buf[..n] {
                        if b == 0xFF {
                            pending.extend_from_slice(before_ff);
                        }
                        pending.push(b);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            if !held.load(Ordering::SeqCst) && !pending.is_empty() {
                if client.write_all(&pending).is_err() {
                    return;
                }
                pending.clear();
            }
        }
    });
    Proxy {
        path,
        hold,
        _dir: dir,
    }
}

#[test]
fn test_sync_survives_garbage_queued_replies_and_torn_lines() {
    // What a host may find in a channel before its first request: line noise without a
    // newline, a delimited sync reply meant for an earlier client, a reply queued at boot, and
    // the first half of a reply whose rest was lost.
    const NOISE: &[u8] =
        b"\x00\x13\x1b[0mboot noise\xff{\"return\": 4242}\n{\"return\": {}}\n{\"retu";
    for program in programs() {
        let agent = Agent::start_program(program, &[], &[], "");
        let expected = hostname(&mut agent.client());
        let p = proxy(&agent.sock, NOISE, b"");
        let mut c =
            Client::open(&Target::Unix(p.path.clone()), Some(Duration::from_secs(10))).unwrap();
        c.sync().unwrap();
        assert_eq!(hostname(&mut c), expected, "{program}");
        drop(c);
        // Noise glued to the front of the delimited reply itself: everything before the
        // 0xFF is dropped.
        let p = proxy(&agent.sock, b"", b"\x1b[0m~");
        let mut c =
            Client::open(&Target::Unix(p.path.clone()), Some(Duration::from_secs(2))).unwrap();
        c.sync().unwrap();
        assert_eq!(hostname(&mut c), expected, "{program}");
    }
}

#[test]
fn test_call_after_timeout_resyncs_instead_of_taking_the_late_reply() {
    for program in programs() {
        let agent = Agent::start_program(program, &[], &[], "");
        let p = proxy(&agent.sock, b"", b"");
        let mut c = Client::open(
            &Target::Unix(p.path.clone()),
            Some(Duration::from_millis(300)),
        )
        .unwrap();
        c.sync().unwrap();
        p.hold.store(true, Ordering::SeqCst);
        match c.execute::<s::GuestGetHostName>(&s::NoArgs {}) {
            Err(ClientError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut),
            other => panic!("{program}: expected a timeout, got {other:?}"),
        }
        // The host-name reply arrives late; the next call must not read it as its own.
        p.hold.store(false, Ordering::SeqCst);
        c.set_channel_timeout(Some(Duration::from_secs(10)));
        let t = c.execute::<s::GuestGetTime>(&s::NoArgs {}).unwrap();
        assert!(t > 1_600_000_000_000_000_000, "{program}: {t}");
        let info = c.execute::<s::GuestInfo>(&s::NoArgs {}).unwrap();
        assert!(!info.supported_commands.is_empty());
    }
}
