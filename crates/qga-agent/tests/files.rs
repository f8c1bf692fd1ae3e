//! guest-file-* and guest-exec* on the real agent: modes, boundaries, error texts, handle
//! persistence, FIFOs, capture modes, input, environment, many processes.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::Agent;
use qga_client::{Client, ClientError};
use qga_proto::{Value, b64};
use qga_schema::{
    ExecArgs, ExecStatusArgs, FileHandleArgs, FileOpenArgs, FileReadArgs, FileSeekArgs,
    FileWriteArgs, GuestExec, GuestExecCaptureOutput, GuestExecCaptureOutputMode, GuestExecStatus,
    GuestFileClose, GuestFileOpen, GuestFileRead, GuestFileSeek, GuestFileWhence, GuestFileWrite,
    QgaSeek, files,
};

type C = Client<std::os::unix::net::UnixStream>;

fn err_text<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Agent(e)) => e.desc,
        other => panic!("expected an agent error, got {other:?}"),
    }
}

fn open(c: &mut C, path: &str, mode: &str) -> i64 {
    c.execute::<GuestFileOpen>(&FileOpenArgs {
        path: path.into(),
        mode: Some(mode.into()),
    })
    .unwrap()
}

fn read(c: &mut C, handle: i64, count: Option<i64>) -> files::GuestFileRead {
    c.execute::<GuestFileRead>(&FileReadArgs { handle, count })
        .unwrap()
}

fn seek(c: &mut C, handle: i64, offset: i64, whence: QgaSeek) -> files::GuestFileSeek {
    c.execute::<GuestFileSeek>(&FileSeekArgs {
        handle,
        offset,
        whence: GuestFileWhence::Name(whence),
    })
    .unwrap()
}

fn write(c: &mut C, handle: i64, b64: &str) -> Result<files::GuestFileWrite, ClientError> {
    c.execute::<GuestFileWrite>(&FileWriteArgs {
        handle,
        buf_b64: b64.into(),
        count: None,
        decoded: None,
    })
}

#[test]
fn test_file_roundtrip_eof_and_zero_read() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let p = a.statedir().join("hello.txt");
    let path = p.to_str().unwrap();
    let h = open(&mut c, path, "w+");
    assert_eq!(h, 1000);
    let w = write(&mut c, h, "aGVsbG8=").unwrap();
    assert_eq!((w.count, w.eof), (5, false));
    let pos = seek(&mut c, h, 0, QgaSeek::Set);
    assert_eq!((pos.position, pos.eof), (0, false));
    let r = read(&mut c, h, None);
    assert_eq!((r.count, r.buf_b64.as_str(), r.eof), (5, "aGVsbG8=", true));
    let r = read(&mut c, h, None);
    assert_eq!((r.count, r.buf_b64.as_str(), r.eof), (0, "", true));
    let r = read(&mut c, h, Some(0));
    assert_eq!((r.count, r.eof), (0, false));
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
        .unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"hello");
    // Closed handles are gone.
    assert_eq!(
        err_text(c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })),
        "handle '1000' has not been found"
    );
    // The raw reply is byte-identical to qemu-ga's.
    let h = open(&mut c, path, "r");
    c.send_raw(
        format!("{{\"execute\":\"guest-file-read\",\"arguments\":{{\"handle\":{h}}}}}").as_bytes(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(c.read_reply().unwrap().line).unwrap(),
        r#"{"return": {"count": 5, "buf-b64": "aGVsbG8=", "eof": true}}"#
    );
}

