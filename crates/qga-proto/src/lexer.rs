//! Byte-level lexer for QEMU's JSON dialect, state for state like QEMU's so that the token
//! texts in "stray '…'" errors, and the points where the lexer recovers, are the same.

/// Kinds of tokens the lexer hands to the streamer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Integer,
    Float,
    Keyword,
    /// A string token, with its quotes.
    String,
    /// A string token whose body is printable ASCII without escapes (a base64 payload, say),
    /// given without its quotes: its text is the string's value as it is.
    PlainString,
    /// A byte that cannot continue or start a token here; the text is the partial token.
    Error,
    /// A token longer than the size limit (its text is not kept).
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Recovery,
    DqString,
    DqEscape,
    SqString,
    SqEscape,
    Zero,
    ExpDigits,
    ExpSign,
    ExpE,
    MantissaDigits,
    Mantissa,
    Digits,
    Sign,
    Keyword,
}

/// What a byte does in a state.
enum Step {
    /// Consume the byte and move to a state.
    Go(State),
    /// Consume the byte and finish a token.
    Emit(TokenKind),
    /// Finish a token without consuming the byte (it is looked at again from `Start`).
    EmitBefore(TokenKind),
    /// Consume the byte: lexical error.
    Error,
    /// Go back to `Start` without consuming the byte (end of recovery).
    Resume,
}

/// Longest token the lexer accumulates (QEMU's limit: 64 MiB).
pub(crate) const MAX_TOKEN_SIZE: usize = 64 << 20;

/// The lexer: feed bytes, receive tokens through a callback.
#[derive(Debug)]
pub(crate) struct Lexer {
    state: State,
    token: Vec<u8>,
    /// In a string: its opening quote, which is not in `token` (so that a plain string's
    /// text is its value, without a move of all its bytes at the end); it is put back in
    /// front of the token when the string turns out not to be plain, or is an error.
    open_quote: Option<u8>,
    /// In a string: everything so far is printable ASCII without escapes.
    plain: bool,
    /// The current token passed the size limit: keep lexing it, but drop its text.
    overflowed: bool,
    /// Longest token kept ([`MAX_TOKEN_SIZE`] unless configured).
    pub(crate) max_token: usize,
}

fn step(state: State, ch: u8) -> Step {
    use State as S;
    use Step::*;
    match state {
        S::Start => match ch {
            b'"' => Go(S::DqString),
            b'\'' => Go(S::SqString),
            b'0' => Go(S::Zero),
            b'1'..=b'9' => Go(S::Digits),
            b'-' => Go(S::Sign),
            b'{' => Emit(TokenKind::LCurly),
            b'}' => Emit(TokenKind::RCurly),
            b'[' => Emit(TokenKind::LSquare),
            b']' => Emit(TokenKind::RSquare),
            b',' => Emit(TokenKind::Comma),
            b':' => Emit(TokenKind::Colon),
            b'a'..=b'z' => Go(S::Keyword),
            b' ' | b'\t' | b'\r' | b'\n' => Go(S::Start),
            _ => Error,
        },
        S::Recovery => match ch {
            b'\t' => Go(S::Recovery),
            0..=0x1f | 0xfe | 0xff | b'[' | b']' | b'{' | b'}' | b':' | b',' => Resume,
            _ => Go(S::Recovery),
        },
        S::DqEscape => match ch {
            0x20..=0xfd => Go(S::DqString),
            _ => Error,
        },
        S::DqString => match ch {
            b'\\' => Go(S::DqEscape),
            b'"' => Emit(TokenKind::String),
            0x20..=0xfd => Go(S::DqString),
            _ => Error,
        },
        S::SqEscape => match ch {
            0x20..=0xfd => Go(S::SqString),
            _ => Error,
        },
        S::SqString => match ch {
            b'\\' => Go(S::SqEscape),
            b'\'' => Emit(TokenKind::String),
            0x20..=0xfd => Go(S::SqString),
            _ => Error,
        },
        S::Zero => match ch {
            b'0'..=b'9' => Error,
            b'.' => Go(S::Mantissa),
            _ => EmitBefore(TokenKind::Integer),
        },
        S::ExpDigits => match ch {
            b'0'..=b'9' => Go(S::ExpDigits),
            _ => EmitBefore(TokenKind::Float),
        },
        S::ExpSign => match ch {
            b'0'..=b'9' => Go(S::ExpDigits),
            _ => Error,
        },
        S::ExpE => match ch {
            b'-' | b'+' => Go(S::ExpSign),
            b'0'..=b'9' => Go(S::ExpDigits),
            _ => Error,
        },
        S::MantissaDigits => match ch {
            b'0'..=b'9' => Go(S::MantissaDigits),
            b'e' | b'E' => Go(S::ExpE),
            _ => EmitBefore(TokenKind::Float),
        },
        S::Mantissa => match ch {
            b'0'..=b'9' => Go(S::MantissaDigits),
            _ => Error,
        },
        S::Digits => match ch {
            b'0'..=b'9' => Go(S::Digits),
            b'e' | b'E' => Go(S::ExpE),
            b'.' => Go(S::Mantissa),
            _ => EmitBefore(TokenKind::Integer),
        },
        S::Sign => match ch {
            b'0' => Go(S::Zero),
            b'1'..=b'9' => Go(S::Digits),
            _ => Error,
        },
        S::Keyword => match ch {
            b'a'..=b'z' => Go(S::Keyword),
            _ => EmitBefore(TokenKind::Keyword),
        },
    }
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new()
    }
}

