//! `~/.ssh/authorized_keys` for guest-ssh-get/add/remove-authorized-keys.
//!
//! The agent runs as root on a directory the user owns, so every step goes through
//! directory descriptors: `~/.ssh` and `authorized_keys` are opened without following
//! symbolic links (a link is refused with `ELOOP`), a hard link to a file the user does not
//! own is refused, and a new file is written to a temporary name in `~/.ssh`, given to the
//! user (mode 0600) and renamed into place.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};

use crate::sysroot::{strerror, strerror_raw};

/// The account whose keys are managed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory (`pw_dir`).
    pub home: PathBuf,
}

/// Why a key command failed; the texts are qemu-ga's (GLib's for the file parts).
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// getpwnam_r found nothing (errno 0: "Success") or failed.
    #[error("failed to lookup user '{user}': {}", strerror_raw(*errno))]
    Lookup {
        /// The user name asked for.
        user: String,
        /// The error (0 when the user does not exist).
        errno: i32,
    },
    /// A key starts with `#` or has a newline.
    #[error("invalid OpenSSH public key: '{0}'")]
    InvalidKey(String),
    /// The key file cannot be read.
    #[error("failed to read '{path}': {detail}")]
    Read {
        /// `~/.ssh/authorized_keys`.
        path: String,
        /// GLib-style detail.
        detail: String,
    },
    /// The key file cannot be written.
    #[error("failed to write to '{path}': {detail}")]
    Write {
        /// `~/.ssh/authorized_keys`.
        path: String,
        /// GLib-style detail.
        detail: String,
    },
    /// `~/.ssh` cannot be created.
    #[error("failed to create directory '{path}': {}", strerror(source))]
    Mkdir {
        /// `~/.ssh`.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// chown failed (qemu-ga says "directory" for the file too).
    #[error("failed to set ownership of directory '{path}': {}", strerror(source))]
    Chown {
        /// The directory or file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// chmod of `~/.ssh` failed.
    #[error(
        "failed to set permissions of directory '{path}': {}",
        strerror(source)
    )]
    ChmodDir {
        /// `~/.ssh`.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// chmod of the key file failed.
    #[error("failed to set permissions of '{path}': {}", strerror(source))]
    Chmod {
        /// `~/.ssh/authorized_keys`.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

/// Looks up `user` with getpwnam_r.
pub fn lookup_user(user: &str) -> Result<Account, SshError> {
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(Account {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        }),
        Ok(None) => Err(SshError::Lookup {
            user: user.to_string(),
            errno: 0,
        }),
        Err(e) => Err(SshError::Lookup {
            user: user.to_string(),
            errno: e as i32,
        }),
    }
}

/// Rejects keys as qemu-ga does: a key may not start with `#` or contain a newline.
pub fn check_keys(keys: &[String]) -> Result<(), SshError> {
    match keys.iter().find(|k| k.starts_with('#') || k.contains('\n')) {
        Some(k) => Err(SshError::InvalidKey(k.clone())),
        None => Ok(()),
    }
}

/// The lines of a key file: cut at a NUL byte (C string), split at `\n`, without the empty
/// piece after a final newline.
fn file_lines(text: &str) -> Vec<&str> {
    let text = text.split('\0').next().unwrap_or_default();
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
}

fn join_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// The keys guest-ssh-get-authorized-keys returns: lines stripped of ASCII white space,
/// blank lines and `#` comments skipped, in reverse file order (qemu-ga prepends).
pub fn keys_from_text(text: &str) -> Vec<String> {
    file_lines(text)
        .iter()
        .map(|l| l.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .rev()
        .map(str::to_string)
        .collect()
}

/// The new file after adding `keys` to `existing` (`None`: no file or reset): keys already
/// present as a whole line are not added again. One key per line, ending with a newline.
pub fn add_to_text(existing: Option<&str>, keys: &[String]) -> String {
    let mut lines = existing.map(file_lines).unwrap_or_default();
    for k in keys {
        if !lines.contains(&k.as_str()) {
            lines.push(k);
        }
    }
    join_lines(&lines)
}

/// The new file after removing every line equal to one of `keys`.
pub fn remove_from_text(existing: &str, keys: &[String]) -> String {
    let lines: Vec<&str> = file_lines(existing)
        .into_iter()
        .filter(|l| !keys.iter().any(|k| k == l))
        .collect();
    join_lines(&lines)
}

/// `g_build_filename(home, parts…)`.
fn build_filename(home: &str, parts: &[&str]) -> String {
    let mut out = home.trim_end_matches('/').to_string();
    let rooted = home.starts_with('/');
    for p in parts {
        if !out.is_empty() || rooted {
            out.push('/');
        }
        out.push_str(p);
    }
    out
}

/// The account's `~/.ssh` and `~/.ssh/authorized_keys` as qemu-ga names them.
fn paths(acct: &Account) -> (String, String) {
    let home = acct.home.to_string_lossy();
    (
        build_filename(&home, &[".ssh"]),
        build_filename(&home, &[".ssh", "authorized_keys"]),
    )
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn open_home(acct: &Account) -> io::Result<OwnedFd> {
    File::open(&acct.home).map(OwnedFd::from).and_then(|fd| {
        if fstat(&fd).map_err(io_err)?.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() {
            Ok(fd)
        } else {
            Err(io::Error::from_raw_os_error(libc::ENOTDIR))
        }
    })
}

fn is_symlink(dir: BorrowedFd<'_>, name: &str) -> bool {
    fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFLNK.bits())
}

/// Opens `~/.ssh` without following a symbolic link (`ELOOP` for one).
fn open_ssh_dir(home: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(home, ".ssh", flags, Mode::empty()).map_err(|e| {
        if matches!(e, Errno::ENOTDIR | Errno::ELOOP) && is_symlink(home, ".ssh") {
            io_err(Errno::ELOOP)
        } else {
            io_err(e)
        }
    })
}

fn file_type_ok(st: &FileStat, acct: &Account) -> Result<(), String> {
    let kind = st.st_mode & SFlag::S_IFMT.bits();
    if kind == SFlag::S_IFDIR.bits() {
        return Err(strerror_raw(libc::EISDIR));
    }
    if kind != SFlag::S_IFREG.bits() {
        return Err("not a regular file".to_string());
    }
    if st.st_nlink > 1 && st.st_uid != acct.uid {
        return Err("a hard link to a file the user does not own".to_string());
    }
    Ok(())
}

/// Reads `authorized_keys` in the open `~/.ssh`. `Ok(None)` when it does not exist.
fn read_in(ssh: BorrowedFd<'_>, acct: &Account, path: &str) -> Result<Option<String>, SshError> {
    let fail = |detail: String| SshError::Read {
        path: path.to_string(),
        detail,
    };
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match openat(ssh, "authorized_keys", flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(fail(format!(
                "Failed to open file “{path}”: {}",
                strerror(&io_err(e))
            )));
        }
    };
    let st = fstat(&fd).map_err(|e| {
        fail(format!(
            "Failed to open file “{path}”: {}",
            strerror(&io_err(e))
        ))
    })?;
    file_type_ok(&st, acct).map_err(|why| fail(format!("Failed to open file “{path}”: {why}")))?;
    let mut bytes = Vec::new();
    File::from(fd).read_to_end(&mut bytes).map_err(|e| {
        fail(format!(
            "Failed to read from file “{path}”: {}",
            strerror(&e)
        ))
    })?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn open_failure(path: &str, e: &io::Error) -> SshError {
    SshError::Read {
        path: path.to_string(),
        detail: format!("Failed to open file “{path}”: {}", strerror(e)),
    }
}

/// The keys of the account (guest-ssh-get-authorized-keys).
pub fn get_keys(acct: &Account) -> Result<Vec<String>, SshError> {
    let (_, path) = paths(acct);
    let missing = || open_failure(&path, &io_err(Errno::ENOENT));
    let home = open_home(acct).map_err(|e| open_failure(&path, &e))?;
    let ssh = open_ssh_dir(home.as_fd()).map_err(|e| open_failure(&path, &e))?;
    let text = read_in(ssh.as_fd(), acct, &path)?.ok_or_else(missing)?;
    Ok(keys_from_text(&text))
}

/// Creates `~/.ssh` (0700, owned by the user).
fn make_ssh_dir(home: BorrowedFd<'_>, acct: &Account, ssh_path: &str) -> Result<OwnedFd, SshError> {
    let mkdir_err = |source| SshError::Mkdir {
        path: ssh_path.to_string(),
        source,
    };
    mkdirat(home, ".ssh", Mode::from_bits_truncate(0o700)).map_err(|e| mkdir_err(io_err(e)))?;
    let dir = open_ssh_dir(home).map_err(mkdir_err)?;
    fchown(
        &dir,
        Some(Uid::from_raw(acct.uid)),
        Some(Gid::from_raw(acct.gid)),
    )
    .map_err(|e| SshError::Chown {
        path: ssh_path.to_string(),
        source: io_err(e),
    })?;
    fchmod(&dir, Mode::from_bits_truncate(0o700)).map_err(|e| SshError::ChmodDir {
        path: ssh_path.to_string(),
        source: io_err(e),
    })?;
    Ok(dir)
}

/// Writes `content` as `authorized_keys` in the open `~/.ssh`: temporary file (0600, owned
/// by the user), fsync, rename, so a crash leaves the old or the new file, never half.
fn write_in(
    ssh: BorrowedFd<'_>,
    acct: &Account,
    ssh_path: &str,
    path: &str,
    content: &str,
) -> Result<(), SshError> {
    let write_err = |detail: String| SshError::Write {
        path: path.to_string(),
        detail,
    };
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut attempt = 0u32;
    let (tmp, fd) = loop {
        let tmp = format!(".authorized_keys.qga{}.{attempt}", std::process::id());
        match openat(ssh, tmp.as_str(), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EEXIST) if attempt < 100 => attempt += 1,
            Err(e) => {
                return Err(write_err(format!(
                    "Failed to create file “{ssh_path}/{tmp}”: {}",
                    strerror(&io_err(e))
                )));
            }
        }
    };
    let tmp_path = format!("{ssh_path}/{tmp}");
    let result = (|| {
        let mut file = File::from(fd);
        file.write_all(content.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                write_err(format!(
                    "Failed to write file “{tmp_path}”: write() failed: {}",
                    strerror(&e)
                ))
            })?;
        fchown(
            &file,
            Some(Uid::from_raw(acct.uid)),
            Some(Gid::from_raw(acct.gid)),
        )
        .map_err(|e| SshError::Chown {
            path: path.to_string(),
            source: io_err(e),
        })?;
        fchmod(&file, Mode::from_bits_truncate(0o600)).map_err(|e| SshError::Chmod {
            path: path.to_string(),
            source: io_err(e),
        })?;
        renameat(ssh, tmp.as_str(), ssh, "authorized_keys").map_err(|e| {
            write_err(format!(
                "Failed to rename file “{tmp_path}” to “{path}”: g_rename() failed: {}",
                strerror(&io_err(e))
            ))
        })
    })();
    if result.is_err() {
        let _ = unlinkat(ssh, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
    } else {
        // Make the rename durable; a failure here does not undo the change.
        let _ = nix::unistd::fsync(ssh);
    }
    result
}

/// Adds keys (guest-ssh-add-authorized-keys); `reset` replaces the existing ones.
pub fn add_keys(acct: &Account, keys: &[String], reset: bool) -> Result<(), SshError> {
    let (ssh_path, path) = paths(acct);
    let home = open_home(acct).map_err(|source| SshError::Mkdir {
        path: ssh_path.clone(),
        source,
    })?;
    let ssh = match open_ssh_dir(home.as_fd()) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(open_failure(&path, &e)),
        Err(_) => make_ssh_dir(home.as_fd(), acct, &ssh_path)?,
    };
    let existing = if reset {
        None
    } else {
        read_in(ssh.as_fd(), acct, &path)?
    };
    let content = add_to_text(existing.as_deref(), keys);
    write_in(ssh.as_fd(), acct, &ssh_path, &path, &content)
}

/// Removes keys (guest-ssh-remove-authorized-keys); no file is no error.
pub fn remove_keys(acct: &Account, keys: &[String]) -> Result<(), SshError> {
    let (ssh_path, path) = paths(acct);
    let Ok(home) = open_home(acct) else {
        return Ok(());
    };
    let ssh = match open_ssh_dir(home.as_fd()) {
        Ok(fd) => fd,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Ok(()),
        Err(e) => return Err(open_failure(&path, &e)),
    };
    let Some(text) = read_in(ssh.as_fd(), acct, &path)? else {
        return Ok(());
    };
    write_in(
        ssh.as_fd(),
        acct,
        &ssh_path,
        &path,
        &remove_from_text(&text, keys),
    )
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
