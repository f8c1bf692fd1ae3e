//! The persistent state file `<statedir>/qga.state`, in qemu-ga's key-file format
//! (`[global]` / `fd_counter=N`), so that agents can be swapped without reusing handles.
//!
//! qemu-ga rewrites and fsyncs the file on every guest-file-open. We reserve handles in
//! blocks instead: the file says where the current block ends, so a crash can only skip
//! handles, never reuse one; on a clean exit the exact next handle is written back, so
//! qemu-ga (or we) continue from there.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// First file handle when no state exists (as qemu-ga).
pub const FIRST_HANDLE: i64 = 1000;

/// Handles reserved per write of the state file.
pub const HANDLE_BLOCK: i64 = 1024;

/// The state file and its current values. Clones share them (every connection uses the
/// same counters, behind a lock held only while a handle is taken or the file written).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    counters: Arc<Mutex<Counters>>,
}

#[derive(Debug)]
struct Counters {
    /// The value written in the file.
    fd_counter: i64,
    /// The next file handle to hand out.
    next: i64,
}

/// Errors loading or saving the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be written (qemu-ga's text).
    #[error("failed to write persistent state to {}: {}", .0.display(), crate::error::strerror(.1))]
    Io(PathBuf, std::io::Error),
}

/// Reads `fd_counter` from the text of a state file (pure; `None` if absent or malformed).
pub fn parse_fd_counter(text: &str) -> Option<i64> {
    let kf = qga_sys::keyfile::KeyFile::parse(text.as_bytes()).ok()?;
    kf.get_value("global", "fd_counter")?.trim().parse().ok()
}

impl StateFile {
    /// Loads the state from `statedir`, creating the file with defaults if it is missing
    /// or unreadable (as qemu-ga does).
    pub fn open(statedir: &Path) -> Result<StateFile, StateError> {
        let path = statedir.join("qga.state");
        let fd_counter = fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse_fd_counter(&t));
        let first = fd_counter.unwrap_or(FIRST_HANDLE);
        let state = StateFile {
            path,
            counters: Arc::new(Mutex::new(Counters {
                fd_counter: first,
                next: first,
            })),
        };
        if fd_counter.is_none() {
            state.save(first)?;
        }
        Ok(state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        crate::agent::lock(&self.counters)
    }

    /// The next handle: unique for this state directory, across restarts and crashes.
    pub fn next_handle(&self) -> Result<i64, StateError> {
        let mut c = self.lock();
        if c.next >= c.fd_counter {
            let reserved = c.next.saturating_add(HANDLE_BLOCK);
            self.save(reserved)?;
            c.fd_counter = reserved;
        }
        let handle = c.next;
        c.next += 1;
        Ok(handle)
    }

    /// Gives back the unused part of the reserved block (on a clean exit).
    pub fn release_unused(&self) -> Result<(), StateError> {
        let mut c = self.lock();
        if c.fd_counter > c.next {
            self.save(c.next)?;
            c.fd_counter = c.next;
        }
        Ok(())
    }

    /// The counter as written in the file.
    pub fn fd_counter(&self) -> i64 {
        self.lock().fd_counter
    }

    /// Writes the state atomically (temporary file, fsync, rename).
    fn save(&self, fd_counter: i64) -> Result<(), StateError> {
        let err = |e| StateError::Io(self.path.clone(), e);
        let tmp = self.path.with_extension("state.tmp");
        // A leftover from a crash goes first; then O_EXCL, so nothing planted at the
        // temporary name (a symlink) is followed. Owner-only, whatever the umask.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
            _ => {}
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(format!("[global]\nfd_counter={fd_counter}\n").as_bytes())
            .map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, &self.path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_fd_counter_valid_and_malformed() {
        assert_eq!(parse_fd_counter("[global]\nfd_counter=1042\n"), Some(1042));
        assert_eq!(parse_fd_counter("[global]\nfd_counter = 7\n"), Some(7));
        assert_eq!(parse_fd_counter("[other]\nfd_counter=5\n"), None);
        assert_eq!(parse_fd_counter("[global]\nfd_counter=abc\n"), None);
        assert_eq!(parse_fd_counter(""), None);
    }

    #[test]
    fn test_open_creates_file_in_qemu_format() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateFile::open(dir.path()).unwrap();
        assert_eq!(st.fd_counter(), 1000);
        assert_eq!(
            fs::read_to_string(dir.path().join("qga.state")).unwrap(),
            "[global]\nfd_counter=1000\n"
        );
        fs::write(dir.path().join("qga.state"), "[global]\nfd_counter=2000\n").unwrap();
        assert_eq!(StateFile::open(dir.path()).unwrap().fd_counter(), 2000);
    }

    #[test]
    fn test_handles_reserved_in_blocks_and_released_on_exit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("qga.state");
        let st = StateFile::open(dir.path()).unwrap();
        assert_eq!(st.next_handle().unwrap(), 1000);
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("[global]\nfd_counter={}\n", 1000 + HANDLE_BLOCK)
        );
        for expected in 1001..1000 + HANDLE_BLOCK + 5 {
            assert_eq!(st.next_handle().unwrap(), expected);
        }
        assert_eq!(st.fd_counter(), 1000 + 2 * HANDLE_BLOCK);
        // A crash here: a new agent starts after every handle given out.
        let after_crash = StateFile::open(dir.path()).unwrap();
        assert!(after_crash.lock().next >= 1000 + HANDLE_BLOCK + 5);
        st.release_unused().unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("[global]\nfd_counter={}\n", 1000 + HANDLE_BLOCK + 5)
        );
    }
}
