//! The guest image: an initramfs with busybox as init, the kernel modules for virtio and
//! vsock, the agent (ours, and Debian's qemu-ga with its shared libraries as a reference),
//! and the files whose contents the suite checks the agent's answers against ([`GuestSpec`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio::Archive;
use crate::env::TestEnv;
use crate::{Error, kmod, run_capture};

/// The guest's host name (`/etc/hostname`).
pub const HOSTNAME: &str = "qga-vmtest";
/// The zone the image is set to.
pub const TZ_NAME: &str = "Asia/Kolkata";
/// The zone abbreviation of `/etc/localtime` (a generated TZif file, see [`tzif`]).
pub const TZ_ABBR: &str = "IST";
/// The zone's offset east of UTC in seconds (+05:30).
pub const TZ_OFFSET: i64 = 19800;
/// The same zone as a POSIX TZ string (the TZif footer).
const TZ_POSIX: &str = "IST-5:30";
/// The serial number of the data disk.
pub const DATA_DISK_SERIAL: &str = "QGA-VMTEST-DATA1";
/// Modules the guest loads (with their dependencies) unless its kernel has them built in:
/// Debian's cloud kernel (every suite) builds in ext4 and NVMe, the generic one (the storage
/// suite's, when `scripts/vmtest` could fetch it) has them as modules.
pub const MODULE_ROOTS: &[&str] = &[
    // before ext4 and jbd2, which ask the crypto API for it at mount time (no modprobe here)
    "crc32c_generic",
    "ext4",
    "virtio_pci",
    "virtio_console",
    "virtio_blk",
    "virtio_net",
    "vmw_vsock_virtio_transport",
    // the storage boot's buses (storage_buses.rs)
    "virtio_scsi",
    "sd_mod",
    "ata_piix",
    "dm_mod",
    "nvme",
];
/// Drivers loaded where the kernel has them: the storage boot's SATA (q35's AHCI) and
/// usb-storage (on xHCI) disks, which Debian's cloud kernel cannot drive at all.
pub const OPTIONAL_MODULE_ROOTS: &[&str] = &["ahci", "xhci_pci", "usb_storage"];
/// Where the agent binaries live in the image; `/usr/bin/qemu-ga` links to one of them.
pub const AGENT_DIR: &str = "/usr/libexec/qga";
/// Marker the guest prints on its console when its init script is done.
pub const READY_MARKER: &str = "qga-vm: sysinit done";

/// `/etc/os-release` of the image. VARIANT is single-quoted with spaces on purpose (see
/// docs/compat.md).
pub const OS_RELEASE: &str = "NAME=\"QGA Test Linux\"
ID=qgatest
ID_LIKE=debian
PRETTY_NAME=\"QGA Test Linux 1.0 (vmtest)\"
VERSION=\"1.0 (vmtest)\"
VERSION_ID=\"1.0\"
VERSION_CODENAME=vmtest
VARIANT='Guest Test Image'
VARIANT_ID=vm-tier
HOME_URL=\"https://example.invalid/qga\"
";

/// The os-release values the agent must report: (guest-get-osinfo member, value).
pub const OS_EXPECTED: &[(&str, &str)] = &[
    ("id", "qgatest"),
    ("name", "QGA Test Linux"),
    ("pretty-name", "QGA Test Linux 1.0 (vmtest)"),
    ("version", "1.0 (vmtest)"),
    ("version-id", "1.0"),
    ("variant-id", "vm-tier"),
];
/// The single-quoted value with spaces, checked separately.
pub const OS_EXPECTED_VARIANT: &str = "Guest Test Image";

/// One glibc utmp record to write into `/var/run/utmp`.
#[derive(Debug, Clone)]
pub struct UtmpRecord {
    /// `ut_type`: 7 USER_PROCESS, 6 LOGIN_PROCESS, 8 DEAD_PROCESS, 2 BOOT_TIME.
    pub kind: i16,
    /// `ut_pid`.
    pub pid: i32,
    /// `ut_line`.
    pub line: &'static str,
    /// `ut_user`.
    pub user: &'static str,
    /// `ut_host`.
    pub host: &'static str,
    /// `ut_tv.tv_sec`.
    pub tv_sec: i32,
    /// `ut_tv.tv_usec`.
    pub tv_usec: i32,
}

