//! Finding the agent sockets of libvirt's guests on this host.
//!
//! libvirt gives each running domain with an agent channel a unix socket named
//! `org.qemu.guest_agent.0` in a per-domain directory `domain-<id>-<name>` under
//! `/var/lib/libvirt/qemu/channel/target/` (system instance; the directory name's `<name>` may
//! be shortened by libvirt) or `/run/libvirt/qemu/channel/`.

use std::path::{Path, PathBuf};

/// Where libvirt puts guest agent channel sockets.
pub const LIBVIRT_CHANNEL_DIRS: &[&str] = &[
    "/var/lib/libvirt/qemu/channel/target",
    "/run/libvirt/qemu/channel",
];

/// The socket file name of the agent channel in a domain's directory.
pub const AGENT_SOCKET_NAME: &str = "org.qemu.guest_agent.0";

/// A guest found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guest {
    /// The domain's name (as libvirt wrote it in the directory name).
    pub name: String,
    /// The domain's id while it runs, when the directory name carries one.
    pub id: Option<u32>,
    /// The agent channel socket.
    pub socket: PathBuf,
}

/// Splits a libvirt channel directory name `domain-<id>-<name>` into id and name; other names
/// (older layouts) are taken whole as the domain name.
pub fn parse_domain_dir(dir: &str) -> (Option<u32>, String) {
    if let Some(rest) = dir.strip_prefix("domain-")
        && let Some((id, name)) = rest.split_once('-')
        && let Ok(id) = id.parse::<u32>()
        && !name.is_empty()
    {
        return (Some(id), name.to_string());
    }
    (None, dir.to_string())
}

/// How long a domain name libvirt keeps in directory names; longer ones are cut there.
pub const SHORT_NAME_MAX: usize = 20;

/// Whether the directory name `found` stands for the domain `name` (equal, or `name` cut to
/// libvirt's short-name length).
pub fn same_domain(found: &str, name: &str) -> bool {
    found == name || (found.chars().count() == SHORT_NAME_MAX && name.starts_with(found))
}

/// The guests whose agent sockets exist under `dirs`, sorted by name; missing or unreadable
/// directories are skipped.
pub fn discover(dirs: &[&Path]) -> Vec<Guest> {
    let mut out: Vec<Guest> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let socket = e.path().join(AGENT_SOCKET_NAME);
            if !socket.exists() {
                continue;
            }
            let (id, name) = parse_domain_dir(&e.file_name().to_string_lossy());
            // The same domain seen through two directories is listed once.
            if !out.iter().any(|g| g.name == name && g.id == id) {
                out.push(Guest { name, id, socket });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

/// The guests in libvirt's standard directories, or in the `:`-separated directories of
/// `QGA_LIBVIRT_CHANNEL_DIRS` when that is set.
pub fn discover_libvirt() -> Vec<Guest> {
    match std::env::var_os("QGA_LIBVIRT_CHANNEL_DIRS") {
        Some(v) => {
            let dirs: Vec<PathBuf> = std::env::split_paths(&v).collect();
            discover(&dirs.iter().map(PathBuf::as_path).collect::<Vec<_>>())
        }
        None => discover(
            &LIBVIRT_CHANNEL_DIRS
                .iter()
                .map(Path::new)
                .collect::<Vec<_>>(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_domain_dir() {
        assert_eq!(parse_domain_dir("domain-3-web1"), (Some(3), "web1".into()));
        assert_eq!(
            parse_domain_dir("domain-12-a-b-c"),
            (Some(12), "a-b-c".into())
        );
        assert_eq!(parse_domain_dir("domain-x-y"), (None, "domain-x-y".into()));
        assert_eq!(parse_domain_dir("domain-4-"), (None, "domain-4-".into()));
        assert_eq!(parse_domain_dir("vm7"), (None, "vm7".into()));
    }

    #[test]
    fn test_same_domain_allows_libvirt_short_names() {
        assert!(same_domain("web1", "web1"));
        assert!(!same_domain("web1", "web10"));
        assert!(same_domain(
            "qga-vmtest-1234-ours",
            "qga-vmtest-1234-ours-and-more"
        ));
        assert!(!same_domain("qga-vmtest-1234-our", "qga-vmtest-1234-ours"));
    }

    #[test]
    fn test_discover_finds_sockets_and_skips_others() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = root.path().join("b");
        for d in ["domain-2-zeta", "domain-1-alpha", "domain-5-nosock"] {
            std::fs::create_dir_all(a.join(d)).unwrap();
        }
        std::fs::create_dir_all(b.join("domain-1-alpha")).unwrap();
        std::fs::write(a.join("domain-2-zeta").join(AGENT_SOCKET_NAME), "").unwrap();
        std::fs::write(a.join("domain-1-alpha").join(AGENT_SOCKET_NAME), "").unwrap();
        std::fs::write(b.join("domain-1-alpha").join(AGENT_SOCKET_NAME), "").unwrap();
        let found = discover(&[&a, &b, Path::new("/nonexistent/dir")]);
        let names: Vec<_> = found.iter().map(|g| (g.id, g.name.as_str())).collect();
        assert_eq!(names, vec![(Some(1), "alpha"), (Some(2), "zeta")]);
        assert!(found[0].socket.starts_with(&a));
    }
}
