//! The per-command checks of the filesystem and disk commands (guest-fsfreeze-*,
//! guest-fstrim, guest-get-fsinfo, guest-get-disks, guest-get-diskstats). Each verifies the
//! agent's answer against the guest's own view, read through the control shell (independent
//! of the agent under test): the mount table, `stat -f`, sysfs, `/proc/diskstats`, and a
//! write to the data disk that must block while it is frozen.
//!
//! Every check that freezes thaws again before it returns, whatever happened (through the
//! agent, and through the guest's `fsfreeze --unfreeze` if the agent cannot), so a failure
//! does not leave the data disk frozen for the checks after it.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::checks::{SHELL_TIMEOUT, call, ok, sh, tag};
use crate::image;
use crate::suite::Ctx;

/// Where rcS mounts the data disk (ext4 on virtio-blk, `/dev/vda`).
pub const DATA_MOUNT: &str = "/mnt/data";
/// The data disk's kernel name.
pub const DATA_DISK: &str = "vda";
/// How long a write to the frozen disk must stay blocked.
const FROZEN_WAIT: Duration = Duration::from_millis(1500);

fn cmd(name: &str) -> Json {
    json!({ "execute": name })
}

fn status(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let s = ok(ctx, &cmd("guest-fsfreeze-status"))?;
    s.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("guest-fsfreeze-status returned {s}"))
}

fn expect_status(ctx: &mut Ctx<'_>, want: &str, when: &str) -> Result<(), String> {
    let s = status(ctx)?;
    if s == want {
        Ok(())
    } else {
        Err(format!(
            "guest-fsfreeze-status {when}: {s:?}, want {want:?}"
        ))
    }
}

fn count(ctx: &mut Ctx<'_>, req: &Json) -> Result<i64, String> {
    let n = ok(ctx, req)?;
    n.as_i64()
        .ok_or_else(|| format!("{req}: returned {n}, want a count"))
}

fn thaw(ctx: &mut Ctx<'_>) -> Result<i64, String> {
    count(ctx, &cmd("guest-fsfreeze-thaw"))
}

