//! Writes values exactly as qemu-ga does: `": "` and `", "` separators, members in QDict
//! order, pure ASCII with uppercase `\uXXXX` escapes, doubles as C's `%.17g`.

use std::io::{self, Write};

use crate::utf8;
use crate::value::{ByteStream, Value};

/// Where the writer puts text: a buffer, or a stream fed from a bounded buffer.
trait Out {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, b: u8) {
        self.put(&[b]);
    }
    /// The base64 text of `data`.
    fn put_base64(&mut self, data: &[u8]);
    /// The base64 text of a stream's bytes, read piece by piece (whole groups of three, so no
    /// padding appears inside the text).
    fn put_stream(&mut self, s: &ByteStream) {
        s.drain(BASE64_PIECE, &mut |piece| self.put_base64(piece));
    }
}

/// Counts the text instead of keeping it; a stream is counted without being read.
struct Count(usize);

impl Out for Count {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    fn put_base64(&mut self, data: &[u8]) {
        self.0 += crate::b64::encoded_len(data.len());
    }

    fn put_stream(&mut self, s: &ByteStream) {
        self.0 += crate::b64::encoded_len(s.len());
    }
}

/// The exact length of the JSON text of `v`, without building it (streams stay unread).
pub fn value_len(v: &Value) -> usize {
    let mut n = Count(0);
    value(&mut n, v);
    n.0
}

impl Out for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    fn put_byte(&mut self, b: u8) {
        self.push(b);
    }

    fn put_base64(&mut self, data: &[u8]) {
        // Straight into the spare capacity: no zero-fill first.
        crate::b64::encode_append(data, self);
    }
}

/// Size of the buffer between the writer and a stream.
const STREAM_BUFFER: usize = 64 * 1024;
/// Replies up to about this size (by [`Value::size_hint`]) are built whole and go out in one
/// write, so the reader is woken once rather than once per piece; larger ones go through a
/// buffer of [`STREAM_BUFFER`].
const WHOLE_REPLY_MAX: usize = 256 * 1024;
/// Bytes of binary data encoded per piece (a multiple of 3: no padding inside the text).
const BASE64_PIECE: usize = STREAM_BUFFER / 4 * 3;

/// Writes to a stream through a fixed buffer, so a reply of tens of MiB is never held whole;
/// the first error is kept and stops further writes.
struct StreamOut<'w, W: Write> {
    w: &'w mut W,
    /// Pending text; never grows past its initial capacity (`cap`).
    buf: Vec<u8>,
    cap: usize,
    err: Option<io::Error>,
}

impl<W: Write> StreamOut<'_, W> {
    fn flush_buf(&mut self) {
        if self.err.is_none()
            && !self.buf.is_empty()
            && let Err(e) = self.w.write_all(&self.buf)
        {
            self.err = Some(e);
        }
        self.buf.clear();
    }
}

impl<W: Write> Out for StreamOut<'_, W> {
    fn put(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > self.cap {
            self.flush_buf();
            if bytes.len() > self.cap {
                if self.err.is_none()
                    && let Err(e) = self.w.write_all(bytes)
                {
                    self.err = Some(e);
                }
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    fn put_base64(&mut self, data: &[u8]) {
        for piece in data.chunks(BASE64_PIECE) {
            if self.buf.len() + crate::b64::encoded_len(piece.len()) > self.cap {
                self.flush_buf();
            }
            if self.err.is_some() {
                return;
            }
            crate::b64::encode_append(piece, &mut self.buf);
        }
    }
}

/// Appends the JSON text of `v` to `out`.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    value(out, v);
}

/// Writes `prefix`, the JSON text of `v` and `suffix` to `w`: a reply of up to about 256 KiB
/// (by [`Value::size_hint`]) in one write, a larger one (binary data of tens of MiB) through a
/// buffer of 64 KiB, encoded piece by piece as the stream takes them.
pub fn write_value_to(
    w: &mut impl Write,
    prefix: &[u8],
    v: &Value,
    suffix: &[u8],
) -> io::Result<()> {
    let total = prefix.len() + v.size_hint() + suffix.len();
    let size = if total <= WHOLE_REPLY_MAX {
        total
    } else {
        STREAM_BUFFER
    };
    let mut out = StreamOut {
        w,
        buf: Vec::with_capacity(size),
        cap: size,
        err: None,
    };
    out.put(prefix);
    value(&mut out, v);
    out.put(suffix);
    out.flush_buf();
    out.err.map_or(Ok(()), Err)
}

fn value(out: &mut impl Out, v: &Value) {
    match v {
        Value::Null => out.put(b"null"),
        Value::Bool(true) => out.put(b"true"),
        Value::Bool(false) => out.put(b"false"),
        Value::Int(i) => out.put(i.to_string().as_bytes()),
        Value::UInt(u) => out.put(u.to_string().as_bytes()),
        Value::Double(d) => out.put(format_g17(*d).as_bytes()),
        Value::Str(s) => string(out, s.as_bytes()),
        Value::Bytes(b) => {
            // Base64 text needs no escapes.
            out.put_byte(b'"');
            out.put_base64(b);
            out.put_byte(b'"');
        }
        Value::Stream(s) => {
            out.put_byte(b'"');
            out.put_stream(s);
            out.put_byte(b'"');
        }
        Value::List(items) => {
            out.put_byte(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(b", ");
                }
                value(out, item);
            }
            out.put_byte(b']');
        }
        Value::Dict(d) => {
            out.put_byte(b'{');
            for (i, (k, item)) in d.qdict_order().into_iter().enumerate() {
                if i > 0 {
                    out.put(b", ");
                }
                string(out, k.as_bytes());
                out.put(b": ");
                value(out, item);
            }
            out.put_byte(b'}');
        }
    }
}

