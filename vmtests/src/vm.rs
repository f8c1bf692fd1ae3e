//! Booting a guest under QEMU: the command line, a hard bound on its life, the host ends of
//! its channels, the guest's control shell, and clean-up of exactly the processes started.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qga_client::Client;

use crate::Error;
use crate::env::TestEnv;
use crate::image::{self, Image};

/// How QEMU runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's emulator.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Which agent the guest runs as `/usr/bin/qemu-ga`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Our agent.
    Ours,
    /// Debian's qemu-ga, the reference.
    Reference,
}

impl Flavour {
    /// `ours` or `reference` (the kernel command line's `qga.agent=`).
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Ours => "ours",
            Flavour::Reference => "reference",
        }
    }
}

/// The agent channels of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `org.qemu.guest_agent.0` on virtio-serial (the agent's default).
    VirtioSerial,
    /// The second 16550 UART, `/dev/ttyS1` in the guest.
    IsaSerial,
}

impl Transport {
    /// `virtio-serial` or `isa-serial`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::VirtioSerial => "virtio-serial",
            Transport::IsaSerial => "isa-serial",
        }
    }
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// A short name for logs.
    pub name: String,
    /// Which agent runs in the guest.
    pub flavour: Flavour,
    /// KVM or TCG.
    pub accel: Accel,
    /// The most the VM may live; the guest powers itself off then, and `timeout` kills QEMU
    /// shortly after.
    pub lifetime: Duration,
    /// `-no-reboot`: a guest reboot ends QEMU. Without it the guest comes back (the
    /// guest-shutdown reboot check needs that).
    pub no_reboot: bool,
    /// The storage boot: the data disk at 00:10.0 plus a disk on every other bus
    /// (`storage_buses::BUSES`), `qga.storage=1` on the kernel command line.
    pub storage: bool,
}

/// A running guest. Dropping it stops QEMU (only the QEMU this value started).
#[derive(Debug)]
pub struct Vm {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// When QEMU was started.
    pub started: Instant,
    /// The guest console (ttyS0) log.
    pub console_log: PathBuf,
    /// QEMU's standard error.
    pub qemu_log: PathBuf,
    /// Options it was booted with.
    pub options: VmOptions,
    shell: Option<Shell>,
}

/// The kernel command line for a guest.
pub fn kernel_cmdline(flavour: Flavour, lifetime: Duration) -> String {
    format!(
        "console=ttyS0 quiet panic=-1 qga.agent={} qga.lifetime={}",
        flavour.name(),
        lifetime.as_secs()
    )
}

impl Vm {
    /// The host end of a transport.
    pub fn socket(&self, t: Transport) -> PathBuf {
        match t {
            Transport::VirtioSerial => self.dir.path().join("qga.sock"),
            Transport::IsaSerial => self.dir.path().join("isa.sock"),
        }
    }

    /// The QMP socket (for hotplug tests).
    pub fn qmp_socket(&self) -> PathBuf {
        self.dir.path().join("qmp.sock")
    }

