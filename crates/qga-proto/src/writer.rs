//! Writes values exactly as qemu-ga does: `": "` and `", "` separators, members in QDict
//! order, pure ASCII with uppercase `\uXXXX` escapes, doubles as C's `%.17g`.

use crate::utf8;
use crate::value::Value;

/// Appends the JSON text of `v` to `out`.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::UInt(u) => out.extend_from_slice(u.to_string().as_bytes()),
        Value::Double(d) => out.extend_from_slice(format_g17(*d).as_bytes()),
        Value::Str(s) => write_string(out, s.as_bytes()),
        Value::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Dict(d) => {
            out.push(b'{');
            for (i, (k, item)) in d.qdict_order().into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_string(out, k.as_bytes());
                out.extend_from_slice(b": ");
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// Appends a JSON string for `bytes` (modified UTF-8; invalid sequences become U+FFFD).
pub fn write_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let esc = |out: &mut Vec<u8>, cp: u32| {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[((cp >> shift) & 0xF) as usize]);
        }
    };
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut p = 0;
    while p < bytes.len() {
        // Printable ASCII that needs no escape: copy the whole run.
        let run = crate::scan::json_safe_run(&bytes[p..]);
        if run > 0 {
            out.extend_from_slice(&bytes[p..p + run]);
            p += run;
            continue;
        }
        let (cp, used) = utf8::decode(&bytes[p..]);
        p += used.max(1);
        match cp {
            Some(0x22) => out.extend_from_slice(b"\\\""),
            Some(0x5C) => out.extend_from_slice(b"\\\\"),
            Some(0x08) => out.extend_from_slice(b"\\b"),
            Some(0x0C) => out.extend_from_slice(b"\\f"),
            Some(0x0A) => out.extend_from_slice(b"\\n"),
            Some(0x0D) => out.extend_from_slice(b"\\r"),
            Some(0x09) => out.extend_from_slice(b"\\t"),
            Some(cp) if cp > 0xFFFF => {
                esc(out, 0xD800 + ((cp - 0x10000) >> 10));
                esc(out, 0xDC00 + ((cp - 0x10000) & 0x3FF));
            }
            Some(cp) => esc(out, cp),
            None => esc(out, 0xFFFD),
        }
    }
    out.push(b'"');
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
    fn test_write_dict_and_list_separators() {
        let mut d = Dict::new();
        d.insert(
            "return",
            Value::List(vec![Value::Int(1), Value::Bool(false)]),
        );
        assert_eq!(text(&Value::Dict(d)), r#"{"return": [1, false]}"#);
    }
}
