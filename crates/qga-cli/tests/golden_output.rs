//! Golden test of `qga`'s human output: a transcript of commands run against the real agent on
//! a temp unix socket, with what varies between machines and runs normalised, compared to
//! tests/data/golden-output.txt. `QGA_UPDATE_GOLDEN=1` rewrites the file (review the diff).
//!
//! Tables whose rows come from the machine (interfaces, filesystems, disks, vcpus, ...) keep
//! their header in the transcript, and their rows are checked against `--json` instead: one
//! row per element, in the first column the element's name. Commands that would change the
//! host running the test (time, vcpus, memory, freeze, suspend, shutdown, keys) are not run.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Agent, QGA, agent_at, qga, start_agent};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden-output.txt");

const OS_RELEASE: &str = "NAME=\"Golden Linux\"\nID=golden\nVERSION_ID=\"1.0\"\n\
                          PRETTY_NAME=\"Golden Linux 1.0\"\n";

/// Collects `$ command` / output blocks with machine-specific text replaced.
struct Transcript {
    text: String,
    /// Text replaced everywhere.
    replace: Vec<(String, String)>,
    /// Whole arguments and whole output lines replaced (pids, handles).
    words: Vec<(String, String)>,
}

impl Transcript {
    fn normalise(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (from, to) in &self.replace {
            if !from.is_empty() {
                s = s.replace(from.as_str(), to);
            }
        }
        s
    }

    /// Runs `qga -s SOCK args`, records the command, stdout, stderr and exit code.
    fn run(&mut self, sock: &Path, args: &[&str]) -> String {
        let (code, out, err) = qga(sock, args);
        self.record(&self.command_line(args), code, &out, &err);
        out
    }

    /// The arguments as a shell would take them, with volatile ones (pids, handles) replaced.
    fn command_line(&self, args: &[&str]) -> String {
        let words: Vec<String> = args
            .iter()
            .map(|a| {
                if let Some((_, to)) = self.words.iter().find(|(from, _)| from == a) {
                    to.clone()
                } else if a.contains([' ', ';', '$', '>', '{', '"']) {
                    format!("'{a}'")
                } else {
                    a.to_string()
                }
            })
            .collect();
        words.join(" ")
    }

    fn record(&mut self, cmd: &str, code: i32, out: &str, err: &str) {
        self.text
            .push_str(&format!("$ qga {}\n", self.normalise(cmd)));
        for line in out.split_inclusive('\n') {
            let bare = line.trim_end_matches('\n');
            match self.words.iter().find(|(from, _)| from == bare) {
                Some((_, to)) => self.text.push_str(&line.replacen(bare, to, 1)),
                None => self.text.push_str(&self.normalise(line)),
            }
        }
        if !err.is_empty() {
            self.text
                .push_str(&format!("[stderr] {}", self.normalise(err)));
        }
        if code != 0 {
            self.text.push_str(&format!("[exit {code}]\n"));
        }
        self.text.push('\n');
    }

    /// A table whose rows depend on the machine: the header goes in the transcript; each row
    /// must start with the `key` of the matching `--json` element.
    fn table(&mut self, sock: &Path, cmd: &str, key: impl Fn(&serde_json::Value) -> String) {
        let (code, out, err) = qga(sock, &[cmd]);
        assert_eq!(code, 0, "{cmd}: {err}");
        let (_, json, _) = qga(sock, &["--json", cmd]);
        let items: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        let mut lines = out.lines();
        let header = lines.next().unwrap();
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), items.len(), "{cmd}: {out}");
        let mut keys: Vec<String> = items.iter().map(&key).collect();
        let mut firsts: Vec<String> = rows
            .iter()
            .map(|r| r.split("  ").next().unwrap().trim().to_string())
            .collect();
        // Human tables may sort; compare as sets.
        keys.sort();
        firsts.sort();
        assert_eq!(firsts, keys, "{cmd}: {out}");
        // Column widths follow the rows: the header's padding is normalised to two spaces.
        let header: Vec<&str> = header.split("  ").filter(|c| !c.is_empty()).collect();
        let header = header
            .iter()
            .map(|c| c.trim())
            .collect::<Vec<_>>()
            .join("  ");
        self.record(
            cmd,
            code,
            &format!("{header}\n<{{rows from --json}}>\n"),
            "",
        );
    }
}

