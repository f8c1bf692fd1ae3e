//! guest-set-user-password: `chpasswd` as qemu-ga uses it, and where there is none (BusyBox
//! guests), a direct update of `/etc/shadow` (or `/etc/passwd` without shadow): the password
//! hashed with SHA-512 crypt (in Rust, no libcrypt needed), the file locked as shadow-utils
//! (`/etc/.pwd.lock`) and BusyBox (`/etc/shadow+`) lock it, written to the temporary file,
//! synced and renamed, so a crash never leaves a half-written file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::helper::{self, HelperError};
use crate::sysroot::{SysRoot, strerror};

/// Why setting a password failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// chpasswd failed (qemu-ga's texts).
    #[error(transparent)]
    Chpasswd(#[from] HelperError),
    /// The password could not be hashed.
    #[error("failed to set user password: cannot hash the password: {0}")]
    Crypt(String),
    /// The account is not in the file.
    #[error("failed to set user password: user '{user}' not found in {file}")]
    UnknownUser {
        /// The user.
        user: String,
        /// `/etc/shadow` or `/etc/passwd`.
        file: &'static str,
    },
    /// A file operation failed.
    #[error("failed to set user password: {what} {path}: {}", strerror(source))]
    Io {
        /// What was attempted.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

/// Sets `user`'s password to `password` (raw bytes, or a crypt(3) hash when `crypted`):
/// with `chpasswd [-e]` when it is in `PATH`, else by updating the account files.
pub fn set_password(user: &str, password: &[u8], crypted: bool) -> Result<(), PasswordError> {
    if helper::find_in_path("chpasswd").is_some() {
        let mut input = Vec::with_capacity(user.len() + password.len() + 2);
        input.extend_from_slice(user.as_bytes());
        input.push(b':');
        input.extend_from_slice(password);
        input.push(b'\n');
        let argv: &[&str] = if crypted {
            &["chpasswd", "-e"]
        } else {
            &["chpasswd"]
        };
        helper::run_command(argv, Some(&input), "set user password")?;
        return Ok(());
    }
    let hash = if crypted {
        String::from_utf8_lossy(password).into_owned()
    } else {
        crypt_sha512(password, &random_salt()?)?
    };
    update_account_file(&SysRoot::host(), user, &hash, days_since_epoch())
}

fn days_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// 16 salt characters from the crypt alphabet, from getrandom.
fn random_salt() -> Result<String, PasswordError> {
    const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 16];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if usize::try_from(n).ok() != Some(bytes.len()) {
        return Err(PasswordError::Crypt(format!(
            "getrandom: {}",
            strerror(&io::Error::last_os_error())
        )));
    }
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect())
}

/// The alphabet of crypt's base64.
const CRYPT_B64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SHA-512 of the concatenation of `parts`.
fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    use sha2::Digest;
    let mut h = sha2::Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `n` bytes taken from `digest` repeated as often as needed.
fn repeat_to(digest: &[u8; 64], n: usize) -> Vec<u8> {
    digest.iter().copied().cycle().take(n).collect()
}

/// Hashes `password` with SHA-512 crypt (`$6$salt$…`, 5000 rounds), the scheme of glibc's
/// and libxcrypt's `crypt()`, implemented here from its public specification so that a
/// static agent needs no libcrypt.
pub fn crypt_sha512(password: &[u8], salt: &str) -> Result<String, PasswordError> {
    const ROUNDS: usize = 5000;
    let salt = &salt.as_bytes()[..salt.len().min(16)];
    if salt.iter().any(|b| matches!(b, b'$' | b':' | b'\n' | 0)) {
        return Err(PasswordError::Crypt("invalid salt".into()));
    }
    let p = password;
    let b = sha512(&[p, salt, p]);
    let mut a = sha2::Sha512::default();
    {
        use sha2::Digest;
        a.update(p);
        a.update(salt);
        a.update(repeat_to(&b, p.len()));
        let mut n = p.len();
        while n > 0 {
            if n & 1 == 1 {
                a.update(b);
            } else {
                a.update(p);
            }
            n >>= 1;
        }
    }
    let a: [u8; 64] = sha2::Digest::finalize(a).into();
    let dp = sha512(&vec![p; p.len()]);
    let p_seq = repeat_to(&dp, p.len());
    let ds = sha512(&vec![salt; 16 + usize::from(a[0])]);
    let s_seq = repeat_to(&ds, salt.len());
    let mut c = a;
    for round in 0..ROUNDS {
        let odd = round % 2 == 1;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(4);
        parts.push(if odd { &p_seq } else { &c });
        if round % 3 != 0 {
            parts.push(&s_seq);
        }
        if round % 7 != 0 {
            parts.push(&p_seq);
        }
        parts.push(if odd { &c } else { &p_seq });
        c = sha512(&parts);
    }
    let mut out = format!("$6${}$", String::from_utf8_lossy(salt));
    let mut put = |w: u32, n: usize| {
        let mut w = w;
        for _ in 0..n {
            out.push(char::from(CRYPT_B64[(w & 0x3f) as usize]));
            w >>= 6;
        }
    };
    for i in 0..21 {
        // Byte triples (i, i+21, i+42), rotated as the scheme prescribes.
        let (x, y, z) = match i % 3 {
            0 => (i, i + 21, i + 42),
            1 => (i + 21, i + 42, i),
            _ => (i + 42, i, i + 21),
        };
        put(
            (u32::from(c[x]) << 16) | (u32::from(c[y]) << 8) | u32::from(c[z]),
            4,
        );
    }
    put(u32::from(c[63]), 2);
    Ok(out)
}

