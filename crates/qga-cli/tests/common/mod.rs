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
    let conf = dir.path().join("c.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(agent_binary())
        .envs(env.iter().copied())
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
