//! Argument and return types of the QGA commands.

use serde::{Deserialize, Serialize};

/// Arguments of a command that takes none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NoArgs {}

/// An empty return object (`{}`), for commands without a return value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Empty {}

/// Arguments of guest-sync and guest-sync-delimited.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncArgs {
    /// The value to echo.
    pub id: i64,
}

/// One command in guest-info.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestAgentCommandInfo {
    /// The command's name.
    pub name: String,
    /// Whether policy currently lets it run.
    pub enabled: bool,
    /// Whether it replies on success.
    pub success_response: bool,
}

/// The reply of guest-info.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestAgentInfo {
    /// The agent's version (QEMU-compatible by default).
    pub version: String,
    /// Every command the agent has.
    pub supported_commands: Vec<GuestAgentCommandInfo>,
}

/// The reply of guest-get-host-name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestHostName {
    /// The host name.
    pub host_name: String,
}

/// A logged-in user (guest-get-users).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestUser {
    /// The user name.
    pub user: String,
    /// Earliest login time, seconds since the epoch with microseconds as a fraction.
    pub login_time: f64,
    /// The logon domain (Windows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// The reply of guest-get-timezone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestTimezone {
    /// The zone's abbreviation, e.g. `UTC` or `CET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Seconds east of UTC.
    pub offset: i64,
}

/// The reply of guest-get-osinfo.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestOsInfo {
    /// uname's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    /// uname's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// uname's machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// os-release `ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// os-release `NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// os-release `PRETTY_NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// os-release `VERSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// os-release `VERSION_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// os-release `VARIANT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// os-release `VARIANT_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_guest_info_member_names() {
        let info = GuestAgentInfo {
            version: "10.2.0".into(),
            supported_commands: vec![GuestAgentCommandInfo {
                name: "guest-ping".into(),
                enabled: true,
                success_response: true,
            }],
        };
        let v = serde_json::to_string(&info).unwrap();
        assert_eq!(
            v,
            r#"{"version":"10.2.0","supported_commands":[{"name":"guest-ping","enabled":true,"success-response":true}]}"#
        );
    }

    #[test]
    fn test_osinfo_omits_absent_members() {
        let os = GuestOsInfo {
            machine: Some("x86_64".into()),
            pretty_name: Some("D".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&os).unwrap(),
            r#"{"machine":"x86_64","pretty-name":"D"}"#
        );
    }
}
