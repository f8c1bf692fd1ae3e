//! Memory blocks under `/sys/devices/system/memory`, for guest-get-memory-blocks,
//! guest-set-memory-blocks and guest-get-memory-block-info.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

use crate::sysroot::{SysRoot, strerror};

const MEMORY_DIR: &str = "/sys/devices/system/memory/";

/// A memory block as guest-get-memory-blocks reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBlock {
    /// The N of `memoryN`.
    pub index: u64,
    /// Whether its `state` starts with `online` (or it has no `state` file).
    pub online: bool,
    /// Whether its `removable` file says so.
    pub can_offline: bool,
}

/// Why reading the memory blocks failed; the texts are qemu-ga's.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The memory directory cannot be listed.
    #[error("Can't open directory\"{MEMORY_DIR}\": {}", strerror(.0))]
    List(#[source] io::Error),
    /// A directory cannot be opened.
    #[error("open(\"{path}\"): {}", strerror(source))]
    OpenDir {
        /// The directory, with its trailing slash.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// A sysfs attribute cannot be opened.
    #[error("open sysfs file \"{name}\": {}", strerror(source))]
    OpenFile {
        /// The attribute's name.
        name: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A sysfs attribute cannot be read.
    #[error("pread sysfs file \"{name}\": {}", strerror(source))]
    Read {
        /// The attribute's name.
        name: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A sysfs attribute is empty.
    #[error("pread sysfs file \"{name}\": unexpected EOF")]
    Eof {
        /// The attribute's name.
        name: &'static str,
    },
    /// The directory has no `memoryN` entry.
    #[error("guest reported zero memory blocks!")]
    NoBlocks,
}

impl MemoryError {
    /// The errno qemu-ga would see after this error (0 for an empty file).
    pub fn errno(&self) -> i32 {
        match self {
            Self::List(e)
            | Self::OpenDir { source: e, .. }
            | Self::OpenFile { source: e, .. }
            | Self::Read { source: e, .. } => e.raw_os_error().unwrap_or(0),
            Self::Eof { .. } | Self::NoBlocks => 0,
        }
    }
}

/// `memoryN/` as qemu-ga names it (the index printed as a signed 64-bit number).
fn block_dir(index: u64) -> String {
    format!("{MEMORY_DIR}memory{}/", index as i64)
}

/// Reads up to `size` bytes of the attribute `name` of the directory `dir` (a real path).
fn read_attr_at(
    dir: &std::path::Path,
    name: &'static str,
    size: usize,
) -> Result<Vec<u8>, MemoryError> {
    let file =
        File::open(dir.join(name)).map_err(|source| MemoryError::OpenFile { name, source })?;
    let mut buf = vec![0u8; size];
    match file.read_at(&mut buf, 0) {
        Ok(0) => Err(MemoryError::Eof { name }),
        Ok(n) => {
            buf.truncate(n);
            Ok(buf)
        }
        Err(source) => Err(MemoryError::Read { name, source }),
    }
}

fn open_block_dir(root: &SysRoot, index: u64) -> Result<std::path::PathBuf, MemoryError> {
    let path = block_dir(index);
    let real = root.path(&path);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(real),
        Ok(_) => Err(MemoryError::OpenDir {
            path,
            source: io::Error::from_raw_os_error(libc::ENOTDIR),
        }),
        Err(source) => Err(MemoryError::OpenDir { path, source }),
    }
}

fn is_not_found(e: &MemoryError) -> bool {
    e.errno() == libc::ENOENT
}

/// The state of block `index`.
pub fn read_block(root: &SysRoot, index: u64) -> Result<MemoryBlock, MemoryError> {
    let dir = open_block_dir(root, index)?;
    let online = match read_attr_at(&dir, "state", 10) {
        Ok(state) => state.starts_with(b"online"),
        Err(e) if is_not_found(&e) => {
            return Ok(MemoryBlock {
                index,
                online: true,
                can_offline: false,
            });
        }
        Err(e) => return Err(e),
    };
    let can_offline = match read_attr_at(&dir, "removable", 1) {
        Ok(r) => r[0] != b'0',
        Err(e) if is_not_found(&e) => false,
        Err(e) => return Err(e),
    };
    Ok(MemoryBlock {
        index,
        online,
        can_offline,
    })
}

/// Every memory block in directory order. A system without the directory has none (and
/// no error); a directory without blocks is an error, as with qemu-ga.
pub fn list_blocks(root: &SysRoot) -> Result<Vec<MemoryBlock>, MemoryError> {
    let dir = match std::fs::read_dir(root.path(MEMORY_DIR)) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MemoryError::List(e)),
    };
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry.map_err(MemoryError::List)?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("memory")) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        out.push(read_block(root, leading_u64(rest))?);
    }
    if out.is_empty() {
        return Err(MemoryError::NoBlocks);
    }
    Ok(out)
}

