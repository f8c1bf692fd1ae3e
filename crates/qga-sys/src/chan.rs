//! Channel transports of the agent: virtio-serial and isa-serial ports, systemd socket
//! activation and vsock sockets (`--method`, `--path`).
//!
//! Blocking calls here are not restarted after a signal (see
//! [`crate::process::install_signal_flag`]): they fail with `EINTR`
//! ([`SysError::is_interrupted`]) or, for polls, return [`PollResult::Interrupted`], so the
//! caller can check its quit flag. Note that std's `UnixListener::accept` and
//! `Read::read_exact`/`Write::write_all` retry `EINTR` themselves: poll first, then accept.
//!
//! virtio-serial and POLLHUP: while no host process holds the chardev open (QEMU's
//! `host_connected` is false) the guest driver reports `POLLHUP` on every poll, so a poll
//! loop that does not sleep spins at 100% CPU; reads then return 0 (EOF) rather than
//! `EAGAIN`. Kernels before the early-2026 lost-wakeup fix also raise `POLLIN` together with
//! `POLLHUP` in that state even with no data queued, later ones raise `POLLIN` only for
//! queued data. qemu-ga reads, sees EOF and sleeps 100 ms before polling again; do the same
//! on [`PollResult::Hangup`]. A poll timeout is a good idea too: old kernels could miss a
//! wake-up when the port was written and polled at the same time. When the port is
//! hot-unplugged only `POLLHUP` is reported.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::socket::{
    self, AddressFamily, Backlog, MsgFlags, SockFlag, SockType, SockaddrLike, SockaddrStorage,
    VsockAddr,
};
use nix::sys::termios::{self, FlushArg, SetArg};

use crate::SysError;

/// Puts a serial tty (isa-serial) in raw mode at 38400 baud in and out, with `CLOCAL` and
/// `CREAD` set, after discarding unread input, as qemu-ga does.
pub fn set_tty_raw(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    let mut tio = termios::tcgetattr(fd).map_err(|e| SysError::errno("tcgetattr", e))?;
    termios::cfmakeraw(&mut tio);
    // The speed goes into the CBAUD bits of c_cflag, which is what cfset[io]speed do on
    // Linux. Calling them is avoided: the libc crate binds them to a symbol version that
    // glibc's static library lacks, which breaks the static build. (The flags are set on
    // the raw struct: converting nix's wrapper drops changes made to its public fields.)
    let mut raw = libc::termios::from(tio);
    raw.c_cflag = (raw.c_cflag & !libc::CBAUD) | libc::B38400 | libc::CLOCAL | libc::CREAD;
    raw.c_ispeed = libc::B38400;
    raw.c_ospeed = libc::B38400;
    let tio = termios::Termios::from(raw);
    termios::tcflush(fd, FlushArg::TCIFLUSH).map_err(|e| SysError::errno("tcflush", e))?;
    termios::tcsetattr(fd, SetArg::TCSANOW, &tio).map_err(|e| SysError::errno("tcsetattr", e))
}

/// Opens a virtio-serial or serial port `O_RDWR|O_NONBLOCK|O_NOCTTY|O_CLOEXEC`.
///
/// Writes on the result can fail with `EAGAIN` when the port's queue is full: wait with
/// [`poll_writable`]. qemu-ga's `O_ASYNC` is left out: without `F_SETOWN` it does nothing.
pub fn open_virtio_port(path: &Path) -> Result<File, SysError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| SysError::file("open", path, e))
}

/// What a poll on one descriptor saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// Data (or a connection, on a listening socket) is ready; a read may still return EOF.
    Readable,
    /// Writing will not block.
    Writable,
    /// `POLLHUP` or `POLLERR`: the peer is gone. On virtio-serial this means "no host
    /// connected", which lasts: sleep (qemu-ga: 100 ms) before polling again. Data queued
    /// before the hang-up can still be drained with non-blocking reads.
    Hangup,
    /// The timeout expired.
    Timeout,
    /// A signal arrived (`EINTR`); check the quit flag.
    Interrupted,
}

/// Waits until `fd` is readable or hung up; `timeout_ms` < 0 waits forever.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<PollResult, SysError> {
    poll_one(fd, libc::POLLIN, timeout_ms, PollResult::Readable)
}

/// Waits until `fd` is writable or hung up; `timeout_ms` < 0 waits forever.
pub fn poll_writable(fd: BorrowedFd<'_>, timeout_ms: i32) -> Result<PollResult, SysError> {
    poll_one(fd, libc::POLLOUT, timeout_ms, PollResult::Writable)
}

