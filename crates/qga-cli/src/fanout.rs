//! Choosing the guests (`-s`, `-d`, `--all`) and running a command on each: at most `--jobs`
//! at a time, one guest's failure never stopping the others, with a summary at the end.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use qga_client::Target;
use qga_client::discover::{self, Guest};
use qga_schema as s;
use serde::Serialize;

use crate::{Cli, Cmd, Conn, Failure, Via, connect, output, run};

/// Whether an executable named `name` is on PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// One guest to talk to: how to show it, and where its channel is.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    /// The domain name, or the target as given.
    pub(crate) label: String,
    /// The channel.
    pub(crate) target: Target,
}

/// The guests the options name, in order, without duplicates.
fn destinations(cli: &Cli) -> Result<Vec<Dest>, Failure> {
    let mut out: Vec<Dest> = Vec::new();
    for s in &cli.sockets {
        let target = s.parse::<Target>().map_err(Failure)?;
        out.push(Dest {
            label: s.clone(),
            target,
        });
    }
    let implicit_all =
        matches!(cli.command, Cmd::Inventory) && cli.sockets.is_empty() && cli.domains.is_empty();
    if cli.all || !cli.domains.is_empty() || implicit_all {
        let found = discover::discover_libvirt();
        let virsh = match cli.via {
            Via::Virsh => true,
            Via::Socket => false,
            Via::Auto => on_path("virsh"),
        };
        // virsh takes the domain id, which the directory name keeps in full where libvirt
        // shortens long names.
        let dest = |g: &Guest| Dest {
            label: g.name.clone(),
            target: if virsh {
                Target::Libvirt(g.id.map_or_else(|| g.name.clone(), |id| id.to_string()))
            } else {
                Target::Unix(g.socket.clone())
            },
        };
        if cli.all || implicit_all {
            if found.is_empty() {
                return Err(Failure(format!(
                    "no libvirt guest with an agent channel was found under {} (is a domain running, and does its XML have a channel named org.qemu.guest_agent.0?)",
                    discover::LIBVIRT_CHANNEL_DIRS.join(" or ")
                )));
            }
            out.extend(found.iter().map(dest));
        }
        for name in &cli.domains {
            match found.iter().find(|g| discover::same_domain(&g.name, name)) {
                Some(g) => out.push(Dest {
                    label: name.clone(),
                    ..dest(g)
                }),
                None => {
                    let known: Vec<&str> = found.iter().map(|g| g.name.as_str()).collect();
                    return Err(Failure(format!(
                        "no running libvirt guest named '{name}' has an agent channel ({}); is the domain running, and does its XML have a channel named org.qemu.guest_agent.0?",
                        if known.is_empty() {
                            "none found".to_string()
                        } else {
                            format!("found: {}", known.join(", "))
                        }
                    )));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(Failure(
            "no guest given: name one with -s SOCKET (or vsock:CID:PORT, or a serial device), -d DOMAIN, or use --all for every libvirt guest".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert(d.target.to_string()));
    Ok(out)
}

/// Runs `f` on every item with at most `jobs` threads; results keep the items' order.
pub(crate) fn parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut all) = results.lock() {
                        all[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// One line of `qga inventory`.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct InventoryRow {
    /// The guest's label (domain name or target).
    pub(crate) guest: String,
    /// The guest's host name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hostname: Option<String>,
    /// The guest's OS (pretty name, else id and version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) os: Option<String>,
    /// Non-loopback addresses.
    pub(crate) addresses: Vec<String>,
    /// The agent's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<String>,
    /// What failed, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Collects one guest's inventory; a failing part is noted and the rest still filled in.
pub(crate) fn inventory_row(c: &mut Conn) -> InventoryRow {
    let none = s::NoArgs {};
    let mut row = InventoryRow::default();
    let mut errors = Vec::new();
    let mut note = |what: &str, e: qga_client::ClientError| {
        errors.push(format!("{what}: {}", Failure::from(e).0));
    };
    match c.execute::<s::GuestInfo>(&none) {
        Ok(i) => row.agent = Some(i.version),
        Err(e) => note("info", e),
    }
    match c.execute::<s::GuestGetHostName>(&none) {
        Ok(h) => row.hostname = Some(h.host_name),
        Err(e) => note("hostname", e),
    }
    match c.execute::<s::GuestGetOsinfo>(&none) {
        Ok(o) => {
            row.os = o.pretty_name.or_else(|| {
                let id = o.id.unwrap_or_default();
                let v = o.version_id.unwrap_or_default();
                let both = format!("{id} {v}").trim().to_string();
                (!both.is_empty()).then_some(both)
            });
        }
        Err(e) => note("osinfo", e),
    }
    match c.execute::<s::GuestNetworkGetInterfaces>(&none) {
        Ok(ifs) => {
            row.addresses = ifs
                .iter()
                .filter(|i| i.name != "lo")
                .flat_map(|i| i.ip_addresses.iter().flatten())
                .filter(|a| !a.ip_address.starts_with("fe80:"))
                .map(|a| a.ip_address.clone())
                .collect();
        }
        Err(e) => note("interfaces", e),
    }
    if !errors.is_empty() {
        row.error = Some(errors.join("; "));
    }
    row
}

/// The result of one guest: text and exit code, or the failure.
type Outcome = Result<(String, u8), Failure>;

/// Runs the command on the chosen guests and prints the results.
pub(crate) fn main(cli: &Cli) -> ExitCode {
    let dests = match destinations(cli) {
        Ok(d) => d,
        Err(Failure(msg)) => {
            eprintln!("qga: {msg}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Cmd::Inventory) {
        return inventory(cli, &dests);
    }
    let one = |d: &Dest, live: bool| -> Outcome {
        connect(&d.target, cli.timeout).and_then(|mut c| run(cli, &mut c, live))
    };
    if let [d] = dests.as_slice() {
        return match one(d, true) {
            Ok((text, code)) => {
                if !text.is_empty() {
                    // A reader that went away (`qga ls | head`) is not an error of qga's.
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{text}");
                }
                ExitCode::from(code)
            }
            Err(Failure(msg)) => {
                eprintln!("qga: {msg}");
                ExitCode::from(1)
            }
        };
    }
    let results = parallel(&dests, cli.jobs, |d| one(d, false));
    let failed = results.iter().filter(|r| r.is_err()).count();
    if cli.json {
        let items: Vec<serde_json::Value> = dests
            .iter()
            .zip(&results)
            .map(|(d, r)| match r {
                Ok((text, _)) => serde_json::json!({
                    "guest": d.label,
                    "return": serde_json::from_str::<serde_json::Value>(text)
                        .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
                }),
                Err(Failure(msg)) => serde_json::json!({"guest": d.label, "error": msg}),
            })
            .collect();
        println!("{}", crate::to_json(&items));
    } else {
        let mut rows = Vec::new();
        for (d, r) in dests.iter().zip(&results) {
            match r {
                Ok((text, code)) => {
                    println!("== {}\n{text}", d.label);
                    rows.push(vec![d.label.clone(), format!("ok (exit {code})")]);
                }
                Err(Failure(msg)) => {
                    println!("== {}\nerror: {msg}", d.label);
                    rows.push(vec![d.label.clone(), format!("error: {msg}")]);
                }
            }
        }
        println!("\n{}", output::table(&["guest", "result"], &rows));
        println!(
            "{} guests, {} ok, {failed} failed",
            results.len(),
            results.len() - failed
        );
    }
    ExitCode::from(u8::from(failed > 0))
}

/// `qga inventory`: one row per guest, failures included as rows.
fn inventory(cli: &Cli, dests: &[Dest]) -> ExitCode {
    let rows = parallel(dests, cli.jobs, |d| match connect(&d.target, cli.timeout) {
        Ok(mut c) => InventoryRow {
            guest: d.label.clone(),
            ..inventory_row(&mut c)
        },
        Err(Failure(msg)) => InventoryRow {
            guest: d.label.clone(),
            error: Some(msg),
            ..InventoryRow::default()
        },
    });
    let failed = rows.iter().filter(|r| r.agent.is_none()).count();
    if cli.json {
        println!("{}", crate::to_json(&rows));
    } else {
        println!("{}", output::inventory(&rows));
        println!(
            "{} guests, {} answered, {failed} failed",
            rows.len(),
            rows.len() - failed
        );
    }
    ExitCode::from(u8::from(failed > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parallel_keeps_order_and_bounds_threads() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..20).collect();
        let out = parallel(&items, 3, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }
}
