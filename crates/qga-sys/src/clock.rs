//! Wall clock and local time zone for guest-get-time and guest-get-timezone.

use std::ffi::CStr;
use std::time::{SystemTime, UNIX_EPOCH};

unsafe extern "C" {
    /// POSIX `tzset(3)`; the `libc` crate does not declare it for Linux targets.
    fn tzset();
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch (negative before 1970, saturating).
pub fn realtime_ns() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |ns| -ns),
    }
}

/// The local zone as `(abbreviation, seconds east of UTC now)`, e.g. `(Some("CET"), 3600)`.
///
/// `TZ` is re-read on every call (through `tzset`), as GLib's local zone follows `TZ`;
/// without `TZ` the zone comes from `/etc/localtime`. The abbreviation is `None` when the C
/// library gives none; on failure the result is `(None, 0)`.
pub fn local_timezone() -> (Option<String>, i32) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX)
    });
    // SAFETY: tzset only (re)loads the C library's zone state from TZ and the zone files.
    unsafe { tzset() };
    // SAFETY: `libc::tm` is plain data (integers and one pointer); all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the reentrant variant and
    // writes only into `tm`.
    let result = unsafe { libc::localtime_r(&now, &mut tm) };
    if result.is_null() {
        return (None, 0);
    }
    let zone = if tm.tm_zone.is_null() {
        None
    } else {
        // SAFETY: a non-null `tm_zone` set by localtime_r points to a NUL-terminated string
        // in the C library's zone data, which glibc never frees; it is copied at once.
        let name = unsafe { CStr::from_ptr(tm.tm_zone) };
        Some(name.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
    };
    (zone, i32::try_from(tm.tm_gmtoff).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_realtime_ns_near_system_time() {
        let ours = realtime_ns();
        let std_ns = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        )
        .unwrap();
        assert!((std_ns - ours).abs() < 5_000_000_000, "{ours} vs {std_ns}");
        assert!(ours > 1_600_000_000_000_000_000);
    }

    #[test]
    fn test_local_timezone_is_sane() {
        // TZ is not changed here: tests run in threads and setenv is not thread-safe.
        let (zone, offset) = local_timezone();
        assert!((-14 * 3600..=14 * 3600).contains(&offset), "{offset}");
        if let Some(zone) = zone {
            assert!(!zone.is_empty());
        }
    }

    /// Runs in a child process started by `test_local_timezone_follows_tz`.
    #[test]
    #[ignore = "helper: run by test_local_timezone_follows_tz with TZ set"]
    fn tz_child() {
        let expect = std::env::var("QGA_SYS_TZ_EXPECT").unwrap();
        let (zone, offset) = local_timezone();
        assert_eq!(format!("{} {offset}", zone.unwrap_or_default()), expect);
    }

    #[test]
    fn test_local_timezone_follows_tz() {
        // POSIX TZ strings need no zoneinfo files; "XYZ-3" is 3 hours east of UTC.
        for (tz, expect) in [
            ("XYZ-3", "XYZ 10800"),
            ("UTC0", "UTC 0"),
            ("ABC+4:30", "ABC -16200"),
        ] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "clock::tests::tz_child", "--ignored", "--quiet"])
                .env("TZ", tz)
                .env("QGA_SYS_TZ_EXPECT", expect)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "TZ={tz}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
