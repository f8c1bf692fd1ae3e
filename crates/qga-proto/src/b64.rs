//! Base64 as qemu-ga handles it: standard alphabet with padding on output; on input only
//! the alphabet, `=` and newlines are allowed ("Base64 data contains invalid characters"),
//! and decoding is GLib's lenient one (newlines skipped, `=` anywhere, a trailing partial
//! group dropped), so that every input decodes to the same bytes as with qemu-ga.

use base64_simd::{Out, STANDARD};

/// The error text for characters outside the accepted set.
pub const INVALID_CHARACTERS: &str = "Base64 data contains invalid characters";

/// Encodes bytes (standard alphabet, padded, no line breaks).
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode_to_string(bytes)
}

/// Length of the encoding of `n` bytes.
pub fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Encodes `bytes` into the start of `out`, which must hold [`encoded_len`] bytes; returns
/// that length. Lets callers encode straight into a reply or request buffer.
pub fn encode_to_slice(bytes: &[u8], out: &mut [u8]) -> usize {
    if out.len() < encoded_len(bytes.len()) {
        return 0;
    }
    STANDARD.encode(bytes, Out::from_slice(out)).len()
}

/// Appends the encoding of `bytes` to `out` (into its spare capacity, without zero-filling
/// it first).
pub fn encode_append(bytes: &[u8], out: &mut Vec<u8>) {
    STANDARD.encode_append(bytes, out);
}

/// Whether `text` is whole groups of four alphabet characters, without padding (the
/// vectorised check).
fn is_whole_unpadded(text: &[u8]) -> bool {
    text.len().is_multiple_of(4) && text.last() != Some(&b'=') && STANDARD.check(text).is_ok()
}

