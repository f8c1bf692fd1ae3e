//! `qga ls`, `stat`, `cp -r` and live `exec` against the real agents: ours with the
//! `__org.qga_` extensions, ours with them blocked (the fallbacks through guest-exec of
//! find/stat/mkdir/sh), the same with busybox's tools only, and Debian's qemu-ga when it is
//! installed.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, QGA, agent, qga, reference_agent, start_agent};

/// Every extension command, blocked.
const BLOCK_EXT: &str = "[general]\nblock-rpcs=__org.qga_exec;__org.qga_exec-output;\
__org.qga_exec-signal;__org.qga_file-stat;__org.qga_file-list;__org.qga_file-open-nofollow\n";

/// Our agent with the extensions blocked, with extra environment.
fn blocked(env: &[(&str, &str)]) -> Agent {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    start_agent(dir, sock, BLOCK_EXT, env)
}

/// A directory whose only tools are busybox's (None without busybox).
fn busybox_path() -> Option<tempfile::TempDir> {
    let bb = Path::new("/usr/bin/busybox");
    if !bb.exists() {
        println!("busybox is not installed: its rows are skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    for tool in [
        "sh",
        "find",
        "stat",
        "readlink",
        "mkdir",
        "sha256sum",
        "sleep",
        "pwd",
        "cat",
    ] {
        std::os::unix::fs::symlink(bb, dir.path().join(tool)).unwrap();
    }
    Some(dir)
}

/// The agents to compare, by name: ours, ours without extensions, ours without extensions
/// and with busybox's tools only, qemu-ga, qemu-ga with busybox's tools.
fn agents(bb: Option<&tempfile::TempDir>) -> Vec<(&'static str, Agent)> {
    let mut list = vec![("ours", agent()), ("ours-blocked", blocked(&[]))];
    if let Some(bb) = bb {
        let path = bb.path().to_str().unwrap();
        list.push(("ours-blocked-busybox", blocked(&[("PATH", path)])));
    }
    if let Some(r) = reference_agent(&[]) {
        list.push(("qemu-ga", r));
    }
    if let Some(bb) = bb {
        let path = bb.path().to_str().unwrap();
        if let Some(r) = reference_agent(&[("PATH", path)]) {
            list.push(("qemu-ga-busybox", r));
        }
    }
    list
}

/// A tree with awkward names: blanks, a newline, a link, a fifo, nested directories.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub dir/deep")).unwrap();
    std::fs::write(root.join("a b.txt"), "hello").unwrap();
    std::fs::write(root.join("new\nline"), "x\n").unwrap();
    std::fs::write(root.join("sub dir/deep/f"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("sub dir/empty"), "").unwrap();
    std::os::unix::fs::symlink("a b.txt", root.join("link")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
}

/// A busybox tool directory (if any), a temp dir and the [`make_tree`] tree in it.
fn fixture() -> (
    Option<tempfile::TempDir>,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree);
    (busybox_path(), dir, tree)
}

/// The files of [`make_tree`] that a tree copy takes.
const COPIED: [&str; 4] = ["a b.txt", "new\nline", "sub dir/deep/f", "sub dir/empty"];

/// Asserts that `copy` holds the same [`COPIED`] files as `tree`.
fn assert_same_files(what: &str, tree: &Path, copy: &Path) {
    for f in COPIED {
        assert_eq!(
            std::fs::read(copy.join(f)).unwrap(),
            std::fs::read(tree.join(f)).unwrap(),
            "{what}: {f}"
        );
    }
}

#[test]
fn test_ls_and_stat_same_answers_with_extension_and_fallbacks() {
    let (bb, _dir, tree) = fixture();
    let t = tree.to_str().unwrap();
    let mut answers = Vec::new();
    for (name, a) in agents(bb.as_ref()) {
        let (code, out, err) = qga(&a.sock, &["--json", "ls", t]);
        assert_eq!(code, 0, "{name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let rows: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{:?} {} {} {:o} {} {} {}",
                    e["name"].as_str().unwrap(),
                    e["type"],
                    e["size"],
                    e["mode"].as_i64().unwrap(),
                    e["uid"],
                    e["mtime"].as_i64().unwrap() / 1_000_000_000,
                    e["link-target"]
                )
            })
            .collect();
        assert_eq!(rows.len(), 5, "{name}: {rows:?}");
        answers.push((name, rows));

        let (code, out, err) = qga(&a.sock, &["ls", "-l", t]);
        assert_eq!(code, 0, "{name}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{name}: {out}");
        assert!(
            lines[0].starts_with("mode") && lines[0].ends_with("name"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("-rw-") && lines[1].ends_with(" a b.txt"),
            "{out}"
        );
        assert!(lines[2].starts_with("prw-r-----"), "{name}: {out}");
        assert!(lines[3].ends_with(" link -> a b.txt"), "{name}: {out}");
        assert!(lines[4].ends_with(" new\\nline"), "{name}: {out}");
        assert!(
            lines[5].starts_with("drwx") && lines[5].ends_with(" sub dir"),
            "{out}"
        );
        let (_, out, _) = qga(&a.sock, &["ls", &format!("{t}/sub dir")]);
        assert_eq!(out, "deep\nempty\n", "{name}");
        // A file is listed as itself.
        let (_, out, _) = qga(&a.sock, &["ls", &format!("{t}/a b.txt")]);
        assert_eq!(out, "a b.txt\n", "{name}");

        let (code, out, err) = qga(&a.sock, &["stat", &format!("{t}/link")]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            out.contains("type      symlink") && out.contains("target    a b.txt"),
            "{out}"
        );
        let (_, out, _) = qga(&a.sock, &["--json", "stat", "-L", &format!("{t}/link")]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["size"].as_i64()),
            (Some("file"), Some(5)),
            "{name}"
        );
        assert_eq!(v["name"], "link", "{name}");

        let (code, _, err) = qga(&a.sock, &["ls", &format!("{t}/nothing")]);
        assert_eq!(code, 1, "{name}");
        assert!(
            err.contains("failed to stat") && err.contains("No such file or directory"),
            "{name}: {err}"
        );
    }
    for (name, rows) in &answers[1..] {
        assert_eq!(rows, &answers[0].1, "{name} differs from ours");
    }
}