/// The logins in the image: two users logged in (alice twice), plus records guest-get-users
/// must skip (boot time, a login prompt, a logged-out user).
pub const UTMP: &[UtmpRecord] = &[
    UtmpRecord {
        kind: 2,
        pid: 0,
        line: "~",
        user: "reboot",
        host: "6.1",
        tv_sec: 1_700_000_000,
        tv_usec: 0,
    },
    UtmpRecord {
        kind: 6,
        pid: 101,
        line: "tty1",
        user: "LOGIN",
        host: "",
        tv_sec: 1_700_000_010,
        tv_usec: 0,
    },
    UtmpRecord {
        kind: 7,
        pid: 201,
        line: "pts/0",
        user: "alice",
        host: "10.0.2.2",
        tv_sec: 1_700_000_100,
        tv_usec: 250_000,
    },
    UtmpRecord {
        kind: 7,
        pid: 202,
        line: "pts/1",
        user: "bob",
        host: "10.0.2.2",
        tv_sec: 1_700_000_200,
        tv_usec: 500_000,
    },
    UtmpRecord {
        kind: 7,
        pid: 203,
        line: "pts/2",
        user: "alice",
        host: "",
        tv_sec: 1_700_000_050,
        tv_usec: 125_000,
    },
    UtmpRecord {
        kind: 8,
        pid: 204,
        line: "pts/3",
        user: "carol",
        host: "",
        tv_sec: 1_700_000_300,
        tv_usec: 0,
    },
];

/// The users guest-get-users must report, sorted by name: each USER_PROCESS user once, with
/// the earliest login time.
pub fn expected_users() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for r in UTMP.iter().filter(|r| r.kind == 7) {
        let t = f64::from(r.tv_sec) + f64::from(r.tv_usec) / 1e6;
        match out.iter_mut().find(|(u, _)| u == r.user) {
            Some((_, old)) => *old = old.min(t),
            None => out.push((r.user.to_string(), t)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The 384-byte glibc x86_64 `struct utmp` records.
pub fn utmp_bytes(records: &[UtmpRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let mut rec = [0u8; 384];
        rec[0..2].copy_from_slice(&r.kind.to_ne_bytes());
        rec[4..8].copy_from_slice(&r.pid.to_ne_bytes());
        put_str(&mut rec[8..40], r.line);
        let id = r.line.rsplit('/').next().unwrap_or("");
        put_str(&mut rec[40..44], id);
        put_str(&mut rec[44..76], r.user);
        put_str(&mut rec[76..332], r.host);
        rec[336..340].copy_from_slice(&r.pid.to_ne_bytes());
        rec[340..344].copy_from_slice(&r.tv_sec.to_ne_bytes());
        rec[344..348].copy_from_slice(&r.tv_usec.to_ne_bytes());
        out.extend_from_slice(&rec);
    }
    out
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// A TZif (version 2) file for a zone with one fixed offset: no transitions, one local time
/// type, and the POSIX TZ string as footer. glibc and GLib both read it as `/etc/localtime`,
/// so the image needs no tzdata.
pub fn tzif(abbr: &str, offset: i32, posix: &str) -> Vec<u8> {
    let mut chars = abbr.as_bytes().to_vec();
    chars.push(0);
    let charcnt = u32::try_from(chars.len()).unwrap_or(0);
    let block = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"TZif2");
        out.extend_from_slice(&[0u8; 15]);
        // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        for n in [0u32, 0, 0, 0, 1, charcnt] {
            out.extend_from_slice(&n.to_be_bytes());
        }
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&[0, 0]); // isdst, abbreviation index
        out.extend_from_slice(&chars);
    };
    let mut out = Vec::new();
    block(&mut out); // version 1 data (32-bit times: there are none)
    block(&mut out); // version 2 data (64-bit times: there are none)
    out.extend_from_slice(format!("\n{posix}\n").as_bytes());
    out
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001:Bob:/home/bob:/bin/sh
carol:x:1002:1002:Carol:/home/carol:/bin/sh
";
const SHADOW: &str = "root:*:19700:0:99999:7:::
daemon:*:19700:0:99999:7:::
alice:!:19700:0:99999:7:::
bob:!:19700:0:99999:7:::
carol:!:19700:0:99999:7:::
";
const GROUP: &str = "root:x:0:
daemon:x:1:
alice:x:1000:
bob:x:1001:
carol:x:1002:
";

const INITTAB: &str = "::sysinit:/etc/init.d/rcS
::respawn:/usr/libexec/qga/respawn
::respawn:/usr/libexec/qga/respawn -m isa-serial -p /dev/ttyS1 -t /run/qga-isa
hvc0::respawn:/bin/sh
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
";

/// Runs the agent (respawned by init); logs how it ended on the console, and pauses a
/// little so a failing agent does not spin.
const RESPAWN: &str = "#!/bin/sh
/usr/bin/qemu-ga \"$@\"
echo \"qga-vm: qemu-ga $* exited with status $?\" >/dev/console
sleep 0.2
";

/// qemu-ga runs `/sbin/shutdown -h -P|-r|-H +0 MESSAGE`; busybox has no shutdown applet.
const SHUTDOWN: &str = "#!/bin/sh
for a in \"$@\"; do
  case \"$a\" in
    -r) exec reboot ;;
    -H) exec halt ;;
  esac
