//! Starting processes for guest-exec: `posix_spawn` through std (no copy of the agent's
//! address space, so the cost stays flat however large the agent grows), every agent
//! descriptor close-on-exec, `SIGPIPE` back to default in the child.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};

/// QEMU stores U+0000 as the bytes `C0 80` (modified UTF-8), and that is what reaches the
/// OS when a string with `\u0000` names a file or a program; do the same.
pub fn os_string(s: &str) -> OsString {
    if !s.contains('\0') {
        return OsString::from(s);
    }
    let mut bytes = Vec::with_capacity(s.len() + 1);
    for b in s.bytes() {
        if b == 0 {
            bytes.extend_from_slice(&[0xC0, 0x80]);
        } else {
            bytes.push(b);
        }
    }
    OsString::from_vec(bytes)
}

/// Where one output stream of the child goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// `/dev/null`.
    Null,
    /// A pipe the agent reads.
    Pipe,
}

/// What to start.
#[derive(Debug)]
pub struct Spawn<'a> {
    /// The program: a path, or a name searched in `PATH` (the child's `PATH` when `env`
    /// sets one).
    pub program: &'a str,
    /// argv[1..].
    pub args: &'a [String],
    /// The child's whole environment (`NAME=value`), or `None` to inherit the agent's.
    pub env: Option<&'a [String]>,
    /// Give the child a pipe on stdin (otherwise `/dev/null`).
    pub stdin_pipe: bool,
    /// Standard output.
    pub stdout: Sink,
    /// Standard error.
    pub stderr: Sink,
    /// Send standard error into the standard output pipe.
    pub merge_stderr: bool,
}

/// A started child and the agent's ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    /// The child (wait on it to reap it).
    pub child: Child,
    /// Write end of its stdin.
    pub stdin: Option<ChildStdin>,
    /// Read end of its stdout (or of stdout and stderr merged).
    pub stdout: Option<io::PipeReader>,
    /// Read end of its stderr.
    pub stderr: Option<io::PipeReader>,
}

fn to_pipe_reader<T: Into<std::os::fd::OwnedFd>>(end: Option<T>) -> Option<io::PipeReader> {
    end.map(|e| io::PipeReader::from(e.into()))
}

/// An account to run a process as, resolved from the password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The account name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Every group of the account (`getgrouplist`), the primary one included.
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: std::path::PathBuf,
    /// Login shell.
    pub shell: std::path::PathBuf,
}

/// Why an account could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum RunAsError {
    /// No such account (name or number).
    #[error("no such user '{0}'")]
    NoSuchUser(String),
    /// The password or group database failed.
    #[error("cannot look up user '{0}': {1}")]
    Lookup(String, nix::Error),
}

/// Resolves `user`: an account name, or a number taken as a uid.
pub fn run_as(user: &str) -> Result<RunAs, RunAsError> {
    use nix::unistd::{Gid, Uid, User, getgrouplist};
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    }
    .map_err(|e| RunAsError::Lookup(user.to_string(), e))?
    .ok_or_else(|| RunAsError::NoSuchUser(user.to_string()))?;
    let cname = std::ffi::CString::new(found.name.clone())
        .map_err(|_| RunAsError::NoSuchUser(user.to_string()))?;
    let groups = getgrouplist(&cname, Gid::from_raw(found.gid.as_raw()))
        .map_err(|e| RunAsError::Lookup(user.to_string(), e))?;
    Ok(RunAs {
        name: found.name,
        uid: found.uid.as_raw(),
        gid: found.gid.as_raw(),
        groups: groups.iter().map(|g| g.as_raw()).collect(),
        home: found.dir,
        shell: found.shell,
    })
}

/// What `__org.qga_exec` adds to a start: all optional.
#[derive(Debug, Default)]
pub struct SpawnExtra<'a> {
    /// Working directory of the child.
    pub cwd: Option<&'a std::path::Path>,
    /// Run as this account (groups, gid, then uid are set in the child before exec; with an
    /// inherited environment `HOME`, `USER`, `LOGNAME` and `SHELL` are the account's).
    pub user: Option<&'a RunAs>,
    /// Put the child in a new process group of its own (its pid is the group id), so a
    /// signal can reach everything it starts.
    pub new_process_group: bool,
}

/// Starts the process.
pub fn spawn(spec: &Spawn<'_>) -> io::Result<Spawned> {
    spawn_with(spec, &SpawnExtra::default())
}

