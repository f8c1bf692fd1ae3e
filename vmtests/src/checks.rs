//! The per-command checks of the file, process and system commands (guest-file-*,
//! guest-exec*, network, vCPUs, memory blocks, CPU stats, load, time, passwords, SSH keys,
//! suspend and the non-destructive part of guest-shutdown). Each verifies the agent's answer
//! against the guest's own view, read through the control shell (independent of the agent
//! under test). The destructive guest-shutdown modes are in [`final_checks`], run once at the
//! end of a guest's life.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use crate::suite::{CheckFn, CheckResult, Ctx, Outcome};
use crate::vm::{Transport, Vm};

/// Longest a command in the guest's control shell may take.
pub(crate) const SHELL_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends a request; returns the whole reply.
pub(crate) fn call(ctx: &mut Ctx<'_>, req: &Json) -> Result<Json, String> {
    let r = ctx.request(&req.to_string())?;
    crate::suite::json_of(&r)
}

/// Sends a request; returns its `return` member (an error reply is the error).
pub(crate) fn ok(ctx: &mut Ctx<'_>, req: &Json) -> Result<Json, String> {
    let j = call(ctx, req)?;
    j.get("return")
        .cloned()
        .ok_or_else(|| format!("{req}: {j}"))
}

/// Sends a request that must fail; returns the error's `desc`.
pub(crate) fn fails(ctx: &mut Ctx<'_>, req: &Json) -> Result<String, String> {
    let j = call(ctx, req)?;
    j.pointer("/error/desc")
        .and_then(Json::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("{req}: want an error, got {j}"))
}

/// Runs a command in the guest's control shell; a non-zero status is an error.
pub(crate) fn sh(ctx: &mut Ctx<'_>, cmd: &str) -> Result<String, String> {
    let (status, out) = ctx.vm.shell(cmd, SHELL_TIMEOUT).map_err(|e| e.0)?;
    if status == 0 {
        Ok(out)
    } else {
        Err(format!("guest `{cmd}` exited {status}: {}", out.trim()))
    }
}

pub(crate) fn expect_eq(what: &str, got: &Json, want: &Json) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: {got}, want {want}"))
    }
}

fn host_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn host_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// A short name of the transport, to keep files of the two runs apart.
pub(crate) fn tag(ctx: &Ctx<'_>) -> &'static str {
    match ctx.transport {
        Transport::VirtioSerial => "virtio",
        Transport::IsaSerial => "isa",
    }
}

// --- guest-file-* --------------------------------------------------------------------------

/// Deterministic, incompressible test data.
fn test_data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub(crate) fn host_sha256(data: &[u8]) -> Result<String, String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("sha256sum on the host: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(data)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string())
}

fn open(ctx: &mut Ctx<'_>, path: &str, mode: &str) -> Result<i64, String> {
    let h = ok(
        ctx,
        &json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": mode}}),
    )?;
    h.as_i64().ok_or_else(|| format!("handle {h}"))
}

fn close(ctx: &mut Ctx<'_>, h: i64) -> Result<(), String> {
    let c = ok(
        ctx,
        &json!({"execute": "guest-file-close", "arguments": {"handle": h}}),
    )?;
    expect_eq("close", &c, &json!({}))
}

/// Reads `path` in reads of `count` bytes up to `eof`; returns the bytes and the number of
/// reads (each reply's count checked against its data).
fn read_back(ctx: &mut Ctx<'_>, path: &str, count: u64) -> Result<(Vec<u8>, usize), String> {
    let h = open(ctx, path, "r")?;
    let mut back = Vec::new();
    let mut reads = 0;
    loop {
        let r = ok(
            ctx,
            &json!({"execute": "guest-file-read", "arguments": {"handle": h, "count": count}}),
        )?;
        reads += 1;
        let b = r
            .get("buf-b64")
            .and_then(Json::as_str)
            .ok_or_else(|| format!("read: {r}"))?;
        let bytes = qga_proto::b64::decode(b).map_err(|e| format!("read: {e}"))?;
        if r.get("count").and_then(Json::as_u64) != Some(bytes.len() as u64) {
            return Err(format!("read: count does not match the data: {r}"));
        }
        back.extend_from_slice(&bytes);
        if r.get("eof") == Some(&Json::Bool(true)) {
            break;
        }
        if reads > 10 {
            return Err(format!("no eof after {reads} reads ({} bytes)", back.len()));
        }
    }
    close(ctx, h)?;
    Ok((back, reads))
}

/// Writes 200 000 bytes in two writes, closes, compares the guest's `sha256sum` with the
/// host's, then reads the file back in 64 KiB reads up to `eof`, and again in one read of
/// 1 MiB, and compares the bytes.
fn file_roundtrip_at(ctx: &mut Ctx<'_>, dir: &str) -> Result<String, String> {
    let path = format!("{dir}/qga-vmtest-{}.bin", tag(ctx));
    // isa-serial runs at 115200 baud: 11 KiB/s.
    let len = match ctx.transport {
        Transport::VirtioSerial => 200_000,
        Transport::IsaSerial => 12_000,
    };
    let data = test_data(len, 0x5eed ^ dir.len() as u64);
    let h = open(ctx, &path, "w")?;
    for part in [&data[..len * 3 / 4], &data[len * 3 / 4..]] {
        let w = ok(
            ctx,
            &json!({"execute": "guest-file-write",
                    "arguments": {"handle": h, "buf-b64": qga_proto::b64::encode(part)}}),
        )?;
        expect_eq("write", &w, &json!({"count": part.len(), "eof": false}))?;
    }
    close(ctx, h)?;
    let guest = sh(ctx, &format!("sync; sha256sum {path}"))?;
    let guest = guest.split(' ').next().unwrap_or("").to_string();
    let host = host_sha256(&data)?;
    if guest != host {
        return Err(format!(
            "guest sha256 {guest}, host {host} of the data written"
        ));
    }
    let (back, reads) = read_back(ctx, &path, 65536)?;
    if back != data {
        return Err(format!(
            "read back {} bytes that differ from the {} written",
            back.len(),
            data.len()
        ));
    }
    // Once more in one read of 1 MiB: our agent splices a read of more than 64 KiB of a
    // regular file through pipes (docs/performance.md).
    let (whole, one) = read_back(ctx, &path, 1 << 20)?;
    if whole != data || one != 1 {
        return Err(format!(
            "one read of 1 MiB gave {} bytes in {one} reads, differing from the {} written",
            whole.len(),
            data.len()
        ));
    }
    sh(ctx, &format!("rm -f {path}"))?;
    Ok(format!(
        "{path}: {len} bytes in 2 writes, sha256 {}… in the guest = host, read back whole in {reads} reads of 64 KiB and in one of 1 MiB",
        &host[..12.min(host.len())]
    ))
}

/// Runs `f` on the client with every reply due within `limit`, then puts the usual reply
/// timeout back; after a failure it resynchronises, since the raw requests of the checks do
/// not by themselves (the resynchronisation is new input, which also frees a reply an agent
/// held back).
fn with_reply_limit<T>(
    ctx: &mut Ctx<'_>,
    limit: Duration,
    f: impl FnOnce(
        &mut qga_client::Client<std::os::unix::net::UnixStream>,
    ) -> Result<T, qga_client::ClientError>,
) -> Result<Result<T, qga_client::ClientError>, String> {
    let c = ctx.client()?;
    c.set_timeout(Some(limit)).map_err(|e| e.to_string())?;
    let r = f(c);
    let _ = c.set_timeout(Some(crate::suite::REPLY_TIMEOUT));
    if r.is_err() {
        let _ = c.sync();
    }
    Ok(r)
}

/// A file written and read back with four requests in flight (`qga_client::FileWriter` and
/// `FileReader`, what `qga cp` uses with our agent): 2 MiB in 64 KiB writes, checked with the
/// guest's `sha256sum`, then read back in 64 KiB reads. Every reply must come within 10 s.
/// qemu-ga over virtio-serial leaves the last of several pipelined requests unanswered until
/// more input arrives (docs/compat.md); the next request (a resynchronisation) frees it.
pub fn check_pipelined_transfer(ctx: &mut Ctx<'_>) -> Result<String, String> {
    const LEN: usize = 2 << 20;
    const PIECE: usize = 64 << 10;
    const LIMIT: Duration = Duration::from_secs(10);
    let path = format!("/tmp/qga-vmtest-pipelined-{}.bin", tag(ctx));
    let data = test_data(LEN, 0x91fe);
    let h = open(ctx, &path, "w")?;
    let written = with_reply_limit(ctx, LIMIT, |c| {
        let mut w = c.file_writer(h, 4)?;
        for piece in data.chunks(PIECE) {
            w.write(piece)?;
        }
        w.finish()
    })?;
    match written {
        Ok(n) if n == LEN as u64 => {}
        Ok(n) => return Err(format!("{n} of {LEN} bytes acknowledged")),
        Err(e) => {
            let _ = close(ctx, h);
            return Err(format!(
                "{} writes of 64 KiB, 4 in flight: {e} (no reply within 10 s)",
                LEN / PIECE
            ));
        }
    }
    close(ctx, h)?;
    let guest = sh(ctx, &format!("sha256sum {path}"))?;
    let host = host_sha256(&data)?;
    if guest.split(' ').next() != Some(host.as_str()) {
        return Err(format!("guest sha256 {guest}, host {host}"));
    }
    let h = open(ctx, &path, "r")?;
    let back = with_reply_limit(ctx, LIMIT, |c| {
        let mut back = Vec::with_capacity(LEN);
        let mut r = c.file_reader(h, PIECE as i64, 4)?;
        while let Some(chunk) = r.next_chunk()? {
            back.extend_from_slice(&chunk);
        }
        Ok(back)
    })?;
    let closed = close(ctx, h);
    let back = back.map_err(|e| format!("reads of 64 KiB, 4 in flight: {e}"))?;
    closed?;
    sh(ctx, &format!("rm -f {path}"))?;
    if back != data {
        return Err(format!("read back {} bytes that differ", back.len()));
    }
    Ok(format!(
        "{LEN} bytes in {} writes and {} reads of 64 KiB, 4 in flight; sha256 in the guest = host",
        LEN / PIECE,
        LEN / PIECE + 1
    ))
}

/// The round trip on the ext4 data disk (virtio-blk).
pub fn check_file_data_disk(ctx: &mut Ctx<'_>) -> Result<String, String> {
    file_roundtrip_at(ctx, "/mnt/data")
}

/// The round trip in /tmp (tmpfs).
pub fn check_file_tmp(ctx: &mut Ctx<'_>) -> Result<String, String> {
    file_roundtrip_at(ctx, "/tmp")
}

/// count 0 reads nothing (eof false); reading the whole file sets eof; a read at the end
/// returns 0 bytes with eof; a closed handle is not found.
pub fn check_file_count0_eof(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let path = format!("/tmp/qga-eof-{}.txt", tag(ctx));
    sh(ctx, &format!("printf abc > {path}"))?;
    let h = open(ctx, &path, "r")?;
    let read = |ctx: &mut Ctx<'_>, n: u64| {
        ok(
            ctx,
            &json!({"execute": "guest-file-read", "arguments": {"handle": h, "count": n}}),
        )
    };
    let r = read(ctx, 0)?;
    expect_eq(
        "read 0",
        &r,
        &json!({"count": 0, "buf-b64": "", "eof": false}),
    )?;
    let r = read(ctx, 100)?;
    expect_eq(
        "read 100",
        &r,
        &json!({"count": 3, "buf-b64": "YWJj", "eof": true}),
    )?;
    let r = read(ctx, 100)?;
    expect_eq(
        "read at the end",
        &r,
        &json!({"count": 0, "buf-b64": "", "eof": true}),
    )?;
    close(ctx, h)?;
    let e = fails(
        ctx,
        &json!({"execute": "guest-file-read", "arguments": {"handle": h, "count": 1}}),
    )?;
    let want = format!("handle '{h}' has not been found");
    if e != want {
        return Err(format!("read after close: {e:?}, want {want:?}"));
    }
    Ok("count 0 → 0 bytes, eof false; whole file → eof; at the end → 0 bytes, eof; closed handle not found".into())
}

