//! GLib key files (`g_key_file_load_from_data`, flags `G_KEY_FILE_NONE`): the format of
//! qemu-ga's configuration file (`/etc/qemu/qemu-ga.conf`), of its state file (`qga.state`) and,
//! behind a fake group header, of os-release as guest-get-osinfo reads it. Also the value
//! escaping used by `qemu-ga --dump-conf`.
//!
//! Only what qemu-ga needs is implemented: groups, `key=value` lines, `#` comments, raw values
//! (`g_key_file_get_value`), the string escapes and booleans. Acceptance rules and error texts
//! follow GLib as observed through Debian's qemu-ga 7.2 and 10.0.2 (GLib 2.74); the code is our
//! own. Rules:
//! * lines end at `\n`; one `\r` right before a `\n` is dropped (a `\r` on an unterminated last
//!   line is kept); a NUL byte ends a line's content, as in C; non-UTF-8 bytes are allowed
//!   anywhere, only string values are checked, when read with [`KeyFile::string`];
//! * leading ASCII whitespace (space, `\t`, `\n`, `\v`, `\f`, `\r`) is skipped; an empty rest or
//!   a rest starting with `#` is a comment;
//! * `[name]`, optionally followed by spaces/tabs only, starts (or re-opens) a group; the name
//!   must be non-empty and free of `[`, `]` and ASCII control characters;
//! * otherwise the line must contain `=` and must not start with it: the key is the text before
//!   the first `=` without trailing whitespace, the value is the rest without leading whitespace
//!   (trailing whitespace is kept);
//! * key names may contain inner spaces but not edge spaces nor `[`/`]`, except a final
//!   `[locale]` made of alphanumerics and `-_.@`;
//! * `Encoding=` in the first group must be `UTF-8` (any case);
//! * a key/value line before any group is an error, any other line is an error;
//! * duplicate keys: the last wins; repeated groups are merged.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// A parsed key file: groups of `key=value` entries with raw (still escaped) values, in order
/// of first appearance.
///
/// A group that appears twice is merged, and a key that appears twice keeps its last value, as
/// in GLib.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFile {
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: Vec<u8>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why a key file could not be read, or why a value in it could not be used.
///
/// `Display` gives GLib's message text, which qemu-ga appends to
/// `error loading configuration from path: P, `.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be opened or read; shown as the bare `strerror` text.
    #[error("{}", os_error_text(.0))]
    Io(io::Error),
    /// The path names a directory, a FIFO or another non-regular file.
    #[error("Not a regular file")]
    NotRegularFile,
    /// A line that is neither blank, a comment, a group header nor `key=value` (the whole line).
    #[error(
        "Key file contains line \u{201c}{0}\u{201d} which is not a key-value pair, group, or comment"
    )]
    BadLine(String),
    /// A `key=value` line before the first group header.
    #[error("Key file does not start with a group")]
    NoGroup,
    /// A group header with an empty name, `[` inside, or a control character.
    #[error("Invalid group name: {0}")]
    InvalidGroupName(String),
    /// A key with edge spaces, or with `[` or `]` other than a well-formed locale suffix
    /// `key[ll_CC]`.
    #[error("Invalid key name: {0}")]
    InvalidKeyName(String),
    /// A value that is not a valid boolean, or a string with a bad escape sequence.
    #[error(
        "Key file contains key \u{201c}{0}\u{201d} which has a value that cannot be interpreted."
    )]
    InvalidValue(String),
    /// `Encoding=` in the first group with a value other than `UTF-8` (any case), raw.
    #[error("Key file contains unsupported encoding \u{201c}{0}\u{201d}")]
    UnsupportedEncoding(String),
    /// A string value that is not UTF-8 (value shown raw, lossily decoded).
    #[error(
        "Key file contains key \u{201c}{key}\u{201d} with value \u{201c}{value}\u{201d} which is not UTF-8"
    )]
    NotUtf8 {
        /// The key whose value is bad.
        key: String,
        /// The raw value.
        value: String,
    },
}