impl Lexer {
    /// A lexer in its start state.
    pub(crate) fn new() -> Lexer {
        Lexer {
            state: State::Start,
            token: Vec::new(),
            open_quote: None,
            plain: false,
            overflowed: false,
            max_token: MAX_TOKEN_SIZE,
        }
    }

    /// Forgets any partial token.
    pub(crate) fn reset(&mut self) {
        self.state = State::Start;
        self.token.clear();
        self.open_quote = None;
        self.plain = false;
        self.overflowed = false;
    }

    /// Feeds a run of bytes; `sink` receives each finished token with its text (which it may
    /// take, to keep a large token without copying it).
    pub(crate) fn feed(&mut self, bytes: &[u8], sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        let mut i = 0;
        while i < bytes.len() {
            // Fast path: the body of a string, which is most of the bytes of large requests.
            if matches!(self.state, State::DqString | State::SqString) {
                let quote = if self.state == State::DqString {
                    b'"'
                } else {
                    b'\''
                };
                let (run, ascii) = crate::scan::string_body_run(&bytes[i..], quote);
                if run > 0 {
                    self.plain &= ascii;
                    self.push_text(&bytes[i..i + run], sink);
                    i += run;
                    continue;
                }
            }
            self.feed_byte(bytes[i], sink);
            i += 1;
        }
    }

    fn push_text(&mut self, text: &[u8], sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        if self.overflowed {
            return;
        }
        // The token's length as QEMU counts it: the opening quote held aside included.
        let len = self.token.len() + usize::from(self.open_quote.is_some());
        let room = self.max_token + 1 - len.min(self.max_token + 1);
        if text.len() < room {
            self.token.extend_from_slice(text);
        } else {
            self.overflow(sink);
        }
    }

    /// QEMU reports a token as soon as it grows past the limit; its text is dropped.
    fn overflow(&mut self, sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        self.overflowed = true;
        self.token.clear();
        self.token.shrink_to_fit();
        sink(TokenKind::TooLong, &mut Vec::new());
    }

    /// Puts a string's opening quote back in front of its text (a string that is not plain,
    /// or an error inside a string: both report the text with its quote).
    fn restore_quote(&mut self) {
        if let Some(q) = self.open_quote.take()
            && !self.overflowed
        {
            self.token.insert(0, q);
        }
    }

    fn feed_byte(&mut self, ch: u8, sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        loop {
            match step(self.state, ch) {
                Step::Go(next @ (State::DqString | State::SqString))
                    if self.state == State::Start =>
                {
                    // The opening quote: held aside until the string's end shows what it is.
                    self.token.clear();
                    self.open_quote = Some(ch);
                    self.plain = true;
                    self.state = next;
                    return;
                }
                Step::Go(next) => {
                    if self.open_quote.is_some() {
                        // An escape inside a string: not plain.
                        self.plain = false;
                    }
                    self.push_text(&[ch], sink);
                    if next == State::Start || next == State::Recovery {
                        self.token.clear();
                    }
                    self.state = next;
                    return;
                }
                Step::Emit(TokenKind::String) if self.plain && self.open_quote.is_some() => {
                    // The closing quote of a plain string: the text is the value. Both quotes
                    // count against the limit, as if they were in the text.
                    if !self.overflowed && self.token.len() + 2 > self.max_token {
                        self.overflow(sink);
                    }
                    self.open_quote = None;
                    self.finish(TokenKind::PlainString, sink);
                    return;
                }
                Step::Emit(kind) => {
                    self.restore_quote();
                    self.push_text(&[ch], sink);
                    self.finish(kind, sink);
                    return;
                }
                Step::EmitBefore(kind) => {
                    self.finish(kind, sink);
                }
                Step::Error => {
                    self.restore_quote();
                    self.push_text(&[ch], sink);
                    if !self.overflowed {
                        sink(TokenKind::Error, &mut self.token);
                    }
                    self.token.clear();
                    self.overflowed = false;
                    self.state = State::Recovery;
                    return;
                }
                Step::Resume => {
                    self.state = State::Start;
                }
            }
        }
    }

