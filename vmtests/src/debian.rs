//! The install test: a real Debian bookworm guest (built by `scripts/debian-rootfs` with
//! debootstrap, systemd as init, Debian's qemu-guest-agent installed and started by udev)
//! under libvirt, where our package is installed over Debian's agent with `dpkg -i` and
//! nothing else; then the agent must be ours, started by udev when the port appears, and the
//! whole libvirt table ([`crate::libvirt::VIRSH_CASES`]) must pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::libvirt::{self, Domain, agent_json, agent_sh, virsh, virsh_ok};
use crate::suite::{CheckResult, Outcome};
use crate::vm::Accel;
use crate::{Error, image, run_capture};

/// The guest's files: `root.img` (ext4, the root filesystem), `vmlinuz` and `initrd.img`
/// (Debian's cloud kernel and the initramfs Debian's tools made in the guest).
#[derive(Debug, Clone)]
pub struct DebianImage {
    /// The directory `scripts/debian-rootfs` printed.
    pub dir: PathBuf,
}

impl DebianImage {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The label of the small disk that carries the package into the guest.
pub const PKG_LABEL: &str = "qgapkg";
/// The agent channel's target, as libvirt names it.
const CHANNEL_XML: &str =
    "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>";
/// How long the guest may live whatever the host does (qga-lifetime.service in the image).
const LIFETIME: Duration = Duration::from_secs(900);

/// The domain XML: the Debian root disk (a private copy), the data disk the checks expect
/// (`LABEL=qgadata` on `/mnt/data`), the package disk, and the agent channel libvirt manages.
pub fn domain_xml(
    name: &str,
    accel: Accel,
    img: &DebianImage,
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
  <memory unit='MiB'>1024</memory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>root=/dev/vda rw console=ttyS0 net.ifnames=0 panic=-1 qga.lifetime={life}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' discard='unmap'/>
      <source file='{root}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' discard='unmap'/>
      <source file='{data}'/>
      <target dev='vdb' bus='virtio'/>
      <serial>{serial}</serial>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{pkg}'/>
      <target dev='vdc' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    {CHANNEL_XML}
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
  <qemu:commandline>
    <qemu:arg value='-netdev'/><qemu:arg value='user,id=net0,restrict=on'/>
    <qemu:arg value='-device'/><qemu:arg value='virtio-net-pci,netdev=net0,mac=52:54:00:71:67:61,bus=pcie.0,addr=0x10'/>
  </qemu:commandline>
</domain>
"#,
        kernel = img.file("vmlinuz").display(),
        initrd = img.file("initrd.img").display(),
        life = LIFETIME.as_secs(),
        root = p("root.img"),
        data = p("data.img"),
        pkg = p("pkg.img"),
        serial = image::DATA_DISK_SERIAL,
        console = console.display(),
    )
}

/// Boots the guest: a sparse copy of the root image, a fresh data disk and a disk holding
/// `deb` as `qga.deb`.
pub fn boot(
    env: &crate::env::TestEnv,
    img: &DebianImage,
    deb: &Path,
    accel: Accel,
) -> Result<Domain, Error> {
    Domain::create_with(env, "debian", |name, dir, console| {
        run_capture(
            Command::new("cp")
                .args(["--sparse=always", "--reflink=auto"])
                .arg(img.file("root.img"))
                .arg(dir.join("root.img")),
        )?;
        image::make_data_disk(&dir.join("data.img"))?;
        let content = dir.join("pkg");
        std::fs::create_dir(&content).map_err(|e| Error::io(&content, &e))?;
        std::fs::copy(deb, content.join("qga.deb")).map_err(|e| Error::io(deb, &e))?;
        let disk = dir.join("pkg.img");
        let f = std::fs::File::create(&disk).map_err(|e| Error::io(&disk, &e))?;
        f.set_len(32 << 20).map_err(|e| Error::io(&disk, &e))?;
        run_capture(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", PKG_LABEL, "-d"])
                .arg(&content)
                .arg(&disk),
        )?;
        Ok(domain_xml(name, accel, img, dir, console))
    })
}

fn check(name: &str, r: Result<String, String>, t: Instant) -> CheckResult {
    let (outcome, detail) = match r {
        Ok(d) => (Outcome::Pass, d),
        Err(d) => (Outcome::Fail, d),
    };
    CheckResult {
        transport: "debian".into(),
        name: name.into(),
        outcome,
        detail: format!("{detail} [{:.1?}]", t.elapsed()),
    }
}