impl KeyFileError {
    /// True when the file does not exist (also a dangling symlink or a missing directory on the
    /// way), the case in which qemu-ga silently skips its default configuration file.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory))
    }
}

/// `strerror` text of an I/O error, without Rust's " (os error N)" suffix.
fn os_error_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(pos) if err.raw_os_error().is_some() => text[..pos].to_owned(),
        _ => text,
    }
}

/// GLib's `g_ascii_isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r` (unlike
/// `u8::is_ascii_whitespace` it includes vertical tab).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl KeyFile {
    /// Reads and parses the key file at `path`. Errors as GLib reports them: the `open` error,
    /// then "Not a regular file", then parse errors.
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let mut file = File::open(path).map_err(KeyFileError::Io)?;
        let meta = file.metadata().map_err(KeyFileError::Io)?;
        if !meta.is_file() {
            return Err(KeyFileError::NotRegularFile);
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(KeyFileError::Io)?;
        Self::parse(&data)
    }

    /// Parses key-file data with GLib's rules (see the module docs).
    pub fn parse(data: &[u8]) -> Result<Self, KeyFileError> {
        let mut kf = Self::default();
        let mut current: Option<usize> = None;
        let mut pieces = data.split(|&b| b == b'\n').peekable();
        while let Some(piece) = pieces.next() {
            let terminated = pieces.peek().is_some();
            let raw = match piece {
                [rest @ .., b'\r'] if terminated => rest,
                _ => piece,
            };
            kf.parse_line(raw, &mut current)?;
        }
        Ok(kf)
    }

    fn parse_line(&mut self, raw: &[u8], current: &mut Option<usize>) -> Result<(), KeyFileError> {
        let content = raw.split(|&b| b == 0).next().unwrap_or_default();
        let start = content
            .iter()
            .position(|&b| !is_space(b))
            .unwrap_or(content.len());
        let line = &content[start..];
        if line.is_empty() || line[0] == b'#' {
            return Ok(());
        }
        if let Some(name) = group_header(line) {
            if !is_group_name(name) {
                return Err(KeyFileError::InvalidGroupName(lossy(name)));
            }
            *current = Some(self.group_index(name));
            return Ok(());
        }
        let eq = match line.iter().position(|&b| b == b'=') {
            Some(eq) if eq > 0 => eq,
            _ => return Err(KeyFileError::BadLine(lossy(raw))),
        };
        let Some(group) = current.and_then(|i| self.groups.get_mut(i)) else {
            return Err(KeyFileError::NoGroup);
        };
        let key = &line[..eq];
        let key_len = key.iter().rposition(|&b| !is_space(b)).map_or(0, |p| p + 1);
        let key = &key[..key_len];
        if !is_key_name(key) {
            return Err(KeyFileError::InvalidKeyName(lossy(key)));
        }
        let value = &line[eq + 1..];
        let value_start = value
            .iter()
            .position(|&b| !is_space(b))
            .unwrap_or(value.len());
        let value = value[value_start..].to_vec();
        if *current == Some(0) && key == b"Encoding" && !value.eq_ignore_ascii_case(b"UTF-8") {
            return Err(KeyFileError::UnsupportedEncoding(lossy(&value)));
        }
        match group.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => group.entries.push((key.to_vec(), value)),
        }
        Ok(())
    }

    fn group_index(&mut self, name: &[u8]) -> usize {
        match self.groups.iter().position(|g| g.name == name) {
            Some(i) => i,
            None => {
                self.groups.push(Group {
                    name: name.to_vec(),
                    entries: Vec::new(),
                });
                self.groups.len() - 1
            }
        }
    }

    fn group(&self, group: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == group.as_bytes())
    }

    /// True when the group exists (possibly empty).
    pub fn has_group(&self, group: &str) -> bool {
        self.group(group).is_some()
    }

    /// Group names in order of first appearance.
    pub fn groups(&self) -> impl Iterator<Item = &[u8]> {
        self.groups.iter().map(|g| g.name.as_slice())
    }

    /// Distinct keys of `group` in order of first appearance (none if there is no such group).
    pub fn keys(&self, group: &str) -> impl Iterator<Item = &[u8]> {
        self.group(group)
            .into_iter()
            .flat_map(|g| g.entries.iter().map(|(k, _)| k.as_slice()))
    }

    /// The raw value of `key` in `group` (GLib `g_key_file_get_value`): leading whitespace
    /// removed, escapes not applied.
    pub fn raw_value(&self, group: &str, key: &str) -> Option<&[u8]> {
        self.group(group)?
            .entries
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// [`raw_value`](Self::raw_value) as text; `None` also when it is not UTF-8 (never the case
    /// for data parsed from a `str`).
    pub fn get_value(&self, group: &str, key: &str) -> Option<&str> {
        std::str::from_utf8(self.raw_value(group, key)?).ok()
    }

    /// The value of `key` as a string (GLib `g_key_file_get_string`): must be UTF-8, and the
    /// escapes `\s \n \t \r \\` are the only ones allowed.
    pub fn string(&self, group: &str, key: &str) -> Result<Option<String>, KeyFileError> {
        let Some(raw) = self.raw_value(group, key) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(raw).map_err(|_| KeyFileError::NotUtf8 {
            key: key.to_owned(),
            value: lossy(raw),
        })?;
        unescape(text)
            .map(Some)
            .ok_or_else(|| KeyFileError::InvalidValue(key.to_owned()))
    }

    /// The value of `key` as a boolean (GLib `g_key_file_get_boolean`): exactly `true` or `1`,
    /// `false` or `0`, trailing whitespace ignored; case matters.
    pub fn boolean(&self, group: &str, key: &str) -> Result<Option<bool>, KeyFileError> {
        let Some(raw) = self.raw_value(group, key) else {
            return Ok(None);
        };
        let len = raw.iter().rposition(|&b| !is_space(b)).map_or(0, |p| p + 1);
        match &raw[..len] {
            b"true" | b"1" => Ok(Some(true)),
            b"false" | b"0" => Ok(Some(false)),
            _ => Err(KeyFileError::InvalidValue(key.to_owned())),
        }
    }
}

