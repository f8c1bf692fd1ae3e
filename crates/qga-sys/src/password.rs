//! guest-set-user-password: `chpasswd` as qemu-ga uses it, and where there is none (BusyBox
//! guests), a direct update of `/etc/shadow` (or `/etc/passwd` without shadow): the password
//! hashed with SHA-512 crypt by the system's libcrypt, the file locked as shadow-utils
//! (`/etc/.pwd.lock`) and BusyBox (`/etc/shadow+`) lock it, written to the temporary file,
//! synced and renamed, so a crash never leaves a half-written file.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::OnceLock;
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

type CryptRnFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void, c_int) -> *mut c_char;
type CryptRFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void) -> *mut c_char;

#[derive(Debug, Clone, Copy)]
enum CryptFn {
    Rn(CryptRnFn),
    R(CryptRFn),
}

/// libcrypt's `crypt_rn` (libxcrypt) or `crypt_r`, loaded at run time so that the agent
/// does not need libcrypt to start.
fn crypt_fn() -> Option<CryptFn> {
    static FN: OnceLock<Option<CryptFn>> = OnceLock::new();
    *FN.get_or_init(|| {
        let mut handles = vec![libc::RTLD_DEFAULT];
        for lib in [c"libcrypt.so.1", c"libcrypt.so.2", c"libcrypt.so"] {
            // SAFETY: dlopen with a valid C string; the handle is kept for the process's life.
            let h = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if !h.is_null() {
                handles.insert(0, h);
            }
        }
        for h in handles {
            // SAFETY: dlsym on a valid handle with a valid C string.
            let rn = unsafe { libc::dlsym(h, c"crypt_rn".as_ptr()) };
            if !rn.is_null() {
                // SAFETY: libxcrypt's crypt_rn has exactly this signature.
                return Some(CryptFn::Rn(unsafe {
                    std::mem::transmute::<*mut c_void, CryptRnFn>(rn)
                }));
            }
            // SAFETY: as above.
            let r = unsafe { libc::dlsym(h, c"crypt_r".as_ptr()) };
            if !r.is_null() {
                // SAFETY: crypt_r has exactly this signature in glibc, libxcrypt and musl.
                return Some(CryptFn::R(unsafe {
                    std::mem::transmute::<*mut c_void, CryptRFn>(r)
                }));
            }
        }
        None
    })
}

/// Bigger than `struct crypt_data` of glibc (131232 bytes) and libxcrypt (32768 bytes).
const CRYPT_DATA_SIZE: usize = 256 * 1024;

/// Hashes `password` with SHA-512 crypt (`$6$salt$…`) using the system's libcrypt.
pub fn crypt_sha512(password: &[u8], salt: &str) -> Result<String, PasswordError> {
    let func =
        crypt_fn().ok_or_else(|| PasswordError::Crypt("libcrypt is not available".into()))?;
    let phrase =
        CString::new(password).map_err(|_| PasswordError::Crypt("NUL in password".into()))?;
    let setting = CString::new(format!("$6${salt}"))
        .map_err(|_| PasswordError::Crypt("NUL in salt".into()))?;
    let mut data = vec![0u8; CRYPT_DATA_SIZE];
    // SAFETY: both strings are NUL-terminated and `data` is a zeroed buffer larger than
    // `struct crypt_data`; the result points into `data` (or is NULL) and is copied before
    // `data` is dropped.
    let out = unsafe {
        let p = match func {
            CryptFn::Rn(f) => f(
                phrase.as_ptr(),
                setting.as_ptr(),
                data.as_mut_ptr().cast(),
                CRYPT_DATA_SIZE as c_int,
            ),
            CryptFn::R(f) => f(phrase.as_ptr(), setting.as_ptr(), data.as_mut_ptr().cast()),
        };
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    match out {
        Some(h) if h.starts_with("$6$") => Ok(h),
        _ => Err(PasswordError::Crypt(strerror(&io::Error::last_os_error()))),
    }
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
