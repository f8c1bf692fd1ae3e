//! The storage boot: one guest with a disk on each bus QEMU emulates (virtio-blk,
//! virtio-scsi, NVMe with a partition table, IDE on a PIIX3 controller, SATA on q35's AHCI,
//! usb-storage on xHCI) and a device-mapper device, each at the PCI address, SCSI id/LUN,
//! IDE channel/unit or SATA port and serial number given on QEMU's command line
//! ([`BUSES`]). guest-get-fsinfo and guest-get-disks are checked against those values, the
//! reference qemu-ga's replies are compared with ours bus by bus, and the freeze paths that
//! need a configured agent (the hook, a kill while frozen, the watchdog) run here.
//!
//! The suite boots Debian's generic kernel when `scripts/vmtest` could fetch it (AHCI and
//! usb-storage are modules there); Debian's cloud kernel has no driver for either. A bus whose
//! controller has no driver in the guest kernel cannot be tested: the check says so with the
//! kernel's configuration line (a fact of the kernel, not of the agent) and is reported as
//! skipped.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::checks::{SHELL_TIMEOUT, call, ok, sh};
use crate::env::TestEnv;
use crate::suite::{CheckResult, Ctx, Outcome};
use crate::{Error, image, run_capture};

/// One disk of the storage boot and what QEMU was told about it.
#[derive(Debug, Clone, Copy)]
pub struct Bus {
    /// The name in reports (`virtio-scsi`).
    pub name: &'static str,
    /// The QEMU device of its controller (for messages).
    pub controller: &'static str,
    /// The guest kernel option that drives the controller.
    pub kconfig: &'static str,
    /// guest-get-fsinfo's `bus-type`.
    pub bus_type: &'static str,
    /// The controller's PCI address (domain, bus, slot, function).
    pub pci: [i64; 4],
    /// `bus`, `target`, `unit`.
    pub btu: [i64; 3],
    /// What the disk's sysfs path contains after the controller (finds it among disks of the
    /// same controller).
    pub locate: &'static str,
    /// The `serial=` given to QEMU.
    pub serial: &'static str,
    /// Whether the guest's sysfs shows that serial (virtio-blk, NVMe); else only udev knows.
    pub serial_in_sysfs: bool,
    /// Where its filesystem is mounted.
    pub mount: &'static str,
    /// The filesystem is on partition 1 (an MBR written by the harness).
    pub partition: bool,
    /// A device-mapper linear device of this name over the disk carries the filesystem.
    pub dm: Option<&'static str>,
    /// The disk image's file name.
    pub image: &'static str,
}

const fn bus(name: &'static str, controller: &'static str, kconfig: &'static str) -> Bus {
    Bus {
        name,
        controller,
        kconfig,
        bus_type: "",
        pci: [0, 0, 0, 0],
        btu: [0, 0, 0],
        locate: "/block/",
        serial: "",
        serial_in_sysfs: false,
        mount: "",
        partition: false,
        dm: None,
        image: "",
    }
}

/// The disks of the storage boot.
pub const BUSES: &[Bus] = &[
    Bus {
        bus_type: "virtio",
        pci: [0, 0, 0x10, 0],
        serial: image::DATA_DISK_SERIAL,
        serial_in_sysfs: true,
        mount: crate::storage_checks::DATA_MOUNT,
        ..bus("virtio-blk", "virtio-blk-pci", "VIRTIO_BLK")
    },
    Bus {
        bus_type: "scsi",
        pci: [0, 0, 0x11, 0],
        btu: [0, 3, 2],
        locate: ":0:3:2/block/",
        serial: "QGA-SCSI-3-2",
        mount: "/mnt/scsi",
        image: "scsi32.img",
        ..bus("virtio-scsi", "virtio-scsi-pci", "SCSI_VIRTIO")
    },
    Bus {
        bus_type: "nvme",
        pci: [0, 0, 0x12, 0],
        // the path device under the controller (multipath kernels) or the namespace
        locate: "/nvme/",
        serial: "QGA-NVME-1",
        serial_in_sysfs: true,
        mount: "/mnt/nvme",
        partition: true,
        image: "nvme1.img",
        ..bus("nvme", "nvme", "BLK_DEV_NVME")
    },
    Bus {
        bus_type: "ide",
        pci: [0, 0, 0x13, 0],
        btu: [1, 0, 1],
        serial: "QGA-IDE-1-1",
        mount: "/mnt/ide",
        image: "ide11.img",
        ..bus("ide", "piix3-ide", "ATA_PIIX")
    },
    Bus {
        bus_type: "sata",
        pci: [0, 0, 0x1f, 2],
        btu: [0, 0, 2],
        serial: "QGA-SATA-2",
        mount: "/mnt/sata",
        image: "sata2.img",
        ..bus("sata", "ich9-ahci (q35's)", "SATA_AHCI")
    },
    Bus {
        bus_type: "usb",
        pci: [0, 0, 0x14, 0],
        serial: "QGA-USB-1",
        mount: "/mnt/usb",
        image: "usb1.img",
        ..bus("usb-storage", "qemu-xhci", "USB_SUPPORT")
    },
    Bus {
        bus_type: "scsi",
        pci: [0, 0, 0x11, 0],
        btu: [0, 4, 0],
        locate: ":0:4:0/block/",
        serial: "QGA-SCSI-4-0",
        mount: "/mnt/dm",
        dm: Some("qgadm"),
        image: "scsi40.img",
        ..bus("dm-linear", "virtio-scsi-pci", "BLK_DEV_DM")
    },
];