    /// Boots a guest from `image`.
    pub fn boot(env: &TestEnv, image: &Image, options: VmOptions) -> Result<Vm, Error> {
        let dir = tempfile::Builder::new()
            .prefix("qga-vm-")
            .tempdir()
            .map_err(|e| Error::msg(format!("tempdir: {e}")))?;
        let logs = env.work.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, &e))?;
        let console_log = logs.join(format!("{}-console.log", options.name));
        let disk = dir.path().join("data.img");
        image::make_data_disk(&disk)?;
        let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let bound = options.lifetime.as_secs() + 15;
        let mut cmd = Command::new("timeout");
        cmd.args([
            "-s",
            "TERM",
            "-k",
            "5",
            &bound.to_string(),
            "qemu-system-x86_64",
        ]);
        cmd.args(["-name", &format!("qga-vmtest-{}", options.name)]);
        cmd.args([
            "-machine",
            "q35",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ]);
        match options.accel {
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
            Accel::Tcg => cmd.args(["-accel", "tcg,thread=multi"]),
        };
        cmd.args(["-smp", "2,maxcpus=4", "-m", "512M,slots=4,maxmem=1G"]);
        if options.no_reboot {
            cmd.arg("-no-reboot");
        }
        cmd.arg("-kernel").arg(&image.kernel);
        cmd.arg("-initrd").arg(&image.initrd);
        let mut append = kernel_cmdline(options.flavour, options.lifetime);
        if options.storage {
            // no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can
            // hang the boot ("8254 timer not connected to IO-APIC", seen once).
            append.push_str(" qga.storage=1 no_timer_check");
        }
        cmd.args(["-append", &append]);
        cmd.args(["-serial", &format!("file:{}", console_log.display())]);
        // SeaBIOS's debug port: what the firmware did at boot and on each S3 resume.
        let firmware_log = logs.join(format!("{}-firmware.log", options.name));
        cmd.args([
            "-chardev",
            &format!("file,id=fwlog,path={}", firmware_log.display()),
            "-device",
            "isa-debugcon,iobase=0x402,chardev=fwlog",
        ]);
        cmd.args([
            "-chardev",
            &format!("socket,id=isa1,path={},server=on,wait=off", p("isa.sock")),
            "-device",
            "isa-serial,chardev=isa1,index=1",
        ]);
        cmd.args(["-device", "virtio-serial-pci,id=vser0"]);
        cmd.args([
            "-chardev",
            &format!("socket,id=qga0,path={},server=on,wait=off", p("qga.sock")),
            "-device",
            "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
        ]);
        cmd.args([
            "-chardev",
            &format!(
                "socket,id=shell0,path={},server=on,wait=off",
                p("shell.sock")
            ),
            "-device",
            "virtconsole,bus=vser0.0,chardev=shell0,name=org.qga.vmtest.shell",
        ]);
        cmd.args([
            "-drive",
            &format!(
                "file={},if=none,id=data0,format=raw,discard=unmap",
                p("data.img")
            ),
            "-device",
            &format!(
                "virtio-blk-pci,drive=data0,serial={}{}",
                image::DATA_DISK_SERIAL,
                if options.storage { ",addr=0x10" } else { "" }
            ),
        ]);
        if options.storage {
            cmd.args(crate::storage_buses::qemu_args(dir.path())?);
        }
        cmd.args([
            "-netdev",
            "user,id=net0,restrict=on",
            "-device",
            "virtio-net-pci,netdev=net0,mac=52:54:00:71:67:61",
        ]);
        cmd.args([
            "-qmp",
            &format!("unix:{},server=on,wait=off", p("qmp.sock")),
        ]);
        cmd.args(["-pidfile", &p("qemu.pid")]);
        let qemu_log = logs.join(format!("{}-qemu.log", options.name));
        let stderr = std::fs::File::create(&qemu_log).map_err(|e| Error::io(&qemu_log, &e))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| Error::msg(format!("cannot start qemu-system-x86_64: {e}")))?;
        let mut vm = Vm {
            child: Some(child),
            dir,
            started,
            console_log,
            qemu_log: qemu_log.clone(),
            options,
            shell: None,
        };
        // The sockets exist once QEMU has parsed its command line.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !vm.socket(Transport::VirtioSerial).exists() {
            if !vm.alive() {
                return Err(Error::msg(format!(
                    "QEMU exited at start: {}",
                    std::fs::read_to_string(&qemu_log)
                        .unwrap_or_default()
                        .trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::msg("QEMU did not create its sockets in 20 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(vm)
    }

    /// Whether QEMU still runs.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// QEMU's own messages (its standard error).
    pub fn qemu_log(&self) -> String {
        read_text(&self.qemu_log)
    }

    /// The console log so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console_log).unwrap_or_default()).into_owned()
    }

    /// The last lines of the console log, for error messages.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = self.console();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Connects to a transport and waits until the agent answers a 0xFF + guest-sync-delimited
    /// (retrying: before the agent opens its port, requests wait or are lost). Returns the
    /// client, in sync.
    pub fn connect_agent(
        &mut self,
        t: Transport,
        timeout: Duration,
    ) -> Result<Client<UnixStream>, Error> {
        let deadline = Instant::now() + timeout;
        let sock = self.socket(t);
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if !self.alive() {
                return Err(Error::msg(format!(
                    "QEMU exited: {}; console:\n{}",
                    self.qemu_log().trim(),
                    self.console_tail(30)
                )));
            }
            match UnixStream::connect(&sock) {
                Ok(s) => {
                    let mut c = Client::new(s);
                    c.set_timeout(Some(Duration::from_millis(1500)))
                        .map_err(|e| Error::msg(e.to_string()))?;
                    loop {
                        match c.sync() {
                            Ok(()) => {
                                // Earlier attempts' replies come before this one's: drain them.
                                c.set_timeout(Some(Duration::from_secs(10)))
                                    .map_err(|e| Error::msg(e.to_string()))?;
                                c.sync()
                                    .map_err(|e| Error::msg(format!("second sync: {e}")))?;
                                return Ok(c);
                            }
                            Err(qga_client::ClientError::Io(e))
                                if Instant::now() < deadline
                                    && matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) =>
                            {
                                // No reply yet: the agent may not have opened its port.
                                let _ = &e;
                                if !self.alive() {
                                    break;
                                }
                            }
                            Err(e) => {
                                last = e.to_string();
                                break;
                            }
                        }
                    }
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::msg(format!(
            "the agent on {} did not answer within {timeout:?} ({last}); console:\n{}",
            t.name(),
            self.console_tail(30)
        )))
    }

    /// Runs a command in the guest's control shell (a busybox sh on a virtconsole, hvc0);
    /// returns its exit status and output.
    pub fn shell(&mut self, command: &str, timeout: Duration) -> Result<(i32, String), Error> {
        if self.shell.is_none() {
            let s = UnixStream::connect(self.dir.path().join("shell.sock"))
                .map_err(|e| Error::msg(format!("shell socket: {e}")))?;
            self.shell = Some(Shell {
                stream: s,
                buf: Vec::new(),
                seq: 0,
            });
        }
        let shell = self.shell.as_mut().ok_or_else(|| Error::msg("no shell"))?;
        shell.run(command, timeout)
    }

    /// Runs one QMP command on a fresh connection to QEMU's monitor (greeting and
    /// `qmp_capabilities` first; events are skipped); returns the reply (`return` or `error`).
    pub fn qmp(&self, command: &serde_json::Value) -> Result<serde_json::Value, Error> {
        let s = UnixStream::connect(self.qmp_socket())
            .map_err(|e| Error::msg(format!("QMP socket: {e}")))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(|e| Error::msg(e.to_string()))?;
        let mut w = s.try_clone().map_err(|e| Error::msg(e.to_string()))?;
        let mut r = std::io::BufReader::new(s);
        let mut greeting = String::new();
        std::io::BufRead::read_line(&mut r, &mut greeting)
            .map_err(|e| Error::msg(format!("QMP greeting: {e}")))?;
        let mut read = || -> Result<serde_json::Value, Error> {
            loop {
                let mut line = String::new();
                let n = std::io::BufRead::read_line(&mut r, &mut line)
                    .map_err(|e| Error::msg(format!("QMP read: {e}")))?;
                if n == 0 {
                    return Err(Error::msg("QMP closed"));
                }
                let j: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| Error::msg(format!("QMP reply {line:?}: {e}")))?;
                if j.get("return").is_some() || j.get("error").is_some() {
                    return Ok(j);
                }
            }
        };
        w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
            .map_err(|e| Error::msg(format!("QMP write: {e}")))?;
        read()?;
        w.write_all(format!("{command}\n").as_bytes())
            .map_err(|e| Error::msg(format!("QMP write: {e}")))?;
        read()
    }

    /// QEMU's run state (`running`, `suspended`, `paused`, ...) from QMP `query-status`.
    pub fn run_state(&self) -> Result<String, Error> {
        let j = self.qmp(&serde_json::json!({"execute": "query-status"}))?;
        j.pointer("/return/status")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::msg(format!("query-status: {j}")))
    }

    /// Stops QEMU: SIGTERM to the `timeout` wrapper (it passes it on), then SIGKILL to QEMU's
    /// own pid (from its pidfile) if it is still there.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let qemu_pid = std::fs::read_to_string(self.dir.path().join("qemu.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Ok(pid) = i32::try_from(child.id()) {
            signal(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(pid) = qemu_pid {
            // Only if that pid is still our QEMU (its command line names our socket dir).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = self.dir.path().to_string_lossy();
            if String::from_utf8_lossy(&cmdline).contains(ours.as_ref()) {
                signal(pid, libc::SIGKILL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends a signal to one process.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we started (or read from the pidfile of a QEMU we started and
    // checked by its command line); it touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The control shell: commands are framed by markers the shell prints, which the echo of
/// the typed line cannot match (`@@Q""B` is echoed, `@@QB` printed).
#[derive(Debug)]
struct Shell {
    stream: UnixStream,
    buf: Vec<u8>,
    seq: u32,
}

impl Shell {
    fn run(&mut self, command: &str, timeout: Duration) -> Result<(i32, String), Error> {
        self.seq += 1;
        let n = self.seq;
        let line = format!("echo @@Q\"\"B{n}; {{ {command} ; }} 2>&1; echo @@Q\"\"E{n}:$?\n");
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| Error::msg(format!("shell write: {e}")))?;
        let begin = format!("@@QB{n}");
        let end = format!("@@QE{n}:");
        let deadline = Instant::now() + timeout;
        loop {
            let text = String::from_utf8_lossy(&self.buf).replace('\r', "");
            if let Some(b) = text.find(&format!("\n{begin}\n")) {
                let body_start = b + begin.len() + 2;
                if let Some(e) = text[body_start..].find(&end) {
                    let body = &text[body_start..body_start + e];
                    let rest = &text[body_start + e + end.len()..];
                    if let Some(nl) = rest.find('\n') {
                        let status = rest[..nl].trim().parse::<i32>().unwrap_or(-1);
                        let out = body.to_string();
                        self.buf.clear();
                        return Ok((status, out));
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::msg(format!(
                    "guest shell: no answer to `{command}` in {timeout:?}; got: {}",
                    text.chars()
                        .rev()
                        .take(400)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect::<String>()
                )));
            }
            self.stream
                .set_read_timeout(Some(deadline - now))
                .map_err(|e| Error::msg(e.to_string()))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(Error::msg("guest shell closed")),
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(Error::msg(format!("shell read: {e}"))),
            }
        }
    }
}

/// Decides KVM or TCG once per run: `QGA_VM_ACCEL` if it says `kvm` or `tcg`, else the
/// result recorded in `<work>/accel` by an earlier test binary of the same run, else a
/// bounded KVM boot (the agent must answer within 25 s) with TCG as the fallback.
pub fn choose_accel(env: &TestEnv, image: &Image) -> (Accel, String) {
    match env.accel.as_str() {
        "kvm" => return (Accel::Kvm, "QGA_VM_ACCEL=kvm".into()),
        "tcg" => return (Accel::Tcg, "QGA_VM_ACCEL=tcg".into()),
        _ => {}
    }
    let record = env.work.join("accel");
    if let Ok(text) = std::fs::read_to_string(&record) {
        let mut parts = text.splitn(2, ' ');
        let accel = parts.next().unwrap_or("");
        let why = parts.next().unwrap_or("").trim().to_string();
        match accel {
            "kvm" => return (Accel::Kvm, why),
            "tcg" => return (Accel::Tcg, why),
            _ => {}
        }
    }
    let (accel, why) = probe_kvm(env, image);
    let _ = std::fs::write(&record, format!("{} {why}\n", accel.name()));
    (accel, why)
}

fn probe_kvm(env: &TestEnv, image: &Image) -> (Accel, String) {
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return (Accel::Tcg, "no usable /dev/kvm".into());
    }
    let options = VmOptions {
        name: "kvm-probe".into(),
        flavour: Flavour::Ours,
        accel: Accel::Kvm,
        lifetime: Duration::from_secs(40),
        no_reboot: true,
        storage: false,
    };
    let t0 = Instant::now();
    let result = Vm::boot(env, image, options).and_then(|mut vm| {
        vm.connect_agent(Transport::VirtioSerial, Duration::from_secs(25))
            .map(|_| ())
    });
    match result {
        Ok(()) => (
            Accel::Kvm,
            format!(
                "KVM probe booted to the agent in {:.1} s",
                t0.elapsed().as_secs_f64()
            ),
        ),
        Err(e) => {
            let first =
                e.0.lines()
                    .find(|l| l.contains("error"))
                    .or_else(|| e.0.lines().next())
                    .unwrap_or("")
                    .to_string();
            (
                Accel::Tcg,
                format!(
                    "KVM probe failed after {:.1} s ({first}); using TCG",
                    t0.elapsed().as_secs_f64()
                ),
            )
        }
    }
}

/// Reads a file's text, or an empty string.
pub fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Resynchronises a client whose agent may not be listening yet: 0xFF + guest-sync-delimited
/// every 1.5 s until one is answered, then once more to drain the earlier attempts' replies.
pub fn sync_retry(c: &mut Client<UnixStream>, timeout: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let err = |e: qga_client::ClientError| Error::msg(e.to_string());
    c.set_timeout(Some(Duration::from_millis(1500)))
        .map_err(err)?;
    loop {
        match c.sync() {
            Ok(()) => break,
            Err(qga_client::ClientError::Io(e))
                if Instant::now() < deadline
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
            Err(e) => {
                return Err(Error::msg(format!(
                    "no answer to 0xFF + guest-sync-delimited: {e}"
                )));
            }
        }
    }
    c.set_timeout(Some(Duration::from_secs(10))).map_err(err)?;
    c.sync().map_err(err)
}