/// Runs `body` (which freezes), then makes sure nothing stays frozen: guest-fsfreeze-thaw
/// through the agent (on a fresh connection if the body failed), and the guest's own
/// `fsfreeze --unfreeze` if the agent could not thaw.
fn with_thaw(
    ctx: &mut Ctx<'_>,
    body: fn(&mut Ctx<'_>) -> Result<String, String>,
) -> Result<String, String> {
    let r = body(ctx);
    if r.is_err() {
        ctx.drop_client();
        if thaw(ctx).is_err() {
            ctx.drop_client();
            let _ = ctx
                .vm
                .shell(&format!("fsfreeze --unfreeze {DATA_MOUNT}"), SHELL_TIMEOUT);
        }
    }
    r
}

/// The mount points of block-backed filesystems (major ≠ 0) in the guest's mount table,
/// which the agents freeze, trim and list.
fn block_mounts(ctx: &mut Ctx<'_>) -> Result<Vec<String>, String> {
    let out = sh(
        ctx,
        r#"awk '{split($3, d, ":"); if (d[1] != 0) print $5}' /proc/self/mountinfo"#,
    )?;
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v.dedup();
    if !v.iter().any(|m| m == DATA_MOUNT) {
        return Err(format!(
            "the guest's mount table has no {DATA_MOUNT} (block mounts: {v:?})"
        ));
    }
    Ok(v)
}

/// The guest's uptime in seconds (`/proc/uptime`, 10 ms steps; busybox `date` has no %N).
const UPTIME: &str = "cut -d' ' -f1 /proc/uptime";

fn guest_uptime(ctx: &mut Ctx<'_>) -> Result<f64, String> {
    let out = sh(ctx, UPTIME)?;
    out.trim()
        .parse()
        .map_err(|e| format!("{UPTIME}: {out:?}: {e}"))
}

// --- freeze / thaw -------------------------------------------------------------------------

/// guest-fsfreeze-status: thawed on an agent that has not frozen anything.
pub fn check_freeze_status(ctx: &mut Ctx<'_>) -> Result<String, String> {
    expect_status(ctx, "thawed", "at start")?;
    Ok("thawed".into())
}

/// freeze → count = the block-backed mounts; status frozen; guest-get-time disabled and
/// guest-ping answered; a write to the data disk started in the guest blocks until the thaw
/// (its completion time, the guest's uptime, is after the moment just before the thaw);
/// thaw → the same count; status thawed.
pub fn check_freeze_cycle(ctx: &mut Ctx<'_>) -> Result<String, String> {
    with_thaw(ctx, freeze_cycle)
}

fn freeze_cycle(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let mounts = block_mounts(ctx)?;
    let t = tag(ctx);
    let file = format!("{DATA_MOUNT}/qga-frozen-{t}");
    let done = format!("/run/qga-frozen-{t}.done");
    sh(ctx, &format!("rm -f {file} {done}; sync"))?;
    expect_status(ctx, "thawed", "before the freeze")?;
    let n = count(ctx, &cmd("guest-fsfreeze-freeze"))?;
    if n < 1 || n != mounts.len() as i64 {
        return Err(format!(
            "guest-fsfreeze-freeze returned {n}, the guest has {} block-backed mounts {mounts:?}",
            mounts.len()
        ));
    }
    expect_status(ctx, "frozen", "after the freeze")?;
    let r = call(ctx, &cmd("guest-get-time"))?;
    let class = r.pointer("/error/class").and_then(Json::as_str);
    let desc = r.pointer("/error/desc").and_then(Json::as_str);
    if class != Some("CommandNotFound")
        || !desc.is_some_and(|d| d.starts_with("Command guest-get-time has been disabled"))
    {
        return Err(format!("guest-get-time while frozen: {r}"));
    }
    let p = call(ctx, &cmd("guest-ping"))?;
    if p != json!({"return": {}}) {
        return Err(format!("guest-ping while frozen: {p}"));
    }
    // A writer in the guest (double fork: not a job of the interactive shell).
    sh(
        ctx,
        &format!("( ( echo frozen >{file}; {UPTIME} >{done} ) & )"),
    )?;
    std::thread::sleep(FROZEN_WAIT);
    let seen = sh(ctx, &format!("cat {done} 2>/dev/null; true"))?;
    if !seen.trim().is_empty() {
        return Err(format!(
            "a write to the frozen {DATA_MOUNT} completed at uptime {} s (not blocked)",
            seen.trim()
        ));
    }
    let before_thaw = guest_uptime(ctx)?;
    let m = thaw(ctx)?;
    if m != n {
        return Err(format!("guest-fsfreeze-thaw returned {m}, the freeze {n}"));
    }
    expect_status(ctx, "thawed", "after the thaw")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let stamp = loop {
        let s = sh(ctx, &format!("cat {done} 2>/dev/null; true"))?;
        if let Ok(v) = s.trim().parse::<f64>() {
            break v;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the blocked write did not complete within 15 s of the thaw ({s:?})"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if stamp < before_thaw {
        return Err(format!(
            "the write completed at uptime {stamp} s, before the thaw request ({before_thaw} s): it was not blocked"
        ));
    }
    let content = sh(ctx, &format!("cat {file}"))?;
    if content != "frozen\n" {
        return Err(format!("{file} holds {content:?} after the thaw"));
    }
    sh(ctx, &format!("rm -f {file} {done}"))?;
    Ok(format!(
        "froze {n} ({}), frozen; get-time disabled, ping answered; a write blocked {:.1} s and completed {:.2} s after the thaw request; thawed {m}",
        mounts.join(" "),
        FROZEN_WAIT.as_secs_f64(),
        stamp - before_thaw
    ))
}

/// While frozen, guest-get-time is disabled with QEMU 10.2's text (the same text as a command
/// blocked by the configuration).
pub fn check_freeze_disabled_text(ctx: &mut Ctx<'_>) -> Result<String, String> {
    with_thaw(ctx, freeze_disabled_text)
}

fn freeze_disabled_text(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let n = count(ctx, &cmd("guest-fsfreeze-freeze"))?;
    let r = call(ctx, &cmd("guest-get-time"))?;
    let m = thaw(ctx)?;
    let want = json!({"error": {"class": "CommandNotFound",
        "desc": "Command guest-get-time has been disabled: the command is not allowed"}});
    if r != want {
        return Err(format!("guest-get-time while frozen: {r}, want {want}"));
    }
    if m != n {
        return Err(format!("thaw returned {m}, the freeze {n}"));
    }
    Ok("Command guest-get-time has been disabled: the command is not allowed".into())
}

/// freeze-list [data mount] → 1, frozen, thaw → 1; freeze-list [a directory that is not a
/// mount point] → 0 and thawed again.
pub fn check_freeze_list(ctx: &mut Ctx<'_>) -> Result<String, String> {
    with_thaw(ctx, freeze_list)
}

fn freeze_list(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let list = |m: &str| json!({"execute": "guest-fsfreeze-freeze-list", "arguments": {"mountpoints": [m]}});
    let n = count(ctx, &list(DATA_MOUNT))?;
    if n != 1 {
        return Err(format!("freeze-list [{DATA_MOUNT}] returned {n}, want 1"));
    }
    expect_status(ctx, "frozen", "after freeze-list")?;
    let m = thaw(ctx)?;
    if m != 1 {
        return Err(format!("thaw after freeze-list returned {m}, want 1"));
    }
    expect_status(ctx, "thawed", "after the thaw")?;
    // /mnt exists but is not a mount point.
    let z = count(ctx, &list("/mnt"))?;
    if z != 0 {
        return Err(format!("freeze-list [/mnt] returned {z}, want 0"));
    }
    expect_status(ctx, "thawed", "after freeze-list of an unmounted path")?;
    Ok(format!(
        "[{DATA_MOUNT}] → 1, frozen, thaw → 1; [/mnt] (not a mount point) → 0, thawed"
    ))
}

/// thaw with nothing frozen → 0, still thawed.
pub fn check_thaw_not_frozen(ctx: &mut Ctx<'_>) -> Result<String, String> {
    expect_status(ctx, "thawed", "before")?;
    let n = thaw(ctx)?;
    if n != 0 {
        return Err(format!("thaw when not frozen returned {n}, want 0"));
    }
    expect_status(ctx, "thawed", "after")?;
    Ok("thaw when not frozen → 0".into())
}

// --- fstrim --------------------------------------------------------------------------------

/// One line of the guest's `/proc/diskstats` for `dev`, as numbers (fields 4..).
fn proc_diskstats(ctx: &mut Ctx<'_>, dev: &str) -> Result<Vec<u64>, String> {
    let out = sh(ctx, "cat /proc/diskstats")?;
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(dev))
        .ok_or_else(|| format!("no {dev} in the guest's /proc/diskstats"))?;
    line.split_whitespace()
        .skip(3)
        .map(|f| {
            f.parse()
                .map_err(|e| format!("/proc/diskstats {line:?}: {e}"))
        })
        .collect()
}

fn sysfs_u64(ctx: &mut Ctx<'_>, path: &str) -> Result<u64, String> {
    let s = sh(ctx, &format!("cat {path}"))?;
    s.trim().parse().map_err(|e| format!("{path}: {s:?}: {e}"))
}

/// guest-fstrim (minimum 4096) after freeing 4 MiB on the data disk: one entry per
/// block-backed mount; for the data disk, `trimmed` > 0 and `minimum` = max(4096, the
/// discard granularity) with the guest's discard counter grown, or "trim not supported"
/// when the disk has no discard.
pub fn check_fstrim(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let mounts = block_mounts(ctx)?;
    let file = format!("{DATA_MOUNT}/qga-trim-{}", tag(ctx));
    sh(
        ctx,
        &format!(
            "dd if=/dev/zero of={file} bs=1M count=4 2>/dev/null && sync && rm {file} && sync"
        ),
    )?;
    let q = format!("/sys/block/{DATA_DISK}/queue");
    let discard_max = sysfs_u64(ctx, &format!("{q}/discard_max_bytes"))?;
    let granularity = sysfs_u64(ctx, &format!("{q}/discard_granularity"))?;
    let before = proc_diskstats(ctx, DATA_DISK)?;
    let r = ok(
        ctx,
        &json!({"execute": "guest-fstrim", "arguments": {"minimum": 4096}}),
    )?;
    let after = proc_diskstats(ctx, DATA_DISK)?;
    let paths = r
        .get("paths")
        .and_then(Json::as_array)
        .ok_or_else(|| format!("no paths: {r}"))?;
    let mut got: Vec<String> = paths
        .iter()
        .filter_map(|p| p.get("path").and_then(Json::as_str).map(str::to_string))
        .collect();
    got.sort();
    if got != mounts || paths.len() != mounts.len() {
        return Err(format!(
            "paths {got:?}, the guest's block-backed mounts are {mounts:?}: {r}"
        ));
    }
    let data = paths
        .iter()
        .find(|p| p.get("path").and_then(Json::as_str) == Some(DATA_MOUNT))
        .ok_or_else(|| format!("no {DATA_MOUNT} entry: {r}"))?;
    if discard_max == 0 {
        let want = json!({"path": DATA_MOUNT, "error": "trim not supported"});
        return if *data == want {
            Ok(format!("{DATA_MOUNT}: trim not supported (no discard)"))
        } else {
            Err(format!("{data}, want {want} (discard_max_bytes 0)"))
        };
    }
    let trimmed = data.get("trimmed").and_then(Json::as_u64);
    let minimum = data.get("minimum").and_then(Json::as_u64);
    let want_min = granularity.max(4096);
    if data.get("error").is_some() || trimmed.is_none_or(|t| t == 0) || minimum != Some(want_min) {
        return Err(format!(
            "{data}: want trimmed > 0 after freeing 4 MiB and minimum {want_min}"
        ));
    }
    // Field 15 of /proc/diskstats (index 11 here): discards completed.
    let (d0, d1) = (before.get(11), after.get(11));
    if !matches!((d0, d1), (Some(a), Some(b)) if b > a) {
        return Err(format!(
            "{data}, but the guest's discard counter for {DATA_DISK} went {d0:?} → {d1:?}"
        ));
    }
    Ok(format!(
        "paths {got:?}; {DATA_MOUNT}: trimmed {} bytes, minimum {want_min}; guest discards {} → {}",
        trimmed.unwrap_or(0),
        d0.copied().unwrap_or(0),
        d1.copied().unwrap_or(0)
    ))
}

// --- fsinfo, disks -------------------------------------------------------------------------

/// The PCI address (domain, bus, slot, function) of the data disk's controller, from the
/// guest's sysfs (`/sys/block/vda/device` → `…/0000:00:03.0/virtioN`).
fn sysfs_pci(ctx: &mut Ctx<'_>) -> Result<Json, String> {
    let path = sh(ctx, &format!("readlink -f /sys/block/{DATA_DISK}/device"))?;
    let path = path.trim();
    pci_of_path(path).ok_or_else(|| format!("no PCI address in {path:?}"))
}

/// The last PCI address (`DDDD:BB:SS.F`) in a sysfs device path, as guest-get-fsinfo's
/// `pci-controller`.
fn pci_of_path(path: &str) -> Option<Json> {
    let parse = |c: &str| -> Option<Json> {
        let (dom, rest) = c.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (slot, func) = rest.split_once('.')?;
        let h = |s: &str| i64::from_str_radix(s, 16).ok();
        Some(json!({"domain": h(dom)?, "bus": h(bus)?, "slot": h(slot)?, "function": h(func)?}))
    };
    path.split('/').rev().find_map(parse)
}

/// The disk address of the data disk, checked against sysfs: virtio, its PCI controller,
/// `/dev/vda`. The serial is checked by the `.serial` rows.
fn check_address(addr: &Json, pci: &Json) -> Result<(), String> {
    let mut wrong = Vec::new();
    if addr.get("bus-type") != Some(&json!("virtio")) {
        wrong.push("bus-type is not virtio");
    }
    if addr.get("pci-controller") != Some(pci) {
        wrong.push("pci-controller differs from sysfs");
    }
    if addr.get("dev") != Some(&json!(format!("/dev/{DATA_DISK}"))) {
        wrong.push("dev is not /dev/vda");
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {addr} (sysfs PCI {pci})", wrong.join(", ")))
    }
}

fn fsinfo_data(ctx: &mut Ctx<'_>) -> Result<(Vec<String>, Json), String> {
    let r = ok(ctx, &cmd("guest-get-fsinfo"))?;
    let list = r
        .as_array()
        .ok_or_else(|| format!("guest-get-fsinfo returned {r}"))?;
    let mut got: Vec<String> = list
        .iter()
        .filter_map(|f| {
            f.get("mountpoint")
                .and_then(Json::as_str)
                .map(str::to_string)
        })
        .collect();
    got.sort();
    let data = list
        .iter()
        .find(|f| f.get("mountpoint").and_then(Json::as_str) == Some(DATA_MOUNT))
        .cloned()
        .ok_or_else(|| format!("no {DATA_MOUNT} in {r}"))?;
    Ok((got, data))
}

/// `stat -f` of the data mount: (fundamental block size, blocks, free, available).
fn statfs(ctx: &mut Ctx<'_>) -> Result<[u64; 4], String> {
    let out = sh(ctx, &format!("stat -f -c '%S %b %f %a' {DATA_MOUNT}"))?;
    let v: Vec<u64> = out
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("stat -f: {out:?}: {e}"))?;
    <[u64; 4]>::try_from(v).map_err(|v| format!("stat -f: {v:?}"))
}

