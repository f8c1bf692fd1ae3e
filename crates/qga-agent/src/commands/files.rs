//! guest-file-open, guest-file-close, guest-file-read, guest-file-write, guest-file-seek,
//! guest-file-flush, and the extensions `__org.qga_file-open-nofollow`, `__org.qga_file-stat`
//! and `__org.qga_file-list` (docs/extensions.md).

use std::path::Path;

use qga_proto::{ArgError, ByteStream, Dict, Value, b64, from_value_dict};
use qga_schema::{
    Empty, FileHandleArgs, FileOpenArgs, FileReadArgs, FileSeekArgs, FileWriteArgs, GuestFileClose,
    GuestFileFlush, GuestFileOpen, GuestFileRead, GuestFileSeek, GuestFileWhence, GuestFileWrite,
    OrgQgaFileList, OrgQgaFileOpenNofollow, OrgQgaFileStat, QgaSeek, ext, files,
};
use qga_sys::file::{Access, Whence};

use crate::agent::Agent;
use crate::agent::lock;
use crate::error::{CommandError, strerror};
use crate::handles::{OpenFile, ReadResult, SharedFile};
use crate::registry::Handle;

/// Default byte count of guest-file-read.
const READ_COUNT_DEFAULT: i64 = 4096;
/// Largest guest-file-read (48 MiB: its base64 fits QEMU's 64 MiB message limit).
const READ_COUNT_MAX: i64 = 48 << 20;

/// The fopen modes qemu-ga accepts, exactly as spelled.
pub(crate) fn parse_mode(mode: &str) -> Option<Access> {
    let (read, write, append, create, truncate) = match mode {
        "r" | "rb" => (true, false, false, false, false),
        "w" | "wb" => (false, true, false, true, true),
        "a" | "ab" => (false, true, true, true, false),
        "r+" | "rb+" | "r+b" => (true, true, false, false, false),
        "w+" | "wb+" | "w+b" => (true, true, false, true, true),
        "a+" | "ab+" | "a+b" => (true, true, true, true, false),
        _ => return None,
    };
    Some(Access {
        read,
        write,
        append,
        create,
        truncate,
        nofollow: false,
    })
}

fn not_found(handle: i64) -> CommandError {
    CommandError::Failed(format!("handle '{handle}' has not been found"))
}

fn file(agent: &Agent, handle: i64) -> Result<SharedFile, CommandError> {
    agent.files.get(handle).ok_or_else(|| not_found(handle))
}

fn failed(what: &str, e: &std::io::Error) -> CommandError {
    CommandError::Failed(format!("{what}: {}", strerror(e)))
}

/// guest-file-open, and with `nofollow` `__org.qga_file-open-nofollow`.
fn open(agent: &Agent, args: &FileOpenArgs, nofollow: bool) -> Result<i64, CommandError> {
    let mode = args.mode.as_deref().unwrap_or("r");
    let mut access = parse_mode(mode)
        .ok_or_else(|| CommandError::Failed(format!("invalid file open mode '{mode}'")))?;
    access.nofollow = nofollow;
    let path = args.path.as_str();
    let too_many = || {
        CommandError::Failed(format!(
            "failed to open file '{path}' (mode: '{mode}'): too many open handles (limit {})",
            agent.files.max()
        ))
    };
    if agent.files.full() {
        return Err(too_many());
    }
    let os_path = qga_sys::exec::os_string(path);
    let f = qga_sys::file::open(Path::new(&os_path), access).map_err(|e| {
        failed(
            &format!("failed to open file '{path}' (mode: '{mode}')"),
            &e,
        )
    })?;
    let handle = agent
        .state
        .next_handle()
        .map_err(|_| CommandError::Failed("failed to commit persistent state to disk".into()))?;
    if agent.files.insert(handle, OpenFile::new(f)).is_err() {
        return Err(too_many());
    }
    log::debug!("guest-file-open, handle: {handle}");
    Ok(handle)
}

impl Handle for GuestFileOpen {
    fn handle(agent: &mut Agent, args: FileOpenArgs) -> Result<i64, CommandError> {
        open(agent, &args, false)
    }

    fn audit(args: &FileOpenArgs) -> Option<String> {
        Some(format!(
            "guest-file-open called, filepath: {}, mode: {}",
            args.path,
            args.mode.as_deref().unwrap_or("r")
        ))
    }
}

impl Handle for OrgQgaFileOpenNofollow {
    fn handle(agent: &mut Agent, args: FileOpenArgs) -> Result<i64, CommandError> {
        open(agent, &args, true)
    }

    fn audit(args: &FileOpenArgs) -> Option<String> {
        Some(format!(
            "__org.qga_file-open-nofollow called, filepath: {}, mode: {}",
            args.path,
            args.mode.as_deref().unwrap_or("r")
        ))
    }
}

