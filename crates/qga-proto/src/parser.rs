//! Turns the tokens of one complete message into a [`Value`], with QEMU's grammar, number
//! rules, string escapes and error texts.

use crate::lexer::TokenKind;
use crate::utf8;
use crate::value::{Dict, Value};

/// The tokens of one message, stored compactly: kinds and spans into one text buffer;
/// large tokens (base64 payloads) are kept as the lexer's own buffer, without a copy.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    kinds: Vec<TokenKind>,
    spans: Vec<Span>,
    text: Vec<u8>,
    owned: Vec<Vec<u8>>,
    total: usize,
}

#[derive(Debug, Clone, Copy)]
enum Span {
    Arena(usize, usize),
    Owned(usize),
}

/// A token's length as QEMU counts it (a plain string's text comes without its quotes).
pub(crate) fn token_len(kind: TokenKind, text: &[u8]) -> usize {
    match kind {
        TokenKind::PlainString => text.len() + 2,
        // Canonical base64 given decoded: the text it came from, with its quotes.
        TokenKind::B64String => crate::b64::encoded_len(text.len()) + 2,
        _ => text.len(),
    }
}

/// Tokens at least this long are moved rather than copied.
const OWN_THRESHOLD: usize = 4096;

impl Tokens {
    /// Appends a token; a large one is taken out of `text`.
    pub(crate) fn push(&mut self, kind: TokenKind, text: &mut Vec<u8>) {
        self.total += token_len(kind, text);
        self.kinds.push(kind);
        if text.len() >= OWN_THRESHOLD {
            self.spans.push(Span::Owned(self.owned.len()));
            self.owned.push(std::mem::take(text));
        } else {
            let start = self.text.len();
            self.text.extend_from_slice(text);
            self.spans.push(Span::Arena(start, text.len()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Bytes of token text held.
    pub(crate) fn text_len(&self) -> usize {
        self.total
    }

    pub(crate) fn clear(&mut self) {
        self.kinds.clear();
        self.spans.clear();
        self.text.clear();
        self.owned.clear();
        self.total = 0;
        // Do not keep the memory of a huge message around.
        if self.text.capacity() > 1 << 20 || self.kinds.capacity() > 1 << 16 {
            *self = Tokens::default();
        }
    }

    fn text(&self, i: usize) -> &[u8] {
        match self.spans[i] {
            Span::Arena(s, l) => &self.text[s..s + l],
            Span::Owned(k) => &self.owned[k],
        }
    }

    /// Takes a large token's buffer (only once).
    fn take(&mut self, i: usize) -> Option<Vec<u8>> {
        match self.spans[i] {
            Span::Owned(k) => Some(std::mem::take(&mut self.owned[k])),
            Span::Arena(..) => None,
        }
    }
}

struct Cursor<'a> {
    toks: &'a mut Tokens,
    pos: usize,
}

type PResult<T> = Result<T, String>;

impl Cursor<'_> {
    fn peek(&self) -> Option<TokenKind> {
        self.toks.kinds.get(self.pos).copied()
    }

    fn pop(&mut self) -> Option<(TokenKind, usize)> {
        let k = self.peek()?;
        self.pos += 1;
        Some((k, self.pos - 1))
    }

    fn value(&mut self) -> PResult<Value> {
        match self.peek() {
            None => Err("premature EOI".into()),
            Some(TokenKind::LCurly) => self.object(),
            Some(TokenKind::LSquare) => self.array(),
            Some(
                TokenKind::Integer
                | TokenKind::Float
                | TokenKind::String
                | TokenKind::PlainString
                | TokenKind::B64String
                | TokenKind::Keyword,
            ) => {
                let (kind, i) = self.pop().ok_or("premature EOI")?;
                match (kind, self.toks.take(i)) {
                    // A large plain string (a base64 payload): its buffer becomes the value.
                    (TokenKind::PlainString, Some(owned)) => {
                        return plain_string(owned).map(Value::Str);
                    }
                    (TokenKind::String, Some(owned)) => {
                        return parse_string(&owned).map(Value::Str);
                    }
                    (TokenKind::B64String, Some(owned)) => return Ok(Value::Bytes(owned)),
                    _ => {}
                }
                literal(kind, self.toks.text(i))
            }
            Some(_) => Err("expecting value".into()),
        }
    }

    fn pop_required(&mut self) -> PResult<TokenKind> {
        self.pop()
            .map(|(k, _)| k)
            .ok_or_else(|| "premature EOI".to_string())
    }

    fn object(&mut self) -> PResult<Value> {
        self.pos += 1; // '{'
        let mut dict = Dict::new();
        match self.peek() {
            None => return Err("premature EOI".into()),
            Some(TokenKind::RCurly) => {
                self.pos += 1;
                return Ok(Value::Dict(dict));
            }
            Some(_) => {}
        }
        loop {
            self.pair(&mut dict)?;
            match self.pop_required()? {
                TokenKind::RCurly => return Ok(Value::Dict(dict)),
                TokenKind::Comma => {}
                _ => return Err("expected separator in dict".into()),
            }
        }
    }

    fn pair(&mut self, dict: &mut Dict) -> PResult<()> {
        if self.peek().is_none() {
            return Err("premature EOI".into());
        }
        let key = match self.value()? {
            Value::Str(s) => s,
            _ => return Err("key is not a string in object".into()),
        };
        if self.pop_required()? != TokenKind::Colon {
            return Err("missing : in object pair".into());
        }
        let value = self.value()?;
        if dict.contains(&key) {
            return Err("duplicate key".into());
        }
        dict.entries.push((key, value));
        Ok(())
    }

    fn array(&mut self) -> PResult<Value> {
        self.pos += 1; // '['
        let mut list = Vec::new();
        match self.peek() {
            None => return Err("premature EOI".into()),
            Some(TokenKind::RSquare) => {
                self.pos += 1;
                return Ok(Value::List(list));
            }
            Some(_) => {}
        }
        loop {
            list.push(self.value()?);
            match self.pop_required()? {
                TokenKind::RSquare => return Ok(Value::List(list)),
                TokenKind::Comma => {}
                _ => return Err("expected separator in list".into()),
            }
        }
    }
}

fn literal(kind: TokenKind, text: &[u8]) -> PResult<Value> {
    match kind {
        TokenKind::String => parse_string(text).map(Value::Str),
        TokenKind::PlainString => plain_string(text.to_vec()).map(Value::Str),
        TokenKind::B64String => Ok(Value::Bytes(text.to_vec())),
        TokenKind::Keyword => match text {
            b"true" => Ok(Value::Bool(true)),
            b"false" => Ok(Value::Bool(false)),
            b"null" => Ok(Value::Null),
            _ => Err(format!(
                "invalid keyword '{}'",
                String::from_utf8_lossy(text)
            )),
        },
        TokenKind::Integer => {
            let s = std::str::from_utf8(text).unwrap_or("");
            if let Ok(i) = s.parse::<i64>() {
                Ok(Value::Int(i))
            } else if let Ok(u) = s.parse::<u64>() {
                Ok(Value::UInt(u))
            } else {
                Ok(Value::Double(s.parse::<f64>().unwrap_or(0.0)))
            }
        }
        _ => {
            let s = std::str::from_utf8(text).unwrap_or("");
            Ok(Value::Double(s.parse::<f64>().unwrap_or(0.0)))
        }
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let mut cp = 0u32;
    for &c in &b[..4] {
        cp = (cp << 4) | char::from(c).to_digit(16)?;
    }
    Some(cp)
}

/// A plain string's value: its text as it is (the lexer saw only printable ASCII).
fn plain_string(text: Vec<u8>) -> PResult<String> {
    String::from_utf8(text).map_err(|_| "invalid UTF-8 sequence in string".to_string())
}

/// Decodes a string token (with its quotes) the way QEMU does.
fn parse_string(tok: &[u8]) -> PResult<String> {
    let quote = tok[0];
    let body = &tok[1..tok.len().saturating_sub(1).max(1)];
    debug_assert_eq!(tok.last(), Some(&quote));
    let mut out = String::with_capacity(body.len());
    let mut p = 0;
    while p < body.len() {
        let c = body[p];
        if c != b'\\' {
            // Plain bytes: take the longest ASCII run at once.
            let run = crate::scan::plain_ascii_run(&body[p..]);
            if run > 0 {
                // The run is ASCII, hence valid UTF-8.
                out.push_str(std::str::from_utf8(&body[p..p + run]).unwrap_or(""));
                p += run;
                continue;
            }
            let (cp, used) = utf8::decode(&body[p..]);
            match cp.and_then(char::from_u32) {
                Some(ch) => out.push(ch),
                None => return Err("invalid UTF-8 sequence in string".into()),
            }
            p += used;
            continue;
        }
        let beg = p;
        p += 1;
        let esc = body.get(p).copied().unwrap_or(quote);
        p += 1;
        match esc {
            b'"' => out.push('"'),
            b'\'' => out.push('\''),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let mut cp = hex4(&body[p.min(body.len())..]).map_or(-1i64, i64::from);
                p += 4;
                if (0xD800..=0xDBFF).contains(&cp)
                    && body.get(p) == Some(&b'\\')
                    && body.get(p + 1) == Some(&b'u')
                {
                    let lead = cp;
                    cp = match hex4(&body[(p + 2).min(body.len())..]) {
                        Some(t) if (0xDC00..=0xDFFF).contains(&t) => {
                            p += 6;
                            0x10000 + ((lead & 0x3FF) << 10) + (i64::from(t) & 0x3FF)
                        }
                        _ => -1,
                    };
                }
                let ch = u32::try_from(cp)
                    .ok()
                    .filter(|&c| utf8::is_valid_codepoint(c))
                    .and_then(char::from_u32);
                match ch {
                    Some(ch) => out.push(ch),
                    None => {
                        // QEMU prints the escape as written; the token text ends at the
                        // closing quote, which it includes when the escape runs into it.
                        let shown = &tok[beg + 1..(p + 1).min(tok.len())];
                        return Err(format!(
                            "{} is not a valid Unicode character",
                            String::from_utf8_lossy(shown)
                        ));
                    }
                }
            }
            _ => return Err("invalid escape sequence in string".into()),
        }
    }
    Ok(out)
}

/// Parses one complete message's tokens.
pub(crate) fn parse(toks: &mut Tokens) -> PResult<Value> {
    let mut cur = Cursor { toks, pos: 0 };
    cur.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> PResult<String> {
        parse_string(text.as_bytes())
    }

    #[test]
    fn test_parse_string_escapes() {
        assert_eq!(
            s(r#""a\"\'\\\/\b\f\n\r\t""#).unwrap(),
            "a\"'\\/\u{8}\u{c}\n\r\t"
        );
        assert_eq!(s(r#"'x\u00e9\ud83d\ude00'"#).unwrap(), "xé😀");
    }

    #[test]
    fn test_parse_string_bad_escape() {
        assert_eq!(
            s(r#""\q""#).unwrap_err(),
            "invalid escape sequence in string"
        );
    }

    #[test]
    fn test_parse_string_short_unicode_escape_shows_quote() {
        assert_eq!(
            s(r#""\u12""#).unwrap_err(),
            r#"\u12" is not a valid Unicode character"#
        );
    }

    #[test]
    fn test_parse_string_lone_surrogate() {
        assert_eq!(
            s(r#""\ud800""#).unwrap_err(),
            r"\ud800 is not a valid Unicode character"
        );
        assert_eq!(
            s(r#""\uFFFF""#).unwrap_err(),
            r"\uFFFF is not a valid Unicode character"
        );
    }

    #[test]
    fn test_parse_string_modified_utf8_nul() {
        assert_eq!(parse_string(b"\"a\xc0\x80b\"").unwrap(), "a\0b");
        assert_eq!(s(r#""\u0000""#).unwrap(), "\0");
    }

    #[test]
    fn test_parse_string_invalid_utf8() {
        assert_eq!(
            parse_string(b"\"\xe0\x80\x80\"").unwrap_err(),
            "invalid UTF-8 sequence in string"
        );
        assert_eq!(
            parse_string(b"\"\xef\xbf\xbe\"").unwrap_err(),
            "invalid UTF-8 sequence in string"
        );
    }
}
