//! guest-exec, guest-exec-status, and the extensions `__org.qga_exec`,
//! `__org.qga_exec-output` and `__org.qga_exec-signal` (docs/extensions.md).

use std::os::unix::process::ExitStatusExt;

use qga_proto::b64;
use std::path::Path;
use std::time::Duration;

use qga_schema::{
    Empty, ExecArgs, ExecStatusArgs, GuestExec, GuestExecCaptureOutput,
    GuestExecCaptureOutputMode as Mode, GuestExecStatus, OrgQgaExec, OrgQgaExecOutput,
    OrgQgaExecSignal, ext, files,
};
use qga_sys::exec::{Sink, Spawn, SpawnExtra};

use crate::agent::Agent;
use crate::error::{CommandError, strerror};
use crate::exec_table::{Capture, Options, Status};
use crate::registry::Handle;

/// What both guest-exec and `__org.qga_exec` take.
struct Start<'a> {
    path: &'a str,
    arg: Option<&'a [String]>,
    env: Option<&'a [String]>,
    input_data: Option<&'a str>,
    capture_output: Option<GuestExecCaptureOutput>,
}

/// Starts a process and registers it (guest-exec's behaviour and error texts).
fn start(
    agent: &Agent,
    args: &Start<'_>,
    extra: &SpawnExtra<'_>,
    options: Options,
) -> Result<files::GuestExec, CommandError> {
    let input = match args.input_data {
        Some(text) => Some(b64::decode(text).map_err(|e| CommandError::Failed(e.to_string()))?),
        None => None,
    };
    agent
        .execs
        .check_room()
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let mode = args.capture_output.map_or(Mode::None, |c| c.mode());
    let pipe = |yes: bool| if yes { Sink::Pipe } else { Sink::Null };
    let spec = Spawn {
        program: args.path,
        args: args.arg.unwrap_or(&[]),
        env: args.env,
        stdin_pipe: input.is_some(),
        stdout: pipe(matches!(
            mode,
            Mode::Stdout | Mode::Separated | Mode::Merged
        )),
        stderr: pipe(matches!(mode, Mode::Stderr | Mode::Separated)),
        merge_stderr: mode == Mode::Merged,
    };
    // GLib's wording, which qemu-ga passes on.
    let spawned = qga_sys::exec::spawn_with(&spec, extra).map_err(|e| {
        CommandError::Failed(format!(
            "Failed to execute child process \u{201c}{}\u{201d} ({})",
            args.path,
            strerror(&e)
        ))
    })?;
    let pid = agent
        .execs
        .add(spawned, input, options)
        .map_err(|e| CommandError::Failed(strerror(&e)))?;
    Ok(files::GuestExec { pid })
}

impl Handle for GuestExec {
    fn handle(agent: &mut Agent, args: ExecArgs) -> Result<files::GuestExec, CommandError> {
        let start_args = Start {
            path: &args.path,
            arg: args.arg.as_deref(),
            env: args.env.as_deref(),
            input_data: args.input_data.as_deref(),
            capture_output: args.capture_output,
        };
        start(
            agent,
            &start_args,
            &SpawnExtra::default(),
            Options::default(),
        )
    }

    fn audit(args: &ExecArgs) -> Option<String> {
        Some(format!("guest-exec called: \"{}\"", args.path))
    }
}

impl Handle for OrgQgaExec {
    fn handle(agent: &mut Agent, args: ext::ExecArgs) -> Result<files::GuestExec, CommandError> {
        let user = match &args.user {
            Some(u) => {
                Some(qga_sys::exec::run_as(u).map_err(|e| CommandError::Failed(e.to_string()))?)
            }
            None => None,
        };
        let timeout = match args.timeout {
            None => None,
            Some(t) if t > 0 => {
                let signo = args.kill_signal.unwrap_or(9);
                if !(1..=64).contains(&signo) {
                    return Err(CommandError::Failed(format!(
                        "kill-signal {signo} is not a signal number"
                    )));
                }
                Some((Duration::from_secs(t.unsigned_abs()), signo as i32))
            }
            Some(t) => {
                return Err(CommandError::Failed(format!(
                    "timeout {t} is not a positive number of seconds"
                )));
            }
        };
        let cwd = args.cwd.as_deref().map(qga_sys::exec::os_string);
        let extra = SpawnExtra {
            cwd: cwd.as_deref().map(Path::new),
            user: user.as_ref(),
            new_process_group: true,
        };
        let start_args = Start {
            path: &args.path,
            arg: args.arg.as_deref(),
            env: args.env.as_deref(),
            input_data: args.input_data.as_deref(),
            capture_output: args.capture_output,
        };
        let options = Options {
            exit_on_main: args.exit_on_main.unwrap_or(false),
            group: true,
            timeout,
        };
        start(agent, &start_args, &extra, options)
    }

