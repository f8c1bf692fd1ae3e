//! System clock and hardware clock (RTC) for guest-set-time. The RTC is read and set through
//! `/dev/rtc0` (`RTC_RD_TIME`/`RTC_SET_TIME`) directly, so guests without `hwclock` work;
//! `/sbin/hwclock` is only the fallback when the device cannot be used.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::helper::{self, HelperError};
use crate::sysroot::{SysRoot, strerror};

/// Why syncing the clocks failed.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// settimeofday failed.
    #[error("Failed to set time to guest: {}", strerror(.0))]
    SetTime(#[source] io::Error),
    /// The RTC device could not be used and there is no `hwclock` to fall back to.
    #[error(
        "failed to set hardware clock to system time: {what} {device}: {}",
        strerror(source)
    )]
    Rtc {
        /// `open`, `RTC_RD_TIME` or `RTC_SET_TIME`.
        what: &'static str,
        /// The device.
        device: String,
        /// The OS error.
        source: io::Error,
    },
    /// `hwclock` failed (qemu-ga's texts).
    #[error(transparent)]
    Hwclock(#[from] HelperError),
}

/// Whether qemu-ga accepts `time_ns` for guest-set-time: its local-time year must be in
/// [1970, 2070).
pub fn time_in_range(time_ns: i64) -> bool {
    let secs = time_ns / 1_000_000_000;
    local_year(secs).is_some_and(|y| (1970..2070).contains(&y))
}

/// The year of `secs` in the local time zone.
fn local_year(secs: i64) -> Option<i64> {
    broken_down(secs, true).map(|t| i64::from(t.year) + 1900)
}

