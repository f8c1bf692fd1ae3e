//! What the guest's agent offers, and guest-side helpers that work with any agent: file
//! descriptions and listings through the `__org.qga_file-*` extensions when guest-info
//! lists them enabled, else through standard tools (`find`, `stat`, `readlink`) run with
//! guest-exec; running a program and waiting for its output; `mkdir -p`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use qga_proto::b64;
use qga_schema as s;
use qga_schema::ext::FileStat;

use crate::{Conn, Failure};

/// The extension commands `qga` uses.
pub(crate) const EXEC: &str = "__org.qga_exec";
/// Reads a running process's output by offset.
pub(crate) const EXEC_OUTPUT: &str = "__org.qga_exec-output";
/// Sends a signal to a process.
pub(crate) const EXEC_SIGNAL: &str = "__org.qga_exec-signal";
/// Describes one file.
pub(crate) const FILE_STAT: &str = "__org.qga_file-stat";
/// Lists a directory.
pub(crate) const FILE_LIST: &str = "__org.qga_file-list";

/// The commands the agent lists as enabled in guest-info.
#[derive(Debug, Clone, Default)]
pub(crate) struct Features {
    enabled: HashSet<String>,
    version: String,
}

impl Features {
    /// Asks guest-info.
    pub(crate) fn probe(c: &mut Conn) -> Result<Features, Failure> {
        let info = c.execute::<s::GuestInfo>(&s::NoArgs {})?;
        Ok(Features {
            enabled: info
                .supported_commands
                .into_iter()
                .filter(|c| c.enabled)
                .map(|c| c.name)
                .collect(),
            version: info.version,
        })
    }

    /// Whether the agent is this project's (it lists `__org.qga_*` commands enabled).
    pub(crate) fn is_ours(&self) -> bool {
        self.enabled.iter().any(|n| n.starts_with("__org.qga_"))
    }

    /// Whether `name` is listed and enabled.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    /// "the agent (version V) does not offer X" with the usual reasons.
    pub(crate) fn lacks(&self, what: &str) -> String {
        format!(
            "the guest's agent (version {}) does not offer {what}: it is qemu-ga, or an agent \
             whose policy (block-rpcs/allow-rpcs) disables it",
            self.version
        )
    }

    /// Whether guest-exec and guest-exec-status are enabled.
    fn can_exec(&self) -> bool {
        self.has("guest-exec") && self.has("guest-exec-status")
    }

    /// Fails unless the agent has `ext` or guest-exec to run `tools` instead.
    fn need_ext_or_exec(&self, doing: &str, ext: &str, tools: &str) -> Result<(), Failure> {
        if self.can_exec() {
            return Ok(());
        }
        Err(Failure(format!(
            "cannot {doing}: the guest's agent (version {}) offers neither {ext} (an extension \
             of qga's agent) nor guest-exec (to run {tools} in the guest instead); install qga's \
             agent in the guest, or let its agent run guest-exec (block-rpcs/allow-rpcs)",
            self.version
        )))
    }
}

/// What a program run by [`capture`] did.
#[derive(Debug)]
pub(crate) struct Captured {
    /// Exit code (128+N for signal N; 1 if neither was reported).
    pub(crate) code: i64,
    /// Standard output.
    pub(crate) out: Vec<u8>,
    /// Standard error.
    pub(crate) err: Vec<u8>,
}

