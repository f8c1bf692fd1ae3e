//! `qga-bench`: runs our agent and Debian's qemu-ga side by side on unix sockets, in one run,
//! alternating, and prints each figure for both with the ratio.
//!
//! Usage: `qga-bench [--ours PATH] [--theirs PATH] [--quick]`. Every transferred byte is
//! verified with SHA-256.
#![forbid(unsafe_code)]

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use qga_client::{Base64Text, Client, ClientError};
use qga_proto::b64;
use qga_schema::{
    ExecArgs, ExecStatusArgs, FileHandleArgs, FileOpenArgs, GuestExec, GuestExecCaptureOutput,
    GuestExecStatus, GuestFileClose, GuestFileOpen, GuestPing, NoArgs,
};
use sha2::{Digest, Sha256};

type C = Client<UnixStream>;
type R<T> = Result<T, ClientError>;

/// A running agent.
struct Agent {
    child: Child,
    sock: PathBuf,
    _dir: tempfile::TempDir,
    started: Duration,
}

impl Agent {
    fn start(binary: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("sock");
        let conf = dir.path().join("empty.conf");
        std::fs::write(&conf, "").expect("config");
        let t = Instant::now();
        let child = Command::new(binary)
            .args(["-m", "unix-listen", "-p"])
            .arg(&sock)
            .arg("-t")
            .arg(dir.path())
            .env("QGA_CONF", &conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start agent");
        // Startup = until the first reply.
        loop {
            if let Ok(s) = UnixStream::connect(&sock) {
                let mut c = Client::new(s);
                if c.execute::<GuestPing>(&NoArgs {}).is_ok() {
                    break;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{binary} did not start"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        Agent {
            child,
            sock,
            _dir: dir,
            started: t.elapsed(),
        }
    }

    fn client(&self) -> C {
        let c = Client::connect_unix(&self.sock).expect("connect");
        let mut c = c;
        c.set_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        c
    }

    /// (user+system CPU seconds, VmRSS kB, VmHWM kB)
    fn usage(&self) -> (f64, u64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map(|(_, r)| r.split(' ').collect())
            .unwrap_or_default();
        let ticks: f64 = fields
            .get(11)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (ticks / 100.0, kb("VmRSS:"), kb("VmHWM:"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn make_file(path: &Path, size: usize) -> String {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in &mut data {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(path, &data).expect("write test file");
    format!("{:x}", Sha256::digest(&data))
}

/// Reads `path` through the agent in `chunk`-byte reads; returns (seconds, bytes). The
/// data is verified after the clock stops.
fn read_file(c: &mut C, path: &Path, chunk: usize, want_sha: &str) -> R<(f64, usize)> {
    let h = c.execute::<GuestFileOpen>(&FileOpenArgs {
        path: path.display().to_string(),
        mode: Some("r".into()),
    })?;
    let mut parts = Vec::new();
    let t = Instant::now();
    loop {
        let r = c.file_read(h, chunk as i64)?;
        let done = r.eof || r.data.is_empty();
        parts.push(r.data);
        if done {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })?;
    let mut sha = Sha256::new();
    let mut total = 0;
    for p in &parts {
        sha.update(p);
        total += p.len();
    }
    assert_eq!(
        format!("{:x}", sha.finalize()),
        want_sha,
        "read data differs"
    );
    Ok((secs, total))
}

/// Writes `data` through the agent in `chunk`-byte writes; returns seconds.
fn write_file(c: &mut C, path: &Path, data: &[u8], chunk: usize) -> R<f64> {
    let h = c.execute::<GuestFileOpen>(&FileOpenArgs {
        path: path.display().to_string(),
        mode: Some("w".into()),
    })?;
    let encoded: Vec<Base64Text> = data.chunks(chunk).map(Base64Text::encode).collect();
    let t = Instant::now();
    for e in &encoded {
        c.file_write_b64(h, e)?;
    }
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })?;
    let secs = t.elapsed().as_secs_f64();
    let written = std::fs::read(path).expect("read back");
    assert!(written == data, "written data differs");
    Ok(secs)
}

/// Runs a command and polls until it exited; returns (seconds, captured stdout bytes).
fn exec(c: &mut C, path: &str, args: &[&str]) -> R<(f64, usize)> {
    let t = Instant::now();
    let pid = c
        .execute::<GuestExec>(&ExecArgs {
            path: path.into(),
            arg: Some(args.iter().map(|s| s.to_string()).collect()),
            env: None,
            input_data: None,
            capture_output: Some(GuestExecCaptureOutput::Flag(true)),
        })?
        .pid;
    loop {
        let s = c.execute::<GuestExecStatus>(&ExecStatusArgs { pid })?;
        if s.exited {
            let n = s
                .out_data
                .map_or(0, |d| b64::decode(&d).map(|v| v.len()).unwrap_or(0));
            return Ok((t.elapsed().as_secs_f64(), n));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One figure for both agents.
struct Row {
    name: String,
    unit: &'static str,
    ours: f64,
    theirs: Option<f64>,
}

fn main() {
    let mut ours = "target/release/qemu-ga".to_string();
    let mut theirs = Some("/usr/sbin/qemu-ga".to_string());
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ours" => ours = args.next().expect("--ours PATH"),
            "--theirs" => theirs = args.next(),
            "--no-theirs" => theirs = None,
            "--quick" => quick = true,
            _ => panic!("unknown argument {a}"),
        }
    }
    let theirs = theirs.filter(|t| Path::new(t).exists());
    let work = tempfile::tempdir().expect("tempdir");
    let big = work.path().join("big.bin");
    let size: usize = if quick { 64 << 20 } else { 256 << 20 };
    make_file(&big, size);
    let big_data = std::fs::read(&big).expect("read");

    let mut rows: Vec<Row> = Vec::new();
    let push = |rows: &mut Vec<Row>, name: String, unit, which: usize, v: f64| {
        if let Some(r) = rows.iter_mut().find(|r| r.name == name) {
            if which == 0 {
                r.ours = v;
            } else {
                r.theirs = Some(v);
            }
        } else {
            rows.push(Row {
                name,
                unit,
                ours: if which == 0 { v } else { 0.0 },
                theirs: if which == 1 { Some(v) } else { None },
            });
        }
    };
    let agents: Vec<(usize, String)> = std::iter::once((0, ours.clone()))
        .chain(theirs.clone().map(|t| (1, t)))
        .collect();
    // Alternate: every measurement runs for ours, then theirs, before the next one.
    let mut live: Vec<(usize, Agent)> = Vec::new();
    for (which, bin) in &agents {
        let mut starts = Vec::new();
        for _ in 0..5 {
            starts.push(Agent::start(bin).started.as_secs_f64() * 1e3);
        }
        push(
            &mut rows,
            "startup to first reply".into(),
            "ms",
            *which,
            median(starts),
        );
        let a = Agent::start(bin);
        let (_, rss, _) = a.usage();
        push(
            &mut rows,
            "idle RSS".into(),
            "MB",
            *which,
            rss as f64 / 1024.0,
        );
        live.push((*which, a));
    }
    for (which, a) in &live {
        let mut c = a.client();
        let n = if quick { 2000 } else { 10000 };
        let (cpu0, _, _) = a.usage();
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            c.execute::<GuestPing>(&NoArgs {}).expect("ping");
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let (cpu1, _, _) = a.usage();
        push(
            &mut rows,
            "ping p50".into(),
            "us",
            *which,
            median(lat.clone()),
        );
        lat.sort_by(|x, y| x.total_cmp(y));
        push(
            &mut rows,
            "ping p99".into(),
            "us",
            *which,
            lat[lat.len() * 99 / 100],
        );
        push(
            &mut rows,
            format!("agent CPU per {n} pings"),
            "ms",
            *which,
            (cpu1 - cpu0) * 1e3,
        );
        // Pipelined: everything written before reading.
        let mut reqs = Vec::new();
        for i in 0..n {
            reqs.extend_from_slice(
                format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{i}}}}}").as_bytes(),
            );
        }
        let mut w = c.get_mut().try_clone().expect("clone");
        let t = Instant::now();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &reqs));
        for _ in 0..n {
            c.read_reply().expect("reply");
        }
        writer.join().expect("join").expect("write");
        push(
            &mut rows,
            "pipelined guest-sync".into(),
            "k req/s",
            *which,
            n as f64 / t.elapsed().as_secs_f64() / 1e3,
        );
        let (s, _) = exec(&mut c, "/bin/true", &[]).expect("exec");
        push(
            &mut rows,
            "exec /bin/true round trip (fresh)".into(),
            "ms",
            *which,
            s * 1e3,
        );
    }
    let chunks: &[(usize, &str)] = &[
        (4 << 10, "4 KiB"),
        (64 << 10, "64 KiB"),
        (1 << 20, "1 MiB"),
        (16 << 20, "16 MiB"),
        (48 << 20, "48 MiB"),
    ];
    let mut moved = [0usize; 2];
    for &(chunk, label) in chunks {
        let limit = if chunk <= 64 << 10 {
            (if quick { 8 } else { 32 }) << 20
        } else {
            size
        };
        let data = &big_data[..limit.min(size)];
        let part = work.path().join("part.bin");
        let part_sha = make_file(&part, data.len());
        for (which, a) in &live {
            let mut c = a.client();
            let (cpu0, _, _) = a.usage();
            let (secs, n) = read_file(&mut c, &part, chunk, &part_sha).expect("read");
            let (cpu1, _, hwm) = a.usage();
            push(
                &mut rows,
                format!("read {label} chunks"),
                "MB/s",
                *which,
                n as f64 / secs / 1e6,
            );
            push(
                &mut rows,
                format!("read {label}: agent CPU per GiB"),
                "s",
                *which,
                (cpu1 - cpu0) * (1u64 << 30) as f64 / n as f64,
            );
            if chunk == 48 << 20 {
                push(
                    &mut rows,
                    "peak RSS (48 MiB reads)".into(),
                    "MB",
                    *which,
                    hwm as f64 / 1024.0,
                );
            }
            let out = work.path().join(format!("out{which}.bin"));
            let part_data = std::fs::read(&part).expect("part");
            let (cpu0, _, _) = a.usage();
            // A request is limited to 64 MiB of tokens: the largest write is a bit under 48 MiB.
            let secs =
                write_file(&mut c, &out, &part_data, chunk.min((48 << 20) - 1024)).expect("write");
            let (cpu1, _, hwm) = a.usage();
            push(
                &mut rows,
                format!("write {label} chunks"),
                "MB/s",
                *which,
                part_data.len() as f64 / secs / 1e6,
            );
            push(
                &mut rows,
                format!("write {label}: agent CPU per GiB"),
                "s",
                *which,
                (cpu1 - cpu0) * (1u64 << 30) as f64 / part_data.len() as f64,
            );
            if chunk == 48 << 20 {
                push(
                    &mut rows,
                    "peak RSS (48 MiB writes)".into(),
                    "MB",
                    *which,
                    hwm as f64 / 1024.0,
                );
            }
            moved[*which] += 2 * n;
            let _ = std::fs::remove_file(&out);
        }
    }
    for (which, a) in &live {
        let mut c = a.client();
        let (s, _) = exec(&mut c, "/bin/true", &[]).expect("exec");
        push(
            &mut rows,
            format!(
                "exec /bin/true round trip (after {} MiB moved)",
                moved[*which] >> 20
            ),
            "ms",
            *which,
            s * 1e3,
        );
        let (s, n) = exec(&mut c, "head", &["-c", "8388608", "/dev/zero"]).expect("exec");
        assert_eq!(n, 8 << 20);
        push(
            &mut rows,
            "exec capturing 8 MiB".into(),
            "ms",
            *which,
            s * 1e3,
        );
        // Our agent returns freed memory to the OS after one idle second.
        std::thread::sleep(Duration::from_millis(1500));
        let (_, rss, _) = a.usage();
        push(
            &mut rows,
            "retained RSS after transfers".into(),
            "MB",
            *which,
            rss as f64 / 1024.0,
        );
    }
    for (which, bin) in &agents {
        let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
        push(
            &mut rows,
            "binary size".into(),
            "MB",
            *which,
            size as f64 / 1e6,
        );
        let libs = Command::new("ldd")
            .arg(bin)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| l.contains("=>"))
                    .count()
            })
            .unwrap_or(0);
        push(
            &mut rows,
            "shared libraries".into(),
            "",
            *which,
            libs as f64,
        );
    }
    drop(live);
    let _ = &work;

    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "figure", "qga", "qemu-ga", "ratio"
    );
    for r in &rows {
        let theirs = r.theirs.map_or("-".to_string(), |t| format!("{t:.2}"));
        let ratio = r
            .theirs
            .filter(|t| *t > 0.0)
            .map_or("-".to_string(), |t| format!("{:.2}x", r.ours / t));
        println!(
            "{:<48} {:>12} {:>12} {:>8}  {}",
            r.name,
            format!("{:.2}", r.ours),
            theirs,
            ratio,
            r.unit
        );
    }
    if let Some(t) = &theirs {
        let v = Command::new(t)
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        println!(
            "reference: {t} ({v}); ours: {ours}; {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }
}
