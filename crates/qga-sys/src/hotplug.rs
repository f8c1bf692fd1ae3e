//! Onlining hot-added vCPUs and memory blocks (the agent's opt-in `hotplug-online` mode):
//! the kernel's uevents over netlink say when something was added, the sysfs state says
//! what is new and offline. Only entries that were not there when watching started are
//! touched, so a CPU or block taken offline on purpose stays offline.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    self, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

use crate::SysError;
use crate::sysroot::SysRoot;

/// One kernel uevent: `ACTION`, `DEVPATH` and `SUBSYSTEM` of a netlink message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `online`, `offline`, ...
    pub action: String,
    /// e.g. `/devices/system/cpu/cpu2`.
    pub devpath: String,
    /// e.g. `cpu`, `memory`.
    pub subsystem: String,
}

/// Parses a kernel uevent message (`action@devpath\0KEY=value\0...`); `None` for anything
/// else (udev's own `libudev` messages, truncated or malformed ones).
pub fn parse_uevent(msg: &[u8]) -> Option<Uevent> {
    let mut fields = msg.split(|&b| b == 0).filter(|f| !f.is_empty());
    let header = std::str::from_utf8(fields.next()?).ok()?;
    let (_, _) = header.split_once('@')?;
    let mut ev = Uevent::default();
    for f in fields {
        let Ok(f) = std::str::from_utf8(f) else {
            continue;
        };
        match f.split_once('=') {
            Some(("ACTION", v)) => ev.action = v.to_string(),
            Some(("DEVPATH", v)) => ev.devpath = v.to_string(),
            Some(("SUBSYSTEM", v)) => ev.subsystem = v.to_string(),
            _ => {}
        }
    }
    (!ev.action.is_empty() && !ev.devpath.is_empty()).then_some(ev)
}

/// Whether `ev` may have brought a new vCPU or memory block.
pub fn is_hotplug_add(ev: &Uevent) -> bool {
    ev.action == "add" && matches!(ev.subsystem.as_str(), "cpu" | "memory")
}

/// A socket receiving the kernel's uevents.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
}

impl UeventSocket {
    /// Opens and binds a `NETLINK_KOBJECT_UEVENT` socket to the kernel's multicast group.
    pub fn open() -> Result<Self, SysError> {
        let fd = socket::socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(|e| SysError::errno("socket", e))?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1))
            .map_err(|e| SysError::errno("bind", e))?;
        Ok(Self { fd })
    }

    /// Waits for the next message; its bytes are in `buf[..n]`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        socket::recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()).map_err(io::Error::from)
    }
}

/// The vCPUs and memory blocks seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    cpus: BTreeSet<i64>,
    blocks: BTreeSet<u64>,
}

/// What one pass changed, as `cpuN` / `memoryN` names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Onlined {
    /// Entries brought online.
    pub done: Vec<String>,
    /// Entries that could not be brought online, with the reason.
    pub failed: Vec<String>,
}

impl Known {
    /// Everything present now (nothing is onlined).
    pub fn snapshot(root: &SysRoot) -> Known {
        let mut k = Known::default();
        k.take_new(root);
        k
    }

    /// Adds the entries present now; returns the new ones: (cpu ids, block indexes).
    fn take_new(&mut self, root: &SysRoot) -> (Vec<i64>, Vec<u64>) {
        let cpus = crate::cpu::list_vcpus(root)
            .map(|l| {
                l.into_iter()
                    .filter(|c| self.cpus.insert(c.id))
                    .map(|c| c.id)
                    .collect()
            })
            .unwrap_or_default();
        let blocks = crate::memory::list_blocks(root)
            .map(|l| {
                l.into_iter()
                    .filter(|b| self.blocks.insert(b.index))
                    .map(|b| b.index)
                    .collect()
            })
            .unwrap_or_default();
        (cpus, blocks)
    }

