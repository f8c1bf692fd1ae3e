//! Splits a byte stream into messages the way QEMU's JSON streamer does: a message ends
//! when its brackets balance, limits are checked per token, and a lexical error (0xFF, a
//! control byte, …) drops the message being built and yields one error.
//!
//! One deliberate difference from QEMU (see docs/compat.md): after a size, count or depth
//! limit error QEMU restarts parsing in the middle of the oversized message and answers its
//! remainder with a flood of further errors; this framer skips the rest of that message
//! (tracking its brackets) so each oversized message gets exactly one error reply.

use crate::error::QgaError;
use crate::lexer::{Lexer, MAX_TOKEN_SIZE, TokenKind};
use crate::parser::{self, Tokens};
use crate::utf8;
use crate::value::Value;

/// Most tokens in one message (QEMU: 2 Mi).
pub const MAX_TOKEN_COUNT: usize = 2 << 20;
/// Deepest nesting of arrays and objects in one message.
pub const MAX_NESTING: i64 = 1024;

/// The per-message limits of the framer; the defaults are QEMU's (64 MiB per token and per
/// message, 2 Mi tokens, depth 1024), with QEMU's error texts when one is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest token, and most token bytes in one message ("JSON token size limit exceeded").
    pub token_size: usize,
    /// Most tokens in one message ("JSON token count limit exceeded").
    pub token_count: usize,
    /// Deepest nesting of arrays and objects ("JSON nesting depth limit exceeded").
    pub nesting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            token_size: MAX_TOKEN_SIZE,
            token_count: MAX_TOKEN_COUNT,
            nesting: MAX_NESTING as usize,
        }
    }
}

/// What the framer produced from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A complete, well-formed JSON value.
    Message(Value),
    /// A malformed message; the error is to be sent back as a reply.
    Error(QgaError),
}

#[derive(Debug, Default)]
struct Streamer {
    tokens: Tokens,
    braces: i64,
    brackets: i64,
    /// Skipping the rest of a message that already got a limit error.
    discarding: bool,
    limits: Limits,
}

impl Streamer {
    fn reset(&mut self) {
        self.tokens.clear();
        self.braces = 0;
        self.brackets = 0;
        self.discarding = false;
    }

    fn incomplete(&self) -> bool {
        (self.braces > 0 || self.brackets > 0) && self.braces >= 0 && self.brackets >= 0
    }

    fn limit_error(&mut self, desc: &str, out: &mut impl FnMut(Frame)) {
        self.tokens.clear();
        self.discarding = self.incomplete();
        if !self.discarding {
            self.reset();
        }
        out(Frame::Error(QgaError::generic(desc)));
    }

    fn process(&mut self, kind: TokenKind, text: &mut Vec<u8>, out: &mut impl FnMut(Frame)) {
        match kind {
            TokenKind::LCurly => self.braces += 1,
            TokenKind::RCurly => self.braces -= 1,
            TokenKind::LSquare => self.brackets += 1,
            TokenKind::RSquare => self.brackets -= 1,
            TokenKind::Error => {
                let was_discarding = self.discarding;
                self.reset();
                if !was_discarding {
                    let desc =
                        format!("JSON parse error, stray '{}'", utf8::lossy(text.as_slice()));
                    out(Frame::Error(QgaError::generic(desc)));
                }
                return;
            }
            TokenKind::TooLong => {
                if !self.discarding {
                    self.limit_error("JSON token size limit exceeded", out);
                }
                return;
            }
            _ => {}
        }
        if self.discarding {
            if !self.incomplete() {
                self.reset();
            }
            return;
        }
        if self.tokens.text_len() + parser::token_len(kind, text) + 1 > self.limits.token_size {
            return self.limit_error("JSON token size limit exceeded", out);
        }
        if self.tokens.len() + 1 > self.limits.token_count {
            return self.limit_error("JSON token count limit exceeded", out);
        }
        if usize::try_from(self.braces + self.brackets).unwrap_or(0) > self.limits.nesting {
            return self.limit_error("JSON nesting depth limit exceeded", out);
        }
        self.tokens.push(kind, text);
        if self.incomplete() {
            return;
        }
        let result = parser::parse(&mut self.tokens);
        self.reset();
        out(match result {
            Ok(v) => Frame::Message(v),
            Err(msg) => Frame::Error(QgaError::generic(format!("JSON parse error, {msg}"))),
        });
    }
}

