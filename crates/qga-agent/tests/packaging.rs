//! The packaging files (`packaging/`) against the real binary, so they cannot drift from it:
//! qemu-ga(8) documents exactly the options `qemu-ga -h` lists and exactly the configuration
//! keys the agent reads; `qemu-ga.conf` lists every key, and its examples are accepted and
//! printed back by `qemu-ga -D`; `fsfreeze-hook` runs the right programs in order, skips
//! backups and package-manager files, logs and reports failures.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_qemu-ga");

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(packaging(file)).unwrap()
}

/// `(short, long)` of every option line of `qemu-ga -h` (`  -c, --config=FILE ...`).
fn help_options() -> BTreeSet<(char, String)> {
    let out = Command::new(AGENT).arg("-h").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("  -")?;
            let mut chars = rest.chars();
            let short = chars.next()?;
            let long = chars.as_str().strip_prefix(", --")?;
            let name: String = long
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some((short, name))
        })
        .collect()
}

/// The section of a man page from `.SH TITLE` to the next `.SH`.
fn man_section<'a>(man: &'a str, title: &str) -> &'a str {
    let start = man.find(&format!(".SH {title}\n")).unwrap();
    let body = &man[start + 1..];
    &body[..body.find("\n.SH ").unwrap_or(body.len())]
}

/// `(short, long)` of every `.BR \-x ", " \-\-long` tag in OPTIONS.
fn man_options(man: &str) -> BTreeSet<(char, String)> {
    man_section(man, "OPTIONS")
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(".BR \\-")?;
            let short = rest.chars().next()?;
            let long = rest.split_once("\\-\\-")?.1;
            let name: String = long
                .replace("\\-", "-")
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some((short, name))
        })
        .collect()
}

/// The `.B key` tags of CONFIGURATION FILE.
fn man_keys(man: &str) -> BTreeSet<String> {
    man_section(man, "CONFIGURATION FILE")
        .lines()
        .filter_map(|l| l.strip_prefix(".B "))
        .map(str::to_string)
        .collect()
}

/// The commented examples `#key=value` of qemu-ga.conf.
fn conf_examples(conf: &str) -> Vec<(String, String)> {
    conf.lines()
        .filter_map(|l| l.strip_prefix('#')?.split_once('='))
        .filter(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn man_page_lists_exactly_the_options_of_help() {
    let help = help_options();
    assert!(help.len() >= 15, "parsed only {help:?} from -h");
    let man = man_options(&read("qemu-ga.8"));
    assert_eq!(man, help, "qemu-ga.8 OPTIONS vs qemu-ga -h");
}

/// The keys the agent reads: the string literals `apply_keyfile` in config/mod.rs passes to
/// the key file (`kf.string(g, "key")`, `kf.boolean(g, "key")`) or lists with their slot
/// (`("key", &mut cfg.…)`). `-D` prints the numeric ones only when set, so it cannot tell.
fn agent_keys() -> BTreeSet<String> {
    let src =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/mod.rs"))
            .unwrap();
    let start = src.find("fn apply_keyfile(").unwrap();
    let body = &src[start..];
    let body = &body[..body.find("\n}\n").unwrap()];
    let mut keys = BTreeSet::new();
    for (i, _) in body.match_indices('"') {
        let before = &body[..i];
        let is_key = before.ends_with("(g, ") || before.ends_with("(");
        let rest = &body[i + 1..];
        let Some(end) = rest.find('"') else { continue };
        let key = &rest[..end];
        let after = &rest[end + 1..];
        let used = after.starts_with(")?") || after.starts_with(", &mut cfg.");
        if is_key && used && key.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            keys.insert(key.to_string());
        }
    }
    keys
}

#[test]
fn conf_file_and_man_page_list_every_key_the_agent_reads() {
    let conf = read("qemu-ga.conf");
    let examples = conf_examples(&conf);
    let conf_keys: BTreeSet<String> = examples.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(conf_keys.len(), examples.len(), "a key appears twice");
    let agent = agent_keys();
    assert!(
        agent.len() >= 17,
        "parsed only {agent:?} from config/mod.rs"
    );
    assert_eq!(
        conf_keys, agent,
        "qemu-ga.conf vs the keys apply_keyfile reads"
    );
    // Uncommented, the examples are a valid configuration that sets every key: -D prints
    // all of them, and nothing else.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qemu-ga.conf");
    let body: String = examples.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&file, format!("[general]\n{body}")).unwrap();
    let out = Command::new(AGENT)
        .arg("-c")
        .arg(&file)
        .arg("-D")
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{dump}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped: Vec<(String, String)> = dump
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let dump_keys: BTreeSet<String> = dumped.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(conf_keys, dump_keys, "qemu-ga.conf keys vs qemu-ga -D");
    for (key, value) in &examples {
        let got = dumped
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap();
        if key.ends_with("-rpcs") {
            let set =
                |s: &str| -> BTreeSet<String> { s.split([',', ';']).map(str::to_string).collect() };
            assert_eq!(set(got), set(value), "{key}");
        } else {
            assert_eq!(got, value, "{key}: -D printed another value");
        }
    }
    assert_eq!(
        man_keys(&read("qemu-ga.8")),
        conf_keys,
        "qemu-ga.8 CONFIGURATION FILE vs qemu-ga.conf"
    );
}