/// Reads above 64 KiB of a regular file are spliced through a pipe: the same counts, data,
/// `eof` and reply text as any read, the position kept for reads and writes after them.
#[test]
fn test_large_reads_through_a_pipe_keep_fread_semantics() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let p = a.statedir().join("piped.bin");
    let path = p.to_str().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    std::fs::write(&p, &data).unwrap();
    let h = open(&mut c, path, "r+");
    let r = read(&mut c, h, Some(150_000));
    assert_eq!((r.count, r.eof), (150_000, false));
    assert_eq!(b64::decode(&r.buf_b64).unwrap(), data[..150_000]);
    // The rest, short of the count: end of file.
    c.send_raw(
        format!(
            "{{\"execute\":\"guest-file-read\",\"arguments\":{{\"handle\":{h},\"count\":150000}}}}"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(c.read_reply().unwrap().line).unwrap(),
        format!(
            r#"{{"return": {{"count": 50000, "buf-b64": "{}", "eof": true}}}}"#,
            b64::encode(&data[150_000..])
        )
    );
    let r = read(&mut c, h, Some(150_000));
    assert_eq!((r.count, r.buf_b64.as_str(), r.eof), (0, "", true));
    // A write after a piped read goes where the read stopped.
    seek(&mut c, h, 100_000, QgaSeek::Set);
    let r = read(&mut c, h, Some(70_000));
    assert_eq!(b64::decode(&r.buf_b64).unwrap(), data[100_000..170_000]);
    assert_eq!(write(&mut c, h, "eHl6").unwrap().count, 3);
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
        .unwrap();
    let mut want = data.clone();
    want[170_000..170_003].copy_from_slice(b"xyz");
    assert!(std::fs::read(&p).unwrap() == want, "file differs");
}

#[test]
fn test_file_errors_exact_texts() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let dir = a.statedir().to_str().unwrap().to_string();
    let missing = format!("{dir}/missing.txt");
    assert_eq!(
        err_text(c.execute::<GuestFileOpen>(&FileOpenArgs {
            path: missing.clone(),
            mode: None
        })),
        format!("failed to open file '{missing}' (mode: 'r'): No such file or directory")
    );
    for bad in ["rb ", "wx", "ccs=UTF-8"] {
        assert_eq!(
            err_text(c.execute::<GuestFileOpen>(&FileOpenArgs {
                path: missing.clone(),
                mode: Some(bad.into())
            })),
            format!("invalid file open mode '{bad}'")
        );
    }
    let f = format!("{dir}/f.txt");
    std::fs::write(&f, b"abc").unwrap();
    let h = open(&mut c, &f, "r");
    assert_eq!(
        err_text(write(&mut c, h, "aGVsbG8=")),
        "failed to write to file: Bad file descriptor"
    );
    for (count, text) in [
        (-1, "value '-1' is invalid for argument count"),
        (50331649, "value '50331649' is invalid for argument count"),
    ] {
        assert_eq!(
            err_text(c.execute::<GuestFileRead>(&FileReadArgs {
                handle: h,
                count: Some(count)
            })),
            text
        );
    }
    let seek = |c: &mut C, offset, whence| {
        c.execute::<GuestFileSeek>(&FileSeekArgs {
            handle: h,
            offset,
            whence,
        })
    };
    assert_eq!(
        err_text(seek(&mut c, 0, GuestFileWhence::Value(3))),
        "invalid whence code 3"
    );
    assert_eq!(
        err_text(seek(&mut c, -1, GuestFileWhence::Value(0))),
        "failed to seek file: Invalid argument"
    );
    assert_eq!(
        seek(&mut c, 10, GuestFileWhence::Value(0))
            .unwrap()
            .position,
        10
    );
    let r = read(&mut c, h, None);
    assert_eq!((r.count, r.eof), (0, true));
    assert_eq!(
        seek(&mut c, -1, GuestFileWhence::Name(QgaSeek::End))
            .unwrap()
            .position,
        2
    );

    let w = open(&mut c, &format!("{dir}/w.txt"), "w");
    assert_eq!(
        err_text(c.execute::<GuestFileRead>(&FileReadArgs {
            handle: w,
            count: None
        })),
        "failed to read file: Bad file descriptor"
    );
    assert_eq!(
        err_text(write(&mut c, w, "aGVs bG8=")),
        "Base64 data contains invalid characters"
    );
    assert_eq!(
        err_text(c.execute::<GuestFileWrite>(&FileWriteArgs {
            handle: w,
            buf_b64: "aGVsbG8=".into(),
            count: Some(99),
            decoded: None,
        })),
        "value '99' is invalid for argument count"
    );
    // Lenient padding: "aGVsbG8" decodes to three bytes, as with GLib.
    assert_eq!(write(&mut c, w, "aGVsbG8").unwrap().count, 3);
    let d = open(&mut c, &dir, "r");
    assert_eq!(
        err_text(c.execute::<GuestFileRead>(&FileReadArgs {
            handle: d,
            count: None
        })),
        "failed to read file: Is a directory"
    );
}

