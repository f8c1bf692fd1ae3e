//! `/proc/diskstats`: the per-device I/O counters of guest-get-diskstats.

use std::io;

use crate::sysroot::SysRoot;

/// One line of `/proc/diskstats`. The counters present depend on how many fields the
/// kernel printed (4, 11, 15 or 17 after the name); absent ones are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    /// Major device number.
    pub major: u64,
    /// Minor device number.
    pub minor: u64,
    /// Kernel name.
    pub name: String,
    /// Reads completed.
    pub read_ios: Option<u64>,
    /// Reads merged.
    pub read_merges: Option<u64>,
    /// Sectors read.
    pub read_sectors: Option<u64>,
    /// Milliseconds reading.
    pub read_ticks: Option<u64>,
    /// Writes completed.
    pub write_ios: Option<u64>,
    /// Writes merged.
    pub write_merges: Option<u64>,
    /// Sectors written.
    pub write_sectors: Option<u64>,
    /// Milliseconds writing.
    pub write_ticks: Option<u64>,
    /// I/Os in progress.
    pub ios_pgr: Option<u64>,
    /// Milliseconds doing I/O.
    pub total_ticks: Option<u64>,
    /// Weighted milliseconds doing I/O.
    pub weight_ticks: Option<u64>,
    /// Discards completed.
    pub discard_ios: Option<u64>,
    /// Discards merged.
    pub discard_merges: Option<u64>,
    /// Sectors discarded.
    pub discard_sectors: Option<u64>,
    /// Milliseconds discarding.
    pub discard_ticks: Option<u64>,
    /// Flushes completed.
    pub flush_ios: Option<u64>,
    /// Milliseconds flushing.
    pub flush_ticks: Option<u64>,
}

/// The longest device name read, as qemu-ga's `%64s`.
const NAME_MAX: usize = 64;

/// Fields after the name that are C `unsigned int` in qemu-ga's scan (0-based among the 17
/// counters): they wrap at 2^32.
const U32_FIELDS: [usize; 6] = [7, 8, 9, 10, 14, 16];

/// An unsigned number as `scanf("%lu")` reads a whole field; `None` when it has no digits.
fn scan_u64(field: &str) -> Option<u64> {
    let (neg, digits) = crate::sysroot::sign_and_digits(field)?;
    let mut v: u64 = 0;
    for b in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Parses one line; `None` when it has fewer than the name and 4 counters (qemu-ga skips
/// such lines).
pub fn parse_line(line: &str) -> Option<DiskStat> {
    let mut fields = line.split_ascii_whitespace();
    let major = scan_u64(fields.next()?)? & 0xffff_ffff;
    let minor = scan_u64(fields.next()?)? & 0xffff_ffff;
    let raw_name = fields.next()?;
    let (name, spill) = match raw_name.char_indices().nth(NAME_MAX) {
        Some((cut, _)) => (&raw_name[..cut], Some(&raw_name[cut..])),
        None => (raw_name, None),
    };
    let mut values = Vec::with_capacity(17);
    for field in spill.into_iter().chain(fields).take(17) {
        let Some(v) = scan_u64(field) else { break };
        let v = if U32_FIELDS.contains(&values.len()) {
            v & 0xffff_ffff
        } else {
            v
        };
        values.push(v);
    }
    if values.len() < 4 {
        return None;
    }
    let mut s = DiskStat {
        major,
        minor,
        name: name.to_string(),
        ..Default::default()
    };
    // Groups the kernel adds together: 11 counters, then discards (15), then flushes (17).
    let counted = match values.len() {
        17.. => 17,
        15 | 16 => 15,
        11..=14 => 11,
        _ => 0,
    };
    let slots: [&mut Option<u64>; 17] = [
        &mut s.read_ios,
        &mut s.read_merges,
        &mut s.read_sectors,
        &mut s.read_ticks,
        &mut s.write_ios,
        &mut s.write_merges,
        &mut s.write_sectors,
        &mut s.write_ticks,
        &mut s.ios_pgr,
        &mut s.total_ticks,
        &mut s.weight_ticks,
        &mut s.discard_ios,
        &mut s.discard_merges,
        &mut s.discard_sectors,
        &mut s.discard_ticks,
        &mut s.flush_ios,
        &mut s.flush_ticks,
    ];
    for (slot, v) in slots.into_iter().zip(&values).take(counted) {
        *slot = Some(*v);
    }
    if let [reads, read_sectors, writes, write_sectors] = values[..] {
        // Partitions of old kernels: reads, sectors read, writes, sectors written.
        s.read_ios = Some(reads);
        s.read_sectors = Some(read_sectors);
        s.write_ios = Some(writes);
        s.write_sectors = Some(write_sectors);
    }
    Some(s)
}

/// Parses `/proc/diskstats`, in file order.
pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads `/proc/diskstats` under `root`.
pub fn read_diskstats(root: &SysRoot) -> io::Result<Vec<DiskStat>> {
    Ok(parse_diskstats(&root.read_to_string("/proc/diskstats")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../testdata/diskstats/mixed");

    #[test]
    fn test_field_counts_decide_members() {
        let all = parse_diskstats(FIXTURE);
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["vda", "vda1", "sda", "sdb", "sr0", "old1"]);
        let vda = &all[0];
        assert_eq!((vda.major, vda.minor), (254, 0));
        assert_eq!(vda.read_ios, Some(397306));
        assert_eq!(vda.weight_ticks, Some(695880));
        assert_eq!(vda.discard_sectors, Some(10595632));
        assert_eq!(vda.flush_ticks, Some(7767));
        // 11 counters: no discard, no flush.
        let sda = &all[2];
        assert_eq!(sda.total_ticks, Some(10));
        assert_eq!(sda.discard_ios, None);
        assert_eq!(sda.flush_ios, None);
        // 15 counters: discard, no flush.
        assert_eq!(all[3].discard_ticks, Some(15));
        assert_eq!(all[3].flush_ios, None);
        // 4 counters: the old partition layout.
        let old = &all[5];
        assert_eq!(
            (
                old.read_ios,
                old.read_sectors,
                old.write_ios,
                old.write_sectors
            ),
            (Some(1), Some(2), Some(3), Some(4))
        );
        assert_eq!(old.read_merges, None);
    }

    #[test]
    fn test_malformed_lines() {
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("8 0 sda 1 2 3"), None);
        assert_eq!(parse_line("x 0 sda 1 2 3 4"), None);
        // A counter that is not a number ends the scan there.
        let s = parse_line("8 0 sda 1 2 3 4 5 x 7 8 9 10 11").unwrap();
        assert_eq!(s.read_ios, None);
        // Unsigned int fields wrap, unsigned long ones do not.
        let s = parse_line("8 0 sda 1 2 3 4 5 6 7 4294967297 9 10 11").unwrap();
        assert_eq!(s.write_ticks, Some(1));
        assert_eq!(s.read_ios, Some(1));
        // Trailing garbage after 17 counters is ignored.
        assert!(parse_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x").is_some());
    }
}