/// Appends a JSON string for `bytes` (modified UTF-8; invalid sequences become U+FFFD).
pub fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    string(out, bytes);
}

fn string(out: &mut impl Out, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let esc = |out: &mut dyn FnMut(&[u8]), cp: u32| {
        let mut e = *b"\\u0000";
        for (i, shift) in [12, 8, 4, 0].into_iter().enumerate() {
            e[2 + i] = HEX[((cp >> shift) & 0xF) as usize];
        }
        out(&e);
    };
    out.put_byte(b'"');
    let mut p = 0;
    while p < bytes.len() {
        // Printable ASCII that needs no escape: copy the whole run.
        let run = crate::scan::json_safe_run(&bytes[p..]);
        if run > 0 {
            out.put(&bytes[p..p + run]);
            p += run;
            continue;
        }
        let (cp, used) = utf8::decode(&bytes[p..]);
        p += used.max(1);
        let put = &mut |b: &[u8]| out.put(b);
        match cp {
            Some(0x22) => put(b"\\\""),
            Some(0x5C) => put(b"\\\\"),
            Some(0x08) => put(b"\\b"),
            Some(0x0C) => put(b"\\f"),
            Some(0x0A) => put(b"\\n"),
            Some(0x0D) => put(b"\\r"),
            Some(0x09) => put(b"\\t"),
            Some(cp) if cp > 0xFFFF => {
                esc(put, 0xD800 + ((cp - 0x10000) >> 10));
                esc(put, 0xDC00 + ((cp - 0x10000) & 0x3FF));
            }
            Some(cp) => esc(put, cp),
            None => esc(put, 0xFFFD),
        }
    }
    out.put_byte(b'"');
}

