//! The libvirt suite: a transient domain booting the same kernel and initramfs with the
//! agent channel libvirt manages, and a table of virsh commands, each naming the agent
//! commands it needs. Rows whose commands the agent does not list yet are reported as
//! pending; they run (and must pass) as soon as guest-info lists them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

use crate::Error;
use crate::env::TestEnv;
use crate::image::{self, Image};
use crate::suite::{CheckResult, Outcome};
use crate::vm::{Accel, Flavour, kernel_cmdline};

/// libvirt's URI for the system QEMU driver.
pub const URI: &str = "qemu:///system";

/// What virsh printed.
#[derive(Debug, Clone)]
pub struct VirshOutput {
    /// Whether it exited with 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `virsh -c qemu:///system ARGS`, bounded by `timeout`.
pub fn virsh(args: &[&str], timeout: Duration) -> Result<VirshOutput, Error> {
    let out = Command::new("timeout")
        .args([
            "-k",
            "5",
            &timeout.as_secs().to_string(),
            "virsh",
            "-c",
            URI,
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::msg(format!("virsh: {e}")))?;
    Ok(VirshOutput {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// How a row judges virsh's output.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// virsh succeeds; the function checks its standard output.
    Ok(fn(&str) -> Result<String, String>),
    /// virsh fails and its standard error contains this text.
    Fails(&'static str),
    /// A sequence of virsh commands (and guest-side verification) against the domain; the
    /// row's `args` only name it.
    Run(fn(&Domain) -> Result<String, String>),
}

/// One virsh command of the table.
#[derive(Debug, Clone, Copy)]
pub struct VirshCase {
    /// Its name in the report.
    pub name: &'static str,
    /// virsh's arguments; `{dom}` is replaced by the domain's name.
    pub args: &'static [&'static str],
    /// The agent commands it needs; the row is pending until guest-info lists them all.
    pub needs: &'static [&'static str],
    /// What must come out.
    pub expect: Expect,
}

const fn case(
    name: &'static str,
    args: &'static [&'static str],
    needs: &'static [&'static str],
    expect: Expect,
) -> VirshCase {
    VirshCase {
        name,
        args,
        needs,
        expect,
    }
}

/// The virsh table. Commands the agent core supports come first; the others wait for the
/// agent command they need (README: "virsh commands and the agent commands they need").
/// `shutdown --mode agent` ends the domain, so it is last.
pub const VIRSH_CASES: &[VirshCase] = &[
    case(
        "guestinfo --os --timezone --hostname --user",
        &[
            "guestinfo",
            "--os",
            "--timezone",
            "--hostname",
            "--user",
            "{dom}",
        ],
        &[
            "guest-get-osinfo",
            "guest-get-timezone",
            "guest-get-host-name",
            "guest-get-users",
        ],
        Expect::Ok(expect_guestinfo_core),
    ),
    case(
        "domhostname --source agent",
        &["domhostname", "--source", "agent", "{dom}"],
        &["guest-get-host-name"],
        Expect::Ok(expect_hostname),
    ),
    case(
        "domtime",
        &["domtime", "{dom}"],
        &["guest-get-time"],
        Expect::Ok(expect_domtime),
    ),
    case(
        "qemu-agent-command guest-ping",
        &["qemu-agent-command", "{dom}", r#"{"execute":"guest-ping"}"#],
        &["guest-ping"],
        Expect::Ok(expect_ping),
    ),
    case(
        "qemu-agent-command guest-info",
        &["qemu-agent-command", "{dom}", r#"{"execute":"guest-info"}"#],
        &["guest-info"],
        Expect::Ok(expect_info),
    ),
    case(
        "qga-client: discovery and calls through libvirt",
        &["{dom}"],
        &["guest-info", "guest-get-host-name", "guest-get-osinfo"],
        Expect::Run(run_qga_client),
    ),
    case(
        "qemu-agent-command guest-sync",
        &[
            "qemu-agent-command",
            "{dom}",
            r#"{"execute":"guest-sync","arguments":{"id":123456}}"#,
        ],
        &["guest-sync"],
        Expect::Ok(expect_sync),
    ),
    case(
        "qemu-agent-command --timeout 10 guest-get-time",
        &[
            "qemu-agent-command",
            "--timeout",
            "10",
            "{dom}",
            r#"{"execute":"guest-get-time"}"#,
        ],
        &["guest-get-time"],
        Expect::Ok(expect_time_json),
    ),
    case(
        "qemu-agent-command unknown command",
        &[
            "qemu-agent-command",
            "{dom}",
            r#"{"execute":"guest-no-such-command"}"#,
        ],
        &["guest-info"],
        Expect::Fails("The command guest-no-such-command has not been found"),
    ),
    case(
        "qemu-agent-command missing argument",
        &["qemu-agent-command", "{dom}", r#"{"execute":"guest-sync"}"#],
        &["guest-sync"],
        Expect::Fails("Parameter 'id' is missing"),
    ),
    case(
        "qemu-agent-command bad argument type",
        &[
            "qemu-agent-command",
            "{dom}",
            r#"{"execute":"guest-sync","arguments":{"id":"x"}}"#,
        ],
        &["guest-sync"],
        Expect::Fails("Invalid parameter type for 'id', expected: integer"),
    ),
    // Waiting for agent commands that are not there yet.
    case(
        "domifaddr --source agent",
        &["domifaddr", "--source", "agent", "{dom}"],
        &["guest-network-get-interfaces"],
        Expect::Ok(expect_ifaddr),
    ),
    case(
        "guestinfo --interface",
        &["guestinfo", "--interface", "{dom}"],
        &["guest-network-get-interfaces"],
        Expect::Ok(expect_if_count),
    ),
    case(
        "guestinfo --filesystem",
        &["guestinfo", "--filesystem", "{dom}"],
        &["guest-get-fsinfo"],
        Expect::Ok(expect_fs_count),
    ),
    case(
        "domfsinfo",
        &["domfsinfo", "{dom}"],
        &["guest-get-fsinfo"],
        Expect::Ok(expect_domfsinfo),
    ),
    case(
        "guestinfo --disk",
        &["guestinfo", "--disk", "{dom}"],
        &["guest-get-disks"],
        Expect::Ok(expect_disk_count),
    ),
    case(
        "guestvcpus",
        &["guestvcpus", "{dom}"],
        &["guest-get-vcpus"],
        Expect::Ok(expect_guestvcpus),
    ),
    case(
        "domfsfreeze",
        &["domfsfreeze", "{dom}"],
        &["guest-fsfreeze-freeze"],
        Expect::Ok(expect_frozen),
    ),
    case(
        "domfsthaw",
        &["domfsthaw", "{dom}"],
        &["guest-fsfreeze-thaw"],
        Expect::Ok(expect_thawed),
    ),
    case(
        "domfstrim",
        &["domfstrim", "{dom}"],
        &["guest-fstrim"],
        Expect::Ok(expect_anything),
    ),
    case(
        "domtime --sync",
        &["domtime", "--sync", "{dom}"],
        &["guest-set-time"],
        Expect::Ok(expect_anything),
    ),
    case(
        "set-user-password",
        &["set-user-password", "{dom}", "alice", "s3cret-Pass"],
        &["guest-set-user-password"],
        Expect::Ok(expect_anything),
    ),
    case(
        "guestinfo (all groups)",
        &["guestinfo", "{dom}"],
        &[
            "guest-get-osinfo",
            "guest-get-timezone",
            "guest-get-host-name",
            "guest-get-users",
            "guest-network-get-interfaces",
        ],
        Expect::Ok(expect_guestinfo_all),
    ),
    case(
        "guestvcpus --cpulist 1 --disable / --enable",
        &["guestvcpus", "{dom}", "--cpulist", "1", "--disable"],
        &["guest-get-vcpus", "guest-set-vcpus"],
        Expect::Run(run_guestvcpus_toggle),
    ),
    case(
        "domtime --time / --now",
        &["domtime", "{dom}", "--time", "--now"],
        &["guest-get-time", "guest-set-time"],
        Expect::Run(run_domtime_set),
    ),
    case(
        "domtime --sync (from the RTC)",
        &["domtime", "--sync", "{dom}"],
        &["guest-get-time", "guest-set-time"],
        Expect::Run(run_domtime_sync),
    ),
    case(
        "set-user-password (verified in /etc/shadow)",
        &["set-user-password", "{dom}", "bob", "..."],
        &["guest-set-user-password", "guest-exec", "guest-exec-status"],
        Expect::Run(run_set_password),
    ),
    case(
        "set-user-password --encrypted",
        &["set-user-password", "--encrypted", "{dom}", "carol", "..."],
        &["guest-set-user-password", "guest-exec", "guest-exec-status"],
        Expect::Run(run_set_password_encrypted),
    ),
    case(
        "set-user-sshkeys / get-user-sshkeys",
        &["set-user-sshkeys", "{dom}", "bob", "--file", "..."],
        &[
            "guest-ssh-add-authorized-keys",
            "guest-ssh-get-authorized-keys",
            "guest-ssh-remove-authorized-keys",
        ],
        Expect::Run(run_sshkeys),
    ),
    case(
        "qemu-agent-command guest-exec + guest-exec-status",
        &["qemu-agent-command", "{dom}", "guest-exec ..."],
        &["guest-exec", "guest-exec-status"],
        Expect::Run(run_exec),
    ),
    case(
        "reboot --mode agent",
        &["reboot", "--mode", "agent", "{dom}"],
        &["guest-shutdown"],
        Expect::Run(run_reboot),
    ),
    case(
        "shutdown --mode agent",
        &["shutdown", "--mode", "agent", "{dom}"],
        &["guest-shutdown"],
        Expect::Ok(expect_anything),
    ),
];

/// `key : value` lines of virsh guestinfo.
fn fields(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

fn field<'a>(f: &'a [(String, String)], key: &str) -> Option<&'a str> {
    f.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn expect_guestinfo_core(out: &str) -> Result<String, String> {
    let f = fields(out);
    let mut wrong = Vec::new();
    let mut want = |key: &str, value: &str| {
        if field(&f, key) != Some(value) {
            wrong.push(format!("{key}: {:?}, want {value:?}", field(&f, key)));
        }
    };
    for (member, value) in image::OS_EXPECTED {
        want(&format!("os.{member}"), value);
    }
    want("os.machine", "x86_64");
    want("timezone.name", image::TZ_ABBR);
    want("timezone.offset", &image::TZ_OFFSET.to_string());
    want("hostname", image::HOSTNAME);
    let users = image::expected_users();
    want("user.count", &users.len().to_string());
    // libvirt lists the users in the agent's order: compare as a set.
    let mut got: Vec<(String, String)> = (0..users.len())
        .map(|i| {
            (
                field(&f, &format!("user.{i}.name"))
                    .unwrap_or_default()
                    .to_string(),
                field(&f, &format!("user.{i}.login-time"))
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    got.sort();
    let expected: Vec<(String, String)> = users
        .iter()
        .map(|(u, t)| (u.clone(), format!("{}", (t * 1000.0) as u64)))
        .collect();
    if got != expected {
        wrong.push(format!(
            "users {got:?}, want {expected:?} (login-time in ms)"
        ));
    }
    if wrong.is_empty() {
        Ok(format!("{} fields match the image", f.len()))
    } else {
        Err(wrong.join("; "))
    }
}

fn expect_hostname(out: &str) -> Result<String, String> {
    if out.trim() == image::HOSTNAME {
        Ok(out.trim().to_string())
    } else {
        Err(format!("{:?}", out.trim()))
    }
}

fn expect_domtime(out: &str) -> Result<String, String> {
    let secs: i64 = out
        .trim()
        .strip_prefix("Time:")
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("unexpected output {out:?}"))?;
    let host = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (secs - host).abs() <= 10 {
        Ok(format!("guest - host = {:+} s", secs - host))
    } else {
        Err(format!("guest {secs}, host {host}"))
    }
}

fn parse_json(out: &str) -> Result<Json, String> {
    serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out:?}"))
}

fn expect_ping(out: &str) -> Result<String, String> {
    match parse_json(out)? {
        j if j == serde_json::json!({"return": {}}) => Ok(j.to_string()),
        j => Err(j.to_string()),
    }
}

fn expect_info(out: &str) -> Result<String, String> {
    let j = parse_json(out)?;
    let names: Vec<&str> = j
        .pointer("/return/supported_commands")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Json::as_str))
                .collect()
        })
        .unwrap_or_default();
    match crate::suite::CORE_COMMANDS
        .iter()
        .find(|c| !names.contains(c))
    {
        None => Ok(format!(
            "version {}, {} commands",
            j.pointer("/return/version").unwrap_or(&Json::Null),
            names.len()
        )),
        Some(missing) => Err(format!("{missing} not listed")),
    }
}

fn expect_sync(out: &str) -> Result<String, String> {
    match parse_json(out)? {
        j if j == serde_json::json!({"return": 123456}) => Ok(j.to_string()),
        j => Err(j.to_string()),
    }
}

fn expect_time_json(out: &str) -> Result<String, String> {
    let j = parse_json(out)?;
    let ns = j
        .get("return")
        .and_then(Json::as_i64)
        .ok_or_else(|| j.to_string())?;
    let host = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    if (ns - host).abs() < 10_000_000_000 {
        Ok(format!("guest - host = {:+.3} s", (ns - host) as f64 / 1e9))
    } else {
        Err(format!("guest {ns}, host {host}"))
    }
}

fn expect_ifaddr(out: &str) -> Result<String, String> {
    if out.contains("10.0.2.15/24")
        && out.contains("52:54:00:71:67:61")
        && out.contains("127.0.0.1/8")
    {
        Ok("eth0 10.0.2.15/24 and lo listed".into())
    } else {
        Err(out.trim().to_string())
    }
}

fn expect_if_count(out: &str) -> Result<String, String> {
    let f = fields(out);
    match field(&f, "if.count").and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if n >= 2 => Ok(format!("{n} interfaces")),
        _ => Err(out.trim().to_string()),
    }
}