/// The `-drive`/`-device` arguments for the extra disks (the data disk is `vm.rs`'s, at
/// 00:10.0 in this boot); makes their images in `dir`.
pub fn qemu_args(dir: &Path) -> Result<Vec<String>, Error> {
    for b in BUSES.iter().filter(|b| !b.image.is_empty()) {
        make_disk(&dir.join(b.image), b.partition)?;
    }
    let img = |b: &str| dir.join(b).to_string_lossy().into_owned();
    let drive = |id: &str, file: &str| {
        [
            "-drive".to_string(),
            format!("file={},if=none,id={id},format=raw", img(file)),
        ]
    };
    let dev = |s: String| ["-device".to_string(), s];
    let mut a: Vec<String> = Vec::new();
    a.extend(dev("virtio-scsi-pci,id=vscsi0,addr=0x11".into()));
    a.extend(drive("scsi32", "scsi32.img"));
    a.extend(dev(
        "scsi-hd,bus=vscsi0.0,channel=0,scsi-id=3,lun=2,drive=scsi32,serial=QGA-SCSI-3-2".into(),
    ));
    a.extend(drive("scsi40", "scsi40.img"));
    a.extend(dev(
        "scsi-hd,bus=vscsi0.0,channel=0,scsi-id=4,lun=0,drive=scsi40,serial=QGA-SCSI-4-0".into(),
    ));
    a.extend(drive("nvme1", "nvme1.img"));
    a.extend(dev("nvme,addr=0x12,drive=nvme1,serial=QGA-NVME-1".into()));
    a.extend(dev("piix3-ide,id=pata0,addr=0x13".into()));
    a.extend(drive("ide11", "ide11.img"));
    a.extend(dev(
        "ide-hd,bus=pata0.1,unit=1,drive=ide11,serial=QGA-IDE-1-1".into(),
    ));
    // q35's own AHCI controller (00:1f.2) is "ide", one bus per port.
    a.extend(drive("sata2", "sata2.img"));
    a.extend(dev("ide-hd,bus=ide.2,drive=sata2,serial=QGA-SATA-2".into()));
    a.extend(dev("qemu-xhci,id=xhci0,addr=0x14".into()));
    a.extend(drive("usb1", "usb1.img"));
    a.extend(dev(
        "usb-storage,bus=xhci0.0,drive=usb1,serial=QGA-USB-1".into()
    ));
    Ok(a)
}

/// A 16 MiB sparse disk with ext4 on the whole disk, or on partition 1 of an MBR (from
/// sector 2048 to the end).
fn make_disk(path: &Path, partition: bool) -> Result<(), Error> {
    const SIZE: u64 = 16 << 20;
    const START: u32 = 2048;
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, &e))?;
    f.set_len(SIZE).map_err(|e| Error::io(path, &e))?;
    drop(f);
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "qgabus"]);
    if partition {
        let sectors = u32::try_from(SIZE / 512).unwrap_or(0) - START;
        mkfs.args([
            "-E",
            &format!("offset={},nodiscard", u64::from(START) * 512),
        ]);
        mkfs.arg(path).arg(format!("{}k", sectors / 2));
        run_capture(&mut mkfs)?;
        let mut mbr = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, &e))?;
        std::io::Write::write_all(&mut mbr, &mbr_bytes(START, sectors))
            .map_err(|e| Error::io(path, &e))?;
    } else {
        mkfs.args(["-E", "nodiscard"]).arg(path);
        run_capture(&mut mkfs)?;
    }
    Ok(())
}

/// A master boot record with one Linux partition (type 0x83) of `sectors` from `start`.
fn mbr_bytes(start: u32, sectors: u32) -> [u8; 512] {
    let mut b = [0u8; 512];
    let e = &mut b[446..462];
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS: use the LBA fields
    e[4] = 0x83;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&start.to_le_bytes());
    e[12..16].copy_from_slice(&sectors.to_le_bytes());
    b[510] = 0x55;
    b[511] = 0xaa;
    b
}

/// The line of the guest kernel's configuration (`boot/config-*` of the package) for
/// `CONFIG_<option>`.
pub fn kconfig_line(env: &TestEnv, option: &str) -> String {
    let boot = env.kernel_dir.join("boot");
    let text = std::fs::read_dir(&boot)
        .ok()
        .and_then(|rd| {
            rd.filter_map(Result::ok)
                .find(|e| e.file_name().to_string_lossy().starts_with("config-"))
        })
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .unwrap_or_default();
    let set = format!("CONFIG_{option}=");
    let unset = format!("# CONFIG_{option} is not set");
    text.lines()
        .find(|l| l.starts_with(&set) || *l == unset)
        .map_or_else(|| format!("CONFIG_{option} absent"), str::to_string)
}

// --- the guest's view ----------------------------------------------------------------------

/// Where each bus's disk is in this boot: its kernel name, or why it is not there.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Per [`BUSES`] entry: `Ok(kernel name)` or `Err(reason)`.
    pub disks: Vec<Result<String, String>>,
    /// Per entry: whether the reason is the guest kernel lacking the driver (a skip).
    pub no_driver: Vec<bool>,
}

impl Found {
    fn disk(&self, i: usize) -> Option<&str> {
        self.disks.get(i).and_then(|d| d.as_deref().ok())
    }
}

fn pci_name(p: [i64; 4]) -> String {
    format!("{:04x}:{:02x}:{:02x}.{:x}", p[0], p[1], p[2], p[3])
}

/// The block device of `b` among `(name, sysfs path)` pairs of `/sys/block`. An NVMe
/// namespace under the kernel's multipath support is a virtual device: it is found through
/// `(namespace, controller path)` pairs (its subsystem's `nvmeN` links), and the hidden
/// per-controller path device (`nvme0c0n1`) is not the disk.
fn locate<'a>(
    b: &Bus,
    block: &'a [(String, String)],
    heads: &'a [(String, String)],
) -> Option<&'a str> {
    let pci = format!("/{}/", pci_name(b.pci));
    if let Some((h, _)) = heads.iter().find(|(_, c)| c.contains(&pci)) {
        return Some(h.as_str());
    }
    block
        .iter()
        .find(|(name, path)| {
            !is_nvme_path(name)
                && path
                    .find(&pci)
                    .is_some_and(|i| path[i..].contains(b.locate))
        })
        .map(|(n, _)| n.as_str())
}

/// `nvmeXcYnZ`: the hidden per-controller path of a multipath namespace.
fn is_nvme_path(name: &str) -> bool {
    name.strip_prefix("nvme")
        .and_then(|r| r.split_once('c'))
        .is_some_and(|(x, rest)| {
            !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()) && rest.contains('n')
        })
}

