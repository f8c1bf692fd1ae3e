//! Argument and return types of the filesystem and disk commands: freeze, thaw, trim,
//! filesystem and disk inventory, disk statistics.

use serde::{Deserialize, Serialize};

/// The reply of guest-fsfreeze-status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuestFsfreezeStatus {
    /// No filesystem is frozen by the agent.
    Thawed,
    /// The agent froze the filesystems.
    Frozen,
}

/// Arguments of guest-fsfreeze-freeze-list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FreezeListArgs {
    /// Mount points to freeze (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoints: Option<Vec<String>>,
}

/// Arguments of guest-fstrim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FstrimArgs {
    /// Minimum contiguous free range to discard, in bytes (0 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
}

/// The outcome of trimming one filesystem.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestFilesystemTrimResult {
    /// The mount point.
    pub path: String,
    /// Bytes trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trimmed: Option<i64>,
    /// The `minimum` used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    /// Why the filesystem was not trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The reply of guest-fstrim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestFilesystemTrimResponse {
    /// One result per filesystem.
    pub paths: Vec<GuestFilesystemTrimResult>,
}

/// A PCI address (-1 in every member when unknown).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestPCIAddress {
    /// PCI domain.
    pub domain: i64,
    /// Bus number.
    pub bus: i64,
    /// Slot number.
    pub slot: i64,
    /// Function number.
    pub function: i64,
}

impl GuestPCIAddress {
    /// The address qemu-ga reports when it knows none.
    pub const UNKNOWN: GuestPCIAddress = GuestPCIAddress {
        domain: -1,
        bus: -1,
        slot: -1,
        function: -1,
    };
}

/// An s390 channel I/O address.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestCCWAddress {
    /// Channel subsystem image id.
    pub cssid: i64,
    /// Subchannel set id.
    pub ssid: i64,
    /// Subchannel number.
    pub subchno: i64,
    /// Device number.
    pub devno: i64,
}

/// The bus a disk is attached to.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GuestDiskBusType {
    /// IDE.
    Ide,
    /// Floppy controller.
    Fdc,
    /// SCSI.
    Scsi,
    /// virtio-blk.
    Virtio,
    /// Xen.
    Xen,
    /// USB.
    Usb,
    /// User-mode Linux.
    Uml,
    /// SATA (AHCI).
    Sata,
    /// SD card.
    Sd,
    /// Unknown.
    Unknown,
    /// FireWire.
    Ieee1394,
    /// Serial storage architecture.
    Ssa,
    /// Fibre channel.
    Fibre,
    /// RAID.
    Raid,
    /// iSCSI.
    Iscsi,
    /// Serial attached SCSI.
    Sas,
    /// MMC.
    Mmc,
    /// Virtual.
    Virtual,
    /// File-backed virtual disk.
    FileBackedVirtual,
    /// NVMe.
    Nvme,
}

/// Where a disk is attached.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestDiskAddress {
    /// The controller's PCI address.
    pub pci_controller: GuestPCIAddress,
    /// The bus type.
    pub bus_type: GuestDiskBusType,
    /// Bus number.
    pub bus: i64,
    /// Target number.
    pub target: i64,
    /// Unit number.
    pub unit: i64,
    /// The disk's serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The device node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The s390 CCW address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ccw_address: Option<GuestCCWAddress>,
}

/// One mounted filesystem (guest-get-fsinfo).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFilesystemInfo {
    /// The block device's kernel name, e.g. `sda1` or `dm-0`.
    pub name: String,
    /// The mount point.
    pub mountpoint: String,
    /// The filesystem type.
    #[serde(rename = "type")]
    pub fs_type: String,
    /// Bytes used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Bytes usable by unprivileged users, used included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// The filesystem's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes_privileged: Option<u64>,
    /// The disks the filesystem lives on.
    pub disk: Vec<GuestDiskAddress>,
}

