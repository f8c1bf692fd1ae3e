//! guest-get-time, guest-get-host-name, guest-get-timezone, guest-get-osinfo,
//! guest-get-users.

use qga_schema::{
    GuestGetHostName, GuestGetOsinfo, GuestGetTime, GuestGetTimezone, GuestGetUsers, GuestHostName,
    GuestOsInfo, GuestTimezone, GuestUser, NoArgs,
};
use qga_sys::users::{USER_PROCESS, UtmpEntry};

use crate::agent::Agent;
use crate::error::CommandError;
use crate::registry::Handle;

impl Handle for GuestGetTime {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<i64, CommandError> {
        Ok(qga_sys::clock::realtime_ns())
    }
}

impl Handle for GuestGetHostName {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<GuestHostName, CommandError> {
        Ok(GuestHostName {
            host_name: qga_sys::host::hostname().unwrap_or_else(|| "localhost".to_string()),
        })
    }
}

impl Handle for GuestGetTimezone {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<GuestTimezone, CommandError> {
        let (zone, offset) = qga_sys::clock::local_timezone();
        Ok(GuestTimezone {
            zone,
            offset: i64::from(offset),
        })
    }
}

impl Handle for GuestGetOsinfo {
    fn handle(agent: &mut Agent, _args: NoArgs) -> Result<GuestOsInfo, CommandError> {
        let mut info = GuestOsInfo::default();
        if let Ok(u) = qga_sys::osinfo::uname() {
            info.kernel_release = Some(u.release);
            info.kernel_version = Some(u.version);
            info.machine = Some(u.machine);
        }
        if let Some(os) = qga_sys::osinfo::read_os_release(agent.os_release_override.as_deref()) {
            info.id = os.id;
            info.name = os.name;
            info.pretty_name = os.pretty_name;
            info.version = os.version;
            info.version_id = os.version_id;
            info.variant = os.variant;
            info.variant_id = os.variant_id;
        }
        Ok(info)
    }
}

/// One entry per user with a login session, in first-seen order, with the earliest login
/// time (seconds, microseconds as the fraction), as qemu-ga reports them.
pub(crate) fn logged_in_users(entries: &[UtmpEntry]) -> Vec<GuestUser> {
    let mut users: Vec<GuestUser> = Vec::new();
    for e in entries.iter().filter(|e| e.kind == USER_PROCESS) {
        let login_time = e.tv_sec as f64 + e.tv_usec as f64 / 1_000_000.0;
        match users.iter_mut().find(|u| u.user == e.user) {
            Some(u) => u.login_time = u.login_time.min(login_time),
            None => users.push(GuestUser {
                user: e.user.clone(),
                login_time,
                domain: None,
            }),
        }
    }
    users
}

impl Handle for GuestGetUsers {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Vec<GuestUser>, CommandError> {
        let entries =
            qga_sys::users::read_utmp().map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(logged_in_users(&entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: i16, user: &str, sec: i64, usec: i64) -> UtmpEntry {
        UtmpEntry {
            kind,
            user: user.to_string(),
            tv_sec: sec,
            tv_usec: usec,
        }
    }

    #[test]
    fn test_logged_in_users_dedup_earliest_first_seen_order() {
        let e = [
            entry(USER_PROCESS, "bob", 200, 0),
            entry(8, "dead", 1, 0),
            entry(USER_PROCESS, "alice", 150, 500_000),
            entry(USER_PROCESS, "bob", 100, 250_000),
        ];
        let users = logged_in_users(&e);
        assert_eq!(users.len(), 2);
        assert_eq!(
            (users[0].user.as_str(), users[0].login_time),
            ("bob", 100.25)
        );
        assert_eq!(
            (users[1].user.as_str(), users[1].login_time),
            ("alice", 150.5)
        );
    }
}