/// `guestinfo --filesystem`: /mnt/data, whose disk libvirt matched (by the agent's PCI
/// address) to the domain's target for that disk.
fn expect_fs_count(out: &str) -> Result<String, String> {
    let f = fields(out);
    let prefix = f
        .iter()
        .find(|(k, v)| k.ends_with(".mountpoint") && v == "/mnt/data")
        .and_then(|(k, _)| k.strip_suffix(".mountpoint"));
    // The alias is libvirt's match of the agent's disk address to the domain's target: the
    // data disk's own (vda in the busybox guest, vdb in the Debian guest, whose root is vda).
    let name = prefix.and_then(|p| field(&f, &format!("{p}.name")));
    let alias = prefix.and_then(|p| field(&f, &format!("{p}.disk.0.alias")));
    match (prefix, name, alias) {
        (Some(p), Some(n), Some(a)) if a == n && a.starts_with("vd") => {
            Ok(format!("/mnt/data listed, {p}.disk.0.alias {a}"))
        }
        _ => Err(out.trim().to_string()),
    }
}

/// `domfsinfo`: the /mnt/data row is `vdX ext4 vdX` (the Target column is libvirt's match
/// of the agent's disk address to the domain's `<target dev='vdX'>`: vda in the busybox
/// guest, vdb in the Debian guest).
fn expect_domfsinfo(out: &str) -> Result<String, String> {
    let row: Option<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&"/mnt/data"));
    match row.as_deref() {
        Some(["/mnt/data", name, "ext4", target]) if name == target && name.starts_with("vd") => {
            Ok(format!("/mnt/data {name} ext4, target {target}"))
        }
        _ => Err(out.trim().to_string()),
    }
}