fn poll_one(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout_ms: i32,
    ready: PollResult,
) -> Result<PollResult, SysError> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd and the count passed is 1; the borrowed fd stays open
    // for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if n < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(PollResult::Interrupted);
        }
        return Err(SysError::os("poll", err));
    }
    if n == 0 {
        return Ok(PollResult::Timeout);
    }
    if pfd.revents & libc::POLLNVAL != 0 {
        return Err(SysError::os(
            "poll",
            io::Error::from_raw_os_error(libc::EBADF),
        ));
    }
    if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        return Ok(PollResult::Hangup);
    }
    Ok(ready)
}

/// Bounds how long a send on a connected socket may block (`SO_SNDTIMEO`): a client that
/// stops reading then gets an error instead of stalling the agent forever.
pub fn set_send_timeout(fd: BorrowedFd<'_>, timeout: std::time::Duration) -> Result<(), SysError> {
    let tv = nix::sys::time::TimeVal::new(
        i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        i64::from(timeout.subsec_micros()),
    );
    socket::setsockopt(&fd, socket::sockopt::SendTimeout, &tv)
        .map_err(|e| SysError::errno("setsockopt", e))
}

/// Shuts down both directions of a connected socket: a thread blocked in `poll`, `read` or
/// `write` on it (another descriptor of the same connection included) wakes up at once.
pub fn shutdown(fd: BorrowedFd<'_>) -> Result<(), SysError> {
    socket::shutdown(fd.as_raw_fd(), socket::Shutdown::Both)
        .map_err(|e| SysError::errno("shutdown", e))
}

/// First descriptor passed by systemd socket activation.
pub const LISTEN_FDS_START: RawFd = 3;

/// Address family of a socket passed by systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketFamily {
    /// `AF_UNIX`: serve it as `unix-listen`.
    Unix,
    /// `AF_VSOCK`: serve it as `vsock-listen`.
    Vsock,
}

/// The listening socket systemd passed in (fd 3), close-on-exec set.
#[derive(Debug)]
pub struct ActivatedSocket {
    /// The socket.
    pub fd: OwnedFd,
    /// Its address family.
    pub family: SocketFamily,
}

/// How many sockets `LISTEN_PID`/`LISTEN_FDS` pass to process `pid`; 0 when the variables
/// are missing, malformed or meant for another process (as QEMU's check does).
pub fn listen_fd_count(listen_pid: Option<&str>, listen_fds: Option<&str>, pid: u32) -> usize {
    let for_us = listen_pid.and_then(|s| s.parse::<u32>().ok()) == Some(pid);
    if !for_us {
        return 0;
    }
    listen_fds.and_then(|s| s.parse().ok()).unwrap_or(0)
}

static ACTIVATED_TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes the socket passed by systemd socket activation, if any.
///
/// `LISTEN_PID` must equal our pid; `LISTEN_FDS` must then be 1 (more is
/// [`SysError::TooManySockets`], qemu-ga exits on it). `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES` are removed from the environment so children do not inherit them, but
/// only while the process is single-threaded (editing the environment with other threads
/// running is unsound); call this early in `main`. Fd 3 is taken at most once per process.
pub fn listen_fds() -> Result<Option<ActivatedSocket>, SysError> {
    let pid_var = std::env::var("LISTEN_PID").ok();
    let fds_var = std::env::var("LISTEN_FDS").ok();
    let pid = std::process::id();
    if pid_var.as_deref().and_then(|s| s.parse::<u32>().ok()) != Some(pid) {
        return Ok(None);
    }
    let count = listen_fd_count(pid_var.as_deref(), fds_var.as_deref(), pid);
    if crate::process::thread_count() == Some(1) {
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            // SAFETY: only this thread exists (checked just above), so nothing can read the
            // environment concurrently.
            unsafe { std::env::remove_var(var) };
        }
    } else {
        log::warn!("socket activation: not unsetting LISTEN_* (other threads are running)");
    }
    match count {
        0 => return Ok(None),
        1 => {}
        n => return Err(SysError::TooManySockets(n)),
    }
    if ACTIVATED_TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: F_GETFD only reads the descriptor flags of fd 3 (or fails with EBADF).
    let flags = unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_GETFD) };
    if flags < 0 {
        return Err(SysError::last_os("fcntl"));
    }
    // SAFETY: F_SETFD only changes the descriptor flags of fd 3, which is open.
    if unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(SysError::last_os("fcntl"));
    }
    // SAFETY: fd 3 is open (checked above) and was handed to this process by the service
    // manager; ACTIVATED_TAKEN guarantees it is wrapped only once, so it has one owner.
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let addr: SockaddrStorage =
        socket::getsockname(fd.as_raw_fd()).map_err(|e| SysError::errno("getsockname", e))?;
    let family = match addr.family() {
        Some(AddressFamily::Unix) => SocketFamily::Unix,
        Some(AddressFamily::Vsock) => SocketFamily::Vsock,
        Some(other) => return Err(SysError::UnsupportedSocket(other as i32)),
        None => return Err(SysError::UnsupportedSocket(-1)),
    };
    Ok(Some(ActivatedSocket { fd, family }))
}