/// The filesystem's device: the dm device (`dm-N`) or partition 1 or the disk itself.
fn fs_dev(b: &Bus, disk: &str, dm_dev: Option<&str>) -> String {
    if b.dm.is_some() {
        return dm_dev.unwrap_or("dm-0").to_string();
    }
    if b.partition {
        let sep = if disk.ends_with(|c: char| c.is_ascii_digit()) {
            "p"
        } else {
            ""
        };
        format!("{disk}{sep}1")
    } else {
        disk.to_string()
    }
}

/// Waits for the disks, mounts their filesystems, makes the dm device. Returns what was
/// found and a one-line account.
pub fn setup(ctx: &mut Ctx<'_>, env: &TestEnv) -> (Found, Result<String, String>) {
    let mut found = Found::default();
    let r = setup_inner(ctx, env, &mut found);
    (found, r)
}

fn setup_inner(ctx: &mut Ctx<'_>, env: &TestEnv, found: &mut Found) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (block, drivers, heads) = loop {
        let out = sh(
            ctx,
            "for b in /sys/block/*; do echo \"${b##*/} $(readlink -f $b)\"; done; true",
        )?;
        let block: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let pcis: Vec<String> = BUSES.iter().map(|b| pci_name(b.pci)).collect();
        let out = sh(
            ctx,
            &format!(
                "for a in {}; do echo \"$a $(readlink /sys/bus/pci/devices/$a/driver)\"; done",
                pcis.join(" ")
            ),
        )?;
        let drivers: Vec<(String, String)> = out
            .lines()
            .map(|l| {
                let (a, d) = l.split_once(' ').unwrap_or((l, ""));
                (
                    a.to_string(),
                    d.rsplit('/').next().unwrap_or("").to_string(),
                )
            })
            .collect();
        // NVMe multipath: `/sys/block/nvme0n1/device/nvme0` -> the controller.
        let out = sh(
            ctx,
            "for m in /sys/block/*/device/nvme[0-9]*; do [ -L \"$m\" ] && echo \"${m#/sys/block/} $(readlink -f $m)\"; done; true",
        )?;
        let heads: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| {
                let (m, ctrl) = l.trim().split_once(' ')?;
                let head = m.split('/').next()?;
                Some((head.to_string(), ctrl.to_string()))
            })
            .collect();
        let missing = BUSES.iter().any(|b| {
            let driven = drivers
                .iter()
                .any(|(a, d)| *a == pci_name(b.pci) && !d.is_empty());
            driven && locate(b, &block, &heads).is_none()
        });
        if !missing || Instant::now() > deadline {
            break (block, drivers, heads);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let has_dmsetup = sh(ctx, "command -v dmsetup").is_ok();
    for b in BUSES {
        let pci = pci_name(b.pci);
        let driver = drivers
            .iter()
            .find(|(a, _)| *a == pci)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        let disk = match locate(b, &block, &heads) {
            Some(d) => Ok(d.to_string()),
            None if driver.is_empty() => Err(format!(
                "the guest kernel has no driver for the {} controller at {pci} (guest kernel's configuration: `{}`), so the disk (serial={}) is invisible",
                b.controller,
                kconfig_line(env, b.kconfig),
                b.serial
            )),
            None => Err(format!(
                "no disk below {pci} (driver {driver}) matching {:?} in the guest's /sys/block: {block:?}",
                b.locate
            )),
        };
        found.no_driver.push(driver.is_empty());
        let Ok(d) = &disk else {
            found.disks.push(disk);
            continue;
        };
        let mut dev = fs_dev(b, d, None);
        if let Some(name) = b.dm {
            if !has_dmsetup {
                found.no_driver.pop();
                found.no_driver.push(true);
                found.disks.push(Err(
                    "the image has no dmsetup (the host has none to copy in)".into(),
                ));
                continue;
            }
            let made = sh(
                ctx,
                &format!(
                    "echo \"0 $(cat /sys/block/{d}/size) linear /dev/{d} 0\" | DM_DISABLE_UDEV=1 dmsetup create {name}"
                ),
            )
            // `/sys/block/dm-N/dm/name`
            .and_then(|_| sh(ctx, &format!("grep -l '^{name}$' /sys/block/dm-*/dm/name")));
            let real = match made {
                Ok(r) => r,
                Err(e) => {
                    errors.push(format!("{}: {e}", b.name));
                    found.disks.push(Err(e));
                    continue;
                }
            };
            let node = real
                .lines()
                .next()
                .and_then(|l| l.split('/').nth(3))
                .unwrap_or("dm-0")
                .to_string();
            dev = fs_dev(b, d, Some(&node));
        }
        // The data disk is already mounted by rcS.
        if b.mount != crate::storage_checks::DATA_MOUNT
            && let Err(e) = sh(
                ctx,
                &format!("mkdir -p {m} && mount -t ext4 /dev/{dev} {m}", m = b.mount),
            )
        {
            errors.push(format!("{}: {e}", b.name));
            found.disks.push(Err(e));
            continue;
        }
        lines.push(format!("{} {d} ({dev} on {})", b.name, b.mount));
        found.disks.push(disk);
    }
    if errors.is_empty() {
        Ok(lines.join(", "))
    } else {
        Err(format!(
            "{}; set up: {}",
            errors.join("; "),
            lines.join(", ")
        ))
    }
}

// --- address checks ------------------------------------------------------------------------

/// The address guest-get-fsinfo and guest-get-disks must report for `b`'s disk, with `dev`
/// its device node.
fn expected_address(b: &Bus, dev: &str) -> Json {
    let mut a = json!({
        "pci-controller": {"domain": b.pci[0], "bus": b.pci[1], "slot": b.pci[2], "function": b.pci[3]},
        "bus-type": b.bus_type,
        "bus": b.btu[0],
        "target": b.btu[1],
        "unit": b.btu[2],
        "dev": format!("/dev/{dev}"),
    });
    if b.serial_in_sysfs {
        a["serial"] = json!(b.serial);
    }
    a
}