/// The name inside `[...]` when `line` is a group header: `[`, a name without `]`, `]`, then
/// only spaces or tabs.
fn group_header(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"[")?;
    let close = rest.iter().position(|&b| b == b']')?;
    rest[close + 1..]
        .iter()
        .all(|&b| b == b' ' || b == b'\t')
        .then_some(&rest[..close])
}

fn is_group_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b != b'[' && b != b']' && !b.is_ascii_control())
}

/// GLib's key-name rule: a non-empty base without edge spaces and without `[`, `]` or `=`,
/// then at most one locale suffix `[..]` made of alphanumerics and `-_.@`.
fn is_key_name(key: &[u8]) -> bool {
    let base_len = key
        .iter()
        .position(|&b| b == b'[' || b == b']' || b == b'=')
        .unwrap_or(key.len());
    let (base, suffix) = key.split_at(base_len);
    match base {
        [] | [b' ', ..] | [.., b' '] => return false,
        _ => {}
    }
    match suffix {
        [] => true,
        [b'[', locale @ ..] => {
            let mut rest = locale;
            loop {
                match rest {
                    [b']'] => return true,
                    [b, tail @ ..] if b.is_ascii_alphanumeric() || b"-_.@".contains(b) => {
                        rest = tail;
                    }
                    [b, ..] if !b.is_ascii() => {
                        let Some(c) = rest
                            .utf8_chunks()
                            .next()
                            .and_then(|chunk| chunk.valid().chars().next())
                            .filter(|c| c.is_alphanumeric())
                        else {
                            return false;
                        };
                        rest = &rest[c.len_utf8()..];
                    }
                    _ => return false,
                }
            }
        }
        _ => false,
    }
}

