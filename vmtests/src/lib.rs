//! The real-VM test tier of qga: builds a small Linux guest (a Debian cloud kernel, busybox
//! and the agent in an initramfs), boots it under QEMU or libvirt, and drives the agent in it
//! over virtio-serial and isa-serial with real clients.
//!
//! The tests in `tests/` are `#[ignore]`d: `scripts/vmtest` installs what they need, builds
//! the static agent, fetches the kernel and runs them. See `vmtests/README.md`.

pub mod checks;
pub mod client_checks;
pub mod cpio;
pub mod debian;
pub mod env;
pub mod ext_checks;
pub mod image;
pub mod kmod;
pub mod libvirt;
pub mod report;
pub mod storage_buses;
pub mod storage_checks;
pub mod suite;
pub mod vm;

use std::path::Path;
use std::process::{Command, Stdio};

/// An error of the harness (not a failed check: those are [`suite::CheckResult`]s).
#[derive(Debug)]
pub struct Error(pub String);

impl Error {
    /// An error with a message.
    pub fn msg(text: impl Into<String>) -> Error {
        Error(text.into())
    }

    /// An I/O error on a path.
    pub fn io(path: &Path, e: &std::io::Error) -> Error {
        Error(format!("{}: {e}", path.display()))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Runs a command to completion and returns its standard output; fails on a non-zero exit.
pub fn run_capture(cmd: &mut Command) -> Result<Vec<u8>, Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::msg(format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
