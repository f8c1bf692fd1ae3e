//! `qga-bench`: runs our agent and Debian's qemu-ga side by side on unix sockets, in one run,
//! alternating, and prints each figure for both with the ratio: startup, ping latency and
//! agent CPU, pipelined throughput, information commands, exec, file transfers, memory,
//! binary size and shared libraries (docs/performance.md).
//!
//! Usage: `qga-bench [--ours PATH] [--theirs PATH | --no-theirs] [--quick] [--no-files]`.
//! Every transferred byte is verified with SHA-256.
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
/// Requests in flight in the pipelined transfer figures (as `qga cp`).
const PIPELINE: usize = 4;
type R<T> = Result<T, ClientError>;
/// Builds the `i`-th request of a pipelined series.
type RequestMaker = fn(usize) -> String;

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
            std::thread::sleep(Duration::from_micros(50));
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

    /// Starts VmHWM over from the current VmRSS (`clear_refs` 5), so a peak belongs to the
    /// phase that follows; where that is refused the peak stays the process's so far.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
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

/// Reads `path` through the agent in `chunk`-byte reads with `depth` requests in flight;
/// returns (seconds, bytes). Each reply is decoded into its own buffer, allocated and touched
/// before the clock starts (the client's page faults are not the agent's speed); the data is
/// verified after the clock stops.
fn read_file(
    c: &mut C,
    path: &Path,
    chunk: usize,
    depth: usize,
    want_sha: &str,
) -> R<(f64, usize)> {
    let size = std::fs::metadata(path).expect("stat").len() as usize;
    let mut parts: Vec<Vec<u8>> = (0..size / chunk + 2)
        .map(|_| vec![1u8; chunk + 3])
        .collect();
    let h = c.execute::<GuestFileOpen>(&FileOpenArgs {
        path: path.display().to_string(),
        mode: Some("r".into()),
    })?;
    let t = Instant::now();
    let mut used = 0;
    {
        let mut reader = c.file_reader(h, chunk as i64, depth)?;
        while reader.next_chunk_into(&mut parts[used])? {
            used += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })?;
    let mut sha = Sha256::new();
    let mut total = 0;
    for p in &parts[..used] {
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

/// Writes `data` through the agent in `chunk`-byte writes with `depth` requests in flight
/// (the text encoded before the clock starts); returns seconds.
fn write_file(c: &mut C, path: &Path, data: &[u8], chunk: usize, depth: usize) -> R<f64> {
    let h = c.execute::<GuestFileOpen>(&FileOpenArgs {
        path: path.display().to_string(),
        mode: Some("w".into()),
    })?;
    let encoded: Vec<Base64Text> = data.chunks(chunk).map(Base64Text::encode).collect();
    let t = Instant::now();
    let mut writer = c.file_writer(h, depth)?;
    for e in &encoded {
        writer.write_b64(e)?;
    }
    assert_eq!(writer.finish()?, data.len() as u64);
    drop(writer);
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })?;
    let secs = t.elapsed().as_secs_f64();
    let written = std::fs::read(path).expect("read back");
    assert!(written == data, "written data differs");
    Ok(secs)
}

/// Writes back what earlier phases left dirty (the test file, deleted files' discards), so
/// that the kernel's writeback does not take CPU from the phase that follows.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Writes `data` in `chunk`-byte write(2) calls into a new file at `path`, closes and deletes
/// it; returns the seconds up to the close (as an agent's write phase).
fn local_write(path: &Path, data: &[u8], chunk: usize) -> f64 {
    use std::io::Write as _;
    let t = Instant::now();
    let mut f = std::fs::File::create(path).expect("create");
    for piece in data.chunks(chunk) {
        f.write_all(piece).expect("write");
    }
    drop(f);
    let secs = t.elapsed().as_secs_f64();
    std::fs::remove_file(path).expect("remove");
    secs
}

/// How often the exec figures ask guest-exec-status: a host polls at some interval, and the
/// interval is paid only by an agent that replies to guest-exec before the child is done.
const EXEC_POLL: Duration = Duration::from_micros(200);

/// Runs a command and asks for its status every `poll` (back to back if zero) until it
/// exited; returns (seconds, captured stdout bytes).
fn exec(c: &mut C, path: &str, args: &[&str], poll: Duration) -> R<(f64, usize)> {
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
        if !poll.is_zero() {
            std::thread::sleep(poll);
        }
    }
}

