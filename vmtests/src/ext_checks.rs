//! Checks of the `__org.qga_` extension commands (docs/extensions.md) in the guest, each
//! verified against the guest's own view through the control shell. Debian's qemu-ga does
//! not list these commands, so the reference skips these rows.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::checks::{expect_eq, fails, ok, sh};
use crate::suite::Ctx;

fn text(v: &Json) -> Result<String, String> {
    let s = v.as_str().ok_or_else(|| format!("not a string: {v}"))?;
    let bytes = qga_proto::b64::decode(s).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

fn start(ctx: &mut Ctx<'_>, args: &Json) -> Result<i64, String> {
    let r = ok(
        ctx,
        &json!({"execute": "__org.qga_exec", "arguments": args}),
    )?;
    r.get("pid")
        .and_then(Json::as_i64)
        .ok_or_else(|| format!("__org.qga_exec: {r}"))
}

fn output(ctx: &mut Ctx<'_>, pid: i64, out_offset: i64) -> Result<Json, String> {
    ok(
        ctx,
        &json!({"execute": "__org.qga_exec-output",
                "arguments": {"pid": pid, "out-offset": out_offset}}),
    )
}

/// Polls guest-exec-status until the exit is reported (at most `secs`).
fn collect(ctx: &mut Ctx<'_>, pid: i64, secs: u64) -> Result<Json, String> {
    crate::checks::exec_collect(ctx, pid, secs, Duration::from_millis(100))
}

/// Working directory, another user, and output read live by offset while the process runs.
pub fn check_exec_live(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let uid = sh(ctx, "grep '^alice:' /etc/passwd | cut -d: -f3")?;
    let pid = start(
        ctx,
        &json!({"path": "/bin/sh", "arg": ["-c", "pwd; id -u; sleep 3; echo done"],
                "cwd": "/tmp", "user": "alice", "capture-output": true}),
    )?;
    let want_first = format!("/tmp\n{}\n", uid.trim());
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let o = output(ctx, pid, 0)?;
        if text(&o["out-data"])? == want_first {
            break o;
        }
        if Instant::now() > deadline {
            return Err(format!("first output never seen: {o}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    expect_eq("exited while sleeping", &first["exited"], &json!(false))?;
    let offset = first["out-offset"].as_i64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let o = output(ctx, pid, offset)?;
        if o["exited"] == json!(true) {
            break o;
        }
        if Instant::now() > deadline {
            return Err(format!("not exited: {o}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if text(&last["out-data"])? != "done\n" || last["exitcode"] != json!(0) {
        return Err(format!("from offset {offset}: {last}"));
    }
    let st = collect(ctx, pid, 10)?;
    let all = text(&st["out-data"])?;
    if all != format!("{want_first}done\n") {
        return Err(format!("guest-exec-status output {all:?}"));
    }
    Ok(format!(
        "cwd /tmp, uid {} (alice), live output at offsets 0 and {offset}",
        uid.trim()
    ))
}

/// A time limit ends the process group with the chosen signal.
pub fn check_exec_timeout(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let t = Instant::now();
    let pid = start(
        ctx,
        &json!({"path": "/bin/sh", "arg": ["-c", "sleep 60 & sleep 60"],
                "timeout": 2, "kill-signal": 15}),
    )?;
    let o = loop {
        let o = output(ctx, pid, 0)?;
        if o["exited"] == json!(true) || t.elapsed() > Duration::from_secs(30) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    expect_eq("timed-out", &o["timed-out"], &json!(true))?;
    expect_eq("signal", &o["signal"], &json!(15))?;
    collect(ctx, pid, 10)?;
    // The whole group got the signal: no `sleep 60` is left.
    let left = sh(ctx, "ps | grep -c '[s]leep 60' || true")?;
    if left.trim() != "0" {
        return Err(format!("{} sleep 60 left", left.trim()));
    }
    Ok(format!("signal 15 after {:.1?}, group ended", t.elapsed()))
}

/// exit-on-main: reported as exited while a background child still holds the pipe.
pub fn check_exec_exit_on_main(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let t = Instant::now();
    let pid = start(
        ctx,
        &json!({"path": "/bin/sh", "arg": ["-c", "sleep 15 & echo started"],
                "capture-output": true, "exit-on-main": true}),
    )?;
    let st = collect(ctx, pid, 20)?;
    let took = t.elapsed();
    if took > Duration::from_secs(10) || text(&st["out-data"])? != "started\n" {
        return Err(format!("after {took:.1?}: {st}"));
    }
    Ok(format!(
        "exited reported after {took:.1?} with the pipe still held"
    ))
}

/// A signal on request, and the error for an unknown pid.
pub fn check_exec_signal(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let pid = start(ctx, &json!({"path": "/bin/sleep", "arg": ["60"]}))?;
    let alive = sh(ctx, &format!("[ -d /proc/{pid} ] && echo yes"))?;
    expect_eq("running", &json!(alive.trim()), &json!("yes"))?;
    ok(
        ctx,
        &json!({"execute": "__org.qga_exec-signal", "arguments": {"pid": pid, "signal": 15}}),
    )?;
    let st = collect(ctx, pid, 10)?;
    expect_eq("status", &st, &json!({"exited": true, "signal": 15}))?;
    let e = fails(
        ctx,
        &json!({"execute": "__org.qga_exec-signal", "arguments": {"pid": 999_999, "signal": 15}}),
    )?;
    expect_eq(
        "unknown pid",
        &json!(e),
        &json!("PID 999999 does not exist"),
    )?;
    Ok("SIGTERM delivered; unknown pid refused".into())
}

/// stat of a file and of a symbolic link, against the guest's shell.
pub fn check_file_stat(ctx: &mut Ctx<'_>) -> Result<String, String> {
    sh(ctx, "ln -sf /etc/passwd /tmp/qga-ext-link")?;
    let size = sh(ctx, "wc -c < /etc/passwd")?;
    let s = ok(
        ctx,
        &json!({"execute": "__org.qga_file-stat", "arguments": {"path": "/etc/passwd"}}),
    )?;
    let want_size: i64 = size.trim().parse().map_err(|_| format!("wc: {size}"))?;
    expect_eq(
        "stat /etc/passwd",
        &json!([
            &s["name"],
            &s["type"],
            &s["size"],
            &s["mode"],
            &s["uid"],
            &s["owner"]
        ]),
        &json!(["passwd", "file", want_size, 0o644, 0, "root"]),
    )?;
    let l = ok(
        ctx,
        &json!({"execute": "__org.qga_file-stat", "arguments": {"path": "/tmp/qga-ext-link"}}),
    )?;
    expect_eq(
        "stat of the link",
        &json!([&l["type"], &l["link-target"]]),
        &json!(["symlink", "/etc/passwd"]),
    )?;
    Ok(format!(
        "/etc/passwd {want_size} bytes 0644 root; link seen as a link"
    ))
}

/// A directory listing, against `ls -A`.
pub fn check_file_list(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let shell = sh(ctx, "ls -A /etc | sort")?;
    let want: Vec<&str> = shell.lines().collect();
    let l = ok(
        ctx,
        &json!({"execute": "__org.qga_file-list", "arguments": {"path": "/etc"}}),
    )?;
    let mut got: Vec<&str> = l
        .as_array()
        .ok_or("not a list")?
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    got.sort_unstable();
    if got != want {
        return Err(format!("{got:?}, ls says {want:?}"));
    }
    Ok(format!("{} entries of /etc as ls -A lists them", got.len()))
}

/// O_NOFOLLOW: a link is refused, the file itself opens.
pub fn check_file_open_nofollow(ctx: &mut Ctx<'_>) -> Result<String, String> {
    sh(ctx, "ln -sf /etc/passwd /tmp/qga-ext-link")?;
    let e = fails(
        ctx,
        &json!({"execute": "__org.qga_file-open-nofollow", "arguments": {"path": "/tmp/qga-ext-link"}}),
    )?;
    let want =
        "failed to open file '/tmp/qga-ext-link' (mode: 'r'): Too many levels of symbolic links";
    expect_eq("link", &json!(e), &json!(want))?;
    let h = ok(
        ctx,
        &json!({"execute": "__org.qga_file-open-nofollow", "arguments": {"path": "/etc/passwd"}}),
    )?;
    let r = ok(
        ctx,
        &json!({"execute": "guest-file-read", "arguments": {"handle": h, "count": 5}}),
    )?;
    ok(
        ctx,
        &json!({"execute": "guest-file-close", "arguments": {"handle": h}}),
    )?;
    expect_eq("read", &json!(text(&r["buf-b64"])?), &json!("root:"))?;
    Ok("link refused (ELOOP), file read".into())
}

/// The `hotplug-online` mode (the image enables it for our agent): a CPU and a DIMM added
/// with QMP `device_add` while the kernel leaves them offline come online without anyone
/// asking. The reference agent has no such mode (an expected difference).
///
/// It runs in the storage boot (tests/storage.rs), which neither suspends nor reboots: after
/// a CPU hot-add, S3 resume hangs in the firmware, whichever agent runs and whether the new
/// CPU was onlined or not. SeaBIOS's resume path (`smp_resume`) broadcasts INIT/SIPI and
/// waits without a time limit until as many CPUs check in as QEMU now reports present (one
/// more after the hot-add); it never gets there: its debug log (logs/*-firmware.log) stops
/// after "In 32bit resume", the guest's console after "CPU 2 is now offline". Seen with QEMU
/// 10.0.2, SeaBIOS 1.16.3, TCG, both agents (Debian's qemu-ga leaves the CPU offline and
/// hangs the same way). A DIMM alone resumes fine.
pub fn check_hotplug_online(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let policy = "/sys/devices/system/memory/auto_online_blocks";
    let old = sh(ctx, &format!("cat {policy}"))?;
    sh(ctx, &format!("echo offline > {policy}"))?;
    let result = plug_and_wait(ctx);
    sh(ctx, &format!("echo {} > {policy}", old.trim()))?;
    result
}

fn qmp(ctx: &mut Ctx<'_>, cmd: &Json) -> Result<Json, String> {
    let r = ctx.vm.qmp(cmd).map_err(|e| e.0)?;
    if r.get("error").is_some() {
        return Err(format!("QMP {cmd}: {r}"));
    }
    Ok(r)
}

/// Longest wait for the new CPU and blocks (ours needs ~1-4 s under TCG; the reference,
/// which never onlines them, spends all of it).
const HOTPLUG_WAIT: Duration = Duration::from_secs(12);

fn plug_and_wait(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let cpus_before = sh(ctx, "ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l")?;
    let blocks_before = sh(ctx, "ls -d /sys/devices/system/memory/memory* | sort")?;
    // A free CPU slot as QEMU describes it.
    let slots = qmp(ctx, &json!({"execute": "query-hotpluggable-cpus"}))?;
    let free = slots["return"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s.get("qom-path").is_none()))
        .cloned()
        .ok_or_else(|| format!("no free CPU slot: {slots}"))?;
    let t = crate::checks::tag(ctx);
    let mut args = free["props"].clone();
    args["driver"] = free["type"].clone();
    args["id"] = json!(format!("qgacpu-{t}"));
    qmp(ctx, &json!({"execute": "device_add", "arguments": args}))?;
    qmp(
        ctx,
        &json!({"execute": "object-add", "arguments": {"qom-type": "memory-backend-ram",
                "id": format!("qgahpmem-{t}"), "size": 134_217_728u64}}),
    )?;
    qmp(
        ctx,
        &json!({"execute": "device_add", "arguments": {"driver": "pc-dimm",
                "id": format!("qgahpdimm-{t}"), "memdev": format!("qgahpmem-{t}")}}),
    )?;
    let deadline = Instant::now() + HOTPLUG_WAIT;
    loop {
        let cpus = sh(ctx, "ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l")?;
        let new_cpu = cpus.trim().parse::<usize>().unwrap_or(0)
            > cpus_before.trim().parse::<usize>().unwrap_or(0);
        let offline_cpus = sh(
            ctx,
            "cat /sys/devices/system/cpu/cpu[0-9]*/online 2>/dev/null | grep -c '^0' || true",
        )?;
        let blocks = sh(ctx, "ls -d /sys/devices/system/memory/memory* | sort")?;
        let new_blocks: Vec<&str> = blocks
            .lines()
            .filter(|b| !blocks_before.lines().any(|o| o == *b))
            .collect();
        let mut offline_blocks = 0;
        for b in &new_blocks {
            if sh(ctx, &format!("cat {b}/state"))?.trim() != "online" {
                offline_blocks += 1;
            }
        }
        if new_cpu && offline_cpus.trim() == "0" && !new_blocks.is_empty() && offline_blocks == 0 {
            return Ok(format!(
                "cpu{} and {} memory blocks online after {:.1?}",
                cpus.trim().parse::<usize>().unwrap_or(1) - 1,
                new_blocks.len(),
                Instant::now() + HOTPLUG_WAIT - deadline
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{HOTPLUG_WAIT:?} after device_add: new cpu {new_cpu}, offline cpus {}, new blocks {}, offline {offline_blocks}",
                offline_cpus.trim(),
                new_blocks.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The guest side of [`check_several_clients`]: a second agent on a unix socket, a 10 s exec
/// on one connection in the background, pings measured on another meanwhile, a file handle
/// opened on one connection and read on another, idle pings after; one `key: value` line
/// per result.
const SEVERAL_CLIENTS: &str = r#"
d=/run/qga-multi; s=/run/qga-multi.sock
rm -rf $d $s; mkdir -p $d; : >$d/empty.conf
echo hello-from-another-connection >$d/file
QGA_CONF=$d/empty.conf qemu-ga -m unix-listen -p $s -t $d -f $d/pid -d || { echo "start: failed"; exit 1; }
i=0; while [ ! -S $s ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
q="qga -s $s --timeout 5"
up() { cut -d' ' -f1 /proc/uptime; }
echo "slow-start: $(up)"
# (the command's own time limit would be exec --timeout; none is needed here)
( qga -s $s exec -- sleep 10 >$d/slow.out 2>&1; echo "slow: exit $? at $(up)" >$d/slow.status ) &
slow=$!
sleep 1
echo "pings: $($q --json ping --count 100 2>&1 | tr -d '\n')"
if kill -0 $slow 2>/dev/null; then echo "slow-running-after-pings: yes"; else echo "slow-running-after-pings: no"; fi
h=$($q file open $d/file 2>&1)
echo "handle: $h"
case $h in
  *[!0-9]*|'') ;;
  *) echo "read: $($q file read $h 2>&1)"; $q file close $h >/dev/null 2>&1 ;;
esac
wait $slow
cat $d/slow.status
echo "slow-output: $(tr '\n' ' ' <$d/slow.out)"
echo "pings-idle: $($q --json ping --count 100 2>&1 | tr -d '\n')"
kill $(cat $d/pid) 2>/dev/null
rm -f $s
"#;

/// Several clients at once (docs/extensions.md section 1), in the guest: a second agent
/// listening on a unix socket, driven by the static `qga` client inside the guest (started
/// through guest-exec on the agent under test). While one connection runs a 10 s exec,
/// another measures 100 guest-pings; a handle opened on one connection is read on another.
/// qemu-ga serves one client at a time: the pings get no answer (an expected difference).
pub fn check_several_clients(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let st = crate::checks::exec_wait_for(
        ctx,
        &json!({"path": "/bin/sh", "arg": ["-c", SEVERAL_CLIENTS], "capture-output": true}),
        60,
    )?;
    let out = st.get("out-data").map_or(Ok(String::new()), text)?;
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
            .ok_or_else(|| format!("no `{key}` in the guest's output: {out:?}"))
    };
    let stats = |key: &str| -> Result<Json, String> {
        let v = field(key)?;
        serde_json::from_str::<Json>(v).map_err(|_| format!("{key}: {v}"))
    };
    let ms = |p: &Json, k: &str| p[k].as_f64().unwrap_or(f64::NAN) / 1000.0;
    let pings = stats("pings")?;
    if pings["count"] != json!(100) {
        return Err(format!("pings while the exec ran: {pings}"));
    }
    // Generous bounds: TCG on a shared host; a served ping takes milliseconds, a queued one
    // the rest of the exec.
    if !(ms(&pings, "p50-us") < 500.0 && ms(&pings, "max-us") < 3000.0) {
        return Err(format!("pings too slow while the exec ran: {pings}"));
    }
    expect_eq(
        "the exec still running after the pings",
        &json!(field("slow-running-after-pings")?),
        &json!("yes"),
    )?;
    let handle = field("handle")?;
    expect_eq(
        &format!("handle {handle} read on another connection"),
        &json!(field("read")?),
        &json!("hello-from-another-connection"),
    )?;
    let start: f64 = field("slow-start")?.parse().map_err(|_| out.clone())?;
    let slow = field("slow")?;
    let (status, end) = slow
        .strip_prefix("exit ")
        .and_then(|r| r.split_once(" at "))
        .ok_or_else(|| format!("slow: {slow}"))?;
    let end: f64 = end.parse().map_err(|_| format!("slow: {slow}"))?;
    if status != "0" || end - start < 10.0 {
        return Err(format!(
            "the 10 s exec: exit {status} after {:.1} s: {}",
            end - start,
            field("slow-output").unwrap_or_default()
        ));
    }
    let idle = stats("pings-idle")?;
    Ok(format!(
        "second agent on /run/qga-multi.sock; 100 pings while another connection's 10 s exec ran: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (idle after: p50 {:.2} ms, p99 {:.2} ms); handle {handle} opened on one connection, read on another; exec exit 0 after {:.1} s",
        ms(&pings, "p50-us"),
        ms(&pings, "p99-us"),
        ms(&pings, "max-us"),
        ms(&idle, "p50-us"),
        ms(&idle, "p99-us"),
        end - start
    ))
}
