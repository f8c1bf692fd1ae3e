//! The `__org.qga_` extension commands on the real binary (docs/extensions.md): exec with
//! live output, time limit, signals, working directory, user and exit-on-main; stat,
//! listing and no-follow open; policy; and a qemu-ga client's view (a slice of the golden
//! wire cases) unchanged while another connection uses the extensions.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Agent;
use qga_client::Client;
use serde_json::{Value as Json, json};

/// Sends `request` and returns the parsed reply.
fn call(c: &mut Client<UnixStream>, request: &Json) -> Json {
    c.send_raw(request.to_string().as_bytes()).unwrap();
    serde_json::from_slice(&c.read_reply().unwrap().line).unwrap()
}

fn ret(c: &mut Client<UnixStream>, request: &Json) -> Json {
    let r = call(c, request);
    r.get("return")
        .cloned()
        .unwrap_or_else(|| panic!("{request} -> {r}"))
}

fn error(c: &mut Client<UnixStream>, request: &Json) -> String {
    let r = call(c, request);
    r["error"]["desc"]
        .as_str()
        .unwrap_or_else(|| panic!("{request} -> {r}"))
        .to_string()
}

fn b64(s: &Json) -> String {
    String::from_utf8(qga_proto::b64::decode(s.as_str().unwrap()).unwrap()).unwrap()
}

fn exec(c: &mut Client<UnixStream>, args: &Json) -> i64 {
    ret(c, &json!({"execute": "__org.qga_exec", "arguments": args}))["pid"]
        .as_i64()
        .unwrap()
}