/// `guestinfo --disk`: /dev/vda, matched by libvirt to the domain's `vda`.
fn expect_disk_count(out: &str) -> Result<String, String> {
    let f = fields(out);
    let prefix = f
        .iter()
        .find(|(k, v)| k.starts_with("disk.") && k.ends_with(".name") && v == "/dev/vda")
        .and_then(|(k, _)| k.strip_suffix(".name"));
    match prefix {
        Some(p) if field(&f, &format!("{p}.alias")) == Some("vda") => {
            Ok(format!("/dev/vda listed, {p}.alias vda"))
        }
        _ => Err(out.trim().to_string()),
    }
}

fn expect_guestvcpus(out: &str) -> Result<String, String> {
    let f = fields(out);
    // The domain has 2 of 4 vCPUs; cpu0 has no `online` file, so only cpu1 can go offline.
    match (
        field(&f, "vcpus"),
        field(&f, "online"),
        field(&f, "offlinable"),
    ) {
        (Some("0-1"), Some("0-1"), Some("1")) => Ok("vcpus 0-1, online 0-1, offlinable 1".into()),
        _ => Err(out.trim().to_string()),
    }
}

fn expect_guestinfo_all(out: &str) -> Result<String, String> {
    let f = fields(out);
    let mut wrong = Vec::new();
    for (key, want) in [
        ("os.id", "qgatest"),
        ("hostname", image::HOSTNAME),
        ("timezone.name", image::TZ_ABBR),
        ("user.count", "2"),
    ] {
        if field(&f, key) != Some(want) {
            wrong.push(format!("{key}: {:?}, want {want:?}", field(&f, key)));
        }
    }
    let ifs = field(&f, "if.count").and_then(|n| n.parse::<u32>().ok());
    if ifs.is_none_or(|n| n < 2) {
        wrong.push(format!("if.count {ifs:?}"));
    }
    let eth = f
        .iter()
        .any(|(k, v)| k.ends_with(".addr.0.addr") && v == "10.0.2.15")
        || f.iter()
            .any(|(k, v)| k.contains(".addr.") && v == "10.0.2.15");
    if !eth {
        wrong.push("10.0.2.15 not listed".into());
    }
    if wrong.is_empty() {
        Ok(format!(
            "{} fields; os, hostname, timezone, users, interfaces",
            f.len()
        ))
    } else {
        Err(wrong.join("; "))
    }
}