#[test]
fn test_ls_says_what_to_do_when_nothing_can_list() {
    // No extension and no guest-exec: a clear error, not a wrong answer.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let conf = format!("{};guest-exec\n", BLOCK_EXT.trim_end());
    let a = start_agent(dir, sock, &conf, &[]);
    let (code, _, err) = qga(&a.sock, &["ls", "/"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("offers neither __org.qga_file-stat") && err.contains("nor guest-exec"),
        "{err}"
    );
}

#[test]
fn test_cp_recursive_both_ways_on_every_agent() {
    let (bb, dir, tree) = fixture();
    for (name, a) in agents(bb.as_ref()) {
        let up = dir.path().join(format!("up-{name}"));
        let (code, out, err) = qga(
            &a.sock,
            &[
                "cp",
                "-r",
                tree.to_str().unwrap(),
                &format!(":{}", up.display()),
            ],
        );
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            out.contains("4 files (300007 bytes) and 3 directories copied")
                && out.contains("4 verified by sha256, 2 skipped"),
            "{name}: {out}"
        );
        assert_same_files(name, &tree, &up);
        assert!(!up.join("link").exists() && !up.join("fifo").exists());
        // Into an existing directory: the tree arrives under its own name.
        let down = dir.path().join(format!("down-{name}"));
        std::fs::create_dir(&down).unwrap();
        let (code, out, err) = qga(
            &a.sock,
            &[
                "cp",
                "-r",
                &format!(":{}", up.display()),
                down.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{name}: {err}");
        assert!(
            out.contains("4 files (300007 bytes) and 3 directories"),
            "{out}"
        );
        let back = down.join(format!("up-{name}"));
        assert_same_files(name, &tree, &back);
    }
}

/// Runs `qga -s SOCK ARGS` and returns when each stdout line arrived, the exit code and
/// the standard error.
fn timed_lines(sock: &Path, args: &[&str]) -> (Vec<(Duration, String)>, i32, String) {
    let start = Instant::now();
    let mut child = Command::new(QGA)
        .arg("-s")
        .arg(sock)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        lines.push((start.elapsed(), line.unwrap()));
    }
    let out = child.wait_with_output().unwrap();
    (
        lines,
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn test_exec_output_arrives_live_with_the_extension_at_the_end_without() {
    let script = "echo first; echo warn >&2; sleep 4; echo second; exit 3";
    let a = agent();
    let (lines, code, err) = timed_lines(&a.sock, &["exec", "--", "sh", "-c", script]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err, "warn\n");
    let [(t1, l1), (t2, l2)] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!((l1.as_str(), l2.as_str()), ("first", "second"));
    // The guest sleeps 4 s between the lines: the first one was shown while it ran.
    assert!(*t2 - *t1 >= Duration::from_secs(2), "{lines:?}");

    for b in [Some(blocked(&[])), reference_agent(&[])]
        .into_iter()
        .flatten()
    {
        let (lines, code, err) = timed_lines(&b.sock, &["exec", "--", "sh", "-c", script]);
        assert_eq!((code, err.as_str()), (3, "warn\n"));
        let [(t1, _), (t2, _)] = lines.as_slice() else {
            panic!("{lines:?}")
        };
        // Without the extension the output comes when the command has ended.
        assert!(*t2 - *t1 < Duration::from_secs(2), "{lines:?}");
        assert!(*t1 >= Duration::from_secs(4), "{lines:?}");
    }
}

#[test]
fn test_exec_exit_codes_cwd_user_and_time_limit() {
    let a = agent();
    let b = blocked(&[]);
    let r = reference_agent(&[]);
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("a dir");
    std::fs::create_dir(&cwd).unwrap();
    let cwd = cwd.to_str().unwrap();
    for sock in [Some(&a), Some(&b), r.as_ref()]
        .into_iter()
        .flatten()
        .map(|x| &x.sock)
    {
        assert_eq!(qga(sock, &["exec", "--", "sh", "-c", "exit 7"]).0, 7);
        assert_eq!(
            qga(sock, &["exec", "--", "sh", "-c", "kill -9 $$"]).0,
            128 + 9
        );
        assert_eq!(
            qga(sock, &["exec", "--", "sh", "-c", "kill -15 $$"]).0,
            128 + 15
        );
        let (code, out, err) = qga(
            sock,
            &[
                "exec",
                "--cwd",
                cwd,
                "--",
                "sh",
                "-c",
                "pwd; echo \"$@\"",
                "sh",
                "x y",
                "z",
            ],
        );
        assert_eq!((code, out), (0, format!("{cwd}\nx y z\n")), "{err}");
        let (code, _, err) = qga(sock, &["exec", "--cwd", "/nonexistent-dir", "--", "true"]);
        assert_ne!(code, 0, "{err}");
    }

    // The time limit: the agent kills the command (default SIGKILL, or --signal).
    let start = Instant::now();
    let (code, _, err) = qga(&a.sock, &["exec", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(code, 128 + 9, "{err}");
    assert!(err.contains("time limit of 1 s was reached"), "{err}");
    let (code, _, err) = qga(
        &a.sock,
        &[
            "exec",
            "--timeout",
            "1",
            "--signal",
            "TERM",
            "--",
            "sleep",
            "30",
        ],
    );
    assert_eq!(code, 128 + 15, "{err}");
    assert!(start.elapsed() < Duration::from_secs(20));
    let (code, _, err) = qga(
        &a.sock,
        &["exec", "--timeout", "1", "--signal", "NOPE", "--", "true"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("'NOPE' is not a signal"), "{err}");

    // Without the extension: qga stops waiting, the command goes on; --signal cannot work.
    let (code, _, err) = qga(&b.sock, &["exec", "--timeout", "1", "--", "sleep", "3"]);
    assert_eq!(code, 1);
    assert!(err.contains("still runs in the guest"), "{err}");
    let (code, _, err) = qga(
        &b.sock,
        &["exec", "--timeout", "1", "--signal", "TERM", "--", "true"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("--signal needs __org.qga_exec"), "{err}");

    // --user and --exit-on-main need the extension; with it they work.
    for opt in [&["--user", "nobody"][..], &["--exit-on-main"]] {
        let mut args = vec!["exec"];
        args.extend_from_slice(opt);
        args.extend_from_slice(&["--", "true"]);
        let (code, _, err) = qga(&b.sock, &args);
        assert_eq!(code, 1, "{opt:?}");
        assert!(
            err.contains(&format!("{} needs __org.qga_exec", opt[0]))
                && err.contains("does not offer"),
            "{err}"
        );
    }
    if nix::unistd::geteuid().is_root() {
        let (code, out, err) = qga(&a.sock, &["exec", "--user", "nobody", "--", "id", "-un"]);
        assert_eq!((code, out.as_str()), (0, "nobody\n"), "{err}");
    }
    // A command that leaves a process behind holding its output: --exit-on-main reports
    // the command's exit at once.
    let start = Instant::now();
    let (code, out, err) = qga(
        &a.sock,
        &[
            "exec",
            "--exit-on-main",
            "--",
            "sh",
            "-c",
            "sleep 5 & echo main; exit 4",
        ],
    );
    assert_eq!((code, out.as_str()), (4, "main\n"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

/// Starts `qga exec -- sh -c SCRIPT`, waits for its first line ("ready"), then sends
/// SIGINT to qga (as Ctrl-C would); returns qga and the rest of its output.
fn interrupt_after_first_line(
    sock: &Path,
    script: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(QGA)
        .arg("-s")
        .arg(sock)
        .args(["exec", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    (child, out)
}

#[test]
fn test_ctrl_c_is_sent_to_the_guest_process() {
    let a = agent();
    let script = "trap 'echo interrupted; exit 5' INT; echo ready; while :; do sleep 0.1; done";
    let (mut child, mut out) = interrupt_after_first_line(&a.sock, script);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "interrupted\n");
    // The exit code is the guest command's, which handled the signal.
    assert_eq!(child.wait().unwrap().code(), Some(5));

    // A command that does not handle it ends by it: 128+2.
    let start = Instant::now();
    let (mut child, _) = interrupt_after_first_line(&a.sock, "echo ready; exec sleep 30");
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
    assert!(start.elapsed() < Duration::from_secs(10));
}
