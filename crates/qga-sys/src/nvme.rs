//! NVMe SMART / health log (log page 2) through the admin passthrough ioctl, for
//! guest-get-disks.

use std::fs::File;
use std::os::fd::AsRawFd;

/// `_IOWR('N', 0x41, struct nvme_passthru_cmd)` (72 bytes).
const NVME_IOCTL_ADMIN_CMD: libc::c_ulong = 0xC048_4E41;
/// Admin opcode Get Log Page.
const GET_LOG_PAGE: u8 = 0x02;
/// Log identifier of SMART / health information.
const LOG_SMART: u32 = 0x02;
/// The log page's size.
const LOG_LEN: usize = 512;

/// `struct nvme_passthru_cmd` of `<linux/nvme_ioctl.h>`.
#[repr(C)]
#[derive(Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

/// The SMART counters; 128-bit counters as (low, high) halves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NvmeSmart {
    /// Critical warning bits.
    pub critical_warning: u8,
    /// Composite temperature, kelvin.
    pub temperature: u16,
    /// Available spare, percent.
    pub available_spare: u8,
    /// Available spare threshold, percent.
    pub available_spare_threshold: u8,
    /// Endurance used, percent.
    pub percentage_used: u8,
    /// The ten 128-bit counters in log order: data units read, data units written, host
    /// read commands, host write commands, controller busy time, power cycles, power-on
    /// hours, unsafe shutdowns, media errors, error log entries.
    pub counters: [(u64, u64); 10],
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Decodes the 512-byte log page.
pub fn parse_smart(log: &[u8; LOG_LEN]) -> NvmeSmart {
    let mut counters = [(0, 0); 10];
    for (i, c) in counters.iter_mut().enumerate() {
        let at = 32 + 16 * i;
        *c = (le64(log, at), le64(log, at + 8));
    }
    NvmeSmart {
        critical_warning: log[0],
        temperature: u16::from_le_bytes([log[1], log[2]]),
        available_spare: log[3],
        available_spare_threshold: log[4],
        percentage_used: log[5],
        counters,
    }
}

/// Reads the SMART log of the NVMe device node `dev` (e.g. `/dev/nvme0n1`); `None` when
/// the device cannot be opened or the command fails (qemu-ga then omits `smart`).
pub fn read_smart(dev: &str) -> Option<NvmeSmart> {
    let f = File::open(dev).ok()?;
    let mut log = [0u8; LOG_LEN];
    let mut cmd = PassthruCmd {
        opcode: GET_LOG_PAGE,
        nsid: u32::MAX,
        addr: log.as_mut_ptr() as u64,
        data_len: LOG_LEN as u32,
        cdw10: LOG_SMART | ((((LOG_LEN >> 2) - 1) as u32) << 16),
        ..Default::default()
    };
    // SAFETY: `cmd` is a repr(C) `struct nvme_passthru_cmd`; its `addr` points at `log`,
    // which is `data_len` bytes long and outlives the call; the fd is open.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), NVME_IOCTL_ADMIN_CMD, &mut cmd) };
    (r != -1).then(|| parse_smart(&log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_smart() {
        let mut log = [0u8; LOG_LEN];
        log[0] = 1;
        log[1..3].copy_from_slice(&310u16.to_le_bytes());
        log[3] = 100;
        log[4] = 10;
        log[5] = 3;
        log[32..40].copy_from_slice(&7u64.to_le_bytes());
        log[40..48].copy_from_slice(&1u64.to_le_bytes());
        log[176..184].copy_from_slice(&9u64.to_le_bytes());
        let s = parse_smart(&log);
        assert_eq!(
            (s.critical_warning, s.temperature, s.available_spare),
            (1, 310, 100)
        );
        assert_eq!((s.available_spare_threshold, s.percentage_used), (10, 3));
        assert_eq!(s.counters[0], (7, 1));
        assert_eq!(s.counters[9], (9, 0));
        assert_eq!(std::mem::size_of::<PassthruCmd>(), 72);
    }

    #[test]
    fn test_read_smart_of_missing_device() {
        assert_eq!(read_smart("/nonexistent/nvme0n1"), None);
    }
}
