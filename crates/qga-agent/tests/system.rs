//! Process-level tests of the system and hardware commands on this machine: the read-only
//! ones, and the argument and validation errors of the others. Nothing here changes the
//! machine: shutdown, suspend, set-time, set-vcpus, memory blocks and passwords are only
//! sent requests that fail before acting (suspend only where no method can apply).
#![allow(clippy::unwrap_used)]

mod common;

use common::{Agent, exchange};
use qga_schema as s;

fn one(agent: &Agent, request: &str) -> String {
    exchange(agent, request.as_bytes(), 1)
}

fn err(desc: &str) -> String {
    format!("{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"{desc}\"}}}}\n")
}

#[test]
fn test_read_only_commands_have_sane_replies() {
    let agent = Agent::start(&[]);
    let mut c = agent.client();

    let vcpus = c.execute::<s::GuestGetVcpus>(&s::NoArgs {}).unwrap();
    assert!(!vcpus.is_empty());
    assert!(vcpus.iter().all(|v| v.can_offline.is_some()));
    let mut ids: Vec<i64> = vcpus.iter().map(|v| v.logical_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), vcpus.len());

    let stats = c.execute::<s::GuestGetCpustats>(&s::NoArgs {}).unwrap();
    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(stats.len(), cpus);

    let load = c.execute::<s::GuestGetLoad>(&s::NoArgs {}).unwrap();
    assert!(load.load1m >= 0.0 && load.load5m >= 0.0 && load.load15m >= 0.0);

    let ifaces = c
        .execute::<s::GuestNetworkGetInterfaces>(&s::NoArgs {})
        .unwrap();
    let lo = ifaces.iter().find(|i| i.name == "lo").unwrap();
    assert_eq!(lo.hardware_address.as_deref(), Some("00:00:00:00:00:00"));
    let ips = lo.ip_addresses.as_ref().unwrap();
    assert!(
        ips.iter()
            .any(|a| a.ip_address == "127.0.0.1" && a.prefix == 8)
    );
    assert!(lo.statistics.is_some());

    let routes = c.execute::<s::GuestNetworkGetRoute>(&s::NoArgs {}).unwrap();
    assert!(routes.iter().all(|r| r.version == 4 || r.version == 6));
    assert!(routes.iter().all(|r| r.metric >= 0));

    if std::path::Path::new("/sys/devices/system/memory/block_size_bytes").exists() {
        let info = c
            .execute::<s::GuestGetMemoryBlockInfo>(&s::NoArgs {})
            .unwrap();
        assert!(info.size.is_power_of_two());
        let blocks = c.execute::<s::GuestGetMemoryBlocks>(&s::NoArgs {}).unwrap();
        assert!(!blocks.is_empty());
    }
}

#[test]
fn test_shutdown_mode_errors() {
    let agent = Agent::start(&[]);
    // Fixed text: qemu-ga's lacks the closing parenthesis (docs/compat.md).
    assert_eq!(
        one(
            &agent,
            r#"{"execute":"guest-shutdown","arguments":{"mode":"bogus"}}"#
        ),
        err("mode is invalid (valid values are: halt|powerdown|reboot)")
    );
    assert_eq!(
        one(
            &agent,
            r#"{"execute":"guest-shutdown","arguments":{"mode":""}}"#
        ),
        err("mode is invalid (valid values are: halt|powerdown|reboot)")
    );
    assert_eq!(
        one(
            &agent,
            r#"{"execute":"guest-shutdown","arguments":{"mode":null}}"#
        ),
        err("Invalid parameter type for 'mode', expected: string")
    );
}

