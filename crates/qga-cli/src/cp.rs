//! `qga cp`: files in and out of the guest through guest-file-*, verified with SHA-256
//! (computed in the guest with `sha256sum` through guest-exec when the guest allows it).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use qga_client::{Channel, Client};
use qga_proto::b64;
use qga_schema as s;
use sha2::{Digest, Sha256};

/// Bytes per request: large enough to amortise a round trip, small enough to stream.
const CHUNK: usize = 1 << 20;

type C = Client<Channel>;

fn progress(done: u64, total: Option<u64>, start: Instant) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mb = done as f64 / 1e6;
    let rate = mb / start.elapsed().as_secs_f64().max(1e-6);
    match total {
        Some(t) if t > 0 => eprint!(
            "\r{:5.1}%  {mb:.1} MB  {rate:.0} MB/s ",
            done as f64 * 100.0 / t as f64
        ),
        _ => eprint!("\r{mb:.1} MB  {rate:.0} MB/s "),
    }
}

/// The guest's SHA-256 of `path`, if the guest can compute it.
fn guest_sha256(c: &mut C, path: &str) -> Option<String> {
    let pid = c
        .execute::<s::GuestExec>(&s::ExecArgs {
            path: "sha256sum".into(),
            arg: Some(vec![path.to_string()]),
            env: None,
            input_data: None,
            capture_output: Some(s::GuestExecCaptureOutput::Flag(true)),
        })
        .ok()?
        .pid;
    for _ in 0..600 {
        let st = c
            .execute::<s::GuestExecStatus>(&s::ExecStatusArgs { pid })
            .ok()?;
        if st.exited {
            let out = b64::decode(st.out_data.as_deref()?).ok()?;
            return String::from_utf8(out)
                .ok()?
                .split_whitespace()
                .next()
                .map(str::to_string);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

fn open(c: &mut C, path: &str, mode: &str) -> Result<i64, String> {
    c.execute::<s::GuestFileOpen>(&s::FileOpenArgs {
        path: path.into(),
        mode: Some(mode.into()),
    })
    .map_err(|e| format!("{path}: {e}"))
}

/// Feeds the first `len` bytes of `f` to `sha` (the part an earlier run already copied).
fn hash_prefix(f: &mut std::fs::File, len: u64, sha: &mut Sha256) -> std::io::Result<()> {
    let copied = std::io::copy(&mut f.take(len), sha)?;
    if copied != len {
        return Err(std::io::Error::other(format!(
            "only {copied} of {len} bytes could be read"
        )));
    }
    Ok(())
}

/// The size of a guest file, found by seeking to its end.
fn guest_size(c: &mut C, remote: &str) -> Result<u64, String> {
    let h = open(c, remote, "r")?;
    let r = c.execute::<s::GuestFileSeek>(&s::FileSeekArgs {
        handle: h,
        offset: 0,
        whence: s::GuestFileWhence::Name(s::QgaSeek::End),
    });
    let _ = c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h });
    let pos = r.map_err(|e| format!("{remote}: {e}"))?.position;
    u64::try_from(pos).map_err(|_| format!("{remote}: negative size {pos}"))
}

/// An agent or channel error with the CLI's advice (policy, timeout, ...).
fn explain(e: qga_client::ClientError) -> String {
    crate::Failure::from(e).0
}

/// The message of a copy that stopped part way, saying how to continue.
fn interrupted(e: &dyn std::fmt::Display, done: u64, total: Option<u64>, dst: &str) -> String {
    let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
    format!(
        "{e}\n{done}{of} bytes were copied to {dst} before the failure; to continue from there, \
         run the same command with --resume (it appends from the size {dst} has now)"
    )
}

fn upload(c: &mut C, local: &Path, remote: &str, resume: bool) -> Result<String, String> {
    let lerr = |e: std::io::Error| format!("{}: {e}", local.display());
    let mut f = std::fs::File::open(local).map_err(lerr)?;
    let total = f.metadata().ok().map(|m| m.len());
    let mut sha = Sha256::new();
    let mut done = 0u64;
    if resume {
        done = guest_size(c, remote)?;
        if total.is_some_and(|t| done > t) {
            return Err(format!(
                "cannot resume: the guest's {remote} ({done} bytes) is larger than {} ({} bytes)",
                local.display(),
                total.unwrap_or_default()
            ));
        }
        hash_prefix(&mut f, done, &mut sha).map_err(lerr)?;
    }
    let h = open(c, remote, if resume { "a" } else { "w" })?;
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let first = done;
    let dst = format!(":{remote}");
    loop {
        let n = f.read(&mut buf).map_err(lerr)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        if let Err(e) = c.file_write(h, &buf[..n]) {
            let _ = c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h });
            return Err(interrupted(&explain(e), done, total, &dst));
        }
        done += n as u64;
        progress(done - first, total.map(|t| t - first), start);
    }
    c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h })
        .map_err(|e| interrupted(&explain(e), done, total, &dst))?;
    finish(c, remote, &format!("{:x}", sha.finalize()), done, start)
}