/// Incremental message framer: feed it bytes as they arrive, in any chunking.
#[derive(Debug, Default)]
pub struct Framer {
    lexer: Lexer,
    streamer: Streamer,
}

impl Framer {
    /// A framer at the start of a stream.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Sets the per-message limits (from the next token on).
    pub fn set_limits(&mut self, limits: Limits) {
        self.lexer.max_token = limits.token_size;
        self.streamer.limits = limits;
    }

    /// Forgets any partial message (used when a new client connects).
    pub fn reset(&mut self) {
        self.lexer.reset();
        self.streamer.reset();
    }

    /// Feeds bytes; `out` receives every message or error completed by them, in order.
    pub fn feed(&mut self, bytes: &[u8], out: &mut impl FnMut(Frame)) {
        let streamer = &mut self.streamer;
        self.lexer
            .feed(bytes, &mut |kind, text| streamer.process(kind, text, out));
    }

    /// Convenience for tests and tools: all frames produced by `bytes`.
    pub fn feed_collect(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        self.feed(bytes, &mut |f| frames.push(f));
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(input: &[u8]) -> Vec<String> {
        Framer::new()
            .feed_collect(input)
            .into_iter()
            .map(|f| match f {
                Frame::Message(v) => format!("msg {v:?}"),
                Frame::Error(e) => e.desc,
            })
            .collect()
    }

    #[test]
    fn test_two_messages_without_separator() {
        let frames = Framer::new().feed_collect(b"{\"a\":1}{\"b\":2}");
        assert_eq!(frames.len(), 2);
    }

    /// A string over the token limit outside any object: one error, no value (it once
    /// reached the parser as an empty token and panicked), and the next message is served.
    #[test]
    fn test_overlong_top_level_string_one_error_then_next_message() {
        for quote in ["\"", "'"] {
            let mut f = Framer::new();
            f.set_limits(Limits {
                token_size: 16,
                token_count: 100,
                nesting: 10,
            });
            let input = format!("{quote}{}{quote} {{\"a\":\"QUJD\"}}", "a".repeat(40));
            let out: Vec<String> = f
                .feed_collect(input.as_bytes())
                .into_iter()
                .map(|f| match f {
                    Frame::Message(v) => format!("msg {v:?}"),
                    Frame::Error(e) => e.desc,
                })
                .collect();
            assert_eq!(
                out,
                [
                    "JSON token size limit exceeded".to_string(),
                    "msg Dict(Dict { entries: [(\"a\", Str(\"QUJD\"))] })".to_string()
                ]
            );
        }
    }

    /// A guest-file-write of any size in any chunking is one message; a long payload comes
    /// decoded, and the envelope keeps only that argument decoded (a long base64 id is text
    /// again, the same text).
    #[test]
    fn test_large_write_request_in_any_chunking() {
        for size in [4095usize, 65536, 100_000, 1 << 20] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let text = crate::b64::encode(&data);
            let msg = format!(
                "{{\"execute\":\"guest-file-write\",\"id\":\"{text}\",\"arguments\":{{\"handle\":5,\"buf-b64\":\"{text}\"}}}}\n"
            );
            for chunk in [65536usize, 4096, 1000, 7] {
                let mut f = Framer::new();
                let mut frames = Vec::new();
                for c in msg.as_bytes().chunks(chunk) {
                    f.feed(c, &mut |fr| frames.push(fr));
                }
                let [Frame::Message(v)] = frames.as_slice() else {
                    panic!("size {size} chunk {chunk}: {frames:?}");
                };
                let req = crate::envelope::parse_request(v.clone()).unwrap();
                assert_eq!(req.id, Some(Value::Str(text.clone())));
                let got = req.arguments.get("buf-b64");
                if text.len() >= crate::lexer::B64_FROM {
                    assert_eq!(got, Some(&Value::Bytes(data.clone())));
                } else {
                    assert_eq!(got, Some(&Value::Str(text.clone())));
                }
            }
        }
    }

