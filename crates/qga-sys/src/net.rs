//! Network interfaces (getifaddrs, `SIOCGIFHWADDR`, `/proc/net/dev`) and routes
//! (`/proc/net/route`, `/proc/net/ipv6_route`) for guest-network-get-interfaces and
//! guest-network-get-route.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::sysroot::{SysRoot, strerror};

/// An address of an interface, as getifaddrs lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfAddress {
    /// IPv4 address and prefix length (0 without a netmask).
    V4(Ipv4Addr, u32),
    /// IPv6 address and prefix length.
    V6(Ipv6Addr, u32),
}

/// One getifaddrs entry: the interface's name and its IP address, if it has one (link
/// entries have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfEntry {
    /// The interface's name (an alias label such as `eth0:1` for IPv4 aliases).
    pub name: String,
    /// The address of this entry.
    pub address: Option<IfAddress>,
}

/// Why the interface list failed; the texts are qemu-ga's.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// getifaddrs failed.
    #[error("getifaddrs failed: {}", strerror(.0))]
    GetIfAddrs(#[source] io::Error),
    /// The socket for `SIOCGIFHWADDR` could not be made.
    #[error("failed to create socket: {}", strerror(.0))]
    Socket(#[source] io::Error),
    /// A route file could not be opened.
    #[error("open(\"{path}\"): {}", strerror(source))]
    Open {
        /// The file.
        path: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// The getifaddrs list in its order (link entries first, then IPv4, then IPv6).
pub fn if_entries() -> Result<Vec<IfEntry>, NetError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| NetError::GetIfAddrs(e.into()))?;
    let mut out = Vec::new();
    for ifa in addrs {
        let netmask = ifa.netmask;
        let address = ifa.address.and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                let prefix = netmask
                    .and_then(|m| m.as_sockaddr_in().map(|m| m.ip().to_bits().count_ones()))
                    .unwrap_or(0);
                Some(IfAddress::V4(v4.ip(), prefix))
            } else {
                a.as_sockaddr_in6().map(|v6| {
                    let prefix = netmask
                        .and_then(|m| m.as_sockaddr_in6().map(|m| m.ip().to_bits().count_ones()))
                        .unwrap_or(0);
                    IfAddress::V6(v6.ip(), prefix)
                })
            }
        });
        out.push(IfEntry {
            name: ifa.interface_name,
            address,
        });
    }
    Ok(out)
}

/// A socket for the `SIOCGIFHWADDR` queries of one listing.
#[derive(Debug)]
pub struct HwAddrQuery {
    sock: OwnedFd,
}

impl HwAddrQuery {
    /// Opens the socket (`AF_INET`, `SOCK_STREAM`), as qemu-ga does.
    pub fn new() -> Result<Self, NetError> {
        // SAFETY: socket has no memory arguments; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(NetError::Socket(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { sock })
    }

    /// The first six bytes of the interface's hardware address; `Err` when the kernel has
    /// none for it (the caller logs and goes on, as qemu-ga does).
    pub fn mac(&self, name: &str) -> io::Result<[u8; 6]> {
        // SAFETY: `ifreq` is plain data (a name array and a union of plain data).
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        // SAFETY: the fd is an open socket and `req` a valid, NUL-terminated ifreq that the
        // kernel fills in.
        let rc = unsafe { libc::ioctl(self.sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: after a successful SIOCGIFHWADDR the union holds `ifru_hwaddr`.
        let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
        let mut mac = [0u8; 6];
        for (dst, src) in mac.iter_mut().zip(data.iter()) {
            *dst = *src as u8;
        }
        Ok(mac)
    }
}

impl HwAddrQuery {
    /// [`Self::mac`], logging a failure as qemu-ga does: at debug level when the interface
    /// has no hardware address (`EADDRNOTAVAIL`), as a warning otherwise.
    pub fn mac_or_log(&self, name: &str) -> Option<[u8; 6]> {
        match self.mac(name) {
            Ok(m) => Some(m),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                log::debug!("failed to get MAC address of {name}: {}", strerror(&e));
                None
            }
            Err(e) => {
                log::warn!("failed to get MAC address of {name}: {}", strerror(&e));
                None
            }
        }
    }
}

/// Formats a MAC address as qemu-ga: lowercase, colon-separated.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Formats an IPv6 address exactly as glibc's `inet_ntop` (which differs from Rust's
/// `Display` for IPv4-compatible addresses such as `::1.2.3.4`).
pub fn ipv6_to_string(addr: &Ipv6Addr) -> String {
    let w = addr.segments();
    // The longest run of zero words (first one on ties), if at least two long.
    let (mut best, mut cur) = ((0usize, 0usize), (0usize, 0usize));
    for (i, word) in w.iter().enumerate() {
        if *word == 0 {
            if cur.1 == 0 {
                cur.0 = i;
            }
            cur.1 += 1;
            if cur.1 > best.1 {
                best = cur;
            }
        } else {
            cur.1 = 0;
        }
    }
    let run = (best.1 >= 2).then_some(best);
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if let Some((start, len)) = run
            && i == start
        {
            if i == 0 {
                out.push(':');
            }
            out.push(':');
            i += len;
            continue;
        }
        if i == 6 && run.is_some_and(|(s, l)| s == 0 && (l == 6 || (l == 5 && w[5] == 0xffff))) {
            let [a, b] = w[6].to_be_bytes();
            let [c, d] = w[7].to_be_bytes();
            out.push_str(&format!("{a}.{b}.{c}.{d}"));
            break;
        }
        out.push_str(&format!("{:x}", w[i]));
        if i < 7 {
            out.push(':');
        }
        i += 1;
    }
    out
}

