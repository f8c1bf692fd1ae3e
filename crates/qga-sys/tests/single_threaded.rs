//! Process-level checks that need a single-threaded process: socket activation (with its
//! environment clean-up) and daemonize. `harness = false`: `main` re-runs this binary as
//! the child under test.

// clippy's allow-unwrap-in-tests does not cover a harness-less test's `main`.
#![allow(clippy::unwrap_used)]

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use qga_sys::chan::{self, SocketFamily};
use qga_sys::process;

const MODE: &str = "QGA_SYS_CHILD";
const OUT: &str = "QGA_SYS_OUT";

fn main() {
    match std::env::var(MODE).as_deref() {
        Ok("activation") => child_activation(),
        Ok("daemonize") => child_daemonize(),
        _ => {
            parent_activation();
            parent_daemonize();
            println!("single_threaded: ok");
        }
    }
}

fn child_activation() {
    let sock = chan::listen_fds().unwrap().unwrap();
    assert_eq!(sock.family, SocketFamily::Unix);
    assert_eq!(sock.fd.as_raw_fd(), chan::LISTEN_FDS_START);
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        assert!(std::env::var_os(var).is_none(), "{var} still set");
    }
    assert!(chan::listen_fds().unwrap().is_none());
    let listener = UnixListener::from(sock.fd);
    let (mut conn, _) = listener.accept().unwrap();
    io::Write::write_all(&mut conn, b"hello").unwrap();
}

fn parent_activation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qga.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let raw = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "LISTEN_PID=$$ exec \"$0\""])
        .arg(std::env::current_exe().unwrap())
        .env(MODE, "activation")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "qga");
    // SAFETY: the closure only calls dup2/fcntl, which are async-signal-safe; `raw` stays
    // open in the parent until the child has been spawned.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if raw == chan::LISTEN_FDS_START {
                libc::fcntl(raw, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, chan::LISTEN_FDS_START)
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut got = String::new();
    io::Read::read_to_string(&mut client, &mut got).unwrap();
    assert_eq!(got, "hello");
    assert!(child.wait().unwrap().success());
}

fn child_daemonize() {
    let out = std::env::var(OUT).unwrap();
    let before = std::process::id();
    process::daemonize().unwrap();
    let pid = std::process::id();
    let sid = nix::unistd::getsid(None).unwrap().as_raw();
    let cwd = std::env::current_dir().unwrap();
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::empty()).bits();
    let null = std::fs::metadata("/dev/null").unwrap().rdev();
    let stdio_null = (0..3)
        .all(|fd| nix::sys::stat::fstat(unsafe_borrow(fd)).is_ok_and(|st| st.st_rdev == null));
    let report = format!(
        "{before} {pid} {sid} {} {mask:o} {stdio_null}",
        cwd.display()
    );
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, report).unwrap();
    std::fs::rename(tmp, out).unwrap();
}

fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: fds 0-2 stay open for the life of the process (daemonize points them at
    // /dev/null).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

fn parent_daemonize() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let status = Command::new(std::env::current_exe().unwrap())
        .env(MODE, "daemonize")
        .env(OUT, &out)
        .status()
        .unwrap();
    assert!(status.success(), "the foreground process must exit 0");
    let report = wait_for(&out);
    let fields: Vec<&str> = report.split(' ').collect();
    assert_eq!(fields.len(), 6, "{report}");
    let (before, pid, sid) = (fields[0], fields[1], fields[2]);
    assert_ne!(before, pid, "must run in a forked child");
    assert_eq!(pid, sid, "child must lead a new session");
    assert_eq!(fields[3], "/");
    assert_eq!(fields[4], "77");
    assert_eq!(fields[5], "true", "stdin/stdout/stderr must be /dev/null");
}

fn wait_for(path: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "daemon wrote no report"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