/// Runs `path args...` with guest-exec, waits up to `limit` for it and returns its output.
pub(crate) fn capture(
    c: &mut Conn,
    path: &str,
    args: &[String],
    limit: Duration,
) -> Result<Captured, Failure> {
    let pid = c
        .execute::<s::GuestExec>(&s::ExecArgs {
            path: path.into(),
            arg: Some(args.to_vec()),
            env: None,
            input_data: None,
            capture_output: Some(s::GuestExecCaptureOutput::Flag(true)),
        })?
        .pid;
    let start = Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        let st = c.execute::<s::GuestExecStatus>(&s::ExecStatusArgs { pid })?;
        if st.exited {
            let decode = |d: Option<String>| {
                d.as_deref()
                    .map(b64::decode)
                    .transpose()
                    .map(Option::unwrap_or_default)
                    .map_err(|e| Failure(format!("{path} in the guest: {e}")))
            };
            return Ok(Captured {
                code: exit_code(st.exitcode, st.signal),
                out: decode(st.out_data)?,
                err: decode(st.err_data)?,
            });
        }
        if start.elapsed() > limit {
            return Err(Failure(format!(
                "{path} (process {pid} in the guest) did not finish in {} s",
                limit.as_secs()
            )));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// The shell's view of an exit: the code, 128+N for signal N, 1 when neither is known.
pub(crate) fn exit_code(code: Option<i64>, signal: Option<i64>) -> i64 {
    match (code, signal) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    }
}

/// How long the standard tools may take for one directory or file.
const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// Names passed to one `stat` run (well under any guest's argument limit for usual names).
const STAT_BATCH: usize = 256;

/// `stat -c` fields, all numbers but the last two (account names, which have no blanks),
/// understood by GNU coreutils and busybox alike.
const STAT_FORMAT: &str = "%f %s %u %g %X %Y %Z %h %i %U %G";

/// Parses one `STAT_FORMAT` line into a description named `name`.
fn parse_stat_line(line: &str, name: &str) -> Option<FileStat> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [raw, size, uid, gid, at, mt, ct, nlink, inode, owner, group] = f.as_slice() else {
        return None;
    };
    let num = |t: &str| t.parse::<i64>().ok();
    let raw = i64::from_str_radix(raw, 16).ok()?;
    let account = |t: &str| (t != "UNKNOWN").then(|| t.to_string());
    Some(FileStat {
        name: name.to_string(),
        kind: kind_of(raw).into(),
        size: num(size)?,
        mode: raw & 0o7777,
        uid: num(uid)?,
        gid: num(gid)?,
        owner: account(owner),
        group: account(group),
        atime: num(at)?.saturating_mul(1_000_000_000),
        mtime: num(mt)?.saturating_mul(1_000_000_000),
        ctime: num(ct)?.saturating_mul(1_000_000_000),
        nlink: num(nlink)?,
        inode: num(inode)?,
        link_target: None,
    })
}

/// The type name of a raw `st_mode`, as `__org.qga_file-stat` gives it.
fn kind_of(raw: i64) -> &'static str {
    match raw & 0o170000 {
        0o040000 => "directory",
        0o120000 => "symlink",
        0o060000 => "block-device",
        0o020000 => "char-device",
        0o010000 => "fifo",
        0o140000 => "socket",
        _ => "file",
    }
}

/// The last component of a guest path (the path itself for `/`).
pub(crate) fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((_, name)) => name,
        None if trimmed.is_empty() => path,
        None => trimmed,
    }
}

/// The first line of a tool's standard error, for messages.
fn first_line(err: &[u8]) -> String {
    String::from_utf8_lossy(err)
        .lines()
        .next()
        .unwrap_or("failed")
        .to_string()
}

/// Files in the guest, described through the extensions or the standard tools.
#[derive(Debug)]
pub(crate) struct GuestFs<'a> {
    /// The connection.
    pub(crate) c: &'a mut Conn,
    /// What the agent offers.
    pub(crate) features: Features,
}