#[test]
fn test_new_file_mode_honours_umask_and_modes_append() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let p = a.statedir().join("m.txt");
    let h = open(&mut c, p.to_str().unwrap(), "a");
    write(&mut c, h, "YQ==").unwrap();
    let h2 = open(&mut c, p.to_str().unwrap(), "a+");
    write(&mut c, h2, "Yg==").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"ab");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o022,
        0,
        "created {mode:o}: world/group write bits come from the umask, not forced"
    );
}

#[test]
fn test_handles_unique_across_restart_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    std::fs::write(&f, b"x").unwrap();
    let conf = "[general]\nmax-file-handles=3\n";
    let mut first = Vec::new();
    {
        let a = Agent::start_with(&["-t", dir.path().to_str().unwrap()], &[], conf);
        let mut c = a.client();
        for _ in 0..3 {
            first.push(open(&mut c, f.to_str().unwrap(), "r"));
        }
        let e = err_text(c.execute::<GuestFileOpen>(&FileOpenArgs {
            path: f.to_str().unwrap().into(),
            mode: None,
        }));
        assert!(e.ends_with("too many open handles (limit 3)"), "{e}");
        // Killed (SIGKILL) on drop: a crash.
    }
    let a = Agent::start_with(&["-t", dir.path().to_str().unwrap()], &[], conf);
    let mut c = a.client();
    let h = open(&mut c, f.to_str().unwrap(), "r");
    assert!(first.iter().all(|&old| h > old), "{h} after {first:?}");
}

#[test]
fn test_fifo_never_blocks_the_agent() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let fifo = a.statedir().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let h = open(&mut c, fifo.to_str().unwrap(), "r");
    let r = read(&mut c, h, None);
    assert_eq!((r.count, r.eof), (0, true));
    c.execute::<qga_schema::GuestPing>(&qga_schema::NoArgs {})
        .unwrap();
}

fn exec(c: &mut C, path: &str, args: &[&str], capture: Option<GuestExecCaptureOutput>) -> i64 {
    c.execute::<GuestExec>(&ExecArgs {
        path: path.into(),
        arg: Some(args.iter().map(|s| s.to_string()).collect()),
        env: None,
        input_data: None,
        capture_output: capture,
    })
    .unwrap()
    .pid
}

fn wait(c: &mut C, pid: i64) -> files::GuestExecStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c
            .execute::<GuestExecStatus>(&ExecStatusArgs { pid })
            .unwrap();
        if s.exited || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn mode(m: GuestExecCaptureOutputMode) -> Option<GuestExecCaptureOutput> {
    Some(GuestExecCaptureOutput::Mode(m))
}

#[test]
fn test_exec_capture_modes() {
    use GuestExecCaptureOutputMode as M;
    let a = Agent::start(&[]);
    let mut c = a.client();
    let script = "echo out; echo err >&2; exit 3";
    let cases = [
        (None, None, None),
        (
            Some(GuestExecCaptureOutput::Flag(true)),
            Some("out\n"),
            Some("err\n"),
        ),
        (Some(GuestExecCaptureOutput::Flag(false)), None, None),
        (mode(M::None), None, None),
        (mode(M::Stdout), Some("out\n"), None),
        (mode(M::Stderr), None, Some("err\n")),
        (mode(M::Separated), Some("out\n"), Some("err\n")),
        (mode(M::Merged), Some("out\nerr\n"), None),
    ];
    for (capture, out, err) in cases {
        let pid = exec(&mut c, "sh", &["-c", script], capture);
        let s = wait(&mut c, pid);
        let dec = |d: &Option<String>| {
            d.as_ref()
                .map(|d| String::from_utf8(qga_proto::b64::decode(d).unwrap()).unwrap())
        };
        assert!(s.exited);
        assert_eq!(s.exitcode, Some(3));
        assert_eq!(dec(&s.out_data).as_deref(), out, "{capture:?}");
        assert_eq!(dec(&s.err_data).as_deref(), err, "{capture:?}");
        assert_eq!(s.out_truncated, out.map(|_| false));
        assert_eq!(s.err_truncated, err.map(|_| false));
        // The record is gone after the exited reply.
        assert_eq!(
            err_text(c.execute::<GuestExecStatus>(&ExecStatusArgs { pid })),
            format!("PID {pid} does not exist")
        );
    }
}

