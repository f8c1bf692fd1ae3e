//! Running helper programs (shutdown, hwclock, chpasswd, systemctl, pm-utils) the way
//! qemu-ga does: in a new session, with stdout and stderr merged into one pipe whose text
//! ends up in the error message.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sysroot::strerror;

/// How a helper run by [`run_command`] ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// fork/pipe failed.
    #[error("failed to create child process: {}", strerror(.0))]
    Spawn(#[source] io::Error),
    /// Writing the helper's standard input failed.
    #[error("{action}: cannot write to stdin pipe: {}", strerror(source))]
    Stdin {
        /// What the helper was to do.
        action: String,
        /// The OS error.
        source: io::Error,
    },
    /// Reading the helper's output failed.
    #[error("{action}: cannot read from stdout/stderr pipe: {}", strerror(source))]
    Output {
        /// What the helper was to do.
        action: String,
        /// The OS error.
        source: io::Error,
    },
    /// waitpid failed.
    #[error("failed to wait for child (pid: {pid}): {}", strerror(source))]
    Wait {
        /// The child.
        pid: u32,
        /// The OS error.
        source: io::Error,
    },
    /// Killed by a signal.
    #[error("child process has terminated abnormally{}", colon(output))]
    Abnormal {
        /// What it printed.
        output: String,
    },
    /// Exited with a non-zero status.
    #[error("child process has failed to {action}: {}", failure(output, *status))]
    Failed {
        /// What the helper was to do.
        action: String,
        /// Its exit status.
        status: i32,
        /// What it printed.
        output: String,
    },
}

fn colon(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(": {output}")
    }
}

fn failure(output: &str, status: i32) -> String {
    if output.is_empty() {
        format!("exit status {status}")
    } else {
        output.to_string()
    }
}

fn new_session(cmd: &mut Command) {
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Runs `argv` (searched in `PATH` when it has no `/`) with `input` on its standard input
/// (`/dev/null` without), waits for it and fails with qemu-ga's texts; `action` completes
/// "child process has failed to …". A program that cannot be executed is reported as
/// qemu-ga's child reports it: "failed to exec 'prog': No such file or directory\n".
pub fn run_command(argv: &[&str], input: Option<&[u8]>, action: &str) -> Result<(), HelperError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(HelperError::Spawn(io::Error::from_raw_os_error(
            libc::EINVAL,
        )));
    };
    let (reader, writer) = io::pipe().map_err(HelperError::Spawn)?;
    let writer2 = writer.try_clone().map_err(HelperError::Spawn)?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(writer)
        .stderr(writer2);
    new_session(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if !matches!(e.raw_os_error(), None | Some(libc::EAGAIN | libc::ENOMEM)) => {
            // The exec failed in the child: qemu-ga's child prints this and exits 1.
            drop(cmd);
            return Err(HelperError::Failed {
                action: action.to_string(),
                status: 1,
                output: format!("failed to exec '{prog}': {}\n", strerror(&e)),
            });
        }
        Err(e) => return Err(HelperError::Spawn(e)),
    };
    drop(cmd);
    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), input) {
        stdin.write_all(data).map_err(|source| HelperError::Stdin {
            action: action.to_string(),
            source,
        })?;
    }
    let mut output = Vec::new();
    let mut reader = reader;
    reader
        .read_to_end(&mut output)
        .map_err(|source| HelperError::Output {
            action: action.to_string(),
            source,
        })?;
    let pid = child.id();
    let status = child
        .wait()
        .map_err(|source| HelperError::Wait { pid, source })?;
    // The text stops at a NUL byte, as qemu-ga's C string does.
    let end = output.iter().position(|&b| b == 0).unwrap_or(output.len());
    let output = String::from_utf8_lossy(&output[..end]).into_owned();
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(HelperError::Failed {
            action: action.to_string(),
            status: code,
            output,
        }),
        None => Err(HelperError::Abnormal { output }),
    }
}

/// How [`run_quiet`] ended.
#[derive(Debug)]
pub enum QuietStatus {
    /// The exit status (`WEXITSTATUS`: 0 when killed by a signal, as GLib reports it).
    Exited(i32),
    /// The program does not exist.
    NotFound,
    /// It could not be started for another reason; the text is GLib's.
    SpawnFailed(String),
}

/// Runs `argv` searched in `PATH` with output to `/dev/null`, as qemu-ga's suspend code runs
/// `systemctl` and pm-utils (`g_spawn_sync`).
pub fn run_quiet(argv: &[&str]) -> QuietStatus {
    let Some((prog, args)) = argv.split_first() else {
        return QuietStatus::NotFound;
    };
    match Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) => QuietStatus::Exited(s.code().unwrap_or_else(|| (s.into_raw() >> 8) & 0xff)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => QuietStatus::NotFound,
        Err(e) => QuietStatus::SpawnFailed(format!(
            "Failed to execute child process “{prog}” ({})",
            strerror(&e)
        )),
    }
}

/// Whether `path` is a file this process may execute (`access(X_OK)`).
pub fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok() && path.is_file()
}

/// Finds `name` in `PATH` (or the default path when `PATH` is unset).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_run_command_success_and_stdin() {
        run_command(&["true"], None, "x").unwrap();
        run_command(
            &["sh", "-c", "read a; test \"$a\" = hello"],
            Some(b"hello\n"),
            "x",
        )
        .unwrap();
    }

    #[test]
    fn test_run_command_failure_texts() {
        let e = run_command(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            None,
            "do it",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "child process has failed to do it: out\nerr\n"
        );
        let e = run_command(&["sh", "-c", "exit 4"], None, "shutdown");
        assert_eq!(
            e.unwrap_err().to_string(),
            "child process has failed to shutdown: exit status 4"
        );
        let e = run_command(
            &["/nonexistent/hwclock", "-w"],
            None,
            "set hardware clock to system time",
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "child process has failed to set hardware clock to system time: \
             failed to exec '/nonexistent/hwclock': No such file or directory\n"
        );
        let e = run_command(&["sh", "-c", "kill -9 $$"], None, "x");
        assert_eq!(
            e.unwrap_err().to_string(),
            "child process has terminated abnormally"
        );
    }

    #[test]
    fn test_run_command_runs_in_new_session() {
        let e = run_command(
            &[
                "sh",
                "-c",
                "set -- $(cat /proc/$$/stat); test \"$6\" -eq $$ || exit 9",
            ],
            None,
            "x",
        );
        assert!(e.is_ok(), "{e:?}");
    }

    #[test]
    fn test_run_quiet() {
        assert!(matches!(
            run_quiet(&["sh", "-c", "exit 3"]),
            QuietStatus::Exited(3)
        ));
        assert!(matches!(
            run_quiet(&["no-such-helper-qga"]),
            QuietStatus::NotFound
        ));
        assert!(matches!(run_quiet(&["/etc"]), QuietStatus::SpawnFailed(_)));
    }

    #[test]
    fn test_find_in_path() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-helper-qga").is_none());
        assert!(is_executable(Path::new("/bin/sh")));
        assert!(!is_executable(Path::new("/etc/passwd")));
    }
}
