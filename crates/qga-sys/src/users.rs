//! Login records for guest-get-users: a pure parser of glibc's utmp file.
//!
//! Layout of one glibc `struct utmp` record on x86_64 and aarch64 (384 bytes, native byte
//! order): `ut_type` i16 + 2 pad, `ut_pid` i32, `ut_line[32]`, `ut_id[4]`, `ut_user[32]`,
//! `ut_host[256]`, `ut_exit` 2×i16, `ut_session` i32, `ut_tv` {i32 sec, i32 usec},
//! `ut_addr_v6` 4×i32, 20 reserved bytes.

use std::io;
use std::path::Path;

use crate::SysError;

/// Where glibc keeps the current logins (`_PATH_UTMP`).
pub const UTMP_PATH: &str = "/var/run/utmp";

/// `ut_type` of a normal user login.
pub const USER_PROCESS: i16 = 7;

/// Size of one glibc `struct utmp` record.
pub const UTMP_RECORD_SIZE: usize = 384;

const TYPE_OFFSET: usize = 0;
const USER_OFFSET: usize = 44;
const USER_LEN: usize = 32;
const TV_SEC_OFFSET: usize = 340;
const TV_USEC_OFFSET: usize = 344;

/// The parts of a utmp record that guest-get-users needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtmpEntry {
    /// `ut_type`, e.g. [`USER_PROCESS`].
    pub kind: i16,
    /// `ut_user` up to its first NUL (at most 32 bytes), non-UTF-8 bytes replaced.
    pub user: String,
    /// `ut_tv.tv_sec`, read as unsigned 32 bits so dates after 2038 stay positive.
    pub tv_sec: i64,
    /// `ut_tv.tv_usec`.
    pub tv_usec: i64,
}

/// Parses a utmp file image; a trailing partial record is ignored.
pub fn parse_utmp(bytes: &[u8]) -> Vec<UtmpEntry> {
    bytes
        .chunks_exact(UTMP_RECORD_SIZE)
        .map(|rec| {
            let user = &rec[USER_OFFSET..USER_OFFSET + USER_LEN];
            let user = user.split(|&b| b == 0).next().unwrap_or_default();
            UtmpEntry {
                kind: i16::from_ne_bytes([rec[TYPE_OFFSET], rec[TYPE_OFFSET + 1]]),
                user: String::from_utf8_lossy(user).into_owned(),
                tv_sec: i64::from(u32::from_ne_bytes(word_at(rec, TV_SEC_OFFSET))),
                tv_usec: i64::from(i32::from_ne_bytes(word_at(rec, TV_USEC_OFFSET))),
            }
        })
        .collect()
}

fn word_at(rec: &[u8], offset: usize) -> [u8; 4] {
    let mut word = [0u8; 4];
    word.copy_from_slice(&rec[offset..offset + 4]);
    word
}

/// Reads [`UTMP_PATH`]; a missing file means nobody is logged in.
pub fn read_utmp() -> Result<Vec<UtmpEntry>, SysError> {
    read_utmp_file(Path::new(UTMP_PATH))
}

/// Reads a utmp file; a missing file gives an empty list.
pub fn read_utmp_file(path: &Path) -> Result<Vec<UtmpEntry>, SysError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(parse_utmp(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(SysError::file("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: i16, user: &[u8], sec: u32, usec: i32) -> Vec<u8> {
        let mut rec = vec![0u8; UTMP_RECORD_SIZE];
        rec[0..2].copy_from_slice(&kind.to_ne_bytes());
        rec[4..8].copy_from_slice(&1234i32.to_ne_bytes());
        rec[8..13].copy_from_slice(b"pts/0");
        rec[USER_OFFSET..USER_OFFSET + user.len()].copy_from_slice(user);
        rec[76..85].copy_from_slice(b"10.0.0.1\0");
        rec[TV_SEC_OFFSET..TV_SEC_OFFSET + 4].copy_from_slice(&sec.to_ne_bytes());
        rec[TV_USEC_OFFSET..TV_USEC_OFFSET + 4].copy_from_slice(&usec.to_ne_bytes());
        rec
    }

    #[test]
    fn test_parse_utmp_records() {
        let mut image = record(2, b"reboot", 1_700_000_000, 0);
        image.extend(record(USER_PROCESS, b"alice", 1_700_000_100, 250_000));
        image.extend(record(8, b"", 1_700_000_200, 1));
        let entries = parse_utmp(&image);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1],
            UtmpEntry {
                kind: USER_PROCESS,
                user: "alice".into(),
                tv_sec: 1_700_000_100,
                tv_usec: 250_000,
            }
        );
        assert_eq!(entries[0].kind, 2);
        assert_eq!(entries[0].user, "reboot");
        assert_eq!(entries[2].user, "");
    }

    #[test]
    fn test_parse_utmp_empty() {
        assert!(parse_utmp(&[]).is_empty());
    }

    #[test]
    fn test_parse_utmp_truncated_record_ignored() {
        let mut image = record(USER_PROCESS, b"bob", 1, 2);
        let partial = record(USER_PROCESS, b"carol", 3, 4);
        image.extend(&partial[..200]);
        let entries = parse_utmp(&image);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].user, "bob");
        assert!(parse_utmp(&partial[..UTMP_RECORD_SIZE - 1]).is_empty());
    }

    #[test]
    fn test_parse_utmp_user_without_nul_is_capped() {
        let name = [b'x'; USER_LEN];
        let mut rec = record(USER_PROCESS, &name, 5, 6);
        rec[USER_OFFSET + USER_LEN] = b'h'; // first byte of ut_host must not leak in
        let entries = parse_utmp(&rec);
        assert_eq!(entries[0].user, "x".repeat(USER_LEN));
    }

    #[test]
    fn test_parse_utmp_invalid_utf8_and_after_2038() {
        let entries = parse_utmp(&record(USER_PROCESS, b"j\xffrg", 0x9000_0000, -1));
        assert_eq!(entries[0].user, "j\u{fffd}rg");
        assert_eq!(entries[0].tv_sec, 0x9000_0000);
        assert_eq!(entries[0].tv_usec, -1);
    }

    #[test]
    fn test_read_utmp_file_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_utmp_file(&dir.path().join("nope")).unwrap().is_empty());
        let path = dir.path().join("utmp");
        std::fs::write(&path, record(USER_PROCESS, b"dave", 7, 8)).unwrap();
        assert_eq!(read_utmp_file(&path).unwrap()[0].user, "dave");
        assert!(read_utmp_file(dir.path()).is_err());
    }

    #[test]
    fn test_read_utmp_real_file_does_not_fail() {
        // The file may be missing or empty in a container; it must not be an error then.
        let _ = read_utmp();
    }
}
