//! Process-wide set-up of the agent: `-d` daemonizing, the `-f` pid file, SIGTERM/SIGINT
//! handling and the syslog audit lines (e.g. "guest-exec called").

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::SysError;

/// Number of threads of this process from `/proc/self/task`, `None` if unreadable.
pub(crate) fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|dir| dir.filter(Result::is_ok).count())
}

/// Detaches from the terminal like qemu-ga `-d`: fork (the parent `_exit(0)`s at once),
/// `setsid`, `umask 077`, `chdir /`, stdin/stdout/stderr to `/dev/null`.
///
/// There is no second fork and no pid file here: write the pid file afterwards, from the
/// child, as qemu-ga does. Refused with [`SysError::MultiThreaded`] when other threads run
/// (they would not exist in the child).
pub fn daemonize() -> Result<(), SysError> {
    if thread_count().is_some_and(|n| n > 1) {
        return Err(SysError::MultiThreaded("daemonize"));
    }
    // Open /dev/null first so a failure is reported by the original process.
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| SysError::file("open", "/dev/null", e))?;
    // SAFETY: the process is single-threaded (checked above), so the child is a full copy
    // and may run any code; the parent only calls `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SysError::last_os("fork"));
    }
    if pid > 0 {
        // SAFETY: `_exit` ends the parent without running destructors or atexit handlers,
        // which belong to the child now.
        unsafe { libc::_exit(0) };
    }
    nix::unistd::setsid().map_err(|e| SysError::errno("setsid", e))?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    std::env::set_current_dir("/").map_err(|e| SysError::os("chdir", e))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| SysError::errno("dup2", e))?;
    nix::unistd::dup2_stdout(&null).map_err(|e| SysError::errno("dup2", e))?;
    nix::unistd::dup2_stderr(&null).map_err(|e| SysError::errno("dup2", e))?;
    Ok(())
}

/// A locked pid file holding `"<pid>\n"`; dropping it removes the file.
///
/// The lock is an open-file-description lock (`F_OFD_SETLK`, falling back to `lockf` on
/// kernels older than 3.15). It conflicts with the `lockf` lock qemu-ga takes, and unlike
/// `lockf` also with a second open in the same process.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    /// Held open for the lock: closing it releases the lock.
    _lock: File,
}

impl PidFile {
    /// Creates (mode 0644, never through a symlink) or reuses `path`, locks it, truncates it and writes our pid.
    ///
    /// Fails with [`SysError::PidFileLocked`] while another holder keeps it locked.
    pub fn create(path: &Path) -> Result<Self, SysError> {
        // A previous owner may unlink the file between our open and our lock: retry then.
        for _ in 0..3 {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                // A symlink planted at the pid file's path is refused (ELOOP), not followed.
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| SysError::file("open", path, e))?;
            lock_exclusive(&file).map_err(|source| {
                if matches!(source.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) {
                    SysError::PidFileLocked {
                        path: path.to_owned(),
                        source,
                    }
                } else {
                    SysError::file("lock", path, source)
                }
            })?;
            let ours = file
                .metadata()
                .map_err(|e| SysError::file("stat", path, e))?;
            match std::fs::metadata(path) {
                Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(SysError::file("stat", path, e)),
            }
            file.set_len(0)
                .map_err(|e| SysError::file("truncate", path, e))?;
            (&file)
                .write_all(format!("{}\n", std::process::id()).as_bytes())
                .map_err(|e| SysError::file("write", path, e))?;
            return Ok(Self {
                path: path.to_owned(),
                _lock: file,
            });
        }
        Err(SysError::file(
            "lock",
            path,
            io::Error::other("pid file keeps being replaced"),
        ))
    }

    /// The pid file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so no other process can lock a file that is
        // about to vanish; `_lock` is closed (and unlocked) after this body.
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove pid file {}: {e}", self.path.display());
        }
    }
}

