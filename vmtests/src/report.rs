//! The side-by-side report of our agent and the reference qemu-ga, and the differences that
//! docs/compat.md explains (expected: marked, not failed).

use std::fmt::Write as _;
use std::time::Duration;

use crate::suite::{CheckResult, Outcome};

/// A difference from qemu-ga that docs/compat.md documents: the reference is expected to
/// fail this check.
#[derive(Debug, Clone, Copy)]
pub struct KnownDifference {
    /// The check's name (on every transport).
    pub check: &'static str,
    /// Text that docs/compat.md must contain for the difference to count as explained.
    pub compat: &'static str,
}

/// The expected differences.
pub const EXPECTED_DIFFERENCES: &[KnownDifference] = &[
    KnownDifference {
        check: "guest-info.version-default",
        compat: "reports version `10.2.0` by default",
    },
    KnownDifference {
        check: "guest-get-time.resolution",
        compat: "has nanosecond resolution (qemu-ga multiplies microseconds by 1000)",
    },
    KnownDifference {
        check: "guest-get-osinfo.single-quoted",
        compat: "reads single-quoted os-release values whole",
    },
    KnownDifference {
        check: "guest-shutdown.bad-mode",
        compat: "guest-shutdown's mode error ends with its closing parenthesis",
    },
    KnownDifference {
        check: "guest-set-user-password.no-chpasswd",
        compat: "guest-set-user-password works without chpasswd",
    },
    KnownDifference {
        check: "guest-ssh-get-authorized-keys.symlink",
        compat: "SSH keys never follow links out of the user's `~/.ssh`.",
    },
    KnownDifference {
        check: "guest-get-fsinfo.serial",
        compat: "qemu-ga without udev data reports none",
    },
    KnownDifference {
        check: "hotplug-online.cpu-and-dimm",
        compat: "hot-added vCPUs and memory blocks online",
    },
    KnownDifference {
        check: "framing.pipelined-transfer",
        compat: "answers every pipelined request at once on virtio-serial",
    },
    KnownDifference {
        check: "several-clients.unix-listen",
        compat: "qemu-ga serves one client at a time",
    },
    KnownDifference {
        check: "guest-get-disks.serial",
        compat: "qemu-ga without udev data reports none",
    },
    KnownDifference {
        check: "fsfreeze.watchdog",
        compat: "**Optional freeze watchdog**: `fsfreeze-watchdog` in `[general]`",
    },
];

/// A check the reference (Debian's qemu-ga 7.2) fails because it predates what the check
/// covers, not because of a deviation of ours: upstream qemu-ga 10.2, our reference for
/// behaviour, passes it. Counted as expected only when the reference's detail contains
/// `ref_says`.
#[derive(Debug, Clone, Copy)]
pub struct OlderReference {
    /// The check's name (on every transport).
    pub check: &'static str,
    /// Text the reference's failure detail must contain.
    pub ref_says: &'static str,
    /// Why 7.2 differs.
    pub why: &'static str,
}

/// Where qemu-ga 7.2 differs from 10.2.
pub const OLDER_REFERENCE: &[OlderReference] = &[
    OlderReference {
        check: "guest-exec.capture-modes",
        ref_says: "Invalid parameter type for 'capture-output', expected: boolean",
        why: "qemu-ga 7.2 has only the boolean capture-output (the modes came in 8.0)",
    },
    OlderReference {
        check: "guest-exec.missing-binary",
        ref_says: "Guest agent command failed, error was 'Failed to execute child process",
        why: "qemu-ga 7.2 wraps GLib's text in \"Guest agent command failed, error was '…'\" (dropped in 8.2)",
    },
    OlderReference {
        check: "guest-exec-status.unknown-pid",
        ref_says: "Invalid parameter 'pid'",
        why: "qemu-ga 7.2 says \"Invalid parameter 'pid'\" (\"PID N does not exist\" since 8.2)",
    },
    OlderReference {
        check: "guest-get-fsinfo.total-bytes-privileged",
        ref_says: "total-bytes-privileged absent",
        why: "qemu-ga 7.2 predates total-bytes-privileged",
    },
    OlderReference {
        check: "guest-fsfreeze-freeze.disabled-text",
        ref_says: "has been disabled: the agent is in frozen state",
        why: "qemu-ga 7.2 says \"the agent is in frozen state\" (later versions: \"the command is not allowed\")",
    },
    OlderReference {
        check: "fsfreeze-hook.failure",
        ref_says: "fsfreeze hook has failed with status 3",
        why: "qemu-ga 7.2 reports only the hook's exit status (10.x: \"child process has failed to execute fsfreeze hook: <output>\")",
    },
];