/// Replaces the password (second field) of `user`'s line in a shadow or passwd text, and
/// for shadow the last-change day (third field). `None` if the user has no line.
pub fn set_password_field(
    text: &str,
    user: &str,
    hash: &str,
    lastchg: Option<u64>,
) -> Option<String> {
    let mut found = false;
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            if found || fields.len() < 2 || fields[0] != user {
                return line.to_string();
            }
            found = true;
            fields[1] = hash;
            let days = lastchg.map(|d| d.to_string());
            if let (Some(days), true) = (&days, fields.len() > 2) {
                fields[2] = days;
            }
            fields.join(":")
        })
        .collect();
    found.then(|| lines.join("\n"))
}

/// An exclusive `fcntl` lock on `/etc/.pwd.lock`, as `lckpwdf(3)` takes it (waits up to
/// 15 seconds).
#[derive(Debug)]
struct PwdLock {
    _file: File,
}

impl PwdLock {
    fn acquire(root: &SysRoot) -> Result<Self, PasswordError> {
        let path = root.path("/etc/.pwd.lock");
        let io_err = |source| PasswordError::Io {
            what: "lock",
            path: "/etc/.pwd.lock".into(),
            source,
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // SAFETY: `flock` is plain data; all-zero is a valid value.
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as libc::c_short;
            fl.l_whence = libc::SEEK_SET as libc::c_short;
            // SAFETY: the fd is open and `fl` a valid flock the kernel only reads.
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
                return Ok(Self { _file: file });
            }
            let e = io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES))
                || Instant::now() > deadline
            {
                return Err(io_err(e));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Creates `path` exclusively (BusyBox's lock and temporary file, e.g. `/etc/shadow+`),
/// waiting up to 3 seconds for another writer to finish.
fn create_exclusive(path: &std::path::Path, shown: &str) -> Result<File, PasswordError> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(PasswordError::Io {
                    what: "create",
                    path: shown.to_string(),
                    source,
                });
            }
        }
    }
}

/// Sets `user`'s password hash in `/etc/shadow` (or `/etc/passwd` when there is no shadow
/// file) under `root`, with the locking and atomic replacement described above.
pub fn update_account_file(
    root: &SysRoot,
    user: &str,
    hash: &str,
    today: u64,
) -> Result<(), PasswordError> {
    let (file, shadow): (&'static str, bool) = if root.path("/etc/shadow").exists() {
        ("/etc/shadow", true)
    } else {
        ("/etc/passwd", false)
    };
    let tmp_name = format!("{file}+");
    let (real, tmp) = (root.path(file), root.path(&tmp_name));
    let io_err = |what: &'static str, path: &str| {
        let path = path.to_string();
        move |source| PasswordError::Io { what, path, source }
    };
    let _lock = PwdLock::acquire(root)?;
    let mut out = create_exclusive(&tmp, &tmp_name)?;
    let result = (|| {
        let meta = std::fs::metadata(&real).map_err(io_err("stat", file))?;
        let text = std::fs::read_to_string(&real).map_err(io_err("read", file))?;
        let new =
            set_password_field(&text, user, hash, shadow.then_some(today)).ok_or_else(|| {
                PasswordError::UnknownUser {
                    user: user.to_string(),
                    file,
                }
            })?;
        out.write_all(new.as_bytes())
            .map_err(io_err("write", &tmp_name))?;
        nix::unistd::fchown(
            &out,
            Some(nix::unistd::Uid::from_raw(meta.uid())),
            Some(nix::unistd::Gid::from_raw(meta.gid())),
        )
        .map_err(|e| io_err("chown", &tmp_name)(io::Error::from(e)))?;
        out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
            meta.mode() & 0o7777,
        ))
        .map_err(io_err("chmod", &tmp_name))?;
        out.sync_all().map_err(io_err("sync", &tmp_name))?;
        std::fs::rename(&tmp, &real).map_err(io_err("rename", &tmp_name))?;
        if let Some(dir) = real.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
