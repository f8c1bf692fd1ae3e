//! The end-to-end suite: per-command checks (every command the agent lists in guest-info
//! must have one) and protocol checks, run over one transport of a running guest.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qga_client::{Client, Reply};
use qga_schema::{
    GuestGetHostName, GuestGetOsinfo, GuestGetTime, GuestGetTimezone, GuestGetUsers, GuestInfo,
    GuestSync, NoArgs, SyncArgs,
};
use serde_json::Value as Json;

use crate::checks as c;
use crate::image::{self, Image};
use crate::vm::{Flavour, Transport, Vm};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Pass,
    /// It failed.
    Fail,
    /// It did not run (the detail says why).
    Skip,
}

impl Outcome {
    /// `pass`, `FAIL` or `skip`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        }
    }
}

/// The result of one check on one transport.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// `virtio-serial`, `isa-serial` or `libvirt`.
    pub transport: String,
    /// The check's name.
    pub name: String,
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// What was seen.
    pub detail: String,
}

/// What a check works on: the guest, the image it booted, and a client on one transport.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The guest.
    pub vm: &'a mut Vm,
    /// Its image.
    pub image: &'a Image,
    /// The transport under test.
    pub transport: Transport,
    client: Option<Client<UnixStream>>,
}

/// A check: `Ok(detail)` passes, `Err(detail)` fails.
pub type CheckFn = fn(&mut Ctx<'_>) -> Result<String, String>;

/// One row of a check table.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Its name in reports (`guest-get-osinfo`, `guest-get-osinfo.single-quoted`, ...).
    pub name: &'static str,
    /// The command it covers (for the per-command table), or `None` for protocol checks.
    pub command: Option<&'static str>,
    /// What it does.
    pub kind: CheckKind,
    /// Runs on this transport only (a check of the guest, not of the transport), skipped on
    /// the others; `None`: on every transport.
    pub only_on: Option<Transport>,
}

/// How a check runs.
#[derive(Debug, Clone, Copy)]
pub enum CheckKind {
    /// A function.
    Run(CheckFn),
    /// Send a request line; expect exactly this error class and description.
    Error {
        /// The request (a newline is added).
        request: &'static str,
        /// The expected `class`.
        class: &'static str,
        /// The expected `desc`.
        desc: &'static str,
    },
}

const fn run(name: &'static str, command: &'static str, f: CheckFn) -> Check {
    Check {
        name,
        command: Some(command),
        kind: CheckKind::Run(f),
        only_on: None,
    }
}

const fn proto(name: &'static str, f: CheckFn) -> Check {
    Check {
        name,
        command: None,
        kind: CheckKind::Run(f),
        only_on: None,
    }
}

/// A protocol-table row that runs on one transport only.
const fn proto_on(name: &'static str, transport: Transport, f: CheckFn) -> Check {
    Check {
        only_on: Some(transport),
        ..proto(name, f)
    }
}

const fn error(
    name: &'static str,
    request: &'static str,
    class: &'static str,
    desc: &'static str,
) -> Check {
    Check {
        name,
        command: None,
        kind: CheckKind::Error {
            request,
            class,
            desc,
        },
        only_on: None,
    }
}

/// The agent core's commands: guest-info must list them, enabled.
pub const CORE_COMMANDS: &[&str] = &[
    "guest-sync",
    "guest-sync-delimited",
    "guest-ping",
    "guest-info",
    "guest-get-time",
    "guest-get-host-name",
    "guest-get-timezone",
    "guest-get-osinfo",
    "guest-get-users",
];

