//! Channels: virtio-serial and isa-serial ports (one stream whose parser state survives
//! host reconnects, as in qemu-ga) and listening unix/vsock sockets (several clients at
//! once, up to `max-connections`, each on its own thread with a fresh parser and its replies
//! in order). SIGTERM/SIGINT sent to the agent reach the main thread (Linux delivers a
//! process-directed signal to the thread group leader unless it blocks the signal; client
//! threads do not block it either, since children inherit the mask); on quit the main thread
//! shuts the clients' sockets down, which wakes their threads.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use qga_sys::SysError;
use qga_sys::chan::{self, PollResult, SocketFamily, VsockListener};

use crate::agent::{Agent, lock};
use crate::session::Session;

/// Size of one read from the channel.
const READ_SIZE: usize = 64 * 1024;
/// Idle time after which freed memory is returned to the OS.
const IDLE_TRIM_MS: i32 = 1000;
/// How long to wait before polling a port again while no host is connected (as qemu-ga).
const HANGUP_SLEEP: Duration = Duration::from_millis(100);
/// Clients of a listening socket served at once unless configured (`max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4;
/// Stack of a client thread: as the main thread's, for deeply nested requests.
const CLIENT_STACK: usize = 8 << 20;
/// How often a full agent looks at the quit flag while it waits for a client to leave.
const FULL_POLL: Duration = Duration::from_millis(200);

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
            let listener =
                UnixListener::bind(&path).map_err(|e| SysError::file("bind", &path, e))?;
            // Only the agent's user (root) may connect: 0600 whatever the umask.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| SysError::file("chmod", &path, e))?;
            Ok(Channel::Unix(listener))
        }
        Endpoint::VsockListen(cid, port) => VsockListener::bind(cid, port).map(Channel::Vsock),
        Endpoint::Activated(fd, SocketFamily::Unix) => Ok(Channel::Unix(UnixListener::from(fd))),
        Endpoint::Activated(fd, SocketFamily::Vsock) => {
            Ok(Channel::Vsock(VsockListener::from_fd(fd)))
        }
    }
}

/// Serves requests on `channel` until `quit` is set; an error means the channel failed.
/// A listening socket serves up to `max_connections` clients at once (at least one); the
/// next ones wait in the socket's backlog, as every client after the first does with qemu-ga.
pub fn serve(
    agent: &mut Agent,
    channel: &Channel,
    quit: &AtomicBool,
    max_connections: usize,
) -> Result<Stop, SysError> {
    match channel {
        Channel::Port(f) => serve_port(agent, f, quit),
        Channel::Unix(l) => serve_listener(
            agent,
            l.as_fd(),
            || l.accept().map(|(s, _)| s).map_err(|e| e.to_string()),
            quit,
            max_connections,
        ),
        Channel::Vsock(l) => serve_listener(
            agent,
            l.as_fd(),
            || l.accept().map_err(|e| e.to_string()),
            quit,
            max_connections,
        ),
    }
}

/// The clients being served: a second descriptor of each socket, so that the main thread
/// can shut them down on quit, a signal when one leaves, and what they are doing.
#[derive(Default)]
struct Clients {
    open: Mutex<HashMap<u64, OwnedFd>>,
    left: Condvar,
    activity: Activity,
}

/// What the clients of a listening socket are doing. They share one heap (one malloc arena),
/// so a trim on behalf of a quiet client would also take the buffers a busy one is reusing
/// (and make its next large request fault them in again): the heap is trimmed only when no
/// client is handling input and none has for a second, or when a client leaves while no
/// other is handling input.
#[derive(Default)]
struct Activity {
    /// Clients handling input now.
    busy: AtomicUsize,
    /// When a client last finished handling input.
    last: Mutex<Option<Instant>>,
}

/// A client handling input ([`Activity::start`]).
struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *lock(&self.0.last) = Some(Instant::now());
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    /// A client starts handling input, until the guard is dropped (on unwinding too).
    fn start(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    /// Whether no client is handling input.
    fn idle(&self) -> bool {
        self.busy.load(Ordering::SeqCst) == 0
    }

    /// Whether no client is handling input and none has for [`IDLE_TRIM_MS`].
    fn quiet(&self) -> bool {
        let since = Duration::from_millis(IDLE_TRIM_MS.unsigned_abs().into());
        self.idle() && lock(&self.last).is_none_or(|t| t.elapsed() >= since)
    }
}

