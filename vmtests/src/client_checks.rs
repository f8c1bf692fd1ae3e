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

use crate::checks::{host_sha256, ok, sh};
use crate::suite::Ctx;
use crate::vm::Flavour;

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
/// command that prints, sleeps and prints (live with our agent: the first line arrives
/// before the end). Then the suite's client reconnects, so the rows after this one run.
pub fn check_host_client(ctx: &mut Ctx<'_>) -> Result<String, String> {
    let bin = std::env::var_os("QGA_VM_CLIENT")
        .map(PathBuf::from)
        .ok_or("QGA_VM_CLIENT is not set (scripts/vmtest builds the static qga and sets it)")?;
    let sock = ctx.vm.socket(ctx.transport);
    // The port's host socket serves one connection: the suite's client steps aside.
    ctx.drop_client();
    let steps = client_steps(ctx, &bin, &sock);
    // The suite's client comes back (connect + resync) and is answered.
    let t = Instant::now();
    let back = ok(ctx, &json!({"execute": "guest-ping"}));
    match (steps, back) {
        (Ok(d), Ok(_)) => Ok(format!(
            "{d}; the suite's client back in {:.1} s",
            t.elapsed().as_secs_f64()
        )),
        (Ok(d), Err(e)) => Err(format!("{d}; then the suite's client got no answer: {e}")),
        (Err(e), _) => Err(e),
    }
}

fn client_steps(ctx: &mut Ctx<'_>, bin: &Path, sock: &Path) -> Result<String, String> {
    let mut steps = Vec::new();

    let t = Instant::now();
    let listed: Json = serde_json::from_str(&qga(bin, sock, &["--json", "ls", "/etc"])?)
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
        "ls /etc {} entries = the guest's ls -A {:.1} s",
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
    sh(ctx, "rm -rf /tmp/qga-cp-r")?;
    let tree_arg = tree.to_str().ok_or("temp path not UTF-8")?;
    qga(bin, sock, &["cp", "-r", tree_arg, ":/tmp/qga-cp-r"])?;
    // The guest's own view: the same paths, and each file's sha256 the host's.
    let mut want_paths: Vec<String> = [".", "./sub"]
        .into_iter()
        .map(str::to_string)
        .chain(files.iter().map(|(n, _)| format!("./{n}")))
        .collect();
    want_paths.sort();
    let mut want_sums = String::new();
    for (name, data) in &files {
        want_sums.push_str(&format!("{}  {name}\n", host_sha256(data)?));
    }
    let guest = sh(
        ctx,
        "cd /tmp/qga-cp-r && find . | sort && sha256sum a.txt 'with space.txt' sub/b.bin",
    )?;
    let guest_lines: Vec<&str> = guest.lines().collect();
    let (guest_paths, guest_sums) = guest_lines.split_at(guest_lines.len().min(want_paths.len()));
    if guest_paths != want_paths.as_slice() || guest_sums.join("\n") != want_sums.trim_end() {
        return Err(format!(
            "the tree in the guest after qga cp -r: {guest:?}, want {want_paths:?} and {want_sums:?}"
        ));
    }
    let back = dir.path().join("back");
    let back_arg = back.to_str().ok_or("temp path not UTF-8")?;
    qga(bin, sock, &["cp", "-r", ":/tmp/qga-cp-r", back_arg])?;
    let mut back_files = Vec::new();
    walk(&back, "", &mut back_files)?;
    back_files.sort();
    let mut want_files: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    want_files.sort();
    if back_files != want_files {
        return Err(format!(
            "files copied back: {back_files:?}, want {want_files:?}"
        ));
    }
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
    steps.push(format!(
        "cp -r of 3 files ({} bytes, a nested dir, a blank in a name) to the guest (paths and sha256 there = host's) and back (byte-equal) {:.1} s",
        files.iter().map(|(_, d)| d.len()).sum::<usize>(),
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("-s")
        .arg(sock)
        .args([
            "exec",
            "--timeout",
            "60",
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
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let end = t.elapsed().as_secs_f64();
    let texts: Vec<&str> = lines.iter().map(|(l, _)| l.as_str()).collect();
    if texts != ["one", "two"] || out.status.code() != Some(7) {
        return Err(format!(
            "qga exec: {texts:?}, {}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // Live with our agent (__org.qga_exec): "one" shows up while the command sleeps.
    // qemu-ga has no way to read output before the end: both lines come together there.
    let first_early = end - lines[0].1 >= 1.5;
    if ctx.vm.options.flavour == Flavour::Ours && !first_early {
        return Err(format!(
            "qga exec with our agent: \"one\" only after {:.1} s of {end:.1} s (not live)",
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

/// The files under `dir` (recursively), as paths relative to it joined with `/`.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| e.to_string())?;
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type().map_err(|e| e.to_string())?.is_dir() {
            walk(&e.path(), &format!("{name}/"), out)?;
        } else {
            out.push(name);
        }
    }
    Ok(())
}