impl<'a> GuestFs<'a> {
    /// Probes the agent behind `c`.
    pub(crate) fn new(c: &'a mut Conn) -> Result<GuestFs<'a>, Failure> {
        let features = Features::probe(c)?;
        Ok(GuestFs { c, features })
    }

    /// Describes `path` (what a link points to when `follow`).
    pub(crate) fn stat(&mut self, path: &str, follow: bool) -> Result<FileStat, Failure> {
        if self.features.has(FILE_STAT) {
            return Ok(self.c.execute::<s::OrgQgaFileStat>(&s::ext::FileStatArgs {
                path: path.into(),
                follow_symlinks: Some(follow),
            })?);
        }
        self.features
            .need_ext_or_exec(&format!("describe {path}"), FILE_STAT, "stat")?;
        let mut found = self.stat_tool(&[path.to_string()], follow)?;
        match found.pop() {
            Some(Ok(mut st)) => {
                st.name = base_name(path).to_string();
                self.add_link_targets(std::slice::from_mut(&mut st), |_| path.to_string())?;
                Ok(st)
            }
            Some(Err(e)) => Err(Failure(format!("failed to stat '{path}': {e}"))),
            None => Err(Failure(format!("failed to stat '{path}'"))),
        }
    }

    /// The entries of directory `path`, sorted by name, links not followed.
    pub(crate) fn list(&mut self, path: &str) -> Result<Vec<FileStat>, Failure> {
        if self.features.has(FILE_LIST) {
            return Ok(self
                .c
                .execute::<s::OrgQgaFileList>(&s::ext::FileListArgs { path: path.into() })?);
        }
        self.features
            .need_ext_or_exec(&format!("list {path}"), FILE_LIST, "find and stat")?;
        // `DIR/.` makes find start inside the directory even when DIR is a link to it; with
        // -print0 every name comes back whole, blanks and newlines included.
        // A leading `./` keeps a relative name that starts with `-` from being an option.
        let dir = path.trim_end_matches('/');
        let dot = if dir.starts_with('-') { "./" } else { "" };
        let top = format!("{dot}{dir}/.");
        let args: Vec<String> = [top.as_str(), "-mindepth", "1", "-maxdepth", "1", "-print0"]
            .map(String::from)
            .to_vec();
        let r = capture(self.c, "find", &args, TOOL_LIMIT)?;
        if r.code != 0 {
            return Err(Failure(format!(
                "failed to list directory '{path}': {}",
                first_line(&r.err)
            )));
        }
        let mut names: Vec<String> = r
            .out
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|p| {
                let name = p.rsplit(|&b| b == b'/').next().unwrap_or(p);
                String::from_utf8_lossy(name).into_owned()
            })
            .collect();
        names.sort();
        let full = |n: &str| format!("{top}/{n}");
        let paths: Vec<String> = names.iter().map(|n| full(n)).collect();
        let mut out = Vec::new();
        for (chunk, chunk_names) in paths.chunks(STAT_BATCH).zip(names.chunks(STAT_BATCH)) {
            for (st, name) in self.stat_tool(chunk, false)?.into_iter().zip(chunk_names) {
                // An entry removed while listing is left out, as the extension does.
                if let Ok(mut st) = st {
                    st.name.clone_from(name);
                    out.push(st);
                }
            }
        }
        self.add_link_targets(&mut out, |n| full(n))?;
        Ok(out)
    }

    /// `stat -c` of each path, in order: a description, or the tool's complaint.
    fn stat_tool(
        &mut self,
        paths: &[String],
        follow: bool,
    ) -> Result<Vec<Result<FileStat, String>>, Failure> {
        let mut args = vec!["-c".to_string(), STAT_FORMAT.to_string()];
        if follow {
            args.push("-L".into());
        }
        args.push("--".into());
        args.extend(paths.iter().cloned());
        let r = capture(self.c, "stat", &args, TOOL_LIMIT)?;
        let text = String::from_utf8_lossy(&r.out);
        let lines: Vec<&str> = text.lines().collect();
        if r.code == 0 && lines.len() == paths.len() {
            return Ok(lines
                .iter()
                .map(|l| parse_stat_line(l, "").ok_or_else(|| format!("stat printed '{l}'")))
                .collect());
        }
        if paths.len() == 1 {
            return Ok(vec![match lines.first() {
                Some(l) if r.code == 0 => {
                    parse_stat_line(l, "").ok_or_else(|| format!("stat printed '{l}'"))
                }
                _ => Err(stat_complaint(&r.err)),
            }]);
        }
        // Some path failed (removed meanwhile): the lines no longer match the names, so
        // each path is asked on its own.
        let mut each = Vec::new();
        for p in paths {
            each.extend(self.stat_tool(std::slice::from_ref(p), follow)?);
        }
        Ok(each)
    }