/// The eight counters of one `/proc/net/dev` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetDevStats {
    /// rx bytes, packets, errs, drop.
    pub rx: [u64; 4],
    /// tx bytes, packets, errs, drop.
    pub tx: [u64; 4],
}

/// The counters of interface `name` in a `/proc/net/dev` text: the first line whose text
/// before its first `:` (leading blanks removed) is exactly `name` and that has 16 numbers.
pub fn net_dev_stats(text: &str, name: &str) -> Option<NetDevStats> {
    text.lines().find_map(|line| {
        let (iface, rest) = line.trim_start().split_once(':')?;
        if iface != name {
            return None;
        }
        let nums: Vec<u64> = rest
            .split_ascii_whitespace()
            .take(16)
            .map(|t| t.parse::<u64>().ok())
            .collect::<Option<_>>()?;
        (nums.len() == 16).then(|| NetDevStats {
            rx: [nums[0], nums[1], nums[2], nums[3]],
            tx: [nums[8], nums[9], nums[10], nums[11]],
        })
    })
}

/// Reads `/proc/net/dev` (empty text if it cannot be read: no statistics then).
pub fn read_net_dev(root: &SysRoot) -> String {
    root.read_to_string("/proc/net/dev").unwrap_or_default()
}

/// One route, members as guest-network-get-route has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// Outgoing interface.
    pub iface: String,
    /// Destination address.
    pub destination: String,
    /// Metric (unsigned, not sign-extended as qemu-ga does for IPv6).
    pub metric: i64,
    /// `RTF_*` flags.
    pub flags: u64,
    /// Reference count.
    pub refcnt: i64,
    /// Use count.
    pub use_count: i64,
    /// The family-specific members.
    pub detail: RouteDetail,
}

/// The members only one family has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDetail {
    /// `/proc/net/route`.
    V4 {
        /// Gateway.
        gateway: String,
        /// Netmask.
        mask: String,
        /// MTU.
        mtu: i64,
        /// Window.
        window: i64,
        /// Initial RTT.
        irtt: i64,
    },
    /// `/proc/net/ipv6_route`.
    V6 {
        /// Destination prefix length.
        dst_prefix: u32,
        /// Source address (`None` if malformed).
        source: Option<String>,
        /// Source prefix length.
        src_prefix: u32,
        /// Next hop (`None` if malformed).
        nexthop: Option<String>,
    },
}

impl Default for RouteDetail {
    fn default() -> Self {
        Self::V4 {
            gateway: String::new(),
            mask: String::new(),
            mtu: 0,
            window: 0,
            irtt: 0,
        }
    }
}

fn hex_u32(token: &str) -> Option<u32> {
    let t = token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
        .unwrap_or(token);
    if t.is_empty() || t.len() > 8 {
        return None;
    }
    u32::from_str_radix(t, 16).ok()
}