done
exec poweroff
";

/// busybox has no chpasswd, which qemu-ga's guest-set-user-password runs: a minimal one
/// (`user:password` lines on standard input; `-e`: the password is already hashed).
const CHPASSWD: &str = r#"#!/bin/sh
enc=0
[ "$1" = "-e" ] && enc=1
while IFS=: read -r user pass; do
  [ -n "$user" ] || continue
  grep -q "^$user:" /etc/shadow || { echo "chpasswd: unknown user $user" >&2; exit 1; }
  [ $enc = 1 ] || pass=$(mkpasswd -m sha512 "$pass") || exit 1
  sed -i "s|^$user:[^:]*:|$user:$pass:|" /etc/shadow
done
"#;

/// The fsfreeze hook: logs each call so a test can read the log in the guest.
/// While `/run/fsfreeze-hook.fail` exists it prints a line and fails.
const FSFREEZE_HOOK: &str = "#!/bin/sh
echo \"$(date +%s) $1\" >>/run/fsfreeze-hook.log
if [ -e /run/fsfreeze-hook.fail ]; then echo \"hook refuses $1\"; exit 3; fi
exit 0
";

const RCS: &str = r#"#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
dmesg -n 1
cmdline=" $(cat /proc/cmdline) "
# A hard bound on the guest's life, whatever happens on the host.
life=$(echo "$cmdline" | sed -n 's/.* qga.lifetime=\([0-9]*\) .*/\1/p')
if [ -n "$life" ]; then
  (sleep "$life"; echo "qga-vm: lifetime of ${life}s over, powering off" >/dev/console; echo o >/proc/sysrq-trigger) &
fi
while read -r m; do
  insmod "/lib/modules/qga/$m.ko" || echo "qga-vm: insmod $m failed"
done </etc/qga-vmtest/modules
hostname -F /etc/hostname
# /dev/virtio-ports/<name> links (there is no udev).
mkdir -p /dev/virtio-ports
i=0
while [ $i -lt 100 ]; do
  for p in /sys/class/virtio-ports/vport*; do
    [ -e "$p/name" ] || continue
    n=$(cat "$p/name")
    [ -n "$n" ] && ln -sf "../${p##*/}" "/dev/virtio-ports/$n"
  done
  [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ] && break
  sleep 0.1
  i=$((i + 1))
done
[ -e /dev/virtio-ports/org.qemu.guest_agent.0 ] || echo "qga-vm: no agent port"
# The data disk (ext4 on virtio-blk).
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /mnt/data
mount -t ext4 /dev/vda /mnt/data || echo "qga-vm: no data disk"
# Networking: QEMU user mode (restrict=on), static addresses.
ip link set lo up
if ip link set eth0 up; then
  ip addr add 10.0.2.15/24 dev eth0
  ip route add default via 10.0.2.2
fi
case "$cmdline" in
  *" qga.agent=reference "*) agent=reference ;;
  *) agent=ours ;;
esac
ln -sf /usr/libexec/qga/qemu-ga.$agent /usr/bin/qemu-ga
# Our agent's opt-in modes under test (docs/extensions.md); the reference has none.
if [ $agent = ours ]; then
  mkdir -p /etc/qemu
  printf '[general]\nhotplug-online=true\n' >/etc/qemu/qemu-ga.conf
