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
                // Kept only when a cap is set, to answer an oversized reply with this id.
                let id_for_cap = (agent.max_reply > 0).then(|| id.clone()).flatten();
                let reply = match run(agent, &req.execute, req.arguments) {
                    Ok(Some(ret)) => Reply::ok(ret, id),
                    Ok(None) => return None,
                    Err(e) => Reply::err(&e, id),
                };
                cap_reply(agent.max_reply, reply, id_for_cap)
            }
        },
    };
    reply.delimited = std::mem::take(&mut agent.delimit_response);
    Some(reply)
}

/// Replaces a reply longer than `cap` bytes (0: no cap) by a GenericError: libvirt drops the
/// whole channel on a reply over 10 MiB, so a host can set `max-reply-size` to get an error
/// instead. The id is kept when it is small enough for the error to stay under the cap.
fn cap_reply(cap: usize, reply: Reply, id: Option<qga_proto::Value>) -> Reply {
    // The hint can be short by the escapes of non-ASCII text (6 bytes for one): count
    // exactly when it is anywhere near the cap.
    if cap == 0 || reply.size_hint() < cap / 8 {
        return reply;
    }
    let len = reply.encoded_len();
    if len <= cap {
        return reply;
    }
    let err = QgaError::generic(format!(
        "reply of {len} bytes exceeds the limit of {cap} bytes (max-reply-size)"
    ));
    drop(reply);
    let with_id = Reply::err(&err, id);
    if with_id.encoded_len() <= cap {
        with_id
    } else {
        Reply::err(&err, None)
    }
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
