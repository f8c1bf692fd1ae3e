//! Test harness of the `qga` command: the real agent on a unix socket in a temp dir.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `qga` binary under test.
pub const QGA: &str = env!("CARGO_BIN_EXE_qga");

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

/// A running agent; killed on drop.
pub struct Agent {
    pub child: Child,
    pub sock: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent on `<tempdir>/sock` with an empty configuration.
pub fn agent() -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    start_agent(dir, sock, "", &[])
}

/// An agent listening on `sock` (its state directory is a fresh temp dir).
pub fn agent_at(sock: &Path) -> Agent {
    start_agent(tempfile::tempdir().unwrap(), sock.to_path_buf(), "", &[])
}

/// An agent on `sock` with state in `dir`, configuration text `config` and extra environment.
pub fn start_agent(
    dir: tempfile::TempDir,
    sock: PathBuf,
    config: &str,
    env: &[(&str, &str)],
) -> Agent {
    spawn(agent_binary(), dir, sock, config, env)
}

/// `binary` as an agent on `sock` (state and pid file in `dir`), waited for until it accepts.
fn spawn(
    binary: &Path,
    dir: tempfile::TempDir,
    sock: PathBuf,
    config: &str,
    env: &[(&str, &str)],
) -> Agent {
    let conf = dir.path().join("c.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(binary)
        .envs(env.iter().copied())
        .args(["-m", "unix-listen", "-p"])
        .arg(&sock)
        .arg("-t")
        .arg(dir.path())
        // Several reference agents at once: each needs its own pid file.
        .arg("-f")
        .arg(dir.path().join("pid"))
        .env("QGA_CONF", &conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Agent { child, sock, dir }
}

/// Runs `qga -s SOCK ARGS...`: exit code, stdout, stderr.
pub fn qga(sock: &Path, args: &[&str]) -> (i32, String, String) {
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

/// The reference agent (Debian's qemu-ga), when installed.
pub const REFERENCE: &str = "/usr/sbin/qemu-ga";

/// Debian's qemu-ga on `<tempdir>/sock` with an empty configuration and extra environment;
/// `None` when it is not installed (an error when `QGA_REQUIRE_REFERENCE` is set).
pub fn reference_agent(env: &[(&str, &str)]) -> Option<Agent> {
    if !Path::new(REFERENCE).exists() {
        assert!(
            std::env::var_os("QGA_REQUIRE_REFERENCE").is_none(),
            "{REFERENCE} is required but missing"
        );
        println!("{REFERENCE} is not installed: its rows are skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    Some(spawn(Path::new(REFERENCE), dir, sock, "", env))
}