/// Parses `--path` for vsock-listen: `<cid>:<port>`, both decimal `u32` (digits only).
pub fn parse_vsock_addr(s: &str) -> Option<(u32, u32)> {
    let (cid, port) = s.split_once(':')?;
    let number = |part: &str| {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse::<u32>().ok()
    };
    Some((number(cid)?, number(port)?))
}

/// The host's vsock CID (`VMADDR_CID_HOST`): the only peer `vsock-listen` accepts by default.
pub const VSOCK_HOST_CID: u32 = 2;

/// Parses `vsock-allow-cids`: `any`, or CIDs (decimal `u32`) separated by `,` or `;`.
/// `None` for a malformed list; `Some(None)` for `any`.
pub fn parse_cid_list(s: &str) -> Option<Option<Vec<u32>>> {
    if s.trim() == "any" {
        return Some(None);
    }
    let cids: Option<Vec<u32>> = s
        .split([',', ';'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect();
    cids.filter(|c| !c.is_empty()).map(Some)
}

/// A listening `AF_VSOCK` stream socket.
#[derive(Debug)]
pub struct VsockListener {
    fd: OwnedFd,
    /// Peers accepted: `None` for any, else these CIDs (the host's alone by default).
    allowed: Option<Vec<u32>>,
}

impl VsockListener {
    /// Binds and listens on `cid:port` (`u32::MAX` is `VMADDR_CID_ANY`/`VMADDR_PORT_ANY`).
    pub fn bind(cid: u32, port: u32) -> Result<Self, SysError> {
        let fd = socket::socket(
            AddressFamily::Vsock,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| SysError::errno("socket", e))?;
        socket::bind(fd.as_raw_fd(), &VsockAddr::new(cid, port))
            .map_err(|e| SysError::errno("bind", e))?;
        let backlog = Backlog::new(1).map_err(|e| SysError::errno("listen", e))?;
        socket::listen(&fd, backlog).map_err(|e| SysError::errno("listen", e))?;
        Ok(Self {
            fd,
            allowed: Some(vec![VSOCK_HOST_CID]),
        })
    }

    /// Wraps an already listening vsock socket (e.g. from socket activation).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self {
            fd,
            allowed: Some(vec![VSOCK_HOST_CID]),
        }
    }

    /// Sets the peers [`VsockListener::accept`] lets in: `None` for any, else these CIDs.
    pub fn allow_peers(&mut self, allowed: Option<Vec<u32>>) {
        self.allowed = allowed;
    }

    /// Waits for one client; fails with `EINTR` when a signal arrives, and with
    /// [`SysError::RefusedPeer`] (the connection closed at once) for a peer not allowed.
    pub fn accept(&self) -> Result<VsockStream, SysError> {
        let raw = socket::accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC)
            .map_err(|e| SysError::errno("accept", e))?;
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if let Some(allowed) = &self.allowed {
            let peer: VsockAddr = socket::getpeername(fd.as_raw_fd())
                .map_err(|e| SysError::errno("getpeername", e))?;
            if !allowed.contains(&peer.cid()) {
                return Err(SysError::RefusedPeer(peer.cid()));
            }
        }
        Ok(VsockStream { fd })
    }

    /// The bound `(cid, port)`; useful after binding port `u32::MAX` (any).
    pub fn local_addr(&self) -> Result<(u32, u32), SysError> {
        let addr: VsockAddr = socket::getsockname(self.fd.as_raw_fd())
            .map_err(|e| SysError::errno("getsockname", e))?;
        Ok((addr.cid(), addr.port()))
    }
}

impl AsFd for VsockListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for VsockListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A connected `AF_VSOCK` stream; writes use `MSG_NOSIGNAL`, so a closed peer gives `EPIPE`
/// rather than `SIGPIPE`.
#[derive(Debug)]
pub struct VsockStream {
    fd: OwnedFd,
}

