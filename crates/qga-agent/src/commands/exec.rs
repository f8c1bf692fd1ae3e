//! guest-exec, guest-exec-status.

use std::os::unix::process::ExitStatusExt;

use qga_proto::b64;
use qga_schema::{
    ExecArgs, ExecStatusArgs, GuestExec, GuestExecCaptureOutputMode as Mode, GuestExecStatus, files,
};
use qga_sys::exec::{Sink, Spawn};

use crate::agent::Agent;
use crate::error::{CommandError, strerror};
use crate::exec_table::{Capture, Status};
use crate::registry::Handle;

impl Handle for GuestExec {
    fn handle(agent: &mut Agent, args: ExecArgs) -> Result<files::GuestExec, CommandError> {
        let input = match &args.input_data {
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
            program: &args.path,
            args: args.arg.as_deref().unwrap_or(&[]),
            env: args.env.as_deref(),
            stdin_pipe: input.is_some(),
            stdout: pipe(matches!(
                mode,
                Mode::Stdout | Mode::Separated | Mode::Merged
            )),
            stderr: pipe(matches!(mode, Mode::Stderr | Mode::Separated)),
            merge_stderr: mode == Mode::Merged,
        };
        // GLib's wording, which qemu-ga passes on.
        let spawned = qga_sys::exec::spawn(&spec).map_err(|e| {
            CommandError::Failed(format!(
                "Failed to execute child process \u{201c}{}\u{201d} ({})",
                args.path,
                strerror(&e)
            ))
        })?;
        let pid = agent
            .execs
            .add(spawned, input)
            .map_err(|e| CommandError::Failed(strerror(&e)))?;
        Ok(files::GuestExec { pid })
    }

    fn audit(args: &ExecArgs) -> Option<String> {
        Some(format!("guest-exec called: \"{}\"", args.path))
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
