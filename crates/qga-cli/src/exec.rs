//! `qga exec`: a command in the guest. With the `__org.qga_exec` extensions (this project's
//! agent) its output is shown as it arrives, the time limit is enforced by the agent and
//! Ctrl-C reaches the guest process; with qemu-ga it runs through guest-exec and its output
//! is shown when it ends.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qga_proto::b64;
use qga_schema as s;

use crate::guest::{EXEC, EXEC_OUTPUT, EXEC_SIGNAL, Features, exit_code};
use crate::{Conn, Failure, read_input, to_json};

/// What `qga exec` was asked to do.
#[derive(Debug)]
pub(crate) struct ExecSpec<'a> {
    /// Standard input: a file, or `-` for qga's own.
    pub(crate) stdin: Option<&'a PathBuf>,
    /// Time limit in seconds.
    pub(crate) timeout: Option<u64>,
    /// Signal sent at the time limit (name or number).
    pub(crate) signal: Option<&'a str>,
    /// Print the pid and return.
    pub(crate) detach: bool,
    /// `NAME=VALUE` environment.
    pub(crate) env: &'a [String],
    /// Working directory.
    pub(crate) cwd: Option<&'a str>,
    /// Account to run as.
    pub(crate) user: Option<&'a str>,
    /// Report the exit once the started process has exited.
    pub(crate) exit_on_main: bool,
    /// The command and its arguments.
    pub(crate) argv: &'a [String],
}

/// Signal names whose numbers are the same on every Linux architecture.
const SIGNALS: &[(&str, i64)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ABRT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
];

/// A signal number from `TERM`, `SIGTERM`, `term` or `15`.
pub(crate) fn signal_number(text: &str) -> Result<i64, Failure> {
    if let Ok(n) = text.parse::<i64>()
        && (1..=64).contains(&n)
    {
        return Ok(n);
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, n)| n)
        .ok_or_else(|| {
            let names: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
            Failure(format!(
                "'{text}' is not a signal: give a number (1-64) or one of {}",
                names.join(", ")
            ))
        })
}

/// Set by SIGINT/SIGTERM while a live command runs.
static STOP: AtomicBool = AtomicBool::new(false);

