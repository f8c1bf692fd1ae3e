//! Opening files for guest-file-open: `O_NOCTTY | O_NONBLOCK | O_CLOEXEC` (a FIFO never
//! hangs the agent), new files created with mode 0666 less the process umask.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How to open: the meaning of one fopen(3) mode string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Open for reading.
    pub read: bool,
    /// Open for writing.
    pub write: bool,
    /// Writes go to the end.
    pub append: bool,
    /// Create the file if missing.
    pub create: bool,
    /// Truncate an existing file.
    pub truncate: bool,
    /// Fail (`ELOOP`) when the last component of the path is a symbolic link.
    pub nofollow: bool,
}

/// Opens `path` with `access`.
pub fn open(path: &Path, access: Access) -> io::Result<File> {
    OpenOptions::new()
        .read(access.read)
        .write(access.write && !access.append)
        .append(access.append)
        .create(access.create)
        .truncate(access.truncate)
        // Never writable by others, whatever the umask (qemu-ga: 0666).
        .mode(0o644)
        .custom_flags(
            libc::O_NOCTTY | libc::O_NONBLOCK | if access.nofollow { libc::O_NOFOLLOW } else { 0 },
        )
        .open(path)
}

/// Origin of a seek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    /// From the start.
    Set,
    /// From the current position.
    Cur,
    /// From the end.
    End,
}

/// `lseek(2)` with a signed offset for every origin (a negative absolute position fails with
/// `EINVAL`, as with fseek); returns the new position.
pub fn seek(file: &File, offset: i64, whence: Whence) -> io::Result<u64> {
    use nix::unistd::{Whence as W, lseek};
    let w = match whence {
        Whence::Set => W::SeekSet,
        Whence::Cur => W::SeekCur,
        Whence::End => W::SeekEnd,
    };
    let pos = lseek(file, offset, w).map_err(io::Error::from)?;
    u64::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn test_open_create_honours_umask_and_fifo_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new");
        let rw = Access {
            read: true,
            write: true,
            append: false,
            create: true,
            truncate: true,
            nofollow: false,
        };
        let mut f = open(&p, rw).unwrap();
        f.write_all(b"abc").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o022, 0, "umask applied: {mode:o}");

        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let ro = Access {
            read: true,
            write: false,
            append: false,
            create: false,
            truncate: false,
            nofollow: false,
        };
        let mut f = open(&fifo, ro).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(
            f.read(&mut buf).unwrap(),
            0,
            "no writer: end of file at once"
        );
        let e = seek(&f, 0, Whence::Cur).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESPIPE));
    }

    #[test]
    fn test_seek_negative_absolute_is_einval() {
        let f = tempfile::tempfile().unwrap();
        assert_eq!(
            seek(&f, -1, Whence::Set).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        assert_eq!(seek(&f, 10, Whence::Set).unwrap(), 10);
        assert_eq!(seek(&f, -4, Whence::Cur).unwrap(), 6);
    }
}
