//! Processes started by guest-exec: capture threads, prompt reaping, and bounded records
//! and output memory.
//!
//! Each child gets one thread that reads its captured streams and reaps it as soon as it
//! exits (so no zombie stays even if nobody asks), through a pidfd; where the kernel has no
//! pidfd, a waiter thread and one reader thread per captured stream do the same. A record
//! is complete ("exited") when the child was reaped and every captured stream reached end
//! of file, as in qemu-ga.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::process::{ChildStdin, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use qga_sys::exec::{Event, Spawned, Stream};

/// Most output kept per stream (qemu-ga's limit).
pub const STREAM_CAP: usize = 16 << 20;
/// Records held at once unless configured otherwise.
pub const DEFAULT_MAX_RECORDS: usize = 1024;
/// Captured bytes held for all records together unless configured otherwise.
pub const DEFAULT_MAX_OUTPUT: usize = 1 << 30;

const THREAD_STACK: usize = 64 * 1024;

/// One captured stream.
#[derive(Debug, Default)]
pub struct Capture {
    /// The bytes kept.
    pub data: Vec<u8>,
    /// Whether bytes were dropped.
    pub truncated: bool,
}

#[derive(Debug, Default)]
struct State {
    status: Option<ExitStatus>,
    out_open: bool,
    err_open: bool,
    out: Capture,
    err: Capture,
    /// Complete when the child is reaped, even with pipes still open.
    exit_on_main: bool,
    /// The time limit was reached and the kill signal sent.
    timed_out: bool,
    /// Collected by guest-exec-status: readers still draining discard what they read.
    released: bool,
}

impl State {
    /// Whether guest-exec-status reports the process as exited.
    fn complete(&self) -> bool {
        self.status.is_some() && (self.exit_on_main || (!self.out_open && !self.err_open))
    }
}

#[derive(Debug)]
struct Record {
    state: Mutex<State>,
    /// Notified when the child is reaped (wakes the time-limit thread).
    reaped: Condvar,
    /// The child's pid (and process group id when `group`).
    pid: i32,
    /// The child leads a process group of its own: signals go to the group.
    group: bool,
}

/// How `__org.qga_exec` changes a record (guest-exec uses the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Report the exit once the child is reaped, pipes open or not.
    pub exit_on_main: bool,
    /// The child leads its own process group; signals go to the group.
    pub group: bool,
    /// Send this signal (to the group when `group`) after this long.
    pub timeout: Option<(Duration, i32)>,
}

/// One stream as `__org.qga_exec-output` sees it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Slice {
    /// The bytes from the offset asked for.
    pub data: Vec<u8>,
    /// The offset after them.
    pub next: usize,
    /// Whether bytes were dropped at the capture limit.
    pub truncated: bool,
    /// Whether the pipe is still open.
    pub open: bool,
}

/// What `__org.qga_exec-output` sees (the record stays).
#[derive(Debug)]
pub struct Output {
    /// How it ended, once reaped and (unless exit-on-main) its pipes closed.
    pub status: Option<ExitStatus>,
    /// Whether the time limit was reached.
    pub timed_out: bool,
    /// Standard output from the offset.
    pub out: Slice,
    /// Standard error from the offset.
    pub err: Slice,
}

/// Why a signal could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// No record with that pid.
    #[error("PID {0} does not exist")]
    NoSuchPid(i64),
    /// The process has already been reaped.
    #[error("process {0} has already exited")]
    Exited(i64),
    /// kill(2) failed.
    #[error("cannot send signal {0} to process {1}: {2}")]
    Os(i64, i64, String),
}

impl Record {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What guest-exec-status sees.
#[derive(Debug)]
pub enum Status {
    /// Still running, or output still open.
    Running,
    /// Done: the record is removed.
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// Standard output.
        out: Capture,
        /// Standard error.
        err: Capture,
    },
}

/// The table of started processes; clones share it (a pid started on one connection can be
/// polled from another).
#[derive(Debug, Clone)]
pub struct ExecTable {
    records: Arc<Mutex<HashMap<i64, Arc<Record>>>>,
    max_records: usize,
    /// Captured bytes still allowed, shared with the reader threads.
    budget: Arc<AtomicUsize>,
    /// Follow each child from one thread through a pidfd where the kernel has them (false:
    /// the threads of kernels without, for tests of that path).
    exit_fds: bool,
}

/// Why a process could not be started or registered.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Too many records not collected.
    #[error("too many processes whose status has not been collected (limit {0})")]
    Full(usize),
}

impl ExecTable {
    /// An empty table.
    pub fn new(max_records: usize, max_output: usize) -> ExecTable {
        ExecTable {
            records: Arc::new(Mutex::new(HashMap::new())),
            max_records,
            budget: Arc::new(AtomicUsize::new(max_output)),
            exit_fds: true,
        }
    }

    /// Fails when no further process may be started.
    pub fn check_room(&self) -> Result<(), ExecError> {
        if crate::agent::lock(&self.records).len() >= self.max_records {
            return Err(ExecError::Full(self.max_records));
        }
        Ok(())
    }

