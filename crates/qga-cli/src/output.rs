//! Human-readable forms of replies.

use qga_schema as s;

/// Time in nanoseconds as seconds since the epoch and UTC date.
pub(crate) fn time(ns: i64) -> String {
    format!("{} UTC ({ns} ns)", date(ns))
}

/// Time in nanoseconds as a UTC date, `YYYY-MM-DD HH:MM:SS`.
pub(crate) fn date(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Round-trip times of `qga ping --count N`, in microseconds (nearest-rank percentiles).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PingStats {
    /// Pings answered.
    pub count: usize,
    /// Fastest.
    pub min_us: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
}

impl PingStats {
    /// The statistics of `times` (sorted in place).
    pub(crate) fn of(times: &mut [std::time::Duration]) -> PingStats {
        times.sort_unstable();
        let us = |d: Option<&std::time::Duration>| {
            d.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        };
        // The smallest time that at least p% of the pings did not exceed.
        let rank = |p: usize| us(times.get((times.len() * p).div_ceil(100).saturating_sub(1)));
        PingStats {
            count: times.len(),
            min_us: us(times.first()),
            p50_us: rank(50),
            p99_us: rank(99),
            max_us: us(times.last()),
        }
    }
}

/// `50 pings: min 0.041 ms, p50 0.052 ms, p99 0.210 ms, max 0.300 ms`.
pub(crate) fn ping_stats(p: &PingStats) -> String {
    let ms = |us: u64| format!("{}.{:03} ms", us / 1000, us % 1000);
    format!(
        "{} pings: min {}, p50 {}, p99 {}, max {}",
        p.count,
        ms(p.min_us),
        ms(p.p50_us),
        ms(p.p99_us),
        ms(p.max_us)
    )
}

/// A simple aligned table.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

pub(crate) fn info(i: &s::GuestAgentInfo) -> String {
    let enabled = i.supported_commands.iter().filter(|c| c.enabled).count();
    let mut names: Vec<String> = i
        .supported_commands
        .iter()
        .map(|c| {
            if c.enabled {
                c.name.clone()
            } else {
                format!("{} (disabled)", c.name)
            }
        })
        .collect();
    names.sort();
    format!(
        "version {}\n{} commands, {enabled} enabled:\n  {}",
        i.version,
        i.supported_commands.len(),
        names.join("\n  ")
    )
}

pub(crate) fn osinfo(o: &s::GuestOsInfo) -> String {
    let f = |v: &Option<String>| v.clone().unwrap_or_default();
    table(
        &["field", "value"],
        &[
            vec!["name".into(), f(&o.pretty_name)],
            vec!["id".into(), f(&o.id)],
            vec!["version".into(), f(&o.version_id)],
            vec!["kernel".into(), f(&o.kernel_release)],
            vec!["machine".into(), f(&o.machine)],
        ],
    )
}

pub(crate) fn users(u: &[s::GuestUser]) -> String {
    let rows: Vec<Vec<String>> = u
        .iter()
        .map(|u| vec![u.user.clone(), time((u.login_time * 1e9) as i64)])
        .collect();
    table(&["user", "login"], &rows)
}

pub(crate) fn interfaces(list: &[s::GuestNetworkInterface]) -> String {
    let mut rows = Vec::new();
    for i in list {
        let addrs: Vec<String> = i
            .ip_addresses
            .iter()
            .flatten()
            .map(|a| format!("{}/{}", a.ip_address, a.prefix))
            .collect();
        rows.push(vec![
            i.name.clone(),
            i.hardware_address.clone().unwrap_or_default(),
            addrs.join(" "),
        ]);
    }
    table(&["interface", "mac", "addresses"], &rows)
}

pub(crate) fn routes(list: &[s::GuestNetworkRoute]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                format!("v{}", r.version),
                r.destination.clone(),
                r.gateway.clone().unwrap_or_default(),
                r.iface.clone(),
            ]
        })
        .collect();
    table(&["ip", "destination", "gateway", "interface"], &rows)
}

pub(crate) fn vcpus(list: &[s::GuestLogicalProcessor]) -> String {
    let mut list = list.to_vec();
    list.sort_by_key(|v| v.logical_id);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| {
            let can = yes_no(v.can_offline);
            vec![
                v.logical_id.to_string(),
                if v.online {
                    "online".into()
                } else {
                    "offline".into()
                },
                can,
            ]
        })
        .collect();
    table(&["cpu", "state", "can-offline"], &rows)
}

fn mb(v: Option<u64>) -> String {
    v.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6))
}