#[test]
fn test_set_time_rejected_before_touching_the_clock() {
    let agent = Agent::start(&[]);
    for t in [
        "-2000000000",
        "4000000000000000000",
        "3155760000000000000",
        "-9223372036854775808",
    ] {
        let req = format!(r#"{{"execute":"guest-set-time","arguments":{{"time":{t}}}}}"#);
        assert_eq!(one(&agent, &req), err("Invalid time"), "{t}");
    }
    assert_eq!(
        one(
            &agent,
            r#"{"execute":"guest-set-time","arguments":{"time":1.5}}"#
        ),
        err("Invalid parameter type for 'time', expected: integer")
    );
}

#[test]
fn test_set_user_password_validation() {
    let agent = Agent::start(&[]);
    for (args, want) in [
        (
            r#"{"username":"x","password":"!!!","crypted":false}"#,
            "Base64 data contains invalid characters",
        ),
        (
            r#"{"username":"x","password":"YQpi","crypted":false}"#,
            "forbidden characters in raw password",
        ),
        (
            r#"{"username":"x:y","password":"YWJj","crypted":false}"#,
            "forbidden characters in username",
        ),
        (
            r#"{"username":"x\ny","password":"AAo=","crypted":true}"#,
            "forbidden characters in username",
        ),
        (
            r#"{"username":"x","password":"YTpi","crypted":true}"#,
            "forbidden characters in crypted password",
        ),
        (
            r#"{"username":"x","password":"YWJj"}"#,
            "Parameter 'crypted' is missing",
        ),
    ] {
        let req = format!(r#"{{"execute":"guest-set-user-password","arguments":{args}}}"#);
        assert_eq!(one(&agent, &req), err(want), "{args}");
    }
}

#[test]
fn test_ssh_key_errors() {
    let agent = Agent::start(&[]);
    for (cmd, args, want) in [
        (
            "guest-ssh-add-authorized-keys",
            r##"{"username":"no-such-user-qga","keys":["#abc"]}"##,
            "invalid OpenSSH public key: '#abc'",
        ),
        (
            "guest-ssh-remove-authorized-keys",
            r#"{"username":"no-such-user-qga","keys":["a\nb"]}"#,
            "invalid OpenSSH public key: 'a\\nb'",
        ),
        (
            "guest-ssh-add-authorized-keys",
            r#"{"username":"no-such-user-qga","keys":[]}"#,
            "failed to lookup user 'no-such-user-qga': Success",
        ),
        (
            "guest-ssh-get-authorized-keys",
            r#"{"username":""}"#,
            "failed to lookup user '': Success",
        ),
        (
            "guest-ssh-add-authorized-keys",
            r#"{"username":"x","keys":["k"],"reset":null}"#,
            "Invalid parameter type for 'reset', expected: boolean",
        ),
    ] {
        let req = format!(r#"{{"execute":"{cmd}","arguments":{args}}}"#);
        assert_eq!(one(&agent, &req), err(want), "{cmd} {args}");
    }
    // nobody's home does not exist on Debian.
    if nix_user_home("nobody").as_deref() == Some("/nonexistent") {
        assert_eq!(
            one(
                &agent,
                r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"nobody"}}"#
            ),
            err(
                "failed to read '/nonexistent/.ssh/authorized_keys': Failed to open file \
                 \\u201C/nonexistent/.ssh/authorized_keys\\u201D: No such file or directory"
            )
        );
        assert_eq!(
            one(
                &agent,
                r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"nobody","keys":["x"]}}"#
            ),
            "{\"return\": {}}\n"
        );
    }
}

fn nix_user_home(user: &str) -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[0] == user)
        .map(|f| f[5].to_string())
}

#[test]
fn test_empty_lists_and_argument_errors() {
    let agent = Agent::start(&[]);
    for (req, want) in [
        (
            r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[]}}"#,
            "{\"return\": 0}\n".to_string(),
        ),
        (
            r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[]}}"#,
            "{\"return\": []}\n".to_string(),
        ),
        (
            r#"{"execute":"guest-get-load","arguments":{"x":1}}"#,
            err("Parameter 'x' is unexpected"),
        ),
        (
            r#"{"execute":"guest-suspend-ram","arguments":{"x":1}}"#,
            err("Parameter 'x' is unexpected"),
        ),
        (
            r#"{"execute":"guest-network-get-route","arguments":{"x":1}}"#,
            err("Parameter 'x' is unexpected"),
        ),
    ] {
        assert_eq!(one(&agent, req), want, "{req}");
    }
}

#[test]
fn test_suspend_not_supported_without_helpers() {
    // No systemctl or pm-utils in PATH; sysfs never does hybrid. disk and ram are only tried
    // where /sys/power/state offers neither, so this can never suspend the machine.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let agent = Agent::start_with(&[], &[("PATH", path)], "");
    let state = std::fs::read_to_string("/sys/power/state").unwrap_or_default();
    let mut modes = vec!["hybrid"];
    if !state.contains("disk") {
        modes.push("disk");
    }
    if !state.contains("mem") {
        modes.push("ram");
    }
    for mode in modes {
        let req = format!(r#"{{"execute":"guest-suspend-{mode}"}}"#);
        assert_eq!(
            one(&agent, &req),
            err("the requested suspend mode is not supported by the guest"),
            "{mode}"
        );
    }
}

#[test]
fn test_commands_listed_in_guest_info() {
    let agent = Agent::start(&[]);
    let mut c = agent.client();
    let info = c.execute::<s::GuestInfo>(&s::NoArgs {}).unwrap();
    for (name, success_response) in [
        ("guest-shutdown", false),
        ("guest-suspend-disk", false),
        ("guest-suspend-ram", false),
        ("guest-suspend-hybrid", false),
        ("guest-set-time", true),
        ("guest-network-get-route", true),
        ("guest-ssh-remove-authorized-keys", true),
    ] {
        let cmd = info
            .supported_commands
            .iter()
            .find(|c| c.name == name)
            .unwrap();
        assert!(cmd.enabled, "{name}");
        assert_eq!(cmd.success_response, success_response, "{name}");
    }
}