/// The per-command checks. Every command that guest-info lists must have at least one row
/// here (the `coverage` check fails otherwise): adding a command to the agent means adding
/// its check here.
pub const COMMAND_CHECKS: &[Check] = &[
    run("guest-sync", "guest-sync", check_sync),
    run(
        "guest-sync-delimited",
        "guest-sync-delimited",
        check_sync_delimited,
    ),
    run("guest-ping", "guest-ping", check_ping),
    run("guest-info", "guest-info", check_info),
    run(
        "guest-info.version-default",
        "guest-info",
        check_info_version_default,
    ),
    run("guest-get-time", "guest-get-time", check_time),
    run(
        "guest-get-time.resolution",
        "guest-get-time",
        check_time_resolution,
    ),
    run(
        "guest-get-host-name",
        "guest-get-host-name",
        check_host_name,
    ),
    run("guest-get-timezone", "guest-get-timezone", check_timezone),
    run("guest-get-osinfo", "guest-get-osinfo", check_osinfo),
    run(
        "guest-get-osinfo.single-quoted",
        "guest-get-osinfo",
        check_osinfo_single_quoted,
    ),
    run("guest-get-users", "guest-get-users", check_users),
    run("guest-file-open", "guest-file-open", check_file_roundtrip),
    run("guest-file-write", "guest-file-write", check_file_roundtrip),
    run("guest-file-flush", "guest-file-flush", check_file_roundtrip),
    run("guest-file-seek", "guest-file-seek", check_file_roundtrip),
    run("guest-file-read", "guest-file-read", check_file_roundtrip),
    run("guest-file-close", "guest-file-close", check_file_roundtrip),
    run("guest-exec", "guest-exec", check_exec),
    run(
        "__org.qga_exec.cwd-user-live",
        "__org.qga_exec",
        crate::ext_checks::check_exec_live,
    ),
    run(
        "__org.qga_exec.timeout",
        "__org.qga_exec",
        crate::ext_checks::check_exec_timeout,
    ),
    run(
        "__org.qga_exec.exit-on-main",
        "__org.qga_exec",
        crate::ext_checks::check_exec_exit_on_main,
    ),
    run(
        "__org.qga_exec-output.offsets",
        "__org.qga_exec-output",
        crate::ext_checks::check_exec_live,
    ),
    run(
        "__org.qga_exec-signal",
        "__org.qga_exec-signal",
        crate::ext_checks::check_exec_signal,
    ),
    run(
        "__org.qga_file-stat",
        "__org.qga_file-stat",
        crate::ext_checks::check_file_stat,
    ),
    run(
        "__org.qga_file-list",
        "__org.qga_file-list",
        crate::ext_checks::check_file_list,
    ),
    run(
        "__org.qga_file-open-nofollow",
        "__org.qga_file-open-nofollow",
        crate::ext_checks::check_file_open_nofollow,
    ),
    run("guest-exec-status", "guest-exec-status", check_exec),
    run(
        "guest-file-write.data-disk",
        "guest-file-write",
        c::check_file_data_disk,
    ),
    run("guest-file-read.tmp", "guest-file-read", c::check_file_tmp),
    run(
        "guest-file-read.count0-eof",
        "guest-file-read",
        c::check_file_count0_eof,
    ),
    run(
        "guest-file-open.missing",
        "guest-file-open",
        c::check_file_open_missing,
    ),
    run(
        "guest-file-open.handles-after-restart",
        "guest-file-open",
        c::check_file_handles_after_restart,
    ),
    run(
        "guest-exec.capture-modes",
        "guest-exec",
        c::check_exec_capture_modes,
    ),
    run(
        "guest-exec.input-data",
        "guest-exec",
        c::check_exec_input_data,
    ),
    run("guest-exec.env", "guest-exec", c::check_exec_env),
    run(
        "guest-exec.missing-binary",
        "guest-exec",
        c::check_exec_missing,
    ),
    run(
        "guest-exec-status.signal",
        "guest-exec-status",
        c::check_exec_signal,
    ),
    run(
        "guest-exec-status.unknown-pid",
        "guest-exec-status",
        c::check_exec_status_unknown,
    ),
    run(
        "guest-network-get-interfaces",
        "guest-network-get-interfaces",
        c::check_network_interfaces,
    ),
    run(
        "guest-network-get-route",
        "guest-network-get-route",
        c::check_network_route,
    ),
    run("guest-get-vcpus", "guest-get-vcpus", c::check_get_vcpus),
    run("guest-set-vcpus", "guest-set-vcpus", c::check_set_vcpus),
    run(
        "guest-get-memory-blocks",
        "guest-get-memory-blocks",
        c::check_get_memory_blocks,
    ),
    run(
        "guest-get-memory-block-info",
        "guest-get-memory-block-info",
        c::check_memory_block_info,
    ),
    run(
        "guest-set-memory-blocks",
        "guest-set-memory-blocks",
        c::check_set_memory_blocks,
    ),
    run(
        "guest-get-cpustats",
        "guest-get-cpustats",
        c::check_cpustats,
    ),
    run("guest-get-load", "guest-get-load", c::check_load),
    run("guest-set-time", "guest-set-time", c::check_set_time),
    run(
        "guest-set-user-password.raw",
        "guest-set-user-password",
        c::check_password_raw,
    ),
    run(
        "guest-set-user-password.crypted",
        "guest-set-user-password",
        c::check_password_crypted,
    ),
    run(
        "guest-set-user-password.no-chpasswd",
        "guest-set-user-password",
        c::check_password_no_chpasswd,
    ),
    run(
        "guest-ssh-add-authorized-keys",
        "guest-ssh-add-authorized-keys",
        c::check_ssh_keys,
    ),
    run(
        "guest-ssh-get-authorized-keys",
        "guest-ssh-get-authorized-keys",
        c::check_ssh_keys,
    ),
    run(
        "guest-ssh-remove-authorized-keys",
        "guest-ssh-remove-authorized-keys",
        c::check_ssh_keys,
    ),
    run(
        "guest-ssh-get-authorized-keys.symlink",
        "guest-ssh-get-authorized-keys",
        c::check_ssh_symlink,
    ),
    run(
        "guest-shutdown.bad-mode",
        "guest-shutdown",
        c::check_shutdown_bad_mode,
    ),
    run(
        "guest-suspend-hybrid",
        "guest-suspend-hybrid",
        c::check_suspend_hybrid,
    ),
    run(
        "guest-suspend-disk",
        "guest-suspend-disk",
        c::check_suspend_disk,
    ),
    run(
        "guest-suspend-ram",
        "guest-suspend-ram",
        c::check_suspend_ram,
    ),
    run(
        "guest-fsfreeze-status",
        "guest-fsfreeze-status",
        crate::storage_checks::check_freeze_status,
    ),
    run(
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-freeze",
        crate::storage_checks::check_freeze_cycle,
    ),
    run(
        "guest-fsfreeze-freeze.disabled-text",
        "guest-fsfreeze-freeze",
        crate::storage_checks::check_freeze_disabled_text,
    ),
    run(
        "guest-fsfreeze-freeze-list",
        "guest-fsfreeze-freeze-list",
        crate::storage_checks::check_freeze_list,
    ),
    run(
        "guest-fsfreeze-thaw",
        "guest-fsfreeze-thaw",
        crate::storage_checks::check_thaw_not_frozen,
    ),
    run(
        "guest-fstrim",
        "guest-fstrim",
        crate::storage_checks::check_fstrim,
    ),
    run(
        "guest-get-fsinfo",
        "guest-get-fsinfo",
        crate::storage_checks::check_fsinfo,
    ),
    run(
        "guest-get-fsinfo.total-bytes-privileged",
        "guest-get-fsinfo",
        crate::storage_checks::check_fsinfo_privileged,
    ),
    run(
        "guest-get-fsinfo.serial",
        "guest-get-fsinfo",
        crate::storage_checks::check_fsinfo_serial,
    ),
    run(
        "guest-get-disks",
        "guest-get-disks",
        crate::storage_checks::check_disks,
    ),
    run(
        "guest-get-disks.serial",
        "guest-get-disks",
        crate::storage_checks::check_disks_serial,
    ),
    run(
        "guest-get-diskstats",
        "guest-get-diskstats",
        crate::storage_checks::check_diskstats,
    ),
];

