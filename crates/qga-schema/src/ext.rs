//! Types of the extension commands (`__org.qga_` prefix, docs/extensions.md).

use serde::{Deserialize, Serialize};

use crate::files::GuestExecCaptureOutput;

/// Arguments of `__org.qga_exec`: guest-exec's, plus working directory, user, time limit
/// and when the exit counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ExecArgs {
    /// The program (searched in PATH).
    pub path: String,
    /// Its arguments (argv[1..]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<Vec<String>>,
    /// Its whole environment, `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Standard input, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_data: Option<String>,
    /// Which output to capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_output: Option<GuestExecCaptureOutput>,
    /// Working directory (default: the agent's, `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Account to run as: a name or a numeric uid (default: the agent's, root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Seconds after which the process group gets `kill-signal` (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Signal number sent when the time limit is reached (default 9, SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_signal: Option<i64>,
    /// Report the exit as soon as the started process has exited, even while a process it
    /// left behind still holds the output pipes (default false, as guest-exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_on_main: Option<bool>,
}

/// Arguments of `__org.qga_exec-output`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ExecOutputArgs {
    /// A pid from guest-exec or `__org.qga_exec`.
    pub pid: i64,
    /// Offset in the standard output to read from (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_offset: Option<i64>,
    /// Offset in the standard error to read from (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_offset: Option<i64>,
    /// Most bytes returned per stream (default and maximum 16 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
}

/// The reply of `__org.qga_exec-output`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ExecOutput {
    /// Whether the process has ended (and, unless `exit-on-main`, its output is complete).
    pub exited: bool,
    /// Exit code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exitcode: Option<i64>,
    /// Signal number, when a signal ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Whether the time limit was reached and the kill signal sent.
    pub timed_out: bool,
    /// Standard output from `out-offset`, base64-encoded (may be empty).
    pub out_data: String,
    /// Offset to ask for next (`out-offset` plus the bytes returned).
    pub out_offset: i64,
    /// Whether standard output reached its capture limit.
    pub out_truncated: bool,
    /// Whether the standard output pipe is still open.
    pub out_open: bool,
    /// Standard error from `err-offset`, base64-encoded (may be empty).
    pub err_data: String,
    /// Offset to ask for next.
    pub err_offset: i64,
    /// Whether standard error reached its capture limit.
    pub err_truncated: bool,
    /// Whether the standard error pipe is still open.
    pub err_open: bool,
}

/// Arguments of `__org.qga_exec-signal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct ExecSignalArgs {
    /// A pid from guest-exec or `__org.qga_exec`.
    pub pid: i64,
    /// The signal number (e.g. 15 for SIGTERM).
    pub signal: i64,
}

/// Arguments of `__org.qga_file-stat`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct FileStatArgs {
    /// The path.
    pub path: String,
    /// Describe what a symbolic link points to instead of the link (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_symlinks: Option<bool>,
}

/// Arguments of `__org.qga_file-list`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct FileListArgs {
    /// The directory.
    pub path: String,
}

/// One file as `__org.qga_file-stat` and `__org.qga_file-list` describe it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct FileStat {
    /// The last component of the path.
    pub name: String,
    /// `file`, `directory`, `symlink`, `block-device`, `char-device`, `fifo` or `socket`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes.
    pub size: i64,
    /// Permission bits with set-user-id, set-group-id and sticky (e.g. 493 = 0755).
    pub mode: i64,
    /// Owner's user id.
    pub uid: i64,
    /// Owner's group id.
    pub gid: i64,
    /// Owner's account name (absent when the uid has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Group name (absent when the gid has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Last access, nanoseconds since the epoch.
    pub atime: i64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime: i64,
    /// Last status change, nanoseconds since the epoch.
    pub ctime: i64,
    /// Hard links.
    pub nlink: i64,
    /// Inode number.
    pub inode: i64,
    /// Target of a symbolic link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<String>,
}