/// guest-get-fsinfo: mount points = the block-backed mounts; the data disk's entry is
/// `vda`, ext4, used and total bytes = `stat -f` in the guest, one virtio disk whose PCI
/// controller is the one in sysfs, `dev` /dev/vda.
pub fn check_fsinfo(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let mounts = block_mounts(ctx)?;
    sh(ctx, "sync")?;
    let [frsize, blocks, bfree, bavail] = statfs(ctx)?;
    let (got, data) = fsinfo_data(ctx)?;
    if got != mounts {
        return Err(format!(
            "mount points {got:?}, the guest's block-backed mounts are {mounts:?}"
        ));
    }
    let pci = sysfs_pci(ctx)?;
    let used = (blocks - bfree) * frsize;
    let total = (blocks - bfree + bavail) * frsize;
    let mut wrong = Vec::new();
    let mut expect = |member: &str, want: Json| {
        if data.get(member) != Some(&want) {
            wrong.push(format!("{member}: {:?}, want {want}", data.get(member)));
        }
    };
    expect("name", json!(DATA_DISK));
    expect("type", json!("ext4"));
    expect("used-bytes", json!(used));
    expect("total-bytes", json!(total));
    let disks = data.get("disk").and_then(Json::as_array);
    match disks.map(Vec::as_slice) {
        Some([addr]) => {
            if let Err(e) = check_address(addr, &pci) {
                wrong.push(format!("disk: {e}"));
            }
        }
        _ => wrong.push(format!("disk: {:?}, want one entry", data.get("disk"))),
    }
    if wrong.is_empty() {
        Ok(format!(
            "{DATA_MOUNT}: {DATA_DISK} ext4, used {used} of {total} bytes (= stat -f), virtio at PCI {pci}"
        ))
    } else {
        Err(format!("{}: {data}", wrong.join("; ")))
    }
}

