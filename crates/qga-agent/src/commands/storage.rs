//! guest-get-diskstats, guest-get-fsinfo, guest-get-disks and guest-fsfreeze-status (the
//! freeze, thaw and trim commands are in `freeze.rs`).

use qga_schema::{
    GuestDiskAddress, GuestDiskBusType, GuestDiskInfo, GuestDiskSmart, GuestDiskStats,
    GuestDiskStatsInfo, GuestFilesystemInfo, GuestGetDisks, GuestGetDiskstats, GuestGetFsinfo,
    GuestNVMeSmart, GuestPCIAddress, NoArgs,
};
use qga_sys::blockdev::{self, BusType, DiskAddr};
use qga_sys::diskstats;
use qga_sys::mounts;
use qga_sys::nvme;
use qga_sys::sysroot::SysRoot;

use crate::agent::Agent;
use crate::error::{CommandError, strerror};
use crate::registry::Handle;

impl Handle for GuestGetDiskstats {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Vec<GuestDiskStatsInfo>, CommandError> {
        let stats = diskstats::read_diskstats(&SysRoot::host()).map_err(|e| {
            CommandError::Failed(format!("open(\"/proc/diskstats\"): {}", strerror(&e)))
        })?;
        Ok(stats
            .into_iter()
            .map(|s| GuestDiskStatsInfo {
                name: s.name,
                major: s.major,
                minor: s.minor,
                stats: GuestDiskStats {
                    read_sectors: s.read_sectors,
                    read_ios: s.read_ios,
                    read_merges: s.read_merges,
                    write_sectors: s.write_sectors,
                    write_ios: s.write_ios,
                    write_merges: s.write_merges,
                    discard_sectors: s.discard_sectors,
                    discard_ios: s.discard_ios,
                    discard_merges: s.discard_merges,
                    flush_ios: s.flush_ios,
                    read_ticks: s.read_ticks,
                    write_ticks: s.write_ticks,
                    discard_ticks: s.discard_ticks,
                    flush_ticks: s.flush_ticks,
                    ios_pgr: s.ios_pgr,
                    total_ticks: s.total_ticks,
                    weight_ticks: s.weight_ticks,
                },
            })
            .collect())
    }
}

impl Handle for qga_schema::GuestFsfreezeStatus {
    fn handle(
        agent: &mut Agent,
        _args: NoArgs,
    ) -> Result<qga_schema::storage::GuestFsfreezeStatus, CommandError> {
        Ok(if agent.frozen {
            qga_schema::storage::GuestFsfreezeStatus::Frozen
        } else {
            qga_schema::storage::GuestFsfreezeStatus::Thawed
        })
    }
}

/// A disk address on the wire.
fn wire_address(d: DiskAddr) -> GuestDiskAddress {
    GuestDiskAddress {
        pci_controller: GuestPCIAddress {
            domain: d.pci.domain,
            bus: d.pci.bus,
            slot: d.pci.slot,
            function: d.pci.function,
        },
        bus_type: match d.bus_type {
            BusType::Ide => GuestDiskBusType::Ide,
            BusType::Scsi => GuestDiskBusType::Scsi,
            BusType::Virtio => GuestDiskBusType::Virtio,
            BusType::Sata => GuestDiskBusType::Sata,
            BusType::Nvme => GuestDiskBusType::Nvme,
            BusType::Usb => GuestDiskBusType::Usb,
            BusType::Unknown => GuestDiskBusType::Unknown,
        },
        bus: d.bus,
        target: d.target,
        unit: d.unit,
        serial: d.serial,
        dev: d.dev,
        ccw_address: None,
    }
}

/// statvfs sizes of a mount point: (used, total for users, total).
type SizesFn<'a> = &'a dyn Fn(&str) -> Option<(u64, u64, u64)>;