    fn audit(args: &ext::ExecArgs) -> Option<String> {
        Some(format!(
            "__org.qga_exec called: \"{}\"{}",
            args.path,
            args.user
                .as_deref()
                .map(|u| format!(", user: {u}"))
                .unwrap_or_default()
        ))
    }
}

/// The largest (and default) slice of one stream `__org.qga_exec-output` returns.
const OUTPUT_SLICE_MAX: i64 = crate::exec_table::STREAM_CAP as i64;

fn offset(name: &str, v: Option<i64>) -> Result<usize, CommandError> {
    match v {
        None => Ok(0),
        Some(n) => usize::try_from(n).map_err(|_| {
            CommandError::Failed(format!("value '{n}' is invalid for argument {name}"))
        }),
    }
}

impl Handle for OrgQgaExecOutput {
    fn handle(
        agent: &mut Agent,
        args: ext::ExecOutputArgs,
    ) -> Result<ext::ExecOutput, CommandError> {
        let out_from = offset("out-offset", args.out_offset)?;
        let err_from = offset("err-offset", args.err_offset)?;
        let max = match args.max_bytes {
            None => OUTPUT_SLICE_MAX,
            Some(n) if (0..=OUTPUT_SLICE_MAX).contains(&n) => n,
            Some(n) => {
                return Err(CommandError::Failed(format!(
                    "value '{n}' is invalid for argument max-bytes"
                )));
            }
        };
        let o = agent
            .execs
            .output(
                args.pid,
                out_from,
                err_from,
                usize::try_from(max).unwrap_or(0),
            )
            .ok_or_else(|| CommandError::Failed(format!("PID {} does not exist", args.pid)))?;
        let at = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(ext::ExecOutput {
            exited: o.status.is_some(),
            exitcode: o.status.and_then(|s| s.code()).map(i64::from),
            signal: o.status.and_then(|s| s.signal()).map(i64::from),
            timed_out: o.timed_out,
            out_data: b64::encode(&o.out.data),
            out_offset: at(o.out.next),
            out_truncated: o.out.truncated,
            out_open: o.out.open,
            err_data: b64::encode(&o.err.data),
            err_offset: at(o.err.next),
            err_truncated: o.err.truncated,
            err_open: o.err.open,
        })
    }
}

impl Handle for OrgQgaExecSignal {
    fn handle(agent: &mut Agent, args: ext::ExecSignalArgs) -> Result<Empty, CommandError> {
        agent
            .execs
            .signal(args.pid, args.signal)
            .map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(Empty {})
    }

    fn audit(args: &ext::ExecSignalArgs) -> Option<String> {
        Some(format!(
            "__org.qga_exec-signal called, pid: {}, signal: {}",
            args.pid, args.signal
        ))
    }
}

fn encode(c: &Capture) -> (Option<String>, Option<bool>) {
    if c.data.is_empty() {
        (None, None)
    } else {
        (Some(b64::encode(&c.data)), Some(c.truncated))
    }
}

impl Handle for GuestExecStatus {
    fn handle(
        agent: &mut Agent,
        args: ExecStatusArgs,
    ) -> Result<files::GuestExecStatus, CommandError> {
        // qemu-ga 8.2+ prints "PID ld does not exist" (a broken format); we print the pid.
        let status = agent
            .execs
            .status(args.pid)
            .ok_or_else(|| CommandError::Failed(format!("PID {} does not exist", args.pid)))?;
        let Status::Exited { status, out, err } = status else {
            return Ok(files::GuestExecStatus {
                exited: false,
                ..Default::default()
            });
        };
        let (out_data, out_truncated) = encode(&out);
        let (err_data, err_truncated) = encode(&err);
        Ok(files::GuestExecStatus {
            exited: true,
            exitcode: status.code().map(i64::from),
            signal: status.signal().map(i64::from),
            out_data,
            err_data,
            out_truncated,
            err_truncated,
        })
    }

    fn audit(args: &ExecStatusArgs) -> Option<String> {
        Some(format!(
            "guest-exec-status called, pid: {}",
            args.pid as u32
        ))
    }
}
