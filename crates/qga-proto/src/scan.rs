//! Fast scans over long runs of bytes (base64 payloads of tens of MiB go through the lexer,
//! the string decoder and the writer), eight bytes at a time.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `v` is below `n` (exact for `n <= 128`).
#[inline]
fn has_less(v: u64, n: u8) -> bool {
    (v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS) != 0
}

/// Whether any byte of `v` equals `b`.
#[inline]
fn has_byte(v: u64, b: u8) -> bool {
    let x = v ^ (ONES * u64::from(b));
    (x.wrapping_sub(ONES) & !x & HIGHS) != 0
}

#[inline]
fn word(chunk: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(chunk);
    u64::from_le_bytes(a)
}

/// Length of the leading run of `bytes` for which `slow` is true, using `fast` to skip
/// whole 8-byte words known to qualify.
#[inline]
fn run(bytes: &[u8], fast: impl Fn(u64) -> bool, slow: impl Fn(u8) -> bool) -> usize {
    let mut i = 0;
    while i + 8 <= bytes.len() && fast(word(&bytes[i..i + 8])) {
        i += 8;
    }
    i + bytes[i..]
        .iter()
        .position(|&b| !slow(b))
        .unwrap_or(bytes.len() - i)
}

/// Bytes inside a string token that the lexer takes as they are: not the closing `quote`,
/// not a backslash, within 0x20..=0xFD.
pub(crate) fn string_body_run(bytes: &[u8], quote: u8) -> usize {
    run(
        bytes,
        |v| !has_less(v, 0x20) && !has_byte(v, quote) && !has_byte(v, b'\\') && !has_less(!v, 2),
        |b| b != quote && b != b'\\' && (0x20..=0xFD).contains(&b),
    )
}

/// ASCII bytes other than backslash (copied verbatim when decoding a string).
pub(crate) fn plain_ascii_run(bytes: &[u8]) -> usize {
    run(
        bytes,
        |v| v & HIGHS == 0 && !has_byte(v, b'\\'),
        |b| b < 0x80 && b != b'\\',
    )
}

/// Bytes the writer copies verbatim: printable ASCII other than `"` and `\`.
pub(crate) fn json_safe_run(bytes: &[u8]) -> usize {
    run(
        bytes,
        |v| {
            v & HIGHS == 0
                && !has_less(v, 0x20)
                && !has_byte(v, 0x7F)
                && !has_byte(v, b'"')
                && !has_byte(v, b'\\')
        },
        |b| (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\',
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slow(bytes: &[u8], f: impl Fn(u8) -> bool) -> usize {
        bytes.iter().position(|&b| !f(b)).unwrap_or(bytes.len())
    }

    proptest! {
        #[test]
        fn prop_scans_match_bytewise(bytes in proptest::collection::vec(any::<u8>(), 0..64), prefix in 0usize..40) {
            let mut input = vec![b'a'; prefix];
            input.extend_from_slice(&bytes);
            prop_assert_eq!(string_body_run(&input, b'"'), slow(&input, |b| b != b'"' && b != b'\\' && (0x20..=0xFD).contains(&b)));
            prop_assert_eq!(string_body_run(&input, b'\''), slow(&input, |b| b != b'\'' && b != b'\\' && (0x20..=0xFD).contains(&b)));
            prop_assert_eq!(plain_ascii_run(&input), slow(&input, |b| b < 0x80 && b != b'\\'));
            prop_assert_eq!(json_safe_run(&input), slow(&input, |b| (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\'));
        }
    }
}