/// Median seconds of nine `/bin/true` round trips, polling every `poll`.
fn exec_median(c: &mut C, poll: Duration) -> f64 {
    median(
        (0..9)
            .map(|_| exec(c, "/bin/true", &[], poll).expect("exec").0)
            .collect(),
    )
}

/// Median of nine: start `/bin/true` from this process and wait for it.
fn local_spawn_median() -> f64 {
    median(
        (0..9)
            .map(|_| {
                let t = Instant::now();
                let status = Command::new("/bin/true").status().expect("spawn /bin/true");
                assert!(status.success());
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One figure for both agents.
struct Row {
    name: String,
    unit: &'static str,
    ours: Option<f64>,
    theirs: Option<f64>,
}

fn main() {
    let mut ours = "target/release/qemu-ga".to_string();
    let mut theirs = Some("/usr/sbin/qemu-ga".to_string());
    let mut quick = false;
    let mut skip_files = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ours" => ours = args.next().expect("--ours PATH"),
            "--theirs" => theirs = args.next(),
            "--no-theirs" => theirs = None,
            "--quick" => quick = true,
            "--no-files" => skip_files = true,
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
        put(rows, name, unit, which, Some(v));
    };
    let agents: Vec<(usize, String)> = std::iter::once((0, ours.clone()))
        .chain(theirs.clone().map(|t| (1, t)))
        .collect();
    // Alternate: every measurement runs for ours, then theirs, before the next one.
    let mut starts: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..9 {
        for (which, bin) in &agents {
            starts[*which].push(Agent::start(bin).started.as_secs_f64() * 1e3);
        }
    }
    let mut live: Vec<(usize, Agent)> = Vec::new();
    for (which, bin) in &agents {
        push(
            &mut rows,
            "startup to first reply".into(),
            "ms",
            *which,
            median(starts[*which].clone()),
        );
        // The fastest start: the least disturbed by other work on the machine.
        push(
            &mut rows,
            "startup to first reply, fastest of 9".into(),
            "ms",
            *which,
            starts[*which].iter().copied().fold(f64::INFINITY, f64::min),
        );
        let a = Agent::start(bin);
        // Idle: after the first reply, once the agent has settled.
        std::thread::sleep(Duration::from_millis(300));
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
    let n = if quick { 2000 } else { 10000 };
    for (which, a) in &live {
        let mut c = a.client();
        let ping = b"{\"execute\":\"guest-ping\"}\n";
        // Warm up, then time each request (written raw, reply line read, not parsed).
        for _ in 0..100 {
            raw_call(&mut c, ping);
        }
        let (cpu0, _, _) = a.usage();
        let mut lat = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            raw_call(&mut c, ping);
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
            "agent CPU per 10k pings".into(),
            "ms",
            *which,
            (cpu1 - cpu0) * 1e3 * 10_000.0 / n as f64,
        );
        let (_, rss, _) = a.usage();
        push(
            &mut rows,
            format!("RSS after {n} pings"),
            "MB",
            *which,
            rss as f64 / 1024.0,
        );
    }
    // Pipelined: every request written (by a second thread) before the replies are read.
    let pipelined: &[(&str, RequestMaker)] = &[
        ("guest-ping", |_| {
            "{\"execute\":\"guest-ping\"}\n".to_string()
        }),
        ("guest-sync", |i| {
            format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{i}}}}}\n")
        }),
        ("guest-sync-delimited", |i| {
            format!("{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{i}}}}}\n")
        }),
    ];
    let pn = n * 5;
    for (name, make) in pipelined {
        let reqs: Vec<u8> = (0..pn).flat_map(|i| make(i).into_bytes()).collect();
        for (which, a) in &live {
            let mut c = a.client();
            let (cpu0, _, _) = a.usage();
            let secs = pipeline(&mut c, &reqs, pn);
            let (cpu1, _, _) = a.usage();
            push(
                &mut rows,
                format!("pipelined {name}"),
                "k req/s",
                *which,
                pn as f64 / secs / 1e3,
            );
            push(
                &mut rows,
                format!("pipelined {name}: agent CPU per 10k"),
                "ms",
                *which,
                (cpu1 - cpu0) * 1e3 * 10_000.0 / pn as f64,
            );
        }
    }
    // Information commands: median latency of a series of calls.
    for name in INFO_COMMANDS {
        let req = format!("{{\"execute\":\"{name}\"}}\n");
        for (which, a) in &live {
            let mut c = a.client();
            let reps = if quick { 20 } else { 100 };
            let mut lat = Vec::with_capacity(reps);
            let mut ok = true;
            for _ in 0..reps {
                let t = Instant::now();
                let line = raw_call(&mut c, req.as_bytes());
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                ok &= line.starts_with(b"{\"return\"");
            }
            // A command the agent does not have (or that fails here) gets no figure.
            put(
                &mut rows,
                format!("{name} p50"),
                "us",
                *which,
                ok.then(|| median(lat)),
            );
        }
    }
    for (which, a) in &live {
        // The floor, measured just before: this process starting `/bin/true` itself
        // (posix_spawn through std) and waiting for it, without any agent.
        push(
            &mut rows,
            "exec floor: spawn and wait here, no agent".into(),
            "ms",
            *which,
            local_spawn_median() * 1e3,
        );
        let mut c = a.client();
        let s = exec_median(&mut c, EXEC_POLL);
        push(
            &mut rows,
            "exec /bin/true round trip (fresh)".into(),
            "ms",
            *which,
            s * 1e3,
        );
        let s = exec_median(&mut c, Duration::ZERO);
        push(
            &mut rows,
            "exec /bin/true, status asked back to back (fresh)".into(),
            "ms",
            *which,
            s * 1e3,
        );
    }
    if skip_files {
        finish(rows, &agents, theirs.as_deref(), &ours);
        return;
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
        let part_data = std::fs::read(&part).expect("part");
        // A request is limited to 64 MiB of tokens: the largest write is a bit under 48 MiB.
        let write_chunk = chunk.min((48 << 20) - 1024);
        // The rows of one transfer phase: its rate, the agent's CPU per GiB and, for the
        // largest chunks, the agent's peak memory.
        let push_phase = |rows: &mut Vec<Row>,
                          way: &str,
                          label: &str,
                          which: usize,
                          bytes: usize,
                          secs: f64,
                          cpu: f64,
                          hwm: u64| {
            let name = |what: &str| format!("{way} {label}{what}");
            push(
                rows,
                name(" chunks"),
                "MB/s",
                which,
                bytes as f64 / secs / 1e6,
            );
            let per_gib = cpu * (1u64 << 30) as f64 / bytes as f64;
            push(rows, name(": agent CPU per GiB"), "s", which, per_gib);
            if chunk == 48 << 20 {
                let peak = format!("peak RSS (48 MiB {way}s)");
                push(rows, peak, "MB", which, hwm as f64 / 1024.0);
            }
        };
        for (which, a) in &live {
            let mut c = a.client();
            // One request at a time (the agent's round trip), then, up to 1 MiB, with
            // several in flight (how `qga cp` copies).
            let depths: &[usize] = if chunk <= 1 << 20 {
                &[1, PIPELINE]
            } else {
                &[1]
            };
            for &depth in depths {
                let label = if depth == 1 {
                    label.to_string()
                } else {
                    format!("{label}, {depth} in flight")
                };
                settle();
                a.reset_peak();
                let (cpu0, _, _) = a.usage();
                let (secs, n) = read_file(&mut c, &part, chunk, depth, &part_sha).expect("read");
                let (cpu1, _, hwm) = a.usage();
                push_phase(&mut rows, "read", &label, *which, n, secs, cpu1 - cpu0, hwm);
                let out = work.path().join(format!("out{which}.bin"));
                settle();
                // The floor: the same chunks written by this process with write(2) into a
                // new file beside it, then deleted. Every write phase starts from there, so
                // the page cache's new pages are memory the machine has just used, not
                // memory a hypervisor took back (free page reporting) and must fault in.
                let floor = local_write(&work.path().join("floor.bin"), &part_data, write_chunk);
                push(
                    &mut rows,
                    format!("write {label}: local write(2) before it"),
                    "MB/s",
                    *which,
                    part_data.len() as f64 / floor / 1e6,
                );
                a.reset_peak();
                let (cpu0, _, _) = a.usage();
                let secs = write_file(&mut c, &out, &part_data, write_chunk, depth).expect("write");
                let (cpu1, _, hwm) = a.usage();
                let bytes = part_data.len();
                push_phase(
                    &mut rows,
                    "write",
                    &label,
                    *which,
                    bytes,
                    secs,
                    cpu1 - cpu0,
                    hwm,
                );
                moved[*which] += 2 * n;
                let _ = std::fs::remove_file(&out);
            }
        }
    }
    for (which, a) in &live {
        let mut c = a.client();
        let s = exec_median(&mut c, EXEC_POLL);
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
        let (s, n) =
            exec(&mut c, "head", &["-c", "8388608", "/dev/zero"], EXEC_POLL).expect("exec");
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
    drop(live);
    drop(work);
    finish(rows, &agents, theirs.as_deref(), &ours);
}

