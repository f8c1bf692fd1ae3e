//! Requests and replies: the `execute`/`arguments`/`id` envelope with QEMU's checks and
//! texts, and the one-line reply format.

use crate::error::QgaError;
use crate::value::{Dict, Value};
use crate::writer::{write_value, write_value_to};

/// A well-formed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The command name.
    pub execute: String,
    /// The arguments (empty when absent).
    pub arguments: Dict,
    /// The request's `id`, echoed in the reply.
    pub id: Option<Value>,
}

/// An envelope error, with the id to echo (QEMU echoes it when the request is an object).
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeError {
    /// The error to send.
    pub error: QgaError,
    /// The request's id, if it had one.
    pub id: Option<Value>,
}

/// The one argument whose value stays decoded when the parser decoded it (a long canonical
/// base64 string): guest-file-write's data, which its command takes as bytes.
pub const DECODED_ARGUMENT: &str = "buf-b64";

/// Turns every string the parser held decoded back into its text, except the top-level
/// argument [`DECODED_ARGUMENT`]: every other consumer sees exactly the text that arrived
/// (the canonical encoding of the bytes is that text).
fn keep_decoded_argument_only(msg: &mut Value) {
    fn to_text(v: &mut Value) {
        match v {
            Value::Bytes(b) => {
                let text = crate::b64::encode(b);
                *v = Value::Str(text);
            }
            Value::List(items) => items.iter_mut().for_each(to_text),
            Value::Dict(d) => d.entries.iter_mut().for_each(|(_, v)| to_text(v)),
            _ => {}
        }
    }
    let Value::Dict(d) = msg else {
        return to_text(msg);
    };
    for (name, v) in d.entries.iter_mut() {
        match (name.as_str(), v) {
            ("arguments", Value::Dict(args)) => {
                for (arg, v) in args.entries.iter_mut() {
                    if arg != DECODED_ARGUMENT || !matches!(v, Value::Bytes(_)) {
                        to_text(v);
                    }
                }
            }
            (_, v) => to_text(v),
        }
    }
}

/// Checks a parsed message and splits it into its members. Members are checked in the
/// order QEMU iterates them, so a request with several faults gets the same error.
pub fn parse_request(mut msg: Value) -> Result<Request, EnvelopeError> {
    keep_decoded_argument_only(&mut msg);
    let Value::Dict(mut dict) = msg else {
        return Err(EnvelopeError {
            error: QgaError::generic("QMP input must be a JSON object"),
            id: None,
        });
    };
    let id = dict.get("id").cloned();
    let fail = |desc: String, id: Option<Value>| {
        Err(EnvelopeError {
            error: QgaError::generic(desc),
            id,
        })
    };
    let mut has_execute = false;
    for (name, value) in dict.qdict_order() {
        match name.as_str() {
            "execute" => {
                if !matches!(value, Value::Str(_)) {
                    return fail(format!("QMP input member '{name}' must be a string"), id);
                }
                has_execute = true;
            }
            "arguments" => {
                if !matches!(value, Value::Dict(_)) {
                    return fail("QMP input member 'arguments' must be an object".into(), id);
                }
            }
            "id" => {}
            _ => return fail(format!("QMP input member '{name}' is unexpected"), id),
        }
    }
    if !has_execute {
        return fail("QMP input lacks member 'execute'".into(), id);
    }
    let Some(Value::Str(execute)) = dict.remove("execute") else {
        return fail("QMP input lacks member 'execute'".into(), id);
    };
    let arguments = match dict.remove("arguments") {
        Some(Value::Dict(d)) => d,
        _ => Dict::new(),
    };
    Ok(Request {
        execute,
        arguments,
        id,
    })
}

/// A reply ready to send: the envelope object, and whether the 0xFF delimiter precedes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Whether the line starts with 0xFF (after guest-sync-delimited).
    pub delimited: bool,
    /// `{"return": …}` or `{"error": …}`, with the id if any.
    pub body: Value,
}