fn download(c: &mut C, remote: &str, local: &Path, resume: bool) -> Result<String, String> {
    let local = if local.is_dir() {
        local.join(
            Path::new(remote)
                .file_name()
                .ok_or("the guest path has no file name")?,
        )
    } else {
        local.to_path_buf()
    };
    let lerr = |e: std::io::Error| format!("{}: {e}", local.display());
    let mut sha = Sha256::new();
    let mut done = 0u64;
    let mut out = if resume {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&local)
            .map_err(lerr)?;
        done = f.metadata().map_err(lerr)?.len();
        hash_prefix(&mut f, done, &mut sha).map_err(lerr)?;
        f
    } else {
        std::fs::File::create(&local).map_err(lerr)?
    };
    let total = guest_size(c, remote).ok();
    let h = open(c, remote, "r")?;
    let dst = local.display().to_string();
    if done > 0 {
        c.execute::<s::GuestFileSeek>(&s::FileSeekArgs {
            handle: h,
            offset: i64::try_from(done).map_err(|e| e.to_string())?,
            whence: s::GuestFileWhence::Name(s::QgaSeek::Set),
        })
        .map_err(|e| format!("{remote}: {e}"))?;
    }
    let first = done;
    let start = Instant::now();
    loop {
        let r = c
            .file_read(h, CHUNK as i64)
            .map_err(|e| interrupted(&explain(e), done, total, &dst))?;
        let data = r.data;
        sha.update(&data);
        out.write_all(&data)
            .map_err(|e| interrupted(&lerr(e), done, total, &dst))?;
        done += data.len() as u64;
        progress(done - first, total.map(|t| t.saturating_sub(first)), start);
        if r.eof || data.is_empty() {
            break;
        }
    }
    c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h })
        .map_err(|e| e.to_string())?;
    finish(c, remote, &format!("{:x}", sha.finalize()), done, start)
}

fn finish(
    c: &mut C,
    remote: &str,
    local_sha: &str,
    bytes: u64,
    start: Instant,
) -> Result<String, String> {
    let secs = start.elapsed().as_secs_f64();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let rate = bytes as f64 / 1e6 / secs.max(1e-6);
    match guest_sha256(c, remote) {
        Some(g) if g == local_sha => Ok(format!(
            "{bytes} bytes in {secs:.2} s ({rate:.0} MB/s), sha256 {g} verified"
        )),
        Some(g) => Err(format!("sha256 differs: local {local_sha}, guest {g}")),
        None => Ok(format!(
            "{bytes} bytes in {secs:.2} s ({rate:.0} MB/s), sha256 {local_sha} (not verified: the guest cannot run sha256sum)"
        )),
    }
}

/// `qga cp SRC DST`: exactly one side starts with `:` (the guest's).
pub(crate) fn copy(c: &mut C, src: &str, dst: &str, resume: bool) -> Result<String, String> {
    match (src.strip_prefix(':'), dst.strip_prefix(':')) {
        (None, Some(remote)) => upload(c, Path::new(src), remote, resume),
        (Some(remote), None) => download(c, remote, Path::new(dst), resume),
        _ => Err("give one guest path, written with a leading ':' (qga cp file :/tmp/file)".into()),
    }
}
