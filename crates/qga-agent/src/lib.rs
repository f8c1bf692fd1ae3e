//! qga: a drop-in replacement for QEMU's guest agent `qemu-ga`.
//!
//! Layout: `config` (command line and `qemu-ga.conf`), `transport` (channels), `session`
//! (one byte stream), `dispatch` (envelope, policy, audit, replies), `registry` (the one
//! command table), `policy`, `commands/*` (handlers), `state` (`qga.state`), `logging`.
#![forbid(unsafe_code)]

pub mod agent;
mod commands;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod exec_table;
pub mod handles;
mod hotplug;
pub mod logging;
pub mod policy;
pub mod registry;
pub mod run;
pub mod session;
pub mod state;
pub mod transport;