    /// Fills `link_target` of the links among `entries` with `readlink` (`path_of` gives
    /// the guest path of an entry's name).
    fn add_link_targets(
        &mut self,
        entries: &mut [FileStat],
        path_of: impl Fn(&str) -> String,
    ) -> Result<(), Failure> {
        for e in entries.iter_mut().filter(|e| e.kind == "symlink") {
            let r = capture(
                self.c,
                "readlink",
                &["--".into(), path_of(&e.name)],
                TOOL_LIMIT,
            )?;
            if r.code == 0 {
                let mut t = r.out;
                if t.last() == Some(&b'\n') {
                    t.pop();
                }
                e.link_target = Some(String::from_utf8_lossy(&t).into_owned());
            }
        }
        Ok(())
    }

    /// `mkdir -p` of `dirs` in the guest (there is no extension for it: guest-exec).
    pub(crate) fn mkdir_p(&mut self, dirs: &[String]) -> Result<(), Failure> {
        if !self.features.can_exec() {
            return Err(Failure(format!(
                "creating directories in the guest runs mkdir -p there with guest-exec, which \
                 the guest's agent (version {}) does not offer (block-rpcs/allow-rpcs)",
                self.features.version
            )));
        }
        for chunk in dirs.chunks(STAT_BATCH) {
            let mut args = vec!["-p".to_string(), "--".to_string()];
            args.extend(chunk.iter().cloned());
            let r = capture(self.c, "mkdir", &args, TOOL_LIMIT)?;
            if r.code != 0 {
                return Err(Failure(format!(
                    "mkdir -p in the guest: {}",
                    first_line(&r.err)
                )));
            }
        }
        Ok(())
    }
}

/// What `stat` said about a path it could not describe, without its own name in front.
fn stat_complaint(err: &[u8]) -> String {
    let line = first_line(err);
    // "stat: cannot statx 'x': No such file or directory" (coreutils),
    // "stat: can't stat 'x': No such file or directory" (busybox): keep the reason.
    line.rsplit_once(": ")
        .map_or(line.clone(), |(_, why)| why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_stat_line_parses_coreutils_and_busybox_output() {
        let st = parse_stat_line(
            "81a4 12 1000 100 1700000000 1700000001 1700000002 1 42 ann users",
            "a b",
        )
        .unwrap();
        assert_eq!(
            (st.kind.as_str(), st.size, st.mode, st.owner.as_deref()),
            ("file", 12, 0o644, Some("ann"))
        );
        assert_eq!(st.mtime, 1_700_000_001_000_000_000);
        let d = parse_stat_line("41ed 4096 0 0 1 2 3 2 7 UNKNOWN UNKNOWN", "d").unwrap();
        assert_eq!(
            (d.kind.as_str(), d.mode, d.owner),
            ("directory", 0o755, None)
        );
        assert_eq!(
            parse_stat_line("a1ff 3 0 0 1 2 3 1 9 root root", "l")
                .unwrap()
                .kind,
            "symlink"
        );
        assert!(parse_stat_line("81a4 12 1000", "x").is_none());
        assert!(parse_stat_line("zz 1 2 3 4 5 6 7 8 a b", "x").is_none());
    }

    #[test]
    fn test_base_name_and_stat_complaint() {
        assert_eq!(base_name("/tmp/a/"), "a");
        assert_eq!(base_name("/"), "/");
        assert_eq!(base_name("file"), "file");
        assert_eq!(
            stat_complaint(b"stat: cannot statx '/x': No such file or directory\n"),
            "No such file or directory"
        );
        assert_eq!(exit_code(None, Some(9)), 137);
        assert_eq!(exit_code(Some(3), None), 3);
    }
}
