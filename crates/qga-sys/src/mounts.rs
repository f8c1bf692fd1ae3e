//! The mount list of the freeze, trim and fsinfo commands, with qemu-ga's rules: from
//! `/proc/self/mountinfo` (fallback `/proc/self/mounts`), pseudo filesystems (major 0)
//! skipped except btrfs, bind duplicates (same major:minor) skipped, octal escapes decoded.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crate::sysroot::SysRoot;

/// One mounted block-device filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount point.
    pub dir: String,
    /// The filesystem type.
    pub fs_type: String,
    /// Major number of the device.
    pub major: u32,
    /// Minor number of the device.
    pub minor: u32,
}

/// Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash); a backslash not
/// followed by three octal digits stays.
pub fn decode_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (u32::from(b[i + 1] - b'0') << 6)
                | (u32::from(b[i + 2] - b'0') << 3)
                | u32::from(b[i + 3] - b'0');
            out.push((v & 0xff) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_majmin(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn push_unique(list: &mut Vec<Mount>, m: Mount) {
    if !list
        .iter()
        .any(|x| x.major == m.major && x.minor == m.minor)
    {
        list.push(m);
    }
}

/// Parses mountinfo text. `block_dev` gives the device numbers of a path that is a block
/// device (used for btrfs, whose mountinfo shows an anonymous 0:N device).
pub fn parse_mountinfo(text: &str, block_dev: &dyn Fn(&str) -> Option<(u32, u32)>) -> Vec<Mount> {
    let mut list = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 5 {
            continue;
        }
        let Some((mut major, mut minor)) = parse_majmin(f[2]) else {
            continue;
        };
        let Some(sep) = f[5.min(f.len())..].iter().position(|t| *t == "-") else {
            continue;
        };
        let rest = &f[5 + sep + 1..];
        // The type and the source must both be there (the kernel prints "none" for an
        // empty source).
        let (Some(fs_type), Some(source)) = (rest.first(), rest.get(1)) else {
            continue;
        };
        let source = decode_octal(source);
        if major == 0 {
            if *fs_type != "btrfs" {
                continue;
            }
            match block_dev(&source) {
                Some((a, b)) if a != 0 => (major, minor) = (a, b),
                _ => continue,
            }
        }
        push_unique(
            &mut list,
            Mount {
                dir: decode_octal(f[4]),
                fs_type: decode_octal(fs_type),
                major,
                minor,
            },
        );
    }
    list
}

/// Parses `/proc/self/mounts` (the fallback): only sources that are absolute paths to
/// block devices count; smbfs/cifs and directory sources (bind mounts) are skipped.
pub fn parse_mounts(
    text: &str,
    block_dev: &dyn Fn(&str) -> Option<(u32, u32)>,
    is_dir: &dyn Fn(&str) -> bool,
) -> Vec<Mount> {
    let mut list = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let source = decode_octal(f[0]);
        if !source.starts_with('/') || f[2] == "smbfs" || f[2] == "cifs" || is_dir(&source) {
            continue;
        }
        let Some((major, minor)) = block_dev(&source) else {
            continue;
        };
        push_unique(
            &mut list,
            Mount {
                dir: decode_octal(f[1]),
                fs_type: decode_octal(f[2]),
                major,
                minor,
            },
        );
    }
    list
}

/// The device numbers of `path` if it is a block device.
pub fn block_device_numbers(path: &str) -> Option<(u32, u32)> {
    let md = std::fs::metadata(path).ok()?;
    if !md.file_type().is_block_device() {
        return None;
    }
    let rdev = md.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

/// The mount list of the running system (paths of sources are looked up on the host).
/// Fails with qemu-ga's text when neither file can be read.
pub fn read_mounts(root: &SysRoot) -> Result<Vec<Mount>, String> {
    if let Ok(text) = root.read_to_string("/proc/self/mountinfo") {
        return Ok(parse_mountinfo(&text, &block_device_numbers));
    }
    match root.read_to_string("/proc/self/mounts") {
        Ok(text) => Ok(parse_mounts(&text, &block_device_numbers, &|p| {
            std::path::Path::new(p).is_dir()
        })),
        Err(_) => Err("failed to open mtab file: '/proc/self/mounts'".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = include_str!("../testdata/mounts/mountinfo");

    fn dev(p: &str) -> Option<(u32, u32)> {
        match p {
            "/dev/vdb" => Some((254, 16)),
            "/dev/sda1" => Some((8, 1)),
            _ => None,
        }
    }

    #[test]
    fn test_mountinfo_rules() {
        let m = parse_mountinfo(MOUNTINFO, &dev);
        let dirs: Vec<(&str, &str, u32, u32)> = m
            .iter()
            .map(|m| (m.dir.as_str(), m.fs_type.as_str(), m.major, m.minor))
            .collect();
        assert_eq!(
            dirs,
            [
                ("/", "ext4", 254, 0),
                ("/mnt/with space", "xfs", 8, 2),
                ("/data", "btrfs", 254, 16),
                ("/opt/back\\slash", "ext4", 8, 3),
            ]
        );
    }

    #[test]
    fn test_mountinfo_malformed() {
        assert!(parse_mountinfo("", &dev).is_empty());
        assert!(parse_mountinfo("1 2 8:1 / /x rw", &dev).is_empty());
        assert!(parse_mountinfo("1 2 8:1 / /x rw shared:1 -", &dev).is_empty());
        assert!(parse_mountinfo("1 2 x:1 / /x rw - ext4 /dev/sda1 rw", &dev).is_empty());
        // btrfs whose source is not a block device is skipped.
        assert!(parse_mountinfo("1 2 0:40 / /x rw - btrfs /dev/nope rw", &dev).is_empty());
        // Truncated after the type: skipped, as qemu-ga; with a source it counts.
        assert!(parse_mountinfo("1 2 8:1 / /x rw - ext4", &dev).is_empty());
        assert_eq!(
            parse_mountinfo("1 2 8:1 / /x rw - ext4 /dev/sda1", &dev).len(),
            1
        );
    }

    #[test]
    fn test_mounts_fallback() {
        let text = "/dev/sda1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/sda1 /bind ext4 rw 0 0\n\
                    //srv/share /smb cifs rw 0 0\n/srv/dir /bound none rw,bind 0 0\n\
                    /dev/vdb /mnt\\040x btrfs rw 0 0\nshort line\n";
        let m = parse_mounts(text, &dev, &|p| p == "/srv/dir");
        let dirs: Vec<&str> = m.iter().map(|m| m.dir.as_str()).collect();
        assert_eq!(dirs, ["/", "/mnt x"]);
    }

    #[test]
    fn test_decode_octal() {
        assert_eq!(decode_octal("a\\040b\\011c\\012d\\134e"), "a b\tc\nd\\e");
        assert_eq!(decode_octal("a\\04"), "a\\04");
        assert_eq!(decode_octal("a\\09x"), "a\\09x");
        assert_eq!(decode_octal("\\"), "\\");
    }
}