fn diff_members(got: &Json, want: &Json) -> Vec<String> {
    let mut keys: Vec<&String> = got
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .chain(want.as_object().into_iter().flat_map(|o| o.keys()))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| got.get(k.as_str()) != want.get(k.as_str()))
        .map(|k| {
            let show = |v: Option<&Json>| v.map_or("absent".to_string(), Json::to_string);
            format!(
                "{k}: {}, want {}",
                show(got.get(k.as_str())),
                show(want.get(k.as_str()))
            )
        })
        .collect()
}

/// The fsinfo entry of a mount point.
fn fsinfo_entry<'a>(fsinfo: &'a Json, mount: &str) -> Option<&'a Json> {
    fsinfo
        .as_array()?
        .iter()
        .find(|f| f.get("mountpoint").and_then(Json::as_str) == Some(mount))
}

/// The get-disks entry of a device node.
fn disks_entry<'a>(disks: &'a Json, node: &str) -> Option<&'a Json> {
    disks
        .as_array()?
        .iter()
        .find(|d| d.get("name").and_then(Json::as_str) == Some(node))
}

/// guest-get-fsinfo for `b`: name, type, and one disk at the address QEMU was given.
fn check_fsinfo(b: &Bus, disk: &str, fsinfo: &Json) -> Result<String, String> {
    let e = fsinfo_entry(fsinfo, b.mount).ok_or_else(|| format!("no {} in {fsinfo}", b.mount))?;
    let fs = fs_dev(b, disk, e.get("name").and_then(Json::as_str));
    let mut wrong = Vec::new();
    if e.get("name") != Some(&json!(fs)) {
        wrong.push(format!("name {:?}, want {fs}", e.get("name")));
    }
    if e.get("type") != Some(&json!("ext4")) {
        wrong.push(format!("type {:?}", e.get("type")));
    }
    // The dm device's disk is the disk below it; a partition's is the partition's node.
    let node = if b.dm.is_some() { disk } else { fs.as_str() };
    let want = expected_address(b, node);
    match e.get("disk").and_then(Json::as_array).map(Vec::as_slice) {
        Some([a]) => wrong.extend(diff_members(a, &want)),
        _ => wrong.push(format!("disk {:?}, want one entry", e.get("disk"))),
    }
    if wrong.is_empty() {
        Ok(format!("{} {fs}: {want}", b.mount))
    } else {
        Err(format!("{}: {e}", wrong.join("; ")))
    }
}

/// guest-get-disks for `b`: the disk at the address QEMU was given; its partition; the dm
/// device with its alias and dependency.
fn check_disks(b: &Bus, disk: &str, disks: &Json, fsinfo: &Json) -> Result<String, String> {
    let node = format!("/dev/{disk}");
    let e = disks_entry(disks, &node).ok_or_else(|| format!("no {node} in {disks}"))?;
    let mut wrong = Vec::new();
    if e.get("partition") != Some(&json!(false)) {
        wrong.push(format!("partition {:?}", e.get("partition")));
    }
    let want = expected_address(b, disk);
    match e.get("address") {
        Some(a) => wrong.extend(diff_members(a, &want)),
        None => wrong.push("no address".into()),
    }
    let mut seen = vec![format!("{node} {want}")];
    if b.partition {
        let p = format!("/dev/{}", fs_dev(b, disk, None));
        match disks_entry(disks, &p) {
            Some(pe)
                if pe.get("partition") == Some(&json!(true))
                    && pe.get("dependencies") == Some(&json!([node])) =>
            {
                seen.push(format!("{p} partition of {node}"));
            }
            other => wrong.push(format!(
                "{p}: {other:?}, want a partition depending on {node}"
            )),
        }
    }
    if let Some(alias) = b.dm {
        let dm = fsinfo_entry(fsinfo, b.mount)
            .and_then(|f| f.get("name"))
            .and_then(Json::as_str)
            .unwrap_or("dm-0");
        let p = format!("/dev/{dm}");
        match disks_entry(disks, &p) {
            Some(de)
                if de.get("alias") == Some(&json!(alias))
                    && de.get("dependencies") == Some(&json!([node]))
                    && de.get("partition") == Some(&json!(false)) =>
            {
                seen.push(format!("{p} alias {alias} on {node}"));
            }
            other => wrong.push(format!(
                "{p}: {other:?}, want alias {alias}, dependencies [{node}]"
            )),
        }
    }
    if wrong.is_empty() {
        Ok(seen.join("; "))
    } else {
        Err(format!("{}: {e}", wrong.join("; ")))
    }
}

/// The replies of one boot, for the comparison with the other agent.
#[derive(Debug, Clone, Default)]
pub struct Replies {
    /// guest-get-fsinfo.
    pub fsinfo: Json,
    /// guest-get-disks.
    pub disks: Json,
    /// Where the disks were.
    pub found: Found,
}

/// The per-bus checks of guest-get-fsinfo and guest-get-disks (ours), and the replies.
pub fn bus_checks(ctx: &mut Ctx<'_>, found: &Found, check: bool) -> (Vec<CheckResult>, Replies) {
    let fsinfo = ok(ctx, &json!({"execute": "guest-get-fsinfo"})).unwrap_or_else(|e| json!(e));
    let disks = ok(ctx, &json!({"execute": "guest-get-disks"})).unwrap_or_else(|e| json!(e));
    let mut out = Vec::new();
    if check {
        for (i, b) in BUSES.iter().enumerate() {
            for (what, run) in [("fsinfo", true), ("disks", false)] {
                let (outcome, detail) = match found.disks.get(i) {
                    Some(Ok(d)) => {
                        let r = if run {
                            check_fsinfo(b, d, &fsinfo)
                        } else {
                            check_disks(b, d, &disks, &fsinfo)
                        };
                        match r {
                            Ok(s) => (Outcome::Pass, s),
                            Err(s) => (Outcome::Fail, s),
                        }
                    }
                    Some(Err(why)) if found.no_driver.get(i) == Some(&true) => {
                        (Outcome::Skip, why.clone())
                    }
                    Some(Err(why)) => (Outcome::Fail, why.clone()),
                    None => (Outcome::Fail, "setup did not run".into()),
                };
                out.push(CheckResult {
                    transport: "storage".into(),
                    name: format!("{}.{what}", b.name),
                    outcome,
                    detail,
                });
            }
        }
    }
    (
        out,
        Replies {
            fsinfo,
            disks,
            found: found.clone(),
        },
    )
}

