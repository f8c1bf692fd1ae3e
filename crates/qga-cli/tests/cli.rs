//! The `qga` command against the real agent on a unix socket.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{QGA, agent, agent_at, qga};

#[test]
fn test_ping_info_osinfo_and_json() {
    let a = agent();
    assert_eq!(qga(&a.sock, &["ping"]).1, "ok\n");
    let (code, out, _) = qga(&a.sock, &["info"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("version 10.2.0\n"), "{out}");
    let (_, json, _) = qga(&a.sock, &["--json", "hostname"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["host-name"].is_string());
    assert!(qga(&a.sock, &["osinfo"]).1.contains("kernel"));
    let (code, out, _) = qga(&a.sock, &["fsinfo"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("mountpoint"), "{out}");
}

#[test]
fn test_ping_count_prints_reply_times() {
    let a = agent();
    let (code, out, err) = qga(&a.sock, &["ping", "--count", "20", "--interval", "1"]);
    assert_eq!(code, 0, "{err}");
    let rest = out
        .strip_prefix("20 pings: min ")
        .unwrap_or_else(|| panic!("{out}"));
    let ms: Vec<f64> = rest
        .trim_end()
        .split(", ")
        .map(|f| {
            let f = f.strip_suffix(" ms").unwrap_or(f);
            let f = f.rsplit(' ').next().unwrap_or(f);
            f.parse().unwrap_or_else(|_| panic!("{out}"))
        })
        .collect();
    // min <= p50 <= p99 <= max, and a local agent answers well within a second.
    assert_eq!(ms.len(), 4, "{out}");
    assert!(
        ms.windows(2).all(|w| w[0] <= w[1]) && ms[3] < 1000.0,
        "{out}"
    );
    let (_, json, _) = qga(&a.sock, &["--json", "ping", "--count", "3"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["count"], 3, "{json}");
    assert!(v["p50-us"].as_u64().unwrap() <= v["max-us"].as_u64().unwrap());
}

#[test]
fn test_exec_exit_code_output_and_stdin() {
    let a = agent();
    let (code, out, err) = qga(
        &a.sock,
        &["exec", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3"],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (3, "hi\n", "oops\n"));
    let (code, _, _) = qga(&a.sock, &["exec", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(code, 128 + 9);
    let input = a.dir.path().join("in.txt");
    std::fs::write(&input, "from a file").unwrap();
    let (_, out, _) = qga(
        &a.sock,
        &["exec", "--stdin", input.to_str().unwrap(), "--", "cat"],
    );
    assert_eq!(out, "from a file\n");
}

/// `qga file open --no-follow` refuses a symbolic link and opens a regular file (every agent
/// command is reachable from the CLI, the extensions included).
#[test]
fn test_file_open_no_follow() {
    let a = agent();
    let target = a.dir.path().join("real.txt");
    std::fs::write(&target, "x").unwrap();
    let link = a.dir.path().join("link.txt");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, out, err) = qga(
        &a.sock,
        &["file", "open", "--no-follow", target.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().parse::<i64>().is_ok(), "{out}");
    let (code, _, err) = qga(
        &a.sock,
        &["file", "open", "--no-follow", link.to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(err.contains("link.txt"), "{err}");
    let (code, _, err) = qga(&a.sock, &["file", "open", link.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}

/// The reply timeout (`qga --timeout`) and exec's time limit (`exec --timeout`) are separate
/// options: a 2 s reply timeout does not kill a 3 s command (it once did), exec's own limit
/// does.
#[test]
fn test_reply_timeout_is_not_execs_time_limit() {
    let a = agent();
    let (code, out, err) = qga(
        &a.sock,
        &[
            "--timeout",
            "2",
            "exec",
            "--",
            "sh",
            "-c",
            "sleep 3; echo done",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "done\n"), "{err}");
    let (code, _, err) = qga(&a.sock, &["exec", "--timeout", "1", "--", "sleep", "5"]);
    assert_eq!(code, 128 + 9, "{err}");
}

#[test]
fn test_cp_both_ways_verified() {
    let a = agent();
    let src = a.dir.path().join("src.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    let guest = a.dir.path().join("guest.bin");
    let (code, out, err) = qga(
        &a.sock,
        &[
            "cp",
            src.to_str().unwrap(),
            &format!(":{}", guest.display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3000000 bytes") && out.contains("verified"),
        "{out}"
    );
    assert_eq!(std::fs::read(&guest).unwrap(), data);
    let back = a.dir.path().join("back.bin");
    let (code, out, err) = qga(
        &a.sock,
        &[
            "cp",
            &format!(":{}", guest.display()),
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified"), "{out}");
    assert_eq!(std::fs::read(&back).unwrap(), data);
}

#[test]
fn test_errors_say_what_to_do() {
    let a = agent();
    let (code, _, err) = qga(Path::new("/nonexistent/sock"), &["ping"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot connect to /nonexistent/sock") && err.contains("is the VM running"),
        "{err}"
    );
    let (code, _, err) = qga(&a.sock, &["cp", "a", "b"]);
    assert_eq!(code, 1);
    assert!(err.contains("leading ':'"), "{err}");
    let (_, out, _) = qga(&a.sock, &["raw", r#"{"execute":"guest-nope"}"#]);
    assert_eq!(
        out,
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command guest-nope has not been found\"}}\n"
    );
}

#[test]
fn test_several_guests_at_once_with_one_failing() {
    let a = agent();
    let b = agent();
    let out = Command::new(QGA)
        .arg("-s")
        .arg(&a.sock)
        .arg("-s")
        .arg(&b.sock)
        .args(["-s", "/nonexistent/sock", "hostname"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("3 guests, 2 ok, 1 failed"), "{text}");
}

#[test]
fn test_generate_assets_writes_man_page_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(QGA)
        .arg("generate-assets")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let man = std::fs::read_to_string(dir.path().join("man/qga.1")).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH qga 1"), "{man}");
    assert!(man.contains("inventory") && man.contains("vsock"), "{man}");
    for f in ["qga.bash", "_qga", "qga.fish"] {
        let text = std::fs::read_to_string(dir.path().join("completions").join(f)).unwrap();
        assert!(text.contains("memory-blocks"), "{f}: {text}");
    }
    // The bash completion loads and registers itself.
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p qga",
            dir.path().join("completions/qga.bash").display()
        ))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // Hidden from the help, which shows examples.
    let help = Command::new(QGA).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.contains("generate-assets") && help.contains("Examples:"),
        "{help}"
    );
}

#[test]
fn test_libvirt_discovery_domain_and_inventory() {
    let root = tempfile::tempdir().unwrap();
    let chan = root.path().join("target");
    let mut agents = Vec::new();
    for (id, name) in [(1, "alpha"), (2, "beta")] {
        let d = chan.join(format!("domain-{id}-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        agents.push(agent_at(&d.join("org.qemu.guest_agent.0")));
    }
    // A domain whose socket exists but nobody listens: a row with an error, not an abort.
    let dead = chan.join("domain-3-gamma");
    std::fs::create_dir_all(&dead).unwrap();
    drop(std::os::unix::net::UnixListener::bind(dead.join("org.qemu.guest_agent.0")).unwrap());
    let run = |args: &[&str]| {
        let out = Command::new(QGA)
            .env("QGA_LIBVIRT_CHANNEL_DIRS", &chan)
            .args(["--via", "socket"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["-d", "beta", "ping"]);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    let (code, _, err) = run(&["-d", "nope", "ping"]);
    assert_eq!(code, 2);
    assert!(err.contains("found: alpha, beta, gamma"), "{err}");
    let (code, out, _) = run(&["inventory"]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("guest") && lines[0].contains("agent"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("alpha ") && lines[1].contains("10.2.0"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("beta ") && lines[2].contains("10.2.0"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("gamma ") && lines[3].contains("cannot connect"),
        "{out}"
    );
    assert!(out.contains("3 guests, 2 answered, 1 failed"), "{out}");
    // Through virsh, which knows no such domain: the error names the way it went.
    let name = format!("libvirt:qga-test-no-such-domain-{}", std::process::id());
    let (code, _, err) = qga(Path::new(&name), &["ping"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot connect to {name}")), "{err}");
    let (_, json, _) = run(&["--all", "--json", "--jobs", "2", "inventory"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["guest"], "alpha");
    assert_eq!(v[0]["agent"], "10.2.0");
    assert!(v[2]["error"].is_string());
    drop(agents);
}

#[test]
fn test_serial_device_target_in_raw_mode() {
    use std::os::fd::AsRawFd;
    let a = agent();
    // A pty pair stands for a guest's serial port: the client opens the slave by its path,
    // a relay joins the master to the agent's socket. Without raw mode the line discipline
    // would echo the agent's replies back to it and hold input until end of line.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave_path =
        std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    let master = std::fs::File::from(pty.master);
    let agent_conn = std::os::unix::net::UnixStream::connect(&a.sock).unwrap();
    let (mut m_read, mut m_write) = (master.try_clone().unwrap(), master);
    let (mut s_read, mut s_write) = (agent_conn.try_clone().unwrap(), agent_conn);
    std::thread::spawn(move || std::io::copy(&mut m_read, &mut s_write));
    std::thread::spawn(move || std::io::copy(&mut s_read, &mut m_write));
    let path = slave_path.to_str().unwrap();
    let (code, out, err) = qga(
        Path::new(path),
        &["--timeout", "5", "exec", "--", "echo", "over serial"],
    );
    assert_eq!((code, out.as_str()), (0, "over serial\n"), "{err}");
    let (code, out, err) = qga(Path::new(&format!("serial:{path}")), &["ping"]);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    drop(pty.slave);
}

#[test]
fn test_cp_resume_both_ways_and_failure_advice() {
    let a = agent();
    let dir = a.dir.path();
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let src = dir.join("src.bin");
    std::fs::write(&src, &data).unwrap();
    // An upload that stopped after 1 MB: the guest has the first part.
    let guest = dir.join("guest.bin");
    std::fs::write(&guest, &data[..1_000_000]).unwrap();
    let (code, out, err) = qga(
        &a.sock,
        &[
            "cp",
            "--resume",
            src.to_str().unwrap(),
            &format!(":{}", guest.display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2500000 bytes") && out.contains("verified"),
        "{out}"
    );
    assert_eq!(std::fs::read(&guest).unwrap(), data);
    // A download that stopped part way: the local file has the first part.
    let back = dir.join("back.bin");
    std::fs::write(&back, &data[..123_457]).unwrap();
    let (code, out, err) = qga(
        &a.sock,
        &[
            "cp",
            "--resume",
            &format!(":{}", guest.display()),
            back.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("verified"), "{out}");
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // Resuming a finished copy copies nothing and still verifies.
    let (code, _, err) = qga(
        &a.sock,
        &[
            "cp",
            "--resume",
            back.to_str().unwrap(),
            &format!(":{}", dir.join("src.bin").display()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    // A guest file longer than the source cannot be resumed into.
    std::fs::write(&back, b"short").unwrap();
    let (code, _, err) = qga(
        &a.sock,
        &[
            "cp",
            "--resume",
            back.to_str().unwrap(),
            &format!(":{}", guest.display()),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot resume") && err.contains("is larger than"),
        "{err}"
    );

    // A failure part way says what was copied and how to go on.
    let dir2 = tempfile::tempdir().unwrap();
    let blocked = common::start_agent(
        dir2,
        a.dir.path().join("blocked.sock"),
        "[general]\nblock-rpcs=guest-file-write\n",
        &[],
    );
    let (code, _, err) = qga(
        &blocked.sock,
        &[
            "cp",
            src.to_str().unwrap(),
            &format!(":{}", dir.join("x.bin").display()),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("0 of 2500000 bytes were copied to :") && err.contains("--resume"),
        "{err}"
    );
}

#[test]
fn test_no_reply_command_reports_the_agents_error() {
    // guest-shutdown sends nothing on success; on failure its error must still be shown.
    // An invalid mode fails before anything is done, so this is safe on the test machine.
    let a = agent();
    let start = std::time::Instant::now();
    let (code, out, err) = qga(&a.sock, &["shutdown", "--mode", "bogus"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("mode is invalid"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}
