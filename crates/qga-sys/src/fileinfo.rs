//! `stat` and directory listings for `__org.qga_file-stat` and `__org.qga_file-list`: type,
//! size, permission bits, owner (number and name), times, link count and link target.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The type of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (only when links are not followed).
    Symlink,
    /// A block device.
    BlockDevice,
    /// A character device.
    CharDevice,
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

impl FileKind {
    /// The wire name: `file`, `directory`, `symlink`, `block-device`, `char-device`, `fifo`,
    /// `socket`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::BlockDevice => "block-device",
            FileKind::CharDevice => "char-device",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
        }
    }

    fn of(m: &Metadata) -> FileKind {
        let t = m.file_type();
        if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else {
            FileKind::File
        }
    }
}

/// What `stat` says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The last component of the path (lossy UTF-8).
    pub name: String,
    /// The type.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits with set-user-id, set-group-id and sticky (`st_mode & 07777`).
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Owner's account name, if the password database has one.
    pub owner: Option<String>,
    /// Group name, if the group database has one.
    pub group: Option<String>,
    /// Last access, nanoseconds since the epoch.
    pub atime_ns: i64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Last status change, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Hard links.
    pub nlink: u64,
    /// Inode number.
    pub inode: u64,
    /// The target of a symbolic link (lossy UTF-8).
    pub link_target: Option<String>,
}

/// Caches of the account and group names of a listing.
#[derive(Debug, Default)]
struct Names {
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl Names {
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn info(path: &Path, name: String, m: &Metadata, names: &mut Names) -> FileInfo {
    let kind = FileKind::of(m);
    let link_target = (kind == FileKind::Symlink)
        .then(|| fs::read_link(path).ok())
        .flatten()
        .map(|t| t.to_string_lossy().into_owned());
    FileInfo {
        name,
        kind,
        size: m.size(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        owner: names.user(m.uid()),
        group: names.group(m.gid()),
        atime_ns: ns(m.atime(), m.atime_nsec()),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        nlink: m.nlink(),
        inode: m.ino(),
        link_target,
    }
}

fn last_component(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.to_string_lossy(), |n| n.to_string_lossy())
        .into_owned()
}

/// `lstat` (or `stat` when `follow`) of `path`.
pub fn stat(path: &Path, follow: bool) -> io::Result<FileInfo> {
    let m = if follow {
        fs::metadata(path)?
    } else {
        fs::symlink_metadata(path)?
    };
    Ok(info(path, last_component(path), &m, &mut Names::default()))
}

/// The entries of directory `dir` (without `.` and `..`), sorted by name, each as `lstat`
/// sees it. An entry removed while listing is left out.
pub fn list(dir: &Path) -> io::Result<Vec<FileInfo>> {
    let mut names = Names::default();
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let m = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push(info(&path, name, &m, &mut names));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn test_stat_and_list_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("data");
        fs::write(&f, b"12345").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o4751)).unwrap();
        std::os::unix::fs::symlink("data", dir.path().join("link")).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let s = stat(&f, false).unwrap();
        assert_eq!(
            (s.kind, s.size, s.mode, s.nlink),
            (FileKind::File, 5, 0o4751, 1)
        );
        assert_eq!(s.name, "data");
        let l = stat(&dir.path().join("link"), false).unwrap();
        assert_eq!(
            (l.kind, l.link_target.as_deref()),
            (FileKind::Symlink, Some("data"))
        );
        let followed = stat(&dir.path().join("link"), true).unwrap();
        assert_eq!(
            (followed.kind, followed.size, followed.link_target),
            (FileKind::File, 5, None)
        );
        let all = list(dir.path()).unwrap();
        let kinds: Vec<(&str, FileKind)> = all.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("data", FileKind::File),
                ("link", FileKind::Symlink),
                ("sub", FileKind::Directory)
            ]
        );
        assert!(all[0].mtime_ns > 1_600_000_000_000_000_000);
        assert_eq!(list(&f).unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
        assert_eq!(
            stat(&dir.path().join("missing"), false).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