// --- comparison with qemu-ga ---------------------------------------------------------------

/// A difference in one address member that docs/compat.md explains.
struct Explained {
    member: &'static str,
    /// Applies to this bus type (ours) only (`None`: all).
    bus_type: Option<&'static str>,
    /// Whether the reference's value (its whole address) is the one explained.
    reference: fn(Option<&Json>, &Json) -> bool,
    compat: &'static str,
}

/// The compat sentence on NVMe multipath namespaces.
const NVME_MULTIPATH: &str = "NVMe namespaces behind the kernel's multipath support";

const USB_72: &str = "usb-storage disks as qemu-ga 10.x";
const EXPLAINED: &[Explained] = &[
    Explained {
        member: "bus-type",
        bus_type: Some("usb"),
        reference: |v, _| v == Some(&json!("unknown")),
        compat: USB_72,
    },
    Explained {
        member: "pci-controller",
        bus_type: Some("usb"),
        reference: |_, a| a.get("bus-type") == Some(&json!("unknown")),
        compat: USB_72,
    },
    Explained {
        member: "serial",
        bus_type: None,
        reference: |v, _| v.is_none(),
        compat: "qemu-ga without udev data reports none",
    },
    Explained {
        member: "target",
        bus_type: Some("scsi"),
        reference: |v, _| v == Some(&json!(0)),
        compat: "virtio-scsi disks report their SCSI target",
    },
    Explained {
        member: "bus-type",
        bus_type: Some("nvme"),
        reference: |v, _| v == Some(&json!("unknown")),
        compat: NVME_MULTIPATH,
    },
    Explained {
        member: "pci-controller",
        bus_type: Some("nvme"),
        reference: |_, a| a.get("bus-type") == Some(&json!("unknown")),
        compat: NVME_MULTIPATH,
    },
];

/// Replaces this boot's device names in `v` by the bus's name, so two boots (whose kernels
/// may name the SCSI disks in another order) compare.
fn normalise(v: &Json, b: &Bus, disk: &str, fs: &str) -> Json {
    let s = v
        .to_string()
        .replace(
            &format!("\"/dev/{fs}\""),
            &format!("\"/dev/<{}-fs>\"", b.name),
        )
        .replace(
            &format!("\"/dev/{disk}\""),
            &format!("\"/dev/<{}>\"", b.name),
        )
        .replace(&format!("\"{fs}\""), &format!("\"<{}-fs>\"", b.name));
    serde_json::from_str(&s).unwrap_or_else(|_| v.clone())
}

/// The differences between two addresses, each with its explanation (or `None`).
fn address_diffs(ours: &Json, reference: &Json) -> Vec<(String, Option<&'static str>)> {
    let bus_type = ours.get("bus-type").and_then(Json::as_str);
    let mut keys: Vec<&String> = ours
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .chain(reference.as_object().into_iter().flat_map(|o| o.keys()))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| ours.get(k.as_str()) != reference.get(k.as_str()))
        .map(|k| {
            let (o, r) = (ours.get(k.as_str()), reference.get(k.as_str()));
            let show = |v: Option<&Json>| v.map_or("absent".to_string(), Json::to_string);
            let why = EXPLAINED
                .iter()
                .find(|e| {
                    e.member == k.as_str()
                        && e.bus_type.is_none_or(|t| Some(t) == bus_type)
                        && (e.reference)(r, reference)
                })
                .map(|e| e.compat);
            (format!("{k} ours {} ref {}", show(o), show(r)), why)
        })
        .collect()
}

/// Compares two entries (fsinfo or get-disks) member by member; addresses field by field.
fn entry_diffs(ours: &Json, reference: &Json) -> Vec<(String, Option<&'static str>)> {
    let mut out = Vec::new();
    let o = ours.as_object().cloned().unwrap_or_default();
    let r = reference.as_object().cloned().unwrap_or_default();
    let mut keys: Vec<&String> = o.keys().chain(r.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        // Sizes change with what the checks wrote; the main suite checks them against statfs.
        if matches!(k.as_str(), "used-bytes" | "total-bytes") {
            continue;
        }
        let (a, b) = (o.get(k), r.get(k));
        if a == b {
            continue;
        }
        match (k.as_str(), a, b) {
            ("disk", Some(Json::Array(x)), Some(Json::Array(y))) if x.len() == y.len() => {
                for (p, q) in x.iter().zip(y) {
                    out.extend(address_diffs(p, q));
                }
            }
            ("address", Some(p), Some(q)) => out.extend(address_diffs(p, q)),
            // NVMe SMART needs the disk known as NVMe.
            ("smart", Some(_), None)
                if r.get("address").and_then(|a| a.get("bus-type")) == Some(&json!("unknown")) =>
            {
                out.push(("smart absent in ref".into(), Some(NVME_MULTIPATH)));
            }
            ("total-bytes-privileged", Some(_), None) => out.push((
                "total-bytes-privileged absent in ref".into(),
                Some("qemu-ga 7.2 predates total-bytes-privileged (8.2)"),
            )),
            _ => out.push((format!("{k} ours {a:?} ref {b:?}"), None)),
        }
    }
    out
}

