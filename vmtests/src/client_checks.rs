//! The host's `qga` client against the agent in the guest, over the virtio-serial port's
//! host socket: what a person types on the host, proven on a real guest. With our agent the
//! client uses the `__org.qga_` extensions (listing, live exec); with Debian's qemu-ga it
//! falls back to standard commands (guest-exec of the guest's `find`, `stat`, `mkdir`), so
//! the row runs for both agents.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value as Json, json};

use crate::checks::{ok, sh};
use crate::suite::Ctx;

/// Runs `qga -s SOCK ARGS...`; its stdout, or what went wrong.
fn qga(bin: &Path, sock: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("-s")
        .arg(sock)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "qga {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `qga ls /etc`, `qga cp -r` of a small tree to the guest and back, and `qga exec` of a
/// command that prints, sleeps and prints (live: the first line arrives before the end).
pub fn check_host_client(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let bin = std::env::var_os("QGA_VM_CLIENT")
        .map(PathBuf::from)
        .ok_or("QGA_VM_CLIENT is not set (scripts/vmtest builds the static qga and sets it)")?;
    let sock = ctx.vm.socket(ctx.transport);
    // The port's host socket serves one connection: the suite's client steps aside, and
    // reconnects (with a resync) on its next use.
    ctx.drop_client();
    let mut steps = Vec::new();

    let t = Instant::now();
    let listed: Json = serde_json::from_str(&qga(&bin, &sock, &["--json", "ls", "/etc"])?)
        .map_err(|e| format!("qga --json ls /etc: {e}"))?;
    let mut got: Vec<String> = listed
        .as_array()
        .ok_or("qga --json ls: not a list")?
        .iter()
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .collect();
    got.sort();
    let shell = sh(ctx, "ls -A /etc | sort")?;
    let want: Vec<String> = shell.lines().map(str::to_string).collect();
    if got != want {
        return Err(format!("qga ls /etc: {got:?}, the guest's ls: {want:?}"));
    }
    steps.push(format!(
        "ls /etc {} entries {:.1} s",
        got.len(),
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tree = dir.path().join("tree");
    let files: [(&str, Vec<u8>); 3] = [
        ("a.txt", b"hello from the host\n".to_vec()),
        ("with space.txt", b"x\n".to_vec()),
        (
            "sub/b.bin",
            (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect(),
        ),
    ];
    for (name, data) in &files {
        let p = tree.join(name);
        std::fs::create_dir_all(p.parent().unwrap_or(&tree)).map_err(|e| e.to_string())?;
        std::fs::write(&p, data).map_err(|e| e.to_string())?;
    }
    let _ = sh(ctx, "rm -rf /tmp/qga-cp-r");
    let tree_arg = tree.to_str().ok_or("temp path not UTF-8")?;
    qga(&bin, &sock, &["cp", "-r", tree_arg, ":/tmp/qga-cp-r"])?;
    let back = dir.path().join("back");
    let back_arg = back.to_str().ok_or("temp path not UTF-8")?;
    qga(&bin, &sock, &["cp", "-r", ":/tmp/qga-cp-r", back_arg])?;
    for (name, data) in &files {
        let got = std::fs::read(back.join(name)).map_err(|e| format!("back/{name}: {e}"))?;
        if &got != data {
            return Err(format!(
                "{name}: {} bytes back, {} sent",
                got.len(),
                data.len()
            ));
        }
    }
    let sum = sh(ctx, "sha256sum /tmp/qga-cp-r/sub/b.bin | cut -d' ' -f1")?;
    steps.push(format!(
        "cp -r 3 files both ways {:.1} s (guest sha256 of b.bin {}…)",
        t.elapsed().as_secs_f64(),
        sum.trim().get(..12).unwrap_or("?")
    ));

    let t = Instant::now();
    let mut child = Command::new(&bin)
        .arg("-s")
        .arg(&sock)
        .args([
            "exec",
            "--",
            "sh",
            "-c",
            "echo one; sleep 3; echo two; exit 7",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let lines: Vec<(String, f64)> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .map(|l| (l, t.elapsed().as_secs_f64()))
        .collect();
    let status = child.wait().map_err(|e| e.to_string())?;
    let end = t.elapsed().as_secs_f64();
    let texts: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    if texts != ["one", "two"] || status.code() != Some(7) {
        return Err(format!("qga exec: {texts:?}, {status}"));
    }
    // Live with our agent: "one" shows up while the command sleeps. qemu-ga has no way to
    // read output before the end, so both lines come together there.
    let first_early = end - lines[0].1 >= 1.5;
    let info = ok(ctx, &json!({"execute": "guest-info"}))?;
    let live = info["supported_commands"].as_array().is_some_and(|cmds| {
        cmds.iter()
            .any(|c| c["name"] == "__org.qga_exec" && c["enabled"] == true)
    });
    if live && !first_early {
        return Err(format!(
            "qga exec with __org.qga_exec: \"one\" only after {:.1} s of {end:.1} s",
            lines[0].1
        ));
    }
    steps.push(format!(
        "exec exit 7, \"one\" after {:.1} s of {:.1} s ({})",
        lines[0].1,
        end,
        if first_early { "live" } else { "at the end" }
    ));
    Ok(steps.join("; "))
}