/// NVMe SMART / health information (log page 2). 128-bit counters are split into low and
/// high 64-bit halves.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNVMeSmart {
    /// Critical warning bits.
    pub critical_warning: i64,
    /// Composite temperature, kelvin.
    pub temperature: i64,
    /// Available spare, percent.
    pub available_spare: i64,
    /// Available spare threshold, percent.
    pub available_spare_threshold: i64,
    /// Percentage of the rated endurance used.
    pub percentage_used: i64,
    /// Data units read (low half).
    pub data_units_read_lo: u64,
    /// Data units read (high half).
    pub data_units_read_hi: u64,
    /// Data units written (low half).
    pub data_units_written_lo: u64,
    /// Data units written (high half).
    pub data_units_written_hi: u64,
    /// Host read commands (low half).
    pub host_read_commands_lo: u64,
    /// Host read commands (high half).
    pub host_read_commands_hi: u64,
    /// Host write commands (low half).
    pub host_write_commands_lo: u64,
    /// Host write commands (high half).
    pub host_write_commands_hi: u64,
    /// Controller busy time, minutes (low half).
    pub controller_busy_time_lo: u64,
    /// Controller busy time, minutes (high half).
    pub controller_busy_time_hi: u64,
    /// Power cycles (low half).
    pub power_cycles_lo: u64,
    /// Power cycles (high half).
    pub power_cycles_hi: u64,
    /// Power-on hours (low half).
    pub power_on_hours_lo: u64,
    /// Power-on hours (high half).
    pub power_on_hours_hi: u64,
    /// Unsafe shutdowns (low half).
    pub unsafe_shutdowns_lo: u64,
    /// Unsafe shutdowns (high half).
    pub unsafe_shutdowns_hi: u64,
    /// Media and data integrity errors (low half).
    pub media_errors_lo: u64,
    /// Media and data integrity errors (high half).
    pub media_errors_hi: u64,
    /// Error log entries (low half).
    pub number_of_error_log_entries_lo: u64,
    /// Error log entries (high half).
    pub number_of_error_log_entries_hi: u64,
}

/// A disk's SMART data: a union on `type` (the bus), of which NVMe is the only member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum GuestDiskSmart {
    /// NVMe health information.
    Nvme(GuestNVMeSmart),
}

/// One disk or partition (guest-get-disks).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestDiskInfo {
    /// The device node.
    pub name: String,
    /// Whether this is a partition.
    pub partition: bool,
    /// Device nodes this one is built on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    /// Where the disk is attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<GuestDiskAddress>,
    /// The device-mapper name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// SMART data (NVMe disks whose log page could be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart: Option<GuestDiskSmart>,
}

/// I/O counters of a block device, from `/proc/diskstats`; members the kernel does not
/// print are absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestDiskStats {
    /// Sectors read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_sectors: Option<u64>,
    /// Reads completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ios: Option<u64>,
    /// Reads merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_merges: Option<u64>,
    /// Sectors written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_sectors: Option<u64>,
    /// Writes completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_ios: Option<u64>,
    /// Writes merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_merges: Option<u64>,
    /// Sectors discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard_sectors: Option<u64>,
    /// Discards completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard_ios: Option<u64>,
    /// Discards merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard_merges: Option<u64>,
    /// Flushes completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_ios: Option<u64>,
    /// Milliseconds spent reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ticks: Option<u64>,
    /// Milliseconds spent writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_ticks: Option<u64>,
    /// Milliseconds spent discarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard_ticks: Option<u64>,
    /// Milliseconds spent flushing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_ticks: Option<u64>,
    /// I/Os in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ios_pgr: Option<u64>,
    /// Milliseconds spent doing I/O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ticks: Option<u64>,
    /// Weighted milliseconds spent doing I/O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_ticks: Option<u64>,
}

/// One block device's counters (guest-get-diskstats).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestDiskStatsInfo {
    /// The kernel name, e.g. `vda`.
    pub name: String,
    /// Major device number.
    pub major: u64,
    /// Minor device number.
    pub minor: u64,
    /// The counters.
    pub stats: GuestDiskStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_member_names() {
        let a = GuestDiskAddress {
            pci_controller: GuestPCIAddress::UNKNOWN,
            bus_type: GuestDiskBusType::FileBackedVirtual,
            bus: 0,
            target: 0,
            unit: 0,
            serial: None,
            dev: Some("/dev/sda".into()),
            ccw_address: None,
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"pci-controller":{"domain":-1,"bus":-1,"slot":-1,"function":-1},"bus-type":"file-backed-virtual","bus":0,"target":0,"unit":0,"dev":"/dev/sda"}"#
        );
        let s = GuestDiskStats {
            ios_pgr: Some(1),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"ios-pgr":1}"#);
        let smart = serde_json::to_string(&GuestDiskSmart::Nvme(GuestNVMeSmart {
            number_of_error_log_entries_hi: 9,
            ..Default::default()
        }))
        .unwrap();
        assert!(
            smart.starts_with(r#"{"type":"nvme","critical-warning":0,"temperature":0,"#),
            "{smart}"
        );
        assert!(
            smart.ends_with(r#""number-of-error-log-entries-hi":9}"#),
            "{smart}"
        );
        assert_eq!(
            serde_json::to_string(&GuestFsfreezeStatus::Frozen).unwrap(),
            r#""frozen""#
        );
    }
}