    fn finish(&mut self, kind: TokenKind, sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        // A token that outgrew the limit was reported (TooLong) when it did; it is not a
        // value, so it goes nowhere (structural tokens are one byte and never overflow).
        if !self.overflowed {
            sink(kind, &mut self.token);
        }
        self.token.clear();
        self.open_quote = None;
        self.plain = false;
        self.overflowed = false;
        self.state = State::Start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(input: &[u8]) -> Vec<(TokenKind, String)> {
        let mut lexer = Lexer::new();
        let mut out = Vec::new();
        lexer.feed(input, &mut |k, t: &mut Vec<u8>| {
            out.push((k, String::from_utf8_lossy(t).into_owned()));
        });
        out
    }

    #[test]
    fn test_lex_object_tokens() {
        let toks = lex(b"{'a': \"b\", \"c\":[1, -2.5e3, true]}");
        let kinds: Vec<TokenKind> = toks.iter().map(|t| t.0).collect();
        use TokenKind::*;
        assert_eq!(
            kinds,
            [
                LCurly,
                PlainString,
                Colon,
                PlainString,
                Comma,
                PlainString,
                Colon,
                LSquare,
                Integer,
                Comma,
                Float,
                Comma,
                Keyword,
                RSquare,
                RCurly
            ]
        );
        assert_eq!(toks[10].1, "-2.5e3");
    }

    #[test]
    fn test_lex_plain_string_is_its_value_other_strings_keep_quotes() {
        use TokenKind::*;
        assert_eq!(lex(b"\"QUJD\""), [(PlainString, "QUJD".to_string())]);
        assert_eq!(lex(b"''"), [(PlainString, std::string::String::new())]);
        assert_eq!(lex(b"\"a\\nb\""), [(String, "\"a\\nb\"".to_string())]);
        assert_eq!(lex(b"'\\''"), [(String, "'\\''".to_string())]);
        assert_eq!(
            lex("\"caf\u{e9}\"".as_bytes()),
            [(String, "\"caf\u{e9}\"".to_string())]
        );
        // Split anywhere, the same tokens.
        let whole = b"{\"buf-b64\":\"QUJDRA==\",'k':\"x\\u0041\"}";
        for cut in 0..whole.len() {
            let mut lexer = Lexer::new();
            let mut out = Vec::new();
            for part in [&whole[..cut], &whole[cut..]] {
                lexer.feed(part, &mut |k, t: &mut Vec<u8>| {
                    out.push((k, std::string::String::from_utf8_lossy(t).into_owned()));
                });
            }
            assert_eq!(out, lex(whole), "cut at {cut}");
        }
    }

    #[test]
    fn test_lex_overlong_string_is_reported_once_and_dropped() {
        let mut lexer = Lexer::new();
        lexer.max_token = 8;
        let mut out = Vec::new();
        lexer.feed(b"\"aaaaaaaaaaaa\" 1 ", &mut |k, t: &mut Vec<u8>| {
            out.push((k, std::string::String::from_utf8_lossy(t).into_owned()));
        });
        assert_eq!(
            out,
            [
                (TokenKind::TooLong, std::string::String::new()),
                (TokenKind::Integer, "1".to_string())
            ]
        );
    }

    #[test]
    fn test_lex_limit_counts_the_quotes() {
        // Eight bytes with both quotes: at the limit; nine: over it.
        for (input, too_long) in [(&b"\"abcdef\" "[..], false), (&b"\"abcdefg\" "[..], true)] {
            let mut lexer = Lexer::new();
            lexer.max_token = 8;
            let mut kinds = Vec::new();
            lexer.feed(input, &mut |k, _t: &mut Vec<u8>| kinds.push(k));
            assert_eq!(kinds.contains(&TokenKind::TooLong), too_long, "{input:?}");
        }
    }

    #[test]
    fn test_lex_leading_zero_is_error_with_both_digits() {
        assert_eq!(lex(b"01 ")[0], (TokenKind::Error, "01".to_string()));
    }

    #[test]
    fn test_lex_sign_then_brace_swallows_brace() {
        assert_eq!(lex(b"-}"), [(TokenKind::Error, "-}".to_string())]);
    }

    #[test]
    fn test_lex_recovery_skips_to_structural_char() {
        let toks = lex(b"\xffabc}");
        assert_eq!(
            toks,
            [
                (TokenKind::Error, "\u{fffd}".to_string()),
                (TokenKind::RCurly, "}".to_string())
            ]
        );
    }

    #[test]
    fn test_lex_keyword_needs_following_byte() {
        assert!(lex(b"true").is_empty());
        assert_eq!(lex(b"true ").len(), 1);
    }

    #[test]
    fn test_lex_raw_tab_in_string_is_error() {
        assert_eq!(lex(b"\"a\tb\"")[0], (TokenKind::Error, "\"a\t".to_string()));
    }
}
