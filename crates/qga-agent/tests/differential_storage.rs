//! Differential test of the filesystem and disk commands: the same read-only requests (and
//! requests that fail before acting) to Debian's qemu-ga (7.2; also qemu-ga 10.x when
//! `QGA_REFERENCE_10` names one) and to our agent on this machine. Nothing is frozen or
//! trimmed. Replies must be byte for byte the same, except for values that move (used
//! bytes, I/O counters) and the documented `serial` from sysfs (docs/compat.md).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{Agent, exchange};
use serde_json::Value as Json;

/// Starts `binary` on a unix socket with an empty configuration.
fn start(binary: &str) -> Agent {
    Agent::start_program(binary, &[], &[], "")
}

/// The reply to `request` on a fresh connection, without its newline.
fn ask(agent: &Agent, request: &str) -> String {
    let mut line = exchange(agent, request.as_bytes(), 1);
    line.truncate(line.trim_end().len());
    line
}

/// Requests whose replies must be byte for byte the same.
const IDENTICAL: &[&str] = &[
    r#"{"execute":"guest-fsfreeze-status"}"#,
    r#"{"execute":"guest-fsfreeze-status","arguments":{"x":1}}"#,
    r#"{"execute":"guest-fsfreeze-freeze","arguments":{"x":1}}"#,
    r#"{"execute":"guest-fsfreeze-thaw","arguments":{"x":1}}"#,
    r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":"x"}}"#,
    r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/",1]}}"#,
    r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":null}}"#,
    r#"{"execute":"guest-fstrim","arguments":{"minimum":"x"}}"#,
    r#"{"execute":"guest-fstrim","arguments":{"minimum":1.5}}"#,
    r#"{"execute":"guest-get-fsinfo","arguments":{"x":1}}"#,
    r#"{"execute":"guest-get-disks","arguments":{"x":1}}"#,
    r#"{"execute":"guest-get-diskstats","arguments":{"x":1}}"#,
];

/// Removes `"serial": "…", ` (our sysfs serial) from `ours` where `theirs` has none.
fn drop_serials(ours: &str, theirs: &str) -> String {
    if theirs.contains("\"serial\": ") {
        return ours.to_string();
    }
    let mut out = String::new();
    let mut rest = ours;
    while let Some(i) = rest.find("\"serial\": \"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 11..];
        let end = after.find('"').unwrap();
        rest = after[end + 1..]
            .strip_prefix(", ")
            .unwrap_or(&after[end + 1..]);
    }
    out.push_str(rest);
    out
}

