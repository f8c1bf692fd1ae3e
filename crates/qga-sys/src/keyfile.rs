//! GLib key-file syntax (`g_key_file_load_from_data`), for os-release in guest-get-osinfo
//! and usable for the agent's `[general]` configuration file.
//!
//! Rules matched (GLib 2.x, flags `G_KEY_FILE_NONE`):
//! * lines end at `\n`; one `\r` right before a `\n` is dropped (a `\r` on an unterminated
//!   last line is kept);
//! * leading ASCII whitespace (space, `\t`, `\n`, `\v`, `\f`, `\r`) is skipped; an empty
//!   rest or a rest starting with `#` is a comment;
//! * `[name]`, optionally followed by spaces/tabs only, starts (or re-opens) a group; the name
//!   must be non-empty and free of `[`, `]` and ASCII control characters;
//! * otherwise the line must contain `=` and must not start with it: the key is the text
//!   before the first `=` without trailing whitespace, the value is the rest without leading
//!   whitespace (trailing whitespace is kept);
//! * key names may contain inner spaces but not `[`/`]`, except a final `[locale]` made of
//!   alphanumerics and `-_.@`;
//! * `Encoding=` in the first group must be `UTF-8` (any case);
//! * a key/value line before any group is an error, any other line is an error;
//! * duplicate keys: the last wins; repeated groups are merged.
//!
//! Values are returned raw, as `g_key_file_get_value` does (no `\s \n \t` unescaping).

/// Why a key file was rejected; messages are GLib's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// A line that is neither a comment, a group header nor `key=value`.
    #[error("Key file contains line “{0}” which is not a key-value pair, group, or comment")]
    NotKeyValue(String),
    /// A `[group]` header with an empty name or forbidden characters.
    #[error("Invalid group name: {0}")]
    InvalidGroupName(String),
    /// A key with forbidden characters, edge spaces or a malformed `[locale]` suffix.
    #[error("Invalid key name: {0}")]
    InvalidKeyName(String),
    /// A `key=value` line before the first group header.
    #[error("Key file does not start with a group")]
    NoGroup,
    /// `Encoding=` other than UTF-8 in the first group.
    #[error("Key file contains unsupported encoding “{0}”")]
    UnsupportedEncoding(String),
}

/// A parsed key file: named groups of raw `key=value` pairs, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFile {
    groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    entries: Vec<(String, String)>,
}

impl KeyFile {
    /// Parses key-file text with GLib's rules (see the module docs).
    pub fn parse(text: &str) -> Result<Self, KeyFileError> {
        let mut file = Self::default();
        let mut current: Option<usize> = None;
        let mut pieces = text.split('\n').peekable();
        while let Some(piece) = pieces.next() {
            let terminated = pieces.peek().is_some();
            let line = if terminated {
                piece.strip_suffix('\r').unwrap_or(piece)
            } else {
                piece
            };
            file.parse_line(line, &mut current)?;
        }
        Ok(file)
    }

    fn parse_line(&mut self, line: &str, current: &mut Option<usize>) -> Result<(), KeyFileError> {
        let start = line.trim_start_matches(is_glib_space);
        if start.is_empty() || start.starts_with('#') {
            return Ok(());
        }
        if let Some(name) = group_header(start) {
            if name.is_empty() || name.chars().any(|c| c == '[' || c.is_ascii_control()) {
                return Err(KeyFileError::InvalidGroupName(name.to_owned()));
            }
            *current = Some(self.open_group(name));
            return Ok(());
        }
        let Some(eq) = start.find('=').filter(|&i| i > 0) else {
            return Err(KeyFileError::NotKeyValue(line.to_owned()));
        };
        let Some(index) = *current else {
            return Err(KeyFileError::NoGroup);
        };
        let key = start[..eq].trim_end_matches(is_glib_space);
        if !is_key_name(key) {
            return Err(KeyFileError::InvalidKeyName(key.to_owned()));
        }
        let value = start[eq + 1..].trim_start_matches(is_glib_space);
        if index == 0 && key == "Encoding" && !value.eq_ignore_ascii_case("UTF-8") {
            return Err(KeyFileError::UnsupportedEncoding(value.to_owned()));
        }
        if let Some(group) = self.groups.get_mut(index) {
            group.entries.push((key.to_owned(), value.to_owned()));
        }
        Ok(())
    }

    fn open_group(&mut self, name: &str) -> usize {
        if let Some(index) = self.groups.iter().position(|g| g.name == name) {
            return index;
        }
        self.groups.push(Group {
            name: name.to_owned(),
            entries: Vec::new(),
        });
        self.groups.len() - 1
    }

    /// The raw value of `key` in `group` (last occurrence wins), like `g_key_file_get_value`.
    pub fn get_value(&self, group: &str, key: &str) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.name == group)?
            .entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a group of that name exists.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g.name == group)
    }

    /// Group names in order of first appearance.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }

    /// Distinct keys of `group` in order of first appearance (empty if there is no such group).
    pub fn keys(&self, group: &str) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        if let Some(g) = self.groups.iter().find(|g| g.name == group) {
            for (k, _) in &g.entries {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
        keys
    }
}

/// `g_ascii_isspace`: unlike `char::is_ascii_whitespace` it includes vertical tab.
fn is_glib_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// The name inside `[name]` when `start` is a group header line.
fn group_header(start: &str) -> Option<&str> {
    let inner = start.strip_prefix('[')?;
    let close = inner.find(']')?;
    inner[close + 1..]
        .chars()
        .all(|c| c == ' ' || c == '\t')
        .then(|| &inner[..close])
}