/// The wire form of a file's description.
fn wire_stat(i: qga_sys::fileinfo::FileInfo) -> ext::FileStat {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    ext::FileStat {
        name: i.name,
        kind: i.kind.as_str().to_string(),
        size: n(i.size),
        mode: i64::from(i.mode),
        uid: i64::from(i.uid),
        gid: i64::from(i.gid),
        owner: i.owner,
        group: i.group,
        atime: i.atime_ns,
        mtime: i.mtime_ns,
        ctime: i.ctime_ns,
        nlink: n(i.nlink),
        inode: n(i.inode),
        link_target: i.link_target,
    }
}

impl Handle for OrgQgaFileStat {
    fn handle(_agent: &mut Agent, args: ext::FileStatArgs) -> Result<ext::FileStat, CommandError> {
        let os_path = qga_sys::exec::os_string(&args.path);
        qga_sys::fileinfo::stat(Path::new(&os_path), args.follow_symlinks.unwrap_or(false))
            .map(wire_stat)
            .map_err(|e| failed(&format!("failed to stat '{}'", args.path), &e))
    }
}

impl Handle for OrgQgaFileList {
    fn handle(
        _agent: &mut Agent,
        args: ext::FileListArgs,
    ) -> Result<Vec<ext::FileStat>, CommandError> {
        let os_path = qga_sys::exec::os_string(&args.path);
        qga_sys::fileinfo::list(Path::new(&os_path))
            .map(|l| l.into_iter().map(wire_stat).collect())
            .map_err(|e| failed(&format!("failed to list directory '{}'", args.path), &e))
    }

    fn audit(args: &ext::FileListArgs) -> Option<String> {
        Some(format!("__org.qga_file-list called, path: {}", args.path))
    }
}

impl Handle for GuestFileClose {
    fn handle(agent: &mut Agent, args: FileHandleArgs) -> Result<Empty, CommandError> {
        // Closing a descriptor cannot lose data here: nothing is buffered.
        agent
            .files
            .remove(args.handle)
            .ok_or_else(|| not_found(args.handle))?;
        Ok(Empty {})
    }

    fn audit(args: &FileHandleArgs) -> Option<String> {
        Some(format!("guest-file-close called, handle: {}", args.handle))
    }
}

/// The count a read asks for: QEMU's default, or the given one within its cap.
fn read_count(args: &FileReadArgs) -> Result<usize, CommandError> {
    match args.count {
        None => Ok(READ_COUNT_DEFAULT as usize),
        Some(c) if (0..=READ_COUNT_MAX).contains(&c) => Ok(usize::try_from(c).unwrap_or(0)),
        Some(c) => Err(CommandError::Failed(format!(
            "value '{c}' is invalid for argument count"
        ))),
    }
}

/// Reads up to the requested count (QEMU's default and cap) from a handle.
fn read_chunk(agent: &mut Agent, args: &FileReadArgs) -> Result<ReadResult, CommandError> {
    let f = file(agent, args.handle)?;
    let count = read_count(args)?;
    lock(&f)
        .read(count)
        .map_err(|e| failed("failed to read file", &e))
}

/// Reads above this size of a regular file go through a pipe instead of the agent's memory.
const PIPED_READ_MIN: usize = 64 * 1024;

impl Handle for GuestFileRead {
    fn handle(agent: &mut Agent, args: FileReadArgs) -> Result<files::GuestFileRead, CommandError> {
        let r = read_chunk(agent, &args)?;
        Ok(files::GuestFileRead {
            count: i64::try_from(r.data.len()).unwrap_or(i64::MAX),
            buf_b64: b64::encode(&r.data),
            eof: r.eof,
        })
    }

    fn handle_value(agent: &mut Agent, args: FileReadArgs) -> Result<Value, CommandError> {
        // Members as serde would give them; the data stays binary until the writer encodes
        // it straight to the channel. A large read of a regular file is spliced into a pipe
        // and the writer encodes it from there, so the agent never holds it (its pages are
        // the page cache's); anything else is read into memory once.
        let count = read_count(&args)?;
        let f = file(agent, args.handle)?;
        let mut open = lock(&f);
        let piped = if count > PIPED_READ_MIN {
            open.read_piped(count)
        } else {
            Ok(None)
        };
        let (len, data, eof) = match piped.map_err(|e| failed("failed to read file", &e))? {
            Some((p, eof)) => {
                let len = p.len();
                (len, Value::Stream(ByteStream::new(len, Box::new(p))), eof)
            }
            None => {
                let r = open
                    .read(count)
                    .map_err(|e| failed("failed to read file", &e))?;
                (r.data.len(), Value::Bytes(r.data), r.eof)
            }
        };
        let mut d = Dict::new();
        d.insert("count", Value::Int(i64::try_from(len).unwrap_or(i64::MAX)));
        d.insert("buf-b64", data);
        d.insert("eof", Value::Bool(eof));
        Ok(Value::Dict(d))
    }
}