fi
mkdir -p /run/qga-isa
# The storage boot (vmtests/src/storage_buses.rs): both agents run the fsfreeze hook.
case "$cmdline" in
  *" qga.storage=1 "*)
    printf '[general]\nfsfreeze-hook=/etc/qemu/fsfreeze-hook\n' >/etc/qemu/qemu-ga.conf
    # ours keeps hotplug-online: the hotplug row runs in this boot (no S3 follows)
    if [ $agent = ours ]; then echo hotplug-online=true >>/etc/qemu/qemu-ga.conf; fi ;;
esac
echo "qga-vm: sysinit done (agent $agent)" >/dev/console
"#;

/// The built image.
#[derive(Debug, Clone)]
pub struct Image {
    /// The kernel (`vmlinuz-*`).
    pub kernel: PathBuf,
    /// The initramfs (cpio newc, gzip).
    pub initrd: PathBuf,
    /// The kernel's release (`uname -r` in the guest).
    pub kernel_release: String,
    /// Whether the reference agent is in the image.
    pub has_reference: bool,
}

/// Finds `boot/vmlinuz-<release>` in the unpacked kernel package.
fn find_kernel(dir: &Path) -> Result<(PathBuf, String), Error> {
    let boot = dir.join("boot");
    for e in std::fs::read_dir(&boot).map_err(|e| Error::io(&boot, &e))? {
        let e = e.map_err(|e| Error::io(&boot, &e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            return Ok((e.path(), release.to_string()));
        }
    }
    Err(Error::msg(format!("no vmlinuz-* in {}", boot.display())))
}

/// The shared libraries and loader of a dynamic executable, as `ldd` lists them.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = run_capture(Command::new("ldd").arg(binary))?;
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out).lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.trim().split(' ').next().unwrap_or(""),
            None => line.split(' ').next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Adds a dynamic executable at `at` with the shared libraries and loader it needs.
