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

/// One read(2) of up to `max` bytes from `file`'s position, appended to `buf` (straight into
/// its spare capacity: no zero-fill, no probing read); returns the count, 0 at end of file
/// (or, without a system call, when `max` is 0).
pub fn read_append(file: &File, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    if max == 0 {
        return Ok(0);
    }
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let n = max.min(spare.len());
    // SAFETY: the pointer and length describe `n` bytes of `buf`'s spare capacity, valid for
    // writes and not otherwise used during the call; read(2) writes at most `n` bytes there.
    let got = unsafe { libc::read(file.as_raw_fd(), spare.as_mut_ptr().cast(), n) };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: read(2) initialised the first `got` (at most `n`) bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + got) };
    Ok(got)
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

/// Bytes read from a file into pipes of their own with splice(2): the pipes hold the
/// kernel's page-cache pages, so the agent's memory never holds the data; read out once, in
/// order.
#[derive(Debug)]
pub struct PipedData {
    /// The read ends, each with its write end closed (a drained pipe reads as end of file).
    pipes: std::collections::VecDeque<File>,
    len: usize,
}

impl PipedData {
    /// The number of bytes in the pipes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the pipes are empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl io::Read for PipedData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(pipe) = self.pipes.front_mut() {
            match pipe.read(buf)? {
                0 => {
                    self.pipes.pop_front();
                }
                n => return Ok(n),
            }
        }
        Ok(0)
    }
}

/// The pipe size asked for first: a pipe up to `/proc/sys/fs/pipe-max-size` (1 MiB unless
/// configured) needs no privilege; a larger one needs `CAP_SYS_RESOURCE`.
const PIPE_SEGMENT: usize = 1 << 20;
/// Pipes of a splice_read at most: 48 MiB (QEMU's cap) from any position. A pipe holds whole
/// page-cache pages, so from a position inside a page the first pipe holds up to a page less
/// than 1 MiB and 48 MiB needs a 49th; one more for good measure.
const PIPES_MAX: usize = 50;
/// The largest read taken through pipes: QEMU's cap on a guest-file-read.
const PIPED_MAX: usize = 48 << 20;

/// A pipe whose capacity is at least [`PIPE_SEGMENT`], or `None`.
fn segment_pipe() -> io::Result<Option<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)>> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let (rx, tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let size = libc::c_int::try_from(PIPE_SEGMENT).unwrap_or(libc::c_int::MAX);
    Ok(match fcntl(&tx, FcntlArg::F_SETPIPE_SZ(size)) {
        Ok(got) if got >= size => Some((rx, tx)),
        _ => None,
    })
}

