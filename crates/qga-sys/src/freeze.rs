//! Freezing, thawing and trimming mounted filesystems (FIFREEZE, FITHAW, FITRIM), and
//! running the fsfreeze hook with a time limit.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helper::HelperError;
use crate::sysroot::strerror;

/// `_IOWR('X', 119, int)`.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
/// `_IOWR('X', 120, int)`.
const FITHAW: libc::c_ulong = 0xC004_5878;
/// `_IOWR('X', 121, struct fstrim_range)`.
const FITRIM: libc::c_ulong = 0xC018_5879;

/// `struct fstrim_range`.
#[repr(C)]
struct FstrimRange {
    start: u64,
    len: u64,
    minlen: u64,
}

/// Why freezing one filesystem failed.
#[derive(Debug)]
pub enum FreezeError {
    /// The mount point could not be opened.
    Open(io::Error),
    /// FIFREEZE failed with an error qemu-ga does not ignore.
    Freeze(io::Error),
}

fn open_dir(dir: &str) -> io::Result<File> {
    File::open(dir)
}

/// Freezes the filesystem mounted at `dir`: `Ok(true)` when frozen, `Ok(false)` when the
/// filesystem cannot be frozen or is frozen already (EOPNOTSUPP, EBUSY: not counted).
pub fn freeze(dir: &str) -> Result<bool, FreezeError> {
    let f = open_dir(dir).map_err(FreezeError::Open)?;
    let mut arg: libc::c_int = 0;
    // SAFETY: FIFREEZE takes an int argument (ignored by the kernel); `arg` lives across the
    // call and the fd is open.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FIFREEZE, &mut arg) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::EBUSY) => Ok(false),
        _ => Err(FreezeError::Freeze(e)),
    }
}

/// Thaws the filesystem at `dir`, repeating FITHAW until it fails (undoing nested freezes);
/// true when it was thawed at least once. A mount point that cannot be opened is skipped.
pub fn thaw(dir: &str) -> bool {
    let Ok(f) = open_dir(dir) else {
        return false;
    };
    let mut thawed = false;
    loop {
        let mut arg: libc::c_int = 0;
        // SAFETY: FITHAW takes an int argument (ignored); `arg` outlives the call.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), FITHAW, &mut arg) };
        if r != 0 {
            return thawed;
        }
        thawed = true;
    }
}

/// Why trimming one filesystem failed, in qemu-ga's words.
#[derive(Debug, PartialEq, Eq)]
pub enum TrimError {
    /// "failed to open: …".
    Open(String),
    /// "trim not supported".
    NotSupported,
    /// "failed to trim: …".
    Trim(String),
}

impl std::fmt::Display for TrimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrimError::Open(e) => write!(f, "failed to open: {e}"),
            TrimError::NotSupported => f.write_str("trim not supported"),
            TrimError::Trim(e) => write!(f, "failed to trim: {e}"),
        }
    }
}

/// Discards the unused blocks of the filesystem at `dir` (FITRIM over the whole range with
/// `minimum` as the minimum extent); returns the bytes trimmed and the minimum extent the
/// kernel used (it may raise it to the discard granularity).
pub fn trim(dir: &str, minimum: u64) -> Result<(u64, u64), TrimError> {
    let f = open_dir(dir).map_err(|e| TrimError::Open(strerror(&e)))?;
    let mut range = FstrimRange {
        start: 0,
        len: u64::MAX,
        minlen: minimum,
    };
    // SAFETY: FITRIM reads and writes a `struct fstrim_range`, which `range` is (repr(C));
    // it lives across the call and the fd is open.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), FITRIM, &mut range) };
    if r == 0 {
        return Ok((range.len, range.minlen));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOTTY | libc::EOPNOTSUPP) => Err(TrimError::NotSupported),
        _ => Err(TrimError::Trim(strerror(&e))),
    }
}

/// Why the hook failed: qemu-ga's helper errors, or our time limit.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// As qemu-ga reports it.
    #[error(transparent)]
    Helper(#[from] HelperError),
    /// Killed after running longer than the limit.
    #[error("child process has failed to execute fsfreeze hook: timed out after {0} seconds")]
    Timeout(u64),
}

