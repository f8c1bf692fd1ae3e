//! Test harness: starts the real `qemu-ga` binary on a unix socket in a temporary
//! directory and connects to it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qga_client::Client;

/// The agent binary built by cargo.
pub const AGENT: &str = env!("CARGO_BIN_EXE_qemu-ga");

/// A running agent; killed on drop.
pub struct Agent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
}

impl Agent {
    /// Starts `qemu-ga -m unix-listen -p <dir>/sock -t <dir>` plus `extra` arguments, with an
    /// empty configuration file.
    pub fn start(extra: &[&str]) -> Agent {
        Agent::start_with(extra, &[], "")
    }

    /// Same, with environment variables and configuration text.
    pub fn start_with(extra: &[&str], env: &[(&str, &str)], config: &str) -> Agent {
        Agent::start_program(AGENT, extra, env, config)
    }

    /// Same, with another agent binary (e.g. Debian's qemu-ga for differential tests).
    pub fn start_program(
        program: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        config: &str,
    ) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("sock");
        let conf = dir.path().join("qemu-ga.conf");
        std::fs::write(&conf, config).unwrap();
        let mut cmd = Command::new(program);
        cmd.args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(dir.path());
        cmd.args(extra)
            .env("QGA_CONF", &conf)
            .env_remove("QGA_OS_RELEASE");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().unwrap();
        let agent = Agent { child, dir, sock };
        agent.wait_socket();
        agent
    }

    fn wait_socket(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("agent did not start listening on {}", self.sock.display());
    }

    /// A new client connection.
    pub fn client(&self) -> Client<UnixStream> {
        let mut c = Client::connect_unix(&self.sock).unwrap();
        c.set_timeout(Some(Duration::from_secs(20))).unwrap();
        c
    }

    /// The state directory.
    pub fn statedir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `input` on a fresh connection and reads `n` reply lines, returned as raw text
/// (0xFF delimiters kept as the byte 0xFF mapped to U+00FF).
pub fn exchange(agent: &Agent, input: &[u8], n: usize) -> String {
    let mut c = agent.client();
    c.send_raw(input).unwrap();
    let mut out = String::new();
    for _ in 0..n {
        let r = c.read_reply().unwrap();
        if r.delimited {
            out.push('\u{ff}');
        }
        out.push_str(&String::from_utf8(r.line).unwrap());
        out.push('\n');
    }
    out
}
