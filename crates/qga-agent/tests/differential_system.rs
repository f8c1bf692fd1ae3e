//! Differential test of the system and hardware commands: the same read-only requests (and
//! requests that fail before acting) to Debian's qemu-ga (7.2; also qemu-ga 10.x when
//! `QGA_REFERENCE_10` names one) and to our agent on this machine. Replies must be
//! identical, or of the same shape where the values move (CPU times, load, counters), or
//! differ only as docs/compat.md says (shutdown's error text, unsigned route numbers).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Agent, exchange};
use qga_proto::{Dict, Frame, Framer, Value};

/// A running agent and its one question at a time.
struct Running(Agent);

impl Running {
    fn start(binary: &str) -> Running {
        Running(Agent::start_program(binary, &[], &[], ""))
    }

    fn ask(&self, request: &str) -> String {
        exchange(&self.0, request.as_bytes(), 1)
            .trim_end()
            .to_string()
    }
}

fn parse(line: &str) -> Value {
    match Framer::new().feed_collect(line.as_bytes()).pop() {
        Some(Frame::Message(v)) => v,
        other => panic!("{other:?}"),
    }
}

fn ret(line: &str) -> Value {
    match parse(line) {
        Value::Dict(d) => d.get("return").cloned().unwrap_or_else(|| panic!("{line}")),
        other => panic!("{other:?}"),
    }
}

fn list(v: Value) -> Vec<Dict> {
    match v {
        Value::List(l) => l
            .into_iter()
            .map(|e| match e {
                Value::Dict(d) => d,
                other => panic!("{other:?}"),
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn keys(d: &Dict) -> Vec<String> {
    let mut k: Vec<String> = d.entries.iter().map(|(k, _)| k.clone()).collect();
    k.sort();
    k
}

/// Requests whose replies must be byte for byte the same.
const IDENTICAL: &[&str] = &[
    r#"{"execute":"guest-get-vcpus"}"#,
    r#"{"execute":"guest-get-memory-blocks"}"#,
    r#"{"execute":"guest-get-memory-block-info"}"#,
    r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[]}}"#,
    r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[]}}"#,
    r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":0}]}}"#,
    r#"{"execute":"guest-set-memory-blocks","arguments":{"mem-blks":[{"phys-index":"x","online":true}]}}"#,
    r#"{"execute":"guest-set-time","arguments":{"time":-2000000000}}"#,
    r#"{"execute":"guest-set-time","arguments":{"time":4000000000000000000}}"#,
    r#"{"execute":"guest-set-time","arguments":{"time":"x"}}"#,
    r#"{"execute":"guest-shutdown","arguments":{"mode":1}}"#,
    r#"{"execute":"guest-set-user-password","arguments":{"username":"x","password":"!!!","crypted":false}}"#,
    r#"{"execute":"guest-set-user-password","arguments":{"username":"x","password":"YQpi","crypted":false}}"#,
    r#"{"execute":"guest-set-user-password","arguments":{"username":"x:y","password":"YWJj","crypted":false}}"#,
    r#"{"execute":"guest-set-user-password","arguments":{"username":"x:y","password":"AAo=","crypted":true}}"#,
    r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"no-such-user-qga"}}"#,
    r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"nobody"}}"#,
    r##"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"no-such-user-qga","keys":["#x"]}}"##,
    r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"no-such-user-qga","keys":["ssh-rsa A"]}}"#,
    r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"nobody","keys":["x"]}}"#,
    r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"no-such-user-qga","keys":["a\nb"]}}"#,
    r#"{"execute":"guest-suspend-hybrid","arguments":{"x":1}}"#,
];

fn compare_identical(theirs: &Running, ours: &Running) -> usize {
    for req in IDENTICAL {
        assert_eq!(theirs.ask(req), ours.ask(req), "{req}");
    }
    IDENTICAL.len()
}

