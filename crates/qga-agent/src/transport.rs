//! Channels: virtio-serial and isa-serial ports (one stream whose parser state survives
//! host reconnects, as in qemu-ga) and listening unix/vsock sockets (one client at a time,
//! each with a fresh parser). Every loop here wakes on signals to honour the quit flag.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qga_sys::SysError;
use qga_sys::chan::{self, PollResult, SocketFamily, VsockListener};

use crate::agent::Agent;
use crate::session::Session;

/// Size of one read from the channel.
const READ_SIZE: usize = 64 * 1024;
/// Idle time after which freed memory is returned to the OS.
const IDLE_TRIM_MS: i32 = 1000;
/// How long to wait before polling a port again while no host is connected (as qemu-ga).
const HANGUP_SLEEP: Duration = Duration::from_millis(100);

/// Where to serve, resolved from the configuration or from systemd.
#[derive(Debug)]
pub enum Endpoint {
    /// A virtio-serial port device.
    VirtioSerial(PathBuf),
    /// A serial tty, put in raw mode.
    IsaSerial(PathBuf),
    /// A unix socket to create and listen on.
    UnixListen(PathBuf),
    /// A vsock `cid:port` to listen on.
    VsockListen(u32, u32),
    /// A listening socket passed by systemd.
    Activated(OwnedFd, SocketFamily),
}

/// An open channel.
#[derive(Debug)]
pub enum Channel {
    /// A port: one stream for the agent's whole life.
    Port(File),
    /// A listening unix socket.
    Unix(UnixListener),
    /// A listening vsock socket.
    Vsock(VsockListener),
}

/// Why serving stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM or SIGINT.
    Quit,
}

/// Opens the channel for `endpoint`.
pub fn open(endpoint: Endpoint) -> Result<Channel, SysError> {
    match endpoint {
        Endpoint::VirtioSerial(path) => chan::open_virtio_port(&path).map(Channel::Port),
        Endpoint::IsaSerial(path) => {
            let f = chan::open_virtio_port(&path)?;
            chan::set_tty_raw(f.as_fd())?;
            Ok(Channel::Port(f))
        }
        Endpoint::UnixListen(path) => {
            // A stale socket from an earlier run would make bind fail.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(&path);
            }
            UnixListener::bind(&path)
                .map(Channel::Unix)
                .map_err(|e| SysError::file("bind", &path, e))
        }
        Endpoint::VsockListen(cid, port) => VsockListener::bind(cid, port).map(Channel::Vsock),
        Endpoint::Activated(fd, SocketFamily::Unix) => Ok(Channel::Unix(UnixListener::from(fd))),
        Endpoint::Activated(fd, SocketFamily::Vsock) => {
            Ok(Channel::Vsock(VsockListener::from_fd(fd)))
        }
    }
}

/// Serves requests on `channel` until `quit` is set; an error means the channel failed.
pub fn serve(agent: &mut Agent, channel: &Channel, quit: &AtomicBool) -> Result<Stop, SysError> {
    match channel {
        Channel::Port(f) => serve_port(agent, f, quit),
        Channel::Unix(l) => loop {
            if !wait_readable(l.as_fd(), quit)? {
                return Ok(Stop::Quit);
            }
            match l.accept() {
                Ok((stream, _)) => {
                    if let ClientEnd::Quit = serve_client(agent, &stream, quit)? {
                        return Ok(Stop::Quit);
                    }
                }
                Err(e) => log::warn!("failed to accept a client: {e}"),
            }
        },
        Channel::Vsock(l) => loop {
            if !wait_readable(l.as_fd(), quit)? {
                return Ok(Stop::Quit);
            }
            match l.accept() {
                Ok(stream) => {
                    if let ClientEnd::Quit = serve_client(agent, &stream, quit)? {
                        return Ok(Stop::Quit);
                    }
                }
                Err(e) => log::warn!("failed to accept a client: {e}"),
            }
        },
    }
}

