//! `qga cp`: files in and out of the guest through guest-file-*, verified with SHA-256
//! (computed in the guest with `sha256sum` through guest-exec when the guest allows it).
//! With -r, directory trees: guest directories are listed with `__org.qga_file-list` or
//! find/stat (crate::guest) and created with `mkdir -p` through guest-exec.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use qga_client::{Channel, Client};
use qga_schema as s;
use sha2::{Digest, Sha256};

use crate::guest::{Features, GuestFs};

/// Bytes per request: large enough to amortise a round trip, small enough to stream.
const CHUNK: usize = 1 << 20;
/// Requests in flight with this project's agent: it finds the next one waiting when it
/// finishes one.
const DEPTH: usize = 4;

/// Requests to keep in flight with an agent: [`DEPTH`] for this project's agent; one for any
/// other, since qemu-ga over virtio-serial can leave the last of several pipelined requests
/// unanswered until more input arrives (docs/compat.md).
fn depth(features: Option<&Features>) -> usize {
    if features.is_some_and(Features::is_ours) {
        DEPTH
    } else {
        1
    }
}

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
    let r = crate::guest::capture(
        c,
        "sha256sum",
        &[path.to_string()],
        std::time::Duration::from_secs(30),
    )
    .ok()?;
    // GNU sha256sum starts the line with a backslash when the name has a newline or one.
    String::from_utf8(r.out)
        .ok()?
        .split_whitespace()
        .next()
        .map(|h| h.trim_start_matches('\\').to_string())
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
    close_quietly(c, h);
    let pos = r.map_err(|e| format!("{remote}: {e}"))?.position;
    u64::try_from(pos).map_err(|_| format!("{remote}: negative size {pos}"))
}

/// Closes a guest handle whose use already failed or whose close cannot change the outcome:
/// what is reported is that earlier result, not the close's.
fn close_quietly(c: &mut C, h: i64) {
    let _ = c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h });
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

fn upload(
    c: &mut C,
    local: &Path,
    remote: &str,
    resume: bool,
    depth: usize,
) -> Result<Copied, String> {
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
    let mut failure = None;
    let acked = match c.file_writer(h, depth) {
        Err(e) => {
            failure = Some(explain(e));
            0
        }
        Ok(mut w) => {
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        failure = Some(lerr(e));
                        break;
                    }
                };
                sha.update(&buf[..n]);
                if let Err(e) = w.write(&buf[..n]) {
                    failure = Some(explain(e));
                    break;
                }
                // What the agent confirmed, not what is still in flight.
                progress(
                    done + w.acknowledged() - first,
                    total.map(|t| t - first),
                    start,
                );
            }
            // The replies in flight are read even after a local failure, so the count is
            // what the guest's file has.
            if let Err(e) = w.finish() {
                failure.get_or_insert(explain(e));
            }
            w.acknowledged()
        }
    };
    done += acked;
    if let Some(text) = failure {
        close_quietly(c, h);
        return Err(interrupted(&text, done, total, &dst));
    }
    c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h })
        .map_err(|e| interrupted(&explain(e), done, total, &dst))?;
    finish(c, remote, &format!("{:x}", sha.finalize()), done, start)
}

fn download(
    c: &mut C,
    remote: &str,
    local: &Path,
    resume: bool,
    depth: usize,
) -> Result<Copied, String> {
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
    let mut data = Vec::new();
    let mut failure = None;
    match c.file_reader(h, CHUNK as i64, depth) {
        Err(e) => failure = Some(explain(e)),
        Ok(mut r) => loop {
            match r.next_chunk_into(&mut data) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    failure = Some(explain(e));
                    break;
                }
            }
            sha.update(&data);
            if let Err(e) = out.write_all(&data) {
                failure = Some(lerr(e));
                break;
            }
            done += data.len() as u64;
            progress(done - first, total.map(|t| t.saturating_sub(first)), start);
        },
    }
    if let Some(text) = failure {
        close_quietly(c, h);
        return Err(interrupted(&text, done, total, &dst));
    }
    c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: h })
        .map_err(|e| e.to_string())?;
    finish(c, remote, &format!("{:x}", sha.finalize()), done, start)
}