/// Takes a whole-file write lock without waiting.
fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: `libc::flock` is plain data; all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start = 0, l_len = 0: the whole file; l_pid must be 0 for OFD locks.
    // SAFETY: the fd is open for the call and `lock` is a valid flock the kernel only reads.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINVAL) {
        return Err(err);
    }
    // SAFETY: lockf on an open, writable fd only takes a POSIX record lock.
    if unsafe { libc::lockf(file.as_raw_fd(), libc::F_TLOCK, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

static QUIT_FLAG: AtomicPtr<AtomicBool> = AtomicPtr::new(ptr::null_mut());
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_quit_signal(signo: libc::c_int) {
    LAST_SIGNAL.store(signo, Ordering::SeqCst);
    let flag = QUIT_FLAG.load(Ordering::SeqCst);
    if !flag.is_null() {
        // SAFETY: the pointer was made from a `&'static AtomicBool`; atomic stores are
        // async-signal-safe.
        unsafe { (*flag).store(true, Ordering::SeqCst) };
    }
}

/// Makes SIGTERM and SIGINT set `flag` and ignores SIGPIPE.
///
/// The handler is installed without `SA_RESTART`, so a blocking `read`, `accept` or `poll`
/// in any thread that receives the signal fails with `EINTR` and the loop can look at the
/// flag. Whether to quit (qemu-ga ignores the signal while filesystems are frozen) is the
/// caller's decision. Calling it again replaces the flag.
pub fn install_signal_flag(flag: &'static AtomicBool) -> Result<(), SysError> {
    QUIT_FLAG.store(ptr::from_ref(flag).cast_mut(), Ordering::SeqCst);
    let quit = SigAction::new(
        SigHandler::Handler(on_quit_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    for (sig, action) in [
        (Signal::SIGTERM, &quit),
        (Signal::SIGINT, &quit),
        (Signal::SIGPIPE, &ignore),
    ] {
        // SAFETY: the handler only does atomic loads and stores, which are
        // async-signal-safe; SIG_IGN for SIGPIPE is always sound.
        unsafe { signal::sigaction(sig, action) }.map_err(|e| SysError::errno("sigaction", e))?;
    }
    Ok(())
}

/// The last SIGTERM/SIGINT number caught by [`install_signal_flag`]'s handler, if any.
pub fn last_signal() -> Option<i32> {
    Some(LAST_SIGNAL.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

static OPENLOG: Once = Once::new();

/// Where glibc's `syslog` sends its datagrams.
const SYSLOG_SOCKET: &str = "/dev/log";
/// How long the answer of [`syslog_listening`] is reused.
const SYSLOG_RECHECK: Duration = Duration::from_secs(1);
/// The last look at [`SYSLOG_SOCKET`]: when, and whether a socket was there.
static SYSLOG_SEEN: Mutex<Option<(Instant, bool)>> = Mutex::new(None);

/// Whether a syslog daemon's socket (`/dev/log`) exists, looked at most once a second.
///
/// Without one, glibc's `syslog` formats the line and tries `socket`+`connect`+`close` on
/// every call, all for nothing; callers skip building audit lines then. A daemon started
/// later is seen within a second.
pub fn syslog_listening() -> bool {
    let now = Instant::now();
    let mut seen = SYSLOG_SEEN.lock().unwrap_or_else(|e| e.into_inner());
    match *seen {
        Some((at, present)) if now.duration_since(at) < SYSLOG_RECHECK => present,
        _ => {
            let present = std::fs::metadata(SYSLOG_SOCKET).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            });
            *seen = Some((now, present));
            present
        }
    }
}

/// Sends `info: <msg>` to syslog at `LOG_INFO`, ident `qemu-ga`, `LOG_PID`, `LOG_DAEMON`:
/// the journal then shows `qemu-ga[pid]: info: guest-exec called: …` exactly as for
/// qemu-ga. Pass the bare message. NUL bytes are dropped; no syslog daemon is not an error
/// (nothing is done then, see [`syslog_listening`]).
pub fn syslog_info(msg: &str) {
    if !syslog_listening() {
        return;
    }
    OPENLOG.call_once(|| {
        // SAFETY: the ident is a 'static C string, as openlog keeps the pointer.
        unsafe { libc::openlog(c"qemu-ga".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    });
    let line = CString::new(format!("info: {msg}").replace('\0', "")).unwrap_or_default();
    // SAFETY: the format is a literal "%s" consuming exactly one C string argument, which
    // stays alive for the call.
    unsafe { libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), line.as_ptr()) };
}

/// Why a directory the agent keeps state in is unsafe: writable by other users without the
/// sticky bit, so they could plant or replace files there. `None` when it is fine or
/// does not exist.
pub fn unsafe_dir(dir: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode();
    (mode & 0o022 != 0 && mode & 0o1000 == 0).then(|| {
        format!(
            "{} is writable by other users (mode {:04o}) without the sticky bit",
            dir.display(),
            mode & 0o7777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_unsafe_dir() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let set = |m| std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(m));
        set(0o700).unwrap();
        assert_eq!(unsafe_dir(d.path()), None);
        set(0o1777).unwrap();
        assert_eq!(unsafe_dir(d.path()), None);
        set(0o777).unwrap();
        assert!(
            unsafe_dir(d.path())
                .unwrap()
                .ends_with("is writable by other users (mode 0777) without the sticky bit")
        );
        assert_eq!(unsafe_dir(&d.path().join("missing")), None);
    }

    #[test]
    fn test_pid_file_lock_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qemu-ga.pid");
        let first = PidFile::create(&path).unwrap();
        assert_eq!(first.path(), path);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode & !0o644, 0, "{mode:o}");

        let second = PidFile::create(&path);
        assert!(
            matches!(second, Err(SysError::PidFileLocked { .. })),
            "{second:?}"
        );
        // The failed attempt must not have clobbered the holder's content.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );

        drop(first);
        assert!(!path.exists());
        let third = PidFile::create(&path).unwrap();
        drop(third);
        assert!(!path.exists());
    }

    #[test]
    fn test_pid_file_replaces_stale_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.pid");
        std::fs::write(&path, "999999999\nold junk\n").unwrap();
        let pid_file = PidFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(pid_file);
    }

    #[test]
    fn test_pid_file_bad_dir() {
        let err = PidFile::create(Path::new("/nonexistent-dir/x.pid")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn test_daemonize_refused_with_threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let helper = std::thread::spawn(move || rx.recv());
        assert!(matches!(daemonize(), Err(SysError::MultiThreaded(_))));
        drop(tx);
        let _ = helper.join();
    }

    #[test]
    fn test_thread_count() {
        assert!(thread_count().unwrap() >= 1);
    }

    #[test]
    fn test_syslog_info_does_not_crash() {
        syslog_info("qga-sys unit test");
        syslog_info("with\0nul");
    }

    /// Runs in a child process started by `test_signal_flag_in_child`.
    #[test]
    #[ignore = "helper: run by test_signal_flag_in_child"]
    fn signal_child() {
        static QUIT: AtomicBool = AtomicBool::new(false);
        install_signal_flag(&QUIT).unwrap();
        // SIGPIPE is ignored: raising it must not kill us.
        signal::raise(Signal::SIGPIPE).unwrap();
        // A blocking poll in the thread that gets the signal is interrupted, not restarted.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        let killer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            // SAFETY: `me` is the test thread, which is alive: it joins this thread below.
            unsafe { libc::pthread_kill(me, libc::SIGTERM) }
        });
        let result = crate::chan::poll_readable(std::os::fd::AsFd::as_fd(&a), 10_000).unwrap();
        assert_eq!(killer.join().unwrap(), 0);
        assert_eq!(result, crate::chan::PollResult::Interrupted);
        assert!(QUIT.load(Ordering::SeqCst));
        assert_eq!(last_signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn test_signal_flag_in_child() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "process::tests::signal_child",
                "--ignored",
                "--quiet",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