impl Clients {
    /// Waits until fewer than `max` clients are served; `false` when the agent should quit.
    fn wait_for_room(&self, max: usize, quit: &AtomicBool) -> bool {
        let mut open = lock(&self.open);
        while open.len() >= max {
            if quit.load(Ordering::SeqCst) {
                return false;
            }
            open = self
                .left
                .wait_timeout(open, FULL_POLL)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
        true
    }

    fn leave(&self, id: u64) {
        lock(&self.open).remove(&id);
        self.left.notify_all();
    }

    /// Wakes every client thread: their sockets read end of file and writes fail.
    fn shut_all(&self) {
        for fd in lock(&self.open).values() {
            if let Err(e) = chan::shutdown(fd.as_fd()) {
                log::debug!("cannot shut a client down: {e}");
            }
        }
    }
}

/// Accepts clients of a listening socket and serves each on its own thread, at most `max`
/// at once; returns when the agent is asked to quit, after every client thread ended.
fn serve_listener<S>(
    agent: &Agent,
    listener: BorrowedFd<'_>,
    accept: impl Fn() -> Result<S, String>,
    quit: &AtomicBool,
    max: usize,
) -> Result<Stop, SysError>
where
    S: AsFd + Send,
    for<'s> &'s S: Read + Write,
{
    let clients = Clients::default();
    let max = max.max(1);
    // What start-up allocated and freed; from now on the clients trim (see Activity).
    qga_sys::memory_tuning::release_free_memory();
    std::thread::scope(|scope| {
        let mut next_id = 0u64;
        let result = loop {
            if !clients.wait_for_room(max, quit) {
                break Ok(Stop::Quit);
            }
            match wait_readable(listener, quit, None) {
                Ok(true) => {}
                Ok(false) => break Ok(Stop::Quit),
                Err(e) => break Err(e),
            }
            let stream = match accept() {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("failed to accept a client: {e}");
                    continue;
                }
            };
            let dup = match stream.as_fd().try_clone_to_owned() {
                Ok(d) => d,
                Err(e) => {
                    log::warn!("cannot serve a client: {e}");
                    continue;
                }
            };
            let id = next_id;
            next_id += 1;
            lock(&clients.open).insert(id, dup);
            let mut conn = agent.for_connection();
            let clients = &clients;
            let spawned = std::thread::Builder::new()
                .name("qga-client".into())
                .stack_size(CLIENT_STACK)
                .spawn_scoped(scope, move || {
                    serve_client(&mut conn, &stream, quit, &clients.activity);
                    clients.leave(id);
                    // The client's buffers (a 64 MiB request, a 48 MiB read) were freed
                    // with its session; nothing else would wake up to give them back
                    // (unless another client is handling input: it trims when it is quiet).
                    if clients.activity.idle() {
                        qga_sys::memory_tuning::release_free_memory();
                    }
                });
            if let Err(e) = spawned {
                log::warn!("cannot start a thread for a client: {e}");
                clients.leave(id);
            }
        };
        clients.shut_all();
        result
    })
}

/// Waits until `fd` is readable; `false` when the agent should quit. A client (`trim` given)
/// gives the memory freed by the last requests back to the OS after a second without
/// input, once every client has been quiet that long ([`Activity::quiet`]); until then it
/// looks again every second. A listening socket (`None`) never trims: its quiet second says
/// nothing of the clients being served, and a trim in the middle of a client's transfers
/// would have it fault its buffers in again (measured: 0.72 against 0.52 s of agent CPU for
/// three passes of 96 MiB in 48 MiB writes).
fn wait_readable(
    fd: BorrowedFd<'_>,
    quit: &AtomicBool,
    trim: Option<&Activity>,
) -> Result<bool, SysError> {
    let mut timeout = if trim.is_some() { IDLE_TRIM_MS } else { -1 };
    loop {
        if quit.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match chan::poll_readable(fd, timeout)? {
            PollResult::Timeout => {
                if trim.is_some_and(Activity::quiet) {
                    qga_sys::memory_tuning::release_free_memory();
                    timeout = -1;
                }
            }
            PollResult::Interrupted => {}
            _ => return Ok(true),
        }
    }
}

/// One client of a listening socket, with its own parser, until it leaves, its connection
/// fails or the agent quits. A read or write error ends the client, never the agent
/// (qemu-ga exits when a client resets the connection).
fn serve_client<S>(agent: &mut Agent, stream: &S, quit: &AtomicBool, activity: &Activity)
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
        match wait_readable(stream.as_fd(), quit, Some(activity)) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                log::debug!("client poll failed: {e}");
                return;
            }
        }
        let n = match (&mut &*stream).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::debug!("client read failed: {e}");
                return;
            }
        };
        let busy = activity.start();
        let fed = session.feed(agent, &buf[..n], &mut writer);
        drop(busy);
        if let Err(e) = fed {
            log::debug!("client write failed: {e}");
            return;
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
            // A signal that interrupts a write after part of it went out ends the call with
            // that part's length, not EINTR: look at the flag before every write.
            if self.quit.load(Ordering::SeqCst) {
                return Err(io::Error::other("the agent is quitting"));
            }
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