/// The per-bus comparison rows (transport `vs-qemu-ga`) and a table for the report.
pub fn compare(
    ours: &Replies,
    reference: &Replies,
    compat_doc: &str,
) -> (Vec<CheckResult>, String) {
    let mut rows = Vec::new();
    let mut table = String::new();
    let _ = writeln!(table, "{:<12} {:<7} {:<10} how", "bus", "reply", "verdict");
    for (i, b) in BUSES.iter().enumerate() {
        for what in ["fsinfo", "disks"] {
            let name = format!("{}.{what}", b.name);
            let (od, rd) = (ours.found.disk(i), reference.found.disk(i));
            let (outcome, detail) = match (od, rd) {
                (Some(od), Some(rd)) => {
                    let pick = |r: &Replies, d: &str| -> (Json, String) {
                        let fsname = fsinfo_entry(&r.fsinfo, b.mount)
                            .and_then(|f| f.get("name"))
                            .and_then(Json::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| fs_dev(b, d, None));
                        let e = if what == "fsinfo" {
                            fsinfo_entry(&r.fsinfo, b.mount).cloned()
                        } else {
                            disks_entry(&r.disks, &format!("/dev/{d}")).cloned()
                        };
                        (normalise(&e.unwrap_or(Json::Null), b, d, &fsname), fsname)
                    };
                    let (o, _) = pick(ours, od);
                    let (r, _) = pick(reference, rd);
                    if o.is_null() || r.is_null() {
                        (Outcome::Fail, format!("entry missing: ours {o}, ref {r}"))
                    } else {
                        let diffs = entry_diffs(&o, &r);
                        let unexplained: Vec<&String> = diffs
                            .iter()
                            .filter(|(_, why)| {
                                why.is_none_or(|w| {
                                    !compat_doc.contains(w) && !w.starts_with("qemu-ga 7.2")
                                })
                            })
                            .map(|(d, _)| d)
                            .collect();
                        if diffs.is_empty() {
                            (Outcome::Pass, format!("matched: {o}"))
                        } else if unexplained.is_empty() {
                            let how: Vec<String> = diffs
                                .iter()
                                .map(|(d, why)| format!("{d} ({})", why.unwrap_or("")))
                                .collect();
                            (
                                Outcome::Pass,
                                format!("differs as documented: {}", how.join("; ")),
                            )
                        } else {
                            (
                                Outcome::Fail,
                                format!(
                                    "UNEXPLAINED: {}; ours {o}; ref {r}",
                                    unexplained
                                        .iter()
                                        .map(|s| s.as_str())
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                ),
                            )
                        }
                    }
                }
                _ => {
                    let why = ours.found.disks.get(i).and_then(|d| d.as_ref().err());
                    let skip = ours.found.no_driver.get(i) == Some(&true);
                    (
                        if skip { Outcome::Skip } else { Outcome::Fail },
                        why.cloned()
                            .unwrap_or_else(|| "the reference boot did not find the disk".into()),
                    )
                }
            };
            let verdict = match (outcome, detail.starts_with("matched")) {
                (Outcome::Pass, true) => "matched",
                (Outcome::Pass, false) => "differs",
                (Outcome::Skip, _) => "untested",
                (Outcome::Fail, _) => "FAIL",
            };
            let how = detail.split(": ").skip(1).collect::<Vec<_>>().join(": ");
            let _ = writeln!(
                table,
                "{:<12} {:<7} {:<10} {}",
                b.name,
                what,
                verdict,
                if verdict == "matched" {
                    ""
                } else {
                    how.as_str()
                }
            );
            rows.push(CheckResult {
                transport: "vs-qemu-ga".into(),
                name,
                outcome,
                detail,
            });
        }
    }
    (rows, table)
}

// --- freeze with a configured agent --------------------------------------------------------

/// The hook's log in the guest: one `<time> <argument>` line per call.
const HOOK_LOG: &str = "/run/fsfreeze-hook.log";
/// While this file exists the hook fails (prints a line, exits 3).
pub const HOOK_FAIL_FLAG: &str = "/run/fsfreeze-hook.fail";
/// The agent's frozen-state marker (statedir /var/run).
const FROZEN_MARKER: &str = "/run/qga.state.isfrozen";
/// The configuration file both agents read.
const CONFIG: &str = "/etc/qemu/qemu-ga.conf";
/// The watchdog's time in this test.
const WATCHDOG_SECS: u64 = 3;

fn hook_calls(ctx: &mut Ctx<'_>) -> Result<Vec<String>, String> {
    let out = sh(ctx, &format!("cat {HOOK_LOG} 2>/dev/null; true"))?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect())
}

fn count(ctx: &mut Ctx<'_>, execute: &str) -> Result<i64, String> {
    let n = ok(ctx, &json!({"execute": execute}))?;
    n.as_i64().ok_or_else(|| format!("{execute} returned {n}"))
}

fn status(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let s = ok(ctx, &json!({"execute": "guest-fsfreeze-status"}))?;
    Ok(s.as_str().unwrap_or("?").to_string())
}

/// Thaws whatever a failed check left frozen (agent, then the guest's fsfreeze).
fn cleanup(ctx: &mut Ctx<'_>) {
    ctx.drop_client();
    let _ = sh(ctx, &format!("rm -f {HOOK_FAIL_FLAG}"));
    if count(ctx, "guest-fsfreeze-thaw").is_err() {
        ctx.drop_client();
        for b in BUSES {
            let _ = ctx.vm.shell(
                &format!("fsfreeze --unfreeze {} 2>/dev/null", b.mount),
                SHELL_TIMEOUT,
            );
        }
    }
}

/// The hook (enabled by the storage boot's configuration) runs with `freeze` before the
/// freeze and `thaw` after the thaw.
pub fn check_hook_calls(ctx: &mut Ctx<'_>) -> Result<String, String> {
    sh(ctx, &format!("rm -f {HOOK_LOG}"))?;
    let n = count(ctx, "guest-fsfreeze-freeze")?;
    let mid = hook_calls(ctx)?;
    let m = count(ctx, "guest-fsfreeze-thaw")?;
    let all = hook_calls(ctx)?;
    if mid != ["freeze"] || all != ["freeze", "thaw"] || n < 1 || m != n {
        return Err(format!(
            "froze {n}, thawed {m}; hook calls while frozen {mid:?}, after the thaw {all:?}, want [freeze] then [freeze, thaw]"
        ));
    }
    Ok(format!(
        "froze {n}: hook [freeze]; thawed {m}: hook [freeze, thaw]"
    ))
}