/// guest-get-fsinfo's `total-bytes-privileged` = f_blocks × f_frsize (qemu-ga 8.2+).
pub fn check_fsinfo_privileged(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let [frsize, blocks, _, _] = statfs(ctx)?;
    let (_, data) = fsinfo_data(ctx)?;
    let want = blocks * frsize;
    match data.get("total-bytes-privileged") {
        Some(v) if v.as_u64() == Some(want) => Ok(format!("{want} bytes = stat -f")),
        Some(v) => Err(format!("total-bytes-privileged {v}, stat -f says {want}")),
        None => Err(format!("total-bytes-privileged absent: {data}")),
    }
}

fn serial_of(addr: Option<&Json>) -> Result<String, String> {
    let serial = addr.and_then(|a| a.get("serial"));
    if serial == Some(&json!(image::DATA_DISK_SERIAL)) {
        Ok(format!("serial {}", image::DATA_DISK_SERIAL))
    } else {
        Err(format!(
            "serial {serial:?}, QEMU's -device has serial={} (the guest has no udev)",
            image::DATA_DISK_SERIAL
        ))
    }
}

/// guest-get-fsinfo: the data disk's `serial` is the one QEMU was given.
pub fn check_fsinfo_serial(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let (_, data) = fsinfo_data(ctx)?;
    serial_of(data.pointer("/disk/0"))
}