/// Sends a request and returns its `return` member, or the reply as the error.
fn ret(ctx: &mut Ctx<'_>, request: &str) -> Result<Json, String> {
    let j = json_of(&ctx.request(request)?)?;
    j.get("return")
        .cloned()
        .ok_or_else(|| format!("{request}: {j}"))
}

/// open (w+), write, flush, seek to 0, read back, close; then the guest's shell sees the
/// file. Every guest-file-* row runs it (each command is covered by the same round trip).
fn check_file_roundtrip(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let path = format!("/tmp/qga-vmtest-{}.txt", ctx.transport.name());
    let b64 = "aGVsbG8gcWdhCg=="; // "hello qga\n"
    let h = ret(
        ctx,
        &format!(r#"{{"execute":"guest-file-open","arguments":{{"path":"{path}","mode":"w+"}}}}"#),
    )?;
    let h = h.as_i64().ok_or_else(|| format!("handle {h}"))?;
    let step = |name: &str, got: Json, want: Json| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{name}: {got}, want {want}"))
        }
    };
    let w = ret(
        ctx,
        &format!(
            r#"{{"execute":"guest-file-write","arguments":{{"handle":{h},"buf-b64":"{b64}"}}}}"#
        ),
    )?;
    step("write", w, serde_json::json!({"count": 10, "eof": false}))?;
    let f = ret(
        ctx,
        &format!(r#"{{"execute":"guest-file-flush","arguments":{{"handle":{h}}}}}"#),
    )?;
    step("flush", f, serde_json::json!({}))?;
    let s = ret(
        ctx,
        &format!(
            r#"{{"execute":"guest-file-seek","arguments":{{"handle":{h},"offset":0,"whence":"set"}}}}"#
        ),
    )?;
    step("seek", s, serde_json::json!({"position": 0, "eof": false}))?;
    let r = ret(
        ctx,
        &format!(r#"{{"execute":"guest-file-read","arguments":{{"handle":{h},"count":100}}}}"#),
    )?;
    step(
        "read",
        r,
        serde_json::json!({"count": 10, "buf-b64": b64, "eof": true}),
    )?;
    let c = ret(
        ctx,
        &format!(r#"{{"execute":"guest-file-close","arguments":{{"handle":{h}}}}}"#),
    )?;
    step("close", c, serde_json::json!({}))?;
    let (_, text) = ctx
        .vm
        .shell(&format!("cat {path}"), Duration::from_secs(20))
        .map_err(|e| e.0)?;
    if text != "hello qga\n" {
        return Err(format!("the guest's {path} holds {text:?}"));
    }
    Ok(format!(
        "handle {h}: open/write/flush/seek/read/close, file seen by the guest"
    ))
}

/// guest-exec with captured output and an exit code, then guest-exec-status until it exits.
fn check_exec(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let pid = ret(
        ctx,
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","echo out; echo err >&2; exit 3"],"capture-output":true}}"#,
    )?;
    let pid = pid
        .get("pid")
        .and_then(Json::as_i64)
        .ok_or_else(|| format!("guest-exec returned {pid}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = ret(
            ctx,
            &format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#),
        )?;
        if st.get("exited") == Some(&Json::Bool(true)) {
            let want = serde_json::json!({"exited": true, "exitcode": 3, "out-data": "b3V0Cg==", "err-data": "ZXJyCg==", "out-truncated": false, "err-truncated": false});
            return if st == want {
                Ok(format!(
                    "pid {pid}: exit code 3, stdout and stderr captured"
                ))
            } else {
                Err(format!("status {st}, want {want}"))
            };
        }
        if Instant::now() > deadline {
            return Err(format!("pid {pid} not exited after 20 s: {st}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Protocol behaviour: ids, error texts, framing, resynchronisation, reconnects, restarts.
pub const PROTOCOL_CHECKS: &[Check] = &[
    proto("id-echo", check_id_echo),
    proto("id-echo.error", check_id_echo_error),
    error(
        "error.unknown-command",
        r#"{"execute":"guest-no-such-command"}"#,
        "CommandNotFound",
        "The command guest-no-such-command has not been found",
    ),
    error(
        "error.missing-execute",
        r#"{"arguments":{}}"#,
        "GenericError",
        "QMP input lacks member 'execute'",
    ),
    error(
        "error.not-an-object",
        "[1]",
        "GenericError",
        "QMP input must be a JSON object",
    ),
    error(
        "error.execute-not-string",
        r#"{"execute":1}"#,
        "GenericError",
        "QMP input member 'execute' must be a string",
    ),
    error(
        "error.unexpected-member",
        r#"{"execute":"guest-ping","foo":1}"#,
        "GenericError",
        "QMP input member 'foo' is unexpected",
    ),
    error(
        "error.missing-argument",
        r#"{"execute":"guest-sync"}"#,
        "GenericError",
        "Parameter 'id' is missing",
    ),
    error(
        "error.argument-type",
        r#"{"execute":"guest-sync","arguments":{"id":"x"}}"#,
        "GenericError",
        "Invalid parameter type for 'id', expected: integer",
    ),
    error(
        "error.unexpected-argument",
        r#"{"execute":"guest-ping","arguments":{"x":1}}"#,
        "GenericError",
        "Parameter 'x' is unexpected",
    ),
    error(
        "error.json-parse",
        "}",
        "GenericError",
        "JSON parse error, expecting value",
    ),
    proto("framing.pipelined", check_pipelined),
    proto("framing.two-per-line", check_two_per_line),
    proto("framing.split-writes", check_split_writes),
    proto("resync.after-garbage", check_resync_garbage),
    proto("resync.mid-request", check_resync_mid_request),
    proto("reconnect.host", check_host_reconnect),
    proto("reconnect.queued-replies", check_queued_replies),
    proto("restart.agent", check_agent_restart),
    proto_on(
        "several-clients.unix-listen",
        Transport::VirtioSerial,
        crate::ext_checks::check_several_clients,
    ),
    proto_on(
        "framing.pipelined-transfer",
        Transport::VirtioSerial,
        crate::checks::check_pipelined_transfer,
    ),
    proto_on(
        "client.qga-ls-cp-exec",
        Transport::VirtioSerial,
        crate::client_checks::check_host_client,
    ),
];

/// How long the checks' client waits for a reply.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn json_of(r: &Reply) -> Result<Json, String> {
    r.value().map(|v| v.into_json()).map_err(|e| {
        format!(
            "unparseable reply {:?}: {e}",
            String::from_utf8_lossy(&r.line)
        )
    })
}

impl Ctx<'_> {
    /// A check context on one transport of `vm`.
    pub fn new<'a>(vm: &'a mut Vm, image: &'a Image, transport: Transport) -> Ctx<'a> {
        Ctx {
            vm,
            image,
            transport,
            client: None,
        }
    }

    /// The client, connected and in sync.
    pub(crate) fn client(&mut self) -> Result<&mut Client<UnixStream>, String> {
        if self.client.is_none() {
            let c = self
                .vm
                .connect_agent(self.transport, REPLY_TIMEOUT)
                .map_err(|e| e.0)?;
            self.client = Some(c);
        }
        self.client.as_mut().ok_or_else(|| "no client".to_string())
    }

    /// Forgets the connection (the next use reconnects and resynchronises).
    pub fn drop_client(&mut self) {
        self.client = None;
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.client()?
            .send_raw(bytes)
            .map_err(|e| format!("send: {e}"))
    }

    pub(crate) fn reply(&mut self) -> Result<Reply, String> {
        self.client()?
            .read_reply()
            .map_err(|e| format!("reading a reply: {e}"))
    }

    /// Sends one request line and reads one reply.
    pub(crate) fn request(&mut self, line: &str) -> Result<Reply, String> {
        self.send(format!("{line}\n").as_bytes())?;
        self.reply()
    }

    fn exec<C: qga_schema::Command>(&mut self, args: &C::Args) -> Result<C::Ret, String> {
        self.client()?
            .execute::<C>(args)
            .map_err(|e| format!("{}: {e}", C::NAME))
    }

    /// The names guest-info lists.
    pub fn listed_commands(&mut self) -> Result<Vec<String>, String> {
        let info = self.exec::<GuestInfo>(&NoArgs {})?;
        Ok(info
            .supported_commands
            .into_iter()
            .map(|c| c.name)
            .collect())
    }
}

fn check_sync(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let ids = [1i64, -1, 0x7fff_ffff, (1 << 53) + 1, i64::MAX, i64::MIN];
    for id in ids {
        let got = ctx.exec::<GuestSync>(&SyncArgs { id })?;
        if got != id {
            return Err(format!("guest-sync {id} returned {got}"));
        }
    }
    Ok(format!("echoed {} ids incl. i64 extremes", ids.len()))
}

fn check_sync_delimited(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = ctx.request(r#"{"execute":"guest-sync-delimited","arguments":{"id":424242}}"#)?;
    if !r.delimited {
        return Err("reply not preceded by 0xFF".into());
    }
    match json_of(&r)? {
        j if j == serde_json::json!({"return": 424242}) => Ok("0xFF + {\"return\": 424242}".into()),
        j => Err(format!("reply {j}")),
    }
}

fn check_ping(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = ctx.request(r#"{"execute":"guest-ping"}"#)?;
    if r.line == br#"{"return": {}}"# && !r.delimited {
        Ok("{\"return\": {}}".into())
    } else {
        Err(format!("reply {:?}", String::from_utf8_lossy(&r.line)))
    }
}

fn check_info(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let info = ctx.exec::<GuestInfo>(&NoArgs {})?;
    let v: Vec<&str> = info.version.split('.').collect();
    if v.len() < 3
        || v.iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("version {:?} is not N.N.N", info.version));
    }
    let mut names: Vec<&str> = info
        .supported_commands
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    if names.len() != n {
        return Err("a command is listed twice".into());
    }
    for core in CORE_COMMANDS {
        let Some(c) = info.supported_commands.iter().find(|c| c.name == *core) else {
            return Err(format!("{core} is not listed"));
        };
        if !c.enabled || !c.success_response {
            return Err(format!(
                "{core}: enabled={} success-response={}",
                c.enabled, c.success_response
            ));
        }
    }
    Ok(format!(
        "version {}, {n} commands, all core ones enabled",
        info.version
    ))
}

fn check_info_version_default(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let info = ctx.exec::<GuestInfo>(&NoArgs {})?;
    if info.version == "10.2.0" {
        Ok("10.2.0".into())
    } else {
        Err(format!("version {}", info.version))
    }
}

fn check_time(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let before = now_ns();
    let guest = ctx.exec::<GuestGetTime>(&NoArgs {})?;
    let after = now_ns();
    let slack = 5_000_000_000;
    if guest < before - slack || guest > after + slack {
        return Err(format!("guest {guest} ns, host {before}..{after} ns"));
    }
    let mid = before / 2 + after / 2;
    Ok(format!(
        "guest - host = {:+.3} s",
        (guest - mid) as f64 / 1e9
    ))
}

fn check_time_resolution(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(ctx.exec::<GuestGetTime>(&NoArgs {})?);
    }
    if samples.windows(2).any(|w| w[1] < w[0]) {
        return Err(format!("time went backwards: {samples:?}"));
    }
    if samples.iter().any(|t| t % 1000 != 0) {
        Ok("nanosecond digits present".into())
    } else {
        Err(format!("all 5 samples are whole microseconds: {samples:?}"))
    }
}

fn check_host_name(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let h = ctx.exec::<GuestGetHostName>(&NoArgs {})?;
    if h.host_name == image::HOSTNAME {
        Ok(h.host_name)
    } else {
        Err(format!(
            "{:?}, image has {:?}",
            h.host_name,
            image::HOSTNAME
        ))
    }
}

fn check_timezone(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let tz = ctx.exec::<GuestGetTimezone>(&NoArgs {})?;
    if tz.zone.as_deref() == Some(image::TZ_ABBR) && tz.offset == image::TZ_OFFSET {
        Ok(format!("{} {:+}", image::TZ_ABBR, tz.offset))
    } else {
        Err(format!(
            "zone {:?} offset {}, image has {} {}",
            tz.zone,
            tz.offset,
            image::TZ_ABBR,
            image::TZ_OFFSET
        ))
    }
}

fn check_osinfo(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let os = ctx.exec::<GuestGetOsinfo>(&NoArgs {})?;
    let (status, uname_v) = ctx
        .vm
        .shell("uname -v", Duration::from_secs(20))
        .map_err(|e| e.0)?;
    let uname_v = uname_v.trim();
    let j = serde_json::to_value(&os).map_err(|e| e.to_string())?;
    let mut wrong = Vec::new();
    let mut expect = |member: &str, want: &str| {
        let got = j.get(member).and_then(Json::as_str);
        if got != Some(want) {
            wrong.push(format!("{member}: {got:?}, want {want:?}"));
        }
    };
    expect("kernel-release", &ctx.image.kernel_release);
    expect("machine", "x86_64");
    if status == 0 {
        expect("kernel-version", uname_v);
    }
    for (member, want) in image::OS_EXPECTED {
        expect(member, want);
    }
    if wrong.is_empty() {
        Ok(format!(
            "{} fields match the image",
            image::OS_EXPECTED.len() + 3
        ))
    } else {
        Err(wrong.join("; "))
    }
}

fn check_osinfo_single_quoted(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let os = ctx.exec::<GuestGetOsinfo>(&NoArgs {})?;
    if os.variant.as_deref() == Some(image::OS_EXPECTED_VARIANT) {
        Ok(format!("variant {:?}", image::OS_EXPECTED_VARIANT))
    } else {
        Err(format!(
            "variant {:?}, os-release has '{}'",
            os.variant,
            image::OS_EXPECTED_VARIANT
        ))
    }
}

fn check_users(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let mut users = ctx.exec::<GuestGetUsers>(&NoArgs {})?;
    users.sort_by(|a, b| a.user.cmp(&b.user));
    let want = image::expected_users();
    let ok = users.len() == want.len()
        && users.iter().zip(&want).all(|(u, (name, t))| {
            u.user == *name && (u.login_time - t).abs() < 1e-6 && u.domain.is_none()
        });
    let got: Vec<String> = users
        .iter()
        .map(|u| format!("{}@{}", u.user, u.login_time))
        .collect();
    if ok {
        Ok(got.join(", "))
    } else {
        Err(format!("got [{}], utmp has {want:?}", got.join(", ")))
    }
}

fn check_id_echo(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let ids = [r#""abc""#, "42", r#"{"k": [1, "x", true]}"#, "-7", "null"];
    for id in ids {
        let r = ctx.request(&format!(r#"{{"execute":"guest-ping","id":{id}}}"#))?;
        let want: Json = serde_json::from_str(id).map_err(|e| e.to_string())?;
        let got = json_of(&r)?;
        if got.get("id") != Some(&want) || got.get("return") != Some(&serde_json::json!({})) {
            return Err(format!("id {id}: reply {got}"));
        }
    }
    Ok(format!("{} ids echoed", ids.len()))
}

fn check_id_echo_error(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let r = ctx.request(r#"{"execute":"guest-no-such-command","id":"e1"}"#)?;
    let j = json_of(&r)?;
    if j.get("id") == Some(&Json::from("e1")) && j.get("error").is_some() {
        Ok("error reply carries the id".into())
    } else {
        Err(format!("reply {j}"))
    }
}

fn run_error_case(
    ctx: &mut Ctx<'_>,
    request: &str,
    class: &str,
    desc: &str,
) -> Result<String, String> {
    let r = ctx.request(request)?;
    let j = json_of(&r)?;
    let want = serde_json::json!({"error": {"class": class, "desc": desc}});
    if j == want {
        Ok(format!("{class}: {desc}"))
    } else {
        Err(format!("reply {j}"))
    }
}

fn check_pipelined(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let n = 50;
    let mut batch = String::new();
    for i in 0..n {
        batch.push_str(&format!(
            "{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{}}},\"id\":{i}}}\n",
            1000 + i
        ));
    }
    ctx.send(batch.as_bytes())?;
    for i in 0..n {
        let j = json_of(&ctx.reply()?)?;
        if j != serde_json::json!({"return": 1000 + i, "id": i}) {
            return Err(format!("reply {i}: {j}"));
        }
    }
    Ok(format!("{n} requests in one write, {n} replies in order"))
}

fn check_two_per_line(ctx: &mut Ctx<'_>) -> Result<String, String> {
    ctx.send(b"{\"execute\":\"guest-ping\",\"id\":1}{\"execute\":\"guest-ping\",\"id\":2}\n")?;
    for i in 1..=2 {
        let j = json_of(&ctx.reply()?)?;
        if j.get("id") != Some(&Json::from(i)) {
            return Err(format!("reply {i}: {j}"));
        }
    }
    Ok("two objects on one line, two replies".into())
}

fn check_split_writes(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let req = br#"{"execute":"guest-sync","arguments":{"id":777}}"#;
    for b in req.iter().chain(b"\n") {
        ctx.send(std::slice::from_ref(b))?;
        std::thread::sleep(Duration::from_millis(3));
    }
    let j = json_of(&ctx.reply()?)?;
    if j == serde_json::json!({"return": 777}) {
        Ok(format!("{} one-byte writes, one reply", req.len() + 1))
    } else {
        Err(format!("reply {j}"))
    }
}

fn sync_and_ping(ctx: &mut Ctx<'_>) -> Result<Duration, String> {
    let t = Instant::now();
    ctx.client()?.sync().map_err(|e| format!("sync: {e}"))?;
    let took = t.elapsed();
    let j = json_of(&ctx.request(r#"{"execute":"guest-ping","id":"after"}"#)?)?;
    if j != serde_json::json!({"return": {}, "id": "after"}) {
        return Err(format!("ping after sync: {j}"));
    }
    Ok(took)
}

fn check_resync_garbage(ctx: &mut Ctx<'_>) -> Result<String, String> {
    ctx.send(b"}{]\x01\x02garbage \"unterminated {\"execute\": [[[\n")?;
    let took = sync_and_ping(ctx)?;
    Ok(format!("0xFF resync after garbage in {took:.1?}"))
}

fn check_resync_mid_request(ctx: &mut Ctx<'_>) -> Result<String, String> {
    ctx.send(br#"{"execute":"guest-sync","arguments":{"id":"#)?;
    std::thread::sleep(Duration::from_millis(100));
    let took = sync_and_ping(ctx)?;
    Ok(format!(
        "0xFF resync in the middle of a request in {took:.1?}"
    ))
}

fn check_host_reconnect(ctx: &mut Ctx<'_>) -> Result<String, String> {
    for round in 0..3 {
        ctx.drop_client();
        ctx.client().map_err(|e| format!("round {round}: {e}"))?;
        let j = json_of(&ctx.request(&format!(r#"{{"execute":"guest-ping","id":{round}}}"#))?)?;
        if j.get("id") != Some(&Json::from(round)) {
            return Err(format!("round {round}: {j}"));
        }
    }
    Ok("closed and reopened the host socket 3 times; replies flow after 0xFF + sync".into())
}

fn check_queued_replies(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let n = 200;
    let first = 5000;
    let mut batch = String::new();
    for i in 0..n {
        batch.push_str(&format!(
            "{{\"execute\":\"guest-info\",\"id\":{}}}\n",
            first + i
        ));
    }
    {
        let c = ctx.client()?;
        c.get_mut()
            .set_write_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        c.send_raw(batch.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
    }
    // Once the first reply is here the agent is busy answering: hang up at once, leaving the
    // rest of the replies unread.
    let j = json_of(&ctx.reply()?)?;
    if j.get("id") != Some(&Json::from(first)) {
        return Err(format!("first reply {j}"));
    }
    ctx.drop_client();
    let sock = ctx.vm.socket(ctx.transport);
    let s = UnixStream::connect(&sock).map_err(|e| format!("reconnect: {e}"))?;
    let mut c = Client::new(s);
    c.set_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let sync_id = 987_654;
    let mut req = vec![0xFFu8];
    req.extend_from_slice(
        format!("{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{sync_id}}}}}\n")
            .as_bytes(),
    );
    c.send_raw(&req).map_err(|e| format!("send: {e}"))?;
    let mut stale = Vec::new();
    let mut torn = 0;
    let mut last_id = first;
    loop {
        let r = c
            .read_reply()
            .map_err(|e| format!("after reconnect, {} stale lines, then: {e}", stale.len()))?;
        let parsed = r.value().map(|v| v.into_json());
        match parsed {
            Ok(j) if r.delimited && j == serde_json::json!({"return": sync_id}) => break,
            Ok(j) => {
                if let Some(id) = j.get("id").and_then(Json::as_i64) {
                    if id <= last_id || id >= first + n {
                        return Err(format!("stale reply with id {id} after id {last_id}"));
                    }
                    last_id = id;
                    stale.push(id);
                } else if !j
                    .pointer("/error/desc")
                    .and_then(Json::as_str)
                    .is_some_and(|d| d.starts_with("JSON parse error"))
                {
                    return Err(format!("unexpected line before the sync reply: {j}"));
                }
            }
            Err(_) if stale.is_empty() && torn == 0 => torn += 1,
            Err(_) => {
                return Err(format!(
                    "torn line in the middle: {:?}",
                    String::from_utf8_lossy(&r.line)
                ));
            }
        }
    }
    for i in 0..10 {
        c.send_raw(format!("{{\"execute\":\"guest-ping\",\"id\":{i}}}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let j = json_of(&c.read_reply().map_err(|e| e.to_string())?)?;
        if j != serde_json::json!({"return": {}, "id": i}) {
            return Err(format!("ping {i} after reconnect: {j}"));
        }
    }
    ctx.client = Some(c);
    Ok(format!(
        "{} queued replies delivered after the reconnect{}, in order; {} torn line(s); new requests answered",
        stale.len(),
        match (stale.first(), stale.last()) {
            (Some(a), Some(b)) => format!(" (ids {a}..{b})"),
            _ => String::new(),
        },
        torn
    ))
}

/// The guest pid of the agent serving this transport.
fn agent_pid(ctx: &mut Ctx<'_>) -> Result<Option<u32>, String> {
    let script = r#"for p in /proc/[0-9]*; do c=$(tr '\0' ' ' <$p/cmdline 2>/dev/null); case "$c" in "/usr/bin/qemu-ga "*) echo "${p#/proc/} $c";; esac; done"#;
    let (_, out) = ctx
        .vm
        .shell(script, Duration::from_secs(20))
        .map_err(|e| e.0)?;
    let want_isa = ctx.transport == Transport::IsaSerial;
    Ok(out
        .lines()
        .filter(|l| l.contains("isa-serial") == want_isa)
        .find_map(|l| l.split(' ').next().and_then(|p| p.parse().ok())))
}

fn check_agent_restart(ctx: &mut Ctx<'_>) -> Result<String, String> {
    ctx.client()?;
    let old = agent_pid(ctx)?.ok_or("agent process not found in the guest")?;
    ctx.vm
        .shell(&format!("kill -TERM {old}"), Duration::from_secs(20))
        .map_err(|e| e.0)?;
    let t = Instant::now();
    let deadline = t + Duration::from_secs(20);
    let new = loop {
        match agent_pid(ctx)? {
            Some(p) if p != old => break p,
            _ if Instant::now() > deadline => {
                return Err("the agent was not respawned in 20 s".into());
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    // The host end stays connected; requests sent before the new agent opened the port wait
    // (virtio-serial) or are lost (isa-serial), so retry the 0xFF + sync until it answers.
    let c = ctx.client.as_mut().ok_or("no client")?;
    crate::vm::sync_retry(c, Duration::from_secs(30)).map_err(|e| e.0)?;
    let took = t.elapsed();
    let j = json_of(&ctx.request(r#"{"execute":"guest-ping","id":"restarted"}"#)?)?;
    if j != serde_json::json!({"return": {}, "id": "restarted"}) {
        return Err(format!("ping after restart: {j}"));
    }
    Ok(format!(
        "killed pid {old} in the guest, respawned as {new}, answering after {took:.1?} without a host reconnect"
    ))
}

/// Runs one check, turning panics of the check into failures.
fn run_check(ctx: &mut Ctx<'_>, check: &Check) -> CheckResult {
    let t = Instant::now();
    let r = match check.kind {
        CheckKind::Run(f) => f(ctx),
        CheckKind::Error {
            request,
            class,
            desc,
        } => run_error_case(ctx, request, class, desc),
    };
    let (outcome, detail) = match r {
        Ok(d) => (Outcome::Pass, d),
        Err(d) => {
            // Whatever state the stream is in, the next check starts from a fresh sync.
            ctx.drop_client();
            (Outcome::Fail, d)
        }
    };
    CheckResult {
        transport: ctx.transport.name().to_string(),
        name: check.name.to_string(),
        outcome,
        detail: format!("{detail} [{:.1?}]", t.elapsed()),
    }
}

/// Runs the whole suite on one transport: the coverage check (every command in guest-info
/// has a row in [`COMMAND_CHECKS`]), the command checks, then the protocol checks.
pub fn run_suite(
    vm: &mut Vm,
    image: &Image,
    transport: Transport,
    flavour: Flavour,
) -> Vec<CheckResult> {
    let mut ctx = Ctx::new(vm, image, transport);
    let mut out = Vec::new();
    let result = |name: &str, outcome, detail: String| CheckResult {
        transport: transport.name().to_string(),
        name: name.to_string(),
        outcome,
        detail,
    };
    let listed = match ctx.listed_commands() {
        Ok(l) => l,
        Err(e) => {
            out.push(result(
                "coverage",
                Outcome::Fail,
                format!("guest-info failed: {e}"),
            ));
            return out;
        }
    };
    let unchecked: Vec<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|n| !COMMAND_CHECKS.iter().any(|c| c.command == Some(*n)))
        .collect();
    out.push(match (unchecked.is_empty(), flavour) {
        (true, _) => result(
            "coverage",
            Outcome::Pass,
            format!("all {} listed commands have checks", listed.len()),
        ),
        (false, Flavour::Ours) => result(
            "coverage",
            Outcome::Fail,
            format!(
                "listed by guest-info but without a check in COMMAND_CHECKS: {}",
                unchecked.join(", ")
            ),
        ),
        (false, Flavour::Reference) => result(
            "coverage",
            Outcome::Skip,
            format!(
                "{} of {} listed commands are not in our agent yet",
                unchecked.len(),
                listed.len()
            ),
        ),
    });
    // QGA_VM_ONLY=a,b: run only the checks whose names contain one of these (development).
    let only: Vec<String> = std::env::var("QGA_VM_ONLY")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let chosen = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    for check in COMMAND_CHECKS {
        let cmd = check.command.unwrap_or_default();
        if !chosen(check.name) {
            out.push(result(
                check.name,
                Outcome::Skip,
                "not in QGA_VM_ONLY".into(),
            ));
        } else if listed.iter().any(|l| l == cmd) {
            out.push(run_check(&mut ctx, check));
        } else {
            out.push(result(
                check.name,
                Outcome::Skip,
                format!("{cmd} is not listed by guest-info"),
            ));
        }
    }
    for check in PROTOCOL_CHECKS {
        match check.only_on {
            _ if !chosen(check.name) => out.push(result(
                check.name,
                Outcome::Skip,
                "not in QGA_VM_ONLY".into(),
            )),
            Some(t) if t != transport => out.push(result(
                check.name,
                Outcome::Skip,
                format!("runs once, on {}", t.name()),
            )),
            _ => out.push(run_check(&mut ctx, check)),
        }
    }
    out
}