/// The filesystems of `mounts` in qemu-ga's order (the mount list reversed), with sizes
/// from `sizes` and disks from the sysfs tree at `root`.
pub(crate) fn fsinfo_with(
    root: &SysRoot,
    list: &[mounts::Mount],
    sizes: SizesFn<'_>,
) -> Result<Vec<GuestFilesystemInfo>, CommandError> {
    let mut out = Vec::with_capacity(list.len());
    for m in list.iter().rev() {
        let dev = blockdev::fs_device(root, m.major, m.minor).map_err(CommandError::Failed)?;
        let size = sizes(&m.dir);
        out.push(GuestFilesystemInfo {
            name: dev.name,
            mountpoint: m.dir.clone(),
            fs_type: m.fs_type.clone(),
            used_bytes: size.map(|s| s.0),
            total_bytes: size.map(|s| s.1),
            total_bytes_privileged: size.map(|s| s.2),
            disk: dev.disks.into_iter().map(wire_address).collect(),
        });
    }
    Ok(out)
}

impl Handle for GuestGetFsinfo {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Vec<GuestFilesystemInfo>, CommandError> {
        let root = SysRoot::host();
        let list = mounts::read_mounts(&root).map_err(CommandError::Failed)?;
        fsinfo_with(&root, &list, &blockdev::fs_sizes)
    }
}

/// The SMART member of an NVMe disk, when its log page can be read.
fn nvme_smart(dev: &str) -> Option<GuestDiskSmart> {
    let s = nvme::read_smart(dev)?;
    let c = s.counters;
    Some(GuestDiskSmart::Nvme(GuestNVMeSmart {
        critical_warning: i64::from(s.critical_warning),
        temperature: i64::from(s.temperature),
        available_spare: i64::from(s.available_spare),
        available_spare_threshold: i64::from(s.available_spare_threshold),
        percentage_used: i64::from(s.percentage_used),
        data_units_read_lo: c[0].0,
        data_units_read_hi: c[0].1,
        data_units_written_lo: c[1].0,
        data_units_written_hi: c[1].1,
        host_read_commands_lo: c[2].0,
        host_read_commands_hi: c[2].1,
        host_write_commands_lo: c[3].0,
        host_write_commands_hi: c[3].1,
        controller_busy_time_lo: c[4].0,
        controller_busy_time_hi: c[4].1,
        power_cycles_lo: c[5].0,
        power_cycles_hi: c[5].1,
        power_on_hours_lo: c[6].0,
        power_on_hours_hi: c[6].1,
        unsafe_shutdowns_lo: c[7].0,
        unsafe_shutdowns_hi: c[7].1,
        media_errors_lo: c[8].0,
        media_errors_hi: c[8].1,
        number_of_error_log_entries_lo: c[9].0,
        number_of_error_log_entries_hi: c[9].1,
    }))
}

impl Handle for GuestGetDisks {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Vec<GuestDiskInfo>, CommandError> {
        let disks = blockdev::list_disks(&SysRoot::host()).map_err(CommandError::Failed)?;
        Ok(disks
            .into_iter()
            .map(|d| {
                let nvme = d
                    .address
                    .as_ref()
                    .is_some_and(|a| a.bus_type == BusType::Nvme);
                GuestDiskInfo {
                    smart: if nvme { nvme_smart(&d.name) } else { None },
                    name: d.name,
                    partition: d.partition,
                    dependencies: Some(d.dependencies),
                    address: d.address.map(wire_address),
                    alias: d.alias,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fsinfo_reverses_mount_list_and_reports_sizes() {
        let root = SysRoot::at(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../qga-sys/testdata/sysfs"
        ));
        let list = [
            mounts::Mount {
                dir: "/".into(),
                fs_type: "ext4".into(),
                major: 254,
                minor: 1,
            },
            mounts::Mount {
                dir: "/srv".into(),
                fs_type: "xfs".into(),
                major: 253,
                minor: 0,
            },
        ];
        let fs =
            fsinfo_with(&root, &list, &|d| (d == "/").then_some((1, 2, 3))).unwrap_or_default();
        assert_eq!(fs.len(), 2);
        assert_eq!((fs[0].name.as_str(), fs[0].disk.len()), ("dm-0", 2));
        assert_eq!(fs[0].used_bytes, None);
        assert_eq!(fs[1].name, "vda1");
        assert_eq!(
            (
                fs[1].used_bytes,
                fs[1].total_bytes,
                fs[1].total_bytes_privileged
            ),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!(fs[1].disk[0].bus_type, GuestDiskBusType::Virtio);
    }
}
