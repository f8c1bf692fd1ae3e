//! Fast scans over long runs of bytes (base64 payloads of tens of MiB go through the lexer,
//! the string decoder and the writer), eight bytes at a time.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bits set where bytes of `v` are below `n` (nonzero exactly when one is, for
/// `n <= 128`; bits above the first such byte may be spurious).
#[inline]
fn less_mask(v: u64, n: u8) -> u64 {
    v.wrapping_sub(ONES * u64::from(n)) & !v & HIGHS
}

/// Whether any byte of `v` is below `n` (exact for `n <= 128`).
#[inline]
fn has_less(v: u64, n: u8) -> bool {
    less_mask(v, n) != 0
}

/// High bits set where bytes of `v` equal `b` (nonzero exactly when one does).
#[inline]
fn eq_mask(v: u64, b: u8) -> u64 {
    less_mask(v ^ (ONES * u64::from(b)), 1)
}

/// Whether any byte of `v` equals `b`.
#[inline]
fn has_byte(v: u64, b: u8) -> bool {
    eq_mask(v, b) != 0
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
/// not a backslash, within 0x20..=0xFD. Returns the run's length and whether all of it is
/// ASCII. Large payloads go through here: whole 64-byte blocks are checked with a loop
/// written so that the compiler vectorises it (one branch per block; about three times the
/// speed of the 8-byte steps on this project's machine), the rest 8 bytes, then one byte,
/// at a time.
pub(crate) fn string_body_run(bytes: &[u8], quote: u8) -> (usize, bool) {
    const BLOCK: usize = 64;
    let mut high = 0u8;
    let mut i = 0;
    while let Some(block) = bytes.get(i..i + BLOCK) {
        let mut stop = 0u8;
        let mut block_high = 0u8;
        for &b in block {
            stop |= u8::from(b < 0x20)
                | u8::from(b == quote)
                | u8::from(b == b'\\')
                | u8::from(b >= 0xFE);
            block_high |= b;
        }
        if stop != 0 {
            break;
        }
        high |= block_high;
        i += BLOCK;
    }
    let stop =
        |v: u64| less_mask(v, 0x20) | eq_mask(v, quote) | eq_mask(v, b'\\') | less_mask(!v, 2);
    while let Some(chunk) = bytes.get(i..i + 8) {
        let v = word(chunk);
        if stop(v) != 0 {
            break;
        }
        high |= v.to_le_bytes().iter().fold(0, |a, b| a | b);
        i += 8;
    }
    for &b in &bytes[i..] {
        if b == quote || b == b'\\' || !(0x20..=0xFD).contains(&b) {
            break;
        }
        high |= b;
        i += 1;
    }
    (i, high & 0x80 == 0)
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
        /// Long plain runs with one byte of any value planted anywhere: every position in
        /// and around the 32- and 8-byte steps.
        #[test]
        fn prop_string_body_run_one_planted_byte(len in 0usize..200, pos in 0usize..200, b in any::<u8>()) {
            let mut input = vec![b'Q'; len];
            if pos < len {
                input[pos] = b;
            }
            for quote in [b'"', b'\''] {
                let n = slow(&input, |b| b != quote && b != b'\\' && (0x20..=0xFD).contains(&b));
                prop_assert_eq!(string_body_run(&input, quote), (n, input[..n].is_ascii()));
            }
        }

        #[test]
        fn prop_scans_match_bytewise(bytes in proptest::collection::vec(any::<u8>(), 0..64), prefix in 0usize..40) {
            let mut input = vec![b'a'; prefix];
            input.extend_from_slice(&bytes);
            for quote in [b'"', b'\''] {
                let n = slow(&input, |b| b != quote && b != b'\\' && (0x20..=0xFD).contains(&b));
                prop_assert_eq!(string_body_run(&input, quote), (n, input[..n].is_ascii()));
            }
            prop_assert_eq!(plain_ascii_run(&input), slow(&input, |b| b < 0x80 && b != b'\\'));
            prop_assert_eq!(json_safe_run(&input), slow(&input, |b| (0x20..0x7F).contains(&b) && b != b'"' && b != b'\\'));
        }
    }
}