fn add_dynamic(a: &mut Archive, at: &str, binary: &Path) -> Result<(), Error> {
    a.file(at, 0o755, read(binary)?);
    for lib in shared_libraries(binary)? {
        let real = std::fs::canonicalize(&lib).map_err(|e| Error::io(&lib, &e))?;
        let path = lib.to_string_lossy().into_owned();
        if !a.contains(&path) {
            a.file(&path, 0o755, read(&real)?);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::io(path, &e))
}

/// Builds the initramfs into `env.work`.
pub fn build(env: &TestEnv) -> Result<Image, Error> {
    let (kernel, release) = find_kernel(&env.kernel_dir)?;
    let moddir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| env.kernel_dir.join(d).join(&release))
        .find(|d| d.is_dir())
        .ok_or_else(|| Error::msg(format!("no modules for {release}")))?;
    let mut a = Archive::new();
    for d in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "root",
        "mnt",
        "var/log",
        "var/lib",
        "etc/qemu/fsfreeze-hook.d",
        "home/alice",
        "home/bob",
        "home/carol",
    ] {
        a.dir(d, 0o755);
    }
    a.dir("tmp", 0o1777);
    a.dir("root", 0o700);
    a.char_dev("dev/console", 0o600, 5, 1);
    a.char_dev("dev/null", 0o666, 1, 3);
    a.symlink("var/run", "../run");

    // busybox and its applets
    a.file("bin/busybox", 0o755, read(&env.busybox)?);
    let list = run_capture(Command::new(&env.busybox).arg("--list-full"))?;
    for applet in String::from_utf8_lossy(&list).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" || a.contains(applet) {
            continue;
        }
        a.symlink(applet, "/bin/busybox");
    }
    a.symlink("init", "/bin/busybox");

    // kernel modules, in load order
    let modules = kmod::resolve(&moddir, MODULE_ROOTS, OPTIONAL_MODULE_ROOTS)?;
    let mut order = String::new();
    for m in &modules {
        a.file(
            &format!("lib/modules/qga/{}.ko", m.name),
            0o644,
            m.data.clone(),
        );
        order.push_str(&m.name);
        order.push('\n');
    }
    a.file("etc/qga-vmtest/modules", 0o644, order);

    // init and the guest's configuration
    a.file("etc/inittab", 0o644, INITTAB);
    a.file("etc/init.d/rcS", 0o755, RCS);
    a.file("etc/hostname", 0o644, format!("{HOSTNAME}\n"));
    a.file(
        "etc/hosts",
        0o644,
        format!("127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n"),
    );
    a.file("etc/os-release", 0o644, OS_RELEASE);
    a.file("etc/passwd", 0o644, PASSWD);
    a.file("etc/shadow", 0o640, SHADOW);
    a.file("etc/group", 0o644, GROUP);
    let offset = i32::try_from(TZ_OFFSET).unwrap_or(0);
    // As Debian lays it out: a zone file, /etc/localtime linking to it, and /etc/timezone
    // naming it (GLib, hence qemu-ga, needs the link or the name to read /etc/localtime).
    a.file(
        &format!("usr/share/zoneinfo/{TZ_NAME}"),
        0o644,
        tzif(TZ_ABBR, offset, TZ_POSIX),
    );
    a.symlink("etc/localtime", &format!("/usr/share/zoneinfo/{TZ_NAME}"));
    a.file("etc/timezone", 0o644, format!("{TZ_NAME}\n"));
    // The RTC keeps UTC, as on Debian; BusyBox hwclock (which qemu-ga runs) assumes local
    // time without this line.
    a.file("etc/adjtime", 0o644, "0.0 0 0.0\n0\nUTC\n");
    a.file("etc/qemu/fsfreeze-hook", 0o755, FSFREEZE_HOOK);
    a.file("sbin/shutdown", 0o755, SHUTDOWN);
    a.file("usr/sbin/chpasswd", 0o755, CHPASSWD);
    a.file("run/utmp", 0o664, utmp_bytes(UTMP));

    // the agents
    a.file("usr/libexec/qga/respawn", 0o755, RESPAWN);
    a.file("usr/libexec/qga/qemu-ga.ours", 0o755, read(&env.agent)?);
    // Our client, for the checks that need clients inside the guest (several-clients).
    if let Some(client) = &env.client {
        a.file("usr/bin/qga", 0o755, read(client)?);
    }
    let has_reference = match &env.ref_agent {
        Some(reference) => {
            add_dynamic(&mut a, "usr/libexec/qga/qemu-ga.reference", reference)?;
            true
        }
        None => false,
    };

    // dmsetup for the storage boot's device-mapper disk, when the host has it.
    let dmsetup = Path::new("/usr/sbin/dmsetup");
    if dmsetup.exists() {
        add_dynamic(&mut a, "usr/sbin/dmsetup", dmsetup)?;
    }

    let cpio = a.to_bytes();
    std::fs::create_dir_all(&env.work).map_err(|e| Error::io(&env.work, &e))?;
    let initrd = env.work.join("initramfs.cpio.gz");
    let raw = env.work.join("initramfs.cpio");
    std::fs::write(&raw, &cpio).map_err(|e| Error::io(&raw, &e))?;
    let gz = run_capture(Command::new("gzip").args(["-n", "-1", "-c"]).arg(&raw))?;
    std::fs::write(&initrd, gz).map_err(|e| Error::io(&initrd, &e))?;
    let _ = std::fs::remove_file(&raw);
    Ok(Image {
        kernel,
        initrd,
        kernel_release: release,
        has_reference,
    })
}

/// Makes a fresh 64 MiB sparse ext4 data disk.
pub fn make_data_disk(path: &Path) -> Result<(), Error> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, &e))?;
    f.set_len(64 << 20).map_err(|e| Error::io(path, &e))?;
    drop(f);
    run_capture(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "qgadata", "-E", "nodiscard"])
            .arg(path),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_expected_users_earliest_login() {
        let users = expected_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0], ("alice".to_string(), 1_700_000_050.125));
        assert_eq!(users[1], ("bob".to_string(), 1_700_000_200.5));
    }

    #[test]
    fn test_utmp_record_size_and_fields() {
        let b = utmp_bytes(UTMP);
        assert_eq!(b.len(), 384 * UTMP.len());
        let rec = &b[384 * 2..384 * 3];
        assert_eq!(i16::from_ne_bytes([rec[0], rec[1]]), 7);
        assert_eq!(&rec[44..49], b"alice");
        assert_eq!(
            i32::from_ne_bytes(rec[340..344].try_into().unwrap()),
            1_700_000_100
        );
    }

    #[test]
    fn test_tzif_layout() {
        let t = tzif("IST", 19800, "IST-5:30");
        assert_eq!(&t[..5], b"TZif2");
        // header 44 + ttinfo 6 + "IST\0" 4, twice, then the footer
        assert_eq!(t.len(), 2 * (44 + 6 + 4) + "\nIST-5:30\n".len());
        assert!(t.ends_with(b"\nIST-5:30\n"));
    }
}