/// GLib's key-name check: `base` or `base[locale]`.
fn is_key_name(key: &str) -> bool {
    let stop = key.find(['=', '[', ']']).unwrap_or(key.len());
    let base = &key[..stop];
    if base.is_empty() || base.starts_with(' ') || base.ends_with(' ') {
        return false;
    }
    let rest = &key[stop..];
    if rest.is_empty() {
        return true;
    }
    let Some(locale) = rest.strip_prefix('[') else {
        return false;
    };
    let end = locale
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')))
        .unwrap_or(locale.len());
    &locale[end..] == "]"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<KeyFile, KeyFileError> {
        KeyFile::parse(text)
    }

    #[test]
    fn test_parse_basic_groups_and_values() {
        let kf = parse("# c\n\n[general]\ndaemon = true\npath=/dev/x\n[other]\na=1\n").unwrap();
        assert_eq!(kf.get_value("general", "daemon"), Some("true"));
        assert_eq!(kf.get_value("general", "path"), Some("/dev/x"));
        assert_eq!(kf.get_value("other", "a"), Some("1"));
        assert_eq!(kf.get_value("general", "a"), None);
        assert_eq!(kf.get_value("missing", "a"), None);
        assert_eq!(kf.groups().collect::<Vec<_>>(), ["general", "other"]);
        assert_eq!(kf.keys("general"), ["daemon", "path"]);
        assert!(kf.has_group("other"));
    }

    #[test]
    fn test_parse_whitespace_rules() {
        let kf = parse("  [g]  \t\n \t key one \t=  \tvalue  \n\x0bk2=\x0c v\r\n").unwrap();
        assert_eq!(kf.get_value("g", "key one"), Some("value  "));
        assert_eq!(kf.get_value("g", "k2"), Some("v"));
    }

    #[test]
    fn test_parse_cr_only_stripped_before_newline() {
        let kf = parse("[g]\na=1\r\nb=2\r").unwrap();
        assert_eq!(kf.get_value("g", "a"), Some("1"));
        assert_eq!(kf.get_value("g", "b"), Some("2\r"));
    }

    #[test]
    fn test_parse_comments_and_blank_lines() {
        let kf = parse("[g]\n   # indented comment\n\t\n\r\n#x=y\n").unwrap();
        assert!(kf.keys("g").is_empty());
    }

    #[test]
    fn test_parse_duplicate_key_last_wins_and_groups_merge() {
        let kf = parse("[g]\na=1\n[h]\na=9\n[g]\na=2\nb=3\n").unwrap();
        assert_eq!(kf.get_value("g", "a"), Some("2"));
        assert_eq!(kf.get_value("g", "b"), Some("3"));
        assert_eq!(kf.get_value("h", "a"), Some("9"));
        assert_eq!(kf.groups().count(), 2);
    }

    #[test]
    fn test_parse_value_keeps_equals_and_escapes_raw() {
        let kf = parse("[g]\na==b=c\nb=x\\sy\\n\n").unwrap();
        assert_eq!(kf.get_value("g", "a"), Some("=b=c"));
        assert_eq!(kf.get_value("g", "b"), Some("x\\sy\\n"));
    }

    #[test]
    fn test_parse_empty_value() {
        let kf = parse("[g]\na=\nb=   \n").unwrap();
        assert_eq!(kf.get_value("g", "a"), Some(""));
        assert_eq!(kf.get_value("g", "b"), Some(""));
    }

    #[test]
    fn test_parse_locale_keys() {
        let kf = parse("[g]\nName[de_DE.UTF-8@euro]=Hallo\nName=Hello\n").unwrap();
        assert_eq!(kf.get_value("g", "Name"), Some("Hello"));
        assert_eq!(kf.get_value("g", "Name[de_DE.UTF-8@euro]"), Some("Hallo"));
    }

    #[test]
    fn test_parse_line_without_equals_fails() {
        assert_eq!(
            parse("[g]\njunk\n"),
            Err(KeyFileError::NotKeyValue("junk".into()))
        );
        assert!(parse("[g]\n  junk line  \n").is_err());
    }

    #[test]
    fn test_parse_line_starting_with_equals_fails() {
        assert!(matches!(
            parse("[g]\n=v\n"),
            Err(KeyFileError::NotKeyValue(_))
        ));
    }

    #[test]
    fn test_parse_key_before_group_fails() {
        assert_eq!(parse("a=1\n[g]\n"), Err(KeyFileError::NoGroup));
        assert!(parse("# only comments\n\n").is_ok());
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
    fn test_parse_encoding_in_first_group() {
        assert!(parse("[g]\nEncoding=utf-8\n").is_ok());
        assert_eq!(
            parse("[g]\nEncoding=latin1\n"),
            Err(KeyFileError::UnsupportedEncoding("latin1".into()))
        );
        assert!(parse("[g]\n[h]\nEncoding=latin1\n").is_ok());
        assert!(parse("[g]\n[h]\n[g]\nEncoding=latin1\n").is_err());
    }

    #[test]
    fn test_parse_error_messages_match_glib() {
        assert_eq!(
            KeyFileError::NotKeyValue("x".into()).to_string(),
            "Key file contains line “x” which is not a key-value pair, group, or comment"
        );
        assert_eq!(
            KeyFileError::NoGroup.to_string(),
            "Key file does not start with a group"
        );
    }
}