fn older_reference(check: &str, ref_detail: &str) -> Option<&'static OlderReference> {
    OLDER_REFERENCE
        .iter()
        .find(|d| d.check == check && ref_detail.contains(d.ref_says))
}

/// One agent's run: its results and timings.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// `ours` or `qemu-ga 7.2.22`.
    pub label: String,
    /// Every check's result.
    pub results: Vec<CheckResult>,
    /// Time from starting QEMU to the agent's first reply, per transport.
    pub first_reply: Vec<(String, Duration)>,
}

impl Run {
    /// (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |o| self.results.iter().filter(|r| r.outcome == o).count();
        (n(Outcome::Pass), n(Outcome::Fail), n(Outcome::Skip))
    }
}

/// The report's verdict.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Failures of the tier: our failed checks and unexplained differences.
    pub failures: Vec<String>,
    /// Checks that met expectations (including the reference's expected differences).
    pub passed: usize,
    /// Checks that did not run.
    pub skipped: usize,
    /// Reference failures on rows not active for our agent yet (not failures of the tier).
    pub warnings: Vec<String>,
}

fn explained(check: &str, compat_doc: &str) -> Option<&'static KnownDifference> {
    EXPECTED_DIFFERENCES
        .iter()
        .find(|d| d.check == check && compat_doc.contains(d.compat))
}

