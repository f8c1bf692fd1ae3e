//! The sysfs walk behind guest-get-fsinfo and guest-get-disks: from a block device to the
//! disks it lives on and where they are attached (PCI controller, bus type by driver,
//! bus/target/unit), plus device nodes and serial numbers without libudev (the `uevent`
//! attribute, the udev database under `/run/udev/data` when present, sysfs `serial`).

use std::io;

use crate::sysroot::SysRoot;

/// A PCI address; -1 everywhere when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddr {
    /// Domain.
    pub domain: i64,
    /// Bus.
    pub bus: i64,
    /// Slot.
    pub slot: i64,
    /// Function.
    pub function: i64,
}

/// The bus types this walk recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusType {
    /// IDE (ata_piix).
    Ide,
    /// SCSI (sym53c8xx, virtio-scsi).
    Scsi,
    /// virtio-blk.
    Virtio,
    /// SATA (ahci).
    Sata,
    /// NVMe.
    Nvme,
    /// USB (ehci-pci, xhci_hcd).
    Usb,
    /// Anything else.
    Unknown,
}

/// Where one disk is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskAddr {
    /// The controller's PCI address.
    pub pci: PciAddr,
    /// The bus type.
    pub bus_type: BusType,
    /// Bus number.
    pub bus: i64,
    /// Target number.
    pub target: i64,
    /// Unit number.
    pub unit: i64,
    /// Serial number.
    pub serial: Option<String>,
    /// Device node.
    pub dev: Option<String>,
}

/// A filesystem's device: its kernel name and the disks below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsDevice {
    /// Kernel name of the top device (`sda1`, `dm-0`), or `M:m` when sysfs lacks it.
    pub name: String,
    /// The disks, in qemu-ga's order.
    pub disks: Vec<DiskAddr>,
}

/// The canonical path of the logical path `abs` under `root`, as a logical path.
fn realpath(root: &SysRoot, abs: &str) -> io::Result<String> {
    let real = std::fs::canonicalize(root.path(abs))?;
    let base = std::fs::canonicalize(root.path("/"))?;
    let rel = real.strip_prefix(&base).map_err(io::Error::other)?;
    Ok(format!("/{}", rel.to_string_lossy()))
}

