//! Types of guest-file-* and guest-exec*.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Arguments of guest-file-open.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileOpenArgs {
    /// Path of the file in the guest.
    pub path: String,
    /// fopen(3)-style mode, `r` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Arguments of the commands that take only a handle (close, flush).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileHandleArgs {
    /// A handle from guest-file-open.
    pub handle: i64,
}

/// Arguments of guest-file-read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileReadArgs {
    /// A handle from guest-file-open.
    pub handle: i64,
    /// Bytes to read (default 4096, at most 48 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

/// The reply of guest-file-read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestFileRead {
    /// Bytes read.
    pub count: i64,
    /// The bytes, base64-encoded.
    #[serde(rename = "buf-b64")]
    pub buf_b64: String,
    /// Whether this read reached the end of the file.
    pub eof: bool,
}

/// Arguments of guest-file-write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileWriteArgs {
    /// A handle from guest-file-open.
    pub handle: i64,
    /// The bytes to write, base64-encoded.
    #[serde(rename = "buf-b64")]
    pub buf_b64: String,
    /// How many of the decoded bytes to write (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// The bytes of `buf-b64` when the agent decoded them as the request arrived (then
    /// `buf_b64` is empty). Never on the wire: a client leaves it `None`.
    #[serde(skip)]
    pub decoded: Option<Vec<u8>>,
}

/// The reply of guest-file-write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestFileWrite {
    /// Bytes written.
    pub count: i64,
    /// End-of-file indicator (always false for writes in practice).
    pub eof: bool,
}

/// Symbolic seek origins.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QgaSeek {
    /// From the start of the file.
    Set,
    /// From the current position.
    Cur,
    /// From the end of the file.
    End,
}

/// guest-file-seek's `whence`: an integer (0, 1, 2) or a symbolic name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestFileWhence {
    /// The integer form (only 0, 1, 2 are valid; others fail at run time).
    Value(i64),
    /// The symbolic form.
    Name(QgaSeek),
}

impl Serialize for GuestFileWhence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GuestFileWhence::Value(v) => s.serialize_i64(*v),
            GuestFileWhence::Name(n) => n.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for GuestFileWhence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GuestFileWhence;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("GuestFileWhence")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(GuestFileWhence::Value(v))
            }
            // The number branch of the alternate is an integer.
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(GuestFileWhence::Value)
                    .map_err(|_| E::invalid_type(de::Unexpected::Unsigned(v), &"integer"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Float(v), &"integer"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "set" => Ok(GuestFileWhence::Name(QgaSeek::Set)),
                    "cur" => Ok(GuestFileWhence::Name(QgaSeek::Cur)),
                    "end" => Ok(GuestFileWhence::Name(QgaSeek::End)),
                    _ => Err(E::unknown_variant(v, &["set", "cur", "end"])),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Arguments of guest-file-seek.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSeekArgs {
    /// A handle from guest-file-open.
    pub handle: i64,
    /// The offset, relative to `whence`.
    pub offset: i64,
    /// The origin.
    pub whence: GuestFileWhence,
}

/// The reply of guest-file-seek.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestFileSeek {
    /// The new position.
    pub position: i64,
    /// End-of-file indicator (false after a successful seek).
    pub eof: bool,
}

/// Which output streams guest-exec captures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuestExecCaptureOutputMode {
    /// Neither (both go to /dev/null).
    None,
    /// Standard output only.
    Stdout,
    /// Standard error only.
    Stderr,
    /// Both, separately.
    Separated,
    /// Both, standard error merged into standard output.
    Merged,
}

/// guest-exec's `capture-output`: a boolean (true = separated) or a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestExecCaptureOutput {
    /// The boolean form.
    Flag(bool),
    /// The mode form.
    Mode(GuestExecCaptureOutputMode),
}

impl GuestExecCaptureOutput {
    /// The mode this value means.
    pub fn mode(self) -> GuestExecCaptureOutputMode {
        match self {
            GuestExecCaptureOutput::Flag(true) => GuestExecCaptureOutputMode::Separated,
            GuestExecCaptureOutput::Flag(false) => GuestExecCaptureOutputMode::None,
            GuestExecCaptureOutput::Mode(m) => m,
        }
    }
}

impl Serialize for GuestExecCaptureOutput {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GuestExecCaptureOutput::Flag(b) => s.serialize_bool(*b),
            GuestExecCaptureOutput::Mode(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for GuestExecCaptureOutput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = GuestExecCaptureOutput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("GuestExecCaptureOutput")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(GuestExecCaptureOutput::Flag(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                use GuestExecCaptureOutputMode as M;
                let mode = match v {
                    "none" => M::None,
                    "stdout" => M::Stdout,
                    "stderr" => M::Stderr,
                    "separated" => M::Separated,
                    "merged" => M::Merged,
                    _ => {
                        return Err(E::unknown_variant(
                            v,
                            &["none", "stdout", "stderr", "separated", "merged"],
                        ));
                    }
                };
                Ok(GuestExecCaptureOutput::Mode(mode))
            }
        }
        d.deserialize_any(V)
    }
}

/// Arguments of guest-exec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
}

/// The reply of guest-exec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestExec {
    /// The process id, to pass to guest-exec-status.
    pub pid: i64,
}

/// Arguments of guest-exec-status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecStatusArgs {
    /// A pid from guest-exec.
    pub pid: i64,
}

/// The reply of guest-exec-status.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExecStatus {
    /// Whether the process has ended and its output is complete.
    pub exited: bool,
    /// Exit code, when it exited normally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exitcode: Option<i64>,
    /// Signal number, when a signal ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Captured standard output, base64-encoded (absent when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_data: Option<String>,
    /// Captured standard error, base64-encoded (absent when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_data: Option<String>,
    /// Whether standard output was cut at the capture limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_truncated: Option<bool>,
    /// Whether standard error was cut at the capture limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_truncated: Option<bool>,
}