#[test]
fn test_exec_signal_input_env_and_spawn_error() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let pid = exec(&mut c, "sh", &["-c", "kill -9 $$"], None);
    let s = wait(&mut c, pid);
    assert_eq!((s.exited, s.exitcode, s.signal), (true, None, Some(9)));

    let pid = c
        .execute::<GuestExec>(&ExecArgs {
            path: "cat".into(),
            arg: None,
            env: Some(vec!["PATH=/usr/bin:/bin".into(), "FOO=bar".into()]),
            input_data: Some(qga_proto::b64::encode(b"piped input")),
            capture_output: Some(GuestExecCaptureOutput::Flag(true)),
        })
        .unwrap()
        .pid;
    let s = wait(&mut c, pid);
    assert_eq!(
        s.out_data.as_deref(),
        Some(qga_proto::b64::encode(b"piped input").as_str())
    );

    let pid = c
        .execute::<GuestExec>(&ExecArgs {
            path: "/usr/bin/env".into(),
            arg: None,
            env: Some(vec!["FOO=bar".into()]),
            input_data: None,
            capture_output: Some(GuestExecCaptureOutput::Flag(true)),
        })
        .unwrap()
        .pid;
    let s = wait(&mut c, pid);
    assert_eq!(
        s.out_data.as_deref(),
        Some(qga_proto::b64::encode(b"FOO=bar\n").as_str()),
        "env replaces the environment"
    );

    // SIGPIPE is default in the child: `yes | head` ends.
    let pid = exec(
        &mut c,
        "sh",
        &["-c", "yes | head -1"],
        Some(GuestExecCaptureOutput::Flag(true)),
    );
    assert_eq!(wait(&mut c, pid).exitcode, Some(0));

    let e = err_text(c.execute::<GuestExec>(&ExecArgs {
        path: "/nonexistent/prog".into(),
        arg: None,
        env: None,
        input_data: None,
        capture_output: None,
    }));
    assert_eq!(
        e,
        "Failed to execute child process \u{201c}/nonexistent/prog\u{201d} (No such file or directory)"
    );
    let e = err_text(c.execute::<GuestExec>(&ExecArgs {
        path: "true".into(),
        arg: None,
        env: None,
        input_data: Some("!!".into()),
        capture_output: None,
    }));
    assert_eq!(e, "Base64 data contains invalid characters");
}

#[test]
fn test_exec_output_truncated_at_16_mib() {
    let a = Agent::start(&[]);
    let mut c = a.client();
    let pid = exec(
        &mut c,
        "sh",
        &["-c", "head -c 17000000 /dev/zero"],
        Some(GuestExecCaptureOutput::Flag(true)),
    );
    let s = wait(&mut c, pid);
    assert_eq!(s.out_truncated, Some(true));
    assert_eq!(
        qga_proto::b64::decode(s.out_data.as_deref().unwrap())
            .unwrap()
            .len(),
        16 << 20
    );
}

#[test]
fn test_many_execs_without_status_leave_no_zombies() {
    let a = Agent::start_with(&[], &[], "[general]\nmax-exec-records=1000\n");
    let mut c = a.client();
    let mut pids = Vec::new();
    for _ in 0..1000 {
        pids.push(exec(&mut c, "true", &[], None));
    }
    let e = err_text(c.execute::<GuestExec>(&ExecArgs {
        path: "true".into(),
        arg: None,
        env: None,
        input_data: None,
        capture_output: None,
    }));
    assert_eq!(
        e,
        "too many processes whose status has not been collected (limit 1000)"
    );
    // A thousand records cost little: the agent stays far below the size of one large read.
    let rss = rss_kb(&a);
    assert!(
        rss < 32 * 1024,
        "RSS {rss} kB after 1000 execs without status"
    );
    // Every child is reaped although nobody asked: no zombie children of the agent.
    let agent_pid = a.child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = std::process::Command::new("ps")
            .args(["-o", "stat=", "--ppid", &agent_pid])
            .output()
            .unwrap();
        let zombies = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('Z'))
            .count();
        if zombies == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{zombies} zombies left");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Collecting one status frees a slot.
    assert!(wait(&mut c, pids[0]).exited);
    exec(&mut c, "true", &[], None);
    let _ = Value::Null;
}

