//! guest-network-get-interfaces, guest-network-get-route.

use qga_schema::{
    GuestIpAddress, GuestIpAddressType, GuestNetworkGetInterfaces, GuestNetworkGetRoute,
    GuestNetworkInterface, GuestNetworkInterfaceStat, GuestNetworkRoute, NoArgs,
};
use qga_sys::net::{self, IfAddress, IfEntry, Route, RouteDetail};
use qga_sys::sysroot::SysRoot;

use crate::agent::Agent;
use crate::error::CommandError;
use crate::registry::Handle;

/// Builds guest-network-get-interfaces' reply from the getifaddrs entries: one interface per
/// name in first-seen order, the MAC looked up until one is found, addresses in order, and
/// the counters of `/proc/net/dev` for interfaces with an address.
pub(crate) fn interfaces(
    entries: &[IfEntry],
    mut mac: impl FnMut(&str) -> Option<[u8; 6]>,
    net_dev: &str,
) -> Vec<GuestNetworkInterface> {
    let mut out: Vec<GuestNetworkInterface> = Vec::new();
    for e in entries {
        let pos = match out.iter().position(|i| i.name == e.name) {
            Some(p) => p,
            None => {
                out.push(GuestNetworkInterface {
                    name: e.name.clone(),
                    hardware_address: None,
                    ip_addresses: None,
                    statistics: None,
                });
                out.len() - 1
            }
        };
        let info = &mut out[pos];
        if info.hardware_address.is_none() {
            info.hardware_address = mac(&e.name).map(|m| net::format_mac(&m));
        }
        let Some(addr) = e.address else { continue };
        let item = match addr {
            IfAddress::V4(a, prefix) => GuestIpAddress {
                ip_address: a.to_string(),
                ip_address_type: GuestIpAddressType::Ipv4,
                prefix: i64::from(prefix),
            },
            IfAddress::V6(a, prefix) => GuestIpAddress {
                ip_address: net::ipv6_to_string(&a),
                ip_address_type: GuestIpAddressType::Ipv6,
                prefix: i64::from(prefix),
            },
        };
        info.ip_addresses.get_or_insert_with(Vec::new).push(item);
        if info.statistics.is_none() {
            info.statistics =
                net::net_dev_stats(net_dev, &info.name).map(|s| GuestNetworkInterfaceStat {
                    rx_bytes: s.rx[0],
                    rx_packets: s.rx[1],
                    rx_errs: s.rx[2],
                    rx_dropped: s.rx[3],
                    tx_bytes: s.tx[0],
                    tx_packets: s.tx[1],
                    tx_errs: s.tx[2],
                    tx_dropped: s.tx[3],
                });
        }
    }
    out
}

impl Handle for GuestNetworkGetInterfaces {
    fn handle(
        _agent: &mut Agent,
        _args: NoArgs,
    ) -> Result<Vec<GuestNetworkInterface>, CommandError> {
        let entries = net::if_entries().map_err(|e| CommandError::Failed(e.to_string()))?;
        let query = net::HwAddrQuery::new().map_err(|e| CommandError::Failed(e.to_string()))?;
        let net_dev = net::read_net_dev(&SysRoot::host());
        Ok(interfaces(
            &entries,
            |name| query.mac_or_log(name),
            &net_dev,
        ))
    }
}

/// A route as guest-network-get-route reports it.
pub(crate) fn route_reply(r: Route) -> GuestNetworkRoute {
    let mut out = GuestNetworkRoute {
        iface: r.iface,
        destination: r.destination,
        metric: r.metric,
        flags: Some(r.flags),
        refcnt: Some(r.refcnt),
        r#use: Some(r.use_count),
        ..Default::default()
    };
    match r.detail {
        RouteDetail::V4 {
            gateway,
            mask,
            mtu,
            window,
            irtt,
        } => {
            out.gateway = Some(gateway);
            out.mask = Some(mask);
            out.mtu = Some(mtu);
            out.window = Some(window);
            out.irtt = Some(irtt);
            out.version = 4;
        }
        RouteDetail::V6 {
            dst_prefix,
            source,
            src_prefix,
            nexthop,
        } => {
            out.desprefixlen = Some(dst_prefix.to_string());
            out.source = source;
            out.srcprefixlen = Some(src_prefix.to_string());
            out.nexthop = nexthop;
            out.version = 6;
        }
    }
    out
}

impl Handle for GuestNetworkGetRoute {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Vec<GuestNetworkRoute>, CommandError> {
        let routes =
            net::read_routes(&SysRoot::host()).map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(routes.into_iter().map(route_reply).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn test_interfaces_grouping_and_statistics() {
        let entries = [
            IfEntry {
                name: "lo".into(),
                address: None,
            },
            IfEntry {
                name: "dummy0".into(),
                address: None,
            },
            IfEntry {
                name: "lo".into(),
                address: Some(IfAddress::V4(Ipv4Addr::LOCALHOST, 8)),
            },
            IfEntry {
                name: "lo".into(),
                address: Some(IfAddress::V6(Ipv6Addr::LOCALHOST, 128)),
            },
        ];
        let dev = "  lo: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n";
        let mut asked = Vec::new();
        let out = interfaces(
            &entries,
            |n| {
                asked.push(n.to_string());
                (n == "lo").then_some([0; 6])
            },
            dev,
        );
        // The MAC of dummy0 is asked again for each of its entries (here only one).
        assert_eq!(asked, ["lo", "dummy0"]);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].hardware_address.as_deref(),
            Some("00:00:00:00:00:00")
        );
        let ips = out[0].ip_addresses.as_ref().unwrap();
        assert_eq!(ips[0].ip_address, "127.0.0.1");
        assert_eq!(ips[1].ip_address, "::1");
        assert_eq!(ips[1].prefix, 128);
        assert_eq!(out[0].statistics.unwrap().tx_errs, 7);
        assert_eq!(out[1].hardware_address, None);
        assert_eq!(out[1].ip_addresses, None);
        assert_eq!(out[1].statistics, None);
    }

    #[test]
    fn test_route_reply_members() {
        let v6 = net::parse_ipv6_route(
            "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001 eth0\n",
        );
        let r = route_reply(v6.into_iter().next().unwrap());
        assert_eq!(r.version, 6);
        assert_eq!(r.desprefixlen.as_deref(), Some("64"));
        assert_eq!(r.gateway, None);
        assert_eq!(r.mtu, None);
        assert_eq!(r.refcnt, Some(2));
        let v4 = net::parse_route("h\neth0 00000000 010200C0 0003 0 0 0 00000000 0 0 0\n");
        let r = route_reply(v4.into_iter().next().unwrap());
        assert_eq!(r.version, 4);
        assert_eq!(r.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(r.source, None);
    }
}
