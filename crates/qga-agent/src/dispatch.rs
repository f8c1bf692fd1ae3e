//! From a frame to a reply: envelope checks, lookup in the command table, policy, audit
//! logging and the 0xFF delimiter, done here once for every command.

use qga_proto::{Frame, QgaError, Reply, parse_request};

use crate::agent::Agent;
use crate::registry;

/// Handles one frame from the channel; returns the reply to send back (none for a command
/// that does not reply on success).
pub fn dispatch(agent: &mut Agent, frame: Frame) -> Option<Reply> {
    let mut reply = match frame {
        Frame::Error(e) => Reply::err(&e, None),
        Frame::Message(msg) => match parse_request(msg) {
            Err(e) => Reply::err(&e.error, e.id),
            Ok(req) => {
                let id = req.id;
                match run(agent, &req.execute, req.arguments) {
                    Ok(Some(ret)) => Reply::ok(ret, id),
                    Ok(None) => return None,
                    Err(e) => Reply::err(&e, id),
                }
            }
        },
    };
    reply.delimited = std::mem::take(&mut agent.delimit_response);
    Some(reply)
}

fn run(
    agent: &mut Agent,
    name: &str,
    args: qga_proto::Dict,
) -> Result<Option<qga_proto::Value>, QgaError> {
    let Some(spec) = registry::find(name) else {
        return Err(QgaError::not_found(format!(
            "The command {name} has not been found"
        )));
    };
    crate::commands::freeze::refresh(agent);
    if !agent.policy.is_enabled(spec, agent.frozen) {
        return Err(QgaError::not_found(format!(
            "Command {name} has been disabled: the command is not allowed"
        )));
    }
    log::debug!("running command {name}");
    spec.run(agent, args).map_err(QgaError::from)
}
