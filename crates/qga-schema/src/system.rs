//! Argument and return types of the system and hardware commands: network, routes, vCPUs,
//! memory blocks, CPU statistics, load, time, power, passwords and SSH keys.

use serde::{Deserialize, Serialize};

/// Arguments of guest-set-time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetTimeArgs {
    /// Nanoseconds since the epoch; without it the system time is set from the RTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}

/// Arguments of guest-shutdown.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShutdownArgs {
    /// `halt`, `powerdown` (the default) or `reboot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// The family of a [`GuestIpAddress`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum GuestIpAddressType {
    /// IP version 4.
    Ipv4,
    /// IP version 6.
    Ipv6,
}

/// One address of a network interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestIpAddress {
    /// The address in text form.
    pub ip_address: String,
    /// Its family.
    pub ip_address_type: GuestIpAddressType,
    /// The prefix length (bits set in the netmask).
    pub prefix: i64,
}

/// Traffic counters of a network interface, from `/proc/net/dev`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkInterfaceStat {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errs: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errs: u64,
    /// Packets dropped on transmit.
    pub tx_dropped: u64,
}

/// One network interface (guest-network-get-interfaces).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkInterface {
    /// The interface's name.
    pub name: String,
    /// The MAC address, lowercase `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_address: Option<String>,
    /// Its IPv4 and IPv6 addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_addresses: Option<Vec<GuestIpAddress>>,
    /// Its traffic counters (only for interfaces with an address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<GuestNetworkInterfaceStat>,
}

/// One route (guest-network-get-route). IPv4 routes carry gateway, mask, irtt, window and
/// mtu; IPv6 routes carry the prefix lengths, source and next hop.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkRoute {
    /// The outgoing interface.
    pub iface: String,
    /// The destination network or host.
    pub destination: String,
    /// The route's metric.
    pub metric: i64,
    /// The gateway (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The destination's netmask (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// Initial round-trip time (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irtt: Option<i64>,
    /// The kernel's `RTF_*` flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
    /// Reference count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refcnt: Option<i64>,
    /// Use count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#use: Option<i64>,
    /// TCP window (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    /// MTU (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Destination prefix length in decimal (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desprefixlen: Option<String>,
    /// Source address (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Source prefix length in decimal (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srcprefixlen: Option<String>,
    /// Next hop (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexthop: Option<String>,
    /// 4 or 6.
    pub version: i64,
}

/// A logical processor (guest-get-vcpus, guest-set-vcpus).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestLogicalProcessor {
    /// The CPU's number (`cpuN` in sysfs).
    pub logical_id: i64,
    /// Whether it is online.
    pub online: bool,
    /// Whether it can be taken offline (always filled in replies, ignored on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// Arguments of guest-set-vcpus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetVcpusArgs {
    /// The processors to change, processed in order.
    pub vcpus: Vec<GuestLogicalProcessor>,
}

/// A memory block (guest-get-memory-blocks, guest-set-memory-blocks).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestMemoryBlock {
    /// The block's number (`memoryN` in sysfs).
    pub phys_index: u64,
    /// Whether it is online.
    pub online: bool,
    /// Whether it can be taken offline (always filled in replies, ignored on input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// Arguments of guest-set-memory-blocks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct SetMemoryBlocksArgs {
    /// The blocks to change, processed in order.
    pub mem_blks: Vec<GuestMemoryBlock>,
}

/// The outcome for one memory block of guest-set-memory-blocks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum GuestMemoryBlockResponseType {
    /// Done (or already in the requested state).
    Success,
    /// No such block.
    NotFound,
    /// The guest cannot change this block.
    OperationNotSupported,
    /// The change failed; `error-code` has the errno.
    OperationFailed,
}

/// The reply for one memory block of guest-set-memory-blocks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct GuestMemoryBlockResponse {
    /// The block.
    pub phys_index: u64,
    /// What happened.
    pub response: GuestMemoryBlockResponseType,
    /// The errno of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
}

/// The reply of guest-get-memory-block-info.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestMemoryBlockInfo {
    /// The size of one memory block in bytes.
    pub size: u64,
}

/// Linux CPU times of one CPU in milliseconds (from `/proc/stat`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestLinuxCpuStats {
    /// The CPU's number.
    pub cpu: i64,
    /// Time in user mode.
    pub user: u64,
    /// Time in user mode at low priority.
    pub nice: u64,
    /// Time in kernel mode.
    pub system: u64,
    /// Idle time.
    pub idle: u64,
    /// Time waiting for I/O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iowait: Option<u64>,
    /// Time servicing interrupts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irq: Option<u64>,
    /// Time servicing softirqs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softirq: Option<u64>,
    /// Stolen time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal: Option<u64>,
    /// Time running guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<u64>,
    /// Time running niced guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guestnice: Option<u64>,
}

/// CPU statistics of one CPU: a union on `type`, of which Linux is the only member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum GuestCpuStats {
    /// Linux's `/proc/stat` times.
    Linux(GuestLinuxCpuStats),
}

/// The reply of guest-get-load.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct GuestLoadAverage {
    /// Load average over 1 minute.
    pub load1m: f64,
    /// Load average over 5 minutes.
    pub load5m: f64,
    /// Load average over 15 minutes.
    pub load15m: f64,
}

/// Arguments of guest-set-user-password.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetUserPasswordArgs {
    /// The account.
    pub username: String,
    /// The password, base64-encoded.
    pub password: String,
    /// Whether `password` is already hashed (crypt(3) form).
    pub crypted: bool,
}

/// Arguments of guest-ssh-get-authorized-keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SshUserArgs {
    /// The account.
    pub username: String,
}

/// Arguments of guest-ssh-add-authorized-keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SshAddKeysArgs {
    /// The account.
    pub username: String,
    /// Public keys in OpenSSH format, one line each.
    pub keys: Vec<String>,
    /// Replace the existing keys instead of adding to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
}

/// Arguments of guest-ssh-remove-authorized-keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SshRemoveKeysArgs {
    /// The account.
    pub username: String,
    /// The exact lines to remove.
    pub keys: Vec<String>,
}

/// The reply of guest-ssh-get-authorized-keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GuestAuthorizedKeys {
    /// The keys.
    pub keys: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cpu_stats_is_flat_with_type() {
        let s = GuestCpuStats::Linux(GuestLinuxCpuStats {
            cpu: 1,
            user: 2,
            iowait: Some(3),
            ..Default::default()
        });
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"type":"linux","cpu":1,"user":2,"nice":0,"system":0,"idle":0,"iowait":3}"#
        );
        assert_eq!(serde_json::from_str::<GuestCpuStats>(&text).unwrap(), s);
    }

    #[test]
    fn test_route_member_names() {
        let r = GuestNetworkRoute {
            iface: "eth0".into(),
            destination: "::".into(),
            r#use: Some(0),
            desprefixlen: Some("64".into()),
            version: 6,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"iface":"eth0","destination":"::","metric":0,"use":0,"desprefixlen":"64","version":6}"#
        );
    }

    #[test]
    fn test_memory_block_response_names() {
        let r = GuestMemoryBlockResponse {
            phys_index: 3,
            response: GuestMemoryBlockResponseType::OperationNotSupported,
            error_code: Some(2),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"phys-index":3,"response":"operation-not-supported","error-code":2}"#
        );
    }
}