impl Handle for GuestFileWrite {
    fn decode_args(mut args: Dict) -> Result<FileWriteArgs, ArgError> {
        // The data (up to 64 MiB of text, or the bytes the parser decoded as it arrived)
        // moves into the arguments instead of being copied; an empty string stands in for it
        // meanwhile, so the checks are the same.
        let data = args
            .get_mut("buf-b64")
            .filter(|v| matches!(v, Value::Str(_) | Value::Bytes(_)))
            .map(|v| std::mem::replace(v, Value::Str(String::new())));
        let mut decoded: FileWriteArgs = from_value_dict(args)?;
        match data {
            Some(Value::Str(text)) => decoded.buf_b64 = text,
            Some(Value::Bytes(bytes)) => decoded.decoded = Some(bytes),
            _ => {}
        }
        Ok(decoded)
    }

    fn handle(
        agent: &mut Agent,
        args: FileWriteArgs,
    ) -> Result<files::GuestFileWrite, CommandError> {
        let f = file(agent, args.handle)?;
        let data = match args.decoded {
            Some(bytes) => bytes,
            None => b64::decode_in_place(args.buf_b64)
                .map_err(|e| CommandError::Failed(e.to_string()))?,
        };
        let len = match args.count {
            None => data.len(),
            Some(c) => match usize::try_from(c) {
                Ok(n) if n <= data.len() => n,
                _ => {
                    return Err(CommandError::Failed(format!(
                        "value '{c}' is invalid for argument count"
                    )));
                }
            },
        };
        let written = lock(&f)
            .write(&data[..len])
            .map_err(|e| failed("failed to write to file", &e))?;
        Ok(files::GuestFileWrite {
            count: i64::try_from(written).unwrap_or(i64::MAX),
            eof: false,
        })
    }
}

impl Handle for GuestFileSeek {
    fn handle(agent: &mut Agent, args: FileSeekArgs) -> Result<files::GuestFileSeek, CommandError> {
        let f = file(agent, args.handle)?;
        let whence = match args.whence {
            GuestFileWhence::Value(0) | GuestFileWhence::Name(QgaSeek::Set) => Whence::Set,
            GuestFileWhence::Value(1) | GuestFileWhence::Name(QgaSeek::Cur) => Whence::Cur,
            GuestFileWhence::Value(2) | GuestFileWhence::Name(QgaSeek::End) => Whence::End,
            GuestFileWhence::Value(n) => {
                return Err(CommandError::Failed(format!("invalid whence code {n}")));
            }
        };
        let position = lock(&f)
            .seek(args.offset, whence)
            .map_err(|e| failed("failed to seek file", &e))?;
        Ok(files::GuestFileSeek {
            position: i64::try_from(position).unwrap_or(i64::MAX),
            eof: false,
        })
    }
}

impl Handle for GuestFileFlush {
    fn handle(agent: &mut Agent, args: FileHandleArgs) -> Result<Empty, CommandError> {
        let f = file(agent, args.handle)?;
        lock(&f)
            .flush()
            .map_err(|e| failed("failed to flush file", &e))?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_file_read_value_writes_as_serde_would() {
        let ret = files::GuestFileRead {
            count: 3,
            buf_b64: "YWJj".into(),
            eof: true,
        };
        let via_serde = Value::from_json(serde_json::to_value(&ret).unwrap());
        let mut d = Dict::new();
        d.insert("count", Value::Int(3));
        d.insert("buf-b64", Value::Bytes(b"abc".to_vec()));
        d.insert("eof", Value::Bool(true));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        qga_proto::writer::write_value(&mut a, &via_serde);
        qga_proto::writer::write_value(&mut b, &Value::Dict(d));
        assert_eq!(a, b);
    }

    #[test]
    fn test_parse_mode_table_exact() {
        for m in [
            "r", "rb", "w", "wb", "a", "ab", "r+", "rb+", "r+b", "w+", "wb+", "w+b", "a+", "ab+",
            "a+b",
        ] {
            assert!(parse_mode(m).is_some(), "{m}");
        }
        for m in ["", "rb ", "wx", "R", "rw", "r,ccs=UTF-8", "+r"] {
            assert!(parse_mode(m).is_none(), "{m}");
        }
        let a = parse_mode("a+").unwrap();
        assert!(a.read && a.write && a.append && a.create && !a.truncate);
    }
}
