//! Command handlers, one file per domain. Handlers are OS-neutral front halves: OS work
//! goes through `qga_sys`, policy and logging stay in the dispatcher.

mod exec;
mod files;
pub(crate) mod freeze;
mod identity;
mod network;
mod power;
mod session;
mod storage;
mod system;
mod users_keys;
