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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

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
