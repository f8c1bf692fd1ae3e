//! The `qga` command against the real agent on a unix socket.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const QGA: &str = env!("CARGO_BIN_EXE_qga");

/// The agent binary of this workspace (built on first use).
fn agent_binary() -> &'static Path {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "qga-agent", "--bin", "qemu-ga"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
        // The client's own binary sits next to the agent's.
        Path::new(QGA).parent().unwrap().join("qemu-ga")
    })
}

struct Agent {
    child: Child,
    sock: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let conf = dir.path().join("c.conf");
    std::fs::write(&conf, "").unwrap();
    let child = Command::new(agent_binary())
        .args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir.path())
        .env("QGA_CONF", &conf)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Agent { child, sock, dir }
}

fn qga(sock: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(QGA)
        .arg("-s")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn test_ping_info_osinfo_and_json() {
    let a = agent();
    assert_eq!(qga(&a.sock, &["ping"]).1, "ok\n");
    let (code, out, _) = qga(&a.sock, &["info"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("version 10.2.0\n"), "{out}");
    let (_, json, _) = qga(&a.sock, &["--json", "hostname"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["host-name"].is_string());
    assert!(qga(&a.sock, &["osinfo"]).1.contains("kernel"));
    let (code, out, _) = qga(&a.sock, &["fsinfo"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("mountpoint"), "{out}");
}

#[test]
fn test_exec_exit_code_output_and_stdin() {
    let a = agent();
    let (code, out, err) = qga(
        &a.sock,
        &["exec", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (3, "hi\n", "oops\n"));
    let (code, _, _) = qga(&a.sock, &["exec", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(code, 128 + 9);
    let input = a.dir.path().join("in.txt");
    std::fs::write(&input, "from a file").unwrap();
    let (_, out, _) = qga(
        &a.sock,
        &["exec", "--stdin", input.to_str().unwrap(), "--", "cat"],
    );
    assert_eq!(out, "from a file\n");
}

#[test]
fn test_cp_both_ways_verified() {
    let a = agent();
    let src = a.dir.path().join("src.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let guest = a.dir.path().join("guest.bin");
    let (code, out, err) = qga(
        &a.sock,
        &[
            "cp",
            src.to_str().unwrap(),
            &format!(":{}", guest.display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3000000 bytes") && out.contains("verified"),
        "{out}"
    );
    assert_eq!(std::fs::read(&guest).unwrap(), data);
    let back = a.dir.path().join("back.bin");
    let (code, out, err) = qga(
        &a.sock,
        &[
            "cp",
            &format!(":{}", guest.display()),
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified"), "{out}");
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

#[test]
fn test_errors_say_what_to_do() {
    let a = agent();
    let (code, _, err) = qga(Path::new("/nonexistent/sock"), &["ping"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot connect to /nonexistent/sock") && err.contains("is the VM running"),
        "{err}"
    );
    let (code, _, err) = qga(&a.sock, &["cp", "a", "b"]);
    assert_eq!(code, 1);
    assert!(err.contains("leading ':'"), "{err}");
    let (_, out, _) = qga(&a.sock, &["raw", r#"{"execute":"guest-nope"}"#]);
    assert_eq!(
        out,
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-nope has not been found\"}}\n"
    );
}

#[test]
fn test_several_guests_at_once_with_one_failing() {
    let a = agent();
    let b = agent();
    let out = Command::new(QGA)
        .arg("-s")
        .arg(&a.sock)
        .arg("-s")
        .arg(&b.sock)
        .args(["-s", "/nonexistent/sock", "hostname"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("3 guests, 2 ok, 1 failed"), "{text}");
}