/// Formats a double like C's `printf("%.17g")`.
pub fn format_g17(d: f64) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() {
            "-nan".into()
        } else {
            "nan".into()
        };
    }
    if d.is_infinite() {
        return if d < 0.0 { "-inf".into() } else { "inf".into() };
    }
    // 17 significant digits, correctly rounded, in scientific form: "d.dddddddddddddddde±x".
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..17).contains(&exp) {
        let body = if exp >= 0 {
            let point = usize::try_from(exp).unwrap_or(0) + 1;
            format!("{}.{}", &digits[..point], &digits[point..])
        } else {
            let zeros = "0".repeat(usize::try_from(-exp - 1).unwrap_or(0));
            format!("0.{zeros}{digits}")
        };
        let body = body.trim_end_matches('0').trim_end_matches('.');
        format!("{sign}{body}")
    } else {
        let frac = digits[1..].trim_end_matches('0');
        let point = if frac.is_empty() {
            String::new()
        } else {
            format!(".{frac}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{}{point}e{esign}{:02}", &digits[..1], exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Dict;

    fn text(v: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn test_stream_writes_as_bytes_and_is_counted_unread() {
        let data: Vec<u8> = (0..200_003u32).map(|i| (i % 253) as u8).collect();
        let mut d = Dict::new();
        d.insert("count", Value::Int(data.len() as i64));
        d.insert("buf-b64", Value::Bytes(data.clone()));
        let want = text(&Value::Dict(d.clone()));
        let mut ds = Dict::new();
        ds.insert("count", Value::Int(data.len() as i64));
        let stream = ByteStream::new(data.len(), Box::new(std::io::Cursor::new(data.clone())));
        ds.insert("buf-b64", Value::Stream(stream));
        let v = Value::Dict(ds);
        // Counting does not read the source: the text written afterwards is whole.
        assert_eq!(value_len(&v), want.len());
        let mut streamed = Vec::new();
        write_value_to(&mut streamed, b"", &v, b"").unwrap();
        assert_eq!(String::from_utf8(streamed).unwrap(), want);
        // Written once: a second writing finds no source and gives zeros of the same length.
        assert_eq!(text(&v).len(), want.len());
    }

    #[test]
    fn test_stream_short_source_keeps_announced_length() {
        let s = ByteStream::new(10, Box::new(std::io::Cursor::new(b"abc".to_vec())));
        assert_eq!(s.read_all(), b"abc\0\0\0\0\0\0\0");
        assert_eq!(s.read_all(), vec![0u8; 10]);
    }

    #[test]
    fn test_format_g17_matches_c() {
        assert_eq!(format_g17(100.0), "100");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(18446744073709551616.0), "1.8446744073709552e+19");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(-0.0), "-0");
        assert_eq!(format_g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(1e16), "10000000000000000");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(f64::INFINITY), "inf");
    }

    #[test]
    fn test_write_string_escapes_non_ascii_uppercase() {
        assert_eq!(
            text(&Value::Str("é\u{201C}😀\u{7f}\0/".into())),
            r#""\u00E9\u201C\uD83D\uDE00\u007F\u0000/""#
        );
    }

    #[test]
    fn test_write_invalid_bytes_as_replacement() {
        let mut out = Vec::new();
        write_string(&mut out, b"a\xffb");
        assert_eq!(out, br#""a\uFFFDb""#);
    }

    #[test]
    fn test_bytes_written_as_base64_string_streamed_or_not() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut d = Dict::new();
        d.insert("count", Value::Int(3));
        d.insert("buf-b64", Value::Bytes(data.clone()));
        d.insert("eof", Value::Bool(true));
        let mut as_str = Dict::new();
        as_str.insert("count", Value::Int(3));
        as_str.insert("buf-b64", Value::Str(crate::b64::encode(&data)));
        as_str.insert("eof", Value::Bool(true));
        let want = text(&Value::Dict(as_str));
        assert_eq!(text(&Value::Dict(d.clone())), want);
        let mut streamed = Vec::new();
        write_value_to(&mut streamed, b"\xff", &Value::Dict(d), b"\n").unwrap();
        assert_eq!(streamed, [b"\xff", want.as_bytes(), b"\n"].concat());
    }

    /// Records the length of every write it is given.
    struct Writes(Vec<usize>, Vec<u8>);

    impl Write for Writes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.len());
            self.1.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn test_reply_up_to_limit_in_one_write_larger_in_pieces() {
        // Binary data whose reply is under the limit or over it.
        let frame = |n: usize| {
            let mut d = Dict::new();
            d.insert("count", Value::Int(n as i64));
            d.insert("buf-b64", Value::Bytes(vec![7u8; n]));
            Value::Dict(d)
        };
        for (n, whole) in [
            (65536, true),
            (WHOLE_REPLY_MAX / 4 * 3 - 100, true),
            (WHOLE_REPLY_MAX / 4 * 3 + 100, false),
            (1 << 20, false),
        ] {
            let v = frame(n);
            let mut w = Writes(Vec::new(), Vec::new());
            write_value_to(&mut w, b"\xff", &v, b"\n").unwrap();
            assert_eq!(w.1, [b"\xff", text(&v).as_bytes(), b"\n"].concat(), "{n}");
            if whole {
                assert_eq!(w.0, [w.1.len()], "{n}");
            } else {
                assert!(
                    w.0.len() > 1 && w.0.iter().all(|&l| l <= STREAM_BUFFER),
                    "{n}"
                );
            }
        }
    }

    #[test]
    fn test_streamed_long_strings_same_as_buffered() {
        let v = Value::List(vec![
            Value::Str("é\"x".repeat(40_000)),
            Value::Str("a".repeat(200_000)),
            Value::Int(-1),
        ]);
        let mut streamed = Vec::new();
        write_value_to(&mut streamed, b"", &v, b"").unwrap();
        assert_eq!(String::from_utf8(streamed).unwrap(), text(&v));
    }

    #[test]
    fn test_write_dict_and_list_separators() {
        let mut d = Dict::new();
        d.insert(
            "return",
            Value::List(vec![Value::Int(1), Value::Bool(false)]),
        );
        assert_eq!(text(&Value::Dict(d)), r#"{"return": [1, false]}"#);
    }
}