/// guest-info's version, asked with a short agent timeout (None while no agent answers).
fn agent_version(dom: &Domain) -> Option<String> {
    let out = virsh(
        &[
            "qemu-agent-command",
            "--timeout",
            "3",
            &dom.name,
            r#"{"execute":"guest-info"}"#,
        ],
        Duration::from_secs(20),
    )
    .ok()?;
    let j: Json = serde_json::from_str(out.stdout.trim()).ok()?;
    j.pointer("/return/version")?.as_str().map(str::to_string)
}

fn wait_version(
    dom: &Domain,
    accept: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        last = agent_version(dom);
        if let Some(v) = last.as_deref().filter(|v| accept(v)) {
            return Ok(v.to_string());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Err(format!(
        "after {timeout:?} the agent reports version {last:?}"
    ))
}

/// `agent_sh` that wants exit code 0; the trimmed output.
fn sh_ok(dom: &Domain, script: &str) -> Result<String, String> {
    match agent_sh(dom, script)? {
        (0, out) => Ok(out.trim().to_string()),
        (code, out) => Err(format!("`{script}` exited {code}: {}", out.trim())),
    }
}

/// Writes `bytes` to `path` in the guest with guest-file-open/write/close.
fn write_file(dom: &Domain, path: &str, bytes: &[u8]) -> Result<(), String> {
    let h = agent_json(
        dom,
        &serde_json::json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": "w"}}),
    )?;
    let w = agent_json(
        dom,
        &serde_json::json!({"execute": "guest-file-write",
            "arguments": {"handle": h, "buf-b64": qga_proto::b64::encode(bytes)}}),
    );
    agent_json(
        dom,
        &serde_json::json!({"execute": "guest-file-close", "arguments": {"handle": h}}),
    )?;
    w.map(|_| ())
}

/// The agent's main pid as systemd sees it.
fn main_pid(dom: &Domain) -> Result<String, String> {
    sh_ok(
        dom,
        "systemctl show -p MainPID --value qemu-guest-agent.service",
    )
}

/// The whole test: the reference agent at boot, `dpkg -i`, what the package changed, the
/// port hot-plug, then the libvirt table. Returns every check in order.
pub fn run(dom: &Domain, reference_version: &str) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let t = Instant::now();
    out.push(check(
        "debian: Debian's qemu-guest-agent started by udev at boot",
        Ok(format!("qemu-ga {reference_version} answers")),
        dom.started,
    ));

    // dpkg -i from a unit of its own: the package's maintainer scripts stop the agent, and
    // everything in the agent's cgroup (a guest-exec child too) with it.
    let started = sh_ok(
        dom,
        &format!(
            "mount -o ro LABEL={PKG_LABEL} /mnt/pkg && systemd-run --unit=qga-install \
             -p RemainAfterExit=yes -p StandardOutput=journal+console /usr/bin/dpkg -i /mnt/pkg/qga.deb"
        ),
    );
    let swapped = started
        .and_then(|_| wait_version(dom, |v| v != reference_version, Duration::from_secs(180)));
    let ours = swapped.clone().unwrap_or_default();
    let dpkg = swapped.and_then(|v| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = sh_ok(
                dom,
                "systemctl show -p ActiveState -p SubState -p ExecMainStatus qga-install.service | tr '\\n' ' '",
            )?;
            if !state.contains("SubState=running") && !state.contains("ActiveState=activating") {
                let log = sh_ok(dom, "journalctl -q -o cat -u qga-install.service").unwrap_or_default();
                return if state.contains("ExecMainStatus=0") && state.contains("ActiveState=active") {
                    Ok(format!("agent now reports {v}; {}", log.replace('\n', " | ")))
                } else {
                    Err(format!("{state}: {log}"))
                };
            }
            if Instant::now() > deadline {
                return Err(format!("dpkg still running: {state}"));
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let installed = dpkg.is_ok();
    out.push(check(
        "debian: dpkg -i qga.deb over qemu-guest-agent",
        dpkg,
        t,
    ));
    if !installed {
        return out;
    }

    let t = Instant::now();
    let pkgs = sh_ok(
        dom,
        "dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' qga qemu-guest-agent 2>&1; true",
    )
    .and_then(|s| {
        let ok = s.lines().any(|l| l.starts_with("qga ii"))
            && !s.lines().any(|l| l.starts_with("qemu-guest-agent ii"));
        if ok {
            Ok(s.replace('\n', "; "))
        } else {
            Err(s)
        }
    });
    out.push(check(
        "debian: qga installed, qemu-guest-agent removed",
        pkgs,
        t,
    ));

    let t = Instant::now();
    let binary = sh_ok(
        dom,
        "/usr/sbin/qemu-ga -V; readlink /proc/$(systemctl show -p MainPID --value qemu-guest-agent)/exe; \
         systemctl is-enabled qemu-guest-agent.service; systemctl cat qemu-guest-agent.service | sed -n 's/^Description=//p'",
    )
    .and_then(|s| {
        let want_head = format!("QEMU Guest Agent {ours}");
        let lines: Vec<&str> = s.lines().collect();
        match lines.as_slice() {
            [v, "/usr/sbin/qemu-ga", "static", d] if *v == want_head && d.contains("(qga)") => {
                Ok(s.replace('\n', "; "))
            }
            _ => Err(s),
        }
    });
    out.push(check(
        "debian: the running agent is /usr/sbin/qemu-ga from qga, unit static",
        binary,
        t,
    ));

    let t = Instant::now();
    let wants = sh_ok(
        dom,
        "udevadm info -q property -n /dev/virtio-ports/org.qemu.guest_agent.0 | grep '^SYSTEMD_WANTS='",
    )
    .and_then(|s| {
        // udev's database: the rule asked systemd to start the agent with the port's device.
        if s.split(['=', ' ']).any(|u| u == "qemu-guest-agent.service") {
            Ok(s)
        } else {
            Err(s)
        }
    });
    out.push(check(
        "debian: udev rule: the port's device wants the unit",
        wants,
        t,
    ));

    let t = Instant::now();
    out.push(check(
        "debian: port unplugged and plugged: udev starts the agent",
        hotplug(dom),
        t,
    ));

    // The fixtures the table checks (vmtests/src/image.rs), as in the busybox guest.
    let t = Instant::now();
    let fixtures = write_file(dom, "/etc/os-release", image::OS_RELEASE.as_bytes())
        .and_then(|()| write_file(dom, "/run/utmp", &image::utmp_bytes(image::UTMP)))
        .map(|()| "/etc/os-release and /run/utmp written".to_string());
    out.push(check("debian: fixtures of the table", fixtures, t));

    let listed = libvirt::listed_commands(dom);
    out.extend(libvirt::run_cases(dom, &listed));
    out
}

/// Unplugs the agent's port (BindsTo stops the agent), plugs it back: udev must start the
/// agent again, a new process, not a restart by systemd's Restart=.
fn hotplug(dom: &Domain) -> Result<String, String> {
    let before = main_pid(dom)?;
    // libvirt finds a channel to unplug by its alias (the live XML has it).
    let live = virsh_ok(&["dumpxml", &dom.name])?;
    let alias = live
        .split("<channel ")
        .skip(1)
        .find(|c| c.contains("org.qemu.guest_agent.0"))
        .and_then(|c| c.split("<alias name='").nth(1))
        .and_then(|a| a.split('\'').next())
        .ok_or_else(|| "no agent channel with an alias in the live XML".to_string())?
        .to_string();
    let xml = dom.dir().join("channel.xml");
    std::fs::write(&xml, CHANNEL_XML).map_err(|e| e.to_string())?;
    let xml = xml.to_string_lossy().into_owned();
    virsh_ok(&["detach-device-alias", &dom.name, &alias, "--live"])?;
    let gone = Instant::now();
    while agent_version(dom).is_some() {
        if gone.elapsed() > Duration::from_secs(30) {
            return Err("the agent still answers 30 s after the port was unplugged".into());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    virsh_ok(&["attach-device", &dom.name, &xml, "--live"])?;
    let plugged = Instant::now();
    wait_version(dom, |_| true, Duration::from_secs(60))?;
    let after = main_pid(dom)?;
    let restarts = sh_ok(
        dom,
        "systemctl show -p NRestarts --value qemu-guest-agent.service",
    )?;
    if after == before || after == "0" || restarts != "0" {
        return Err(format!("pid {before} -> {after}, NRestarts {restarts}"));
    }
    Ok(format!(
        "pid {before} -> {after} ({:.1?} after the plug), NRestarts 0",
        plugged.elapsed()
    ))
}