/// A `/proc/<agent>/status` figure in kB (`VmRSS`, `VmHWM`).
fn status_kb(a: &Agent, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", a.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

fn rss_kb(a: &Agent) -> u64 {
    status_kb(a, "VmRSS")
}

/// The agent's peak resident memory (VmHWM) in kB.
fn hwm_kb(a: &Agent) -> u64 {
    status_kb(a, "VmHWM")
}

/// Waits up to 5 s for the agent's resident memory to come back within 4 MiB of `idle` kB.
fn assert_rss_back_to_idle(a: &Agent, idle: u64, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while rss_kb(a) > idle + (4 << 10) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = rss_kb(a);
    assert!(
        now <= idle + (4 << 10),
        "{now} kB kept {when} (idle {idle} kB)"
    );
}

/// A 48 MiB read and a 32 MiB write stream through the agent without holding several
/// copies, and the memory goes back to the system once the client has left.
#[test]
fn test_large_transfers_bounded_memory_returned_after_client_leaves() {
    let a = Agent::start(&[]);
    let idle = rss_kb(&a);
    let p = a.statedir().join("big.bin");
    let path = p.to_str().unwrap();
    let data: Vec<u8> = (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&p, &data).unwrap();
    {
        let mut c = a.client();
        let h = open(&mut c, path, "r+");
        let r = c.file_read(h, 48 << 20).unwrap();
        assert!(r.data == data, "read data differs");
        // The read went through a pipe: its data never was in the agent's memory.
        let hwm = hwm_kb(&a);
        assert!(
            hwm < idle + (8 << 10),
            "peak {hwm} kB after the read, idle {idle} kB"
        );
        seek(&mut c, h, 0, QgaSeek::Set);
        assert_eq!(c.file_write(h, &data[..32 << 20]).unwrap(), 32 << 20);
        c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
            .unwrap();
    }
    let hwm = hwm_kb(&a);
    // 32 MiB of data plus the agent itself and buffers of 64 KiB; not the base64 text too.
    assert!(hwm < idle + (40 << 10), "peak {hwm} kB, idle {idle} kB");
    assert_rss_back_to_idle(&a, idle, "after the client left");
}

/// Memory freed by a large write stays with the agent while its client keeps sending (the
/// next large request reuses it instead of faulting it in again), whatever the listening
/// socket and a quiet second client do meanwhile, and goes back once every client has been
/// quiet for a second.
#[test]
fn test_memory_kept_while_client_busy_returned_when_idle() {
    let a = Agent::start(&[]);
    let idle = rss_kb(&a);
    let p = a.statedir().join("kept.bin");
    let data = vec![0x5au8; 32 << 20];
    // Connected throughout, never sending: its own quiet second must not trim.
    let mut quiet = a.client();
    quiet
        .execute::<qga_schema::GuestPing>(&qga_schema::NoArgs {})
        .unwrap();
    let mut c = a.client();
    let h = open(&mut c, p.to_str().unwrap(), "w");
    assert_eq!(c.file_write(h, &data).unwrap(), 32 << 20);
    c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
        .unwrap();
    // A request every 200 ms for 1.6 s: this client is never idle for a second, the
    // listening socket (it accepted nobody since) and the other client are.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(200));
        c.execute::<qga_schema::GuestPing>(&qga_schema::NoArgs {})
            .unwrap();
    }
    let busy = rss_kb(&a);
    assert!(
        busy > idle + (24 << 10),
        "{busy} kB while the client is busy (idle {idle} kB): freed memory was given back"
    );
    assert_rss_back_to_idle(&a, idle, "by connected but idle clients");
    for client in [&mut c, &mut quiet] {
        client
            .execute::<qga_schema::GuestPing>(&qga_schema::NoArgs {})
            .unwrap();
    }
}