/// Runs a command in the guest; returns the text to print and qga's exit code. `live`
/// allows showing output as it arrives (one guest, human output).
pub(crate) fn exec(
    j: bool,
    live: bool,
    c: &mut Conn,
    spec: &ExecSpec<'_>,
) -> Result<(String, u8), Failure> {
    let input = match spec.stdin {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(b64::encode(&read_input("-")?)),
        Some(p) => Some(b64::encode(
            &std::fs::read(p).map_err(|e| Failure(format!("{}: {e}", p.display())))?,
        )),
    };
    let (path, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| Failure("no command given".into()))?;
    let kill_signal = spec.signal.map(signal_number).transpose()?;
    let features = Features::probe(c)?;
    let ext = features.has(EXEC);
    let env = (!spec.env.is_empty()).then(|| spec.env.to_vec());
    let capture = Some(s::GuestExecCaptureOutput::Flag(true));
    let pid = if ext {
        let timeout = spec
            .timeout
            .map(|t| i64::try_from(t.max(1)).unwrap_or(i64::MAX));
        c.execute::<s::OrgQgaExec>(&s::ext::ExecArgs {
            path: path.clone(),
            arg: Some(args.to_vec()),
            env,
            input_data: input,
            capture_output: capture,
            cwd: spec.cwd.map(str::to_string),
            user: spec.user.map(str::to_string),
            timeout,
            kill_signal: kill_signal.filter(|_| timeout.is_some()),
            exit_on_main: spec.exit_on_main.then_some(true),
        })?
        .pid
    } else {
        let lacking = |opt: &str, instead: &str| {
            Failure(format!(
                "{opt} needs {EXEC}; {}{instead}",
                features.lacks(EXEC)
            ))
        };
        if spec.user.is_some() {
            return Err(lacking(
                "--user",
                "; run the command through the guest's own tool instead, \
                 e.g. qga exec -- runuser -u USER -- CMD",
            ));
        }
        if spec.exit_on_main {
            return Err(lacking("--exit-on-main", ""));
        }
        if kill_signal.is_some() {
            return Err(lacking(
                "--signal",
                " (without it qga can only stop waiting at --timeout; the command keeps running)",
            ));
        }
        // The working directory is set by a shell in the guest, which then becomes the
        // command (`exec`), so exit code, signals and output are the command's.
        let (path, arg) = match spec.cwd {
            Some(dir) => {
                let mut a: Vec<String> = ["-c", "cd -- \"$1\" && shift && exec \"$@\"", "sh", dir]
                    .map(String::from)
                    .to_vec();
                a.extend(spec.argv.iter().cloned());
                ("sh".to_string(), a)
            }
            None => (path.clone(), args.to_vec()),
        };
        c.execute::<s::GuestExec>(&s::ExecArgs {
            path,
            arg: Some(arg),
            env,
            input_data: input,
            capture_output: capture,
        })?
        .pid
    };
    if spec.detach {
        return Ok((
            if j {
                format!("{{\"pid\": {pid}}}")
            } else {
                pid.to_string()
            },
            0,
        ));
    }
    if live && !j && ext && features.has(EXEC_OUTPUT) {
        return follow(c, pid, spec, features.has(EXEC_SIGNAL)).map(|code| (String::new(), code));
    }
    // The agent enforces the time limit of an extension process; waiting for it is enough.
    let give_up = spec.timeout.filter(|_| !ext);
    wait(j, c, pid, give_up)
}

/// A process's exit as qga's exit code (the low 8 bits, as a shell sees them).
fn code_u8(code: i64) -> u8 {
    u8::try_from(code & 0xFF).unwrap_or(1)
}