    /// Brings online the vCPUs and memory blocks that appeared since the last pass and are
    /// offline. Memory is left to the kernel when its `auto_online_blocks` policy is not
    /// `offline` (it onlines new blocks itself, in the zone it was told).
    pub fn online_new(&mut self, root: &SysRoot) -> Onlined {
        let (cpus, blocks) = self.take_new(root);
        let mut out = Onlined::default();
        for id in cpus {
            match crate::cpu::read_vcpu(root, id) {
                Ok(c) if !c.online => match crate::cpu::set_vcpu(root, id, true) {
                    Ok(()) => out.done.push(format!("cpu{id}")),
                    Err(e) => out.failed.push(format!("cpu{id}: {e}")),
                },
                Ok(_) => {}
                Err(e) => out.failed.push(format!("cpu{id}: {e}")),
            }
        }
        let kernel_onlines = root
            .read_to_string("/sys/devices/system/memory/auto_online_blocks")
            .is_ok_and(|p| p.trim() != "offline");
        for index in blocks {
            if kernel_onlines {
                continue;
            }
            match crate::memory::read_block(root, index) {
                Ok(b) if !b.online => {
                    let r = crate::memory::set_block(root, index, true);
                    if r.error_code.is_none() {
                        out.done.push(format!("memory{index}"));
                    } else {
                        out.failed.push(format!("memory{index}: {:?}", r.outcome));
                    }
                }
                Ok(_) => {}
                Err(e) => out.failed.push(format!("memory{index}: {e}")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fs;

    #[test]
    fn test_parse_uevent_kernel_messages_and_garbage() {
        let msg = b"add@/devices/system/cpu/cpu2\0ACTION=add\0DEVPATH=/devices/system/cpu/cpu2\0SUBSYSTEM=cpu\0SEQNUM=1234\0";
        let ev = parse_uevent(msg).unwrap();
        assert_eq!(
            ev,
            Uevent {
                action: "add".into(),
                devpath: "/devices/system/cpu/cpu2".into(),
                subsystem: "cpu".into()
            }
        );
        assert!(is_hotplug_add(&ev));
        let mem = b"online@/devices/system/memory/memory40\0ACTION=online\0DEVPATH=/devices/system/memory/memory40\0SUBSYSTEM=memory\0";
        assert!(!is_hotplug_add(&parse_uevent(mem).unwrap()));
        assert_eq!(parse_uevent(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse_uevent(b""), None);
        assert_eq!(parse_uevent(b"add@/x\0SUBSYSTEM=cpu\0"), None);
        assert_eq!(parse_uevent(b"\xff\xfe@\0ACTION=add\0"), None);
    }

    fn write(root: &std::path::Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn test_online_new_touches_only_new_offline_entries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, "sys/devices/system/cpu/cpu0/topology/core_id", "0\n");
        write(d, "sys/devices/system/cpu/cpu1/online", "0\n");
        write(d, "sys/devices/system/memory/block_size_bytes", "8000000\n");
        write(
            d,
            "sys/devices/system/memory/auto_online_blocks",
            "offline\n",
        );
        write(d, "sys/devices/system/memory/memory0/state", "online\n");
        write(d, "sys/devices/system/memory/memory1/state", "offline\n");
        let root = SysRoot::at(d);
        let mut known = Known::snapshot(&root);
        // Offline at start (on purpose): left alone.
        assert_eq!(known.online_new(&root), Onlined::default());
        write(d, "sys/devices/system/cpu/cpu2/online", "0\n");
        write(d, "sys/devices/system/memory/memory2/state", "offline\n");
        let r = known.online_new(&root);
        assert_eq!(r.done, ["cpu2", "memory2"]);
        assert!(r.failed.is_empty(), "{r:?}");
        assert_eq!(
            fs::read_to_string(d.join("sys/devices/system/cpu/cpu2/online")).unwrap(),
            "1\n"
        );
        assert!(
            fs::read_to_string(d.join("sys/devices/system/memory/memory2/state"))
                .unwrap()
                .starts_with("online")
        );
        assert_eq!(
            fs::read_to_string(d.join("sys/devices/system/cpu/cpu1/online")).unwrap(),
            "0\n"
        );
        // The kernel onlines memory itself: new blocks are left to it.
        write(
            d,
            "sys/devices/system/memory/auto_online_blocks",
            "online_movable\n",
        );
        write(d, "sys/devices/system/memory/memory3/state", "offline\n");
        assert_eq!(known.online_new(&root), Onlined::default());
    }
}