/// Opening a missing file: qemu-ga's exact text.
pub fn check_file_open_missing(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let e = fails(
        ctx,
        &json!({"execute": "guest-file-open", "arguments": {"path": "/nonexistent/qga", "mode": "r"}}),
    )?;
    let want = "failed to open file '/nonexistent/qga' (mode: 'r'): No such file or directory";
    if e == want {
        Ok(e)
    } else {
        Err(format!("{e:?}, want {want:?}"))
    }
}

/// Starts a process that kills the agent serving this transport (its parent), then waits
/// until the respawned agent answers 0xFF + sync on the same host connection.
fn restart_agent_via_exec(ctx: &mut Ctx<'_>) -> Result<Duration, String> {
    let r = ok(
        ctx,
        &json!({"execute": "guest-exec",
                "arguments": {"path": "/bin/sh", "arg": ["-c", "sleep 0.3; kill -TERM $PPID"]}}),
    )?;
    if r.get("pid").and_then(Json::as_i64).is_none() {
        return Err(format!("guest-exec: {r}"));
    }
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let c = ctx.client()?;
    crate::vm::sync_retry(c, Duration::from_secs(30)).map_err(|e| format!("after kill: {e}"))?;
    Ok(t.elapsed())
}

/// Handles stay unique across an agent restart (guest-exec `kill` of the agent; busybox init
/// respawns it).
pub fn check_file_handles_after_restart(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let path = format!("/tmp/qga-handles-{}.txt", tag(ctx));
    let h1 = open(ctx, &path, "w")?;
    let h2 = open(ctx, &path, "r")?;
    close(ctx, h1)?;
    close(ctx, h2)?;
    let took = restart_agent_via_exec(ctx)?;
    let h3 = open(ctx, &path, "r")?;
    close(ctx, h3)?;
    if h3 <= h1.max(h2) {
        return Err(format!(
            "handles {h1}, {h2} before the restart, {h3} after: reused"
        ));
    }
    Ok(format!(
        "handles {h1}, {h2} before, {h3} after the agent was killed and respawned ({took:.1?})"
    ))
}

// --- guest-exec ----------------------------------------------------------------------------

/// guest-exec, then guest-exec-status until it exits; returns the final status.
fn exec_wait(ctx: &mut Ctx<'_>, args: &Json) -> Result<Json, String> {
    exec_wait_for(ctx, args, 20)
}

/// [`exec_wait`] with a time limit of `secs` seconds.
pub(crate) fn exec_wait_for(ctx: &mut Ctx<'_>, args: &Json, secs: u64) -> Result<Json, String> {
    let r = ok(ctx, &json!({"execute": "guest-exec", "arguments": args}))?;
    let pid = r
        .get("pid")
        .and_then(Json::as_i64)
        .ok_or_else(|| format!("guest-exec: {r}"))?;
    exec_collect(ctx, pid, secs, Duration::from_millis(50))
}