/// Whether `c` is one of base64's 64 alphabet characters.
pub(crate) fn is_alphabet(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

/// Length of the longest prefix of `text` made of whole groups of four alphabet characters.
/// The usual answers are found with the vectorised check: all of it, or all but a last group
/// that holds padding; anything else is looked for byte by byte.
pub(crate) fn alphabet_groups(text: &[u8]) -> usize {
    let whole = text.len() / 4 * 4;
    if is_whole_unpadded(&text[..whole]) {
        return whole;
    }
    if whole >= 4 && is_whole_unpadded(&text[..whole - 4]) {
        return whole - 4;
    }
    text.iter()
        .position(|&c| !is_alphabet(c))
        .unwrap_or(text.len())
        / 4
        * 4
}

/// Decodes whole unpadded groups of alphabet characters over themselves; the bytes are at
/// the start of `text` afterwards. `None` (and `text` untouched) if it is anything else.
pub fn decode_canonical_in_place(text: &mut [u8]) -> Option<usize> {
    if !is_whole_unpadded(text) {
        return None;
    }
    STANDARD.decode_inplace(text).ok().map(|d| d.len())
}

/// Appends the bytes of whole unpadded groups of alphabet characters to `out`; false (and
/// `out` untouched) if `text` is anything else.
pub fn decode_canonical_append_unpadded(text: &[u8], out: &mut Vec<u8>) -> bool {
    // The decoder checks the alphabet itself (and refuses `=` inside the text): no separate
    // pass over the text (the lexer hands over what `alphabet_groups` measured already).
    if !text.len().is_multiple_of(4) || text.last() == Some(&b'=') {
        return false;
    }
    let start = out.len();
    if STANDARD.decode_append(text, out).is_err() {
        out.truncate(start);
        return false;
    }
    true
}

/// Appends the bytes of one group of four characters, padded or not, if it is canonical:
/// the bytes encode back to exactly this text (so no stray bits after a padded group's
/// data). False, and `out` untouched, otherwise.
pub fn decode_canonical_append(group: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    if group.len() != 4 || STANDARD.decode_append(group, out).is_err() {
        out.truncate(start);
        return false;
    }
    let mut again = [0u8; 4];
    if encode_to_slice(&out[start..], &mut again) != 4 || again != group {
        out.truncate(start);
        return false;
    }
    true
}

/// Decodes canonical base64 (whole padded groups, alphabet only) into the start of `out`;
/// `None` if `text` is not canonical or `out` is too small. Whole canonical groups decode the
/// same as with [`decode`], so a caller can decode a long text group-aligned piece by piece
/// and hand only what this refuses to [`decode`].
pub fn decode_canonical_to_slice(text: &[u8], out: &mut [u8]) -> Option<usize> {
    if STANDARD.decoded_length(text).ok()? > out.len() {
        return None;
    }
    STANDARD
        .decode(text, Out::from_slice(out))
        .ok()
        .map(|d| d.len())
}

const INVALID: u8 = 0xFF;
const SKIP: u8 = 0xFE;

const fn rank_table() -> [u8; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        t[b'A' as usize + i] = i as u8;
        t[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        t[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    t[b'+' as usize] = 62;
    t[b'/' as usize] = 63;
    t[b'=' as usize] = 0;
    t[b'\n' as usize] = SKIP;
    t
}

static RANK: [u8; 256] = rank_table();

/// Decodes like qemu-ga (`qbase64_decode`, then GLib's `g_base64_decode`).
pub fn decode(text: &str) -> Result<Vec<u8>, &'static str> {
    // Canonical base64 (what every client sends) decodes the same everywhere: take the fast
    // decoder; anything it refuses goes through GLib's rules below.
    if let Ok(bytes) = STANDARD.decode_to_vec(text) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 3);
    decode_lenient(text.as_bytes(), &mut out)?;
    Ok(out)
}

/// Text decoded per piece by [`decode_in_place`] (a multiple of 4).
const PIECE: usize = 64 * 1024;

/// Decodes like [`decode`], reusing the text's buffer for the bytes (they are shorter), so a
/// payload of tens of MiB is not held twice.
pub fn decode_in_place(text: String) -> Result<Vec<u8>, &'static str> {
    let mut buf = text.into_bytes();
    // Canonical text (what clients send): checked first, so that decoding over the text
    // itself cannot fail half-way and leave it clobbered; no other buffer is touched.
    if STANDARD.check(&buf).is_ok() {
        let n = STANDARD
            .decode_inplace(&mut buf)
            .map_err(|_| INVALID_CHARACTERS)?
            .len();
        buf.truncate(n);
        return Ok(buf);
    }
    // A piece buffer no larger than the text (a calloc of the whole piece per request was
    // most of a 4 KiB write's cost).
    let mut piece = vec![0u8; buf.len().min(PIECE) / 4 * 3 + 3];
    let (mut r, mut w) = (0, 0);
    while r < buf.len() {
        let end = (r + PIECE).min(buf.len());
        let Some(n) = decode_canonical_to_slice(&buf[r..end], &mut piece) else {
            break;
        };
        buf[w..w + n].copy_from_slice(&piece[..n]);
        (r, w) = (end, w + n);
    }
    if r < buf.len() {
        // Not canonical from this piece on: whole groups so far, so GLib's rules take over
        // from a group boundary with nothing pending.
        let mut rest = Vec::with_capacity((buf.len() - r) / 4 * 3 + 3);
        decode_lenient(&buf[r..], &mut rest)?;
        buf.truncate(w);
        buf.extend_from_slice(&rest);
    } else {
        buf.truncate(w);
    }
    Ok(buf)
}

