//! Where an agent's host end is and how to open it: a unix socket (QEMU chardev, libvirt
//! channel socket, an agent run with `-m unix-listen`), a vsock `cid:port`, or a serial device
//! (a pty or tty of a chardev) put in raw mode. All three become one [`Channel`]: a
//! non-blocking descriptor whose reads wait with `poll` up to a per-reply timeout.
//!
//! A fourth kind goes through libvirt: libvirtd keeps its own connection to a running
//! domain's agent socket, so while it runs nobody else gets an answer there. `libvirt:NAME`
//! hands each request line to `virsh qemu-agent-command` and queues its reply line.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// The host end of an agent channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unix socket path (written `PATH` or `unix:PATH`).
    Unix(PathBuf),
    /// A vsock address (written `vsock:CID:PORT`).
    Vsock {
        /// The guest's context id.
        cid: u32,
        /// The agent's port.
        port: u32,
    },
    /// A serial device (a character device path, or `serial:PATH`), used in raw mode.
    Serial(PathBuf),
    /// A libvirt domain, reached through `virsh qemu-agent-command` (written `libvirt:NAME`).
    Libvirt(String),
}

impl FromStr for Target {
    type Err = String;

    /// `vsock:CID:PORT`, `unix:PATH`, `serial:PATH`, or a path: a character device is a
    /// serial line, anything else a unix socket.
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("vsock:") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| format!("'{s}': write a vsock address as vsock:CID:PORT"))?;
            let num = |v: &str, what: &str| {
                v.parse::<u32>().map_err(|_| {
                    format!("'{s}': the {what} '{v}' is not a number (vsock:CID:PORT)")
                })
            };
            return Ok(Target::Vsock {
                cid: num(cid, "CID")?,
                port: num(port, "port")?,
            });
        }
        if let Some(p) = s.strip_prefix("unix:") {
            return Ok(Target::Unix(p.into()));
        }
        if let Some(p) = s.strip_prefix("serial:") {
            return Ok(Target::Serial(p.into()));
        }
        if let Some(name) = s.strip_prefix("libvirt:") {
            return Ok(Target::Libvirt(name.into()));
        }
        let is_char_device = std::fs::metadata(s).is_ok_and(|m| m.file_type().is_char_device());
        Ok(if is_char_device {
            Target::Serial(s.into())
        } else {
            Target::Unix(s.into())
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Unix(p) => write!(f, "{}", p.display()),
            Target::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Target::Serial(p) => write!(f, "{}", p.display()),
            Target::Libvirt(name) => write!(f, "libvirt:{name}"),
        }
    }
}

/// An open channel to an agent: reads wait at most the timeout, then fail with `TimedOut`.
#[derive(Debug)]
pub struct Channel {
    inner: Inner,
    timeout: Option<Duration>,
}

/// The two ways a channel carries bytes.
#[derive(Debug)]
enum Inner {
    /// A descriptor: socket or tty.
    Fd(File),
    /// Request lines run through virsh.
    Virsh(crate::virsh::Virsh),
}

impl Channel {
    /// Opens a target; reads wait at most `timeout` (`None`: forever).
    pub fn open(target: &Target, timeout: Option<Duration>) -> io::Result<Channel> {
        let fd: OwnedFd = match target {
            Target::Libvirt(name) => {
                return Ok(Channel {
                    inner: Inner::Virsh(crate::virsh::Virsh::new(name)?),
                    timeout,
                });
            }
            Target::Unix(p) => connect_unix(p)?,
            Target::Vsock { cid, port } => {
                use nix::sys::socket::{
                    AddressFamily, SockFlag, SockType, VsockAddr, connect, socket,
                };
                use std::os::fd::AsRawFd;
                let fd = socket(
                    AddressFamily::Vsock,
                    SockType::Stream,
                    SockFlag::SOCK_CLOEXEC,
                    None,
                )?;
                connect(fd.as_raw_fd(), &VsockAddr::new(*cid, *port))?;
                fd
            }
            Target::Serial(p) => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    // O_NOCTTY: the tty must not become the client's controlling terminal.
                    .custom_flags(OFlag::O_NOCTTY.bits())
                    .open(p)?;
                set_raw(&f)?;
                f.into()
            }
        };
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(Channel {
            inner: Inner::Fd(File::from(fd)),
            timeout,
        })
    }

    /// The time a read waits for data.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Sets the time a read waits for data.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Waits until `file` is ready for `events`, up to `deadline`.
    fn wait(file: &File, events: PollFlags, deadline: Option<Instant>) -> io::Result<()> {
        loop {
            let left = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "no answer within the timeout",
                        ));
                    }
                    // Round up so a sub-millisecond remainder does not spin.
                    let ms = left.as_millis().saturating_add(1);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(file.as_fd(), events)];
            match poll(&mut fds, left) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Connects to a unix socket without blocking: a listener whose queue is full (QEMU's
/// chardev while another client, such as libvirtd, is attached) fails at once with EAGAIN.
fn connect_unix(path: &std::path::Path) -> io::Result<OwnedFd> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    match connect(fd.as_raw_fd(), &UnixAddr::new(path)?) {
        Ok(()) => Ok(fd),
        Err(nix::errno::Errno::EAGAIN) => Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "the channel is busy (another client, such as libvirtd, holds it)",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Raw mode: no echo, no line editing, no CR/LF translation, 8-bit bytes.
fn set_raw(f: &File) -> io::Result<()> {
    use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
    let mut t = tcgetattr(f)?;
    cfmakeraw(&mut t);
    tcsetattr(f, SetArg::TCSANOW, &t)?;
    Ok(())
}

impl Read for Channel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let file = match &mut self.inner {
            Inner::Fd(f) => f,
            Inner::Virsh(v) => return v.read(buf),
        };
        loop {
            match file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Channel::wait(file, PollFlags::POLLIN, deadline)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }
}

impl Write for Channel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let file = match &mut self.inner {
            Inner::Fd(f) => f,
            Inner::Virsh(v) => return v.write(buf, self.timeout),
        };
        loop {
            match file.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    Channel::wait(file, PollFlags::POLLOUT, deadline)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_target_parsing() {
        assert_eq!(
            "vsock:3:1234".parse::<Target>(),
            Ok(Target::Vsock { cid: 3, port: 1234 })
        );
        assert!("vsock:3".parse::<Target>().is_err());
        assert!("vsock:x:1".parse::<Target>().unwrap_err().contains("CID"));
        assert_eq!(
            "/nonexistent/sock".parse::<Target>(),
            Ok(Target::Unix("/nonexistent/sock".into()))
        );
        assert_eq!(
            "/dev/null".parse::<Target>(),
            Ok(Target::Serial("/dev/null".into()))
        );
        assert_eq!(
            "unix:/dev/null".parse::<Target>(),
            Ok(Target::Unix("/dev/null".into()))
        );
        assert_eq!(Target::Vsock { cid: 3, port: 9 }.to_string(), "vsock:3:9");
        assert_eq!(
            "libvirt:web1".parse::<Target>(),
            Ok(Target::Libvirt("web1".into()))
        );
    }

    #[test]
    fn test_read_times_out_and_reads_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut ch =
            Channel::open(&Target::Unix(path.clone()), Some(Duration::from_millis(50))).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        let e = ch.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        peer.write_all(b"abc").unwrap();
        assert_eq!(ch.read(&mut buf).unwrap(), 3);
        ch.write_all(b"xyz").unwrap();
        let mut got = [0u8; 3];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"xyz");
    }
}