/// Runs virsh (60 s bound); its standard output, or the error it printed.
pub fn virsh_ok(args: &[&str]) -> Result<String, String> {
    let out = virsh(args, Duration::from_secs(60)).map_err(|e| e.0)?;
    if out.ok {
        Ok(out.stdout)
    } else {
        Err(format!("virsh {}: {}", args.join(" "), out.stderr.trim()))
    }
}

/// Sends `request` through `virsh qemu-agent-command`; the `return` member of the reply.
pub fn agent_json(dom: &Domain, request: &Json) -> Result<Json, String> {
    let out = virsh_ok(&["qemu-agent-command", &dom.name, &request.to_string()])?;
    let j = parse_json(&out)?;
    j.get("return").cloned().ok_or_else(|| j.to_string())
}

/// Runs a shell command in the guest through `virsh qemu-agent-command` guest-exec and
/// guest-exec-status; returns the exit code and standard output.
pub fn agent_sh(dom: &Domain, script: &str) -> Result<(i64, String), String> {
    let r = agent_json(
        dom,
        &serde_json::json!({"execute": "guest-exec",
            "arguments": {"path": "/bin/sh", "arg": ["-c", script], "capture-output": true}}),
    )?;
    let pid = r
        .get("pid")
        .and_then(Json::as_i64)
        .ok_or_else(|| format!("guest-exec: {r}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = agent_json(
            dom,
            &serde_json::json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}),
        )?;
        if st.get("exited") == Some(&Json::Bool(true)) {
            let out = st
                .get("out-data")
                .and_then(Json::as_str)
                .and_then(|b| qga_proto::b64::decode(b).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return Ok((st.get("exitcode").and_then(Json::as_i64).unwrap_or(-1), out));
        }
        if Instant::now() > deadline {
            return Err(format!("pid {pid} still running after 30 s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn run_exec(dom: &Domain) -> Result<String, String> {
    let (code, out) = agent_sh(dom, "echo from-libvirt; uname -m; exit 3")?;
    if code == 3 && out == "from-libvirt\nx86_64\n" {
        Ok("exit code 3, stdout captured".into())
    } else {
        Err(format!("exit code {code}, stdout {out:?}"))
    }
}

fn run_guestvcpus_toggle(dom: &Domain) -> Result<String, String> {
    let d = dom.name.as_str();
    virsh_ok(&["guestvcpus", d, "--cpulist", "1", "--disable"])?;
    let off = fields(&virsh_ok(&["guestvcpus", d])?);
    let sysfs = agent_sh(dom, "cat /sys/devices/system/cpu/cpu1/online");
    virsh_ok(&["guestvcpus", d, "--cpulist", "1", "--enable"])?;
    let on = fields(&virsh_ok(&["guestvcpus", d])?);
    if field(&off, "online") != Some("0") {
        return Err(format!(
            "after --disable: online {:?}",
            field(&off, "online")
        ));
    }
    if sysfs.as_ref().map(|s| s.1.trim().to_string()) != Ok("0".into()) {
        return Err(format!("after --disable, cpu1/online: {sysfs:?}"));
    }
    if field(&on, "online") != Some("0-1") {
        return Err(format!("after --enable: online {:?}", field(&on, "online")));
    }
    Ok("cpu1 disabled (online 0, sysfs 0), enabled again (online 0-1)".into())
}

fn domtime_secs(dom: &Domain) -> Result<i64, String> {
    let out = virsh_ok(&["domtime", &dom.name])?;
    out.trim()
        .strip_prefix("Time:")
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("domtime printed {out:?}"))
}

fn host_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn run_domtime_set(dom: &Domain) -> Result<String, String> {
    let target = host_secs() + 3600;
    virsh_ok(&["domtime", &dom.name, "--time", &target.to_string()])?;
    let set = domtime_secs(dom)?;
    let r = virsh_ok(&["domtime", &dom.name, "--now"]);
    let now = domtime_secs(dom)?;
    r?;
    let host = host_secs();
    if (set - (host + 3600)).abs() > 10 {
        return Err(format!("after --time {target}: guest {set}"));
    }
    if (now - host).abs() > 10 {
        return Err(format!("after --now: guest {now}, host {host}"));
    }
    Ok(format!(
        "--time now+1h → guest {:+} s; --now → guest - host = {:+} s",
        set - host,
        now - host
    ))
}

fn run_domtime_sync(dom: &Domain) -> Result<String, String> {
    // Move the system clock only; --sync brings it back from the RTC (set by --now).
    let (code, _) = agent_sh(dom, &format!("date -s @{} >/dev/null", host_secs() - 7200))?;
    if code != 0 {
        return Err(format!("date -s exited {code}"));
    }
    let moved = domtime_secs(dom)?;
    virsh_ok(&["domtime", "--sync", &dom.name])?;
    let synced = domtime_secs(dom)?;
    let host = host_secs();
    if (moved - (host - 7200)).abs() > 10 || (synced - host).abs() > 10 {
        return Err(format!(
            "clock moved to {moved}, after --sync {synced}, host {host}"
        ));
    }
    Ok(format!(
        "clock moved −2 h; after --sync guest - host = {:+} s",
        synced - host
    ))
}

fn shadow_hash(dom: &Domain, user: &str) -> Result<String, String> {
    let (_, line) = agent_sh(dom, &format!("grep '^{user}:' /etc/shadow"))?;
    Ok(line.trim().split(':').nth(1).unwrap_or("").to_string())
}

fn run_set_password(dom: &Domain) -> Result<String, String> {
    let pw = "s3cret-Pass";
    virsh_ok(&["set-user-password", &dom.name, "bob", pw])?;
    let hash = shadow_hash(dom, "bob")?;
    if let Some(rest) = hash.strip_prefix("$6$") {
        // busybox (chpasswd's default there): recompute with its salt.
        let salt = rest.split('$').next().unwrap_or("");
        let (_, again) = agent_sh(dom, &mkpasswd_sha512(pw, salt))?;
        if again.trim() != hash {
            return Err(format!(
                "shadow {hash:?}, mkpasswd with its salt {:?}",
                again.trim()
            ));
        }
        return Ok("bob: $6$ hash verified with mkpasswd".into());
    }
    // Debian's chpasswd writes yescrypt ($y$): perl's crypt (libxcrypt) with the hash as
    // setting recomputes it.
    let (_, again) = agent_sh(
        dom,
        &format!("perl -e 'print crypt($ARGV[0], $ARGV[1])' '{pw}' '{hash}'"),
    )?;
    if hash.starts_with('$') && again.trim() == hash {
        Ok(format!("bob: {} hash verified with crypt(3)", &hash[..3]))
    } else {
        Err(format!(
            "shadow {hash:?}, crypt(3) with it as setting {again:?}"
        ))
    }
}

/// The shell command hashing `pw` with SHA-512 crypt and `salt`: busybox's mkpasswd calls the
/// method `sha512`, Debian's (whois) `sha-512`.
fn mkpasswd_sha512(pw: &str, salt: &str) -> String {
    format!("mkpasswd -m sha512 '{pw}' '{salt}' 2>/dev/null || mkpasswd -m sha-512 '{pw}' '{salt}'")
}

fn run_set_password_encrypted(dom: &Domain) -> Result<String, String> {
    let (_, hash) = agent_sh(dom, &mkpasswd_sha512("libvirt-pw", "virtsalt"))?;
    let hash = hash.trim().to_string();
    virsh_ok(&[
        "set-user-password",
        "--encrypted",
        &dom.name,
        "carol",
        &hash,
    ])?;
    let got = shadow_hash(dom, "carol")?;
    if got == hash {
        Ok(format!("carol: {hash} written as given"))
    } else {
        Err(format!("shadow {got:?}, set {hash:?}"))
    }
}

fn run_sshkeys(dom: &Domain) -> Result<String, String> {
    let d = dom.name.as_str();
    let k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvirt1 one@host";
    let k2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABvirt2 two@host";
    let k3 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvirt3 three@host";
    let file = |name: &str, keys: &[&str]| -> Result<String, String> {
        let p = dom.dir().join(name);
        std::fs::write(&p, keys.join("\n") + "\n").map_err(|e| e.to_string())?;
        Ok(p.to_string_lossy().into_owned())
    };
    // virsh 9.0 prints the keys as the agent returns them, without a newline between
    // (each key is expected to end with one): find each key in the output instead.
    let all = [k1, k2, k3];
    let get = || -> Result<Vec<String>, String> {
        let out = virsh_ok(&["get-user-sshkeys", d, "bob"])?.replace('\n', "");
        let mut v: Vec<String> = all
            .iter()
            .filter(|k| out.contains(**k))
            .map(|k| k.to_string())
            .collect();
        let len: usize = v.iter().map(String::len).sum();
        if len != out.len() {
            return Err(format!(
                "get-user-sshkeys printed more than the keys: {out:?}"
            ));
        }
        v.sort();
        Ok(v)
    };
    let sorted = |keys: &[&str]| {
        let mut v: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        v.sort();
        v
    };
    virsh_ok(&[
        "set-user-sshkeys",
        d,
        "bob",
        "--reset",
        "--file",
        &file("k12", &[k1, k2])?,
    ])?;
    virsh_ok(&[
        "set-user-sshkeys",
        d,
        "bob",
        "--file",
        &file("k23", &[k2, k3])?,
    ])?;
    let got = get()?;
    if got != sorted(&[k1, k2, k3]) {
        return Err(format!("after --reset [k1,k2] and adding [k2,k3]: {got:?}"));
    }
    virsh_ok(&[
        "set-user-sshkeys",
        d,
        "bob",
        "--remove",
        "--file",
        &file("k2", &[k2])?,
    ])?;
    let left = get()?;
    if left != sorted(&[k1, k3]) {
        return Err(format!("after --remove k2: {left:?}"));
    }
    let (_, perms) = agent_sh(
        dom,
        "stat -c '%a %U' /home/bob/.ssh /home/bob/.ssh/authorized_keys",
    )?;
    if perms.lines().collect::<Vec<_>>() != ["700 bob", "600 bob"] {
        return Err(format!("modes/owners {perms:?}"));
    }
    Ok("--reset, add (deduplicated), --remove; get-user-sshkeys lists them; 700/600 bob".into())
}

fn run_reboot(dom: &Domain) -> Result<String, String> {
    let boots = |dom: &Domain| {
        std::fs::read_to_string(&dom.console_log)
            .unwrap_or_default()
            .matches(image::READY_MARKER)
            .count()
    };
    let before = boots(dom);
    let t = Instant::now();
    virsh_ok(&["reboot", "--mode", "agent", &dom.name])?;
    while boots(dom) <= before {
        // A busybox guest boots in seconds; a Debian guest with systemd under TCG in minutes.
        if t.elapsed() > Duration::from_secs(300) {
            return Err("the guest did not boot again in 300 s".into());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    dom.wait_agent(Duration::from_secs(60)).map_err(|e| e.0)?;
    if !dom.running() {
        return Err("the domain is not running after the reboot".into());
    }
    Ok(format!(
        "rebooted; the agent answers again {:.1?} after the request",
        t.elapsed()
    ))
}

fn expect_frozen(out: &str) -> Result<String, String> {
    if out.contains("Froze") {
        Ok(out.trim().to_string())
    } else {
        Err(out.trim().to_string())
    }
}

fn expect_thawed(out: &str) -> Result<String, String> {
    if out.contains("Thawed") {
        Ok(out.trim().to_string())
    } else {
        Err(out.trim().to_string())
    }
}

fn expect_anything(out: &str) -> Result<String, String> {
    Ok(out.trim().chars().take(80).collect())
}

/// The commands guest-info lists as supported, through libvirt (empty if it fails).
pub fn listed_commands(dom: &Domain) -> Vec<String> {
    let reply = agent_json(dom, &serde_json::json!({"execute": "guest-info"}));
    reply
        .ok()
        .and_then(|r| {
            r.get("supported_commands")
                .and_then(Json::as_array)
                .cloned()
        })
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs every row of [`VIRSH_CASES`] against `dom` in order: a row whose commands `listed`
/// lacks is pending (skipped); `shutdown --mode agent` must also end the domain within 60 s.
pub fn run_cases(dom: &Domain, listed: &[String]) -> Vec<CheckResult> {
    let result = |name: &str, outcome, detail: String| CheckResult {
        transport: "libvirt".into(),
        name: name.into(),
        outcome,
        detail,
    };
    let mut results = Vec::new();
    for case in VIRSH_CASES {
        let missing: Vec<&str> = case
            .needs
            .iter()
            .copied()
            .filter(|n| !listed.iter().any(|l| l == n))
            .collect();
        if !missing.is_empty() {
            results.push(result(
                case.name,
                Outcome::Skip,
                format!("pending: waits for {}", missing.join(", ")),
            ));
            continue;
        }
        if !dom.running() {
            results.push(result(
                case.name,
                Outcome::Fail,
                "the domain is not running".into(),
            ));
            continue;
        }
        let mut r = dom.run_case(case);
        if r.outcome == Outcome::Pass && case.args.first() == Some(&"shutdown") {
            let t = Instant::now();
            while dom.running() && t.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(500));
            }
            if dom.running() {
                r.outcome = Outcome::Fail;
                r.detail = "the domain still runs 60 s after shutdown --mode agent".into();
            } else {
                r.detail = format!("domain shut off {:.1?} after the request", t.elapsed());
            }
        }
        results.push(r);
    }
    results
}

/// A transient domain; destroyed on drop (only this domain, by its name).
#[derive(Debug)]
pub struct Domain {
    /// Its name (`qga-vmtest-<pid>-<flavour>`).
    pub name: String,
    dir: tempfile::TempDir,
    /// The console log.
    pub console_log: PathBuf,
    /// When `virsh create` was started.
    pub started: Instant,
}

/// The domain XML: the same kernel, initramfs and devices as the QEMU runs, with the agent
/// channel managed by libvirt.
pub fn domain_xml(
    name: &str,
    accel: Accel,
    image: &Image,
    flavour: Flavour,
    dir: &Path,
    console: &Path,
) -> String {
    let kind = match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "qemu",
    };
    let p = |f: &str| dir.join(f).display().to_string();
    format!(
        r#"<domain type='{kind}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' discard='unmap'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
      <serial>{serial}</serial>
    </disk>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    <serial type='unix'><source mode='bind' path='{isa}'/><target port='1'/></serial>
    <console type='unix'><source mode='bind' path='{shell}'/><target type='virtio' port='1'/></console>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
  <qemu:commandline>
    <qemu:arg value='-netdev'/><qemu:arg value='user,id=net0,restrict=on'/>
    <qemu:arg value='-device'/><qemu:arg value='virtio-net-pci,netdev=net0,mac=52:54:00:71:67:61,bus=pcie.0,addr=0x10'/>
  </qemu:commandline>
</domain>
"#,
        kernel = image.kernel.display(),
        initrd = image.initrd.display(),
        cmdline = kernel_cmdline(flavour, Duration::from_secs(240)),
        disk = p("data.img"),
        serial = image::DATA_DISK_SERIAL,
        console = console.display(),
        isa = p("isa.sock"),
        shell = p("shell.sock"),
    )
}

impl Domain {
    /// Creates and starts a transient domain.
    pub fn create(
        env: &TestEnv,
        image: &Image,
        accel: Accel,
        flavour: Flavour,
    ) -> Result<Domain, Error> {
        Domain::create_with(env, flavour.name(), |name, dir, console_log| {
            image::make_data_disk(&dir.join("data.img"))?;
            Ok(domain_xml(name, accel, image, flavour, dir, console_log))
        })
    }

    /// Creates and starts a transient domain named `qga-vmtest-<pid>-<label>` from the XML
    /// `xml(name, dir, console_log)` returns; `dir` is the domain's fresh private directory
    /// (disks, sockets), removed on drop, and the console log is `logs/libvirt-<label>-console.log`.
    pub fn create_with(
        env: &TestEnv,
        label: &str,
        xml: impl FnOnce(&str, &Path, &Path) -> Result<String, Error>,
    ) -> Result<Domain, Error> {
        let name = format!("qga-vmtest-{}-{label}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("qga-virt-")
            .tempdir()
            .map_err(|e| Error::msg(format!("tempdir: {e}")))?;
        let logs = env.work.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, &e))?;
        let console_log = logs.join(format!("libvirt-{label}-console.log"));
        let _ = std::fs::remove_file(&console_log);
        let xml = xml(&name, dir.path(), &console_log)?;
        let xml_path = dir.path().join("domain.xml");
        std::fs::write(&xml_path, xml).map_err(|e| Error::io(&xml_path, &e))?;
        let started = Instant::now();
        let out = virsh(
            &["create", &xml_path.to_string_lossy()],
            Duration::from_secs(60),
        )?;
        if !out.ok {
            return Err(Error::msg(format!("virsh create: {}", out.stderr.trim())));
        }
        Ok(Domain {
            name,
            dir,
            console_log,
            started,
        })
    }

    /// Waits until the agent answers through libvirt (`guest-ping`).
    pub fn wait_agent(&self, timeout: Duration) -> Result<Duration, Error> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            let out = virsh(
                &[
                    "qemu-agent-command",
                    "--timeout",
                    "2",
                    &self.name,
                    r#"{"execute":"guest-ping"}"#,
                ],
                Duration::from_secs(15),
            )?;
            if out.ok {
                return Ok(self.started.elapsed());
            }
            last = out.stderr.trim().to_string();
            std::thread::sleep(Duration::from_millis(500));
        }
        Err(Error::msg(format!(
            "the agent did not answer through libvirt in {timeout:?}: {last}; console:\n{}",
            std::fs::read_to_string(&self.console_log).unwrap_or_default()
        )))
    }

    /// Whether the domain is still running.
    pub fn running(&self) -> bool {
        virsh(&["domstate", &self.name], Duration::from_secs(15))
            .is_ok_and(|o| o.ok && o.stdout.contains("running"))
    }

    /// Runs one row of the table against this domain.
    pub fn run_case(&self, c: &VirshCase) -> CheckResult {
        let t = Instant::now();
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| a.replace("{dom}", &self.name))
            .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = match c.expect {
            Expect::Run(f) => f(self),
            _ => self.run_virsh(&argv, c.expect),
        };
        let (outcome, detail) = match r {
            Ok(d) => (Outcome::Pass, d),
            Err(d) => (Outcome::Fail, d),
        };
        CheckResult {
            transport: "libvirt".into(),
            name: c.name.to_string(),
            outcome,
            detail: format!("{detail} [{:.1?}]", t.elapsed()),
        }
    }

    fn run_virsh(&self, argv: &[&str], expect: Expect) -> Result<String, String> {
        let out = virsh(argv, Duration::from_secs(60)).map_err(|e| e.0)?;
        match expect {
            Expect::Ok(f) if out.ok => f(&out.stdout),
            Expect::Ok(_) => Err(format!("virsh failed: {}", out.stderr.trim())),
            Expect::Fails(text) if !out.ok && out.stderr.contains(text) => {
                Ok(format!("error: {text}"))
            }
            Expect::Fails(text) => Err(format!(
                "want an error with {text:?}; got ok={} {} {}",
                out.ok,
                out.stdout.trim(),
                out.stderr.trim()
            )),
            Expect::Run(f) => f(self),
        }
    }

    /// Destroys the domain (only if it still exists).
    pub fn destroy(&self) {
        if virsh(&["domstate", &self.name], Duration::from_secs(15)).is_ok_and(|o| o.ok) {
            let _ = virsh(&["destroy", &self.name], Duration::from_secs(30));
        }
    }

    /// The directory with the domain's disk and sockets.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// The host client library on a libvirt guest, as `qga -d NAME` / `qga --all` use it: the