/// Polls guest-exec-status until it reports the exit (at most `secs`).
fn wait_status(c: &mut Client<UnixStream>, pid: i64, secs: u64) -> Json {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = ret(
            c,
            &json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}),
        );
        if r["exited"] == json!(true) {
            return r;
        }
        assert!(Instant::now() < deadline, "pid {pid} still running: {r}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn test_exec_output_read_live_by_offset_from_another_connection() {
    let agent = Agent::start(&[]);
    let mut a = agent.client();
    let mut b = agent.client();
    let pid = exec(
        &mut a,
        &json!({"path": "/bin/sh", "arg": ["-c", "echo one; echo err >&2; sleep 1; echo two"],
               "capture-output": true}),
    );
    // First poll from the other connection: "one" is there, the process still runs.
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = loop {
        let o = ret(
            &mut b,
            &json!({"execute": "__org.qga_exec-output", "arguments": {"pid": pid}}),
        );
        if o["out-offset"] == json!(4) && o["err-offset"] == json!(4) {
            break o;
        }
        assert!(Instant::now() < deadline, "{o}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(b64(&first["out-data"]), "one\n");
    assert_eq!(b64(&first["err-data"]), "err\n");
    assert_eq!(first["exited"], json!(false));
    assert_eq!(first["out-open"], json!(true));
    // Later polls from offset 4 give only the new bytes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let last = loop {
        let o = ret(
            &mut b,
            &json!({"execute": "__org.qga_exec-output",
                    "arguments": {"pid": pid, "out-offset": 4, "err-offset": 4}}),
        );
        if o["exited"] == json!(true) {
            break o;
        }
        assert!(Instant::now() < deadline, "{o}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(b64(&last["out-data"]), "two\n");
    assert_eq!(b64(&last["err-data"]), "");
    assert_eq!(
        (&last["out-offset"], &last["exitcode"], &last["timed-out"]),
        (&json!(8), &json!(0), &json!(false))
    );
    // max-bytes bounds a slice; the record stays until guest-exec-status collects it.
    let o = ret(
        &mut a,
        &json!({"execute": "__org.qga_exec-output",
                "arguments": {"pid": pid, "out-offset": 1, "max-bytes": 2}}),
    );
    assert_eq!(
        (b64(&o["out-data"]), &o["out-offset"]),
        ("ne".into(), &json!(3))
    );
    let st = wait_status(&mut a, pid, 5);
    assert_eq!(b64(&st["out-data"]), "one\ntwo\n");
    assert_eq!(
        error(
            &mut b,
            &json!({"execute": "__org.qga_exec-output", "arguments": {"pid": pid}})
        ),
        format!("PID {pid} does not exist")
    );
    assert_eq!(
        error(
            &mut b,
            &json!({"execute": "__org.qga_exec-output", "arguments": {"pid": 1, "out-offset": -1}})
        ),
        "value '-1' is invalid for argument out-offset"
    );
}

#[test]
fn test_exec_timeout_signal_cwd_and_user() {
    let agent = Agent::start(&[]);
    let mut c = agent.client();
    // Time limit: SIGTERM after 1 s, to the whole process group.
    let t = Instant::now();
    let pid = exec(
        &mut c,
        &json!({"path": "/bin/sh", "arg": ["-c", "sleep 30; echo never"], "capture-output": true,
               "timeout": 1, "kill-signal": 15}),
    );
    let st = wait_status(&mut c, pid, 10);
    assert_eq!(st["signal"], json!(15), "{st}");
    assert!(st.get("out-data").is_none(), "{st}");
    assert!(t.elapsed() < Duration::from_secs(8));
    // A signal on request.
    let pid = exec(&mut c, &json!({"path": "/bin/sleep", "arg": ["30"]}));
    let o = ret(
        &mut c,
        &json!({"execute": "__org.qga_exec-output", "arguments": {"pid": pid}}),
    );
    assert_eq!(
        (&o["exited"], &o["out-open"]),
        (&json!(false), &json!(false))
    );
    ret(
        &mut c,
        &json!({"execute": "__org.qga_exec-signal", "arguments": {"pid": pid, "signal": 9}}),
    );
    assert_eq!(wait_status(&mut c, pid, 10)["signal"], json!(9));
    assert_eq!(
        error(
            &mut c,
            &json!({"execute": "__org.qga_exec-signal", "arguments": {"pid": pid, "signal": 9}})
        ),
        format!("PID {pid} does not exist")
    );
    // guest-exec processes can be signalled too (their pid only).
    let pid = ret(
        &mut c,
        &json!({"execute": "guest-exec", "arguments": {"path": "/bin/sleep", "arg": ["30"]}}),
    )["pid"]
        .as_i64()
        .unwrap();
    ret(
        &mut c,
        &json!({"execute": "__org.qga_exec-signal", "arguments": {"pid": pid, "signal": 15}}),
    );
    assert_eq!(wait_status(&mut c, pid, 10)["signal"], json!(15));
    // Working directory.
    let dir = agent.statedir().canonicalize().unwrap();
    let pid = exec(
        &mut c,
        &json!({"path": "/bin/pwd", "cwd": dir.to_str().unwrap(), "capture-output": true}),
    );
    assert_eq!(
        b64(&wait_status(&mut c, pid, 10)["out-data"]),
        format!("{}\n", dir.display())
    );
    assert!(
        error(
            &mut c,
            &json!({"execute": "__org.qga_exec", "arguments": {"path": "/bin/pwd", "cwd": "/nonexistent-qga"}})
        )
        .starts_with("Failed to execute child process \u{201c}/bin/pwd\u{201d} (No such file or directory")
    );
    // Another user: as root, "nobody"; otherwise ourselves by name (still a real lookup).
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = String::from_utf8(me.stdout).unwrap().trim().to_string();
    let user = if me == "root" {
        "nobody".to_string()
    } else {
        me
    };
    let want = std::process::Command::new("id")
        .arg(&user)
        .output()
        .unwrap();
    let pid = exec(
        &mut c,
        &json!({"path": "/usr/bin/id", "user": user, "capture-output": true,
               "env": ["PATH=/usr/bin:/bin"]}),
    );
    assert_eq!(
        b64(&wait_status(&mut c, pid, 10)["out-data"]),
        String::from_utf8(want.stdout).unwrap()
    );
    let pid = exec(
        &mut c,
        &json!({"path": "/bin/sh", "arg": ["-c", "echo $HOME $USER"], "user": user,
               "capture-output": true}),
    );
    assert!(
        b64(&wait_status(&mut c, pid, 10)["out-data"]).ends_with(&format!(" {user}\n")),
        "HOME and USER of the account"
    );
    assert_eq!(
        error(
            &mut c,
            &json!({"execute": "__org.qga_exec", "arguments": {"path": "/bin/true", "user": "no-such-user-qga"}})
        ),
        "no such user 'no-such-user-qga'"
    );
    assert_eq!(
        error(
            &mut c,
            &json!({"execute": "__org.qga_exec", "arguments": {"path": "/bin/true", "timeout": 1, "kill-signal": 99}})
        ),
        "kill-signal 99 is not a signal number"
    );
}

#[test]
fn test_exit_on_main_reports_exit_while_a_grandchild_holds_the_pipes() {
    let agent = Agent::start(&[]);
    let mut c = agent.client();
    // The background child holds the pipe for 10 s; the exit must be reported long before.
    let pid = exec(
        &mut c,
        &json!({"path": "/bin/sh", "arg": ["-c", "sleep 10 & echo started"],
               "capture-output": true, "exit-on-main": true}),
    );
    let t = Instant::now();
    let st = wait_status(&mut c, pid, 10);
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    assert_eq!(
        (&st["exitcode"], b64(&st["out-data"])),
        (&json!(0), "started\n".into())
    );
    // The standard command keeps qemu-ga's rule: not exited while the pipe is held.
    let script = "sleep 3 & echo started";
    let std_pid = ret(
        &mut c,
        &json!({"execute": "guest-exec", "arguments": {"path": "/bin/sh", "arg": ["-c", script],
                "capture-output": true}}),
    )["pid"]
        .as_i64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let r = ret(
        &mut c,
        &json!({"execute": "guest-exec-status", "arguments": {"pid": std_pid}}),
    );
    assert_eq!(r, json!({"exited": false}));
    let st = wait_status(&mut c, std_pid, 10);
    assert_eq!(b64(&st["out-data"]), "started\n");
}

#[test]
fn test_file_stat_list_and_nofollow_open() {
    let agent = Agent::start(&[]);
    let mut c = agent.client();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("b.txt"), b"hello").unwrap();
    std::fs::create_dir(d.join("a-dir")).unwrap();
    std::os::unix::fs::symlink("b.txt", d.join("c-link")).unwrap();
    let list = ret(
        &mut c,
        &json!({"execute": "__org.qga_file-list", "arguments": {"path": d.to_str().unwrap()}}),
    );
    let names: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("a-dir", "directory"),
            ("b.txt", "file"),
            ("c-link", "symlink")
        ]
    );
    let meta = std::fs::metadata(d.join("b.txt")).unwrap();
    let f = &list[1];
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (&f["size"], &f["mode"], &f["uid"], &f["nlink"], &f["inode"]),
        (
            &json!(5),
            &json!(meta.mode() & 0o7777),
            &json!(meta.uid()),
            &json!(1),
            &json!(meta.ino())
        )
    );
    assert_eq!(
        f["mtime"],
        json!(meta.mtime() * 1_000_000_000 + meta.mtime_nsec())
    );
    assert_eq!(list[2]["link-target"], json!("b.txt"));
    let link = d.join("c-link");
    let stat = |c: &mut Client<UnixStream>, follow: bool| {
        ret(
            c,
            &json!({"execute": "__org.qga_file-stat",
                    "arguments": {"path": link.to_str().unwrap(), "follow-symlinks": follow}}),
        )
    };
    assert_eq!(stat(&mut c, false)["type"], json!("symlink"));
    assert_eq!(
        (
            stat(&mut c, true)["type"].clone(),
            stat(&mut c, true)["size"].clone()
        ),
        (json!("file"), json!(5))
    );
    assert_eq!(
        error(
            &mut c,
            &json!({"execute": "__org.qga_file-stat", "arguments": {"path": "/nonexistent-qga"}})
        ),
        "failed to stat '/nonexistent-qga': No such file or directory"
    );
    assert_eq!(
        error(
            &mut c,
            &json!({"execute": "__org.qga_file-list", "arguments": {"path": d.join("b.txt").to_str().unwrap()}})
        ),
        format!(
            "failed to list directory '{}': Not a directory",
            d.join("b.txt").display()
        )
    );
    // No-follow open: the link is refused, the file itself opens and reads normally.
    assert_eq!(
        error(
            &mut c,
            &json!({"execute": "__org.qga_file-open-nofollow", "arguments": {"path": link.to_str().unwrap()}})
        ),
        format!(
            "failed to open file '{}' (mode: 'r'): Too many levels of symbolic links",
            link.display()
        )
    );
    let h = ret(
        &mut c,
        &json!({"execute": "__org.qga_file-open-nofollow",
                "arguments": {"path": d.join("b.txt").to_str().unwrap()}}),
    );
    let r = ret(
        &mut c,
        &json!({"execute": "guest-file-read", "arguments": {"handle": h}}),
    );
    assert_eq!(b64(&r["buf-b64"]), "hello");
    ret(
        &mut c,
        &json!({"execute": "guest-file-close", "arguments": {"handle": h}}),
    );
}