fn basename(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

/// The device node of a sysfs device directory (`DEVNAME` of its `uevent`).
pub fn devnode(root: &SysRoot, syspath: &str) -> Option<String> {
    let text = root.read_to_string(&format!("{syspath}/uevent")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(|n| format!("/dev/{n}"))
}

fn dev_numbers(root: &SysRoot, syspath: &str) -> Option<String> {
    let text = root.read_to_string(&format!("{syspath}/dev")).ok()?;
    Some(text.trim().to_string())
}

/// A property of the block device at `syspath` from the udev database, when it has one
/// (`None` when the database has no entry for the device).
fn udev_property(root: &SysRoot, syspath: &str, key: &str) -> Option<Option<String>> {
    let majmin = dev_numbers(root, syspath)?;
    let db = root
        .read_to_string(&format!("/run/udev/data/b{majmin}"))
        .ok()?;
    Some(db.lines().find_map(|l| {
        l.strip_prefix("E:")?
            .strip_prefix(key)?
            .strip_prefix('=')
            .map(str::to_string)
    }))
}

/// The device-mapper name: udev's `DM_NAME`, else sysfs `dm/name`.
fn dm_name(root: &SysRoot, syspath: &str) -> Option<String> {
    if let Some(v) = udev_property(root, syspath, "DM_NAME") {
        return v;
    }
    let s = root.read_to_string(&format!("{syspath}/dm/name")).ok()?;
    Some(s.trim_end_matches('\n').to_string())
}

/// `ID_SERIAL` from the udev database, else the `serial` attribute of the disk or of its
/// controller (virtio-blk, NVMe), trimmed.
pub fn serial(root: &SysRoot, syspath: &str) -> Option<String> {
    if let Some(v) = udev_property(root, syspath, "ID_SERIAL") {
        return v;
    }
    let disk = if root.path(&format!("{syspath}/partition")).exists() {
        syspath.rsplit_once('/').map_or(syspath, |(d, _)| d)
    } else {
        syspath
    };
    ["serial", "device/serial"].iter().find_map(|attr| {
        let s = root.read_to_string(&format!("{disk}/{attr}")).ok()?;
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    })
}

/// A PCI address component `dddd:bb:ss.f` (hex).
fn parse_pci(s: &str) -> Option<[i64; 4]> {
    let (dom, rest) = s.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (slot, func) = rest.split_once('.')?;
    let h = |x: &str| i64::from_str_radix(x, 16).ok();
    Some([h(dom)?, h(bus)?, h(slot)?, h(func)?])
}

fn leading_u32(s: &str) -> Option<i64> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

/// `targetH:C:T/H:C:T:L` after `/target`: (C, T, L).
fn scsi_target(syspath: &str) -> Option<[i64; 3]> {
    let p = syspath.find("/target")?;
    let rest = &syspath[p + 7..];
    let (_, hctl) = rest.split_once('/')?;
    let hctl = hctl.split('/').next()?;
    let n: Vec<i64> = hctl.split(':').map_while(leading_u32).collect();
    (n.len() >= 4).then(|| [n[1], n[2], n[3]])
}

/// The driver bound to the device at `dir`.
fn driver(root: &SysRoot, dir: &str) -> Option<String> {
    let link = std::fs::read_link(root.path(&format!("{dir}/driver"))).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// Numbers of the `ataN` (or `hostN`) entries of `dir`, sorted.
fn hosts(root: &SysRoot, dir: &str, ata: bool) -> Vec<i64> {
    let prefix = if ata { "ata" } else { "host" };
    let mut v: Vec<i64> = std::fs::read_dir(root.path(dir))
        .map(|rd| {
            rd.filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                leading_u32(name.strip_prefix(prefix)?)
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

const KNOWN_DRIVERS: [&str; 7] = [
    "ata_piix",
    "sym53c8xx",
    "virtio-pci",
    "ahci",
    "nvme",
    "xhci_hcd",
    "ehci-pci",
];

/// Fills the address of a disk below a PCI controller; false when unsupported.
fn pci_disk(root: &SysRoot, syspath: &str, disk: &mut DiskAddr) -> bool {
    let Some(p) = syspath.find("/devices/pci") else {
        return false;
    };
    // Skip the root bus ("/devices/pci0000:00"), then walk PCI components to the first
    // device whose driver is a known disk controller.
    let after = &syspath[p + 12..];
    let Some(slash) = after.find('/') else {
        return false;
    };
    let mut pos = p + 12 + slash;
    let (pci, drv) = loop {
        let comp = syspath[pos + 1..].split('/').next().unwrap_or("");
        let Some(pci) = parse_pci(comp) else {
            return false;
        };
        pos += 1 + comp.len();
        if let Some(d) = driver(root, &syspath[..pos])
            && KNOWN_DRIVERS.contains(&d.as_str())
        {
            break (pci, d);
        }
    };
    let tgt = scsi_target(syspath);
    let (host_at, ata) = match syspath.find("/ata") {
        Some(i) => (Some((i, i + 4)), true),
        None => (syspath.find("/host").map(|i| (i, i + 5)), false),
    };
    let host = host_at.and_then(|(i, q)| Some((i, leading_u32(&syspath[q..])?)));
    let index_of_host = |(i, h): (usize, i64)| {
        hosts(root, &syspath[..i], ata)
            .iter()
            .position(|x| *x == h)
            .and_then(|x| i64::try_from(x).ok())
    };
    disk.pci = PciAddr {
        domain: pci[0],
        bus: pci[1],
        slot: pci[2],
        function: pci[3],
    };
    match drv.as_str() {
        // One ATA port (host) per IDE channel; the SCSI target is the unit.
        "ata_piix" => match (host.and_then(index_of_host), tgt) {
            (Some(i), Some(t)) => {
                disk.bus_type = BusType::Ide;
                disk.bus = i;
                disk.unit = t[1];
            }
            _ => return false,
        },
        "sym53c8xx" => {
            let Some(t) = tgt else { return false };
            disk.bus_type = BusType::Scsi;
            disk.unit = t[1];
        }
        "virtio-pci" => virtio(tgt, disk),
        // One ATA port per SATA port: the port's index is the unit.
        "ahci" => match (host.and_then(index_of_host), tgt) {
            (Some(i), Some(_)) => {
                disk.bus_type = BusType::Sata;
                disk.unit = i;
            }
            _ => return false,
        },
        "nvme" => disk.bus_type = BusType::Nvme,
        _ => disk.bus_type = BusType::Usb,
    }
    true
}

/// A virtio disk: virtio-scsi (channel, target = SCSI id, LUN) when it has a SCSI target,
/// else virtio-blk.
fn virtio(tgt: Option<[i64; 3]>, disk: &mut DiskAddr) {
    match tgt {
        Some(t) => {
            disk.bus_type = BusType::Scsi;
            disk.bus = t[0];
            disk.target = t[1];
            disk.unit = t[2];
        }
        None => disk.bus_type = BusType::Virtio,
    }
}

/// The address of the real (non-virtual) device at `syspath`, when anything is known.
pub fn real_device(root: &SysRoot, syspath: &str) -> Option<DiskAddr> {
    let mut disk = DiskAddr {
        pci: PciAddr {
            domain: -1,
            bus: -1,
            slot: -1,
            function: -1,
        },
        bus_type: BusType::Unknown,
        bus: 0,
        target: 0,
        unit: 0,
        serial: serial(root, syspath),
        dev: devnode(root, syspath),
    };
    let known = if syspath.contains("/devices/pci") {
        pci_disk(root, syspath, &mut disk)
    } else if syspath.contains("/devices/css") {
        false
    } else if syspath.contains("/virtio") {
        // virtio devices not on PCI (virtio-mmio).
        virtio(scsi_target(syspath), &mut disk);
        true
    } else {
        false
    };
    (known || disk.dev.is_some() || disk.serial.is_some()).then_some(disk)
}

/// Walks from the sysfs device at `devpath` (a logical path, possibly a link) to its disks,
/// prepending each to `out`; sets `name` from the first device met.
fn walk(
    root: &SysRoot,
    devpath: &str,
    name: &mut Option<String>,
    out: &mut Vec<DiskAddr>,
) -> Result<(), String> {
    let syspath = match realpath(root, devpath) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            name.get_or_insert_with(|| basename(devpath));
            return Ok(());
        }
        Err(e) => {
            return Err(format!(
                "realpath(\"{devpath}\"): {}",
                crate::sysroot::strerror(&e)
            ));
        }
    };
    name.get_or_insert_with(|| basename(&syspath));
    let controllers = nvme_controllers(root, &syspath);
    if !controllers.is_empty() {
        // An NVMe multipath namespace: its disks are its controllers; `dev` and `serial`
        // stay the namespace's.
        for p in controllers {
            if let Some(mut d) = real_device(root, &p) {
                d.dev = devnode(root, &syspath).or(d.dev);
                d.serial = serial(root, &syspath).or(d.serial);
                out.insert(0, d);
            }
        }
    } else if syspath.contains("/devices/virtual/block/") {
        let slaves = format!("{syspath}/slaves");
        let entries = match std::fs::read_dir(root.path(&slaves)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(format!(
                    "opendir(\"{slaves}\"): {}",
                    crate::sysroot::strerror(&e)
                ));
            }
        };
        for e in entries {
            let e =
                e.map_err(|e| format!("readdir(\"{slaves}\"): {}", crate::sysroot::strerror(&e)))?;
            if e.file_type().is_ok_and(|t| t.is_symlink()) {
                let child = format!("{slaves}/{}", e.file_name().to_string_lossy());
                walk(root, &child, name, out)?;
            }
        }
    } else if let Some(d) = real_device(root, &syspath) {
        out.insert(0, d);
    }
    Ok(())
}

/// The controllers of an NVMe namespace that the kernel's multipath support presents as a
/// virtual device (`/devices/virtual/nvme-subsystem/nvme-subsysN/nvmeNnM`, the default on
/// Debian's kernels): the `nvmeN` links of its subsystem (the namespace's, or for a
/// partition its disk's, `device`), as real sysfs paths, sorted; empty for other devices.
fn nvme_controllers(root: &SysRoot, syspath: &str) -> Vec<String> {
    if !syspath.contains("/devices/virtual/nvme-subsystem/") {
        return Vec::new();
    }
    let disk = if root.path(&format!("{syspath}/partition")).exists() {
        syspath.rsplit_once('/').map_or(syspath, |(d, _)| d)
    } else {
        syspath
    };
    let dir = format!("{disk}/device");
    let mut v: Vec<String> = entries(root, &dir)
        .into_iter()
        .filter(|(n, t)| {
            t.is_symlink()
                && n.strip_prefix("nvme")
                    .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|(n, _)| realpath(root, &format!("{dir}/{n}")).ok())
        .collect();
    v.sort();
    v
}

/// The device and disks of the filesystem on block device `major:minor`.
pub fn fs_device(root: &SysRoot, major: u32, minor: u32) -> Result<FsDevice, String> {
    let mut name = None;
    let mut disks = Vec::new();
    let devpath = format!("/sys/dev/block/{major}:{minor}");
    walk(root, &devpath, &mut name, &mut disks)?;
    Ok(FsDevice {
        name: name.unwrap_or_else(|| basename(&devpath)),
        disks,
    })
}

/// One entry of guest-get-disks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskEntry {
    /// Device node.
    pub name: String,
    /// Whether it is a partition.
    pub partition: bool,
    /// Device nodes it depends on.
    pub dependencies: Vec<String>,
    /// Where it is attached (disks that are not virtual).
    pub address: Option<DiskAddr>,
    /// The device-mapper name.
    pub alias: Option<String>,
}

fn entries(root: &SysRoot, dir: &str) -> Vec<(String, std::fs::FileType)> {
    std::fs::read_dir(root.path(dir))
        .map(|rd| {
            rd.filter_map(|e| {
                let e = e.ok()?;
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    e.file_type().ok()?,
                ))
            })
            .collect()
        })
        .unwrap_or_default()
}

/// The disks of `/sys/block` with a non-zero size, each followed by its partitions, in
/// qemu-ga's (reversed) order.
pub fn list_disks(root: &SysRoot) -> Result<Vec<DiskEntry>, String> {
    if let Err(e) = std::fs::read_dir(root.path("/sys/block")) {
        return Err(format!(
            "Can't open directory \"/sys/block\": {}",
            crate::sysroot::strerror(&e)
        ));
    }
    let mut out = Vec::new();
    for (entry, ft) in entries(root, "/sys/block") {
        if !ft.is_symlink() {
            continue;
        }
        let disk_dir = format!("/sys/block/{entry}");
        let size = root
            .read_to_string(&format!("{disk_dir}/size"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        if size.unwrap_or(0) == 0 {
            continue;
        }
        let Some(dev) = devnode(root, &disk_dir) else {
            continue;
        };
        let alias = dm_name(root, &disk_dir);
        let virt = realpath(root, &disk_dir)
            .map(|p| p.contains("/devices/virtual/"))
            .unwrap_or(true);
        let multipath =
            realpath(root, &disk_dir).is_ok_and(|p| !nvme_controllers(root, &p).is_empty());
        let address = if virt && !multipath {
            None
        } else {
            let mut name = None;
            let mut disks = Vec::new();
            walk(root, &disk_dir, &mut name, &mut disks)?;
            disks.into_iter().next()
        };
        let mut dependencies = Vec::new();
        for (slave, _) in entries(root, &format!("{disk_dir}/slaves")) {
            if let Some(d) = devnode(root, &format!("{disk_dir}/slaves/{slave}")) {
                dependencies.insert(0, d);
            }
        }
        out.insert(
            0,
            DiskEntry {
                name: dev.clone(),
                partition: false,
                dependencies,
                address,
                alias,
            },
        );
        for (part, ft) in entries(root, &disk_dir) {
            if !ft.is_dir() || !part.starts_with(entry.as_str()) {
                continue;
            }
            if let Some(pdev) = devnode(root, &format!("{disk_dir}/{part}")) {
                out.insert(
                    0,
                    DiskEntry {
                        name: pdev,
                        partition: true,
                        dependencies: vec![dev.clone()],
                        address: None,
                        alias: None,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Sizes of the filesystem mounted at `dir`: (used, total for unprivileged users, total),
/// in bytes, as qemu-ga computes them from statvfs.
pub fn fs_sizes(dir: &str) -> Option<(u64, u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let blocks = s.blocks() as u64;
    let used = blocks.wrapping_sub(s.blocks_free() as u64);
    let frsize = s.fragment_size() as u64;
    let nonroot = used.wrapping_add(s.blocks_available() as u64);
    Some((
        used.wrapping_mul(frsize),
        nonroot.wrapping_mul(frsize),
        blocks.wrapping_mul(frsize),
    ))
}

#[cfg(test)]
#[path = "blockdev_tests.rs"]
mod tests;