impl Reply {
    /// `{"return": ret}` plus the id.
    pub fn ok(ret: Value, id: Option<Value>) -> Reply {
        Reply::envelope("return", ret, id)
    }

    /// `{"error": {"class", "desc"}}` plus the id.
    pub fn err(err: &QgaError, id: Option<Value>) -> Reply {
        let mut e = Dict::new();
        e.insert("class", Value::Str(err.class.as_str().to_string()));
        e.insert("desc", Value::Str(err.desc.clone()));
        Reply::envelope("error", Value::Dict(e), id)
    }

    fn envelope(key: &str, body: Value, id: Option<Value>) -> Reply {
        let mut rsp = Dict::new();
        rsp.insert(key, body);
        if let Some(id) = id {
            rsp.insert("id", id);
        }
        Reply {
            delimited: false,
            body: Value::Dict(rsp),
        }
    }

    fn prefix(&self) -> &'static [u8] {
        if self.delimited { b"\xff" } else { b"" }
    }

    /// About the length of the line (more when non-ASCII text is escaped).
    pub fn size_hint(&self) -> usize {
        2 + self.body.size_hint()
    }

    /// The exact length of the line, `\n` and delimiter included, without building it (a
    /// streamed member is counted, not read).
    pub fn encoded_len(&self) -> usize {
        self.prefix().len() + crate::writer::value_len(&self.body) + 1
    }

    /// Appends the line, `\n`-terminated, to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.size_hint());
        out.extend_from_slice(self.prefix());
        write_value(out, &self.body);
        out.push(b'\n');
    }

    /// The line as bytes, `\n`-terminated.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.append_to(&mut out);
        out
    }

    /// Writes the line to `w`: in one write when small, else streamed through a bounded
    /// buffer (binary data is encoded as it goes out).
    pub fn write_to(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        write_value_to(w, self.prefix(), &self.body, b"\n")
    }
}

/// A reply line: `{"return": ret}` plus the id, `\n`-terminated.
pub fn reply_ok(ret: Value, id: Option<Value>) -> Vec<u8> {
    Reply::ok(ret, id).to_bytes()
}

/// An error reply line: `{"error": {"class", "desc"}}` plus the id, `\n`-terminated.
pub fn reply_err(err: &QgaError, id: Option<Value>) -> Vec<u8> {
    Reply::err(err, id).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framer::{Frame, Framer};

    fn req(text: &str) -> Result<Request, EnvelopeError> {
        match Framer::new().feed_collect(text.as_bytes()).pop() {
            Some(Frame::Message(v)) => parse_request(v),
            other => panic!("{other:?}"),
        }
    }

    fn err(text: &str) -> String {
        let e = req(text).unwrap_err();
        String::from_utf8(reply_err(&e.error, e.id)).unwrap()
    }

    #[test]
    fn test_envelope_errors_exact_text() {
        assert_eq!(
            err("[]"),
            "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\n"
        );
        assert_eq!(
            err("{\"id\": 1}"),
            "{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}}\n"
        );
        assert!(err("{\"execute\": 1}").contains("QMP input member 'execute' must be a string"));
        assert!(
            err("{\"execute\": \"x\", \"arguments\": []}")
                .contains("QMP input member 'arguments' must be an object")
        );
        assert!(
            err("{\"execute\": \"x\", \"exec-oob\": 1}")
                .contains("QMP input member 'exec-oob' is unexpected")
        );
        assert!(err("{\"execute\": \"x\", \"\": 1}").contains("QMP input member '' is unexpected"));
    }

    #[test]
    fn test_reply_ok_with_id() {
        let r = req("{'execute':'guest-ping','id':'a'}").unwrap();
        assert_eq!(r.execute, "guest-ping");
        assert_eq!(
            reply_ok(Value::Dict(Dict::new()), r.id),
            b"{\"return\": {}, \"id\": \"a\"}\n"
        );
    }
}