/// Renders the side-by-side table and decides what fails.
pub fn side_by_side(ours: &Run, reference: Option<&Run>, compat_doc: &str) -> (String, Verdict) {
    let mut v = Verdict::default();
    let mut text = String::new();
    let ref_label = reference.map_or("qemu-ga", |r| r.label.as_str());
    let _ = writeln!(text, "{:<46} {:<6} {:<6} note", "check", "ours", "ref");
    let mut keys: Vec<(String, String)> = ours
        .results
        .iter()
        .map(|r| (r.transport.clone(), r.name.clone()))
        .collect();
    if let Some(r) = reference {
        for x in &r.results {
            let k = (x.transport.clone(), x.name.clone());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let find = |run: Option<&Run>, k: &(String, String)| {
        run.and_then(|r| {
            r.results
                .iter()
                .find(|x| x.transport == k.0 && x.name == k.1)
                .cloned()
        })
    };
    let mut notes = Vec::new();
    for k in &keys {
        let o = find(Some(ours), k);
        let r = find(reference, k);
        let label = |x: &Option<CheckResult>| x.as_ref().map_or("-", |x| x.outcome.label());
        let mut note = String::new();
        match &o {
            Some(x) if x.outcome == Outcome::Fail => {
                v.failures
                    .push(format!("ours {}/{}: {}", k.0, k.1, x.detail));
                note = format!("ours: {}", x.detail);
            }
            Some(x) if x.outcome == Outcome::Pass => v.passed += 1,
            Some(_) => v.skipped += 1,
            None => {}
        }
        match &r {
            Some(x) if x.outcome == Outcome::Fail => {
                if let Some(d) = explained(&k.1, compat_doc) {
                    v.passed += 1;
                    note = format!(
                        "expected difference (docs/compat.md: \"{}\"): ref {}",
                        d.compat, x.detail
                    );
                } else if let Some(d) = older_reference(&k.1, &x.detail) {
                    v.passed += 1;
                    note = format!("expected: {}: ref {}", d.why, x.detail);
                } else if o.as_ref().is_some_and(|o| o.outcome == Outcome::Fail) {
                    note.push_str(&format!(" | ref: {}", x.detail));
                } else if o.as_ref().is_none_or(|o| o.outcome == Outcome::Skip) {
                    // A row not active for our agent yet: the reference validates it.
                    v.warnings
                        .push(format!("{}/{}: ref {}: {}", k.0, k.1, ref_label, x.detail));
                    note = format!("ref fails a row not active for ours yet: {}", x.detail);
                } else {
                    v.failures.push(format!(
                        "unexplained difference {}/{}: ref {}: {} (fix the check, or document it in docs/compat.md and EXPECTED_DIFFERENCES)",
                        k.0, k.1, ref_label, x.detail
                    ));
                    note = format!("UNEXPLAINED difference: ref {}", x.detail);
                }
            }
            Some(x) if x.outcome == Outcome::Pass => {
                v.passed += 1;
                if EXPECTED_DIFFERENCES.iter().any(|d| d.check == k.1) {
                    note = "expected a difference, but the reference passed".into();
                }
            }
            Some(_) => v.skipped += 1,
            None => {}
        }
        let _ = writeln!(
            text,
            "{:<46} {:<6} {:<6} {}",
            format!("{}/{}", k.0, k.1),
            label(&o),
            label(&r),
            short(&note)
        );
        if !note.is_empty() {
            notes.push(format!("{}/{}: {note}", k.0, k.1));
        }
    }
    let _ = writeln!(text);
    for run in std::iter::once(ours).chain(reference) {
        let (p, f, s) = run.counts();
        let firsts: Vec<String> = run
            .first_reply
            .iter()
            .map(|(t, d)| format!("{t} {:.1} s", d.as_secs_f64()))
            .collect();
        let _ = writeln!(
            text,
            "{:<16} {p} passed, {f} failed, {s} skipped; boot to first reply: {}",
            run.label,
            firsts.join(", ")
        );
    }
    if reference.is_none() {
        let _ = writeln!(text, "(no reference qemu-ga: set QGA_VM_REF_AGENT)");
    }
    for w in &v.warnings {
        let _ = writeln!(text, "warning: {w}");
    }
    let _ = writeln!(text, "\nDetails:");
    for run in std::iter::once(ours).chain(reference) {
        for r in &run.results {
            let _ = writeln!(
                text,
                "  [{}] {}/{} {}: {}",
                run.label,
                r.transport,
                r.name,
                r.outcome.label(),
                r.detail
            );
        }
    }
    (text, v)
}

fn short(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 110 {
        format!("{}...", s.chars().take(107).collect::<String>())
    } else {
        s
    }
}

/// The end of a suite run: prints the side-by-side report, saves it and the summary under
/// `env.work` as `report-<name>.txt`, and returns the verdict's failures (empty when it passed).
pub fn conclude(
    env: &crate::env::TestEnv,
    name: &str,
    ours: &Run,
    reference: Option<&Run>,
) -> Vec<String> {
    let compat = std::fs::read_to_string(&env.compat_doc).unwrap_or_default();
    let (text, verdict) = side_by_side(ours, reference, &compat);
    println!("{text}");
    let _ = std::fs::write(env.work.join(format!("report-{name}.txt")), &text);
    write_summary(&env.work, name, &verdict);
    verdict.failures
}

/// Writes `work/summary-<name>.txt` (`passed failed skipped`), which scripts/vmtest adds up.
pub fn write_summary(work: &std::path::Path, name: &str, v: &Verdict) {
    let _ = std::fs::write(
        work.join(format!("summary-{name}.txt")),
        format!("{} {} {}\n", v.passed, v.failures.len(), v.skipped),
    );
}
