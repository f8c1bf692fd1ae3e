//! One conversation over a byte stream: frames in, replies out, strictly in order.

use std::io::{self, Write};

use qga_proto::{Frame, Framer, Value};

use crate::agent::Agent;
use crate::dispatch::dispatch;

/// Replies of one read are gathered up to this size and sent with one write.
const GATHER_LIMIT: usize = 64 * 1024;

/// Commands that answer at once from memory: their replies are gathered with the others of
/// the same read. Before any other command runs, the replies gathered so far are sent, so a
/// slow command (a freeze hook, a shutdown) never holds back the answers to earlier requests.
const GATHERED: &[&str] = &[
    "guest-sync",
    "guest-sync-delimited",
    "guest-ping",
    "guest-info",
];

/// The parser state of one channel (kept across reconnects on virtio-serial, fresh for
/// each client of a listening socket).
#[derive(Debug, Default)]
pub struct Session {
    framer: Framer,
    /// Replies not sent yet (empty between calls of [`Session::feed`]).
    pending: Vec<u8>,
}

/// Whether `frame` is answered at once: a malformed message or a [`GATHERED`] command.
fn answered_at_once(frame: &Frame) -> bool {
    match frame {
        Frame::Error(_) => true,
        Frame::Message(Value::Dict(msg)) => {
            matches!(msg.get("execute"), Some(Value::Str(name)) if GATHERED.contains(&name.as_str()))
        }
        Frame::Message(_) => true,
    }
}

impl Session {
    /// A session at the start of a stream.
    pub fn new() -> Session {
        Session::default()
    }

    /// Handles the bytes just read: every request they complete is run in order, and its
    /// reply is written to `out` before this returns (replies of quick commands are gathered
    /// into one write; see [`GATHERED`]).
    pub fn feed(
        &mut self,
        agent: &mut Agent,
        bytes: &[u8],
        out: &mut impl Write,
    ) -> io::Result<()> {
        let mut result = Ok(());
        self.framer.set_limits(agent.wire_limits);
        let pending = &mut self.pending;
        self.framer.feed(bytes, &mut |frame| {
            if result.is_err() {
                // The channel failed: the requests still run, their replies are dropped.
                dispatch(agent, frame);
                return;
            }
            if !pending.is_empty() && !answered_at_once(&frame) {
                result = send(out, pending);
            }
            let Some(reply) = dispatch(agent, frame) else {
                return;
            };
            if result.is_err() {
                return;
            }
            if pending.len() + reply.size_hint() <= GATHER_LIMIT {
                reply.append_to(pending);
            } else {
                // A large reply (a file read) is streamed, never held whole.
                result = send(out, pending)
                    .and_then(|()| reply.write_to(out))
                    .and_then(|()| out.flush());
            }
        });
        if result.is_ok() && !pending.is_empty() {
            result = send(out, pending);
        }
        pending.clear();
        result
    }
}

/// Writes and empties `pending`.
fn send(out: &mut impl Write, pending: &mut Vec<u8>) -> io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let r = out.write_all(pending).and_then(|()| out.flush());
    pending.clear();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::QEMU_COMPAT_VERSION;
    use crate::policy::Policy;
    use crate::state::StateFile;
    use proptest::prelude::*;

    fn agent(dir: &std::path::Path) -> Agent {
        Agent {
            version: QEMU_COMPAT_VERSION.to_string(),
            policy: Policy::default(),
            frozen: false,
            delimit_response: false,
            state: StateFile::open(dir).unwrap(),
            os_release_override: None,
            files: crate::handles::Handles::new(8),
            execs: crate::exec_table::ExecTable::new(8, 1 << 20),
            max_reply: 0,
            wire_limits: qga_proto::Limits::default(),
        }
    }

    fn run_chunks(chunks: &[&[u8]]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut a = agent(dir.path());
        let mut s = Session::new();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(&mut a, c, &mut out).unwrap();
        }
        out
    }

    const SCRIPT: &[u8] = b"{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}\n \xff{'execute':'guest-sync-delimited','arguments':{'id':2},'id':'x'}\
        {\"execute\":\"guest-ping\",\"id\":[1,{\"a\":null}]} {\"execute\":\"nope\"} {\"execute\":\"guest-sync\",\"arguments\":{}}\
        {\"bad\" 1} [1] \x01 {\"execute\":\"guest-ping\",\"arguments\":{\"x\":1}}";

    #[test]
    fn test_script_replies() {
        let out = String::from_utf8_lossy(&run_chunks(&[SCRIPT])).into_owned();
        let expected = "{\"return\": 1}\n\
            {\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\u{FFFD}'\"}}\n\
            \u{FFFD}{\"return\": 2, \"id\": \"x\"}\n\
            {\"return\": {}, \"id\": [1, {\"a\": null}]}\n\
            {\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has not been found\"}}\n\
            {\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'id' is missing\"}}\n\
            {\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, missing : in object pair\"}}\n\
            {\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\n\
            {\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\u0001'\"}}\n\
            {\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is unexpected\"}}\n";
        assert_eq!(out, expected.replace("'\u{FFFD}'", "'\\uFFFD'"));
    }

    /// Records each write call.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn test_quick_replies_of_one_read_go_out_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = agent(dir.path());
        let mut s = Session::new();
        let mut out = Writes::default();
        let ping = "{\"execute\":\"guest-ping\"}";
        let input = format!(
            "{ping}{ping}{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":3}}}}\
             {{\"execute\":\"guest-get-host-name\"}}{ping}"
        );
        s.feed(&mut a, input.as_bytes(), &mut out).unwrap();
        // The gathered replies are sent before guest-get-host-name runs; its reply and the
        // last ping's go out together at the end of the read.
        assert_eq!(out.0.len(), 2, "{:?}", out.0);
        assert_eq!(
            out.0[0],
            b"{\"return\": {}}\n{\"return\": {}}\n{\"return\": 3}\n".to_vec()
        );
        let last = String::from_utf8(out.0[1].clone()).unwrap();
        assert!(last.starts_with("{\"return\": {\"host-name\": "), "{last}");
        assert!(last.ends_with("}}\n{\"return\": {}}\n"), "{last}");
        // Nothing is kept between reads.
        s.feed(&mut a, ping.as_bytes(), &mut out).unwrap();
        assert_eq!(out.0.len(), 3);
        assert_eq!(out.0[2], b"{\"return\": {}}\n".to_vec());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn prop_any_chunking_gives_same_replies(cuts in proptest::collection::vec(0..SCRIPT.len(), 0..12)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts {
                chunks.push(&SCRIPT[last..c]);
                last = c;
            }
            chunks.push(&SCRIPT[last..]);
            prop_assert_eq!(run_chunks(&chunks), run_chunks(&[SCRIPT]));
        }

        #[test]
        fn prop_0xff_anywhere_resynchronises(garbage in proptest::collection::vec(any::<u8>(), 0..64), pos in 0..SCRIPT.len()) {
            let mut input = SCRIPT[..pos].to_vec();
            input.extend_from_slice(&garbage);
            input.extend_from_slice(b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":424242}}");
            let out = run_chunks(&[&input]);
            let tail = b"\xff{\"return\": 424242}\n";
            prop_assert!(out.ends_with(tail), "{}", String::from_utf8_lossy(&out));
        }
    }
}