#[test]
fn test_extensions_follow_policy_and_guest_info() {
    let agent = Agent::start(&["-b", "__org.qga_exec,__org.qga_file-list"]);
    let mut c = agent.client();
    let r = call(
        &mut c,
        &json!({"execute": "__org.qga_exec", "arguments": {"path": "/bin/true"}}),
    );
    assert_eq!(
        r,
        json!({"error": {"class": "CommandNotFound",
                         "desc": "Command __org.qga_exec has been disabled: the command is not allowed"}})
    );
    let info = ret(&mut c, &json!({"execute": "guest-info"}));
    let listed: Vec<(String, bool)> = info["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["enabled"].as_bool().unwrap(),
            )
        })
        .filter(|(n, _)| n.starts_with("__org.qga_"))
        .collect();
    assert_eq!(
        listed,
        [
            ("__org.qga_file-open-nofollow".to_string(), true),
            ("__org.qga_file-list".to_string(), false),
            ("__org.qga_file-stat".to_string(), true),
            ("__org.qga_exec-signal".to_string(), true),
            ("__org.qga_exec-output".to_string(), true),
            ("__org.qga_exec".to_string(), false),
        ]
    );
    // The @exec group covers the extensions of that group.
    let agent = Agent::start(&["-b", "@exec"]);
    let mut c = agent.client();
    let r = call(
        &mut c,
        &json!({"execute": "__org.qga_exec-output", "arguments": {"pid": 1}}),
    );
    assert_eq!(r["error"]["class"], json!("CommandNotFound"));
}

fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

#[test]
fn test_qemu_ga_client_sees_no_difference_while_extensions_are_used() {
    let data = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/wire-golden.json"
    ))
    .unwrap();
    let cases: Vec<Json> = serde_json::from_str(&data).unwrap();
    // Protocol-level cases with the default configuration (sync, ping, parse errors): their
    // replies do not depend on the machine.
    let slice: Vec<&Json> = cases
        .iter()
        .filter(|c| {
            c["input"].is_string()
                && c["expect"].is_string()
                && c.get("agent_args").is_none()
                && c.get("config_text").is_none()
                && c["input"].as_str().unwrap().len() < 4096
                && [
                    "sync", "syncd", "ff-", "ping", "split-", "json-", "bad-", "ws-",
                ]
                .iter()
                .any(|p| c["name"].as_str().unwrap().starts_with(p))
        })
        .collect();
    assert!(slice.len() >= 60, "{}", slice.len());
    let agent = Agent::start(&[]);
    // Another client keeps using the extensions meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let mut c = agent.client();
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let pid = exec(
                &mut c,
                &json!({"path": "/bin/sh", "arg": ["-c", "while :; do echo x; sleep 0.01; done"],
                       "capture-output": true}),
            );
            let mut polls = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                ret(
                    &mut c,
                    &json!({"execute": "__org.qga_exec-output", "arguments": {"pid": pid, "max-bytes": 64}}),
                );
                ret(
                    &mut c,
                    &json!({"execute": "__org.qga_file-list", "arguments": {"path": "/"}}),
                );
                polls += 1;
            }
            ret(
                &mut c,
                &json!({"execute": "__org.qga_exec-signal", "arguments": {"pid": pid, "signal": 9}}),
            );
            polls
        })
    };
    let mut compared = 0;
    for case in slice {
        let want = latin1(case["expect"].as_str().unwrap());
        let mut s = UnixStream::connect(&agent.sock).unwrap();
        s.write_all(&latin1(case["input"].as_str().unwrap()))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        while got.len() < want.len() && Instant::now() < deadline {
            if let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "case {}",
            case["name"]
        );
        compared += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let polls = busy.join().unwrap();
    assert!(polls > 0);
    println!("{compared} golden cases identical while the other client polled {polls} times");
}

#[test]
fn test_max_connections_and_hotplug_keys_dumped_and_accepted() {
    let conf = "[general]\nmax-connections=2\nhotplug-online=true\n";
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), conf).unwrap();
    let out = std::process::Command::new(common::AGENT)
        .arg("-D")
        .env("QGA_CONF", f.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.ends_with("\nmax-connections=2\nhotplug-online=true\n"),
        "{text}"
    );
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "[general]\nhotplug-online=maybe\n").unwrap();
    let out = std::process::Command::new(common::AGENT)
        .arg("-D")
        .env("QGA_CONF", bad.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The agent runs with the watcher started (it onlines nothing on this machine: only
    // what is hot-added later) and answers as usual.
    let mut agent = Agent::start_with(&[], &[], conf);
    let mut c = agent.client();
    assert_eq!(ret(&mut c, &json!({"execute": "guest-ping"})), json!({}));
    assert!(agent.alive());
}