/// Polls guest-exec-status until the process ends; its output is printed then.
fn wait(j: bool, c: &mut Conn, pid: i64, give_up: Option<u64>) -> Result<(String, u8), Failure> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        let st = c.execute::<s::GuestExecStatus>(&s::ExecStatusArgs { pid })?;
        if st.exited {
            let decode = |d: &Option<String>| {
                d.as_deref()
                    .map(b64::decode)
                    .transpose()
                    .map_err(|e| Failure(e.to_string()))
            };
            let out = decode(&st.out_data)?.unwrap_or_default();
            let err = decode(&st.err_data)?.unwrap_or_default();
            if j {
                return Ok((to_json(&st), 0));
            }
            std::io::stderr()
                .write_all(&err)
                .map_err(|e| Failure(e.to_string()))?;
            return Ok((
                String::from_utf8_lossy(&out)
                    .trim_end_matches('\n')
                    .to_string(),
                code_u8(exit_code(st.exitcode, st.signal)),
            ));
        }
        if give_up.is_some_and(|t| start.elapsed() > Duration::from_secs(t)) {
            return Err(Failure(format!(
                "timed out: process {pid} still runs in the guest (see `qga exec-status {pid}`; \
                 the agent has no {EXEC} to stop it)"
            )));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// How long output is still taken after an `--exit-on-main` exit.
const SETTLE: Duration = Duration::from_millis(300);

/// How long after forwarding Ctrl-C qga waits for the process to end before leaving.
const GRACE: Duration = Duration::from_secs(3);

/// Shows a process's output as it arrives (`__org.qga_exec-output` by offset) until it
/// ends and both streams are closed; returns its exit code. SIGINT and SIGTERM are sent on
/// to the guest process.
fn follow(c: &mut Conn, pid: i64, spec: &ExecSpec<'_>, can_signal: bool) -> Result<u8, Failure> {
    if can_signal {
        qga_sys::process::install_signal_flag(&STOP).map_err(|e| Failure(e.to_string()))?;
    }
    let mut args = s::ext::ExecOutputArgs {
        pid,
        out_offset: Some(0),
        err_offset: Some(0),
        max_bytes: None,
    };
    let mut forwarded: Option<(i64, Instant)> = None;
    let mut delay = Duration::from_millis(5);
    let mut broken_pipe = false;
    let mut truncated = false;
    // Output that does not end a line gets a newline at the end, as qga always printed it.
    let mut ends_line = true;
    let mut exit_seen: Option<Instant> = None;
    loop {
        if forwarded.is_none() && (STOP.load(Ordering::SeqCst) || broken_pipe) {
            let sig = if broken_pipe {
                13
            } else {
                qga_sys::process::last_signal().map_or(2, i64::from)
            };
            // The process may have ended meanwhile; that is what the next poll shows.
            let _ = c.execute::<s::OrgQgaExecSignal>(&s::ext::ExecSignalArgs { pid, signal: sig });
            forwarded = Some((sig, Instant::now()));
        }
        let o = c.execute::<s::OrgQgaExecOutput>(&args)?;
        let out = b64::decode(&o.out_data).map_err(|e| Failure(e.to_string()))?;
        let err = b64::decode(&o.err_data).map_err(|e| Failure(e.to_string()))?;
        if !out.is_empty() && !broken_pipe {
            let mut so = std::io::stdout().lock();
            broken_pipe = so.write_all(&out).and_then(|()| so.flush()).is_err();
            ends_line = out.ends_with(b"\n");
        }
        if !err.is_empty() {
            let mut se = std::io::stderr().lock();
            let _ = se.write_all(&err).and_then(|()| se.flush());
        }
        truncated |= o.out_truncated || o.err_truncated;
        let got = !out.is_empty() || !err.is_empty();
        args.out_offset = Some(o.out_offset);
        args.err_offset = Some(o.err_offset);
        // With --exit-on-main the pipes may stay open (a process left behind holds them): the
        // output the command wrote before it exited is taken until a poll brings nothing
        // after a short settling time, which covers the agent's reader lagging behind.
        if o.exited && exit_seen.is_none() {
            exit_seen = Some(Instant::now());
        }
        let closed = !o.out_open && !o.err_open;
        let settled = spec.exit_on_main && exit_seen.is_some_and(|t| t.elapsed() > SETTLE);
        if o.exited && !got && (closed || settled) {
            // The record is collected so it does not stay in the agent's table.
            let _ = c.execute::<s::GuestExecStatus>(&s::ExecStatusArgs { pid });
            if !ends_line && !broken_pipe {
                let _ = std::io::stdout().write_all(b"\n");
            }
            if truncated {
                eprintln!("qga: the output was cut at the agent's capture limit");
            }
            if o.timed_out {
                eprintln!(
                    "qga: the time limit of {} s was reached; the agent sent signal {} to the process",
                    spec.timeout.unwrap_or_default(),
                    spec.signal.unwrap_or("9 (KILL)")
                );
            }
            return Ok(code_u8(exit_code(o.exitcode, o.signal)));
        }
        if let Some((sig, when)) = forwarded
            && when.elapsed() > GRACE
        {
            eprintln!(
                "qga: signal {sig} was sent to process {pid}, which still runs in the guest \
                 (see `qga exec-status {pid}`)"
            );
            return Ok(code_u8(128 + sig));
        }
        if got {
            delay = Duration::from_millis(5);
        } else {
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_signal_names_and_numbers() {
        assert_eq!(signal_number("TERM").unwrap(), 15);
        assert_eq!(signal_number("sigint").unwrap(), 2);
        assert_eq!(signal_number("10").unwrap(), 10);
        assert!(signal_number("USR1").is_err());
        assert!(signal_number("0").is_err());
        assert!(signal_number("65").is_err());
    }
}
