#![allow(clippy::unwrap_used)]

use super::*;

fn root() -> SysRoot {
    SysRoot::at(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sysfs"))
}

fn addr(major: u32, minor: u32) -> (String, Vec<DiskAddr>) {
    let d = fs_device(&root(), major, minor).unwrap();
    (d.name, d.disks)
}

fn pci(domain: i64, bus: i64, slot: i64, function: i64) -> PciAddr {
    PciAddr {
        domain,
        bus,
        slot,
        function,
    }
}

fn one(major: u32, minor: u32) -> DiskAddr {
    let (_, mut d) = addr(major, minor);
    assert_eq!(d.len(), 1, "{major}:{minor}");
    d.remove(0)
}

#[test]
fn test_virtio_blk_partition() {
    let (name, disks) = addr(254, 1);
    assert_eq!(name, "vda1");
    assert_eq!(
        disks,
        [DiskAddr {
            pci: pci(0, 0, 2, 0),
            bus_type: BusType::Virtio,
            bus: 0,
            target: 0,
            unit: 0,
            serial: Some("VIRTIO-SERIAL".into()),
            dev: Some("/dev/vda1".into()),
        }]
    );
}

#[test]
fn test_bus_types() {
    let sda = one(8, 0);
    assert_eq!(sda.bus_type, BusType::Scsi);
    assert_eq!((sda.bus, sda.target, sda.unit), (0, 3, 2));
    assert_eq!(
        sda.serial.as_deref(),
        Some("0QEMU_QEMU_HARDDISK_drive-scsi0")
    );
    let sdb = one(8, 16);
    assert_eq!((sdb.bus_type, sdb.pci), (BusType::Sata, pci(0, 0, 0x1f, 2)));
    assert_eq!((sdb.bus, sdb.target, sdb.unit), (0, 0, 2));
    let sdc = one(8, 32);
    assert_eq!(sdc.bus_type, BusType::Ide);
    assert_eq!((sdc.bus, sdc.target, sdc.unit), (1, 0, 1));
    let nvme = one(259, 0);
    assert_eq!(nvme.bus_type, BusType::Nvme);
    assert_eq!(nvme.serial.as_deref(), Some("NVME-SERIAL"));
    assert_eq!(one(8, 48).bus_type, BusType::Usb);
    let vdb = one(254, 16);
    assert_eq!((vdb.bus_type, vdb.pci), (BusType::Virtio, pci(0, 1, 0, 0)));
    // An unknown controller: no address, but the device node is known.
    let sde = one(8, 64);
    assert_eq!(
        (sde.bus_type, sde.pci),
        (BusType::Unknown, pci(-1, -1, -1, -1))
    );
    assert_eq!(sde.dev.as_deref(), Some("/dev/sde"));
}

#[test]
fn test_dm_resolves_slaves() {
    let (name, disks) = addr(253, 0);
    assert_eq!(name, "dm-0");
    let mut devs: Vec<String> = disks.into_iter().filter_map(|d| d.dev).collect();
    devs.sort();
    assert_eq!(devs, ["/dev/sda", "/dev/vda1"]);
}

#[test]
fn test_nvme_multipath_partition() {
    // /sys/devices/virtual/nvme-subsystem/nvme-subsys1/nvme1n1/nvme1n1p1: the namespace's
    // subsystem links its controller (nvme-subsys1/nvme1 -> …/0000:00:07.0/nvme/nvme1).
    let (name, disks) = addr(259, 3);
    assert_eq!(name, "nvme1n1p1");
    assert_eq!(
        disks,
        [DiskAddr {
            pci: pci(0, 0, 7, 0),
            bus_type: BusType::Nvme,
            bus: 0,
            target: 0,
            unit: 0,
            serial: Some("NVME-MP-SERIAL".into()),
            dev: Some("/dev/nvme1n1p1".into()),
        }]
    );
}

#[test]
fn test_missing_sysfs_entry() {
    assert_eq!(addr(9, 9), ("9:9".to_string(), vec![]));
}

#[test]
fn test_list_disks() {
    let mut disks = list_disks(&root()).unwrap();
    disks.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<(&str, bool)> = disks
        .iter()
        .map(|d| (d.name.as_str(), d.partition))
        .collect();
    assert_eq!(
        names,
        [
            ("/dev/dm-0", false),
            ("/dev/nvme0n1", false),
            ("/dev/nvme1n1", false),
            ("/dev/nvme1n1p1", true),
            ("/dev/sda", false),
            ("/dev/sdb", false),
            ("/dev/sdc", false),
            ("/dev/sdd", false),
            ("/dev/sde", false),
            ("/dev/vda", false),
            ("/dev/vda1", true),
            ("/dev/vdb", false),
        ]
    );
    let dm = &disks[0];
    assert_eq!(dm.alias.as_deref(), Some("vg-root"));
    assert!(dm.address.is_none());
    let mut deps = dm.dependencies.clone();
    deps.sort();
    assert_eq!(deps, ["/dev/sda", "/dev/vda1"]);
    let vda1 = &disks[10];
    assert_eq!(vda1.dependencies, ["/dev/vda"]);
    assert!(vda1.address.is_none());
    let vda = &disks[9];
    assert!(vda.dependencies.is_empty());
    assert_eq!(
        vda.address.as_ref().unwrap().dev.as_deref(),
        Some("/dev/vda")
    );
    // An NVMe multipath namespace has its controller's address, under its own node; the
    // hidden path device (no node) is not listed.
    let mp = &disks[2];
    let a = mp.address.as_ref().unwrap();
    assert_eq!((a.bus_type, a.pci), (BusType::Nvme, pci(0, 0, 7, 0)));
    assert_eq!(a.dev.as_deref(), Some("/dev/nvme1n1"));
    assert_eq!(disks[3].dependencies, ["/dev/nvme1n1"]);
    // A partition comes before its disk (qemu-ga prepends).
    let all = list_disks(&root()).unwrap();
    let pos = |n: &str| all.iter().position(|d| d.name == n).unwrap();
    assert!(pos("/dev/vda1") < pos("/dev/vda"));
}

#[test]
fn test_parsers() {
    assert_eq!(parse_pci("0000:00:1f.2"), Some([0, 0, 0x1f, 2]));
    assert_eq!(parse_pci("usb1"), None);
    assert_eq!(
        scsi_target("/x/host2/target2:0:3/2:0:3:2/block/sda"),
        Some([0, 3, 2])
    );
    assert_eq!(scsi_target("/x/target2:0:3"), None);
    assert_eq!(scsi_target("/x/target2:0:3/2:0:3/block"), None);
}
