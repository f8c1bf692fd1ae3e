//! The file-system root that readers of `/proc`, `/sys` and `/etc` work under: `/` in the
//! agent, a fixture tree in tests. Error texts keep the real (logical) paths either way.

use std::io;
use std::path::{Path, PathBuf};

/// Where `/proc`, `/sys`, `/etc` and `/dev` are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    base: PathBuf,
}

impl Default for SysRoot {
    fn default() -> Self {
        Self::host()
    }
}

impl SysRoot {
    /// The running system (`/`).
    pub fn host() -> Self {
        Self {
            base: PathBuf::from("/"),
        }
    }

    /// A tree whose directory `base` stands for `/`.
    pub fn at(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// Whether this is the running system.
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    /// The real path of the absolute path `abs` under this root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.base.join(abs.trim_start_matches('/'))
    }

    /// Reads `abs` (under this root) as text, invalid UTF-8 replaced.
    pub fn read_to_string(&self, abs: &str) -> io::Result<String> {
        let bytes = std::fs::read(self.path(abs))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// An OS error as C's `strerror` words it ("No such file or directory"), without the
/// " (os error 2)" that Rust appends; QEMU's texts embed the bare form.
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(pos) if text.ends_with(')') => text[..pos].to_string(),
        _ => text,
    }
}

/// `strerror` of a raw errno value (0 gives "Success", as glibc).
pub fn strerror_raw(errno: i32) -> String {
    strerror(&io::Error::from_raw_os_error(errno))
}

/// After an optional sign, the run of decimal digits that starts `s`, as C's number
/// scanners see it: `(negative, digits)`, `None` when there is no digit.
pub fn sign_and_digits(s: &str) -> Option<(bool, &str)> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    (end > 0).then(|| (neg, &rest[..end]))
}

/// The leading integer of `s` as C's `strtol`/`sscanf("%ld")` read it: optional white space,
/// an optional sign, then decimal digits; `None` when there is no digit. Saturates.
pub fn leading_i64(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = sign_and_digits(t)?;
    let mut value: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        value = if neg {
            value.saturating_mul(10).saturating_sub(d)
        } else {
            value.saturating_mul(10).saturating_add(d)
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_paths_under_root() {
        let r = SysRoot::at("/tmp/fx");
        assert_eq!(r.path("/proc/stat"), Path::new("/tmp/fx/proc/stat"));
        assert!(!r.is_host());
        assert_eq!(SysRoot::host().path("/proc/stat"), Path::new("/proc/stat"));
        assert!(SysRoot::default().is_host());
    }

    #[test]
    fn test_strerror() {
        assert_eq!(strerror_raw(2), "No such file or directory");
        assert_eq!(strerror_raw(0), "Success");
        assert_eq!(strerror(&io::Error::other("x")), "x");
    }

    #[test]
    fn test_leading_i64() {
        assert_eq!(leading_i64("12abc"), Some(12));
        assert_eq!(leading_i64("  -7"), Some(-7));
        assert_eq!(leading_i64("+3"), Some(3));
        assert_eq!(leading_i64("freq"), None);
        assert_eq!(leading_i64(""), None);
        assert_eq!(leading_i64("-"), None);
        assert_eq!(leading_i64("99999999999999999999"), Some(i64::MAX));
    }
}
