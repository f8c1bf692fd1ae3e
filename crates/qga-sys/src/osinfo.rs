//! Kernel and distribution identity for guest-get-osinfo: `uname(2)` and os-release.
//!
//! os-release is read the way qemu-ga reads it: the text, cut at the first NUL byte, must be
//! UTF-8; a fake `[os-release]` group is prepended and the whole is parsed as a GLib key file
//! ([`crate::keyfile`]), so one bad line (e.g. a line without `=`) discards the whole file.
//! Each field then goes through qemu-ga's value rule, with its single-quote bug fixed:
//! * `"…"`: text up to the closing quote, with `\$ \' \" \\ \`` unescaped and any other
//!   backslash kept as is;
//! * `'…'`: text up to the closing quote, taken literally (qemu-ga cuts these at the first
//!   space because of an inverted test);
//! * unquoted: cut at the first space or `;`.

use std::path::Path;

use crate::SysError;
use crate::keyfile::{KeyFile, KeyFileError};

/// `/etc/os-release`, read first.
pub const OS_RELEASE_PATH: &str = "/etc/os-release";
/// `/usr/lib/os-release`, read when the first file yields nothing.
pub const OS_RELEASE_FALLBACK_PATH: &str = "/usr/lib/os-release";

const GROUP: &str = "os-release";

/// The fields of `uname(2)` that guest-get-osinfo reports (plus `sysname`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    /// Kernel name, e.g. `Linux`.
    pub sysname: String,
    /// Kernel release (`kernel-release`), e.g. `6.1.0-18-amd64`.
    pub release: String,
    /// Kernel version (`kernel-version`), e.g. `#1 SMP PREEMPT_DYNAMIC Debian …`.
    pub version: String,
    /// Hardware name (`machine`), e.g. `x86_64`.
    pub machine: String,
}

/// Calls `uname(2)`; non-UTF-8 bytes are replaced.
pub fn uname() -> Result<Uname, SysError> {
    let u = nix::sys::utsname::uname().map_err(|e| SysError::errno("uname", e))?;
    Ok(Uname {
        sysname: u.sysname().to_string_lossy().into_owned(),
        release: u.release().to_string_lossy().into_owned(),
        version: u.version().to_string_lossy().into_owned(),
        machine: u.machine().to_string_lossy().into_owned(),
    })
}

/// The os-release fields guest-get-osinfo reports, already unquoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `ID`, e.g. `debian`.
    pub id: Option<String>,
    /// `NAME`, e.g. `Debian GNU/Linux`.
    pub name: Option<String>,
    /// `PRETTY_NAME`.
    pub pretty_name: Option<String>,
    /// `VERSION`.
    pub version: Option<String>,
    /// `VERSION_ID`.
    pub version_id: Option<String>,
    /// `VARIANT`.
    pub variant: Option<String>,
    /// `VARIANT_ID`.
    pub variant_id: Option<String>,
}

/// Parses os-release text; `None` when the key-file parse fails (see the module docs).
pub fn parse_os_release(text: &str) -> Option<OsRelease> {
    // qemu-ga builds the key-file text as a C string, so a NUL ends it.
    let text = text.split('\0').next().unwrap_or_default();
    parse_keys(text).ok().map(|keys| fields(&keys))
}

/// Parses os-release text (already cut at NUL) behind the fake `[os-release]` group header.
fn parse_keys(text: &str) -> Result<KeyFile, KeyFileError> {
    KeyFile::parse(format!("[{GROUP}]\n{text}").as_bytes())
}

fn fields(keys: &KeyFile) -> OsRelease {
    let field = |key: &str| keys.get_value(GROUP, key).map(os_release_value);
    OsRelease {
        id: field("ID"),
        name: field("NAME"),
        pretty_name: field("PRETTY_NAME"),
        version: field("VERSION"),
        version_id: field("VERSION_ID"),
        variant: field("VARIANT"),
        variant_id: field("VARIANT_ID"),
    }
}