/// GLib's decoding: newlines skipped, `=` anywhere, a trailing partial group dropped.
fn decode_lenient(input: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut i = 0;
    let mut v: u32 = 0;
    let mut last = [0u8; 2];
    let mut p = 0;
    // Fast path: whole groups of four alphabet characters without padding.
    while p + 4 <= input.len() && i == 0 {
        let (a, b, c, d) = (
            RANK[input[p] as usize],
            RANK[input[p + 1] as usize],
            RANK[input[p + 2] as usize],
            RANK[input[p + 3] as usize],
        );
        if (a | b | c | d) >= 64 || input[p..p + 4].contains(&b'=') {
            break;
        }
        let w = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        out.extend_from_slice(&[(w >> 16) as u8, (w >> 8) as u8, w as u8]);
        last = [input[p + 3], input[p + 2]];
        p += 4;
    }
    for &ch in &input[p..] {
        match RANK[ch as usize] {
            INVALID => return Err(INVALID_CHARACTERS),
            SKIP => {}
            rank => {
                last[1] = last[0];
                last[0] = ch;
                v = (v << 6) | u32::from(rank);
                i += 1;
                if i == 4 {
                    out.push((v >> 16) as u8);
                    if last[1] != b'=' {
                        out.push((v >> 8) as u8);
                    }
                    if last[0] != b'=' {
                        out.push(v as u8);
                    }
                    i = 0;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_decode_lenient_like_glib() {
        assert_eq!(decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode("aGVsbG8").unwrap(), b"hel");
        assert_eq!(decode("aGVs\nbG8=").unwrap(), b"hello");
        assert_eq!(decode("a").unwrap(), b"");
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("QQ==QQ==").unwrap(), b"AA");
        assert_eq!(decode("QUJD").unwrap(), b"ABC");
    }

    #[test]
    fn test_append_unpadded_refuses_all_but_whole_alphabet_groups() {
        let mut out = b"kept".to_vec();
        for bad in [
            &b"AAA"[..],
            b"AAA=",
            b"AA==AAAA",
            b"AAAA*AAA",
            b"AAA\nAAAA",
            b"AAAAAAA\0",
        ] {
            assert!(!decode_canonical_append_unpadded(bad, &mut out), "{bad:?}");
            assert_eq!(out, b"kept", "{bad:?} left bytes behind");
        }
        assert!(decode_canonical_append_unpadded(b"aGVsbG8h", &mut out));
        assert_eq!(out, b"kepthello!");
    }

    #[test]
    fn test_decode_rejects_outside_alphabet() {
        for bad in [
            "aGVs bG8=",
            "aGVs-bG8",
            "aGVs_bG8",
            "aGVs\rbG8=",
            "a\0",
            "é",
        ] {
            assert_eq!(decode(bad), Err(INVALID_CHARACTERS), "{bad:?}");
        }
    }

    #[test]
    fn test_decode_in_place_same_as_decode() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 256) as u8).collect();
        let canonical = encode(&data);
        let mut cases = vec![
            canonical.clone(),
            canonical[..canonical.len() - 3].to_string(),
        ];
        for at in [0, 5, PIECE - 1, PIECE, PIECE + 2, canonical.len() - 1] {
            for odd in ["\n", "=", "QQ==", " ", "-"] {
                let mut t = canonical.clone();
                t.insert_str(at, odd);
                cases.push(t);
            }
        }
        cases.extend(["QQ==QQ==", "aGVsbG8", "QR==", "", "a", "aGVs\nbG8="].map(String::from));
        for t in cases {
            assert_eq!(decode_in_place(t.clone()), decode(&t), "{}", t.len());
        }
    }

    proptest::proptest! {
        /// Whatever the fast decoder accepts decodes to GLib's bytes (so taking it first
        /// changes nothing), and every input gives the same result through decode_in_place.
        #[test]
        fn prop_fast_path_same_as_glib_rules(text in "[AQRgw/+=\n-]{0,24}") {
            let mut out = vec![0u8; 32];
            if let Some(n) = decode_canonical_to_slice(text.as_bytes(), &mut out) {
                let mut glib = Vec::new();
                decode_lenient(text.as_bytes(), &mut glib).unwrap();
                proptest::prop_assert_eq!(&out[..n], &glib[..]);
            }
            proptest::prop_assert_eq!(decode_in_place(text.clone()), decode(&text));
        }
    }

    #[test]
    fn test_roundtrip_all_lengths() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in 0..data.len() {
            assert_eq!(decode(&encode(&data[..n])).unwrap(), &data[..n]);
        }
    }
}