/// An IPv4 address stored as `/proc/net/route` prints it (the in-memory `__be32` as a hex
/// number of this machine's byte order).
fn route_v4(token: &str) -> Option<String> {
    hex_u32(token).map(|v| Ipv4Addr::from(v.to_ne_bytes()).to_string())
}

fn route_v6(token: &str) -> Option<String> {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(token, 16)
        .ok()
        .map(|v| ipv6_to_string(&Ipv6Addr::from(v)))
}

/// Parses `/proc/net/route` (its first line is the header); malformed lines are skipped.
pub fn parse_route(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let t: Vec<&str> = line.split_ascii_whitespace().collect();
            if t.len() < 11 {
                return None;
            }
            let dec = |s: &str| s.parse::<i64>().ok();
            Some(Route {
                iface: t[0].to_string(),
                destination: route_v4(t[1])?,
                metric: dec(t[6])?,
                flags: u64::from(hex_u32(t[3])?),
                refcnt: dec(t[4])?,
                use_count: dec(t[5])?,
                detail: RouteDetail::V4 {
                    gateway: route_v4(t[2])?,
                    mask: route_v4(t[7])?,
                    mtu: dec(t[8])?,
                    window: dec(t[9])?,
                    irtt: dec(t[10])?,
                },
            })
        })
        .collect()
}

/// Parses `/proc/net/ipv6_route`; malformed lines are skipped. Metric, reference count,
/// use count and flags are unsigned 32-bit numbers there and are reported as such.
pub fn parse_ipv6_route(text: &str) -> Vec<Route> {
    text.lines()
        .filter_map(|line| {
            let t: Vec<&str> = line.split_ascii_whitespace().collect();
            if t.len() < 10 {
                return None;
            }
            let num = |s: &str| hex_u32(s).map(i64::from);
            Some(Route {
                iface: t[9].to_string(),
                destination: route_v6(t[0])?,
                metric: num(t[5])?,
                flags: u64::from(hex_u32(t[8])?),
                refcnt: num(t[6])?,
                use_count: num(t[7])?,
                detail: RouteDetail::V6 {
                    dst_prefix: hex_u32(t[1])?,
                    source: route_v6(t[2]),
                    src_prefix: hex_u32(t[3])?,
                    nexthop: route_v6(t[4]),
                },
            })
        })
        .collect()
}