    /// Takes over a started child: feeds `input`, captures its pipes, reaps it.
    pub fn add(
        &self,
        spawned: Spawned,
        input: Option<Vec<u8>>,
        options: Options,
    ) -> io::Result<i64> {
        let Spawned {
            mut child,
            stdin,
            stdout,
            stderr,
        } = spawned;
        let pid = i64::from(child.id());
        let record = Arc::new(Record {
            state: Mutex::new(State {
                out_open: stdout.is_some(),
                err_open: stderr.is_some(),
                exit_on_main: options.exit_on_main,
                ..State::default()
            }),
            reaped: Condvar::new(),
            pid: i32::try_from(child.id()).unwrap_or(i32::MAX),
            group: options.group,
        });
        if let (Some(stdin), Some(input)) = (stdin, input) {
            spawn_thread(move || feed(stdin, &input))?;
        }
        let exit_fd = if self.exit_fds {
            qga_sys::exec::exit_fd(&child)
        } else {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        };
        match exit_fd {
            // One thread follows the streams and the exit.
            Ok(exited) => {
                let (rec, budget) = (Arc::clone(&record), Arc::clone(&self.budget));
                spawn_thread(move || {
                    qga_sys::exec::watch(stdout, stderr, exited, &mut |ev| match ev {
                        Event::Data(s, bytes) => keep(&rec, &budget, s == Stream::Err, bytes),
                        Event::Eof(s) => stream_closed(&rec, s == Stream::Err),
                        Event::Exited => reap(&mut child, &rec, pid),
                    });
                })?;
            }
            // No exit descriptor (a kernel before 5.3, a seccomp filter): a thread per
            // stream and one that waits.
            Err(_) => {
                for (pipe, is_err) in [(stdout, false), (stderr, true)] {
                    if let Some(pipe) = pipe {
                        let (rec, budget) = (Arc::clone(&record), Arc::clone(&self.budget));
                        spawn_thread(move || capture(pipe, &rec, &budget, is_err))?;
                    }
                }
                let rec = Arc::clone(&record);
                spawn_thread(move || {
                    let _ = child.wait();
                    // The reader threads get a moment to take in what the child wrote
                    // before it exited (exit-on-main reports the exit with the output so
                    // far; the pidfd path reads it first).
                    if options.exit_on_main {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    reap(&mut child, &rec, pid);
                })?;
            }
        }
        if let Some((after, signo)) = options.timeout {
            let rec = Arc::clone(&record);
            spawn_thread(move || time_limit(&rec, after, signo))?;
        }
        crate::agent::lock(&self.records).insert(pid, record);
        Ok(pid)
    }

    /// The status of `pid`; `None` if there is no such record. An exited record is removed
    /// and its output memory returned to the budget.
    pub fn status(&self, pid: i64) -> Option<Status> {
        let mut records = crate::agent::lock(&self.records);
        let record = records.get(&pid)?;
        let mut st = record.lock();
        let Some(status) = st.status.filter(|_| st.complete()) else {
            return Some(Status::Running);
        };
        let out = std::mem::take(&mut st.out);
        let err = std::mem::take(&mut st.err);
        st.released = true;
        drop(st);
        records.remove(&pid);
        self.budget
            .fetch_add(out.data.len() + err.data.len(), Ordering::Relaxed);
        Some(Status::Exited { status, out, err })
    }
}

impl ExecTable {
    /// The output of `pid` from the offsets given, at most `max` bytes per stream; `None` if
    /// there is no such record. The record stays (guest-exec-status collects it).
    pub fn output(&self, pid: i64, out_from: usize, err_from: usize, max: usize) -> Option<Output> {
        let record = Arc::clone(crate::agent::lock(&self.records).get(&pid)?);
        let st = record.lock();
        let slice = |c: &Capture, from: usize, open: bool| {
            let start = from.min(c.data.len());
            let end = start.saturating_add(max).min(c.data.len());
            Slice {
                data: c.data[start..end].to_vec(),
                next: end.max(from),
                truncated: c.truncated,
                open,
            }
        };
        Some(Output {
            status: st.status.filter(|_| st.complete()),
            timed_out: st.timed_out,
            out: slice(&st.out, out_from, st.out_open),
            err: slice(&st.err, err_from, st.err_open),
        })
    }

