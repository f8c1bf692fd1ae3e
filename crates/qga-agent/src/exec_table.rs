//! Processes started by guest-exec: capture threads, prompt reaping, and bounded records
//! and output memory.
//!
//! Each child gets a waiter thread (reaps it as soon as it exits, so no zombie stays even if
//! nobody asks) and one reader thread per captured stream. A record is complete ("exited")
//! when the child was reaped and every captured stream reached end of file, as in qemu-ga.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::process::{ChildStdin, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use qga_sys::exec::Spawned;

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
    open_streams: usize,
    out: Capture,
    err: Capture,
}

#[derive(Debug)]
struct Record {
    state: Mutex<State>,
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
    pub fn add(&self, spawned: Spawned, input: Option<Vec<u8>>) -> io::Result<i64> {
        let Spawned {
            mut child,
            stdin,
            stdout,
            stderr,
        } = spawned;
        let pid = i64::from(child.id());
        let streams = usize::from(stdout.is_some()) + usize::from(stderr.is_some());
        let record = Arc::new(Record {
            state: Mutex::new(State {
                open_streams: streams,
                ..State::default()
            }),
        });
        if let (Some(stdin), Some(input)) = (stdin, input) {
            spawn_thread(move || feed(stdin, &input))?;
        }
        for (pipe, is_err) in [(stdout, false), (stderr, true)] {
            if let Some(pipe) = pipe {
                let (rec, budget) = (Arc::clone(&record), Arc::clone(&self.budget));
                spawn_thread(move || capture(pipe, &rec, &budget, is_err))?;
            }
        }
        let rec = Arc::clone(&record);
        spawn_thread(move || {
            let status = child.wait();
            log::debug!("guest-exec child {pid} finished: {status:?}");
            if let Ok(status) = status {
                rec.lock().status = Some(status);
            }
        })?;
        crate::agent::lock(&self.records).insert(pid, record);
        Ok(pid)
    }

    /// The status of `pid`; `None` if there is no such record. An exited record is removed
    /// and its output memory returned to the budget.
    pub fn status(&self, pid: i64) -> Option<Status> {
        let mut records = crate::agent::lock(&self.records);
        let record = records.get(&pid)?;
        let mut st = record.lock();
        let Some(status) = st.status.filter(|_| st.open_streams == 0) else {
            return Some(Status::Running);
        };
        let out = std::mem::take(&mut st.out);
        let err = std::mem::take(&mut st.err);
        drop(st);
        records.remove(&pid);
        self.budget
            .fetch_add(out.data.len() + err.data.len(), Ordering::Relaxed);
        Some(Status::Exited { status, out, err })
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
        let mut st = record.lock();
        let cap = if is_err { &mut st.err } else { &mut st.out };
        let room = STREAM_CAP.saturating_sub(cap.data.len()).min(n);
        let granted = take_budget(budget, room);
        cap.data.extend_from_slice(&buf[..granted]);
        if granted < n {
            cap.truncated = true;
        }
    }
    record.lock().open_streams -= 1;
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

    #[test]
    fn test_take_budget_never_overdraws() {
        let b = AtomicUsize::new(10);
        assert_eq!(take_budget(&b, 4), 4);
        assert_eq!(take_budget(&b, 100), 6);
        assert_eq!(take_budget(&b, 1), 0);
    }
}