fn script(dir: &Path, name: &str, body: &str, mode: u32) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn run_hook(dir: &Path, log: &Path, arg: &str) -> (i32, String) {
    let out = Command::new(packaging("fsfreeze-hook"))
        .arg(arg)
        .env("FSFREEZE_HOOK_DIR", dir)
        .env("FSFREEZE_HOOK_LOG", log)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn fsfreeze_hook_runs_the_programs_of_its_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fsfreeze-hook.d");
    std::fs::create_dir(&dir).unwrap();
    let ran = tmp.path().join("ran");
    let log = tmp.path().join("hook.log");
    let record = |name: &str| format!("echo \"{name} $1\" >>'{}'", ran.display());
    script(&dir, "20-db", &record("20-db"), 0o755);
    script(
        &dir,
        "10-first",
        &(record("10-first") + "\necho said-$1"),
        0o755,
    );
    script(&dir, "30-not-executable", &record("30"), 0o644);
    for skipped in [
        "20-db~",
        "20-db.dpkg-old",
        "20-db.dpkg-dist",
        "20-db.dpkg-new",
        "20-db.rpmnew",
        "20-db.rpmsave",
        "20-db.ucf-old",
        "#20-db#",
        ".hidden",
        "20-db.bak",
        "20-db.swp",
    ] {
        script(&dir, skipped, &record(skipped), 0o755);
    }
    assert_eq!(run_hook(&dir, &log, "freeze"), (0, String::new()));
    assert_eq!(run_hook(&dir, &log, "thaw"), (0, String::new()));
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "10-first freeze\n20-db freeze\n10-first thaw\n20-db thaw\n"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("/10-first freeze"), "{logged}");
    assert!(logged.contains("  said-thaw"), "{logged}");

    // A failing program: the others still run, the status is the failure's.
    script(&dir, "15-fails", "echo cannot-flush; exit 3", 0o755);
    std::fs::remove_file(&ran).unwrap();
    assert_eq!(run_hook(&dir, &log, "freeze").0, 3);
    assert_eq!(
        std::fs::read_to_string(&ran).unwrap(),
        "10-first freeze\n20-db freeze\n"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("  cannot-flush"), "{logged}");
    assert!(
        logged.contains("15-fails freeze failed with status 3"),
        "{logged}"
    );

    // A bad argument, and a missing directory (nothing to do).
    assert_eq!(run_hook(&dir, &log, "boil").0, 2);
    assert_eq!(run_hook(&tmp.path().join("none"), &log, "thaw").0, 0);
}