/// Replaces the number after each `"key": ` by `N`.
fn blank(text: &str, key: &str) -> String {
    let pat = format!("\"{key}\": ");
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(&pat) {
        out.push_str(&rest[..i + pat.len()]);
        let after = &rest[i + pat.len()..];
        let end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        out.push('N');
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Removes `"total-bytes-privileged": N, ` (7.2 does not have it).
fn drop_privileged(text: &str) -> String {
    let b = blank(text, "total-bytes-privileged");
    b.replace("\"total-bytes-privileged\": N, ", "")
        .replace(", \"total-bytes-privileged\": N", "")
}

fn compare_fsinfo(theirs: &Agent, ours: &Agent) -> usize {
    let req = r#"{"execute":"guest-get-fsinfo"}"#;
    let a = ask(theirs, req);
    let mut b = drop_serials(&ask(ours, req), &a);
    if !a.contains("total-bytes-privileged") {
        b = drop_privileged(&b);
    }
    let norm = |t: &str| blank(&blank(t, "used-bytes"), "total-bytes");
    assert_eq!(norm(&a), norm(&b));
    serde_json::from_str::<Json>(&a).unwrap()["return"]
        .as_array()
        .unwrap()
        .len()
}

fn compare_disks(theirs: &Agent, ours: &Agent) -> Vec<String> {
    let req = r#"{"execute":"guest-get-disks"}"#;
    let a = ask(theirs, req);
    let b = drop_serials(&ask(ours, req), &a);
    assert_eq!(a, b);
    let v: Json = serde_json::from_str(&a).unwrap();
    v["return"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| Some(d["address"]["bus-type"].as_str()?.to_string()))
        .collect()
}

/// Same devices, members and order; counters that do not go backwards.
fn compare_diskstats(theirs: &Agent, ours: &Agent) {
    let req = r#"{"execute":"guest-get-diskstats"}"#;
    let a: Json = serde_json::from_str(&ask(theirs, req)).unwrap();
    let b: Json = serde_json::from_str(&ask(ours, req)).unwrap();
    let (a, b) = (
        a["return"].as_array().unwrap(),
        b["return"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        for k in ["name", "major", "minor"] {
            assert_eq!(x[k], y[k]);
        }
        let (sx, sy) = (
            x["stats"].as_object().unwrap(),
            y["stats"].as_object().unwrap(),
        );
        let mut kx: Vec<&String> = sx.keys().collect();
        let mut ky: Vec<&String> = sy.keys().collect();
        kx.sort();
        ky.sort();
        assert_eq!(kx, ky, "{}", x["name"]);
        for (k, v) in sx {
            let (v0, v1) = (v.as_u64().unwrap(), sy[k].as_u64().unwrap());
            // ios-pgr is a gauge; the others only grow.
            assert!(k == "ios-pgr" || v1 >= v0, "{k}: {v1} < {v0}");
        }
    }
}

/// Debian's qemu-ga (7.2) if installed, and `$QGA_REFERENCE_10` (a qemu-ga 10.x) if set.
fn references() -> Vec<String> {
    let debian = Path::new("/usr/sbin/qemu-ga")
        .exists()
        .then(|| "/usr/sbin/qemu-ga".to_string());
    let ten = std::env::var_os("QGA_REFERENCE_10").map(|p| p.to_string_lossy().into_owned());
    debian.into_iter().chain(ten).collect()
}

#[test]
fn test_storage_commands_against_qemu_ga() {
    let refs = references();
    let required = std::env::var_os("QGA_REQUIRE_REFERENCE").is_some();
    assert!(
        !(refs.is_empty() && required),
        "/usr/sbin/qemu-ga is required but missing"
    );
    if refs.is_empty() {
        println!("differential (storage): no qemu-ga installed; compared nothing");
    }
    let ours = start(common::AGENT);
    for reference in refs {
        let theirs = start(&reference);
        for req in IDENTICAL {
            assert_eq!(ask(&theirs, req), ask(&ours, req), "{req}");
        }
        let filesystems = compare_fsinfo(&theirs, &ours);
        let buses = compare_disks(&theirs, &ours);
        compare_diskstats(&theirs, &ours);
        println!(
            "differential (storage): {} replies compared with {reference}; {filesystems} \
             filesystems, disks on buses {buses:?}",
            IDENTICAL.len() + 3
        );
    }
}

/// A wrapper that runs `binary` in a private mount namespace with two bind mounts of a
/// directory of the root filesystem (and a tmpfs), when this process may do that (root with
/// `unshare`); nothing outside the namespace changes.
fn namespaced(dir: &Path, binary: &str) -> Option<String> {
    if !Path::new("/usr/bin/unshare").exists() {
        return None;
    }
    let src = dir.join("src");
    let (a, b, t) = (dir.join("bind a"), dir.join("bind-b"), dir.join("tmp"));
    for d in [&src, &a, &b, &t] {
        std::fs::create_dir_all(d).unwrap();
    }
    let script = dir.join(format!("wrap-{}", binary.len()));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec /usr/bin/unshare -m /bin/sh -c 'mount --make-rprivate / && \
             mount --bind \"$1\" \"$2\" && mount --bind \"$1\" \"$3\" && \
             mount -t tmpfs none \"$4\" && shift 4 && exec \"$@\"' sh \
             '{}' '{}' '{}' '{}' '{binary}' \"$@\"\n",
            src.display(),
            a.display(),
            b.display(),
            t.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let probe = std::process::Command::new(&script)
        .arg("-V")
        .output()
        .ok()?;
    probe
        .status
        .success()
        .then(|| script.to_string_lossy().into_owned())
}

/// Bind mounts (same major:minor) are listed once, as qemu-ga 10.x does (7.2 lists each).
#[test]
fn test_bind_mounts_against_qemu_ga_10() {
    let Some(reference) = std::env::var_os("QGA_REFERENCE_10") else {
        println!("differential (storage, bind mounts): QGA_REFERENCE_10 not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (Some(theirs), Some(ours)) = (
        namespaced(dir.path(), &reference.to_string_lossy()),
        namespaced(dir.path(), common::AGENT),
    ) else {
        println!("differential (storage, bind mounts): no mount namespace here");
        return;
    };
    let (theirs, ours) = (start(&theirs), start(&ours));
    let n = compare_fsinfo(&theirs, &ours);
    println!("differential (storage, bind mounts): {n} filesystems, same as qemu-ga 10");
}

#[test]
fn test_helpers() {
    assert_eq!(
        drop_serials(r#"{"serial": "x y", "bus": 0}"#, "{}"),
        r#"{"bus": 0}"#
    );
    assert_eq!(
        blank(r#"{"used-bytes": 12, "total-bytes": 3}"#, "used-bytes"),
        r#"{"used-bytes": N, "total-bytes": 3}"#
    );
    assert_eq!(
        drop_privileged(r#"{"a": 1, "total-bytes-privileged": 5, "b": 2}"#),
        r#"{"a": 1, "b": 2}"#
    );
}