/// A failing freeze hook: the freeze fails with the hook's output in the error (QEMU 10.x's
/// text) and nothing is frozen.
pub fn check_hook_failure(ctx: &mut Ctx<'_>) -> Result<String, String> {
    sh(ctx, &format!("rm -f {HOOK_LOG}; touch {HOOK_FAIL_FLAG}"))?;
    let r = call(ctx, &json!({"execute": "guest-fsfreeze-freeze"}));
    sh(ctx, &format!("rm -f {HOOK_FAIL_FLAG}"))?;
    let r = r?;
    let st = status(ctx)?;
    let calls = hook_calls(ctx)?;
    let want = json!({"error": {"class": "GenericError",
        "desc": "child process has failed to execute fsfreeze hook: hook refuses freeze\n"}});
    if r != want || st != "thawed" || calls != ["freeze"] {
        return Err(format!(
            "freeze with a failing hook: {r}, want {want}; status {st}; hook calls {calls:?}"
        ));
    }
    Ok(format!("{}; thawed; hook ran once", want["error"]["desc"]))
}

/// The pid of the virtio-serial agent in the guest.
fn agent_pid(ctx: &mut Ctx<'_>) -> Result<u32, String> {
    let out = sh(
        ctx,
        r#"for p in $(pidof qemu-ga); do grep -q isa-serial /proc/$p/cmdline 2>/dev/null || echo $p; done"#,
    )?;
    out.lines()
        .find_map(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("no virtio-serial agent in the guest's processes: {out:?}"))
}

