//! QEMU's "modified UTF-8" rules: which byte sequences are characters, used both when
//! parsing strings and when writing replies.

/// Whether `cp` is a code point QEMU accepts: in range, no surrogate, no noncharacter.
pub(crate) fn is_valid_codepoint(cp: u32) -> bool {
    cp <= 0x10FFFF
        && !(0xFDD0..=0xFDEF).contains(&cp)
        && (cp & 0xFFFE) != 0xFFFE
        && !(0xD800..=0xDFFF).contains(&cp)
}

/// Decodes one character at the start of `s` (non-empty). Returns the code point (`None`
/// for an invalid sequence) and the number of bytes consumed. `C0 80` is U+0000.
pub(crate) fn decode(s: &[u8]) -> (Option<u32>, usize) {
    const MIN: [u32; 5] = [0x80, 0x800, 0x10000, 0x20_0000, 0x400_0000];
    let Some(&first) = s.first() else {
        return (None, 0);
    };
    if first < 0x80 {
        return (Some(u32::from(first)), 1);
    }
    if first >= 0xFE || first & 0x40 == 0 {
        return (None, 1);
    }
    let len = first.leading_ones() as usize;
    let mut cp = u32::from(first) & ((0x80u32 >> len) - 1);
    for i in 1..len {
        let byte = s.get(i).copied().unwrap_or(0);
        if byte & 0xC0 != 0x80 {
            return (None, i);
        }
        cp = (cp << 6) | u32::from(byte & 0x3F);
    }
    let ok = cp <= 0x10FFFF
        && !(0xFDD0..=0xFDEF).contains(&cp)
        && (cp & 0xFFFE) != 0xFFFE
        && !(0xD800..=0xDFFF).contains(&cp)
        && (cp >= MIN[len - 2] || (cp == 0 && len == 2));
    (ok.then_some(cp), len)
}

/// Decodes bytes that may hold invalid sequences into a string, one U+FFFD per invalid
/// sequence as QEMU's writer does; the text ends at the first NUL byte (a C string).
pub(crate) fn lossy(bytes: &[u8]) -> String {
    let bytes = match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    };
    let mut out = String::with_capacity(bytes.len());
    let mut p = 0;
    while p < bytes.len() {
        let (cp, used) = decode(&bytes[p..]);
        out.push(cp.and_then(char::from_u32).unwrap_or('\u{FFFD}'));
        p += used.max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_decode_ascii_and_multibyte() {
        assert_eq!(decode(b"a"), (Some(0x61), 1));
        assert_eq!(decode("é".as_bytes()), (Some(0xE9), 2));
        assert_eq!(decode("😀".as_bytes()), (Some(0x1F600), 4));
    }

    #[test]
    fn test_decode_rejects_overlong_surrogate_noncharacter() {
        assert_eq!(decode(b"\xe0\x80\x80").0, None);
        assert_eq!(decode(b"\xed\xa0\x80").0, None);
        assert_eq!(decode(b"\xef\xbf\xbe").0, None);
        assert_eq!(decode(b"\xc0\x80"), (Some(0), 2));
    }

    #[test]
    fn test_decode_truncated_sequence_consumes_valid_prefix() {
        assert_eq!(decode(b"\xe2\x82"), (None, 2));
        assert_eq!(decode(b"\x80"), (None, 1));
        assert_eq!(decode(b"\xff"), (None, 1));
    }

    #[test]
    fn test_lossy_stops_at_nul() {
        assert_eq!(lossy(b"ab\0cd"), "ab");
        assert_eq!(lossy(b"\"guest-\xff"), "\"guest-\u{FFFD}");
    }
}
