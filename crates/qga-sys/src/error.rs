//! The error type shared by all OS calls of this crate.

use std::io;
use std::path::PathBuf;

use crate::keyfile::KeyFileError;

/// Failure of an OS call made by this crate.
///
/// Messages are short; the OS error, when there is one, is the `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysError {
    /// A system call failed.
    #[error("{call} failed")]
    Os {
        /// Name of the call, e.g. `"poll"`.
        call: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file could not be opened, read, written or removed.
    #[error("cannot {op} {}", path.display())]
    File {
        /// What was attempted: `"open"`, `"read"`, `"write"`…
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another open of the same file) holds the pid file lock.
    #[error("cannot lock pid file {}", path.display())]
    PidFileLocked {
        /// The pid file.
        path: PathBuf,
        /// The OS error (`EAGAIN`/`EACCES`).
        #[source]
        source: io::Error,
    },
    /// A file that must be UTF-8 text is not.
    #[error("file is not utf-8 encoded: {}", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// A GLib-style key file could not be parsed.
    #[error("failed to parse file '{}'", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What the key-file parser rejected.
        #[source]
        source: KeyFileError,
    },
    /// systemd passed more than one socket.
    #[error("socket activation passed {0} sockets, only one is supported")]
    TooManySockets(usize),
    /// systemd passed a socket that is neither `AF_UNIX` nor `AF_VSOCK`.
    #[error("socket activation passed an unsupported socket (address family {0})")]
    UnsupportedSocket(i32),
    /// A vsock peer whose CID is not in `vsock-allow-cids` (by default only the host, 2).
    #[error("refused a vsock client from CID {0} (vsock-allow-cids)")]
    RefusedPeer(u32),
    /// The call is only sound in a single-threaded process and more threads are running.
    #[error("{0} needs a single-threaded process")]
    MultiThreaded(&'static str),
}

impl SysError {
    /// Wraps an `errno` value from `nix`.
    pub(crate) fn errno(call: &'static str, errno: nix::errno::Errno) -> Self {
        Self::Os {
            call,
            source: io::Error::from(errno),
        }
    }

    /// Wraps an `io::Error` from a system call.
    pub fn os(call: &'static str, source: io::Error) -> Self {
        Self::Os { call, source }
    }

    /// Whether the device behind the descriptor went away (a virtio-serial port that was
    /// hot-unplugged: its reads fail with `ENODEV`).
    pub fn is_device_gone(&self) -> bool {
        matches!(self.raw_os_error(), Some(libc::ENODEV | libc::ENXIO))
    }

    /// Wraps the current `errno` after a failed libc call.
    pub(crate) fn last_os(call: &'static str) -> Self {
        Self::Os {
            call,
            source: io::Error::last_os_error(),
        }
    }

    /// Wraps an `io::Error` about a file.
    pub fn file(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::File {
            op,
            path: path.into(),
            source,
        }
    }

    /// The underlying OS error, if there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Self::Os { source, .. }
            | Self::File { source, .. }
            | Self::PidFileLocked { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The raw `errno`, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.io_error().and_then(io::Error::raw_os_error)
    }

    /// True when a signal interrupted a blocking call (`EINTR`): check the quit flag and retry.
    pub fn is_interrupted(&self) -> bool {
        self.io_error()
            .is_some_and(|e| e.kind() == io::ErrorKind::Interrupted)
    }

    /// True when a non-blocking call would have blocked (`EAGAIN`).
    pub fn is_would_block(&self) -> bool {
        self.io_error()
            .is_some_and(|e| e.kind() == io::ErrorKind::WouldBlock)
    }
}

#[cfg(test)]
mod device_gone_tests {
    use super::*;

    #[test]
    fn test_unplugged_port_errors_are_device_gone_others_not() {
        let gone = SysError::os("read", io::Error::from_raw_os_error(libc::ENODEV));
        assert!(gone.is_device_gone());
        let other = SysError::os("read", io::Error::from_raw_os_error(libc::EIO));
        assert!(!other.is_device_gone());
    }
}
