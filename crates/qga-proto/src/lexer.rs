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
    /// A long string whose body is canonical base64 (a guest-file-write payload), decoded as
    /// it arrived: its "text" is the bytes the base64 stands for (see [`B64_FROM`]).
    B64String,
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

/// Text length from which a plain string is decoded as base64 while it arrives, so that a
/// payload of tens of MiB is held once, decoded, instead of as text that is scanned,
/// copied and decoded again after the message is complete. Shorter strings stay text.
pub(crate) const B64_FROM: usize = 64 * 1024;

/// The undecoded end of a string being decoded: at most one group of four characters,
/// alphabet characters possibly followed by `=` padding (a group with padding can only
/// be the last one).
#[derive(Debug, Default)]
struct Pending {
    chars: [u8; 4],
    len: usize,
}

impl Pending {
    fn as_slice(&self) -> &[u8] {
        &self.chars[..self.len]
    }

    fn padded(&self) -> bool {
        self.as_slice().contains(&b'=')
    }

    /// Takes one more character; false if the text is then not canonical base64.
    fn push(&mut self, c: u8) -> bool {
        let ok = self.len < 4
            && if c == b'=' {
                self.len >= 2
            } else {
                crate::b64::is_alphabet(c) && !self.padded()
            };
        if ok {
            self.chars[self.len] = c;
            self.len += 1;
        }
        ok
    }
}

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
    /// In a long plain string: decoding as base64 while it arrives; `token` then holds the
    /// decoded bytes (whole groups) and this the characters after them.
    b64: Option<Pending>,
    /// This string turned out not to be canonical base64: it stays text.
    b64_refused: bool,
    /// The current token passed the size limit: keep lexing it, but drop its text.
    overflowed: bool,
    /// Longest token kept ([`MAX_TOKEN_SIZE`] unless configured).
    pub(crate) max_token: usize,
    /// Text length from which plain strings are decoded as they arrive ([`B64_FROM`]; the
    /// tests lower it to reach every path with short strings).
    pub(crate) b64_from: usize,
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
            b64: None,
            b64_refused: false,
            overflowed: false,
            max_token: MAX_TOKEN_SIZE,
            b64_from: B64_FROM,
        }
    }

    /// Forgets any partial token.
    pub(crate) fn reset(&mut self) {
        self.state = State::Start;
        self.token.clear();
        self.open_quote = None;
        self.plain = false;
        self.b64 = None;
        self.b64_refused = false;
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
                if let Some(n) = self.b64_run(&bytes[i..], quote) {
                    i += n;
                    continue;
                }
                let (run, ascii) = crate::scan::string_body_run(&bytes[i..], quote);
                if run > 0 {
                    self.plain &= ascii;
                    self.push_string_run(&bytes[i..i + run], sink);
                    i += run;
                    continue;
                }
            }
            self.feed_byte(bytes[i], sink);
            i += 1;
        }
    }

    /// The token's length as QEMU counts it: the text of what was decoded, and the opening
    /// quote held aside, included.
    fn text_len(&self) -> usize {
        let body = match &self.b64 {
            Some(p) => self.token.len() / 3 * 4 + p.len,
            None => self.token.len(),
        };
        body + usize::from(self.open_quote.is_some())
    }

    /// Whether `more` bytes of text fit under the token limit; if not, reports the overflow.
    fn fits(&mut self, more: usize, sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) -> bool {
        if self.overflowed {
            return false;
        }
        if self.text_len() + more > self.max_token {
            self.overflow(sink);
            return false;
        }
        true
    }

    fn push_text(&mut self, text: &[u8], sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        if self.fits(text.len(), sink) {
            self.token.extend_from_slice(text);
        }
    }

    /// A run of a string's body (printable, no quote or backslash).
    fn push_string_run(&mut self, text: &[u8], sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        if !self.fits(text.len(), sink) {
            return;
        }
        if self.b64.is_some() {
            let used = self.b64_take(text);
            if used < text.len() {
                self.leave_b64();
                self.token.extend_from_slice(&text[used..]);
            }
            return;
        }
        self.token.extend_from_slice(text);
        if self.plain && !self.b64_refused && self.token.len() >= self.b64_from {
            self.enter_b64();
        }
    }

    /// Starts decoding a plain string's text as base64, if it is canonical so far.
    fn enter_b64(&mut self) {
        let whole = crate::b64::alphabet_groups(&self.token);
        let mut pending = Pending::default();
        if !self.token[whole..].iter().all(|&c| pending.push(c)) {
            self.b64_refused = true;
            return;
        }
        match crate::b64::decode_canonical_in_place(&mut self.token[..whole]) {
            Some(n) => {
                self.token.truncate(n);
                self.b64 = Some(pending);
            }
            None => self.b64_refused = true,
        }
    }

    /// While a string is being decoded and no group is pending: decodes the whole groups up
    /// to the closing quote (or the end of `rest`) in one step, without the general scan of
    /// the string's body: the decoder refuses anything outside the alphabet (a backslash, a
    /// control character, padding) by itself. `None`, with nothing taken, when that is not
    /// the case or the text would pass the token limit; the general path then decides.
    fn b64_run(&mut self, rest: &[u8], quote: u8) -> Option<usize> {
        if self.b64.as_ref()?.len != 0 {
            return None;
        }
        let end = memchr::memchr(quote, rest).unwrap_or(rest.len());
        let whole = end / 4 * 4;
        if whole < 64 || self.overflowed || self.text_len() + whole > self.max_token {
            return None;
        }
        crate::b64::decode_canonical_append_unpadded(&rest[..whole], &mut self.token)
            .then_some(whole)
    }

    /// Decodes what it can of `text` into the token; returns how much of it was taken
    /// (less than all: the string is not canonical base64 from there on).
    fn b64_take(&mut self, text: &[u8]) -> usize {
        let Some(pending) = self.b64.as_mut() else {
            return 0;
        };
        let mut i = 0;
        // Complete the pending group.
        while pending.len > 0 && pending.len < 4 && i < text.len() {
            if !pending.push(text[i]) {
                return i;
            }
            i += 1;
        }
        if pending.len == 4 {
            if pending.padded() {
                // The last group; anything after it is not canonical.
                return i;
            }
            if !crate::b64::decode_canonical_append(pending.as_slice(), &mut self.token) {
                return i;
            }
            *pending = Pending::default();
        }
        // Whole groups straight from the input, up to the first character that is not in
        // the alphabet (padding included: it stays pending until the string ends).
        let rest = &text[i..];
        let take = crate::b64::alphabet_groups(rest);
        if !crate::b64::decode_canonical_append_unpadded(&rest[..take], &mut self.token) {
            return i;
        }
        i += take;
        while i < text.len() {
            if pending.len == 4 || !pending.push(text[i]) {
                return i;
            }
            i += 1;
        }
        if pending.len == 4 && !pending.padded() {
            if !crate::b64::decode_canonical_append(pending.as_slice(), &mut self.token) {
                // The group stays pending (it holds those characters): all of `text` taken.
                return i;
            }
            *pending = Pending::default();
        }
        i
    }

    /// Gives up decoding: the token becomes the text again (the canonical encoding of what
    /// was decoded is exactly the text it came from).
    fn leave_b64(&mut self) {
        if let Some(pending) = self.b64.take() {
            let mut text = Vec::with_capacity(crate::b64::encoded_len(self.token.len()) + 4);
            crate::b64::encode_append(&self.token, &mut text);
            text.extend_from_slice(pending.as_slice());
            self.token = text;
        }
        self.b64_refused = true;
    }

    /// At the closing quote of a string being decoded: true if the whole string was
    /// canonical base64 and `token` now holds all its bytes.
    fn finish_b64(&mut self) -> bool {
        let Some(pending) = self.b64.as_ref() else {
            return false;
        };
        if pending.len == 0
            || (pending.len == 4
                && crate::b64::decode_canonical_append(pending.as_slice(), &mut self.token))
        {
            self.b64 = None;
            return true;
        }
        self.leave_b64();
        false
    }

    /// QEMU reports a token as soon as it grows past the limit; its text is dropped.
    fn overflow(&mut self, sink: &mut impl FnMut(TokenKind, &mut Vec<u8>)) {
        self.overflowed = true;
        self.b64 = None;
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
        if self.b64.is_some() && !matches!(step(self.state, ch), Step::Emit(TokenKind::String)) {
            // An escape or an error inside the string: it is text again.
            self.leave_b64();
        }
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
                    self.fits(1, sink);
                    self.open_quote = None;
                    let kind = if !self.overflowed && self.finish_b64() {
                        TokenKind::B64String
                    } else {
                        TokenKind::PlainString
                    };
                    self.finish(kind, sink);
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
                    self.b64_refused = false;
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
        self.b64 = None;
        self.b64_refused = false;
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

    /// Lexes `input` cut at `cuts` with decoding from `b64_from`.
    fn lex_cut(
        input: &[u8],
        cuts: &[usize],
        b64_from: usize,
        max: usize,
    ) -> Vec<(TokenKind, Vec<u8>)> {
        let mut lexer = Lexer::new();
        lexer.b64_from = b64_from;
        lexer.max_token = max;
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain([&input.len()]) {
            let c = c.clamp(at, input.len());
            lexer.feed(&input[at..c], &mut |k, t: &mut Vec<u8>| {
                out.push((k, t.clone()));
            });
            at = c;
        }
        out
    }

    fn canonical(text: &[u8]) -> bool {
        base64_simd::STANDARD
            .decode_to_vec(text)
            .is_ok_and(|b| crate::b64::encode(&b).as_bytes() == text)
    }

    proptest::proptest! {
        /// Decoding strings as they arrive changes nothing but the form: the same tokens as
        /// without it, a decoded one exactly when the string is plain, canonical base64 and
        /// long enough, and its bytes encode back to the string's text; whatever the cuts.
        #[test]
        fn prop_decoding_while_lexing_keeps_the_text(
            // Up to 400 bytes: long runs take the decoder's own path (`b64_run`).
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            noise in proptest::collection::vec((0usize..560, proptest::sample::select(vec![
                "=", "==", "-", "_", " ", ".", "\u{e9}", "\\n", "\\\"", "\\u0041", "A", "/",
            ])), 0..3),
            cuts in proptest::collection::vec(0usize..600, 0..5),
            b64_from in 0usize..24,
            quote in proptest::sample::select(vec![b'"', b'\'']),
        ) {
            let mut text = crate::b64::encode(&data).into_bytes();
            for (at, n) in &noise {
                let at = (*at).min(text.len());
                text.splice(at..at, n.bytes());
            }
            let mut input = vec![b'[', quote];
            input.extend_from_slice(&text);
            input.extend_from_slice(&[quote, b',', b'1', b']']);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let plain = lex_cut(&input, &[], usize::MAX, MAX_TOKEN_SIZE);
            let ours = lex_cut(&input, &cuts, b64_from, MAX_TOKEN_SIZE);
            proptest::prop_assert_eq!(ours.len(), plain.len());
            for ((k, t), (pk, pt)) in ours.iter().zip(&plain) {
                if *k == TokenKind::B64String {
                    proptest::prop_assert_eq!(*pk, TokenKind::PlainString);
                    let again = crate::b64::encode(t);
                    proptest::prop_assert_eq!(again.as_bytes(), &pt[..]);
                } else {
                    proptest::prop_assert_eq!((k, t), (pk, pt));
                    let long = pt.len() >= b64_from.max(1);
                    proptest::prop_assert!(
                        !(*pk == TokenKind::PlainString && long && canonical(pt)),
                        "{:?} should have been decoded", String::from_utf8_lossy(pt)
                    );
                }
            }
        }

        /// The token limit counts the text, decoded or not: at the limit a string passes,
        /// one byte over it is reported.
        #[test]
        fn prop_limit_is_the_same_when_decoding(data in proptest::collection::vec(proptest::num::u8::ANY, 1..300), cuts in proptest::collection::vec(0usize..420, 0..4), b64_from in 0usize..16) {
            let text = crate::b64::encode(&data);
            let input = format!("\"{text}\" ");
            let mut cuts = cuts;
            cuts.sort_unstable();
            let len = text.len() + 2;
            for (max, over) in [(len, false), (len - 1, true)] {
                let got = lex_cut(input.as_bytes(), &cuts, b64_from, max);
                let kinds: Vec<TokenKind> = got.iter().map(|t| t.0).collect();
                proptest::prop_assert_eq!(kinds.contains(&TokenKind::TooLong), over, "{:?}", kinds);
                proptest::prop_assert_eq!(got.len(), 1);
            }
        }
    }

    #[test]
    fn test_lex_long_canonical_string_comes_decoded() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let text = crate::b64::encode(&data);
        let input = format!("{{\"buf-b64\": \"{text}\"}}");
        let got = lex_cut(
            input.as_bytes(),
            &[5000, 70_000, 70_001, 200_000],
            B64_FROM,
            MAX_TOKEN_SIZE,
        );
        assert_eq!(got[3].0, TokenKind::B64String);
        assert_eq!(got[3].1, data);
        // Not canonical (a stray bit in the last group): the same text, as text.
        let odd = format!("\"{}R=\"", &text[..text.len() - 2]);
        let got = lex_cut(odd.as_bytes(), &[100_000], B64_FROM, MAX_TOKEN_SIZE);
        assert_eq!(got[0].0, TokenKind::PlainString);
        assert_eq!(got[0].1, odd.as_bytes()[1..odd.len() - 1]);
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