/// Interfaces: identical apart from the traffic counters, which only have to be present
/// for the same interfaces and not go backwards.
fn compare_interfaces(theirs: &Running, ours: &Running) {
    let req = r#"{"execute":"guest-network-get-interfaces"}"#;
    let a = list(ret(&theirs.ask(req)));
    let b = list(ret(&ours.ask(req)));
    assert_eq!(a.len(), b.len());
    for (mut x, mut y) in a.into_iter().zip(b) {
        let sx = x
            .entries
            .iter()
            .position(|(k, _)| k == "statistics")
            .map(|i| x.entries.remove(i).1);
        let sy = y
            .entries
            .iter()
            .position(|(k, _)| k == "statistics")
            .map(|i| y.entries.remove(i).1);
        assert_eq!(x, y);
        assert_eq!(sx.is_some(), sy.is_some(), "{x:?}");
        if let (Some(Value::Dict(sx)), Some(Value::Dict(sy))) = (sx, sy) {
            assert_eq!(keys(&sx), keys(&sy));
            for (k, v) in &sx.entries {
                let (Some(Value::Int(v0)), Some(Value::Int(v1))) = (Some(v), sy.get(k)) else {
                    panic!("{k}")
                };
                assert!(v1 >= v0, "{k}: {v1} < {v0}");
            }
        }
    }
}

/// CPU times: same CPUs and members, values that do not go backwards.
fn compare_cpustats(theirs: &Running, ours: &Running) {
    let req = r#"{"execute":"guest-get-cpustats"}"#;
    let a = list(ret(&theirs.ask(req)));
    let b = list(ret(&ours.ask(req)));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(keys(x), keys(y));
        assert_eq!(x.get("cpu"), y.get("cpu"));
        assert_eq!(x.get("type"), y.get("type"));
        for (k, v) in &x.entries {
            if let (Value::Int(v0), Some(Value::Int(v1))) = (v, y.get(k)) {
                assert!(v1 >= v0, "{k}: {v1} < {v0}");
            }
        }
    }
}

/// Routes with qemu-ga's sign extension applied to ours (the deliberate difference).
fn compare_routes(theirs: &Running, ours: &Running) {
    let req = r#"{"execute":"guest-network-get-route"}"#;
    let a = list(ret(&theirs.ask(req)));
    let mut b = list(ret(&ours.ask(req)));
    for r in &mut b {
        if r.get("version") != Some(&Value::Int(6)) {
            continue;
        }
        for (k, v) in &mut r.entries {
            if let Value::Int(n) = *v {
                let wrapped = i64::from(n as u32 as i32);
                *v = match k.as_str() {
                    "metric" | "refcnt" | "use" => Value::Int(wrapped),
                    "flags" if wrapped < 0 => Value::UInt(wrapped as u64),
                    _ => Value::Int(n),
                };
            }
        }
    }
    assert_eq!(a, b);
}

fn compare_load(theirs: &Running, ours: &Running) {
    let req = r#"{"execute":"guest-get-load"}"#;
    let (Value::Dict(a), Value::Dict(b)) = (ret(&theirs.ask(req)), ret(&ours.ask(req))) else {
        panic!()
    };
    assert_eq!(keys(&a), keys(&b));
}

fn references() -> Vec<String> {
    let mut refs = Vec::new();
    if Path::new("/usr/sbin/qemu-ga").exists() {
        refs.push("/usr/sbin/qemu-ga".to_string());
    }
    if let Some(p) = std::env::var_os("QGA_REFERENCE_10") {
        refs.push(p.to_string_lossy().into_owned());
    }
    refs
}

#[test]
fn test_system_commands_against_qemu_ga() {
    let refs = references();
    if refs.is_empty() {
        assert!(
            std::env::var_os("QGA_REQUIRE_REFERENCE").is_none(),
            "/usr/sbin/qemu-ga is required but missing"
        );
        println!("differential (system): no qemu-ga installed; compared nothing");
        return;
    }
    let ours = Running::start(common::AGENT);
    for reference in refs {
        let theirs = Running::start(&reference);
        let mut compared = compare_identical(&theirs, &ours);
        compare_interfaces(&theirs, &ours);
        compare_cpustats(&theirs, &ours);
        compared += 2;
        // Commands 7.2 does not have.
        let has = |name: &str| {
            !theirs
                .ask(&format!(r#"{{"execute":"{name}"}}"#))
                .contains("CommandNotFound")
        };
        if has("guest-network-get-route") {
            compare_routes(&theirs, &ours);
            compared += 1;
        }
        if has("guest-get-load") {
            compare_load(&theirs, &ours);
            compared += 1;
        }
        println!("differential (system): {compared} replies compared with {reference}");
    }
}