/// `strtoul(s, NULL, 10)`: the leading decimal digits, 0 if none.
fn leading_u64(s: &str) -> u64 {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    s[..end]
        .parse()
        .unwrap_or(if end == 0 { 0 } else { u64::MAX })
}

/// The outcome of changing one block, as guest-set-memory-blocks reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Done, or nothing to do.
    Success,
    /// No such block.
    NotFound,
    /// The block cannot be changed.
    NotSupported,
    /// The change failed.
    Failed,
}

/// The reply for one block: the outcome and the errno qemu-ga attaches to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockResult {
    /// What happened.
    pub outcome: BlockOutcome,
    /// The `error-code` member, when there is one.
    pub error_code: Option<i32>,
}

fn result(outcome: BlockOutcome, errno: i32) -> BlockResult {
    BlockResult {
        outcome,
        error_code: Some(errno),
    }
}

/// Brings block `index` online or offline, with qemu-ga's outcomes: a block already in the
/// wanted state is a success; a missing `state` file means online-only.
pub fn set_block(root: &SysRoot, index: u64, online: bool) -> BlockResult {
    if let Err(e) = std::fs::read_dir(root.path(MEMORY_DIR)) {
        let errno = e.raw_os_error().unwrap_or(0);
        return if errno == libc::ENOENT {
            result(BlockOutcome::NotSupported, errno)
        } else {
            result(BlockOutcome::Success, errno)
        };
    }
    let dir = match open_block_dir(root, index) {
        Ok(d) => d,
        Err(e) if is_not_found(&e) => return result(BlockOutcome::NotFound, libc::ENOENT),
        Err(e) => return result(BlockOutcome::Failed, e.errno()),
    };
    let state = match read_attr_at(&dir, "state", 10) {
        Ok(s) => s,
        Err(e) if is_not_found(&e) => {
            let outcome = if online {
                BlockOutcome::Success
            } else {
                BlockOutcome::NotSupported
            };
            return result(outcome, libc::ENOENT);
        }
        Err(e) => return result(BlockOutcome::Failed, e.errno()),
    };
    if state.starts_with(b"online") == online {
        return BlockResult {
            outcome: BlockOutcome::Success,
            error_code: None,
        };
    }
    let wanted: &[u8] = if online { b"online" } else { b"offline" };
    let written = OpenOptions::new()
        .write(true)
        .open(dir.join("state"))
        .and_then(|f| f.write_at(wanted, 0));
    match written {
        Ok(_) => BlockResult {
            outcome: BlockOutcome::Success,
            error_code: None,
        },
        Err(e) => result(BlockOutcome::Failed, e.raw_os_error().unwrap_or(0)),
    }
}