/// Both route tables. A missing `/proc/net/ipv6_route` (IPv6 disabled) just gives no IPv6
/// routes; qemu-ga fails the whole command then.
pub fn read_routes(root: &SysRoot) -> Result<Vec<Route>, NetError> {
    let v4 = root
        .read_to_string("/proc/net/route")
        .map_err(|source| NetError::Open {
            path: "/proc/net/route",
            source,
        })?;
    let mut routes = parse_route(&v4);
    match root.read_to_string("/proc/net/ipv6_route") {
        Ok(v6) => routes.extend(parse_ipv6_route(&v6)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(NetError::Open {
                path: "/proc/net/ipv6_route",
                source,
            });
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> SysRoot {
        SysRoot::at(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/root"))
    }

    #[test]
    fn test_ipv6_to_string_like_inet_ntop() {
        for (addr, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("fe80::fc:ff:fe00:1", "fe80::fc:ff:fe00:1"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
            ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
            ("1:0:0:2:0:0:3:4", "1::2:0:0:3:4"),
            ("fd00::", "fd00::"),
            ("ff00::", "ff00::"),
        ] {
            let a: Ipv6Addr = addr.parse().unwrap();
            assert_eq!(ipv6_to_string(&a), want, "{addr}");
        }
    }

    #[test]
    fn test_format_mac() {
        assert_eq!(
            format_mac(&[0x02, 0xfc, 0, 0, 0, 0xAB]),
            "02:fc:00:00:00:ab"
        );
    }

    #[test]
    fn test_net_dev_stats() {
        let text = fixture().read_to_string("/proc/net/dev").unwrap();
        assert_eq!(
            net_dev_stats(&text, "eth0"),
            Some(NetDevStats {
                rx: [100398218, 4673, 1, 2],
                tx: [349910, 3789, 3, 4]
            })
        );
        assert_eq!(net_dev_stats(&text, "lo").unwrap().rx[0], 3193);
        // A name with no space after the colon (long names) still matches.
        assert_eq!(net_dev_stats(&text, "verylongname0").unwrap().tx[0], 8);
        // Prefixes, headers, aliases and short lines do not.
        assert_eq!(net_dev_stats(&text, "eth"), None);
        assert_eq!(net_dev_stats(&text, "face |bytes"), None);
        assert_eq!(net_dev_stats(&text, "eth0:1"), None);
        assert_eq!(net_dev_stats(&text, "short0"), None);
        assert_eq!(net_dev_stats("", "lo"), None);
    }

    #[test]
    fn test_parse_route_fixture() {
        let text = fixture().read_to_string("/proc/net/route").unwrap();
        let r = parse_route(&text);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0].destination, "0.0.0.0");
        assert_eq!(r[0].flags, 3);
        assert_eq!(
            r[0].detail,
            RouteDetail::V4 {
                gateway: "192.0.2.1".into(),
                mask: "0.0.0.0".into(),
                mtu: 0,
                window: 0,
                irtt: 0
            }
        );
        assert_eq!(r[1].destination, "192.0.2.0");
        // A metric printed as -1 by the kernel stays -1; large unsigned values stay positive.
        assert_eq!(r[2].metric, -1);
        assert_eq!(
            r[2].detail,
            RouteDetail::V4 {
                gateway: "0.0.0.0".into(),
                mask: "255.255.255.255".into(),
                mtu: 1500,
                window: 4294967295,
                irtt: 0
            }
        );
    }

    #[test]
    fn test_parse_route_malformed() {
        let r = parse_route(
            "Iface\tDestination\n\
             eth0 zz 00000000 0001 0 0 0 00000000 0 0 0\n\
             eth0 00000000 00000000 0001 0 0\n\
             \n\
             eth0 000200C0 00000000 0001 0 0 x 00FFFFFF 0 0 0\n",
        );
        assert!(r.is_empty(), "{r:?}");
        assert!(parse_route("").is_empty());
    }

    #[test]
    fn test_parse_ipv6_route_no_sign_extension() {
        let text = fixture().read_to_string("/proc/net/ipv6_route").unwrap();
        let r = parse_ipv6_route(&text);
        assert_eq!(r.len(), 3, "{r:?}");
        assert_eq!(r[0].destination, "fd00::");
        assert_eq!(r[0].metric, 256);
        assert_eq!(
            r[0].detail,
            RouteDetail::V6 {
                dst_prefix: 64,
                source: Some("::".into()),
                src_prefix: 0,
                nexthop: Some("::".into())
            }
        );
        // qemu-ga: flags 18446744071564165121, metric -1.
        assert_eq!(r[1].flags, 0x8020_0001);
        assert_eq!(r[2].metric, 0xffff_ffff);
        assert_eq!(r[2].flags, 0x0020_0200);
        assert_eq!(r[2].iface, "lo");
    }

    #[test]
    fn test_parse_ipv6_route_malformed() {
        let r = parse_ipv6_route(
            "fe8000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n\
             fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000\n\
             fe800000000000000000000000000000 40 zz000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n",
        );
        // Short destination and missing iface are skipped; a bad source is left out.
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].detail,
            RouteDetail::V6 {
                dst_prefix: 64,
                source: None,
                src_prefix: 0,
                nexthop: Some("::".into())
            }
        );
    }

    #[test]
    fn test_read_routes_without_ipv6() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::at(dir.path());
        assert_eq!(
            read_routes(&root).unwrap_err().to_string(),
            "open(\"/proc/net/route\"): No such file or directory"
        );
        std::fs::create_dir_all(dir.path().join("proc/net")).unwrap();
        std::fs::write(
            dir.path().join("proc/net/route"),
            "Iface\nlo 0000007F 00000000 0001 0 0 0 000000FF 0 0 0\n",
        )
        .unwrap();
        let r = read_routes(&root).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].destination, "127.0.0.0");
        assert_eq!(read_routes(&fixture()).unwrap().len(), 6);
    }

    #[test]
    fn test_live_interfaces_have_loopback() {
        let entries = if_entries().unwrap();
        assert!(entries.iter().any(|e| e.name == "lo"));
        let q = HwAddrQuery::new().unwrap();
        assert_eq!(q.mac("lo").unwrap(), [0; 6]);
        assert!(q.mac("nosuchif0").is_err());
    }
}
