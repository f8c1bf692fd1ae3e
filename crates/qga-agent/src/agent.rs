//! The agent's state shared by all commands: configuration-derived settings, policy, the
//! frozen flag and the persistent state file.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::exec_table::ExecTable;
use crate::handles::Handles;
use crate::policy::Policy;
use crate::state::StateFile;

/// The QEMU version the agent reports by default, so that clients gating on it work.
pub const QEMU_COMPAT_VERSION: &str = "10.2.0";

/// Everything a command handler may read or change: one per connection. The settings are
/// copies, `delimit_response` belongs to the connection, and the state (handles, exec
/// records, the state file) is shared by all connections: those types are cheap handles
/// on one table each (an `Arc` inside), each behind its own lock.
/// `frozen` mirrors the freeze state, refreshed before every request.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The version reported by guest-info and `-V`.
    pub version: String,
    /// Allow/block filters.
    pub policy: Policy,
    /// Whether filesystems are frozen (only freeze-safe commands run).
    pub frozen: bool,
    /// Set by guest-sync-delimited: the next reply is preceded by 0xFF.
    pub delimit_response: bool,
    /// The persistent state (`qga.state`).
    pub state: StateFile,
    /// `QGA_OS_RELEASE`: an os-release file that replaces the system's.
    pub os_release_override: Option<PathBuf>,
    /// Open guest-file handles.
    pub files: Handles,
    /// Processes started by guest-exec.
    pub execs: ExecTable,
    /// `max-reply-size`: a longer reply is replaced by an error (0: no cap, as qemu-ga).
    pub max_reply: usize,
    /// Per-message limits of the framer (`max-token-size`, `max-token-count`, `max-nesting`).
    pub wire_limits: qga_proto::Limits,
}

impl Agent {
    /// The agent as a new connection starts with it: same settings and shared state, no
    /// pending 0xFF delimiter.
    pub fn for_connection(&self) -> Agent {
        Agent {
            delimit_response: false,
            ..self.clone()
        }
    }
}

/// Locks `m`, carrying on if a thread panicked while holding it (the data are still
/// consistent: every critical section here either completes or changes nothing).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