    /// Sends `signo` to `pid` (to its process group if it has one of its own), unless it
    /// has been reaped already: its pid may then belong to another process.
    pub fn signal(&self, pid: i64, signo: i64) -> Result<(), SignalError> {
        let record = Arc::clone(
            crate::agent::lock(&self.records)
                .get(&pid)
                .ok_or(SignalError::NoSuchPid(pid))?,
        );
        let st = record.lock();
        if st.status.is_some() {
            return Err(SignalError::Exited(pid));
        }
        let sig = i32::try_from(signo).unwrap_or(-1);
        qga_sys::exec::send_signal(record.pid, sig, record.group)
            .map_err(|e| SignalError::Os(signo, pid, crate::error::strerror(&e)))
    }
}

/// Waits until the child is reaped or `after` has passed; then sends `signo`.
fn time_limit(record: &Record, after: Duration, signo: i32) {
    let st = record.lock();
    let (mut st, _) = record
        .reaped
        .wait_timeout_while(st, after, |s| s.status.is_none())
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if st.status.is_some() {
        return;
    }
    st.timed_out = true;
    if let Err(e) = qga_sys::exec::send_signal(record.pid, signo, record.group) {
        log::warn!(
            "time limit of process {}: cannot send signal {signo}: {e}",
            record.pid
        );
    }
}

fn spawn_thread(f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .stack_size(THREAD_STACK)
        .spawn(f)
        .map(|_| ())
}

/// Writes the child's input, then closes its stdin (a child that exits early ends this).
fn feed(mut stdin: ChildStdin, input: &[u8]) {
    if let Err(e) = stdin.write_all(input) {
        log::debug!("guest-exec input not fully written: {e}");
    }
}

/// Waits for the child (at once, when it is known to have exited) and records its status.
fn reap(child: &mut std::process::Child, record: &Record, pid: i64) {
    let status = child.wait();
    log::debug!("guest-exec child {pid} finished: {status:?}");
    if let Ok(status) = status {
        record.lock().status = Some(status);
        record.reaped.notify_all();
    }
}

/// Reads a stream to its end, keeping what the per-stream cap and the global budget allow.
fn capture(mut pipe: io::PipeReader, record: &Record, budget: &AtomicUsize, is_err: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        keep(record, budget, is_err, &buf[..n]);
    }
    stream_closed(record, is_err);
}

/// Keeps what the per-stream cap and the global budget allow of output just read.
fn keep(record: &Record, budget: &AtomicUsize, is_err: bool, bytes: &[u8]) {
    let mut st = record.lock();
    if st.released {
        // Collected already (exit-on-main): the output is drained so the writer is not
        // blocked, and dropped.
        return;
    }
    let n = bytes.len();
    let cap = if is_err { &mut st.err } else { &mut st.out };
    let room = STREAM_CAP.saturating_sub(cap.data.len()).min(n);
    let granted = take_budget(budget, room);
    cap.data.extend_from_slice(&bytes[..granted]);
    if granted < n {
        cap.truncated = true;
    }
}

/// Marks a stream as ended.
fn stream_closed(record: &Record, is_err: bool) {
    let mut st = record.lock();
    if is_err {
        st.err_open = false;
    } else {
        st.out_open = false;
    }
}

fn take_budget(budget: &AtomicUsize, want: usize) -> usize {
    let mut granted = 0;
    let _ = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        granted = want.min(left);
        Some(left - granted)
    });
    granted
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a shell script through the table and waits for its status.
    fn run_script(
        table: &ExecTable,
        script: &str,
        options: Options,
    ) -> (ExitStatus, Capture, Capture) {
        let args = ["-c".to_string(), script.to_string()];
        let spawned = qga_sys::exec::spawn(&qga_sys::exec::Spawn {
            program: "/bin/sh",
            args: &args,
            env: None,
            stdin_pipe: false,
            stdout: qga_sys::exec::Sink::Pipe,
            stderr: qga_sys::exec::Sink::Pipe,
            merge_stderr: false,
        })
        .unwrap();
        let pid = table.add(spawned, None, options).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Status::Exited { status, out, err }) = table.status(pid) {
                return (status, out, err);
            }
            assert!(std::time::Instant::now() < deadline, "no exit");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn test_both_ways_of_following_a_child_agree() {
        let script = "echo out; echo err >&2; (sleep 0.2; echo late) & exit 5";
        let mut with_threads = ExecTable::new(8, 1 << 20);
        with_threads.exit_fds = false;
        for table in [ExecTable::new(8, 1 << 20), with_threads] {
            let (status, out, err) = run_script(&table, script, Options::default());
            assert_eq!(status.code(), Some(5));
            assert_eq!(
                (out.data.as_slice(), err.data.as_slice()),
                (&b"out\nlate\n"[..], &b"err\n"[..])
            );
            assert!(!out.truncated && !err.truncated);
            // A 2-byte budget: the rest is dropped and marked, the budget comes back.
            let small = ExecTable {
                budget: Arc::new(AtomicUsize::new(2)),
                ..table.clone()
            };
            let (_, out, _) = run_script(&small, "echo hello", Options::default());
            assert_eq!((out.data.as_slice(), out.truncated), (&b"he"[..], true));
            // exit-on-main: the exit at once, with what the shell wrote before it.
            let on_main = Options {
                exit_on_main: true,
                ..Options::default()
            };
            let t = std::time::Instant::now();
            let (status, out, _) = run_script(&table, "echo started; sleep 3 &", on_main);
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            assert_eq!(
                (status.code(), out.data.as_slice()),
                (Some(0), &b"started\n"[..])
            );
        }
    }

    #[test]
    fn test_take_budget_never_overdraws() {
        let b = AtomicUsize::new(10);
        assert_eq!(take_budget(&b, 4), 4);
        assert_eq!(take_budget(&b, 100), 6);
        assert_eq!(take_budget(&b, 1), 0);
    }
}
