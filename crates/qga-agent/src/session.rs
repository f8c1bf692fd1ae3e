//! One conversation over a byte stream: frames in, replies out, strictly in order.

use std::io::{self, Write};

use qga_proto::Framer;

use crate::agent::Agent;
use crate::dispatch::dispatch;

/// The parser state of one channel (kept across reconnects on virtio-serial, fresh for
/// each client of a listening socket).
#[derive(Debug, Default)]
pub struct Session {
    framer: Framer,
}

impl Session {
    /// A session at the start of a stream.
    pub fn new() -> Session {
        Session::default()
    }

    /// Handles the bytes just read: every request they complete is run and its reply
    /// written to `out` before the next request runs.
    pub fn feed(
        &mut self,
        agent: &mut Agent,
        bytes: &[u8],
        out: &mut impl Write,
    ) -> io::Result<()> {
        let mut result = Ok(());
        self.framer.feed(bytes, &mut |frame| {
            let Some(reply) = dispatch(agent, frame) else {
                return;
            };
            if result.is_ok() {
                result = out.write_all(&reply).and_then(|()| out.flush());
            }
        });
        result
    }
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