/// Reads up to `count` bytes from `file`'s position (which moves as with read(2)) into pipes
/// of 1 MiB, stopping early at end of file. `Ok(None)`, with the position unchanged, when
/// this cannot be done and the caller should read the ordinary way: not a regular file, a
/// count over QEMU's cap, pipes refused (descriptors or pipe memory exhausted), or any
/// failure of splice itself (no support, a refusal, an I/O error the ordinary read will
/// report in its own words).
pub fn splice_read(file: &File, count: usize) -> io::Result<Option<PipedData>> {
    use nix::errno::Errno;
    use nix::fcntl::{SpliceFFlags, splice};

    if count == 0 || count > PIPED_MAX || !file.metadata()?.file_type().is_file() {
        return Ok(None);
    }
    let mut out = PipedData {
        pipes: std::collections::VecDeque::new(),
        len: 0,
    };
    // Gives back what was taken, for the ordinary read to start where this one did.
    let undo = |taken: usize| -> io::Result<Option<PipedData>> {
        seek(file, -i64::try_from(taken).unwrap_or(i64::MAX), Whence::Cur)?;
        Ok(None)
    };
    // The write end of the pipe being filled and what it holds; each pipe's read end goes
    // into `out` when the pipe is made, and dropping the write end closes it.
    let mut filling: Option<std::os::fd::OwnedFd> = None;
    let mut held = 0;
    while out.len < count {
        let pipe = match filling.take() {
            Some(pipe) => pipe,
            None => {
                if out.pipes.len() >= PIPES_MAX {
                    return undo(out.len);
                }
                let Ok(Some((rx, tx))) = segment_pipe() else {
                    return undo(out.len);
                };
                out.pipes.push_back(File::from(rx));
                held = 0;
                tx
            }
        };
        // Never more than the pipe can take: the pipe is not drained until the reply.
        let want = (count - out.len).min(PIPE_SEGMENT - held);
        match splice(
            file,
            None,
            &pipe,
            None,
            want,
            SpliceFFlags::SPLICE_F_NONBLOCK,
        ) {
            Ok(0) => break,
            Ok(n) => {
                out.len += n;
                held += n;
                if held < PIPE_SEGMENT {
                    filling = Some(pipe);
                }
            }
            Err(Errno::EINTR) => filling = Some(pipe),
            // Full before its nominal size (pages only partly used): on to the next pipe.
            Err(Errno::EAGAIN) if held > 0 => {}
            // Anything else (no splice support, a security module's refusal, an I/O error):
            // the ordinary read starts over from the same position and reports what it finds.
            Err(_) => return undo(out.len),
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    const READ_ONLY: Access = Access {
        read: true,
        write: false,
        append: false,
        create: false,
        truncate: false,
        nofollow: false,
    };

    #[test]
    fn test_read_append_appends_and_reports_end_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let f = open(&path, READ_ONLY).unwrap();
        let mut buf = b"ab".to_vec();
        assert_eq!(read_append(&f, &mut buf, 4).unwrap(), 4);
        assert_eq!(buf, b"ab0123");
        assert_eq!(read_append(&f, &mut buf, 100).unwrap(), 6);
        assert_eq!(buf, b"ab0123456789");
        assert_eq!(read_append(&f, &mut buf, 100).unwrap(), 0);
        assert_eq!(read_append(&f, &mut buf, 0).unwrap(), 0);
        assert_eq!(buf, b"ab0123456789");
        // A descriptor not open for reading: the error, nothing appended.
        let wo = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let e = read_append(&wo, &mut buf, 4).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        assert_eq!(buf, b"ab0123456789");
    }

    #[test]
    fn test_splice_read_regular_file_moves_position_and_stops_at_eof() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let mut first = splice_read(&f, 200_000)
            .unwrap()
            .expect("a regular file splices");
        assert_eq!(first.len(), 200_000);
        let mut got = Vec::new();
        first.read_to_end(&mut got).unwrap();
        assert_eq!(got, data[..200_000]);
        // The position moved: the next read gets the rest, short of the count (end of file).
        let mut rest = splice_read(&f, 200_000).unwrap().unwrap();
        assert_eq!(rest.len(), 100_000);
        got.clear();
        rest.read_to_end(&mut got).unwrap();
        assert_eq!(got, data[200_000..]);
        let end = splice_read(&f, 200_000).unwrap().unwrap();
        assert!(end.is_empty());
        assert_eq!(seek(&f, 0, Whence::Cur).unwrap(), 300_000);
    }

    #[test]
    fn test_splice_read_spans_pipes_from_an_unaligned_position() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i ^ (i >> 13)) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        seek(&f, 4097, Whence::Set).unwrap();
        let mut piped = splice_read(&f, 4_500_000).unwrap().unwrap();
        assert_eq!(piped.len(), 4_500_000);
        let mut got = Vec::new();
        piped.read_to_end(&mut got).unwrap();
        assert!(got == data[4097..4097 + 4_500_000], "data differs");
        // Over QEMU's cap: declined, nothing consumed.
        assert!(splice_read(&f, (48 << 20) + 1).unwrap().is_none());
        assert_eq!(seek(&f, 0, Whence::Cur).unwrap(), 4_504_097);
    }

    #[test]
    fn test_splice_read_of_the_cap_from_inside_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cap");
        let data: Vec<u8> = (0..(49u32 << 20)).map(|i| (i ^ (i >> 11)) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        seek(&f, 100, Whence::Set).unwrap();
        let mut piped = splice_read(&f, 48 << 20)
            .unwrap()
            .expect("48 MiB from offset 100");
        assert_eq!(piped.len(), 48 << 20);
        let mut got = Vec::new();
        piped.read_to_end(&mut got).unwrap();
        assert!(got == data[100..100 + (48 << 20)], "data differs");
    }

    #[test]
    fn test_splice_read_declines_fifo_and_zero_count() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let f = open(&fifo, READ_ONLY).unwrap();
        assert!(splice_read(&f, 1 << 20).unwrap().is_none());
        let p = dir.path().join("small");
        std::fs::write(&p, b"abc").unwrap();
        let f = File::open(&p).unwrap();
        assert!(splice_read(&f, 0).unwrap().is_none());
        // Nothing was consumed by the refusals.
        assert_eq!(seek(&f, 0, Whence::Cur).unwrap(), 0);
    }

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
        let mut f = open(&fifo, READ_ONLY).unwrap();
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