pub(crate) fn fsinfo(list: &[s::GuestFilesystemInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            let disks: Vec<String> = f
                .disk
                .iter()
                .map(|d| d.dev.clone().unwrap_or_else(|| format!("{:?}", d.bus_type)))
                .collect();
            vec![
                f.mountpoint.clone(),
                f.fs_type.clone(),
                f.name.clone(),
                mb(f.used_bytes),
                mb(f.total_bytes),
                disks.join(" "),
            ]
        })
        .collect();
    table(
        &[
            "mountpoint",
            "type",
            "device",
            "used MB",
            "total MB",
            "disks",
        ],
        &rows,
    )
}

pub(crate) fn trim(t: &s::GuestFilesystemTrimResponse) -> String {
    let rows: Vec<Vec<String>> = t
        .paths
        .iter()
        .map(|p| {
            let result = match (&p.error, p.trimmed) {
                (Some(e), _) => e.clone(),
                (None, Some(n)) => format!("{:.1} MB trimmed", n as f64 / 1e6),
                (None, None) => "-".into(),
            };
            vec![p.path.clone(), result]
        })
        .collect();
    table(&["path", "result"], &rows)
}

/// Yes, no or unknown.
fn yes_no(v: Option<bool>) -> String {
    match v {
        Some(true) => "yes".into(),
        Some(false) => "no".into(),
        None => "-".into(),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

pub(crate) fn cpustats(list: &[s::GuestCpuStats]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| match c {
            s::GuestCpuStats::Linux(l) => vec![
                l.cpu.to_string(),
                l.user.to_string(),
                l.nice.to_string(),
                l.system.to_string(),
                l.idle.to_string(),
                opt(l.iowait),
                opt(l.irq),
                opt(l.softirq),
                opt(l.steal),
            ],
        })
        .collect();
    table(
        &[
            "cpu", "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
        ],
        &rows,
    )
}

pub(crate) fn memory_blocks(list: &[s::GuestMemoryBlock]) -> String {
    let mut list = list.to_vec();
    list.sort_by_key(|m| m.phys_index);
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.phys_index.to_string(),
                if m.online { "online" } else { "offline" }.into(),
                yes_no(m.can_offline),
            ]
        })
        .collect();
    table(&["block", "state", "can-offline"], &rows)
}

pub(crate) fn memory_block_responses(list: &[s::GuestMemoryBlockResponse]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            let response = serde_json::to_value(r.response)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            vec![r.phys_index.to_string(), response, opt(r.error_code)]
        })
        .collect();
    table(&["block", "result", "errno"], &rows)
}

pub(crate) fn disks(list: &[s::GuestDiskInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let bus = d.address.as_ref().map(|a| {
                serde_json::to_value(a.bus_type)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            });
            vec![
                d.name.clone(),
                if d.partition { "partition" } else { "disk" }.into(),
                d.dependencies.as_deref().unwrap_or_default().join(" "),
                d.alias.clone().unwrap_or_default(),
                bus.unwrap_or_default(),
                d.address
                    .as_ref()
                    .and_then(|a| a.serial.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["name", "kind", "depends on", "alias", "bus", "serial"],
        &rows,
    )
}

pub(crate) fn diskstats(list: &[s::GuestDiskStatsInfo]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            let st = &d.stats;
            vec![
                d.name.clone(),
                format!("{}:{}", d.major, d.minor),
                opt(st.read_ios),
                opt(st.read_sectors),
                opt(st.write_ios),
                opt(st.write_sectors),
                opt(st.ios_pgr),
            ]
        })
        .collect();
    table(
        &[
            "name",
            "dev",
            "reads",
            "read sectors",
            "writes",
            "write sectors",
            "in flight",
        ],
        &rows,
    )
}

pub(crate) fn exec_status(st: &s::files::GuestExecStatus) -> String {
    if !st.exited {
        return "running".into();
    }
    let mut out = match (st.exitcode, st.signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "exited".into(),
    };
    for (name, data) in [("stdout", &st.out_data), ("stderr", &st.err_data)] {
        if let Some(text) = data.as_deref().and_then(|d| qga_proto::b64::decode(d).ok()) {
            out.push_str(&format!(
                "\n--- {name}\n{}",
                String::from_utf8_lossy(&text).trim_end_matches('\n')
            ));
        }
    }
    out
}

/// A file name for a terminal: control characters (a newline in a name) and backslashes
/// escaped, so one entry stays on one line.
pub(crate) fn shown_name(name: &str) -> String {
    name.chars()
        .map(|ch| {
            if ch.is_control() || ch == '\\' {
                ch.escape_default().to_string()
            } else {
                ch.to_string()
            }
        })
        .collect()
}

