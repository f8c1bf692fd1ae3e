//! `qga cp`: files in and out of the guest through guest-file-*, verified with SHA-256
//! (computed in the guest with `sha256sum` through guest-exec when the guest allows it).

use std::io::{IsTerminal, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use qga_client::Client;
use qga_proto::b64;
use qga_schema as s;
use sha2::{Digest, Sha256};

/// Bytes per request: large enough to amortise a round trip, small enough to stream.
const CHUNK: usize = 1 << 20;

type C = Client<UnixStream>;

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

fn upload(c: &mut C, local: &Path, remote: &str) -> Result<String, String> {
    let mut f = std::fs::File::open(local).map_err(|e| format!("{}: {e}", local.display()))?;
    let total = f.metadata().ok().map(|m| m.len());
    let h = open(c, remote, "w")?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    let start = Instant::now();
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", local.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        let args = s::FileWriteArgs {
            handle: h,
            buf_b64: b64::encode(&buf[..n]),
            count: None,
        };
        if let Err(e) = c.execute::<s::GuestFileWrite>(&args) {
            let _ = c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h });
            return Err(format!(
                "{e}; {done} bytes were copied before the failure: run the same command again to copy the file anew"
            ));
        }
        done += n as u64;
        progress(done, total, start);
    }
    c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h })
        .map_err(|e| e.to_string())?;
    finish(c, remote, &format!("{:x}", sha.finalize()), done, start)
}

fn download(c: &mut C, remote: &str, local: &Path) -> Result<String, String> {
    let h = open(c, remote, "r")?;
    let local = if local.is_dir() {
        local.join(
            Path::new(remote)
                .file_name()
                .ok_or("the guest path has no file name")?,
        )
    } else {
        local.to_path_buf()
    };
    let mut out = std::fs::File::create(&local).map_err(|e| format!("{}: {e}", local.display()))?;
    let mut sha = Sha256::new();
    let mut done = 0u64;
    let start = Instant::now();
    loop {
        let r = c
            .execute::<s::GuestFileRead>(&s::FileReadArgs {
                handle: h,
                count: Some(CHUNK as i64),
            })
            .map_err(|e| {
                format!(
                    "{e}; {done} bytes were copied before the failure: run the same command again"
                )
            })?;
        let data = b64::decode(&r.buf_b64).map_err(str::to_string)?;
        sha.update(&data);
        out.write_all(&data)
            .map_err(|e| format!("{}: {e}", local.display()))?;
        done += data.len() as u64;
        progress(done, None, start);
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
pub(crate) fn copy(c: &mut C, src: &str, dst: &str) -> Result<String, String> {
    match (src.strip_prefix(':'), dst.strip_prefix(':')) {
        (None, Some(remote)) => upload(c, Path::new(src), remote),
        (Some(remote), None) => download(c, remote, Path::new(dst)),
        _ => Err("give one guest path, written with a leading ':' (qga cp file :/tmp/file)".into()),
    }
}