/// One file copied.
#[derive(Debug)]
struct Copied {
    /// What to tell.
    text: String,
    /// Bytes copied (by this run).
    bytes: u64,
    /// Whether the guest's sha256sum agreed.
    verified: bool,
}

fn finish(
    c: &mut C,
    remote: &str,
    local_sha: &str,
    bytes: u64,
    start: Instant,
) -> Result<Copied, String> {
    let secs = start.elapsed().as_secs_f64();
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    let rate = bytes as f64 / 1e6 / secs.max(1e-6);
    let copied = |text: String, verified: bool| Copied {
        text,
        bytes,
        verified,
    };
    match guest_sha256(c, remote) {
        Some(g) if g == local_sha => Ok(copied(
            format!("{bytes} bytes in {secs:.2} s ({rate:.0} MB/s), sha256 {g} verified"),
            true,
        )),
        Some(g) => Err(format!("sha256 differs: local {local_sha}, guest {g}")),
        None => Ok(copied(
            format!(
                "{bytes} bytes in {secs:.2} s ({rate:.0} MB/s), sha256 {local_sha} (not verified: the guest cannot run sha256sum)"
            ),
            false,
        )),
    }
}

/// `qga cp SRC DST`: exactly one side starts with `:` (the guest's).
pub(crate) fn copy(c: &mut C, src: &str, dst: &str, resume: bool) -> Result<String, String> {
    let (upward, remote, local) = match (src.strip_prefix(':'), dst.strip_prefix(':')) {
        (None, Some(remote)) => (true, remote, src),
        (Some(remote), None) => (false, remote, dst),
        _ => return Err(ONE_GUEST_PATH.into()),
    };
    let d = depth(Features::probe(c).ok().as_ref());
    let copied = if upward {
        upload(c, Path::new(local), remote, resume, d)
    } else {
        download(c, remote, Path::new(local), resume, d)
    };
    copied.map(|d| d.text)
}

const ONE_GUEST_PATH: &str =
    "give one guest path, written with a leading ':' (qga cp file :/tmp/file)";

/// A guest path under directory `dir`.
fn guest_join(dir: &str, name: &str) -> String {
    format!("{}/{name}", dir.trim_end_matches('/'))
}

/// What a tree copy did, told at the end.
#[derive(Debug, Default)]
struct TreeReport {
    lines: Vec<String>,
    files: usize,
    dirs: usize,
    bytes: u64,
    verified: usize,
    skipped: usize,
}

impl TreeReport {
    fn file(&mut self, shown: &str, d: &Copied) {
        self.lines
            .push(format!("{}: {}", crate::output::shown_name(shown), d.text));
        self.files += 1;
        self.bytes += d.bytes;
        self.verified += usize::from(d.verified);
    }

    fn skip(&mut self, shown: &str, kind: &str) {
        self.lines.push(format!(
            "{}: skipped ({kind})",
            crate::output::shown_name(shown)
        ));
        self.skipped += 1;
    }

    fn finish(mut self, dst: &str) -> String {
        let skipped = match self.skipped {
            0 => String::new(),
            n => format!(", {n} skipped (links and special files are not copied)"),
        };
        self.lines.push(format!(
            "{} files ({} bytes) and {} directories copied to {dst}, {} verified by sha256{skipped}",
            self.files, self.bytes, self.dirs, self.verified
        ));
        self.lines.join("\n")
    }
}