fn uname(flag: &str) -> String {
    let out = Command::new("uname").arg(flag).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn golden_agent(config: &str) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let os_release = dir.path().join("os-release");
    std::fs::write(&os_release, OS_RELEASE).unwrap();
    let os_release = os_release.to_str().unwrap().to_string();
    start_agent(dir, sock, config, &[("QGA_OS_RELEASE", &os_release)])
}

#[test]
fn test_human_output_matches_golden_transcript() {
    let a = golden_agent("");
    let sock = a.sock.clone();
    let hostname = qga(&sock, &["hostname"]).1.trim().to_string();
    let dir = a.dir.path().to_str().unwrap().to_string();
    let mut t = Transcript {
        text: String::new(),
        replace: vec![
            (dir.clone(), "<tmp>".into()),
            (uname("-r"), "<kernel>".into()),
            (uname("-m"), "<machine>".into()),
        ],
        words: Vec::new(),
    };

    t.run(&sock, &["ping"]);
    // The command list, without extension commands (`__`-prefixed) that other work adds.
    let (code, out, err) = qga(&sock, &["info"]);
    let listed: Vec<&str> = out.lines().filter(|l| !l.contains("__")).collect();
    let enabled = out
        .lines()
        .skip(2)
        .filter(|l| !l.contains("(disabled)"))
        .count();
    let listed = listed.join("\n").replace(
        &format!("commands, {enabled} enabled"),
        "commands, <n> enabled",
    );
    let listed = listed
        .split_once(" commands,")
        .map(|(head, tail)| {
            let head = head.rsplit_once('\n').map_or("", |(v, _)| v);
            format!("{head}\n<n> commands,{tail}\n")
        })
        .unwrap();
    t.record("info", code, &listed, &err);
    t.run(&sock, &["osinfo"]);
    t.words.push((hostname.clone(), "<hostname>".into()));
    assert_eq!(t.run(&sock, &["hostname"]).trim(), hostname);
    t.run(&sock, &["freeze-status"]);
    t.run(&sock, &["thaw"]);

    // Exec: output, error output and exit code; detached with exec-status.
    t.run(
        &sock,
        &["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    t.run(
        &sock,
        &[
            "exec",
            "--env",
            "GREETING=hi",
            "--",
            "sh",
            "-c",
            "echo $GREETING",
        ],
    );
    let args = ["exec", "--detach", "--", "echo", "detached"];
    let (code, out, err) = qga(&sock, &args);
    let pid = out.trim().to_string();
    t.words.push((pid.clone(), "<pid>".into()));
    t.record(&t.command_line(&args), code, &out, &err);
    // The agent forgets a process once it reported its end: poll, record the last answer.
    let status = loop {
        let r = qga(&sock, &["exec-status", &pid]);
        if r.1 != "running\n" {
            break r;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let cmd = t.command_line(&["exec-status", &pid]);
    t.record(&cmd, status.0, &status.1, &status.2);

    // Low-level file operations.
    let path = format!("{dir}/file.txt");
    let args = ["file", "open", &path, "--mode", "w+"];
    let (code, out, err) = qga(&sock, &args);
    let handle = out.trim().to_string();
    t.words.push((handle.clone(), "<handle>".into()));
    t.replace.push((format!("'{handle}'"), "'<handle>'".into()));
    t.record(&t.command_line(&args), code, &out, &err);
    t.run(&sock, &["file", "write", &handle, "hello world"]);
    t.run(&sock, &["file", "seek", &handle, "6"]);
    let read = t.run(&sock, &["file", "read", &handle]);
    assert_eq!(read, "world");
    t.text.push_str("[read ends without a newline]\n\n");
    t.run(&sock, &["file", "seek", &handle, "--whence", "end", "-5"]);
    t.run(&sock, &["file", "flush", &handle]);
    t.run(&sock, &["file", "close", &handle]);
    t.run(&sock, &["file", "close", &handle]);

    // Copies both ways, with their verification; the figures vary.
    let local = format!("{dir}/local.bin");
    std::fs::write(&local, vec![7u8; 100_000]).unwrap();
    let (code, out, err) = qga(&sock, &["cp", &local, &format!(":{dir}/guest.bin")]);
    let figures = |s: &str| {
        let (bytes, rest) = s.split_once(" in ").unwrap();
        let rest = rest.split_once(", ").unwrap().1;
        format!("{bytes} in <secs> s (<rate> MB/s), {rest}")
    };
    t.record(
        &format!("cp {local} :{dir}/guest.bin"),
        code,
        &figures(&out),
        &err,
    );
    let (code, out, err) = qga(
        &sock,
        &[
            "cp",
            &format!(":{dir}/guest.bin"),
            &format!("{dir}/back.bin"),
        ],
    );
    t.record(
        &format!("cp :{dir}/guest.bin {dir}/back.bin"),
        code,
        &figures(&out),
        &err,
    );

    // Machine tables: headers here, rows against --json.
    let name = |k: &'static str| {
        move |v: &serde_json::Value| v[k].to_string().trim_matches('"').to_string()
    };
    t.table(&sock, "interfaces", name("name"));
    t.table(&sock, "routes", |v| format!("v{}", v["version"]));
    t.table(&sock, "vcpus", name("logical-id"));
    t.table(&sock, "cpustats", name("cpu"));
    t.table(&sock, "memory-blocks", name("phys-index"));
    t.table(&sock, "fsinfo", name("mountpoint"));
    t.table(&sock, "disks", name("name"));
    t.table(&sock, "diskstats", name("name"));
    t.table(&sock, "users", name("user"));

    // Errors and what they advise.
    t.run(&sock, &["exec-status", "999999"]);
    t.run(&sock, &["raw", r#"{"execute":"guest-nope"}"#]);
    t.run(&sock, &["cp", "a", "b"]);
    t.run(&sock, &["set-vcpus", "1"]);
    t.run(Path::new(&format!("{dir}/missing.sock")), &["ping"]);
    let (code, out, err) = {
        let o = Command::new(QGA).arg("ping").output().unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    t.record("ping (no -s)", code, &out, &err);
    drop(a);

    // Policy: a command the guest's configuration blocks.
    let blocked = golden_agent("[general]\nblock-rpcs=guest-get-osinfo\n");
    t.replace.push((
        blocked.dir.path().to_str().unwrap().to_string(),
        "<tmp>".into(),
    ));
    t.run(&blocked.sock, &["osinfo"]);
    drop(blocked);

    // Several guests by libvirt domain name, one of them not answering.
    let root = tempfile::tempdir().unwrap();
    let mut agents = Vec::new();
    for name in ["domain-1-alpha", "domain-2-beta"] {
        let d = root.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        agents.push(agent_at(&d.join("org.qemu.guest_agent.0")));
    }
    let gamma: PathBuf = root.path().join("domain-3-gamma");
    std::fs::create_dir_all(&gamma).unwrap();
    drop(std::os::unix::net::UnixListener::bind(gamma.join("org.qemu.guest_agent.0")).unwrap());
    t.replace.push((
        root.path().to_str().unwrap().to_string(),
        "<libvirt>".into(),
    ));
    let o = Command::new(QGA)
        .env("QGA_LIBVIRT_CHANNEL_DIRS", root.path())
        .args([
            "--via", "socket", "-d", "alpha", "-d", "beta", "-d", "gamma", "--jobs", "2",
            "hostname",
        ])
        .output()
        .unwrap();
    t.record(
        "--via socket -d alpha -d beta -d gamma --jobs 2 hostname",
        o.status.code().unwrap(),
        &String::from_utf8_lossy(&o.stdout),
        &String::from_utf8_lossy(&o.stderr),
    );
    drop(agents);

    if std::env::var_os("QGA_UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &t.text).unwrap();
    }
    let expected = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    if t.text != expected {
        let got = std::env::temp_dir().join("qga-golden-output.actual.txt");
        std::fs::write(&got, &t.text).unwrap();
        panic!(
            "human output differs from {GOLDEN}; the actual transcript is in {} (QGA_UPDATE_GOLDEN=1 rewrites the file)",
            got.display()
        );
    }
}