    #[test]
    fn test_scalar_is_a_message() {
        assert_eq!(errs(b"1 "), ["msg Int(1)"]);
    }

    #[test]
    fn test_0xff_gives_one_stray_error() {
        assert_eq!(errs(b"\xff"), ["JSON parse error, stray '\u{FFFD}'"]);
    }

    #[test]
    fn test_0xff_mid_message_drops_partial() {
        let out = errs(b"{\"execute\": \xff{\"a\":1}");
        assert_eq!(
            out,
            [
                "JSON parse error, stray '\u{FFFD}'".to_string(),
                "msg Dict(Dict { entries: [(\"a\", Int(1))] })".to_string()
            ]
        );
    }

    #[test]
    fn test_grammar_errors() {
        assert_eq!(
            errs(b"{\"a\" 1}"),
            ["JSON parse error, missing : in object pair"]
        );
        assert_eq!(
            errs(b"{\"a\":1 \"b\":2}"),
            ["JSON parse error, expected separator in dict"]
        );
        assert_eq!(
            errs(b"[1 2]"),
            ["JSON parse error, expected separator in list"]
        );
        assert_eq!(
            errs(b"{1:2}"),
            ["JSON parse error, key is not a string in object"]
        );
        assert_eq!(
            errs(b"{\"a\":1,\"a\":2}"),
            ["JSON parse error, duplicate key"]
        );
        assert_eq!(
            errs(b"{\"a\":tru}"),
            ["JSON parse error, invalid keyword 'tru'"]
        );
        assert_eq!(errs(b"]"), ["JSON parse error, expecting value"]);
        assert_eq!(
            errs(b"{\"id\":0x10}"),
            ["JSON parse error, expected separator in dict"]
        );
    }

    #[test]
    fn test_true_capitalised_gives_stray_then_expecting_value() {
        assert_eq!(
            errs(b"{\"a\": True}"),
            [
                "JSON parse error, stray 'T'",
                "JSON parse error, expecting value"
            ]
        );
    }

    #[test]
    fn test_nesting_limit_one_error_per_message() {
        let mut input = b"{\"execute\":\"guest-ping\",\"id\":".to_vec();
        input.extend(std::iter::repeat_n(b'[', 1030));
        input.extend(std::iter::repeat_n(b']', 1030));
        input.extend_from_slice(b"}{\"x\":1}");
        let out = errs(&input);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], "JSON nesting depth limit exceeded");
        assert!(out[1].starts_with("msg"));
    }

    #[test]
    fn test_nesting_1023_accepted() {
        let mut input = b"{\"id\":".to_vec();
        input.extend(std::iter::repeat_n(b'[', 1023));
        input.extend(std::iter::repeat_n(b']', 1023));
        input.push(b'}');
        let out = errs(&input);
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("msg"));
    }

    #[test]
    fn test_huge_string_one_error_then_recovers() {
        let mut input = b"{\"execute\":\"".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_TOKEN_SIZE + 10));
        input.extend_from_slice(b"\"}{\"x\":1}");
        let out = errs(&input);
        assert_eq!(
            out,
            [
                "JSON token size limit exceeded".to_string(),
                "msg Dict(Dict { entries: [(\"x\", Int(1))] })".to_string()
            ]
        );
    }

    #[test]
    fn test_numbers() {
        let frames = Framer::new().feed_collect(
            b"[9223372036854775807, 9223372036854775808, 18446744073709551616, -0, 1E2]",
        );
        assert_eq!(
            frames,
            [Frame::Message(Value::List(vec![
                Value::Int(i64::MAX),
                Value::UInt(1 << 63),
                Value::Double(18446744073709551616.0),
                Value::Int(0),
                Value::Double(100.0),
            ]))]
        );
    }
}