/// Pipelined transfers (`qga_client::FileReader`/`FileWriter`, what `qga cp` uses) on our
/// agent and, where installed, Debian's qemu-ga: same bytes, same chunks, every reply taken
/// in order, and the channel in step after the end, a failure, or a transfer left part way.
#[test]
fn test_pipelined_transfers_in_order_and_channel_kept() {
    let reference = "/usr/sbin/qemu-ga";
    let mut programs = vec![common::AGENT];
    if std::path::Path::new(reference).exists() {
        programs.push(reference);
    }
    let data: Vec<u8> = (0..(1u32 << 20) + 2500)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let mut seen = Vec::new();
    for program in programs {
        let a = Agent::start_program(program, &[], &[], "");
        let mut c = a.client();
        let p = a.statedir().join("piped.bin");
        let path = p.to_str().unwrap();

        // Writes of uneven sizes, four in flight, acknowledged in order.
        let h = open(&mut c, path, "w");
        let mut w = c.file_writer(h, 4).unwrap();
        let mut at = 0;
        for size in [1, 4095, 65536, 3, 0, 1 << 19, 100_000].into_iter().cycle() {
            let end = (at + size).min(data.len());
            w.write(&data[at..end]).unwrap();
            at = end;
            if at == data.len() {
                break;
            }
        }
        assert_eq!(w.finish().unwrap(), data.len() as u64, "{program}");
        assert_eq!(w.acknowledged(), data.len() as u64);
        drop(w);
        c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
            .unwrap();
        assert!(
            std::fs::read(&p).unwrap() == data,
            "{program}: written data differs"
        );

        // Reads of 1000 bytes, four in flight: the replies after the end (empty) are read
        // too, and the handle stays at the end.
        std::fs::write(&p, &data[..2500]).unwrap();
        let h = open(&mut c, path, "r");
        let mut sizes = Vec::new();
        let mut back = Vec::new();
        {
            let mut r = c.file_reader(h, 1000, 4).unwrap();
            while let Some(chunk) = r.next_chunk().unwrap() {
                sizes.push(chunk.len());
                back.extend_from_slice(&chunk);
            }
            assert_eq!(r.next_chunk().unwrap(), None);
        }
        assert_eq!(sizes, [1000, 1000, 500], "{program}");
        assert!(back == data[..2500]);
        let after = read(&mut c, h, Some(10));
        assert_eq!((after.count, after.eof), (0, true), "{program}");
        c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
            .unwrap();

        // A whole large file, one buffer used again for every chunk.
        std::fs::write(&p, &data).unwrap();
        let h = open(&mut c, path, "r");
        let mut buf = Vec::new();
        let mut back = Vec::new();
        {
            let mut r = c.file_reader(h, 300_000, 4).unwrap();
            while r.next_chunk_into(&mut buf).unwrap() {
                back.extend_from_slice(&buf);
            }
        }
        assert!(back == data, "{program}: read data differs");

        // Left part way: the replies still in flight are skipped by the next call.
        seek(&mut c, h, 0, QgaSeek::Set);
        {
            let mut r = c.file_reader(h, 4096, 4).unwrap();
            assert_eq!(r.next_chunk().unwrap().unwrap(), data[..4096]);
        }
        let pos = seek(&mut c, h, 0, QgaSeek::Cur);
        // The four requests sent were all carried out.
        assert_eq!(pos.position, 4 * 4096, "{program}");
        c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
            .unwrap();

        // A failure: the agent's error, the other replies in flight drained, the channel
        // usable at once.
        let want = err_text(c.file_read(999_999, 10));
        let got = {
            let mut r = c.file_reader(999_999, 10, 4).unwrap();
            let e = err_text(r.next_chunk());
            assert_eq!(r.next_chunk().unwrap(), None);
            e
        };
        assert_eq!(got, want, "{program}");
        let h = open(&mut c, "/dev/full", "w");
        let write_error = {
            let mut w = c.file_writer(h, 4).unwrap();
            let mut failure = None;
            for _ in 0..8 {
                if let Err(e) = w.write(&data[..65536]) {
                    failure = Some(e);
                    break;
                }
            }
            let failure = match failure {
                Some(e) => e,
                None => w.finish().unwrap_err(),
            };
            assert_eq!(w.acknowledged(), 0, "{program}");
            match failure {
                ClientError::Agent(e) => e.desc,
                other => panic!("{program}: {other:?}"),
            }
        };
        assert!(
            write_error.contains("No space left on device"),
            "{program}: {write_error}"
        );
        c.execute::<GuestFileClose>(&FileHandleArgs { handle: h })
            .unwrap();
        c.execute::<qga_schema::GuestPing>(&qga_schema::NoArgs {})
            .unwrap();
        seen.push((sizes, got, write_error));
    }
    // Both agents answered alike.
    seen.dedup();
    assert_eq!(seen.len(), 1, "{seen:?}");
}