/// `ls -l`'s type letter and permission string of a file description (`drwxr-xr-x`).
pub(crate) fn mode_string(st: &s::ext::FileStat) -> String {
    let kind = match st.kind.as_str() {
        "directory" => 'd',
        "symlink" => 'l',
        "block-device" => 'b',
        "char-device" => 'c',
        "fifo" => 'p',
        "socket" => 's',
        _ => '-',
    };
    let m = st.mode;
    let mut out = String::from(kind);
    for (shift, special, set_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (m >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, m & special != 0) {
            (true, true) => set_char,
            (false, true) => set_char.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// The name, with ` -> target` for a link.
fn name_and_target(st: &s::ext::FileStat) -> String {
    match &st.link_target {
        Some(t) => format!("{} -> {}", shown_name(&st.name), shown_name(t)),
        None => shown_name(&st.name),
    }
}

/// `qga ls -l`: mode, owner, group, size, modification time (UTC), name.
pub(crate) fn ls_long(entries: &[s::ext::FileStat]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                mode_string(e),
                e.owner.clone().unwrap_or_else(|| e.uid.to_string()),
                e.group.clone().unwrap_or_else(|| e.gid.to_string()),
                e.size.to_string(),
                date(e.mtime),
                name_and_target(e),
            ]
        })
        .collect();
    table(
        &["mode", "owner", "group", "size", "modified (UTC)", "name"],
        &rows,
    )
}

/// `qga stat`: one file's description.
pub(crate) fn stat(st: &s::ext::FileStat) -> String {
    let account = |name: &Option<String>, id: i64| match name {
        Some(n) => format!("{n} ({id})"),
        None => id.to_string(),
    };
    let mut rows = vec![
        vec!["name".into(), shown_name(&st.name)],
        vec!["type".into(), st.kind.clone()],
        vec!["size".into(), st.size.to_string()],
        vec![
            "mode".into(),
            format!("{:04o} ({})", st.mode, mode_string(st)),
        ],
        vec!["owner".into(), account(&st.owner, st.uid)],
        vec!["group".into(), account(&st.group, st.gid)],
        vec!["accessed".into(), time(st.atime)],
        vec!["modified".into(), time(st.mtime)],
        vec!["changed".into(), time(st.ctime)],
        vec!["links".into(), st.nlink.to_string()],
        vec!["inode".into(), st.inode.to_string()],
    ];
    if let Some(t) = &st.link_target {
        rows.push(vec!["target".into(), shown_name(t)]);
    }
    table(&["field", "value"], &rows)
}