/// Runs `hook arg` as qemu-ga 10.x runs it (new session, stdin `/dev/null`, stdout and
/// stderr merged and captured into the error text), killing its process group after
/// `timeout` (`None`: no limit).
pub fn run_hook(hook: &str, arg: &str, timeout: Option<Duration>) -> Result<(), HookError> {
    const ACTION: &str = "execute fsfreeze hook";
    let (mut reader, writer) = io::pipe().map_err(HelperError::Spawn)?;
    let writer2 = writer.try_clone().map_err(HelperError::Spawn)?;
    let mut cmd = Command::new(hook);
    cmd.arg(arg)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if !matches!(e.raw_os_error(), None | Some(libc::EAGAIN | libc::ENOMEM)) => {
            return Err(HelperError::Failed {
                action: ACTION.to_string(),
                status: 1,
                output: format!("failed to exec '{hook}': {}\n", strerror(&e)),
            }
            .into());
        }
        Err(e) => return Err(HelperError::Spawn(e).into()),
    };
    drop(cmd);
    let collector = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    let pid = child.id();
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(source) => return Err(HelperError::Wait { pid, source }.into()),
        }
        if let Some(limit) = timeout
            && start.elapsed() >= limit
        {
            if let Ok(pgid) = i32::try_from(pid) {
                // SAFETY: kill has no memory effects; the hook leads its own process group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            let _ = child.wait();
            return Err(HookError::Timeout(limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = collector.join().unwrap_or_default();
    let end = output.iter().position(|&b| b == 0).unwrap_or(output.len());
    let output = String::from_utf8_lossy(&output[..end]).into_owned();
    match std::os::unix::process::ExitStatusExt::signal(&status) {
        Some(_) => Err(HelperError::Abnormal { output }.into()),
        None => match status.code() {
            Some(0) | None => Ok(()),
            Some(code) => Err(HelperError::Failed {
                action: ACTION.to_string(),
                status: code,
                output,
            }
            .into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &std::path::Path, body: &str) -> String {
        let p = dir.join("hook");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn test_hook_texts() {
        let d = tempfile::tempdir().unwrap();
        let h = script(d.path(), "echo \"$1\" >> \"$(dirname \"$0\")/log\"");
        run_hook(&h, "freeze", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("log")).unwrap(),
            "freeze\n"
        );
        let h = script(d.path(), "echo out; echo err >&2; exit 3");
        assert_eq!(
            run_hook(&h, "thaw", None).unwrap_err().to_string(),
            "child process has failed to execute fsfreeze hook: out\nerr\n"
        );
        let h = script(d.path(), "exit 4");
        assert_eq!(
            run_hook(&h, "thaw", None).unwrap_err().to_string(),
            "child process has failed to execute fsfreeze hook: exit status 4"
        );
        let h = script(d.path(), "kill -9 $$");
        assert_eq!(
            run_hook(&h, "thaw", None).unwrap_err().to_string(),
            "child process has terminated abnormally"
        );
        assert_eq!(
            run_hook("/nonexistent/hook", "freeze", None)
                .unwrap_err()
                .to_string(),
            "child process has failed to execute fsfreeze hook: failed to exec '/nonexistent/hook': No such file or directory\n"
        );
        let h = script(d.path(), "sleep 30");
        let t = Instant::now();
        assert_eq!(
            run_hook(&h, "freeze", Some(Duration::from_millis(200)))
                .unwrap_err()
                .to_string(),
            "child process has failed to execute fsfreeze hook: timed out after 0 seconds"
        );
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn test_trim_error_texts() {
        assert_eq!(TrimError::NotSupported.to_string(), "trim not supported");
        assert_eq!(
            TrimError::Open("Permission denied".into()).to_string(),
            "failed to open: Permission denied"
        );
        assert_eq!(
            trim("/nonexistent-qga-dir", 0),
            Err(TrimError::Open("No such file or directory".into()))
        );
    }
}