/// Waits until `fd` is readable; `false` when the agent should quit. After a second without
/// input the memory freed by the last requests is given back to the OS.
fn wait_readable(fd: std::os::fd::BorrowedFd<'_>, quit: &AtomicBool) -> Result<bool, SysError> {
    let mut timeout = IDLE_TRIM_MS;
    loop {
        if quit.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match chan::poll_readable(fd, timeout)? {
            PollResult::Timeout => {
                qga_sys::memory_tuning::release_free_memory();
                timeout = -1;
            }
            PollResult::Interrupted => {}
            _ => return Ok(true),
        }
    }
}

/// How a client's conversation ended.
enum ClientEnd {
    /// The client went away (or its connection failed): wait for the next one.
    Gone,
    /// The agent was asked to quit.
    Quit,
}

/// One client of a listening socket, with its own parser. A read or write error ends the
/// client, never the agent (qemu-ga exits when a client resets the connection).
fn serve_client<S>(agent: &mut Agent, stream: &S, quit: &AtomicBool) -> Result<ClientEnd, SysError>
where
    S: AsFd,
    for<'s> &'s S: Read + Write,
{
    let mut session = Session::new();
    let mut buf = vec![0u8; READ_SIZE];
    if let Err(e) = chan::set_send_timeout(stream.as_fd(), SEND_TIMEOUT) {
        log::warn!("cannot bound reply writes: {e}");
    }
    let mut writer = ClientWriter { stream, quit };
    loop {
        if !wait_readable(stream.as_fd(), quit)? {
            return Ok(ClientEnd::Quit);
        }
        let n = match (&mut &*stream).read(&mut buf) {
            Ok(0) => return Ok(ClientEnd::Gone),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::debug!("client read failed: {e}");
                return Ok(ClientEnd::Gone);
            }
        };
        crate::commands::freeze::sync_watchdog(agent);
        if let Err(e) = session.feed(agent, &buf[..n], &mut writer) {
            log::debug!("client write failed: {e}");
            return Ok(ClientEnd::Gone);
        }
    }
}

/// Longest a reply write to a client may block: a client that stops reading is dropped
/// after this instead of stalling the agent.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes replies to a client; a signal asking the agent to quit interrupts a blocked write
/// (std's `write_all` would retry it forever).
struct ClientWriter<'a, S> {
    stream: &'a S,
    quit: &'a AtomicBool,
}

impl<S> Write for ClientWriter<'_, S>
where
    for<'s> &'s S: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match (&mut &*self.stream).write(buf) {
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        && !self.quit.load(Ordering::SeqCst) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    return Err(io::Error::other("the agent is quitting"));
                }
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer for a non-blocking port: waits while the port's queue is full.
struct PortWriter<'a>(&'a File);

impl Write for PortWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match (&mut &*self.0).write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match chan::poll_writable(self.0.as_fd(), 1000) {
                        Ok(PollResult::Hangup) => {
                            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
                        }
                        Ok(_) => continue,
                        Err(e) => return Err(io::Error::other(e)),
                    }
                }
                r => return r,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A port: the parser state survives the host closing and reopening its end, so a host
/// that reconnects must resynchronise with 0xFF (as with qemu-ga).
fn serve_port(agent: &mut Agent, port: &File, quit: &AtomicBool) -> Result<Stop, SysError> {
    let mut session = Session::new();
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        if quit.load(Ordering::SeqCst) {
            return Ok(Stop::Quit);
        }
        let hangup = match chan::poll_readable(port.as_fd(), IDLE_TRIM_MS)? {
            PollResult::Timeout => {
                qga_sys::memory_tuning::release_free_memory();
                continue;
            }
            PollResult::Interrupted => continue,
            PollResult::Hangup => true,
            _ => false,
        };
        match (&mut &*port).read(&mut buf) {
            Ok(0) => std::thread::sleep(HANGUP_SLEEP),
            Ok(n) => {
                crate::commands::freeze::sync_watchdog(agent);
                if let Err(e) = session.feed(agent, &buf[..n], &mut PortWriter(port)) {
                    log::warn!("failed to write a reply: {e}");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                if hangup {
                    std::thread::sleep(HANGUP_SLEEP);
                }
            }
            Err(e) => return Err(SysError::os("read", e)),
        }
    }
}