/// Applies the string escapes; `None` for an unknown escape or a trailing lone backslash.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            's' => ' ',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '\\' => '\\',
            _ => return None,
        });
    }
    Some(out)
}

/// Escapes a string value the way GLib writes it (`g_key_file_set_string`): `\n`, `\r` and `\\`
/// always; spaces and tabs only in the leading run of whitespace (`\s`, `\t`), which newlines
/// and carriage returns do not end.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut leading = true;
    for c in value.chars() {
        match c {
            ' ' if leading => out.push_str("\\s"),
            '\t' if leading => out.push_str("\\t"),
            ' ' | '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => {
                out.push_str("\\\\");
                leading = false;
            }
            _ => {
                out.push(c);
                leading = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
        KeyFile::parse(text.as_bytes())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(kf) => panic!("parsed: {kf:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn test_parse_basic_groups_and_values() {
        let kf = parse("# c\n\n[general]\ndaemon = true\npath=/dev/x\n[other]\na=1\n").unwrap();
        assert_eq!(kf.get_value("general", "daemon"), Some("true"));
        assert_eq!(kf.get_value("general", "path"), Some("/dev/x"));
        assert_eq!(kf.get_value("other", "a"), Some("1"));
        assert_eq!(kf.get_value("general", "a"), None);
        assert_eq!(kf.get_value("missing", "a"), None);
        assert_eq!(kf.groups().collect::<Vec<_>>(), [&b"general"[..], b"other"]);
        assert_eq!(
            kf.keys("general").collect::<Vec<_>>(),
            [&b"daemon"[..], b"path"]
        );
        assert_eq!(kf.keys("missing").count(), 0);
        assert!(kf.has_group("other"));
    }

    #[test]
    fn test_parse_keyfile_basic_ok() {
        let kf = parse(
            "# comment\n\n  [general]  \n  path  =   /x  \n\t# indented comment\n\
             daemon=1\nverbose = false\t\n[other]\npath=y\n",
        )
        .unwrap();
        assert_eq!(
            kf.string("general", "path").unwrap().as_deref(),
            Some("/x  ")
        );
        assert_eq!(kf.boolean("general", "daemon").unwrap(), Some(true));
        assert_eq!(kf.boolean("general", "verbose").unwrap(), Some(false));
        assert_eq!(kf.string("other", "path").unwrap().as_deref(), Some("y"));
        assert_eq!(kf.string("general", "missing").unwrap(), None);
        assert!(kf.has_group("other"));
        assert!(!kf.has_group("nope"));
    }

    /// Asserts the raw values (`g_key_file_get_value`) of keys of group `g` in `text`.
    fn assert_raw(text: &str, expected: &[(&str, Option<&str>)]) {
        let kf = parse(text).unwrap();
        for &(key, value) in expected {
            assert_eq!(kf.get_value("g", key), value, "{text:?} {key}");
        }
    }

    #[test]
    fn test_parse_raw_values() {
        // Whitespace rules: `\v` and `\f` are spaces, trailing whitespace stays in the value.
        let text = "  [g]  \t\n \t key one \t=  \tvalue  \n\x0bk2=\x0c v\r\n";
        assert_raw(text, &[("key one", Some("value  ")), ("k2", Some("v"))]);
        // `\r` is only stripped right before `\n`.
        assert_raw("[g]\na=1\r\nb=2\r", &[("a", Some("1")), ("b", Some("2\r"))]);
        // `=` in values is kept, escapes are not applied.
        assert_raw(
            "[g]\na==b=c\nb=x\\sy\\n\n",
            &[("a", Some("=b=c")), ("b", Some("x\\sy\\n"))],
        );
        assert_raw("[g]\na=\nb=   \n", &[("a", Some("")), ("b", Some(""))]);
        let text = "[g]\nName[de_DE.UTF-8@euro]=Hallo\nName=Hello\n";
        assert_raw(
            text,
            &[
                ("Name", Some("Hello")),
                ("Name[de_DE.UTF-8@euro]", Some("Hallo")),
            ],
        );
    }

    #[test]
    fn test_parse_keyfile_empty_ok() {
        assert_eq!(parse("").unwrap(), KeyFile::default());
        assert_eq!(parse("\n\n# x\n").unwrap(), KeyFile::default());
    }

    #[test]
    fn test_parse_comments_and_blank_lines() {
        let kf = parse("[g]\n   # indented comment\n\t\n\r\n#x=y\n").unwrap();
        assert_eq!(kf.keys("g").count(), 0);
    }

    #[test]
    fn test_parse_duplicate_key_last_wins_and_groups_merge() {
        let kf = parse("[g]\na=1\n[h]\na=9\n[g]\na=2\nb=3\n").unwrap();
        assert_eq!(kf.get_value("g", "a"), Some("2"));
        assert_eq!(kf.get_value("g", "b"), Some("3"));
        assert_eq!(kf.get_value("h", "a"), Some("9"));
        assert_eq!(kf.groups().count(), 2);
        assert_eq!(kf.keys("g").collect::<Vec<_>>(), [&b"a"[..], b"b"]);
    }

    #[test]
    fn test_parse_keyfile_repeats_last_wins() {
        let kf = parse("[general]\npath=a\n[x]\n[general]\npath =b\npath= c\n").unwrap();
        assert_eq!(kf.string("general", "path").unwrap().as_deref(), Some("c"));
    }

    #[test]
    fn test_parse_keyfile_line_endings() {
        let kf = parse("[general]\r\npath=x\r\r\nlogfile=y\r").unwrap();
        assert_eq!(
            kf.string("general", "path").unwrap().as_deref(),
            Some("x\r")
        );
        assert_eq!(
            kf.string("general", "logfile").unwrap().as_deref(),
            Some("y\r")
        );
    }

    #[test]
    fn test_parse_keyfile_nul_ends_line() {
        let kf = KeyFile::parse(b"[general]\npath=ab\0cd\n").unwrap();
        assert_eq!(kf.string("general", "path").unwrap().as_deref(), Some("ab"));
        let e = KeyFile::parse(b"[general]\npa\0th=x\n").unwrap_err();
        assert!(
            matches!(e, KeyFileError::BadLine(ref l) if l == "pa\0th=x"),
            "{e:?}"
        );
    }

    #[test]
    fn test_get_value_not_utf8_is_none() {
        let kf = KeyFile::parse(b"[g]\na=\xff\n").unwrap();
        assert_eq!(kf.raw_value("g", "a"), Some(&b"\xff"[..]));
        assert_eq!(kf.get_value("g", "a"), None);
    }

    #[test]
    fn test_parse_line_without_equals_fails() {
        assert!(matches!(
            parse("[g]\njunk\n"),
            Err(KeyFileError::BadLine(l)) if l == "junk"
        ));
        assert!(parse("[g]\n  junk line  \n").is_err());
    }

    #[test]
    fn test_parse_line_starting_with_equals_fails() {
        assert!(matches!(parse("[g]\n=v\n"), Err(KeyFileError::BadLine(_))));
    }

    #[test]
    fn test_parse_key_before_group_fails() {
        assert!(matches!(parse("a=1\n[g]\n"), Err(KeyFileError::NoGroup)));
        assert!(parse("# only comments\n\n").is_ok());
    }

    #[test]
    fn test_parse_keyfile_malformed_lines_err() {
        assert_eq!(
            err("[general]\nfoo\n"),
            "Key file contains line \u{201c}foo\u{201d} which is not a key-value pair, group, or comment"
        );
        assert_eq!(
            err("[general]\n   foo\n"),
            "Key file contains line \u{201c}   foo\u{201d} which is not a key-value pair, group, or comment"
        );
        assert!(err("[general\n").contains("\u{201c}[general\u{201d}"));
        assert!(err("[gen]eral]\n").contains("\u{201c}[gen]eral]\u{201d}"));
        assert!(err("[general] x\n").contains("line \u{201c}[general] x\u{201d}"));
        assert!(err("[general]\n=a\n").contains("line \u{201c}=a\u{201d}"));
        assert!(err("[general]\n  =a\n").contains("line \u{201c}  =a\u{201d}"));
        assert!(err("\u{feff}[general]\n").contains("which is not a key-value pair"));
        assert_eq!(
            err("path=/x\n[general]\n"),
            "Key file does not start with a group"
        );
        assert_eq!(
            err("# c\npath=/x\n"),
            "Key file does not start with a group"
        );
    }

    #[test]
    fn test_parse_invalid_group_names_fail() {
        assert!(matches!(
            parse("[]\n"),
            Err(KeyFileError::InvalidGroupName(_))
        ));
        assert!(matches!(
            parse("[a[b]\n"),
            Err(KeyFileError::InvalidGroupName(_))
        ));
        assert!(matches!(
            parse("[a\x01b]\n"),
            Err(KeyFileError::InvalidGroupName(_))
        ));
        // Text after `]` makes it not a header; it is then not a valid key either.
        assert!(parse("[g] x\n").is_err());
        assert!(parse("[g\n").is_err());
    }

    #[test]
    fn test_parse_keyfile_group_names() {
        assert_eq!(err("[]\n"), "Invalid group name: ");
        assert_eq!(err("[a\u{1}]\n"), "Invalid group name: a\u{1}");
        assert_eq!(err("[a[b]\n"), "Invalid group name: a[b");
        for ok in ["[gen eral]\n", "[a=b]\n", "[a#b]\n", "[\u{e9}]\n"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        assert!(KeyFile::parse(b"[\xff]\npath=1\n").is_ok());
    }

    #[test]
    fn test_parse_invalid_key_names_fail() {
        for bad in [
            "[g]\na]=1\n",
            "[g]\na[=1\n",
            "[g]\na[de]x=1\n",
            "[g]\na [de]=1\n",
            "[g]\na[d e]=1\n",
            "[g]\n[x=1\n",
        ] {
            assert!(
                matches!(parse(bad), Err(KeyFileError::InvalidKeyName(_))),
                "{bad:?}"
            );
        }
        assert!(parse("[g]\na b=1\n").is_ok());
    }

    #[test]
    fn test_parse_keyfile_key_names() {
        assert_eq!(err("[general]\npa]th=x\n"), "Invalid key name: pa]th");
        assert_eq!(err("[general]\npa[th=x\n"), "Invalid key name: pa[th");
        assert_eq!(err("[general]\n path[en =x\n"), "Invalid key name: path[en");
        assert_eq!(
            err("[general]\npath[en]x=x\n"),
            "Invalid key name: path[en]x"
        );
        assert_eq!(
            err("[general]\npath [en]=x\n"),
            "Invalid key name: path [en]"
        );
        let kf = parse("[general]\n path[en_US.UTF-8@x] =x\nke y=a\npath\u{1}=b\npath[\u{e9}]=c\n")
            .unwrap();
        assert_eq!(
            kf.raw_value("general", "path[en_US.UTF-8@x]"),
            Some(&b"x"[..])
        );
        assert_eq!(kf.raw_value("general", "ke y"), Some(&b"a"[..]));
        assert_eq!(kf.raw_value("general", "path"), None);
        assert!(KeyFile::parse(b"[general]\n\xff=1\n# \xfe\n").is_ok());
    }

    #[test]
    fn test_parse_keyfile_encoding() {
        assert_eq!(
            err("[general]\nEncoding=latin1\n"),
            "Key file contains unsupported encoding \u{201c}latin1\u{201d}"
        );
        assert!(
            err("[general]\n[x]\n[general]\nEncoding = UTF-8 \n")
                .contains("\u{201c}UTF-8 \u{201d}")
        );
        assert!(err("# c\n[general]\nEncoding=\\s\n").contains("\u{201c}\\s\u{201d}"));
        for ok in [
            "[general]\nEncoding=utf-8\n",
            "[x]\n[general]\nEncoding=latin1\n",
            "[general]\n[x]\nEncoding=latin1\n",
            "[general]\nEncoding[de]=latin1\n",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        assert!(parse("[g]\n[h]\n[g]\nEncoding=latin1\n").is_err());
    }

    #[test]
    fn test_keyfile_string_escapes() {
        let kf = parse("[general]\n\tpath = \\s x\\n\\t\\r\\\\\nb=\\\\s\nc=x=y\n").unwrap();
        assert_eq!(
            kf.string("general", "path").unwrap().as_deref(),
            Some("  x\n\t\r\\")
        );
        assert_eq!(kf.string("general", "b").unwrap().as_deref(), Some("\\s"));
        assert_eq!(kf.string("general", "c").unwrap().as_deref(), Some("x=y"));
    }

    #[test]
    fn test_keyfile_string_bad_escape_err() {
        for bad in ["a\\qb", "a\\", "a\\;b", "a\\,b"] {
            let kf = parse(&format!("[general]\npath={bad}\n")).unwrap();
            assert_eq!(
                kf.string("general", "path").unwrap_err().to_string(),
                "Key file contains key \u{201c}path\u{201d} which has a value that cannot be interpreted.",
                "{bad}"
            );
        }
    }

    #[test]
    fn test_keyfile_string_not_utf8_err() {
        let kf = KeyFile::parse(b"[general]\npath=\xff\n").unwrap();
        assert_eq!(
            kf.string("general", "path").unwrap_err().to_string(),
            "Key file contains key \u{201c}path\u{201d} with value \u{201c}\u{fffd}\u{201d} which is not UTF-8"
        );
    }

    #[test]
    fn test_keyfile_boolean() {
        let kf =
            parse("[g]\na=true\nb=1\nc=false \nd=0\t\ne=TRUE\nf=yes\ng=true # c\nh=\\s\n").unwrap();
        assert_eq!(kf.boolean("g", "a").unwrap(), Some(true));
        assert_eq!(kf.boolean("g", "b").unwrap(), Some(true));
        assert_eq!(kf.boolean("g", "c").unwrap(), Some(false));
        assert_eq!(kf.boolean("g", "d").unwrap(), Some(false));
        for k in ["e", "f", "g", "h"] {
            assert_eq!(
                kf.boolean("g", k).unwrap_err().to_string(),
                format!(
                    "Key file contains key \u{201c}{k}\u{201d} which has a value that cannot be interpreted."
                )
            );
        }
    }

    #[test]
    fn test_load_keyfile_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = KeyFile::load(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), "Not a regular file");
        assert!(!e.is_not_found());
        let e = KeyFile::load(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.to_string(), "No such file or directory");
        assert!(e.is_not_found());
        let e = KeyFile::load(Path::new("")).unwrap_err();
        assert_eq!(e.to_string(), "No such file or directory");
    }

    #[test]
    fn test_escape_value_matches_glib_and_unescapes_back() {
        for (value, escaped) in [
            ("  a\\b\tc\nd  ", "\\s\\sa\\\\b\tc\\nd  "),
            (" x#y=z[a]", "\\sx#y=z[a]"),
            ("\t \tx\ty\rz\u{1}", "\\t\\s\\tx\ty\\rz\u{1}"),
            ("\n x", "\\n\\sx"),
            ("\\ x", "\\\\ x"),
            ("\r\tx", "\\r\\tx"),
            ("a\n b", "a\\n b"),
            ("\u{e9};,", "\u{e9};,"),
            ("", ""),
            ("\t\r\n x", "\\t\\r\\n\\sx"),
            ("plain", "plain"),
            ("\\s", "\\\\s"),
        ] {
            assert_eq!(escape_value(value), escaped, "{value:?}");
            assert_eq!(unescape(escaped).as_deref(), Some(value), "{escaped:?}");
        }
    }
}