pub(crate) fn inventory(rows: &[crate::fanout::InventoryRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.guest.clone(),
                r.hostname.clone().unwrap_or_else(|| "-".into()),
                r.os.clone().unwrap_or_else(|| "-".into()),
                if r.addresses.is_empty() {
                    "-".into()
                } else {
                    r.addresses.join(" ")
                },
                r.agent.clone().unwrap_or_else(|| "-".into()),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["guest", "hostname", "os", "addresses", "agent", "error"],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ping_stats_nearest_rank() {
        let mut t: Vec<std::time::Duration> = (1..=200u64)
            .rev()
            .map(std::time::Duration::from_micros)
            .collect();
        let p = PingStats::of(&mut t);
        assert_eq!(
            (p.count, p.min_us, p.p50_us, p.p99_us, p.max_us),
            (200, 1, 100, 198, 200)
        );
        assert_eq!(
            ping_stats(&p),
            "200 pings: min 0.001 ms, p50 0.100 ms, p99 0.198 ms, max 0.200 ms"
        );
        let one = PingStats::of(&mut [std::time::Duration::from_micros(1500)]);
        assert_eq!((one.p50_us, one.p99_us), (1500, 1500));
    }

    #[test]
    fn test_time_formats_utc_date() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC (0 ns)");
        assert_eq!(
            time(1_700_000_000_000_000_000),
            "2023-11-14 22:13:20 UTC (1700000000000000000 ns)"
        );
    }

    #[test]
    fn test_mode_strings_and_shown_names() {
        let st = |kind: &str, mode: i64| s::ext::FileStat {
            kind: kind.into(),
            mode,
            ..Default::default()
        };
        assert_eq!(mode_string(&st("directory", 0o755)), "drwxr-xr-x");
        assert_eq!(mode_string(&st("file", 0o4755)), "-rwsr-xr-x");
        assert_eq!(mode_string(&st("file", 0o2640)), "-rw-r-S---");
        assert_eq!(mode_string(&st("directory", 0o1777)), "drwxrwxrwt");
        assert_eq!(mode_string(&st("symlink", 0o777)), "lrwxrwxrwx");
        assert_eq!(shown_name("a b\nc\\d"), "a b\\nc\\\\d");
        assert_eq!(date(1_700_000_000_000_000_000), "2023-11-14 22:13:20");
    }

    #[test]
    fn test_table_aligns_columns() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y");
    }

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn test_machine_tables_have_fixed_form() {
        let ifs: Vec<s::GuestNetworkInterface> = parse(
            r#"[{"name":"lo","hardware-address":"00:00:00:00:00:00","ip-addresses":[
                {"ip-address":"127.0.0.1","ip-address-type":"ipv4","prefix":8}]},
                {"name":"eth0","hardware-address":"52:54:00:12:34:56","ip-addresses":[
                {"ip-address":"10.0.2.15","ip-address-type":"ipv4","prefix":24},
                {"ip-address":"fe80::1","ip-address-type":"ipv6","prefix":64}]},
                {"name":"dummy0"}]"#,
        );
        assert_eq!(
            interfaces(&ifs),
            "interface  mac                addresses\n\
             lo         00:00:00:00:00:00  127.0.0.1/8\n\
             eth0       52:54:00:12:34:56  10.0.2.15/24 fe80::1/64\n\
             dummy0"
        );
        let fs: Vec<s::GuestFilesystemInfo> = parse(
            r#"[{"name":"vda1","mountpoint":"/","type":"ext4","used-bytes":1500000000,
                "total-bytes":10000000000,"disk":[{"pci-controller":{"domain":0,"bus":0,
                "slot":4,"function":0},"bus-type":"virtio","bus":0,"target":0,"unit":0,
                "dev":"/dev/vda"}]},
                {"name":"tmpfs","mountpoint":"/tmp","type":"tmpfs","disk":[]}]"#,
        );
        assert_eq!(
            fsinfo(&fs),
            "mountpoint  type   device  used MB  total MB  disks\n\
             /           ext4   vda1    1500.0   10000.0   /dev/vda\n\
             /tmp        tmpfs  tmpfs   -        -"
        );
        let disks_: Vec<s::GuestDiskInfo> = parse(
            r#"[{"name":"/dev/vda","partition":false,"address":{"pci-controller":{"domain":0,
                "bus":0,"slot":4,"function":0},"bus-type":"virtio","bus":0,"target":0,
                "unit":0,"serial":"abc123","dev":"/dev/vda"}},
                {"name":"/dev/vda1","partition":true,"dependencies":["/dev/vda"]}]"#,
        );
        assert_eq!(
            disks(&disks_),
            "name       kind       depends on  alias  bus     serial\n\
             /dev/vda   disk                          virtio  abc123\n\
             /dev/vda1  partition  /dev/vda"
        );
        let cpus: Vec<s::GuestLogicalProcessor> = parse(
            r#"[{"logical-id":1,"online":false,"can-offline":true},
                {"logical-id":0,"online":true,"can-offline":false}]"#,
        );
        assert_eq!(
            vcpus(&cpus),
            "cpu  state    can-offline\n0    online   no\n1    offline  yes"
        );
        let users_: Vec<s::GuestUser> = parse(r#"[{"user":"root","login-time":1700000000.5}]"#);
        assert_eq!(
            users(&users_),
            "user  login\nroot  2023-11-14 22:13:20 UTC (1700000000500000000 ns)"
        );
        let blocks: Vec<s::GuestMemoryBlock> = parse(
            r#"[{"phys-index":33,"online":true,"can-offline":true},
                {"phys-index":2,"online":false}]"#,
        );
        assert_eq!(
            memory_blocks(&blocks),
            "block  state    can-offline\n2      offline  -\n33     online   yes"
        );
        let rows = vec![
            crate::fanout::InventoryRow {
                guest: "web1".into(),
                hostname: Some("web1.example".into()),
                os: Some("Debian GNU/Linux 12 (bookworm)".into()),
                addresses: vec!["192.0.2.10".into(), "2001:db8::10".into()],
                agent: Some("10.2.0".into()),
                error: None,
            },
            crate::fanout::InventoryRow {
                guest: "db".into(),
                error: Some("cannot connect".into()),
                ..Default::default()
            },
        ];
        assert_eq!(
            inventory(&rows),
            "guest  hostname      os                              addresses                \
             agent   error\n\
             web1   web1.example  Debian GNU/Linux 12 (bookworm)  192.0.2.10 2001:db8::10  10.2.0\n\
             db     -             -                               -                        -       \
             cannot connect"
        );
    }
}