impl VsockStream {
    /// A second handle on the same connection (`dup`), e.g. for a writer thread.
    pub fn try_clone(&self) -> Result<Self, SysError> {
        let fd = self.fd.try_clone().map_err(|e| SysError::os("dup", e))?;
        Ok(Self { fd })
    }
}

impl From<OwnedFd> for VsockStream {
    fn from(fd: OwnedFd) -> Self {
        Self { fd }
    }
}

impl From<VsockStream> for OwnedFd {
    fn from(stream: VsockStream) -> Self {
        stream.fd
    }
}

impl Read for &VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(io::Error::from)
    }
}

impl Write for &VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        socket::send(self.fd.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for VsockStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for VsockStream {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl IntoRawFd for VsockStream {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::os::unix::process::CommandExt;

    #[test]
    fn test_parse_vsock_addr_valid() {
        assert_eq!(parse_vsock_addr("3:1234"), Some((3, 1234)));
        assert_eq!(parse_vsock_addr("0:0"), Some((0, 0)));
        assert_eq!(
            parse_vsock_addr("4294967295:4294967295"),
            Some((u32::MAX, u32::MAX))
        );
        assert_eq!(parse_vsock_addr("007:08"), Some((7, 8)));
    }

    #[test]
    fn test_parse_cid_list() {
        assert_eq!(parse_cid_list("any"), Some(None));
        assert_eq!(parse_cid_list("2"), Some(Some(vec![2])));
        assert_eq!(parse_cid_list(" 2, 3;4 "), Some(Some(vec![2, 3, 4])));
        for bad in ["", ",", "x", "-1", "2,x", "4294967296", "+2"] {
            assert_eq!(parse_cid_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn test_parse_vsock_addr_malformed() {
        for bad in [
            "",
            ":",
            "3",
            "3:",
            ":3",
            "3:4:5",
            "-1:3",
            "+1:3",
            " 3:4",
            "3:4 ",
            "a:1",
            "1:0x10",
            "4294967296:1",
            "1:4294967296",
            "3:1234\n",
        ] {
            assert_eq!(parse_vsock_addr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn test_listen_fd_count_cases() {
        assert_eq!(listen_fd_count(Some("42"), Some("1"), 42), 1);
        assert_eq!(listen_fd_count(Some("42"), Some("2"), 42), 2);
        assert_eq!(listen_fd_count(Some("42"), Some("0"), 42), 0);
        assert_eq!(listen_fd_count(Some("41"), Some("1"), 42), 0);
        assert_eq!(listen_fd_count(None, Some("1"), 42), 0);
        assert_eq!(listen_fd_count(Some("42"), None, 42), 0);
        assert_eq!(listen_fd_count(Some("x"), Some("1"), 42), 0);
        assert_eq!(listen_fd_count(Some("42"), Some("one"), 42), 0);
    }

    #[test]
    fn test_poll_readable_unix_pair() {
        let (a, mut b) = UnixStream::pair().unwrap();
        assert_eq!(poll_readable(a.as_fd(), 0).unwrap(), PollResult::Timeout);
        assert_eq!(poll_writable(a.as_fd(), 0).unwrap(), PollResult::Writable);
        b.write_all(b"x").unwrap();
        assert_eq!(
            poll_readable(a.as_fd(), 1000).unwrap(),
            PollResult::Readable
        );
        drop(b);
        assert_eq!(poll_readable(a.as_fd(), 1000).unwrap(), PollResult::Hangup);
        // The byte written before the hang-up can still be read.
        let mut buf = [0u8; 4];
        assert_eq!((&a).read(&mut buf).unwrap(), 1);
        assert_eq!((&a).read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn test_open_virtio_port_flags_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("org.qemu.guest_agent.0");
        let err = open_virtio_port(&missing).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        std::fs::write(&missing, b"").unwrap();
        let file = open_virtio_port(&missing).unwrap();
        // SAFETY: F_GETFL/F_GETFD only read flags of an fd owned by `file`.
        let (fl, fd_flags) = unsafe {
            (
                libc::fcntl(file.as_raw_fd(), libc::F_GETFL),
                libc::fcntl(file.as_raw_fd(), libc::F_GETFD),
            )
        };
        assert_eq!(fl & libc::O_ACCMODE, libc::O_RDWR);
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn test_set_tty_raw_rejects_non_tty() {
        let file = tempfile::tempfile().unwrap();
        let err = set_tty_raw(file.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn test_set_tty_raw_on_pty() {
        use nix::sys::termios::{BaudRate, ControlFlags};
        let Ok(pty) = nix::pty::openpty(None, None) else {
            eprintln!("no pty available, skipped");
            return;
        };
        set_tty_raw(pty.slave.as_fd()).unwrap();
        let tio = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert_eq!(termios::cfgetospeed(&tio), BaudRate::B38400);
        assert_eq!(termios::cfgetispeed(&tio), BaudRate::B38400);
        assert!(!tio.local_flags.contains(termios::LocalFlags::ICANON));
        assert!(!tio.local_flags.contains(termios::LocalFlags::ECHO));
        assert!(tio.control_flags.contains(ControlFlags::CLOCAL));
    }

    #[test]
    fn test_vsock_listener_best_effort() {
        let listener = match VsockListener::bind(u32::MAX, u32::MAX) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("vsock unavailable here ({e}: {:?}), skipped", e.io_error());
                return;
            }
        };
        let (_, port) = listener.local_addr().unwrap();
        assert_ne!(port, u32::MAX);
        assert_eq!(
            poll_readable(listener.as_fd(), 0).unwrap(),
            PollResult::Timeout
        );
        // Loopback (CID 1) needs the vsock_loopback transport; skip quietly without it.
        let Ok(client) = socket::socket(
            AddressFamily::Vsock,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        ) else {
            return;
        };
        if socket::connect(client.as_raw_fd(), &VsockAddr::new(1, port)).is_err() {
            eprintln!("no vsock loopback, accept not tested");
            return;
        }
        // By default only the host (CID 2) gets in; loopback is CID 1.
        assert!(matches!(listener.accept(), Err(SysError::RefusedPeer(1))));
        let mut listener = listener;
        listener.allow_peers(Some(vec![1]));
        let client = socket::socket(
            AddressFamily::Vsock,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::connect(client.as_raw_fd(), &VsockAddr::new(1, port)).unwrap();
        let mut server = listener.accept().unwrap();
        let mut client = VsockStream::from(client);
        client.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    /// Runs in a child process started by `test_listen_fds_in_child`.
    #[test]
    #[ignore = "helper: run by test_listen_fds_in_child with fd 3 and LISTEN_* set"]
    fn listen_child() {
        let sock = listen_fds().unwrap().unwrap();
        assert_eq!(sock.family, SocketFamily::Unix);
        assert_eq!(sock.fd.as_raw_fd(), LISTEN_FDS_START);
        // SAFETY: F_GETFD only reads flags of fd 3, owned by `sock`.
        let flags = unsafe { libc::fcntl(LISTEN_FDS_START, libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        assert!(listen_fds().unwrap().is_none());
        // libtest runs tests on their own thread, so the environment is normally left alone
        // here; tests/single_threaded.rs covers the clean-up.
        if crate::process::thread_count() == Some(1) {
            assert!(std::env::var_os("LISTEN_PID").is_none());
            assert!(std::env::var_os("LISTEN_FDS").is_none());
        }
        let listener = UnixListener::from(sock.fd);
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err());
    }

    /// Runs in a child process started by `test_listen_fds_in_child`.
    #[test]
    #[ignore = "helper: run by test_listen_fds_in_child with LISTEN_FDS=2"]
    fn listen_child_two() {
        assert!(matches!(listen_fds(), Err(SysError::TooManySockets(2))));
    }

    #[test]
    fn test_listen_fds_in_child() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("sock")).unwrap();
        let raw = listener.as_raw_fd();
        for (test, count) in [
            ("chan::tests::listen_child", "1"),
            ("chan::tests::listen_child_two", "2"),
        ] {
            let mut cmd = std::process::Command::new("/bin/sh");
            cmd.args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
                .arg(std::env::current_exe().unwrap())
                .args(["--exact", test, "--ignored", "--quiet", "--test-threads=1"])
                .env("LISTEN_FDS", count);
            // SAFETY: the closure only calls dup2/fcntl, which are async-signal-safe; `raw`
            // stays open in the parent until the child has been spawned.
            unsafe {
                cmd.pre_exec(move || {
                    // dup2 onto itself keeps FD_CLOEXEC, so clear it in that case.
                    let rc = if raw == LISTEN_FDS_START {
                        libc::fcntl(raw, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(raw, LISTEN_FDS_START)
                    };
                    if rc < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{test}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn test_listen_fds_not_for_us() {
        // The test process is not socket-activated.
        if std::env::var_os("LISTEN_PID").is_none() {
            assert!(listen_fds().unwrap().is_none());
        }
    }
}