/// The kind of a local entry, for the ones a tree copy skips.
fn local_kind(t: std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

/// `qga cp -r SRC DST`: a directory tree (a plain file is copied as without -r). As with
/// cp(1), an existing destination directory receives the tree under the source's name.
pub(crate) fn copy_tree(c: &mut C, src: &str, dst: &str) -> Result<String, String> {
    match (src.strip_prefix(':'), dst.strip_prefix(':')) {
        (None, Some(remote)) => {
            if !Path::new(src).is_dir() {
                return copy(c, src, dst, false);
            }
            upload_tree(c, Path::new(src), remote).map_err(|e| e.0)
        }
        (Some(remote), None) => download_tree(c, remote, Path::new(dst)).map_err(|e| e.0),
        _ => Err(ONE_GUEST_PATH.into()),
    }
}

fn upload_tree(c: &mut C, local: &Path, remote: &str) -> Result<String, crate::Failure> {
    let mut fs = GuestFs::new(c)?;
    let depth = depth(Some(&fs.features));
    let into_existing = fs.stat(remote, true).is_ok_and(|st| st.kind == "directory");
    let name = local
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "dir".into());
    let root = if into_existing {
        guest_join(remote, &name)
    } else {
        remote.to_string()
    };
    // The local tree, directories first (parents before children), names sorted.
    let mut dirs = vec![(local.to_path_buf(), root.clone())];
    let mut files = Vec::new();
    let mut report = TreeReport::default();
    let mut i = 0;
    while let Some((dir, gdir)) = dirs.get(i).cloned() {
        i += 1;
        let lerr = |e: std::io::Error| crate::Failure(format!("{}: {e}", dir.display()));
        let mut entries = std::fs::read_dir(&dir)
            .map_err(lerr)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(lerr)?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let path = e.path();
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                report.skip(&path.display().to_string(), "name is not UTF-8");
                continue;
            };
            let gpath = guest_join(&gdir, name);
            let t = e.file_type().map_err(lerr)?;
            if t.is_dir() {
                dirs.push((path, gpath));
            } else if t.is_file() {
                files.push((path, gpath));
            } else {
                report.skip(&path.display().to_string(), local_kind(t));
            }
        }
    }
    let gdirs: Vec<String> = dirs.iter().map(|(_, g)| g.clone()).collect();
    fs.mkdir_p(&gdirs)?;
    report.dirs = gdirs.len();
    for (path, gpath) in files {
        let d = upload(fs.c, &path, &gpath, false, depth)?;
        report.file(&format!("{} -> :{gpath}", path.display()), &d);
    }
    Ok(report.finish(&format!(":{root}")))
}

fn download_tree(c: &mut C, remote: &str, local: &Path) -> Result<String, crate::Failure> {
    let mut fs = GuestFs::new(c)?;
    let depth = depth(Some(&fs.features));
    let top = fs.stat(remote, true)?;
    if top.kind != "directory" {
        return download(fs.c, remote, local, false, depth)
            .map(|d| d.text)
            .map_err(crate::Failure);
    }
    let root = if local.is_dir() {
        local.join(crate::guest::base_name(remote))
    } else {
        local.to_path_buf()
    };
    let mut report = TreeReport::default();
    let mut dirs = vec![(remote.to_string(), root.clone())];
    while let Some((gdir, dir)) = dirs.pop() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::Failure(format!("{}: {e}", dir.display())))?;
        report.dirs += 1;
        let mut subdirs = Vec::new();
        for e in fs.list(&gdir)? {
            let gpath = guest_join(&gdir, &e.name);
            let path = dir.join(&e.name);
            match e.kind.as_str() {
                "directory" => subdirs.push((gpath, path)),
                "file" => {
                    let d = download(fs.c, &gpath, &path, false, depth)?;
                    report.file(&format!(":{gpath} -> {}", path.display()), &d);
                }
                other => report.skip(&format!(":{gpath}"), other),
            }
        }
        // Depth first, in name order.
        dirs.extend(subdirs.into_iter().rev());
    }
    Ok(report.finish(&root.display().to_string()))
}
