//! Platform layer of qga: every OS call and every `unsafe` block of the agent lives here.
//!
//! Readers of `/etc` and utmp are split into a pure parser (`&str`/`&[u8]` to a value, unit
//! tested on fixtures) and a thin function that reads the real file. Linux only for now.
//!
//! Signals, `fork` and the environment are process-wide: functions that touch them say so in
//! their docs, and the ones that need a single-threaded process check it instead of trusting
//! the caller.

#![deny(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!("qga-sys supports Linux only for now");

pub mod blockdev;
pub mod chan;
pub mod clock;
pub mod cpu;
pub mod diskstats;
mod error;
pub mod exec;
pub mod file;
pub mod fileinfo;
pub mod freeze;
pub mod helper;
pub mod host;
pub mod hotplug;
pub mod keyfile;
pub mod memory;
pub mod memory_tuning;
pub mod mounts;
pub mod net;
pub mod nvme;
pub mod osinfo;
pub mod password;
pub mod power;
pub mod process;
pub mod rtc;
pub mod ssh;
pub mod sysroot;
pub mod users;

pub use error::SysError;