/// domain's agent socket is found under libvirt's channel directories, and calls go through
/// virsh (libvirtd holds the socket itself, which the direct attempt shows).
fn run_qga_client(d: &Domain) -> Result<String, String> {
    use qga_client::{Client, Target, discover};
    use qga_schema as s;
    let found = discover::discover_libvirt();
    let g = found
        .iter()
        .find(|g| discover::same_domain(&g.name, &d.name))
        .ok_or_else(|| format!("{} not discovered; found {found:?}", d.name))?;
    let id = g.id.ok_or("the channel directory carries no domain id")?;
    let mut c = Client::open(
        &Target::Libvirt(id.to_string()),
        Some(Duration::from_secs(30)),
    )
    .map_err(|e| format!("open libvirt:{id}: {e}"))?;
    c.sync().map_err(|e| format!("sync through virsh: {e}"))?;
    let none = s::NoArgs {};
    let info = c
        .execute::<s::GuestInfo>(&none)
        .map_err(|e| format!("guest-info: {e}"))?;
    let host = c
        .execute::<s::GuestGetHostName>(&none)
        .map_err(|e| format!("guest-get-host-name: {e}"))?;
    let os = c
        .execute::<s::GuestGetOsinfo>(&none)
        .map_err(|e| format!("guest-get-osinfo: {e}"))?;
    if host.host_name.is_empty() || info.supported_commands.is_empty() {
        return Err(format!("empty answers: {host:?} {info:?}"));
    }
    // The socket itself, while libvirtd holds it.
    let direct = match Client::open(
        &Target::Unix(g.socket.clone()),
        Some(Duration::from_secs(2)),
    ) {
        Err(e) => format!("direct: {e}"),
        Ok(mut c) => match c.sync() {
            Ok(()) => "direct: answered".to_string(),
            Err(e) => format!("direct: {e}"),
        },
    };
    Ok(format!(
        "{} ({}): agent {}, host {}, os {}; {direct}",
        g.name,
        g.socket.display(),
        info.version,
        host.host_name,
        os.pretty_name.unwrap_or_default()
    ))
}