/// Polls guest-exec-status every `every` until the exit is reported (at most `secs`).
pub(crate) fn exec_collect(
    ctx: &mut Ctx<'_>,
    pid: i64,
    secs: u64,
    every: Duration,
) -> Result<Json, String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let st = ok(
            ctx,
            &json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}),
        )?;
        if st.get("exited") == Some(&Json::Bool(true)) {
            return Ok(st);
        }
        if Instant::now() > deadline {
            return Err(format!("pid {pid} not exited after {secs} s: {st}"));
        }
        std::thread::sleep(every);
    }
}

/// The capture modes of qemu-ga 8.0+: separated (= true), stdout, stderr, merged, none.
pub fn check_exec_capture_modes(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let script = "echo out; echo err >&2; exit 4";
    let o = "b3V0Cg=="; // "out\n"
    let e = "ZXJyCg=="; // "err\n"
    let cases = [
        (
            json!(true),
            json!({"exited": true, "exitcode": 4, "out-data": o, "err-data": e, "out-truncated": false, "err-truncated": false}),
        ),
        (
            json!("separated"),
            json!({"exited": true, "exitcode": 4, "out-data": o, "err-data": e, "out-truncated": false, "err-truncated": false}),
        ),
        (
            json!("stdout"),
            json!({"exited": true, "exitcode": 4, "out-data": o, "out-truncated": false}),
        ),
        (
            json!("stderr"),
            json!({"exited": true, "exitcode": 4, "err-data": e, "err-truncated": false}),
        ),
        (json!("none"), json!({"exited": true, "exitcode": 4})),
        (json!(false), json!({"exited": true, "exitcode": 4})),
    ];
    for (mode, want) in cases {
        let st = exec_wait(
            ctx,
            &json!({"path": "/bin/sh", "arg": ["-c", script], "capture-output": mode}),
        )?;
        expect_eq(&format!("capture-output {mode}"), &st, &want)?;
    }
    // merged: both streams in out-data, in the order written.
    let st = exec_wait(
        ctx,
        &json!({"path": "/bin/sh", "arg": ["-c", "echo one; echo two >&2; echo three"], "capture-output": "merged"}),
    )?;
    let out = st
        .get("out-data")
        .and_then(Json::as_str)
        .and_then(|b| qga_proto::b64::decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if out.as_deref() != Some("one\ntwo\nthree\n") || st.get("err-data").is_some() {
        return Err(format!("capture-output merged: {st}"));
    }
    Ok("true, separated, stdout, stderr, none, false, merged".into())
}

/// input-data reaches the process's standard input (`cat` echoes it).
pub fn check_exec_input_data(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let data = test_data(3000, 7);
    let b64 = qga_proto::b64::encode(&data);
    let st = exec_wait(
        ctx,
        &json!({"path": "/bin/cat", "input-data": b64, "capture-output": true}),
    )?;
    expect_eq(
        "cat",
        &st,
        &json!({"exited": true, "exitcode": 0, "out-data": b64, "out-truncated": false}),
    )?;
    Ok("3000 bytes through cat".into())
}

/// `env` replaces the environment: the process sees exactly the variables given.
pub fn check_exec_env(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let st = exec_wait(
        ctx,
        &json!({"path": "/usr/bin/env", "env": ["FOO=bar", "QGA_VM=1"], "capture-output": true}),
    )?;
    let out = st
        .get("out-data")
        .and_then(Json::as_str)
        .and_then(|b| qga_proto::b64::decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    if lines == ["FOO=bar", "QGA_VM=1"] && st.get("exitcode") == Some(&json!(0)) {
        Ok("environment is exactly FOO=bar QGA_VM=1".into())
    } else {
        Err(format!("env printed {out:?}: {st}"))
    }
}

/// A process killed by a signal: `signal` instead of `exitcode`.
pub fn check_exec_signal(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let st = exec_wait(
        ctx,
        &json!({"path": "/bin/sh", "arg": ["-c", "kill -9 $$"]}),
    )?;
    expect_eq("status", &st, &json!({"exited": true, "signal": 9}))?;
    let st = exec_wait(ctx, &json!({"path": "/bin/sh", "arg": ["-c", "exit 255"]}))?;
    expect_eq("status", &st, &json!({"exited": true, "exitcode": 255}))?;
    Ok("kill -9 $$ → signal 9; exit 255 → exitcode 255".into())
}

/// A missing binary: GLib's text.
pub fn check_exec_missing(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let e = fails(
        ctx,
        &json!({"execute": "guest-exec", "arguments": {"path": "/nonexistent/bin"}}),
    )?;
    let want = "Failed to execute child process \u{201c}/nonexistent/bin\u{201d} (No such file or directory)";
    if e == want {
        Ok(e)
    } else {
        Err(format!("{e:?}, want {want:?}"))
    }
}

/// An unknown pid.
pub fn check_exec_status_unknown(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let e = fails(
        ctx,
        &json!({"execute": "guest-exec-status", "arguments": {"pid": 999_999}}),
    )?;
    if e == "PID 999999 does not exist" {
        Ok(e)
    } else {
        Err(format!("{e:?}"))
    }
}

// --- network -------------------------------------------------------------------------------

/// The NIC's MAC on QEMU's command line (vm.rs) and in the libvirt domain.
pub const GUEST_MAC: &str = "52:54:00:71:67:61";

pub fn check_network_interfaces(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let ifs = ok(ctx, &json!({"execute": "guest-network-get-interfaces"}))?;
    let ifs = ifs.as_array().ok_or("not a list")?.clone();
    let ipv6_lo = sh(ctx, "cat /proc/net/if_inet6 2>/dev/null")?
        .lines()
        .any(|l| l.trim_end().ends_with(" lo"));
    let names = sh(ctx, "ls /sys/class/net")?;
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort_unstable();
    let mut got: Vec<&str> = ifs
        .iter()
        .filter_map(|i| i.get("name").and_then(Json::as_str))
        .collect();
    got.sort_unstable();
    if got != names {
        return Err(format!("interfaces {got:?}, /sys/class/net has {names:?}"));
    }
    let find = |n: &str| ifs.iter().find(|i| i.get("name") == Some(&json!(n)));
    let addrs = |i: &Json| -> Vec<(String, String, i64)> {
        i.get("ip-addresses")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x.get("ip-address-type")
                                .and_then(Json::as_str)
                                .unwrap_or("")
                                .to_string(),
                            x.get("ip-address")
                                .and_then(Json::as_str)
                                .unwrap_or("")
                                .to_string(),
                            x.get("prefix").and_then(Json::as_i64).unwrap_or(-1),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let lo = find("lo").ok_or("no lo")?;
    if lo.get("hardware-address") != Some(&json!("00:00:00:00:00:00")) {
        return Err(format!("lo: {lo}"));
    }
    let mut want_lo = vec![("ipv4".to_string(), "127.0.0.1".to_string(), 8)];
    if ipv6_lo {
        want_lo.push(("ipv6".to_string(), "::1".to_string(), 128));
    }
    let mut lo_addrs = addrs(lo);
    lo_addrs.sort();
    want_lo.sort();
    if lo_addrs != want_lo {
        return Err(format!("lo addresses {lo_addrs:?}, want {want_lo:?}"));
    }
    let eth = find("eth0").ok_or("no eth0")?;
    if eth.get("hardware-address") != Some(&json!(GUEST_MAC)) {
        return Err(format!("eth0 MAC: {eth}"));
    }
    if !addrs(eth).contains(&("ipv4".to_string(), "10.0.2.15".to_string(), 24)) {
        return Err(format!("eth0 lacks 10.0.2.15/24: {eth}"));
    }
    let stat_keys = [
        "rx-bytes",
        "rx-packets",
        "rx-errs",
        "rx-dropped",
        "tx-bytes",
        "tx-packets",
        "tx-errs",
        "tx-dropped",
    ];
    for i in &ifs {
        let s = i
            .get("statistics")
            .ok_or_else(|| format!("no statistics: {i}"))?;
        if let Some(k) = stat_keys
            .iter()
            .find(|k| s.get(**k).and_then(Json::as_u64).is_none())
        {
            return Err(format!("statistics lack {k}: {i}"));
        }
    }
    let tx: u64 = sh(ctx, "cat /sys/class/net/eth0/statistics/tx_packets")?
        .trim()
        .parse()
        .map_err(|e| format!("tx_packets: {e}"))?;
    let reported = eth
        .pointer("/statistics/tx-packets")
        .and_then(Json::as_u64)
        .unwrap_or(u64::MAX);
    if reported > tx {
        return Err(format!(
            "eth0 tx-packets {reported} > the kernel's {tx} read later"
        ));
    }
    Ok(format!(
        "{} interfaces; lo 00:..:00 127.0.0.1/8{}; eth0 {GUEST_MAC} 10.0.2.15/24; statistics present",
        ifs.len(),
        if ipv6_lo { " ::1/128" } else { "" }
    ))
}

fn hex_ip(h: &str) -> Option<String> {
    let v = u32::from_str_radix(h, 16).ok()?;
    Some(std::net::Ipv4Addr::from(v.swap_bytes()).to_string())
}

/// The IPv4 routes equal /proc/net/route; the IPv6 ones are those of /proc/net/ipv6_route.
pub fn check_network_route(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let routes = ok(ctx, &json!({"execute": "guest-network-get-route"}))?;
    let routes = routes.as_array().ok_or("not a list")?.clone();
    let table = sh(ctx, "cat /proc/net/route")?;
    let mut want = Vec::new();
    for l in table.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 11 {
            continue;
        }
        let n = |i: usize| i64::from_str_radix(f[i], 16).unwrap_or(-1);
        let d = |i: usize| f[i].parse::<i64>().unwrap_or(-1);
        want.push(json!({
            "iface": f[0],
            "destination": hex_ip(f[1]).unwrap_or_default(),
            "gateway": hex_ip(f[2]).unwrap_or_default(),
            "flags": n(3), "refcnt": d(4), "use": d(5), "metric": d(6),
            "mask": hex_ip(f[7]).unwrap_or_default(),
            "mtu": d(8), "window": d(9), "irtt": d(10), "version": 4,
        }));
    }
    let mut got4: Vec<Json> = routes
        .iter()
        .filter(|r| r.get("version") == Some(&json!(4)))
        .cloned()
        .collect();
    let key = |j: &Json| {
        ["iface", "destination", "mask", "gateway"].map(|k| {
            j.get(k)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        })
    };
    got4.sort_by_key(key);
    want.sort_by_key(key);
    if got4 != want {
        return Err(format!(
            "IPv4 routes {}, /proc/net/route gives {}",
            Json::from(got4),
            Json::from(want)
        ));
    }
    if !want.iter().any(|r| {
        r.get("destination") == Some(&json!("0.0.0.0"))
            && r.get("gateway") == Some(&json!("10.0.2.2"))
    }) {
        return Err("no default route via 10.0.2.2".into());
    }
    let v6 = sh(ctx, "cat /proc/net/ipv6_route 2>/dev/null || true")?;
    let n6 = v6.lines().filter(|l| !l.trim().is_empty()).count();
    let got6 = routes
        .iter()
        .filter(|r| r.get("version") == Some(&json!(6)))
        .count();
    if got6 != n6 {
        return Err(format!("{got6} IPv6 routes, /proc/net/ipv6_route has {n6}"));
    }
    Ok(format!(
        "{} IPv4 routes = /proc/net/route (default via 10.0.2.2), {got6} IPv6 routes",
        want.len()
    ))
}

// --- vCPUs ---------------------------------------------------------------------------------

/// (id, online, can-offline) of each entry of a guest-get-vcpus or guest-get-memory-blocks
/// reply, sorted; `id` names the identifying member.
fn online_list(
    ctx: &mut Ctx<'_>,
    execute: &str,
    id: &str,
) -> Result<Vec<(i64, bool, bool)>, String> {
    let v = ok(ctx, &json!({ "execute": execute }))?;
    let flag = |e: &Json, k: &str| e.get(k).and_then(Json::as_bool).unwrap_or(false);
    let mut out: Vec<(i64, bool, bool)> = v
        .as_array()
        .ok_or("not a list")?
        .iter()
        .map(|e| {
            let n = e.get(id).and_then(Json::as_i64).unwrap_or(-1);
            (n, flag(e, "online"), flag(e, "can-offline"))
        })
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn vcpus(ctx: &mut Ctx<'_>) -> Result<Vec<(i64, bool, bool)>, String> {
    online_list(ctx, "guest-get-vcpus", "logical-id")
}

fn set_vcpus(ctx: &mut Ctx<'_>, list: &Json) -> Result<Json, String> {
    ok(
        ctx,
        &json!({"execute": "guest-set-vcpus", "arguments": {"vcpus": list}}),
    )
}

/// The guest's CPUs as sysfs shows them: (id, online, has an `online` file).
fn sysfs_cpus(ctx: &mut Ctx<'_>) -> Result<Vec<(i64, bool, bool)>, String> {
    let out = sh(
        ctx,
        "for c in /sys/devices/system/cpu/cpu[0-9]*; do n=${c##*cpu}; if [ -e $c/online ]; then echo $n $(cat $c/online) 1; else echo $n 1 0; fi; done",
    )?;
    let mut v: Vec<(i64, bool, bool)> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                *f.get(1)? == "1",
                *f.get(2)? == "1",
            ))
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

pub fn check_get_vcpus(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let got = vcpus(ctx)?;
    let want = sysfs_cpus(ctx)?;
    if got != want || got.len() != 2 {
        return Err(format!(
            "(id, online, can-offline) {got:?}, sysfs {want:?} (the guest has -smp 2)"
        ));
    }
    Ok(format!("{got:?} = sysfs"))
}

pub fn check_set_vcpus(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = set_vcpus(ctx, &json!([{"logical-id": 1, "online": false}]))?;
    expect_eq("offline cpu1", &r, &json!(1))?;
    let after = vcpus(ctx)?;
    let sysfs = sh(ctx, "cat /sys/devices/system/cpu/cpu1/online")?;
    let back = set_vcpus(ctx, &json!([{"logical-id": 1, "online": true}]));
    if !after.contains(&(1, false, true)) || sysfs.trim() != "0" {
        return Err(format!(
            "after offlining cpu1: {after:?}, sysfs online={}",
            sysfs.trim()
        ));
    }
    expect_eq("online cpu1", &back?, &json!(1))?;
    let now = sh(ctx, "cat /sys/devices/system/cpu/cpu1/online")?;
    if now.trim() != "1" {
        return Err(format!("cpu1 still offline: {}", now.trim()));
    }
    let has_online0 = sh(
        ctx,
        "[ -e /sys/devices/system/cpu/cpu0/online ] && echo y || echo n",
    )?;
    if has_online0.trim() == "n" {
        let e = fails(
            ctx,
            &json!({"execute": "guest-set-vcpus", "arguments": {"vcpus": [{"logical-id": 0, "online": false}]}}),
        )?;
        if e != "logical processor #0 can't be offlined" {
            return Err(format!("offlining cpu0: {e:?}"));
        }
    }
    // A failure in the middle returns how many were processed before it.
    let r = set_vcpus(
        ctx,
        &json!([{"logical-id": 1, "online": false}, {"logical-id": 99, "online": false}]),
    );
    let restore = set_vcpus(ctx, &json!([{"logical-id": 1, "online": true}]));
    expect_eq("[cpu1 off, cpu99 off]", &r?, &json!(1))?;
    expect_eq("online cpu1 again", &restore?, &json!(1))?;
    let last = vcpus(ctx)?;
    if !last.iter().all(|c| c.1) {
        return Err(format!("not all online at the end: {last:?}"));
    }
    Ok("cpu1 offline (sysfs 0) → 1, online → 1; cpu0 refused; [cpu1, cpu99] → 1".into())
}

// --- memory blocks -------------------------------------------------------------------------

fn blocks(ctx: &mut Ctx<'_>) -> Result<Vec<(i64, bool, bool)>, String> {
    online_list(ctx, "guest-get-memory-blocks", "phys-index")
}

fn sysfs_blocks(ctx: &mut Ctx<'_>) -> Result<Vec<(i64, bool)>, String> {
    let out = sh(
        ctx,
        "for m in /sys/devices/system/memory/memory[0-9]*; do echo ${m##*memory} $(cat $m/state); done",
    )?;
    let mut v: Vec<(i64, bool)> = out
        .lines()
        .filter_map(|l| {
            let (n, s) = l.split_once(' ')?;
            Some((n.parse().ok()?, s.trim() == "online"))
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

pub fn check_get_memory_blocks(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let got = blocks(ctx)?;
    let want = sysfs_blocks(ctx)?;
    let g: Vec<(i64, bool)> = got.iter().map(|b| (b.0, b.1)).collect();
    if g != want || g.is_empty() {
        return Err(format!("(index, online) {g:?}, sysfs {want:?}"));
    }
    Ok(format!("{} blocks = sysfs", g.len()))
}

pub fn check_memory_block_info(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let info = ok(ctx, &json!({"execute": "guest-get-memory-block-info"}))?;
    let hex = sh(ctx, "cat /sys/devices/system/memory/block_size_bytes")?;
    let want = u64::from_str_radix(hex.trim(), 16).map_err(|e| format!("{hex:?}: {e}"))?;
    expect_eq("block info", &info, &json!({"size": want}))?;
    Ok(format!("size {want} = block_size_bytes 0x{}", hex.trim()))
}

/// Hot-plugs a 128 MiB pc-dimm through QMP (one per transport; the guest has two slots),
/// onlined by the kernel into ZONE_MOVABLE (`auto_online_blocks`), so that it can be
/// offlined again; returns its memory blocks.
fn plug_dimm(ctx: &mut Ctx<'_>) -> Result<Vec<i64>, String> {
    let before = sysfs_blocks(ctx)?;
    let policy = "/sys/devices/system/memory/auto_online_blocks";
    let old = sh(ctx, &format!("cat {policy}"))?;
    sh(ctx, &format!("echo online_movable > {policy}"))?;
    let t = tag(ctx);
    for cmd in [
        json!({"execute": "object-add", "arguments": {"qom-type": "memory-backend-ram", "id": format!("qgamem-{t}"), "size": 134_217_728u64}}),
        json!({"execute": "device_add", "arguments": {"driver": "pc-dimm", "id": format!("qgadimm-{t}"), "memdev": format!("qgamem-{t}")}}),
    ] {
        let r = ctx.vm.qmp(&cmd).map_err(|e| e.0)?;
        if r.get("error").is_some() {
            return Err(format!("QMP {cmd}: {r}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let new = loop {
        let now = sysfs_blocks(ctx)?;
        let new: Vec<(i64, bool)> = now
            .into_iter()
            .filter(|b| !before.iter().any(|o| o.0 == b.0))
            .collect();
        if !new.is_empty() && new.iter().all(|b| b.1) {
            break new;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "20 s after device_add pc-dimm: new blocks {new:?} (want online)"
            ));
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    sh(ctx, &format!("echo {} > {policy}", old.trim()))?;
    Ok(new.into_iter().map(|b| b.0).collect())
}

pub fn check_set_memory_blocks(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = ok(
        ctx,
        &json!({"execute": "guest-set-memory-blocks", "arguments": {"mem-blks": [{"phys-index": 9999, "online": false}]}}),
    )?;
    expect_eq(
        "absent block",
        &r,
        &json!([{"response": "not-found", "error-code": 2, "phys-index": 9999}]),
    )?;
    let dimm = plug_dimm(ctx)?;
    let Some(&idx) = dimm.last() else {
        return Err("no hot-plugged block".into());
    };
    let state = |ctx: &mut Ctx<'_>| {
        sh(
            ctx,
            &format!("cat /sys/devices/system/memory/memory{idx}/state"),
        )
        .map(|s| s.trim().to_string())
    };
    let set = |ctx: &mut Ctx<'_>, online: bool| {
        ok(
            ctx,
            &json!({"execute": "guest-set-memory-blocks", "arguments": {"mem-blks": [{"phys-index": idx, "online": online}]}}),
        )
    };
    let mut steps = Vec::new();
    for online in [false, true] {
        let r = set(ctx, online)?;
        expect_eq(
            &format!("block {idx} online={online}"),
            &r,
            &json!([{"response": "success", "phys-index": idx}]),
        )?;
        let s = state(ctx)?;
        let want = if online { "online" } else { "offline" };
        if s != want {
            return Err(format!(
                "block {idx}: sysfs state {s} after online={online}"
            ));
        }
        let listed = blocks(ctx)?;
        if !listed.iter().any(|b| b.0 == idx && b.1 == online) {
            return Err(format!("block {idx} online={online}: get lists {listed:?}"));
        }
        steps.push(want);
    }
    Ok(format!(
        "absent index → not-found (2); hot-plugged pc-dimm block {idx} (movable): {}",
        steps.join(" → ")
    ))
}

// --- CPU stats, load -----------------------------------------------------------------------

fn cpustats(ctx: &mut Ctx<'_>) -> Result<Vec<(i64, u64)>, String> {
    let v = ok(ctx, &json!({"execute": "guest-get-cpustats"}))?;
    let keys = ["user", "nice", "system", "idle", "iowait", "irq", "softirq"];
    v.as_array()
        .ok_or("not a list")?
        .iter()
        .map(|c| {
            if c.get("type") != Some(&json!("linux")) {
                return Err(format!("type: {c}"));
            }
            let mut total = 0;
            for k in keys {
                total += c
                    .get(k)
                    .and_then(Json::as_u64)
                    .ok_or_else(|| format!("{k} missing: {c}"))?;
            }
            Ok((c.get("cpu").and_then(Json::as_i64).unwrap_or(-1), total))
        })
        .collect()
}

pub fn check_cpustats(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let a = cpustats(ctx)?;
    let stat = sh(ctx, "grep -c '^cpu[0-9]' /proc/stat")?;
    let n: usize = stat.trim().parse().map_err(|e| format!("{stat:?}: {e}"))?;
    let ids: Vec<i64> = a.iter().map(|c| c.0).collect();
    let want: Vec<i64> = (0..i64::try_from(n).unwrap_or(0)).collect();
    if ids != want {
        return Err(format!("cpus {ids:?}, /proc/stat has {n}"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let b = cpustats(ctx)?;
    let grew = a.iter().zip(&b).all(|(x, y)| y.1 > x.1);
    if !grew {
        return Err(format!("totals did not grow in 1.5 s: {a:?} then {b:?}"));
    }
    Ok(format!("{n} cpus, totals grow: {a:?} → {b:?}"))
}

pub fn check_load(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let l = ok(ctx, &json!({"execute": "guest-get-load"}))?;
    let proc = sh(ctx, "cat /proc/loadavg")?;
    let k: Vec<f64> = proc
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    let g: Vec<f64> = ["load1m", "load5m", "load15m"]
        .iter()
        .filter_map(|m| l.get(*m).and_then(Json::as_f64))
        .collect();
    if g.len() != 3 || k.len() != 3 || g.iter().zip(&k).any(|(a, b)| (a - b).abs() > 0.5) {
        return Err(format!("{l}, /proc/loadavg {}", proc.trim()));
    }
    Ok(format!("{l} ≈ /proc/loadavg {}", proc.trim()))
}

// --- guest-set-time ------------------------------------------------------------------------

fn guest_clocks(ctx: &mut Ctx<'_>) -> Result<(i64, i64), String> {
    let out = sh(ctx, "date +%s; cat /sys/class/rtc/rtc0/since_epoch")?;
    let v: Vec<i64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    match v[..] {
        [sys, rtc] => Ok((sys, rtc)),
        _ => Err(format!("date/RTC: {out:?}")),
    }
}

fn set_time(ctx: &mut Ctx<'_>, ns: Option<i64>) -> Result<(), String> {
    let req = match ns {
        Some(t) => json!({"execute": "guest-set-time", "arguments": {"time": t}}),
        None => json!({"execute": "guest-set-time"}),
    };
    let r = ok(ctx, &req)?;
    expect_eq("guest-set-time", &r, &json!({}))
}

/// now + 1 h sets the system clock and the RTC; a system clock moved away is brought back
/// to the RTC by guest-set-time without `time`; the host's time is restored after.
pub fn check_set_time(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = set_time_steps(ctx);
    // Restore, whatever happened.
    let restore = set_time(ctx, Some(host_ns()));
    let detail = r?;
    restore.map_err(|e| format!("restoring the time: {e}"))?;
    let (sys, rtc) = guest_clocks(ctx)?;
    let h = host_secs();
    if (sys - h).abs() > 5 || (rtc - h).abs() > 5 {
        return Err(format!("after restoring: guest {sys}, RTC {rtc}, host {h}"));
    }
    Ok(format!("{detail}; restored (guest - host {:+} s)", sys - h))
}

fn set_time_steps(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let target = host_secs() + 3600;
    set_time(ctx, Some(target * 1_000_000_000))?;
    let (sys, rtc) = guest_clocks(ctx)?;
    let h = host_secs() + 3600;
    if (sys - h).abs() > 5 || (rtc - h).abs() > 5 {
        return Err(format!(
            "after setting now+1h ({target}): guest date {sys}, RTC {rtc}"
        ));
    }
    // Move the system clock only, then sync it from the RTC.
    sh(ctx, &format!("date -s @{} >/dev/null", target - 7200))?;
    let (moved, _) = guest_clocks(ctx)?;
    if (moved - (target - 7200)).abs() > 5 {
        return Err(format!("date -s did not move the clock: {moved}"));
    }
    set_time(ctx, None)?;
    let (sys2, rtc2) = guest_clocks(ctx)?;
    if (sys2 - rtc2).abs() > 3 || (sys2 - (host_secs() + 3600)).abs() > 5 {
        return Err(format!(
            "after set-time without time: guest {sys2}, RTC {rtc2} (want the RTC's time)"
        ));
    }
    Ok(format!(
        "now+1h: date {:+} s, RTC {:+} s; clock moved −2 h then synced from the RTC ({:+} s)",
        sys - h,
        rtc - h,
        sys2 - rtc2
    ))
}

// --- guest-set-user-password ---------------------------------------------------------------

fn shadow_field(ctx: &mut Ctx<'_>, user: &str) -> Result<String, String> {
    let line = sh(ctx, &format!("grep '^{user}:' /etc/shadow"))?;
    Ok(line.trim().split(':').nth(1).unwrap_or("").to_string())
}

fn shadow_meta(ctx: &mut Ctx<'_>) -> Result<String, String> {
    Ok(sh(ctx, "stat -c '%a %U %G' /etc/shadow")?
        .trim()
        .to_string())
}

fn set_password(ctx: &mut Ctx<'_>, user: &str, pw: &str, crypted: bool) -> Result<(), String> {
    let r = ok(
        ctx,
        &json!({"execute": "guest-set-user-password",
                "arguments": {"username": user, "password": qga_proto::b64::encode(pw.as_bytes()), "crypted": crypted}}),
    )?;
    expect_eq("guest-set-user-password", &r, &json!({}))
}

/// A raw password: the new shadow hash equals busybox `mkpasswd` with the same salt.
pub fn check_password_raw(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let user = "alice";
    let pw = format!("s3cret-{}", tag(ctx));
    let meta = shadow_meta(ctx)?;
    set_password(ctx, user, &pw, false)?;
    let hash = shadow_field(ctx, user)?;
    let parts: Vec<&str> = hash.split('$').collect();
    if parts.len() != 4 || parts[1] != "6" {
        return Err(format!("shadow hash {hash:?} is not SHA-512 crypt"));
    }
    let again = sh(ctx, &format!("mkpasswd -m sha512 '{pw}' '{}'", parts[2]))?;
    if again.trim() != hash {
        return Err(format!(
            "shadow has {hash}, mkpasswd with its salt gives {}",
            again.trim()
        ));
    }
    let meta2 = shadow_meta(ctx)?;
    if meta2 != meta {
        return Err(format!("/etc/shadow was {meta}, now {meta2}"));
    }
    Ok(format!(
        "{user}: $6$ hash verified with mkpasswd; /etc/shadow {meta}"
    ))
}

/// A crypted password is written as given.
pub fn check_password_crypted(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let user = "bob";
    let hash = sh(ctx, &format!("mkpasswd -m sha512 pw-{} qgasalt1", tag(ctx)))?;
    let hash = hash.trim().to_string();
    let meta = shadow_meta(ctx)?;
    set_password(ctx, user, &hash, true)?;
    let got = shadow_field(ctx, user)?;
    if got != hash {
        return Err(format!("shadow has {got:?}, set {hash:?}"));
    }
    let meta2 = shadow_meta(ctx)?;
    if meta2 != meta {
        return Err(format!("/etc/shadow was {meta}, now {meta2}"));
    }
    Ok(format!("{user}: {hash} written as given"))
}

/// Without chpasswd (moved away for the check): a crypted password still lands in
/// /etc/shadow, mode and owner kept. (A raw password then needs libcrypt in the agent.)
pub fn check_password_no_chpasswd(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let user = "carol";
    let hash =
        format!("$6$nochpw{}$", tag(ctx)) + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ./0123456789";
    let meta = shadow_meta(ctx)?;
    sh(ctx, "mv /usr/sbin/chpasswd /usr/sbin/chpasswd.off")?;
    let r = set_password(ctx, user, &hash, true);
    sh(ctx, "mv /usr/sbin/chpasswd.off /usr/sbin/chpasswd")?;
    r?;
    let got = shadow_field(ctx, user)?;
    if got != hash {
        return Err(format!("shadow has {got:?}, set {hash:?}"));
    }
    let meta2 = shadow_meta(ctx)?;
    if meta2 != meta {
        return Err(format!("/etc/shadow was {meta}, now {meta2}"));
    }
    Ok(format!(
        "no chpasswd in PATH: {user} updated in /etc/shadow ({meta2})"
    ))
}

// --- SSH keys ------------------------------------------------------------------------------

fn ssh_get(ctx: &mut Ctx<'_>, user: &str) -> Result<Vec<String>, String> {
    let r = ok(
        ctx,
        &json!({"execute": "guest-ssh-get-authorized-keys", "arguments": {"username": user}}),
    )?;
    Ok(r.get("keys")
        .and_then(Json::as_array)
        .ok_or_else(|| format!("get: {r}"))?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect())
}

fn ssh_do(ctx: &mut Ctx<'_>, cmd: &str, args: &Json) -> Result<(), String> {
    let r = ok(ctx, &json!({"execute": cmd, "arguments": args}))?;
    expect_eq(cmd, &r, &json!({}))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// add / dedupe / remove / reset round trip; ~/.ssh 0700 and authorized_keys 0600 owned by
/// the user.
pub fn check_ssh_keys(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let user = match ctx.transport {
        Transport::VirtioSerial => "bob",
        Transport::IsaSerial => "alice",
    };
    sh(ctx, &format!("rm -rf /home/{user}/.ssh"))?;
    let k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIQGAvmtest1 one@host";
    let k2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIQGAvmtest2 two@host";
    let k3 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQvmtest3 three@host";
    let k9 = "ecdsa-sha2-nistp256 AAAAE2VjZHNhvmtest9 nine@host";
    ssh_do(
        ctx,
        "guest-ssh-add-authorized-keys",
        &json!({"username": user, "keys": [k1, k2]}),
    )?;
    ssh_do(
        ctx,
        "guest-ssh-add-authorized-keys",
        &json!({"username": user, "keys": [k1, k3]}),
    )?;
    let got = sorted(ssh_get(ctx, user)?);
    let want = sorted(vec![k1.into(), k2.into(), k3.into()]);
    if got != want {
        return Err(format!("after add [k1,k2], add [k1,k3]: {got:?}"));
    }
    let perms = sh(
        ctx,
        &format!("stat -c '%a %U' /home/{user}/.ssh /home/{user}/.ssh/authorized_keys"),
    )?;
    let perms: Vec<&str> = perms.lines().collect();
    let want_perms = [format!("700 {user}"), format!("600 {user}")];
    if perms != want_perms {
        return Err(format!("modes/owners {perms:?}, want {want_perms:?}"));
    }
    ssh_do(
        ctx,
        "guest-ssh-remove-authorized-keys",
        &json!({"username": user, "keys": [k2, "ssh-ed25519 AAAAnotthere x"]}),
    )?;
    let got = sorted(ssh_get(ctx, user)?);
    if got != sorted(vec![k1.into(), k3.into()]) {
        return Err(format!("after removing k2: {got:?}"));
    }
    ssh_do(
        ctx,
        "guest-ssh-add-authorized-keys",
        &json!({"username": user, "keys": [k9], "reset": true}),
    )?;
    let got = ssh_get(ctx, user)?;
    if got != [k9] {
        return Err(format!("after reset [k9]: {got:?}"));
    }
    let file = sh(ctx, &format!("cat /home/{user}/.ssh/authorized_keys"))?;
    if file.trim_end() != k9 {
        return Err(format!("authorized_keys holds {file:?}"));
    }
    let e = fails(
        ctx,
        &json!({"execute": "guest-ssh-get-authorized-keys", "arguments": {"username": "nosuchuser"}}),
    )?;
    if !e.starts_with("failed to lookup user 'nosuchuser'") {
        return Err(format!("unknown user: {e:?}"));
    }
    Ok(format!(
        "{user}: add, dedupe, remove, reset; ~/.ssh 700, authorized_keys 600, owned by {user}"
    ))
}

/// A symlinked authorized_keys (to /etc/shadow) is refused, not read through.
pub fn check_ssh_symlink(ctx: &mut Ctx<'_>) -> Result<String, String> {
    sh(
        ctx,
        "rm -rf /home/carol/.ssh; mkdir -p /home/carol/.ssh; chown carol:carol /home/carol/.ssh; chmod 700 /home/carol/.ssh; ln -s /etc/shadow /home/carol/.ssh/authorized_keys",
    )?;
    let r = call(
        ctx,
        &json!({"execute": "guest-ssh-get-authorized-keys", "arguments": {"username": "carol"}}),
    );
    sh(ctx, "rm -rf /home/carol/.ssh")?;
    let j = r?;
    let desc = j.pointer("/error/desc").and_then(Json::as_str);
    let want = "failed to read '/home/carol/.ssh/authorized_keys': Failed to open file \u{201c}/home/carol/.ssh/authorized_keys\u{201d}: Too many levels of symbolic links";
    if desc == Some(want) {
        Ok(want.into())
    } else {
        Err(format!("reply {}", clip(&j.to_string(), 200)))
    }
}

// --- suspend, shutdown (non-destructive) ---------------------------------------------------

pub fn check_suspend_hybrid(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let state = sh(ctx, "cat /sys/power/state")?;
    let e = fails(ctx, &json!({"execute": "guest-suspend-hybrid"}))?;
    let want = "the requested suspend mode is not supported by the guest";
    if e == want {
        Ok(format!("{e} (/sys/power/state: {})", state.trim()))
    } else {
        Err(format!("{e:?}, want {want:?}"))
    }
}

/// The guest offers `disk` but has no swap: the hibernation fails, and that is reported (no
/// silent success); the guest keeps running.
pub fn check_suspend_disk(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let swaps = sh(ctx, "tail -n +2 /proc/swaps | wc -l")?;
    if swaps.trim() != "0" {
        return Err(format!(
            "the guest has swap ({}): would hibernate",
            swaps.trim()
        ));
    }
    let j = call(ctx, &json!({"execute": "guest-suspend-disk"}))?;
    let desc = j
        .pointer("/error/desc")
        .and_then(Json::as_str)
        .ok_or_else(|| format!("want an error (no swap to hibernate to), got {j}"))?
        .to_string();
    let st = ctx.vm.run_state().map_err(|e| e.0)?;
    if st != "running" {
        return Err(format!("QEMU state {st} after a failed hibernation"));
    }
    let r = ok(ctx, &json!({"execute": "guest-ping"}))?;
    expect_eq("ping", &r, &json!({}))?;
    Ok(format!("no swap: error {desc:?}; guest running"))
}

/// guest-suspend-ram, without suspending: guest-info lists it without a success response
/// and the guest offers `mem`. The S3 round trips run in [`final_checks`]: a guest suspends
/// to RAM once per boot here (after an S3 resume this kernel no longer sees ACPI hot-plug or
/// further suspends, and the resumed UART drops bytes of long bursts).
pub fn check_suspend_ram(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let state = sh(ctx, "cat /sys/power/state")?;
    let info = ok(ctx, &json!({"execute": "guest-info"}))?;
    let entry = info
        .get("supported_commands")
        .and_then(Json::as_array)
        .and_then(|a| {
            a.iter()
                .find(|c| c.get("name") == Some(&json!("guest-suspend-ram")))
        })
        .cloned()
        .unwrap_or(Json::Null);
    let want = json!({"name": "guest-suspend-ram", "enabled": true, "success-response": false});
    expect_eq("guest-info entry", &entry, &want)?;
    if !state.split_whitespace().any(|w| w == "mem") {
        return Err(format!("/sys/power/state: {}", state.trim()));
    }
    Ok(format!(
        "listed without success response; guest offers mem ({}); the S3 round trips run last",
        state.trim()
    ))
}

/// A real S3 suspend: no reply, QEMU reports `suspended`, QMP `system_wakeup` resumes it and
/// the agent answers again.
fn suspend_ram(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let state = sh(ctx, "cat /sys/power/state")?;
    if !state.split_whitespace().any(|w| w == "mem") {
        let e = fails(ctx, &json!({"execute": "guest-suspend-ram"}))?;
        return if e == "the requested suspend mode is not supported by the guest" {
            Ok(e)
        } else {
            Err(e)
        };
    }
    ctx.send(b"{\"execute\":\"guest-suspend-ram\"}\n")?;
    let t = Instant::now();
    let suspended = loop {
        match ctx.vm.run_state() {
            Ok(s) if s == "suspended" => break t.elapsed(),
            Ok(s) if t.elapsed() > Duration::from_secs(10) => {
                let reply = ctx
                    .client()?
                    .set_timeout(Some(Duration::from_secs(1)))
                    .ok()
                    .and_then(|()| ctx.reply().ok())
                    .map(|r| String::from_utf8_lossy(&r.line).into_owned());
                let dmesg = sh(ctx, "dmesg | tail -n 8").unwrap_or_default();
                return Err(format!(
                    "QEMU state {s} 10 s after guest-suspend-ram; reply {reply:?}; dmesg: {}",
                    dmesg.replace('\n', " | ")
                ));
            }
            Err(e) => return Err(e.0),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let w = ctx
        .vm
        .qmp(&json!({"execute": "system_wakeup"}))
        .map_err(|e| e.0)?;
    if w.get("error").is_some() {
        return Err(format!("system_wakeup: {w}"));
    }
    let c = ctx.client()?;
    c.set_timeout(Some(Duration::from_millis(1500)))
        .map_err(|e| e.to_string())?;
    // guest-suspend-ram has no success response: the next line must be the sync's.
    if let Err(e) = crate::vm::sync_retry(c, Duration::from_secs(30)) {
        let dmesg = ctx
            .vm
            .shell(
                "cat /sys/devices/system/cpu/online; dmesg | tail -n 40",
                Duration::from_secs(20),
            )
            .map_or_else(|e| format!("(no control shell: {})", e.0), |o| o.1);
        return Err(format!(
            "after wakeup: {e}; guest: {}",
            dmesg.replace('\n', " | ")
        ));
    }
    let r = ok(ctx, &json!({"execute": "guest-ping"}))?;
    expect_eq("ping after wakeup", &r, &json!({}))?;
    Ok(format!(
        "no reply; QEMU suspended after {suspended:.1?}; system_wakeup; agent answers after {:.1?}",
        t.elapsed()
    ))
}

/// A mode that does not exist (ours closes the parenthesis; qemu-ga omits it: expected).
pub fn check_shutdown_bad_mode(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let e = fails(
        ctx,
        &json!({"execute": "guest-shutdown", "arguments": {"mode": "sideways"}}),
    )?;
    let want = "mode is invalid (valid values are: halt|powerdown|reboot)";
    if e == want {
        Ok(e)
    } else {
        Err(format!("{e:?}, want {want:?}"))
    }
}

// --- the destructive guest-shutdown modes --------------------------------------------------

fn final_result(
    t: Transport,
    name: &str,
    r: Result<String, String>,
    started: Instant,
) -> CheckResult {
    let (outcome, detail) = match r {
        Ok(d) => (Outcome::Pass, d),
        Err(d) => (Outcome::Fail, d),
    };
    CheckResult {
        transport: t.name().to_string(),
        name: name.to_string(),
        outcome,
        detail: format!("{detail} [{:.1?}]", started.elapsed()),
    }
}

/// Sends guest-shutdown with `mode` and expects no reply within `quiet`.
fn shutdown_no_reply(ctx: &mut Ctx<'_>, mode: &str) -> Result<(), String> {
    let c = ctx.client()?;
    c.send_raw(
        format!("{{\"execute\":\"guest-shutdown\",\"arguments\":{{\"mode\":\"{mode}\"}}}}\n")
            .as_bytes(),
    )
    .map_err(|e| format!("send: {e}"))?;
    c.set_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    match c.read_reply() {
        Ok(r) => Err(format!(
            "guest-shutdown {mode} replied: {}",
            String::from_utf8_lossy(&r.line)
        )),
        Err(_) => Ok(()),
    }
}

fn count_boots(vm: &Vm) -> usize {
    vm.console().matches(crate::image::READY_MARKER).count()
}

fn reboot(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let boots = count_boots(ctx.vm);
    let t = Instant::now();
    shutdown_no_reply(ctx, "reboot")?;
    ctx.drop_client();
    let deadline = Instant::now() + Duration::from_secs(90);
    while count_boots(ctx.vm) <= boots {
        if !ctx.vm.alive() {
            return Err("QEMU exited instead of rebooting".into());
        }
        if Instant::now() > deadline {
            return Err("the guest did not boot again in 90 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = ok(ctx, &json!({"execute": "guest-ping"}))?;
    expect_eq("ping after reboot", &r, &json!({}))?;
    Ok(format!(
        "no reply; the guest booted again and its agent answered sync after {:.1?}",
        t.elapsed()
    ))
}

fn halt(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let t = Instant::now();
    shutdown_no_reply(ctx, "halt")?;
    ctx.drop_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ctx.vm.console().contains("reboot: System halted") {
        if !ctx.vm.alive() {
            return Err("QEMU exited: halt must not power off".into());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no \"System halted\" on the console in 60 s: {}",
                ctx.vm.console_tail(5)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    if !ctx.vm.alive() {
        return Err("QEMU exited: halt must not power off".into());
    }
    // Back for the next check: a hard reset.
    let r = ctx
        .vm
        .qmp(&json!({"execute": "system_reset"}))
        .map_err(|e| e.0)?;
    if r.get("error").is_some() {
        return Err(format!("system_reset: {r}"));
    }
    let boots = count_boots(ctx.vm);
    let deadline = Instant::now() + Duration::from_secs(90);
    while count_boots(ctx.vm) <= boots {
        if Instant::now() > deadline {
            return Err("no boot after system_reset".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(format!(
        "no reply; \"System halted\" on the console, QEMU still running (halted, not off) after {:.1?}",
        t.elapsed()
    ))
}

fn powerdown(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let t = Instant::now();
    ctx.client()?;
    shutdown_no_reply(ctx, "powerdown")?;
    ctx.drop_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ctx.vm.alive() {
        if Instant::now() > deadline {
            return Err("QEMU still runs 60 s after guest-shutdown powerdown".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(format!("no reply; QEMU exited after {:.1?}", t.elapsed()))
}

/// The S3 suspends and the destructive guest-shutdown modes, once per guest and last: an S3
/// suspend and wakeup over isa-serial, reboot over virtio-serial (the guest comes back;
/// then an S3 round trip over virtio-serial), halt over isa-serial (halted, not off; then a QMP
/// `system_reset`), powerdown over virtio-serial (QEMU exits). The guest must run without
/// `-no-reboot`. A mode is not tried when an earlier one left the guest unusable.
pub fn final_checks(vm: &mut Vm, image: &crate::image::Image) -> Vec<CheckResult> {
    let steps: [(Transport, &str, CheckFn); 5] = [
        (Transport::IsaSerial, "guest-suspend-ram.s3", suspend_ram),
        (Transport::VirtioSerial, "guest-shutdown.reboot", reboot),
        (
            Transport::VirtioSerial,
            "guest-suspend-ram.s3-after-reboot",
            suspend_ram,
        ),
        (Transport::IsaSerial, "guest-shutdown.halt", halt),
        (
            Transport::VirtioSerial,
            "guest-shutdown.powerdown",
            powerdown,
        ),
    ];
    let mut out = Vec::new();
    let mut broken = false;
    for (t, name, f) in steps {
        let started = Instant::now();
        if broken {
            out.push(CheckResult {
                transport: t.name().to_string(),
                name: name.to_string(),
                outcome: Outcome::Skip,
                detail: "an earlier guest-shutdown check failed".into(),
            });
            continue;
        }
        let mut ctx = Ctx::new(vm, image, t);
        let r = f(&mut ctx);
        broken = r.is_err();
        out.push(final_result(t, name, r, started));
    }
    out
}