/// Starts the process with the extra settings of `extra`.
pub fn spawn_with(spec: &Spawn<'_>, extra: &SpawnExtra<'_>) -> io::Result<Spawned> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(os_string(spec.program));
    cmd.args(spec.args.iter().map(|a| os_string(a)));
    if let Some(env) = spec.env {
        cmd.env_clear();
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            cmd.env(os_string(k), os_string(v));
        }
    }
    if let Some(dir) = extra.cwd {
        cmd.current_dir(dir);
    }
    if extra.new_process_group {
        cmd.process_group(0);
    }
    if let Some(user) = extra.user {
        if spec.env.is_none() {
            cmd.env("HOME", &user.home)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name)
                .env("SHELL", &user.shell);
        }
        let groups: Vec<libc::gid_t> = user.groups.clone();
        let (uid, gid) = (user.uid, user.gid);
        // SAFETY: the closure runs in the child between fork and exec and only makes the
        // async-signal-safe system calls setgroups, setgid and setuid on data prepared
        // before the fork (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd.stdin(if spec.stdin_pipe {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut merged_reader = None;
    if spec.merge_stderr {
        let (reader, writer) = io::pipe()?;
        cmd.stdout(writer.try_clone()?);
        cmd.stderr(writer);
        merged_reader = Some(reader);
    } else {
        cmd.stdout(if spec.stdout == Sink::Pipe {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stderr(if spec.stderr == Sink::Pipe {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    }
    let mut child = cmd.spawn()?;
    // The command (holding the parent's copies of the merged pipe's write end) must be
    // gone, or the reader would never see end-of-file.
    drop(cmd);
    let stdin = child.stdin.take();
    let stdout: Option<ChildStdout> = child.stdout.take();
    let stderr: Option<ChildStderr> = child.stderr.take();
    Ok(Spawned {
        child,
        stdin,
        stdout: merged_reader.or_else(|| to_pipe_reader(stdout)),
        stderr: to_pipe_reader(stderr),
    })
}

/// Sends signal `signo` to process `pid`, or to its process group when `group` is set.
pub fn send_signal(pid: i32, signo: i32, group: bool) -> io::Result<()> {
    let sig = nix::sys::signal::Signal::try_from(signo).map_err(io::Error::from)?;
    let target = nix::unistd::Pid::from_raw(if group { -pid } else { pid });
    nix::sys::signal::kill(target, sig).map_err(io::Error::from)
}

/// One of a child's captured output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (or both, merged).
    Out,
    /// Standard error.
    Err,
}

/// What [`watch`] reports.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// Output read from a stream.
    Data(Stream, &'a [u8]),
    /// A stream reached end of file (or failed): nothing more comes from it.
    Eof(Stream),
    /// The child has exited: reap it now (waiting on it does not block).
    Exited,
}

/// A descriptor that becomes readable when `child` exits (`pidfd_open`, Linux 5.3); an
/// error where the kernel (or a seccomp filter) does not offer one.
pub fn exit_fd(child: &Child) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new descriptor or -1; it
    // touches no memory of ours. The child is not reaped yet (we hold it), so the pid is
    // still its own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: `fd` was just returned by pidfd_open: a valid descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Follows a child's captured streams and its exit from one thread (instead of one thread
/// per stream and one to wait): reports each piece of output, each stream's end and the exit
/// through `event` until both streams have ended and the child has exited.
pub fn watch(
    out: Option<io::PipeReader>,
    err: Option<io::PipeReader>,
    exited: std::os::fd::OwnedFd,
    event: &mut dyn FnMut(Event<'_>),
) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::Read;
    use std::os::fd::AsFd;

    type Streams = [(Stream, Option<io::PipeReader>); 2];
    let mut streams: Streams = [(Stream::Out, out), (Stream::Err, err)];
    let mut exit = Some(exited);
    let mut buf = vec![0u8; 64 * 1024];
    // Polls the open streams (and the exit descriptor, if given) for `timeout`, reads once
    // from each ready stream; returns whether any stream was ready and whether the exit was.
    let mut step = |streams: &mut Streams,
                    exit: Option<&std::os::fd::OwnedFd>,
                    timeout: PollTimeout,
                    event: &mut dyn FnMut(Event<'_>)|
     -> (bool, bool) {
        let open: Vec<usize> = (0..2).filter(|&i| streams[i].1.is_some()).collect();
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .filter_map(|&i| streams[i].1.as_ref())
            .map(|p| PollFd::new(p.as_fd(), PollFlags::POLLIN))
            .collect();
        if let Some(e) = exit {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return (true, false),
            Err(_) => {
                // Cannot happen with valid descriptors; try again a little later.
                std::thread::sleep(std::time::Duration::from_millis(10));
                return (true, false);
            }
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(true)).collect();
        drop(fds);
        let mut any = false;
        for (k, &i) in open.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            any = true;
            let (which, pipe) = &mut streams[i];
            let Some(p) = pipe.as_mut() else { continue };
            match p.read(&mut buf) {
                Ok(0) => {
                    *pipe = None;
                    event(Event::Eof(*which));
                }
                Ok(n) => event(Event::Data(*which, &buf[..n])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    *pipe = None;
                    event(Event::Eof(*which));
                }
            }
        }
        (any, exit.is_some() && ready.last() == Some(&true))
    };
    loop {
        if streams.iter().all(|s| s.1.is_none()) && exit.is_none() {
            return;
        }
        let (_, exited) = step(&mut streams, exit.as_ref(), PollTimeout::NONE, event);
        if exited {
            // What the child wrote before it exited is read before the exit is reported
            // (exit-on-main reports the exit with the output so far); bounded, for a
            // descendant that goes on writing: at most a stream cap's worth of reads.
            let mut rounds = 0;
            while rounds < 256
                && streams.iter().any(|s| s.1.is_some())
                && step(&mut streams, None, PollTimeout::ZERO, event).0
            {
                rounds += 1;
            }
            exit = None;
            event(Event::Exited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// `sh -c script` with its stdout in a pipe and stderr where `stderr` says.
    fn shell(script: &str, stderr: Sink) -> Spawned {
        let args = ["-c".to_string(), script.to_string()];
        spawn(&Spawn {
            program: "/bin/sh",
            args: &args,
            env: None,
            stdin_pipe: false,
            stdout: Sink::Pipe,
            stderr,
            merge_stderr: false,
        })
        .unwrap()
    }

    fn watched(script: &str) -> (Vec<String>, Vec<u8>, Vec<u8>, Option<i32>) {
        let mut s = shell(script, Sink::Pipe);
        let exited = exit_fd(&s.child).expect("pidfd_open (Linux 5.3+)");
        let (mut order, mut out, mut err, mut code) = (Vec::new(), Vec::new(), Vec::new(), None);
        watch(
            s.stdout.take(),
            s.stderr.take(),
            exited,
            &mut |ev| match ev {
                Event::Data(Stream::Out, b) => out.extend_from_slice(b),
                Event::Data(Stream::Err, b) => err.extend_from_slice(b),
                Event::Eof(which) => order.push(format!("eof {which:?}")),
                Event::Exited => {
                    order.push("exited".into());
                    code = s.child.wait().unwrap().code();
                }
            },
        );
        (order, out, err, code)
    }

    #[test]
    fn test_watch_reports_output_ends_and_exit() {
        let (order, out, err, code) = watched("echo out; echo err >&2; exit 3");
        assert_eq!(
            (out.as_slice(), err.as_slice(), code),
            (&b"out\n"[..], &b"err\n"[..], Some(3))
        );
        assert_eq!(order.len(), 3, "{order:?}");
        assert!(order.contains(&"exited".to_string()), "{order:?}");
    }

    #[test]
    fn test_watch_reads_what_was_written_before_the_exit_first() {
        // 200 KB written, then the exit: every byte is reported before the exit.
        for _ in 0..10 {
            let mut s = shell("head -c 200000 /dev/zero; sleep 0.2 &", Sink::Null);
            let exited = exit_fd(&s.child).unwrap();
            let mut before_exit = None;
            let mut out = 0;
            watch(s.stdout.take(), None, exited, &mut |ev| match ev {
                Event::Data(_, b) => out += b.len(),
                Event::Exited => {
                    before_exit = Some(out);
                    s.child.wait().unwrap();
                }
                Event::Eof(_) => {}
            });
            assert_eq!(before_exit, Some(200_000));
        }
    }

    #[test]
    fn test_watch_sees_the_exit_while_a_grandchild_holds_the_pipes() {
        // The shell exits at once; its background child keeps both pipes for 0.3 s.
        let (order, out, _, code) = watched("(sleep 0.3; echo late) & exit 0");
        assert_eq!(
            order.first().map(String::as_str),
            Some("exited"),
            "{order:?}"
        );
        assert_eq!((out.as_slice(), code), (&b"late\n"[..], Some(0)));
    }

    fn run(spec: &Spawn<'_>) -> (Vec<u8>, Vec<u8>, Option<i32>) {
        let mut s = spawn(spec).unwrap();
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(mut o) = s.stdout.take() {
            o.read_to_end(&mut out).unwrap();
        }
        if let Some(mut e) = s.stderr.take() {
            e.read_to_end(&mut err).unwrap();
        }
        let status = s.child.wait().unwrap();
        (out, err, status.code())
    }

    #[test]
    fn test_spawn_merged_output_reaches_eof() {
        let args = [
            "-c".to_string(),
            "echo out; echo err >&2; exit 3".to_string(),
        ];
        let spec = Spawn {
            program: "sh",
            args: &args,
            env: None,
            stdin_pipe: false,
            stdout: Sink::Pipe,
            stderr: Sink::Pipe,
            merge_stderr: true,
        };
        let (out, err, code) = run(&spec);
        assert_eq!(out, b"out\nerr\n");
        assert!(err.is_empty());
        assert_eq!(code, Some(3));
    }

    #[test]
    fn test_spawn_empty_env_and_path_from_env() {
        let args = ["-c".to_string(), "env".to_string()];
        let env = ["PATH=/usr/bin:/bin".to_string(), "FOO=bar".to_string()];
        let spec = Spawn {
            program: "sh",
            args: &args,
            env: Some(&env),
            stdin_pipe: false,
            stdout: Sink::Pipe,
            stderr: Sink::Null,
            merge_stderr: false,
        };
        let (out, _, code) = run(&spec);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("FOO=bar"), "{text}");
        assert_eq!(code, Some(0));
    }

    #[test]
    fn test_os_string_maps_nul_to_modified_utf8() {
        assert_eq!(os_string("a\0b").into_vec(), b"a\xc0\x80b");
    }
}