fn disks(ctx: &mut Ctx<'_>) -> Result<Vec<Json>, String> {
    let r = ok(ctx, &cmd("guest-get-disks"))?;
    r.as_array()
        .cloned()
        .ok_or_else(|| format!("guest-get-disks returned {r}"))
}

fn data_disk(list: &[Json]) -> Result<&Json, String> {
    let dev = format!("/dev/{DATA_DISK}");
    list.iter()
        .find(|d| d.get("name").and_then(Json::as_str) == Some(dev.as_str()))
        .ok_or_else(|| format!("no {dev} in {}", Json::from(list.to_vec())))
}

/// guest-get-disks: the disks and partitions = `/sys/block` (partitions flagged); the data
/// disk is /dev/vda, not a partition, virtio at the PCI address sysfs has.
pub fn check_disks(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let out = sh(
        ctx,
        "for d in /sys/block/*; do n=${d##*/}; echo \"/dev/$n false\"; for p in $d/$n*; do [ -e $p/partition ] && echo \"/dev/${p##*/} true\"; done; done; true",
    )?;
    let mut want: Vec<String> = out.lines().map(str::to_string).collect();
    want.sort();
    let list = disks(ctx)?;
    let mut got: Vec<String> = list
        .iter()
        .map(|d| {
            format!(
                "{} {}",
                d.get("name").and_then(Json::as_str).unwrap_or("?"),
                d.get("partition").and_then(Json::as_bool).unwrap_or(false)
            )
        })
        .collect();
    got.sort();
    if got != want {
        return Err(format!(
            "disks {got:?}, the guest's /sys/block has {want:?}"
        ));
    }
    let pci = sysfs_pci(ctx)?;
    let vda = data_disk(&list)?;
    let addr = vda
        .get("address")
        .ok_or_else(|| format!("no address: {vda}"))?;
    check_address(addr, &pci)?;
    Ok(format!(
        "{} (= /sys/block); /dev/{DATA_DISK} virtio at PCI {pci}",
        got.join(", ")
    ))
}