/// Adds the binary figures and prints the table.
fn finish(mut rows: Vec<Row>, agents: &[(usize, String)], theirs: Option<&str>, ours: &str) {
    for (which, bin) in agents {
        let size = std::fs::metadata(bin).map(|m| m.len()).unwrap_or(0);
        put(
            &mut rows,
            "binary size".into(),
            "MB",
            *which,
            Some(size as f64 / 1e6),
        );
        let libs = shared_libraries(bin);
        let total: u64 = libs
            .iter()
            .filter_map(|l| std::fs::metadata(l).ok())
            .map(|m| m.len())
            .sum();
        put(
            &mut rows,
            "shared libraries".into(),
            "",
            *which,
            Some(libs.len() as f64),
        );
        put(
            &mut rows,
            "shared libraries' size".into(),
            "MB",
            *which,
            Some(total as f64 / 1e6),
        );
        println!(
            "{}: {}",
            if *which == 0 {
                "qga libraries"
            } else {
                "qemu-ga libraries"
            },
            if libs.is_empty() {
                "none (static)".to_string()
            } else {
                libs.join(" ")
            }
        );
    }
    let show = |v: Option<f64>| v.map_or("-".to_string(), |t| format!("{t:.2}"));
    println!(
        "{:<48} {:>12} {:>12} {:>8}",
        "figure", "qga", "qemu-ga", "ratio"
    );
    for r in &rows {
        let ratio = match (r.ours, r.theirs) {
            (Some(o), Some(t)) if t > 0.0 => format!("{:.2}x", o / t),
            _ => "-".to_string(),
        };
        println!(
            "{:<48} {:>12} {:>12} {:>8}  {}",
            r.name,
            show(r.ours),
            show(r.theirs),
            ratio,
            r.unit
        );
    }
    if let Some(t) = theirs {
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

/// The shared libraries `ldd` resolves for `bin` (the vDSO and the loader not counted).
fn shared_libraries(bin: &str) -> Vec<String> {
    Command::new("ldd")
        .arg(bin)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_once("=> ").map(|(_, r)| r))
                .filter_map(|r| r.split_whitespace().next())
                .filter(|p| p.starts_with('/'))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Sets one agent's value of the row `name`, adding the row when new.
fn put(rows: &mut Vec<Row>, name: String, unit: &'static str, which: usize, v: Option<f64>) {
    let row = match rows.iter().position(|r| r.name == name) {
        Some(i) => &mut rows[i],
        None => {
            rows.push(Row {
                name,
                unit,
                ours: None,
                theirs: None,
            });
            let last = rows.len() - 1;
            &mut rows[last]
        }
    };
    if which == 0 {
        row.ours = v;
    } else {
        row.theirs = v;
    }
}

/// Information commands timed one by one (all exist in qemu-ga 7.2 except the last two).
const INFO_COMMANDS: &[&str] = &[
    "guest-info",
    "guest-get-time",
    "guest-get-host-name",
    "guest-get-timezone",
    "guest-get-osinfo",
    "guest-get-users",
    "guest-get-vcpus",
    "guest-network-get-interfaces",
    "guest-get-fsinfo",
    "guest-get-disks",
    "guest-get-memory-block-info",
    "guest-get-memory-blocks",
    "guest-get-diskstats",
    "guest-get-cpustats",
    "guest-fsfreeze-status",
    "guest-get-load",
    "guest-network-get-route",
];

/// Writes one request and reads its reply line (not parsed).
fn raw_call(c: &mut C, req: &[u8]) -> Vec<u8> {
    c.send_raw(req).expect("send");
    c.read_reply().expect("reply").line
}

/// Writes `reqs` (holding `n` requests) from a second thread while reading the `n` replies;
/// returns the seconds from the first byte written to the last reply read.
fn pipeline(c: &mut C, reqs: &[u8], n: usize) -> f64 {
    let mut w = c.get_mut().try_clone().expect("clone");
    let reqs = reqs.to_vec();
    let t = Instant::now();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut w, &reqs));
    for _ in 0..n {
        c.read_reply().expect("reply");
    }
    let secs = t.elapsed().as_secs_f64();
    writer.join().expect("join").expect("write");
    secs
}
