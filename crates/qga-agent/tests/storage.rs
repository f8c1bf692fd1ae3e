//! Process-level tests of the filesystem and disk commands on this machine: the read-only
//! ones, argument errors, and the frozen state restored from `qga.state.isfrozen` at
//! start-up. Nothing here freezes, thaws or trims a real filesystem (the freeze logic is
//! tested on a fake mount list in the unit tests, the real thing in the VM suite).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Agent, exchange};
use qga_schema as s;

/// The one reply line to `request`, on a fresh connection.
fn reply(agent: &Agent, request: &str) -> String {
    exchange(agent, request.as_bytes(), 1)
}

#[test]
fn test_read_only_commands() {
    let agent = Agent::start(&[]);
    assert_eq!(
        reply(&agent, r#"{"execute":"guest-fsfreeze-status"}"#),
        "{\"return\": \"thawed\"}\n"
    );
    let mut c = agent.client();
    let stats = c.execute::<s::GuestGetDiskstats>(&s::NoArgs {}).unwrap();
    let names: Vec<String> = std::fs::read_to_string("/proc/diskstats")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    assert_eq!(
        stats.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        names
    );
    let fs = c.execute::<s::GuestGetFsinfo>(&s::NoArgs {}).unwrap();
    // Every filesystem of the list is on a block device (no proc, sysfs, tmpfs).
    for f in &fs {
        assert!(!["proc", "sysfs", "tmpfs", "devpts", "cgroup"].contains(&f.fs_type.as_str()));
        assert!(f.mountpoint.starts_with('/'));
    }
    let disks = c.execute::<s::GuestGetDisks>(&s::NoArgs {}).unwrap();
    for d in &disks {
        assert!(d.name.starts_with("/dev/"), "{}", d.name);
        assert!(d.dependencies.is_some());
    }
}

#[test]
fn test_argument_errors() {
    let agent = Agent::start(&[]);
    for (req, desc) in [
        (
            r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":"x"}}"#,
            "Invalid parameter type for 'mountpoints', expected: array",
        ),
        (
            r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/",1]}}"#,
            "Invalid parameter type for 'mountpoints[1]', expected: string",
        ),
        (
            r#"{"execute":"guest-fstrim","arguments":{"minimum":"x"}}"#,
            "Invalid parameter type for 'minimum', expected: integer",
        ),
        (
            r#"{"execute":"guest-fsfreeze-thaw","arguments":{"x":1}}"#,
            "Parameter 'x' is unexpected",
        ),
    ] {
        let expected = serde_json::json!({"error": {"class": "GenericError", "desc": desc}});
        let got: serde_json::Value = serde_json::from_str(&reply(&agent, req)).unwrap();
        assert_eq!(got, expected, "{req}");
    }
}

#[test]
fn test_commands_listed_in_qemu_order() {
    let out = Command::new(common::AGENT)
        .args(["-b", "help"])
        .env("QGA_CONF", "/nonexistent/qga-test.conf")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("guest-fs")
                || l.contains("-disks")
                || l.contains("fsinfo")
                || l.contains("diskstats")
        })
        .collect();
    assert_eq!(
        names,
        [
            "guest-fsfreeze-status",
            "guest-fsfreeze-freeze",
            "guest-fsfreeze-freeze-list",
            "guest-fsfreeze-thaw",
            "guest-fstrim",
            "guest-get-disks",
            "guest-get-fsinfo",
            "guest-get-diskstats",
        ]
    );
}

#[test]
fn test_marker_at_start_up_means_frozen() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("qga.state.isfrozen"), "").unwrap();
    let state = dir.path().to_str().unwrap();
    // SIGKILL on drop: the agent never thaws here (thawing is for the VM suite).
    let agent = Agent::start(&["-t", state]);
    assert_eq!(
        reply(&agent, r#"{"execute":"guest-fsfreeze-status"}"#),
        "{\"return\": \"frozen\"}\n"
    );
    assert_eq!(
        reply(&agent, r#"{"execute":"guest-ping"}"#),
        "{\"return\": {}}\n"
    );
    let disabled = reply(&agent, r#"{"execute":"guest-get-time"}"#);
    assert!(disabled.contains("CommandNotFound"), "{disabled}");
    assert!(disabled.contains("has been disabled"), "{disabled}");
    let info = reply(&agent, r#"{"execute":"guest-info"}"#);
    assert!(
        info.contains(r#"{"enabled": true, "name": "guest-fsfreeze-thaw""#),
        "{info}"
    );
    assert!(
        info.contains(r#"{"enabled": false, "name": "guest-fsfreeze-freeze""#),
        "{info}"
    );
    assert!(dir.path().join("qga.state.isfrozen").exists());
}

#[test]
fn test_extra_keys_dumped_only_when_set() {
    let dump = |conf: &str| {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), conf).unwrap();
        let out = Command::new(common::AGENT)
            .arg("-D")
            .env("QGA_CONF", f.path())
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = dump("");
    assert!(!plain.contains("fsfreeze-watchdog"), "{plain}");
    assert!(!plain.contains("fsfreeze-hook-timeout"), "{plain}");
    let set = dump("[general]\nfsfreeze-watchdog=30\nfsfreeze-hook-timeout=0\n");
    assert!(set.contains("\nfsfreeze-watchdog=30\n"), "{set}");
    assert!(set.contains("\nfsfreeze-hook-timeout=0\n"), "{set}");
}