/// guest-get-disks: the data disk's `serial` is the one QEMU was given.
pub fn check_disks_serial(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let list = disks(ctx)?;
    let vda = data_disk(&list)?;
    serial_of(vda.get("address"))
}

// --- diskstats -----------------------------------------------------------------------------

/// guest-get-diskstats after reading 4 MiB of the data disk past the page cache: `vda`
/// present with the major:minor of sysfs, and its read/write counters between the guest's
/// `/proc/diskstats` just before and just after the request (read-ios > 0).
pub fn check_diskstats(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let dev = sh(ctx, &format!("cat /sys/block/{DATA_DISK}/dev"))?;
    let (major, minor) = dev
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("/sys/block/{DATA_DISK}/dev: {dev:?}"))?;
    sh(
        ctx,
        &format!(
            "sync; echo 3 >/proc/sys/vm/drop_caches; dd if=/dev/{DATA_DISK} of=/dev/null bs=1M count=4 2>/dev/null"
        ),
    )?;
    let before = proc_diskstats(ctx, DATA_DISK)?;
    let r = ok(ctx, &cmd("guest-get-diskstats"))?;
    let after = proc_diskstats(ctx, DATA_DISK)?;
    let list = r
        .as_array()
        .ok_or_else(|| format!("guest-get-diskstats returned {r}"))?;
    let vda = list
        .iter()
        .find(|d| d.get("name").and_then(Json::as_str) == Some(DATA_DISK))
        .ok_or_else(|| format!("no {DATA_DISK} in {r}"))?;
    if vda.get("major").and_then(Json::as_u64) != Some(major)
        || vda.get("minor").and_then(Json::as_u64) != Some(minor)
    {
        return Err(format!("{vda}: sysfs says {major}:{minor}"));
    }
    // /proc/diskstats fields 4.. : reads, merges, sectors, ticks, writes, merges, sectors.
    let fields = [
        ("read-ios", 0),
        ("read-merges", 1),
        ("read-sectors", 2),
        ("write-ios", 4),
        ("write-merges", 5),
        ("write-sectors", 6),
    ];
    let mut wrong = Vec::new();
    for (member, i) in fields {
        let got = vda
            .pointer(&format!("/stats/{member}"))
            .and_then(Json::as_u64);
        let (lo, hi) = (before.get(i).copied(), after.get(i).copied());
        match (got, lo, hi) {
            (Some(g), Some(lo), Some(hi)) if lo <= g && g <= hi => {}
            _ => wrong.push(format!("{member} {got:?}, guest {lo:?}..{hi:?}")),
        }
    }
    let reads = vda
        .pointer("/stats/read-ios")
        .and_then(Json::as_u64)
        .unwrap_or(0);
    if reads == 0 {
        wrong.push("read-ios 0 after reading the disk".into());
    }
    if wrong.is_empty() {
        Ok(format!(
            "{DATA_DISK} {major}:{minor}: read-ios {reads}, counters within the guest's /proc/diskstats"
        ))
    } else {
        Err(format!("{}: {vda}", wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_pci_of_path() {
        assert_eq!(
            pci_of_path("/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio2"),
            Some(json!({"domain": 0, "bus": 1, "slot": 0, "function": 0}))
        );
        assert_eq!(
            pci_of_path("/sys/devices/pci0000:00/0000:00:02.0/virtio3"),
            Some(json!({"domain": 0, "bus": 0, "slot": 2, "function": 0}))
        );
        assert_eq!(pci_of_path("/sys/devices/platform/virtio-mmio.0"), None);
    }
}
