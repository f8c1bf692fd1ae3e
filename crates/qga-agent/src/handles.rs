//! Open guest-file handles: the table, its bound, and stdio-like read/write semantics on
//! unbuffered descriptors (data written is visible at once; nothing to lose on exit).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use qga_sys::file::{PipedData, Whence};

/// Handles open at once unless configured otherwise.
pub const DEFAULT_MAX_HANDLES: usize = 1024;

/// One open file.
#[derive(Debug)]
pub struct OpenFile {
    file: File,
}

/// What one read returned.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// The bytes.
    pub data: Vec<u8>,
    /// Whether the read stopped at end of file (stdio's `feof` for this read).
    pub eof: bool,
}

impl OpenFile {
    /// Wraps an open file.
    pub fn new(file: File) -> OpenFile {
        OpenFile { file }
    }

    /// Reads up to `count` bytes like `fread`: until `count` bytes, end of file or no more
    /// data for now (a non-blocking FIFO, which returns what it had). Any other failure is
    /// returned as the error even after some bytes were read (they are dropped, the position
    /// stays past them), as qemu-ga does.
    pub fn read(&mut self, count: usize) -> io::Result<ReadResult> {
        let mut data = Vec::with_capacity(count);
        while data.len() < count {
            let want = count - data.len();
            match qga_sys::file::read_append(&self.file, &mut data, want) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !data.is_empty() => {
                    return Ok(ReadResult { data, eof: false });
                }
                Err(e) => return Err(e),
            }
        }
        let eof = data.len() < count;
        Ok(ReadResult { data, eof })
    }

    /// Reads up to `count` bytes of a regular file into a pipe (the data stays in the
    /// kernel's page cache; see [`qga_sys::file::splice_read`]), with `eof` as for
    /// [`OpenFile::read`]; `Ok(None)` when the file must be read the ordinary way.
    pub fn read_piped(&mut self, count: usize) -> io::Result<Option<(PipedData, bool)>> {
        Ok(qga_sys::file::splice_read(&self.file, count)?.map(|p| {
            let eof = p.len() < count;
            (p, eof)
        }))
    }

    /// Writes all of `data` (a non-blocking FIFO may take less: the count says how much).
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < data.len() {
            match self.file.write(&data[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && done > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Moves the position; returns the new one.
    pub fn seek(&mut self, offset: i64, whence: Whence) -> io::Result<u64> {
        qga_sys::file::seek(&self.file, offset, whence)
    }

    /// Nothing is buffered in the agent; this only reports whether the descriptor is valid.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A file shared by the connections that use its handle; one operation at a time.
pub type SharedFile = Arc<Mutex<OpenFile>>;

/// The handle table; clones share it (every connection sees the same handles). Its lock is
/// held only to look a handle up, add or remove one; an operation on a file locks that file
/// only, so a long read on one handle does not hold up other handles (or other connections).
#[derive(Debug, Clone)]
pub struct Handles {
    files: Arc<Mutex<BTreeMap<i64, SharedFile>>>,
    max: usize,
}

impl Handles {
    /// An empty table with room for `max` handles.
    pub fn new(max: usize) -> Handles {
        Handles {
            files: Arc::new(Mutex::new(BTreeMap::new())),
            max,
        }
    }

    /// Whether another handle fits.
    pub fn full(&self) -> bool {
        crate::agent::lock(&self.files).len() >= self.max
    }

    /// The configured bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Adds an open file under `handle`; gives the file back if the table is full (another
    /// connection took the last slot since [`Handles::full`] was asked).
    pub fn insert(&self, handle: i64, file: OpenFile) -> Result<(), OpenFile> {
        let mut files = crate::agent::lock(&self.files);
        if files.len() >= self.max {
            return Err(file);
        }
        files.insert(handle, Arc::new(Mutex::new(file)));
        Ok(())
    }

    /// The open file for `handle`.
    pub fn get(&self, handle: i64) -> Option<SharedFile> {
        crate::agent::lock(&self.files).get(&handle).cloned()
    }

    /// Removes `handle`, returning its file (closed when the last user lets go of it).
    pub fn remove(&self, handle: i64) -> Option<SharedFile> {
        crate::agent::lock(&self.files).remove(&handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_read_reports_eof_like_fread() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let mut f = OpenFile::new(File::open(&p).unwrap());
        assert_eq!(
            f.read(5).unwrap(),
            ReadResult {
                data: b"hello".to_vec(),
                eof: false
            }
        );
        assert_eq!(
            f.read(5).unwrap(),
            ReadResult {
                data: vec![],
                eof: true
            }
        );
        f.seek(1, Whence::Set).unwrap();
        assert_eq!(
            f.read(100).unwrap(),
            ReadResult {
                data: b"ello".to_vec(),
                eof: true
            }
        );
        assert_eq!(
            f.read(0).unwrap(),
            ReadResult {
                data: vec![],
                eof: false
            }
        );
    }

    #[test]
    fn test_table_bound() {
        let h = Handles::new(1);
        assert!(!h.full());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        h.insert(7, OpenFile::new(File::open(&p).unwrap())).unwrap();
        assert!(h.full());
        assert!(h.insert(8, OpenFile::new(File::open(&p).unwrap())).is_err());
        assert!(h.get(7).is_some() && h.get(8).is_none());
        assert!(h.remove(7).is_some());
    }
}