/// Applies qemu-ga's quoting rule (single quotes fixed) to one raw key-file value.
pub fn os_release_value(raw: &str) -> String {
    if let Some(body) = raw.strip_prefix('"') {
        let mut out = String::with_capacity(body.len());
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.clone().next() {
                    Some(next @ ('$' | '\'' | '"' | '\\' | '`')) => {
                        out.push(next);
                        chars.next();
                    }
                    _ => out.push('\\'),
                },
                _ => out.push(c),
            }
        }
        out
    } else if let Some(body) = raw.strip_prefix('\'') {
        body.split('\'').next().unwrap_or_default().to_owned()
    } else {
        raw.split([' ', ';']).next().unwrap_or_default().to_owned()
    }
}

/// Reads and parses one os-release file, reporting why it yielded nothing.
pub fn load_os_release(path: &Path) -> Result<OsRelease, SysError> {
    let bytes = std::fs::read(path).map_err(|e| SysError::file("read", path, e))?;
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
    let text = std::str::from_utf8(bytes).map_err(|_| SysError::NotUtf8 {
        path: path.to_owned(),
    })?;
    let keys = parse_keys(text).map_err(|source| SysError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(fields(&keys))
}

/// Reads os-release like qemu-ga: only `env_override` (`$QGA_OS_RELEASE`) when given,
/// otherwise `/etc/os-release`, then `/usr/lib/os-release` if the first is unreadable,
/// not UTF-8 or unparsable. Failures are logged at debug level and yield `None`.
pub fn read_os_release(env_override: Option<&Path>) -> Option<OsRelease> {
    let candidates: &[&Path] = match env_override {
        Some(path) => &[path],
        None => &[
            Path::new(OS_RELEASE_PATH),
            Path::new(OS_RELEASE_FALLBACK_PATH),
        ],
    };
    candidates
        .iter()
        .find_map(|path| match load_os_release(path) {
            Ok(release) => Some(release),
            Err(e) => {
                log::debug!("os-release: {e}: {}", error_chain(&e));
                None
            }
        })
}

fn error_chain(e: &SysError) -> String {
    std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn test_uname_works() {
        let u = uname().unwrap();
        assert_eq!(u.sysname, "Linux");
        assert!(!u.release.is_empty());
        assert!(!u.version.is_empty());
        assert!(!u.machine.is_empty());
    }

    #[test]
    fn test_parse_os_release_debian_fixture() {
        let r = parse_os_release(include_str!("../testdata/os-release/debian")).unwrap();
        assert_eq!(r.id, s("debian"));
        assert_eq!(r.name, s("Debian GNU/Linux"));
        assert_eq!(r.pretty_name, s("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(r.version, s("12 (bookworm)"));
        assert_eq!(r.version_id, s("12"));
        assert_eq!(r.variant, None);
        assert_eq!(r.variant_id, None);
    }

    #[test]
    fn test_parse_os_release_fedora_fixture() {
        let r = parse_os_release(include_str!("../testdata/os-release/fedora")).unwrap();
        assert_eq!(r.id, s("fedora"));
        assert_eq!(r.name, s("Fedora Linux"));
        assert_eq!(r.version, s("40 (Server Edition)"));
        assert_eq!(r.version_id, s("40"));
        assert_eq!(r.variant, s("Server Edition"));
        assert_eq!(r.variant_id, s("server"));
        assert_eq!(r.pretty_name, s("Fedora Linux 40 (Server Edition)"));
    }

    #[test]
    fn test_parse_os_release_qemu_test_fixture() {
        // Same shape as the file qemu's test-qga feeds through QGA_OS_RELEASE.
        let r = parse_os_release(include_str!("../testdata/os-release/qemu-test")).unwrap();
        assert_eq!(r.id, s("qemu-ga-test"));
        assert_eq!(r.name, s("QEMU-GA"));
        assert_eq!(r.pretty_name, s("QEMU Guest Agent test"));
        assert_eq!(r.version, s("Test 1"));
        assert_eq!(r.version_id, s("1"));
        assert_eq!(r.variant, s("Unit test \"'$`\\ and \\\\"));
        assert_eq!(r.variant_id, s("unit-test"));
    }

    #[test]
    fn test_parse_os_release_quoting_cases() {
        let r = parse_os_release(concat!(
            "ID=plain value; ignored\n",
            "NAME=semi;colon\n",
            "PRETTY_NAME=\"a \\$b \\'c\\' \\\"d\\\" \\\\e \\`f\\` \\x \\n\" trailing\n",
            "VERSION='single  quoted \\\" kept' after\n",
            "VERSION_ID=\"unterminated value  \n",
            "VARIANT='unterminated single\n",
            "VARIANT_ID=\"ends in backslash\\\n",
        ))
        .unwrap();
        assert_eq!(r.id, s("plain"));
        assert_eq!(r.name, s("semi"));
        assert_eq!(r.pretty_name, s("a $b 'c' \"d\" \\e `f` \\x \\n"));
        assert_eq!(r.version, s("single  quoted \\\" kept"));
        assert_eq!(r.version_id, s("unterminated value  "));
        assert_eq!(r.variant, s("unterminated single"));
        assert_eq!(r.variant_id, s("ends in backslash\\"));
    }

    #[test]
    fn test_os_release_value_edge_cases() {
        assert_eq!(os_release_value(""), "");
        assert_eq!(os_release_value("\"\""), "");
        assert_eq!(os_release_value("''"), "");
        assert_eq!(os_release_value("\""), "");
        assert_eq!(os_release_value("a\tb"), "a\tb");
        assert_eq!(os_release_value("a\"b c"), "a\"b");
        assert_eq!(os_release_value("\"a'b\""), "a'b");
        assert_eq!(os_release_value("'a\"b'"), "a\"b");
        assert_eq!(os_release_value("\"\\\\\""), "\\");
        assert_eq!(os_release_value("\"é ü\""), "é ü");
    }

    #[test]
    fn test_parse_os_release_duplicates_and_whitespace() {
        let r = parse_os_release("ID=one\n  ID  =  two  \n\nNAME=x\r\n# NAME=y\n").unwrap();
        assert_eq!(r.id, s("two"));
        assert_eq!(r.name, s("x"));
    }

    #[test]
    fn test_parse_os_release_empty_gives_no_fields() {
        assert_eq!(parse_os_release(""), Some(OsRelease::default()));
        assert_eq!(parse_os_release("\n# x\n"), Some(OsRelease::default()));
        assert_eq!(
            parse_os_release("ID="),
            Some(OsRelease {
                id: s(""),
                ..OsRelease::default()
            })
        );
    }

    #[test]
    fn test_parse_os_release_malformed_fails() {
        assert_eq!(
            parse_os_release(include_str!("../testdata/os-release/malformed")),
            None
        );
        assert_eq!(parse_os_release("ID=debian\nnot a pair\n"), None);
        assert_eq!(parse_os_release("=x\n"), None);
        assert_eq!(parse_os_release("ID]=x\n"), None);
        assert_eq!(parse_os_release("Encoding=latin1\n"), None);
    }

    #[test]
    fn test_parse_os_release_group_header_hides_later_keys() {
        let r = parse_os_release("ID=a\n[other]\nNAME=b\n[os-release]\nVERSION=c\n").unwrap();
        assert_eq!(r.id, s("a"));
        assert_eq!(r.name, None);
        assert_eq!(r.version, s("c"));
    }

    #[test]
    fn test_parse_os_release_truncated_at_nul() {
        let r = parse_os_release("ID=a\nNAME=b\0garbage without equals\n").unwrap();
        assert_eq!(r.id, s("a"));
        assert_eq!(r.name, s("b"));
    }

    #[test]
    fn test_read_os_release_override_only() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "ID=x\n").unwrap();
        assert_eq!(read_os_release(Some(&good)).unwrap().id, s("x"));

        let missing = dir.path().join("missing");
        assert_eq!(read_os_release(Some(&missing)), None);

        let bad = dir.path().join("bad");
        std::fs::write(&bad, "ID=x\njunk\n").unwrap();
        assert_eq!(read_os_release(Some(&bad)), None);
        assert!(matches!(
            load_os_release(&bad),
            Err(SysError::KeyFile { .. })
        ));

        let latin1 = dir.path().join("latin1");
        std::fs::write(&latin1, b"NAME=caf\xe9\n").unwrap();
        assert!(matches!(
            load_os_release(&latin1),
            Err(SysError::NotUtf8 { .. })
        ));

        let nul = dir.path().join("nul");
        std::fs::write(&nul, b"ID=x\n\0\xff\xfe junk").unwrap();
        assert_eq!(load_os_release(&nul).unwrap().id, s("x"));
    }
}
