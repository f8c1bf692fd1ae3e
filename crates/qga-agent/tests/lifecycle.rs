//! Start-up, transports and process life: daemonizing with a locked pid file, the log file,
//! systemd socket activation, `--retry-path`, isa-serial over a pseudo-terminal.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{AGENT, Agent, exchange};
use qga_client::Client;
use qga_schema::{GuestSync, SyncArgs};

fn wait_for(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn sync_over(sock: &std::path::Path, id: i64) -> i64 {
    let mut c = Client::connect_unix(sock).unwrap();
    c.execute::<GuestSync>(&SyncArgs { id }).unwrap()
}

#[test]
fn test_daemonize_writes_locked_pidfile_and_sigterm_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let pidfile = dir.path().join("qemu-ga.pid");
    let conf = dir.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let status = Command::new(AGENT)
        .args(["-d", "-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir.path())
        .arg("-f")
        .arg(&pidfile)
        .env("QGA_CONF", &conf)
        .status()
        .unwrap();
    assert!(status.success(), "the foreground parent exits 0");
    assert!(wait_for(
        || std::fs::read_to_string(&pidfile).is_ok_and(|t| t.ends_with('\n')),
        10
    ));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(sync_over(&sock, 11), 11);

    // A second daemon with the same pid file must not start.
    let second = Command::new(AGENT)
        .args(["-d", "-m", "unix-listen", "-p"])
        .arg(dir.path().join("sock2"))
        .arg("-t")
        .arg(dir.path())
        .arg("-f")
        .arg(&pidfile)
        .env("QGA_CONF", &conf)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _ = second;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );
    assert_eq!(sync_over(&sock, 12), 12);

    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(wait_for(
        || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        10
    ));
    assert!(!pidfile.exists(), "pid file removed on exit");
}

#[test]
fn test_logfile_receives_verbose_lines() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let a = Agent::start(&["-v", "-l", log.to_str().unwrap()]);
    assert_eq!(
        exchange(&a, b"{\"execute\":\"guest-ping\"}", 1),
        "{\"return\": {}}\n"
    );
    assert!(wait_for(
        || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("debug: running command guest-ping")),
        5
    ));
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap();
    let (ts, _) = first.split_once(": ").unwrap();
    assert!(
        ts.contains('.') && ts.chars().all(|c| c.is_ascii_digit() || c == '.'),
        "{first}"
    );
}

/// Runs python3 to create a listening unix socket, put it on fd 3 with LISTEN_FDS and
/// LISTEN_PID set, and exec the agent, as systemd does.
#[test]
fn test_systemd_socket_activation() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    let conf = dir.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let script = r#"
import os, socket, sys
agent, path, statedir = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path); s.listen(1)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
# method and path on the command line are overridden by the activated socket
os.execv(agent, [agent, "-m", "virtio-serial", "-p", "/nonexistent", "-t", statedir])
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(AGENT)
        .arg(&sock)
        .arg(dir.path())
        .env("QGA_CONF", &conf)
        .spawn()
        .unwrap();
    assert!(wait_for(|| UnixStream::connect(&sock).is_ok(), 10));
    assert_eq!(sync_over(&sock, 33), 33);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn test_retry_path_waits_for_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("later");
    let sock = sub.join("sock");
    let conf = dir.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let mut child = Command::new(AGENT)
        .args(["-r", "-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir.path())
        .env("QGA_CONF", &conf)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "with -r a missing channel is not fatal"
    );
    std::fs::create_dir(&sub).unwrap();
    assert!(
        wait_for(|| UnixStream::connect(&sock).is_ok(), 15),
        "agent binds once the directory exists"
    );
    assert_eq!(sync_over(&sock, 5), 5);
    child.kill().unwrap();
    child.wait().unwrap();

    // Without -r the same failure is fatal, with qemu-ga's texts.
    let out = Command::new(AGENT)
        .args(["-m", "unix-listen", "-p"])
        .arg(dir.path().join("missing/sock"))
        .arg("-t")
        .arg(dir.path())
        .env("QGA_CONF", &conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("critical: failed to initialize guest agent channel"),
        "{err}"
    );
}

/// isa-serial on a pseudo-terminal: the agent puts the tty in raw mode and answers on it.
#[test]
fn test_isa_serial_over_pty() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("empty.conf");
    std::fs::write(&conf, "").unwrap();
    let script = r#"
import os, pty, select, subprocess, sys, time
agent, statedir = sys.argv[1:3]
master, slave = pty.openpty()
name = os.ttyname(slave)
p = subprocess.Popen([agent, "-m", "isa-serial", "-p", name, "-t", statedir])
try:
    time.sleep(0.5)
    os.write(master, b'\xff{"execute":"guest-sync-delimited","arguments":{"id":77}}\n{"execute":"guest-ping","id":"tty"}\n')
    buf = b""
    deadline = time.time() + 10
    while buf.count(b"\n") < 3 and time.time() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            buf += os.read(master, 4096)
    sys.stdout.write(buf.decode("latin1"))
finally:
    p.kill()
    p.wait()
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(AGENT)
        .arg(dir.path())
        .env("QGA_CONF", &conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n\
         \u{ff}{\"return\": 77}\n{\"return\": {}, \"id\": \"tty\"}\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client that sends requests but never reads the replies fills the socket; the agent's
/// blocked write must still give way to SIGTERM.
#[test]
fn test_sigterm_while_client_stops_reading() {
    use std::io::Write;
    let mut a = Agent::start(&[]);
    let mut s = UnixStream::connect(&a.sock).unwrap();
    let mut w = s.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let req = b"{\"execute\":\"guest-ping\"}".repeat(20_000);
        for _ in 0..50 {
            if w.write_all(&req).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(a.alive());
    let pid = a.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let start = Instant::now();
    assert!(
        wait_for(|| a.child.try_wait().unwrap().is_some(), 10),
        "agent stuck in a write"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(s.flush());
    drop(s);
    let _ = flood.join();
}