/// Sets the system clock to `time_ns` as qemu-ga does: seconds truncated toward zero and
/// the microseconds of the remainder (a negative remainder makes settimeofday fail).
pub fn set_system_time(time_ns: i64) -> Result<(), ClockError> {
    let tv = libc::timeval {
        tv_sec: (time_ns / 1_000_000_000) as libc::time_t,
        tv_usec: ((time_ns % 1_000_000_000) / 1000) as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval and the time zone pointer may be null.
    if unsafe { libc::settimeofday(&tv, std::ptr::null()) } < 0 {
        return Err(ClockError::SetTime(io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether `/etc/adjtime` says the RTC keeps local time (its third line is `LOCAL`);
/// UTC otherwise, as for hwclock.
pub fn adjtime_is_local(text: &str) -> bool {
    text.lines().nth(2).is_some_and(|l| l.trim() == "LOCAL")
}

/// `struct rtc_time` of `<linux/rtc.h>`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RtcTime {
    sec: libc::c_int,
    min: libc::c_int,
    hour: libc::c_int,
    mday: libc::c_int,
    mon: libc::c_int,
    year: libc::c_int,
    wday: libc::c_int,
    yday: libc::c_int,
    isdst: libc::c_int,
}

/// ioctl direction bits (write, read) and their shift: powerpc, mips and sparc encode
/// them differently from the other architectures.
const IOC: (u64, u64, u64) = if cfg!(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc64"
)) {
    (4, 2, 29)
} else {
    (1, 2, 30)
};

/// `_IOC(dir, 'p', nr, sizeof(struct rtc_time))` with this architecture's encoding.
const fn rtc_ioctl(write: bool, nr: u64) -> u64 {
    let dir = if write { IOC.0 } else { IOC.1 };
    (dir << IOC.2) | ((size_of::<RtcTime>() as u64) << 16) | ((b'p' as u64) << 8) | nr
}

const RTC_RD_TIME: u64 = rtc_ioctl(false, 0x09);
const RTC_SET_TIME: u64 = rtc_ioctl(true, 0x0a);

fn open_rtc(root: &SysRoot) -> Result<(File, String), ClockError> {
    let first = match File::options().read(true).open(root.path("/dev/rtc0")) {
        Ok(f) => return Ok((f, "/dev/rtc0".to_string())),
        Err(e) => e,
    };
    match File::options().read(true).open(root.path("/dev/rtc")) {
        Ok(f) => Ok((f, "/dev/rtc".to_string())),
        Err(_) => Err(ClockError::Rtc {
            what: "open",
            device: "/dev/rtc0".to_string(),
            source: first,
        }),
    }
}

fn read_rtc(f: &File, dev: &str) -> Result<RtcTime, ClockError> {
    let mut t = RtcTime::default();
    // SAFETY: the fd is open and `t` is a valid rtc_time the kernel fills in.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), RTC_RD_TIME as libc::Ioctl, &mut t) };
    if rc < 0 {
        return Err(ClockError::Rtc {
            what: "RTC_RD_TIME",
            device: dev.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(t)
}

fn broken_down(secs: i64, local: bool) -> Option<RtcTime> {
    let t = libc::time_t::try_from(secs).ok()?;
    // SAFETY: `tm` is plain data; all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid; the _r variants write only `tm`.
    let ok = unsafe {
        if local {
            !libc::localtime_r(&t, &mut tm).is_null()
        } else {
            !libc::gmtime_r(&t, &mut tm).is_null()
        }
    };
    ok.then_some(RtcTime {
        sec: tm.tm_sec,
        min: tm.tm_min,
        hour: tm.tm_hour,
        mday: tm.tm_mday,
        mon: tm.tm_mon,
        year: tm.tm_year,
        wday: tm.tm_wday,
        yday: tm.tm_yday,
        isdst: 0,
    })
}

fn epoch_of(t: &RtcTime, local: bool) -> i64 {
    // SAFETY: `tm` is plain data; all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_sec = t.sec;
    tm.tm_min = t.min;
    tm.tm_hour = t.hour;
    tm.tm_mday = t.mday;
    tm.tm_mon = t.mon;
    tm.tm_year = t.year;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is valid; timegm/mktime only normalise it.
    let secs = unsafe {
        if local {
            libc::mktime(&mut tm)
        } else {
            libc::timegm(&mut tm)
        }
    };
    secs as i64
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

fn rtc_is_local(root: &SysRoot) -> bool {
    root.read_to_string("/etc/adjtime")
        .is_ok_and(|t| adjtime_is_local(&t))
}

/// Writes the system time to the RTC, like `hwclock -w`: at half past a second the RTC is
/// set to the next whole second (the CMOS clock starts its second 500 ms after a write).
pub fn system_to_rtc(root: &SysRoot) -> Result<(), ClockError> {
    let (f, dev) = open_rtc(root)?;
    let local = rtc_is_local(root);
    let sub = now().subsec_nanos();
    let wait = (1_500_000_000 - i64::from(sub)) % 1_000_000_000;
    std::thread::sleep(Duration::from_nanos(wait.unsigned_abs()));
    let secs = i64::try_from(now().as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    let t = broken_down(secs, local).ok_or_else(|| ClockError::Rtc {
        what: "RTC_SET_TIME",
        device: dev.clone(),
        source: io::Error::from_raw_os_error(libc::EOVERFLOW),
    })?;
    // SAFETY: the fd is open and `t` is a valid rtc_time the kernel only reads.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), RTC_SET_TIME as libc::Ioctl, &t) };
    if rc < 0 {
        return Err(ClockError::Rtc {
            what: "RTC_SET_TIME",
            device: dev,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Sets the system time from the RTC, like `hwclock -s`: waits (at most 1.1 s) for the RTC's
/// seconds to tick so the time is exact to the tick, then sets it.
pub fn rtc_to_system(root: &SysRoot) -> Result<(), ClockError> {
    let (f, dev) = open_rtc(root)?;
    let local = rtc_is_local(root);
    let first = read_rtc(&f, &dev)?;
    let mut t = first;
    for _ in 0..1100 {
        std::thread::sleep(Duration::from_millis(1));
        t = read_rtc(&f, &dev)?;
        if t.sec != first.sec {
            break;
        }
    }
    set_system_time(epoch_of(&t, local).saturating_mul(1_000_000_000))
}

/// The `hwclock` qemu-ga runs.
pub const HWCLOCK: &str = "/sbin/hwclock";

/// Syncs the clocks after guest-set-time: with `to_rtc` the RTC from the system time, else
/// the system time from the RTC. The RTC device is used directly; when that fails and
/// `/sbin/hwclock` exists, `hwclock -w`/`-s` is run instead.
pub fn sync_clocks(to_rtc: bool) -> Result<(), ClockError> {
    let root = SysRoot::host();
    let direct = if to_rtc {
        system_to_rtc(&root)
    } else {
        rtc_to_system(&root)
    };
    match direct {
        Err(ClockError::Rtc { .. }) if helper::is_executable(Path::new(HWCLOCK)) => {
            let argv = [HWCLOCK, if to_rtc { "-w" } else { "-s" }];
            helper::run_command(&argv, None, "set hardware clock to system time")?;
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_time_in_range() {
        // Tests do not change TZ (threads); these are far from the edges in any zone.
        assert!(time_in_range(1_700_000_000_000_000_000));
        assert!(!time_in_range(-2_000_000_000_000_000_000));
        assert!(!time_in_range(4_000_000_000_000_000_000));
        assert!(!time_in_range(3_155_760_000_000_000_000));
        assert!(!time_in_range(i64::MIN));
        assert!(!time_in_range(i64::MAX));
    }

    #[test]
    fn test_adjtime() {
        assert!(adjtime_is_local("0.0 0 0.0\n0\nLOCAL\n"));
        assert!(!adjtime_is_local("0.0 0 0.0\n0\nUTC\n"));
        assert!(!adjtime_is_local("0.0 0 0.0\n"));
        assert!(!adjtime_is_local(""));
    }

    #[test]
    fn test_ioctl_numbers_match_linux_headers() {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            assert_eq!(RTC_RD_TIME, 0x8024_7009);
            assert_eq!(RTC_SET_TIME, 0x4024_700a);
        }
        assert_eq!(size_of::<RtcTime>(), 36);
    }

    #[test]
    fn test_broken_down_round_trip() {
        let t = broken_down(1_700_000_000, false).unwrap();
        assert_eq!((t.year, t.mon, t.mday, t.hour), (123, 10, 14, 22));
        assert_eq!(epoch_of(&t, false), 1_700_000_000);
        let l = broken_down(1_700_000_000, true).unwrap();
        assert_eq!(epoch_of(&l, true), 1_700_000_000);
    }

    #[test]
    fn test_missing_rtc_device() {
        let dir = tempfile::tempdir().unwrap();
        let err = rtc_to_system(&SysRoot::at(dir.path())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to set hardware clock to system time: open /dev/rtc0: No such file or directory"
        );
    }

    #[test]
    fn test_rtc_not_a_device() {
        // A regular file where the RTC should be: the ioctl fails (ENOTTY).
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("dev/rtc0"), "").unwrap();
        let err = rtc_to_system(&SysRoot::at(dir.path())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to set hardware clock to system time: RTC_RD_TIME /dev/rtc0: \
             Inappropriate ioctl for device"
        );
        let err = system_to_rtc(&SysRoot::at(dir.path())).unwrap_err();
        assert!(err.to_string().contains("RTC_SET_TIME /dev/rtc0"), "{err}");
    }
}