/// Kills the agent with `signal` and waits for init to respawn it; reconnects.
fn restart_agent(ctx: &mut Ctx<'_>, signal: &str) -> Result<(u32, u32), String> {
    let old = agent_pid(ctx)?;
    ctx.drop_client();
    sh(ctx, &format!("kill -{signal} {old}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let new = loop {
        if let Ok(p) = agent_pid(ctx)
            && p != old
        {
            break p;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the agent (pid {old}) was not respawned within 20 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    ctx.client()?;
    Ok((old, new))
}

/// Frozen, the agent is killed with SIGKILL; the one init starts comes back frozen (the
/// marker), the filesystems are still frozen in the kernel, and its thaw thaws them.
pub fn check_kill_while_frozen(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = kill_while_frozen(ctx);
    if r.is_err() {
        cleanup(ctx);
    }
    r
}

fn kill_while_frozen(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let data = crate::storage_checks::DATA_MOUNT;
    let n = count(ctx, "guest-fsfreeze-freeze")?;
    sh(ctx, &format!("test -e {FROZEN_MARKER}"))
        .map_err(|e| format!("no {FROZEN_MARKER} after the freeze: {e}"))?;
    let (old, new) = restart_agent(ctx, "9")?;
    let st = status(ctx)?;
    if st != "frozen" {
        return Err(format!("the respawned agent says {st:?}, want \"frozen\""));
    }
    let t = call(ctx, &json!({"execute": "guest-get-time"}))?;
    if t.pointer("/error/class") != Some(&json!("CommandNotFound")) {
        return Err(format!("guest-get-time on the respawned frozen agent: {t}"));
    }
    // Still frozen in the kernel: freezing again is refused (EBUSY).
    let (code, out) = ctx
        .vm
        .shell(&format!("fsfreeze --freeze {data}"), SHELL_TIMEOUT)
        .map_err(|e| e.0)?;
    if code == 0 {
        return Err(format!(
            "fsfreeze --freeze {data} succeeded after the restart: it was not frozen ({out})"
        ));
    }
    let m = count(ctx, "guest-fsfreeze-thaw")?;
    let st = status(ctx)?;
    let marker = sh(
        ctx,
        &format!("test -e {FROZEN_MARKER} && echo present; true"),
    )?;
    if m != n || st != "thawed" || !marker.trim().is_empty() {
        return Err(format!(
            "thaw after the restart returned {m} (froze {n}); status {st}; marker {}",
            marker.trim()
        ));
    }
    // Writable again.
    sh(
        ctx,
        &format!("echo ok >{data}/qga-after-kill && rm {data}/qga-after-kill"),
    )?;
    Ok(format!(
        "froze {n}; kill -9 {old}; respawned {new}: frozen, get-time disabled, {data} still frozen in the kernel; thaw → {m}, marker gone, writable"
    ))
}

/// With `fsfreeze-watchdog` set, a freeze left alone is thawed after that time, the hook
/// runs with `thaw` and the other commands are enabled again (our extension).
pub fn check_watchdog(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = watchdog(ctx);
    if r.is_err() {
        cleanup(ctx);
    }
    r
}

fn watchdog(ctx: &mut Ctx<'_>) -> Result<String, String> {
    sh(
        ctx,
        &format!("echo fsfreeze-watchdog={WATCHDOG_SECS} >>{CONFIG}; rm -f {HOOK_LOG}"),
    )?;
    restart_agent(ctx, "TERM")?;
    let n = count(ctx, "guest-fsfreeze-freeze")?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(WATCHDOG_SECS + 7);
    loop {
        let st = status(ctx)?;
        if st == "thawed" {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "still {st:?} {:.1} s after freezing {n} with fsfreeze-watchdog={WATCHDOG_SECS}",
                t0.elapsed().as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = t0.elapsed();
    if took < Duration::from_secs(WATCHDOG_SECS) - Duration::from_millis(300) {
        return Err(format!(
            "thawed after {took:?}, before the watchdog's {WATCHDOG_SECS} s"
        ));
    }
    let t = ok(ctx, &json!({"execute": "guest-get-time"}))?;
    let calls = hook_calls(ctx)?;
    let marker = sh(
        ctx,
        &format!("test -e {FROZEN_MARKER} && echo present; true"),
    )?;
    if calls != ["freeze", "thaw"] || !marker.trim().is_empty() {
        return Err(format!("hook calls {calls:?}, marker {:?}", marker.trim()));
    }
    Ok(format!(
        "froze {n}; thawed by the watchdog after {:.1} s; hook [freeze, thaw]; marker gone; guest-get-time answers ({t})",
        took.as_secs_f64()
    ))
}

/// What the udev database holds for the IDE disk in [`check_udev_serial`].
const UDEV_SERIAL: &str = "QEMU_HARDDISK_QGA-IDE-1-1";

/// With a udev database entry for the IDE disk (as udevd writes it: `E:ID_SERIAL=…`), both
/// guest-get-disks and guest-get-fsinfo report that serial (qemu-ga through libudev, ours by
/// reading `/run/udev/data/b<major>:<minor>`); without it, none.
pub fn check_udev_serial(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let ide = BUSES
        .iter()
        .find(|b| b.bus_type == "ide")
        .ok_or("no IDE bus")?;
    let dev = sh(
        ctx,
        &format!(
            "for b in /sys/block/*; do case $(readlink -f $b) in */{}/*) echo ${{b##*/}};; esac; done",
            pci_name(ide.pci)
        ),
    )?;
    let dev = dev.trim().to_string();
    if dev.is_empty() {
        return Err("no IDE disk in the guest".into());
    }
    let db = format!("/run/udev/data/b$(cat /sys/block/{dev}/dev)");
    sh(
        ctx,
        &format!(
            "mkdir -p /run/udev/data && printf 'S:disk/by-id/ata-{UDEV_SERIAL}\nI:1000000\nE:ID_BUS=ata\nE:ID_SERIAL={UDEV_SERIAL}\nE:ID_SERIAL_SHORT={}\nG:systemd\n' >{db}",
            ide.serial
        ),
    )?;
    let node = format!("/dev/{dev}");
    let fsinfo = ok(ctx, &json!({"execute": "guest-get-fsinfo"}));
    let disks = ok(ctx, &json!({"execute": "guest-get-disks"}));
    sh(ctx, &format!("rm -f {db}"))?;
    let (fsinfo, disks) = (fsinfo?, disks?);
    let from_disks = disks_entry(&disks, &node)
        .and_then(|e| e.pointer("/address/serial"))
        .cloned();
    let from_fs = fsinfo_entry(&fsinfo, ide.mount)
        .and_then(|e| e.pointer("/disk/0/serial"))
        .cloned();
    let want = Some(json!(UDEV_SERIAL));
    if from_disks != want || from_fs != want {
        return Err(format!(
            "{node} with ID_SERIAL={UDEV_SERIAL} in the udev database: guest-get-disks serial {from_disks:?}, guest-get-fsinfo serial {from_fs:?}"
        ));
    }
    Ok(format!(
        "{node}: ID_SERIAL from the udev database in guest-get-disks and guest-get-fsinfo"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mbr_entry() {
        let b = mbr_bytes(2048, 30720);
        assert_eq!(b[446 + 4], 0x83);
        assert_eq!(&b[446 + 8..446 + 12], &2048u32.to_le_bytes());
        assert_eq!(&b[446 + 12..446 + 16], &30720u32.to_le_bytes());
        assert_eq!(&b[510..], &[0x55, 0xaa]);
    }

    #[test]
    fn test_locate_by_pci_and_lun() {
        let block = vec![
            (
                "sda".to_string(),
                "/sys/devices/pci0000:00/0000:00:11.0/virtio3/host0/target0:0:4/0:0:4:0/block/sda"
                    .to_string(),
            ),
            (
                "sdb".to_string(),
                "/sys/devices/pci0000:00/0000:00:11.0/virtio3/host0/target0:0:3/0:0:3:2/block/sdb"
                    .to_string(),
            ),
            (
                "sdc".to_string(),
                "/sys/devices/pci0000:00/0000:00:13.0/ata2/host3/target3:0:1/3:0:1:0/block/sdc"
                    .to_string(),
            ),
        ];
        let by = |n: &str| BUSES.iter().find(|b| b.name == n).unwrap();
        assert_eq!(locate(by("virtio-scsi"), &block, &[]), Some("sdb"));
        assert_eq!(locate(by("dm-linear"), &block, &[]), Some("sda"));
        assert_eq!(locate(by("ide"), &block, &[]), Some("sdc"));
        assert_eq!(locate(by("nvme"), &block, &[]), None);
        let mut block = block;
        block.push((
            "nvme0c0n1".to_string(),
            "/sys/devices/pci0000:00/0000:00:12.0/nvme/nvme0/nvme0c0n1".to_string(),
        ));
        block.push((
            "nvme0n1".to_string(),
            "/sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1".to_string(),
        ));
        assert_eq!(locate(by("nvme"), &block, &[]), None, "path device");
        let heads = [(
            "nvme0n1".to_string(),
            "/sys/devices/pci0000:00/0000:00:12.0/nvme/nvme0".to_string(),
        )];
        assert_eq!(locate(by("nvme"), &block, &heads), Some("nvme0n1"));
        assert!(is_nvme_path("nvme0c0n1") && is_nvme_path("nvme12c3n1"));
        assert!(!is_nvme_path("nvme0n1") && !is_nvme_path("nvmecn"));
    }

    #[test]
    fn test_fs_dev() {
        let by = |n: &str| BUSES.iter().find(|b| b.name == n).unwrap();
        assert_eq!(fs_dev(by("nvme"), "nvme0n1", None), "nvme0n1p1");
        assert_eq!(fs_dev(by("ide"), "sdc", None), "sdc");
        assert_eq!(fs_dev(by("dm-linear"), "sda", Some("dm-1")), "dm-1");
    }

    #[test]
    fn test_address_diffs_explained() {
        let ours = json!({"bus-type": "scsi", "bus": 0, "target": 3, "unit": 2, "serial": "S"});
        let reference = json!({"bus-type": "scsi", "bus": 0, "target": 0, "unit": 2});
        let d = address_diffs(&ours, &reference);
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|(_, why)| why.is_some()));
        let other = json!({"bus-type": "scsi", "bus": 0, "target": 3, "unit": 1, "serial": "S"});
        let d = address_diffs(&ours, &other);
        assert_eq!(d.len(), 1);
        assert!(d[0].1.is_none());
    }
}
