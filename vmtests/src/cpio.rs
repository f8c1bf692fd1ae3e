//! A writer of cpio archives in the `newc` format, the one the Linux kernel unpacks as an
//! initramfs.

use std::collections::BTreeMap;

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// One entry of the archive.
#[derive(Debug, Clone)]
enum Entry {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
    CharDev(u32, u32, u32),
}

/// The archive being built: paths (without leading `/`) to entries. Parent directories are
/// added as needed; entries are written parents first.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Archive {
        Archive::default()
    }

    fn add(&mut self, path: &str, entry: Entry) {
        let path = path.trim_start_matches('/').to_string();
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries
                .entry(parent.clone())
                .or_insert(Entry::Dir(0o755));
        }
        self.entries.insert(path, entry);
    }

    /// Adds a directory with the given permission bits.
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.add(path, Entry::Dir(mode));
    }

    /// Adds a regular file with the given permission bits.
    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) {
        self.add(path, Entry::File(mode, data.into()));
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.add(path, Entry::Symlink(target.to_string()));
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.add(path, Entry::CharDev(mode, major, minor));
    }

    /// Whether the path is already in the archive.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path.trim_start_matches('/'))
    }

    /// The archive's bytes (uncompressed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, entry)) in (1u32..).zip(&self.entries) {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir(m) => (S_IFDIR | m, &[], (0, 0)),
                Entry::File(m, d) => (S_IFREG | m, d, (0, 0)),
                Entry::Symlink(t) => (S_IFLNK | 0o777, t.as_bytes(), (0, 0)),
                Entry::CharDev(m, ma, mi) => (S_IFCHR | m, &[], (*ma, *mi)),
            };
            let nlink = if matches!(entry, Entry::Dir(_)) { 2 } else { 1 };
            write_header(&mut out, ino, mode, nlink, data.len(), rdev, path);
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        write_header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!");
        out
    }
}

fn write_header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_newc_layout() {
        let mut a = Archive::new();
        a.file("etc/hostname", 0o644, b"vm\n".to_vec());
        let bytes = a.to_bytes();
        // "etc" first (parent), then the file, then the trailer.
        assert_eq!(&bytes[..6], b"070701");
        let text = String::from_utf8_lossy(&bytes);
        let etc = text.find("etc\0").unwrap();
        let file = text.find("etc/hostname\0").unwrap();
        assert!(etc < file);
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(bytes.len() % 4, 0);
    }
}
