//! A small mutation engine for the stable toolchain: random edits of corpus entries (bit and
//! byte flips, inserts, deletes, duplicated or spliced ranges, interesting tokens), driven by
//! a seeded xorshift generator so a failing run is reproducible from its seed.

/// Tokens worth inserting into the inputs of a JSON, key-file or /proc parser.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"'",
    b":",
    b",",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\\u0000",
    b"\xff",
    b"\xfe",
    b"\x00",
    b"\n",
    b"\r",
    b"\t",
    b" ",
    b"=",
    b";",
    b"#",
    b"[general]",
    b"-1",
    b"0",
    b"9223372036854775808",
    b"18446744073709551616",
    b"1e999",
    b"-0.0",
    b"true",
    b"null",
    b"\"execute\"",
    b"\"arguments\"",
    b"\"id\"",
    b"guest-sync",
    b"@file",
    b"\\040",
    b"\\x",
    b"\xc3\x28",
    b"\xf4\x90\x80\x80",
    b"::",
    b"$6$",
    b"ssh-ed25519 ",
];

/// A xorshift64* generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Applies one to eight random edits to `data`; `other` is a second corpus entry for
/// splicing. The result stays under `max_len` bytes.
pub fn mutate(rng: &mut Rng, data: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    for _ in 0..=rng.below(8) {
        let len = v.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next_u64() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                v.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = v[i..i + n].to_vec();
                let at = rng.below(len + 1);
                let times = 1 + rng.below(4);
                for _ in 0..times {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                let i = rng.below(other.len());
                let n = 1 + rng.below(other.len() - i);
                let at = rng.below(len + 1);
                v.splice(at..at, other[i..i + n].iter().copied());
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            7 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(8));
                v.drain(i..i + n);
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(i..i, t.iter().copied());
            }
            _ => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                v.splice(at..at, t.iter().copied());
            }
        }
    }
    v.truncate(max_len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mutations_are_bounded_and_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = mutate(&mut a, b"{\"execute\":\"guest-ping\"}", b"[1,2]", 64);
            let y = mutate(&mut b, b"{\"execute\":\"guest-ping\"}", b"[1,2]", 64);
            assert_eq!(x, y);
            assert!(x.len() <= 64);
        }
    }
}
