//! vCPUs (`/sys/devices/system/cpu/cpuN/online`), CPU times (`/proc/stat`) and the load
//! average, for guest-get-vcpus, guest-set-vcpus, guest-get-cpustats and guest-get-load.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

use crate::sysroot::{SysRoot, leading_i64, sign_and_digits, strerror};

const CPU_DIR: &str = "/sys/devices/system/cpu";

/// A vCPU as guest-get-vcpus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vcpu {
    /// The number N of `cpuN`.
    pub id: i64,
    /// Whether it is online (a CPU without an `online` file always is).
    pub online: bool,
    /// Whether it has an `online` file.
    pub can_offline: bool,
}

/// Why reading or changing a vCPU failed; the texts are qemu-ga's.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// The CPU directory cannot be listed.
    #[error("failed to list entries: {CPU_DIR}: {}", strerror(.0))]
    List(#[source] io::Error),
    /// `cpuN/` cannot be opened.
    #[error("open(\"{path}\"): {}", strerror(source))]
    OpenDir {
        /// The directory, with its trailing slash.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// `cpuN/online` cannot be opened.
    #[error("open(\"{path}/online\"): {}", strerror(source))]
    OpenOnline {
        /// The directory, with its trailing slash.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// `cpuN/online` cannot be read.
    #[error("pread(\"{path}/online\"): {}", strerror(source))]
    Read {
        /// The directory, with its trailing slash.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// `cpuN/online` is empty.
    #[error("pread(\"{path}/online\"): unexpected EOF")]
    Eof {
        /// The directory, with its trailing slash.
        path: String,
    },
    /// `cpuN/online` cannot be written.
    #[error("pwrite(\"{path}/online\"): {}", strerror(source))]
    Write {
        /// The directory, with its trailing slash.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// Offlining was asked for a CPU without an `online` file.
    #[error("logical processor #{0} can't be offlined")]
    CannotOffline(i64),
}

/// The N of a `cpuN` directory entry as `sscanf("cpu%ld")` reads it (`cpufreq` is none).
pub fn cpu_entry_id(name: &str) -> Option<i64> {
    name.strip_prefix("cpu").and_then(leading_i64)
}

fn cpu_dir(id: i64) -> String {
    format!("{CPU_DIR}/cpu{id}/")
}

/// Opens `cpuN/online` (checking `cpuN/` first, as qemu-ga does); `Ok(None)` if the CPU
/// has no `online` file.
fn open_online(root: &SysRoot, id: i64, write: bool) -> Result<Option<File>, VcpuError> {
    let path = cpu_dir(id);
    let dir = root.path(&path);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(VcpuError::OpenDir {
                path,
                source: io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        Err(source) => return Err(VcpuError::OpenDir { path, source }),
    }
    match OpenOptions::new()
        .read(true)
        .write(write)
        .open(dir.join("online"))
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(VcpuError::OpenOnline { path, source }),
    }
}

fn read_flag(file: &File, id: i64) -> Result<u8, VcpuError> {
    let mut byte = [0u8; 1];
    match file.read_at(&mut byte, 0) {
        Ok(0) => Err(VcpuError::Eof { path: cpu_dir(id) }),
        Ok(_) => Ok(byte[0]),
        Err(source) => Err(VcpuError::Read {
            path: cpu_dir(id),
            source,
        }),
    }
}

/// The state of vCPU `id`.
pub fn read_vcpu(root: &SysRoot, id: i64) -> Result<Vcpu, VcpuError> {
    Ok(match open_online(root, id, false)? {
        None => Vcpu {
            id,
            online: true,
            can_offline: false,
        },
        Some(f) => Vcpu {
            id,
            online: read_flag(&f, id)? != b'0',
            can_offline: true,
        },
    })
}

/// Every vCPU in directory order; the first failure ends the walk.
pub fn list_vcpus(root: &SysRoot) -> Result<Vec<Vcpu>, VcpuError> {
    let dir = std::fs::read_dir(root.path(CPU_DIR)).map_err(VcpuError::List)?;
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry.map_err(VcpuError::List)?;
        if let Some(id) = entry.file_name().to_str().and_then(cpu_entry_id) {
            out.push(read_vcpu(root, id)?);
        }
    }
    Ok(out)
}

/// Brings vCPU `id` online or offline; nothing is written when it already is.
pub fn set_vcpu(root: &SysRoot, id: i64, online: bool) -> Result<(), VcpuError> {
    let Some(f) = open_online(root, id, true)? else {
        return if online {
            Ok(())
        } else {
            Err(VcpuError::CannotOffline(id))
        };
    };
    if (read_flag(&f, id)? != b'0') != online {
        f.write_at(if online { b"1" } else { b"0" }, 0)
            .map_err(|source| VcpuError::Write {
                path: cpu_dir(id),
                source,
            })?;
    }
    Ok(())
}

/// One CPU's line of `/proc/stat`, in clock ticks; `None` for the members the line lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// The N of `cpuN`.
    pub cpu: i64,
    /// user, nice, system, idle.
    pub base: [u64; 4],
    /// iowait, irq, softirq, steal, guest, guest_nice, as far as present.
    pub extra: [Option<u64>; 6],
}

/// The result of parsing `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// Per-CPU lines, in file order.
    pub cpus: Vec<CpuTimes>,
    /// Whether parsing stopped at a `cpuN` line with fewer than four numbers (qemu-ga logs
    /// "Parsing cpu stat from /proc/stat failed" and returns the CPUs before it).
    pub truncated: bool,
}

/// Parses one number as `sscanf("%lu")` does (a leading `-` negates modulo 2^64).
fn scan_ulong(token: &str) -> Option<u64> {
    let (neg, digits) = sign_and_digits(token)?;
    let v = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Parses `/proc/stat`: the `cpuN` lines (not the `cpu` total), as qemu-ga reads them.
pub fn parse_proc_stat(text: &str) -> ProcStat {
    let mut out = ProcStat::default();
    for line in text.lines() {
        let mut tokens = line.split_ascii_whitespace();
        let Some(name) = tokens.next() else { continue };
        let Some(num) = name.strip_prefix("cpu").filter(|n| !n.is_empty()) else {
            continue;
        };
        let mut values = Vec::with_capacity(10);
        for token in tokens.take(10) {
            match scan_ulong(token) {
                Some(v) => values.push(v),
                None => break,
            }
            // sscanf stops inside a token such as "12x"; the next number then fails.
            if !token
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
            {
                break;
            }
        }
        if values.len() < 4 {
            out.truncated = true;
            break;
        }
        let mut times = CpuTimes {
            cpu: leading_i64(num).map_or(0, |v| i64::from(v as i32)),
            base: [values[0], values[1], values[2], values[3]],
            extra: [None; 6],
        };
        for (slot, v) in times.extra.iter_mut().zip(values.iter().skip(4)) {
            *slot = Some(*v);
        }
        // qemu-ga reports softirq whenever irq is there.
        if times.extra[1].is_some() && times.extra[2].is_none() {
            times.extra[2] = Some(0);
        }
        out.cpus.push(times);
    }
    out
}

/// Clock ticks to milliseconds as qemu-ga computes them (`ticks * 1000 / CLK_TCK`, wrapping).
pub fn ticks_to_ms(ticks: u64, clk_tck: u64) -> u64 {
    ticks.wrapping_mul(1000) / clk_tck.max(1)
}

/// `sysconf(_SC_CLK_TCK)`, 100 if unavailable.
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(100)
}

/// `getloadavg`: the 1, 5 and 15 minute load averages.
pub fn load_average() -> io::Result<[f64; 3]> {
    let mut loads = [0f64; 3];
    // SAFETY: the buffer holds the 3 doubles asked for.
    let n = unsafe { libc::getloadavg(loads.as_mut_ptr(), 3) };
    if n == 3 {
        Ok(loads)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> SysRoot {
        SysRoot::at(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/root"))
    }

    #[test]
    fn test_cpu_entry_id() {
        assert_eq!(cpu_entry_id("cpu0"), Some(0));
        assert_eq!(cpu_entry_id("cpu17"), Some(17));
        assert_eq!(cpu_entry_id("cpufreq"), None);
        assert_eq!(cpu_entry_id("cpuidle"), None);
        assert_eq!(cpu_entry_id("online"), None);
    }

    #[test]
    fn test_fixture_vcpus() {
        let mut v = list_vcpus(&fixture()).unwrap();
        v.sort_by_key(|c| c.id);
        assert_eq!(
            v,
            [
                Vcpu {
                    id: 0,
                    online: true,
                    can_offline: false
                },
                Vcpu {
                    id: 1,
                    online: true,
                    can_offline: true
                },
                Vcpu {
                    id: 2,
                    online: false,
                    can_offline: true
                },
            ]
        );
    }

    #[test]
    fn test_vcpu_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::at(dir.path());
        let err = list_vcpus(&root).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to list entries: /sys/devices/system/cpu: No such file or directory"
        );
        let cpu = dir.path().join("sys/devices/system/cpu");
        std::fs::create_dir_all(cpu.join("cpu0")).unwrap();
        std::fs::create_dir_all(cpu.join("cpu3")).unwrap();
        std::fs::write(cpu.join("cpu3/online"), "").unwrap();
        assert_eq!(
            read_vcpu(&root, 3).unwrap_err().to_string(),
            "pread(\"/sys/devices/system/cpu/cpu3//online\"): unexpected EOF"
        );
        assert_eq!(
            set_vcpu(&root, 9, true).unwrap_err().to_string(),
            "open(\"/sys/devices/system/cpu/cpu9/\"): No such file or directory"
        );
        assert_eq!(
            set_vcpu(&root, 0, false).unwrap_err().to_string(),
            "logical processor #0 can't be offlined"
        );
        set_vcpu(&root, 0, true).unwrap();
    }

    #[test]
    fn test_set_vcpu_writes_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::at(dir.path());
        let cpu1 = dir.path().join("sys/devices/system/cpu/cpu1");
        std::fs::create_dir_all(&cpu1).unwrap();
        std::fs::write(cpu1.join("online"), "1\n").unwrap();
        set_vcpu(&root, 1, true).unwrap();
        assert_eq!(std::fs::read_to_string(cpu1.join("online")).unwrap(), "1\n");
        set_vcpu(&root, 1, false).unwrap();
        assert_eq!(std::fs::read_to_string(cpu1.join("online")).unwrap(), "0\n");
        assert!(!read_vcpu(&root, 1).unwrap().online);
    }

    #[test]
    fn test_parse_proc_stat_fixture() {
        let text = fixture().read_to_string("/proc/stat").unwrap();
        let st = parse_proc_stat(&text);
        assert!(!st.truncated);
        assert_eq!(st.cpus.len(), 2);
        assert_eq!(st.cpus[0].cpu, 0);
        assert_eq!(st.cpus[0].base, [46808, 0, 10680, 131355]);
        assert_eq!(
            st.cpus[1].extra,
            [Some(1023), Some(0), Some(403), Some(309), Some(0), Some(0)]
        );
    }

    #[test]
    fn test_parse_proc_stat_short_and_malformed() {
        // Old kernels: fewer columns; members missing accordingly.
        let st = parse_proc_stat("cpu 1 2 3 4\ncpu0 10 20 30 40 50\ncpu1 1 2 3 4 5 6\n");
        assert_eq!(st.cpus.len(), 2);
        assert_eq!(st.cpus[0].extra, [Some(50), None, None, None, None, None]);
        // irq without softirq: softirq is reported as 0.
        assert_eq!(
            st.cpus[1].extra,
            [Some(5), Some(6), Some(0), None, None, None]
        );
        // A cpuN line with too few numbers ends the parse.
        let st = parse_proc_stat("cpu0 1 2 3 4\ncpu1 1 2 x\ncpu2 1 2 3 4\n");
        assert!(st.truncated);
        assert_eq!(st.cpus.len(), 1);
        // Garbage lines and blank lines are skipped; cpuX counts as cpu 0.
        let st = parse_proc_stat("\nintr 1 2\nctxt 5\ncpuX 1 2 3 4\n");
        assert_eq!(st.cpus.len(), 1);
        assert_eq!(st.cpus[0].cpu, 0);
        assert_eq!(parse_proc_stat("").cpus.len(), 0);
    }

    #[test]
    fn test_ticks_to_ms() {
        assert_eq!(ticks_to_ms(46808, 100), 468080);
        assert_eq!(
            ticks_to_ms(u64::MAX, 100),
            u64::MAX.wrapping_mul(1000) / 100
        );
        assert_eq!(ticks_to_ms(5, 0), 5000);
        assert!(clk_tck() > 0);
    }

    #[test]
    fn test_load_average() {
        let l = load_average().unwrap();
        assert!(l.iter().all(|v| *v >= 0.0));
    }
}