/// The block size from `block_size_bytes` (hexadecimal).
pub fn block_size(root: &SysRoot) -> Result<u64, MemoryError> {
    let dir = root.path(MEMORY_DIR);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(MemoryError::OpenDir {
                path: MEMORY_DIR.to_string(),
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        Err(source) => {
            return Err(MemoryError::OpenDir {
                path: MEMORY_DIR.to_string(),
                source,
            });
        }
    }
    let text = read_attr_at(&dir, "block_size_bytes", 20)?;
    Ok(parse_hex_size(&String::from_utf8_lossy(&text)))
}

/// `strtol(text, NULL, 16)` as qemu-ga reads `block_size_bytes` (0 when not a number).
pub fn parse_hex_size(text: &str) -> u64 {
    let t = text.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .filter(|r| r.bytes().next().is_some_and(|b| b.is_ascii_hexdigit()))
        .unwrap_or(t);
    let end = t
        .bytes()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(t.len());
    let v = i64::from_str_radix(&t[..end], 16).unwrap_or(if end == 0 { 0 } else { i64::MAX });
    (if neg { v.wrapping_neg() } else { v }) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> SysRoot {
        SysRoot::at(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/root"))
    }

    #[test]
    fn test_fixture_blocks() {
        let mut blocks = list_blocks(&fixture()).unwrap();
        blocks.sort_by_key(|b| b.index);
        assert_eq!(
            blocks,
            [
                MemoryBlock {
                    index: 0,
                    online: true,
                    can_offline: false
                },
                MemoryBlock {
                    index: 1,
                    online: false,
                    can_offline: true
                },
                MemoryBlock {
                    index: 32,
                    online: true,
                    can_offline: true
                },
            ]
        );
        assert_eq!(block_size(&fixture()).unwrap(), 134217728);
    }

    #[test]
    fn test_missing_and_empty_memory_dir() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::at(dir.path());
        assert!(list_blocks(&root).unwrap().is_empty());
        assert_eq!(
            block_size(&root).unwrap_err().to_string(),
            "open(\"/sys/devices/system/memory/\"): No such file or directory"
        );
        assert_eq!(
            set_block(&root, 3, true),
            result(BlockOutcome::NotSupported, libc::ENOENT)
        );
        std::fs::create_dir_all(dir.path().join("sys/devices/system/memory")).unwrap();
        assert_eq!(
            list_blocks(&root).unwrap_err().to_string(),
            "guest reported zero memory blocks!"
        );
        assert_eq!(
            block_size(&root).unwrap_err().to_string(),
            "open sysfs file \"block_size_bytes\": No such file or directory"
        );
        assert_eq!(
            set_block(&root, 3, true),
            result(BlockOutcome::NotFound, libc::ENOENT)
        );
    }

    #[test]
    fn test_set_block_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::at(dir.path());
        let mem = dir.path().join("sys/devices/system/memory");
        std::fs::create_dir_all(mem.join("memory5")).unwrap();
        std::fs::create_dir_all(mem.join("memory6")).unwrap();
        std::fs::write(mem.join("memory5/state"), "online\n").unwrap();
        // Already online: success without an error code.
        let ok = BlockResult {
            outcome: BlockOutcome::Success,
            error_code: None,
        };
        assert_eq!(set_block(&root, 5, true), ok);
        assert_eq!(set_block(&root, 5, false), ok);
        assert_eq!(
            std::fs::read_to_string(mem.join("memory5/state")).unwrap(),
            "offline"
        );
        assert!(!read_block(&root, 5).unwrap().online);
        // No state file: online is pretended, offline is not supported.
        assert_eq!(
            set_block(&root, 6, true),
            result(BlockOutcome::Success, libc::ENOENT)
        );
        assert_eq!(
            set_block(&root, 6, false),
            result(BlockOutcome::NotSupported, libc::ENOENT)
        );
        // u64::MAX is printed as -1, which does not exist.
        assert_eq!(
            set_block(&root, u64::MAX, true),
            result(BlockOutcome::NotFound, libc::ENOENT)
        );
        // An empty state file fails with errno 0.
        std::fs::write(mem.join("memory6/state"), "").unwrap();
        assert_eq!(set_block(&root, 6, true), result(BlockOutcome::Failed, 0));
        assert_eq!(
            read_block(&root, 6).unwrap_err().to_string(),
            "pread sysfs file \"state\": unexpected EOF"
        );
    }

    #[test]
    fn test_parse_hex_size() {
        assert_eq!(parse_hex_size("8000000\n"), 0x800_0000);
        assert_eq!(parse_hex_size("0x10"), 16);
        assert_eq!(parse_hex_size("zz"), 0);
        assert_eq!(parse_hex_size(""), 0);
        assert_eq!(parse_hex_size("ffffffffffffffffff"), i64::MAX as u64);
        assert_eq!(leading_u64("12x"), 12);
        assert_eq!(leading_u64("x"), 0);
    }
}
