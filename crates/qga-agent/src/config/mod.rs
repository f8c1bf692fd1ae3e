//! Agent configuration: defaults, then the `[general]` group of the key file, then the
//! command line, as qemu-ga does (`qga/main.c` behaviour, observed on 7.2 and 10.0.2).
//!
//! [`load`] turns `argv` and `$QGA_CONF` into an [`Action`]; [`dump`] renders the key file that
//! `qemu-ga -D` prints. Serves no QGA command directly; `guest-info` reads
//! [`Config::version_string`] and the dispatcher reads the block and allow lists.
//!
//! Deliberate differences from qemu-ga (record in `docs/compat.md`):
//! * `block-rpcs`/`allow-rpcs` values are split on `;` as well as `,`, items are trimmed of
//!   whitespace and empty items are dropped (qemu-ga splits on `,` only, so the GKeyFile list
//!   form `a;b` or `a, b` silently blocked nothing).
//! * An unknown method is rejected by [`load`], also with `-D`; qemu-ga dumps it and fails
//!   only when it opens the channel (same message).
//! * Option arguments that must be text (method, path, lists) are rejected when not UTF-8.
//! * The configuration file is read once, not once per getopt pass, so getopt diagnostics are
//!   not printed twice (10.x prints them twice).

mod cli;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use cli::help_text;
pub use qga_sys::keyfile::{KeyFile, KeyFileError, escape_value};

use cli::CliItem;

/// Configuration file read when neither `-c` nor `$QGA_CONF` names one; may be missing.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/qemu/qemu-ga.conf";
/// Default PID file, written when daemonizing.
pub const DEFAULT_PIDFILE: &str = "/var/run/qemu-ga.pid";
/// Default directory for `qga.state` and `qga.state.isfrozen`.
pub const DEFAULT_STATEDIR: &str = "/var/run";
/// Hook script used for a bare `-F`.
pub const DEFAULT_FSFREEZE_HOOK: &str = "/etc/qemu/fsfreeze-hook";
/// Default channel for `virtio-serial`.
pub const VIRTIO_SERIAL_DEFAULT_PATH: &str = "/dev/virtio-ports/org.qemu.guest_agent.0";
/// Default channel for `isa-serial`.
pub const ISA_SERIAL_DEFAULT_PATH: &str = "/dev/ttyS0";
/// The key-file group that holds every setting.
pub const GROUP: &str = "general";

/// Transport to the host, named as in `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// `virtio-serial`: a virtio console port (the default).
    #[default]
    VirtioSerial,
    /// `isa-serial`: a legacy serial port, set raw at 38400 baud.
    IsaSerial,
    /// `unix-listen`: listen on a unix socket, one client at a time.
    UnixListen,
    /// `vsock-listen`: listen on `<cid>:<port>`, one client at a time.
    VsockListen,
}

impl Method {
    /// The wire/CLI name, e.g. `virtio-serial`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VirtioSerial => "virtio-serial",
            Self::IsaSerial => "isa-serial",
            Self::UnixListen => "unix-listen",
            Self::VsockListen => "vsock-listen",
        }
    }

    /// The channel used when no path is given; listening methods have none.
    pub fn default_path(self) -> Option<&'static str> {
        match self {
            Self::VirtioSerial => Some(VIRTIO_SERIAL_DEFAULT_PATH),
            Self::IsaSerial => Some(ISA_SERIAL_DEFAULT_PATH),
            Self::UnixListen | Self::VsockListen => None,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::VirtioSerial,
            Self::IsaSerial,
            Self::UnixListen,
            Self::VsockListen,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| ConfigError::UnsupportedMethod(s.to_owned()))
    }
}

/// The effective settings, built once by [`load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `-m`/`method`.
    pub method: Method,
    /// `-p`/`path`; `None` means the method's default ([`Config::channel_path`]). For
    /// `vsock-listen` the form is `<cid>:<port>`.
    pub path: Option<String>,
    /// `-l`/`logfile`; `None` logs to stderr.
    pub logfile: Option<PathBuf>,
    /// `-f`/`pidfile`.
    pub pidfile: PathBuf,
    /// `-F`/`fsfreeze-hook`; `None` disables the hook.
    pub fsfreeze_hook: Option<PathBuf>,
    /// `-t`/`statedir`. Not validated here: qemu-ga accepts a relative one and fails later when
    /// it cannot create the state file.
    pub statedir: PathBuf,
    /// `-v`/`verbose`: log every level, debug included.
    pub verbose: bool,
    /// `-d`/`daemon` (the key is `daemon`, not `daemonize`).
    pub daemonize: bool,
    /// `-b`/`block-rpcs`, in qemu-ga's internal order: values in the order given (file first),
    /// the items of each value reversed (`-b a,b -b c` gives `b, a, c`). Only membership
    /// matters to the filter; the order shows in `-D`.
    pub block_rpcs: Vec<String>,
    /// `-a`/`allow-rpcs` (qemu-ga 8.1+), same order rule; empty allows everything.
    pub allow_rpcs: Vec<String>,
    /// `-r`/`retry-path`: reopen the channel every 5 s after it fails or closes.
    pub retry_path: bool,
    /// `-D`: print the settings and exit ([`load`] then returns [`Action::DumpConf`]).
    pub dump_conf: bool,
    /// Our extension, key `version-string` in `[general]` (no command-line option): the version
    /// `guest-info` reports. `None` reports the built-in QEMU-compatible version.
    pub version_string: Option<String>,
    /// Our extension, key `max-file-handles`: how many guest-file handles may be open.
    pub max_file_handles: Option<u64>,
    /// Our extension, key `max-exec-records`: how many guest-exec processes may be started
    /// whose exit status has not been collected yet.
    pub max_exec_records: Option<u64>,
    /// Our extension, key `max-exec-output`: bytes of captured output held for all guest-exec
    /// processes together.
    pub max_exec_output: Option<u64>,
    /// Our extension, key `max-reply-size`: bytes; a longer reply is replaced by an error
    /// (`None` or 0: no cap, as qemu-ga; libvirt hosts want at most 10485760).
    pub max_reply_size: Option<u64>,
    /// Our extension, key `max-token-size`: bytes per token and per message (qemu-ga: 64 MiB).
    pub max_token_size: Option<u64>,
    /// Our extension, key `max-token-count`: tokens per message (qemu-ga: 2 Mi).
    pub max_token_count: Option<u64>,
    /// Our extension, key `max-nesting`: depth of arrays and objects (qemu-ga: 1024).
    pub max_nesting: Option<u64>,
    /// Our extension, key `vsock-allow-cids`: peers `vsock-listen` accepts, a list of CIDs or
    /// `any` (`None`: only the host, CID 2).
    pub vsock_allow_cids: Option<String>,
    /// Our extension, key `fsfreeze-watchdog`: seconds after which frozen filesystems are
    /// thawed if no guest-fsfreeze-thaw came (`None` or 0: never).
    pub fsfreeze_watchdog: Option<u64>,
    /// Our extension, key `fsfreeze-hook-timeout`: seconds a run of the fsfreeze hook may
    /// take before it is killed (`None`: the built-in default; 0: no limit).
    pub fsfreeze_hook_timeout: Option<u64>,
    /// Our extension, key `max-connections`: clients of a listening socket served at once
    /// (`None`: the built-in default; 1: one at a time, as qemu-ga).
    pub max_connections: Option<u64>,
    /// Our extension, key `hotplug-online`: bring hot-added vCPUs and memory blocks online.
    pub hotplug_online: Option<bool>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            method: Method::VirtioSerial,
            path: None,
            logfile: None,
            pidfile: PathBuf::from(DEFAULT_PIDFILE),
            fsfreeze_hook: None,
            statedir: PathBuf::from(DEFAULT_STATEDIR),
            verbose: false,
            daemonize: false,
            block_rpcs: Vec::new(),
            allow_rpcs: Vec::new(),
            retry_path: false,
            dump_conf: false,
            version_string: None,
            max_file_handles: None,
            max_exec_records: None,
            max_exec_output: None,
            max_reply_size: None,
            max_token_size: None,
            max_token_count: None,
            max_nesting: None,
            vsock_allow_cids: None,
            fsfreeze_watchdog: None,
            fsfreeze_hook_timeout: None,
            max_connections: None,
            hotplug_online: None,
        }
    }
}

impl Config {
    /// The channel to open: the configured path, else the method's default.
    pub fn channel_path(&self) -> Result<String, ConfigError> {
        match (&self.path, self.method.default_path()) {
            (Some(path), _) => Ok(path.clone()),
            (None, Some(default)) => Ok(default.to_owned()),
            (None, None) => Err(ConfigError::MissingPath),
        }
    }
}

/// What `main` should do after [`load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the agent.
    Run(Box<Config>),
    /// `-D`: print this text (already newline-terminated) to stdout, exit 0.
    DumpConf(String),
    /// `-b help`, `-b ?`, `-a help`, `-a ?`: print every command name, one per line, in
    /// registration order, exit 0.
    ListCommands,
    /// `-V`: print `QEMU Guest Agent <version>` and exit 0.
    PrintVersion,
    /// `-h`: print this text to stdout, exit 0 (no version line in it).
    Help(String),
}

/// A configuration failure; every one makes qemu-ga exit with status 1.
///
/// qemu-ga prints [`ConfigError::Usage`] raw on stderr (its `Display` is the two lines, no
/// trailing newline) and logs the others as critical messages (before the log file is open, so
/// on stderr, in GLib's format `** (process:PID): CRITICAL **: HH:MM:SS.mmm: <msg>`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad command line: glibc's getopt diagnostic, then qemu-ga's hint.
    #[error("{program}: {detail}\nUnknown option, try '{program} --help' for more information.")]
    Usage {
        /// `argv[0]` as given.
        program: String,
        /// getopt's text, e.g. `invalid option -- 'x'`.
        detail: String,
    },
    /// The configuration file exists (or was named with `-c`) but could not be used.
    #[error("error loading configuration from path: {}, {cause}", path.display())]
    Load {
        /// The file.
        path: PathBuf,
        /// GLib's text for the failure.
        cause: KeyFileError,
    },
    /// `unix-listen` or `vsock-listen` (or an unknown method) without a path.
    #[error("must specify a path for this channel")]
    MissingPath,
    /// A method other than the four known ones.
    #[error("unsupported channel method/type: {0}")]
    UnsupportedMethod(String),
    /// An option argument that must be text is not UTF-8 (`-m`, `-p`, `-b`, `-a`).
    #[error("the argument of -{0} is not valid UTF-8")]
    NotUtf8(char),
    /// An allow or block list names a command group (`@name`) that does not exist; refused so
    /// a typo cannot leave a policy wider than meant. Our extension.
    #[error("unknown command group '@{0}' in block-rpcs/allow-rpcs (groups: {groups})", groups = group_names())]
    UnknownGroup(String),
}

/// `@core, @inventory, ...` for error messages and help.
fn group_names() -> String {
    qga_schema::Group::ALL
        .iter()
        .map(|g| format!("@{}", g.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ConfigError {
    /// True for command-line errors, which are printed raw rather than logged.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Usage { .. })
    }
}

/// Builds the effective configuration from `args` (the full `argv`, program name first) and
/// the value of `$QGA_CONF`.
///
/// Order, as qemu-ga 10.x: the command line is scanned for the last `-c`; that file (which must
/// exist), else `$QGA_CONF`, else [`DEFAULT_CONFIG_PATH`] (either may be missing) is loaded;
/// then options are applied left to right, and `-V`, `-h`, `-b help` stop at once (so an error
/// after them is not reported, one before them is). Scalars from the command line replace the
/// file's; lists are appended after the file's. Last, the channel path is checked
/// ("must specify a path for this channel") and the method, then `-D` is honoured.
pub fn load(args: &[OsString], env_qga_conf: Option<&OsStr>) -> Result<Action, ConfigError> {
    let program = args.first().map_or_else(
        || "qemu-ga".to_owned(),
        |p| p.to_string_lossy().into_owned(),
    );
    let items = cli::scan(args.get(1..).unwrap_or_default());

    let mut cfg = Config::default();
    let mut method = cfg.method.as_str().to_owned();

    let explicit = items.iter().rev().find_map(|item| match item {
        CliItem::Opt(b'c', value) => value.as_deref(),
        _ => None,
    });
    let (conf_path, must_exist) = match explicit {
        Some(path) => (Path::new(path), true),
        None => (
            Path::new(env_qga_conf.unwrap_or(OsStr::new(DEFAULT_CONFIG_PATH))),
            false,
        ),
    };
    match KeyFile::load(conf_path) {
        Ok(kf) => apply_keyfile(&kf, &mut cfg, &mut method),
        Err(e) if !must_exist && e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|cause| ConfigError::Load {
        path: conf_path.to_path_buf(),
        cause,
    })?;

    for item in items {
        let (short, value) = match item {
            CliItem::Error(detail) => return Err(ConfigError::Usage { program, detail }),
            CliItem::Opt(short, value) => (short, value),
        };
        match short {
            b'V' => return Ok(Action::PrintVersion),
            b'h' => return Ok(Action::Help(help_text(&program))),
            b'D' => cfg.dump_conf = true,
            b'v' => cfg.verbose = true,
            b'd' => cfg.daemonize = true,
            b'r' => cfg.retry_path = true,
            b'F' => {
                cfg.fsfreeze_hook =
                    Some(value.map_or_else(|| PathBuf::from(DEFAULT_FSFREEZE_HOOK), PathBuf::from));
            }
            // `c` was handled above; `s` is Windows-only and ignored here, as by qemu-ga.
            b'c' | b's' => {}
            _ => {
                let value = value.unwrap_or_default();
                match short {
                    b'l' => cfg.logfile = Some(PathBuf::from(value)),
                    b'f' => cfg.pidfile = PathBuf::from(value),
                    b't' => cfg.statedir = PathBuf::from(value),
                    _ => {
                        let text = value
                            .into_string()
                            .map_err(|_| ConfigError::NotUtf8(char::from(short)))?;
                        match short {
                            b'm' => method = text,
                            b'p' => cfg.path = Some(text),
                            b'b' | b'a' if text == "help" || text == "?" => {
                                return Ok(Action::ListCommands);
                            }
                            b'b' => append_list(&mut cfg.block_rpcs, &text),
                            _ => append_list(&mut cfg.allow_rpcs, &text),
                        }
                    }
                }
            }
        }
    }

    // qemu-ga resolves the default path before it looks at the method, so an unknown method
    // without a path gets the path message.
    let known = Method::from_str(&method);
    if cfg.path.is_none() && known.as_ref().map_or(true, |m| m.default_path().is_none()) {
        return Err(ConfigError::MissingPath);
    }
    cfg.method = known?;
    check_groups(&cfg)?;
    if cfg.dump_conf {
        return Ok(Action::DumpConf(dump(&cfg)));
    }
    Ok(Action::Run(Box::new(cfg)))
}

/// The settings a configuration file alone gives (defaults, then its `[general]` keys), with
/// the same checks as [`load`] applies to the file: for fuzzing and tools.
pub fn from_keyfile_bytes(data: &[u8]) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    let mut method = cfg.method.as_str().to_owned();
    let load_err = |cause| ConfigError::Load {
        path: PathBuf::from("<bytes>"),
        cause,
    };
    let kf = KeyFile::parse(data).map_err(load_err)?;
    apply_keyfile(&kf, &mut cfg, &mut method).map_err(load_err)?;
    cfg.method = Method::from_str(&method)?;
    check_groups(&cfg)?;
    Ok(cfg)
}

/// Fails on the first `@group` in the allow or block list that names no group.
fn check_groups(cfg: &Config) -> Result<(), ConfigError> {
    for list in [&cfg.block_rpcs, &cfg.allow_rpcs] {
        if let Some(g) = crate::policy::unknown_groups(list).first() {
            return Err(ConfigError::UnknownGroup((*g).to_owned()));
        }
    }
    Ok(())
}

/// Reads the `[general]` keys in qemu-ga's order (so the first bad one is the one reported);
/// unknown keys, including the removed `blacklist`, are ignored.
fn apply_keyfile(kf: &KeyFile, cfg: &mut Config, method: &mut String) -> Result<(), KeyFileError> {
    let g = GROUP;
    if let Some(v) = kf.boolean(g, "daemon")? {
        cfg.daemonize = v;
    }
    if let Some(v) = kf.string(g, "method")? {
        *method = v;
    }
    if let Some(v) = kf.string(g, "path")? {
        cfg.path = Some(v);
    }
    if let Some(v) = kf.string(g, "logfile")? {
        cfg.logfile = Some(PathBuf::from(v));
    }
    if let Some(v) = kf.string(g, "pidfile")? {
        cfg.pidfile = PathBuf::from(v);
    }
    if let Some(v) = kf.string(g, "fsfreeze-hook")? {
        cfg.fsfreeze_hook = Some(PathBuf::from(v));
    }
    if let Some(v) = kf.string(g, "statedir")? {
        cfg.statedir = PathBuf::from(v);
    }
    if let Some(v) = kf.boolean(g, "verbose")? {
        cfg.verbose = v;
    }
    if let Some(v) = kf.boolean(g, "retry-path")? {
        cfg.retry_path = v;
    }
    if let Some(v) = kf.boolean(g, "hotplug-online")? {
        cfg.hotplug_online = Some(v);
    }
    if let Some(v) = kf.string(g, "block-rpcs")? {
        append_list(&mut cfg.block_rpcs, &v);
    }
    if let Some(v) = kf.string(g, "allow-rpcs")? {
        append_list(&mut cfg.allow_rpcs, &v);
    }
    if let Some(v) = kf.string(g, "version-string")? {
        cfg.version_string = Some(v);
    }
    if let Some(v) = kf.string(g, "vsock-allow-cids")? {
        if qga_sys::chan::parse_cid_list(&v).is_none() {
            return Err(KeyFileError::InvalidValue("vsock-allow-cids".to_owned()));
        }
        cfg.vsock_allow_cids = Some(v);
    }
    for (key, slot) in [
        ("max-file-handles", &mut cfg.max_file_handles),
        ("max-exec-records", &mut cfg.max_exec_records),
        ("max-exec-output", &mut cfg.max_exec_output),
        ("max-reply-size", &mut cfg.max_reply_size),
        ("max-token-size", &mut cfg.max_token_size),
        ("max-token-count", &mut cfg.max_token_count),
        ("max-nesting", &mut cfg.max_nesting),
        ("fsfreeze-watchdog", &mut cfg.fsfreeze_watchdog),
        ("fsfreeze-hook-timeout", &mut cfg.fsfreeze_hook_timeout),
        ("max-connections", &mut cfg.max_connections),
    ] {
        if let Some(v) = kf.string(g, key)? {
            *slot = Some(
                v.trim()
                    .parse()
                    .map_err(|_| KeyFileError::InvalidValue(key.to_owned()))?,
            );
        }
    }
    Ok(())
}

/// Splits one list value on `,` and `;`, drops empty items, and appends the items in reverse
/// (qemu-ga's order, visible in `-D`).
fn append_list(list: &mut Vec<String>, value: &str) {
    let start = list.len();
    list.extend(
        value
            .split([',', ';'])
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned),
    );
    list[start..].reverse();
}

/// The key file `qemu-ga -D` prints for `config` (upstream 10.x layout, byte for byte):
/// `[general]`, then `daemon`, `method`, `path` (the default filled in), `logfile` (if set),
/// `pidfile`, `fsfreeze-hook` (if set), `statedir`, `verbose`, `retry-path`, `block-rpcs`,
/// `allow-rpcs` (lists joined with `,`), then our `version-string` and limits if set. Values are escaped
/// as GLib does; non-UTF-8 paths are shown lossily. A listening method without a path (which
/// [`load`] never returns) prints `path=`.
pub fn dump(config: &Config) -> String {
    fn line(out: &mut String, key: &str, value: &str) {
        out.push_str(key);
        out.push('=');
        out.push_str(&escape_value(value));
        out.push('\n');
    }
    fn bool_str(v: bool) -> &'static str {
        if v { "true" } else { "false" }
    }
    let mut out = String::from("[general]\n");
    line(&mut out, "daemon", bool_str(config.daemonize));
    line(&mut out, "method", config.method.as_str());
    line(&mut out, "path", &config.channel_path().unwrap_or_default());
    if let Some(logfile) = &config.logfile {
        line(&mut out, "logfile", &logfile.to_string_lossy());
    }
    line(&mut out, "pidfile", &config.pidfile.to_string_lossy());
    if let Some(hook) = &config.fsfreeze_hook {
        line(&mut out, "fsfreeze-hook", &hook.to_string_lossy());
    }
    line(&mut out, "statedir", &config.statedir.to_string_lossy());
    line(&mut out, "verbose", bool_str(config.verbose));
    line(&mut out, "retry-path", bool_str(config.retry_path));
    line(&mut out, "block-rpcs", &config.block_rpcs.join(","));
    line(&mut out, "allow-rpcs", &config.allow_rpcs.join(","));
    if let Some(version) = &config.version_string {
        line(&mut out, "version-string", version);
    }
    if let Some(cids) = &config.vsock_allow_cids {
        line(&mut out, "vsock-allow-cids", cids);
    }
    for (key, value) in [
        ("max-file-handles", config.max_file_handles),
        ("max-exec-records", config.max_exec_records),
        ("max-exec-output", config.max_exec_output),
        ("max-reply-size", config.max_reply_size),
        ("max-token-size", config.max_token_size),
        ("max-token-count", config.max_token_count),
        ("max-nesting", config.max_nesting),
        ("fsfreeze-watchdog", config.fsfreeze_watchdog),
        ("fsfreeze-hook-timeout", config.fsfreeze_hook_timeout),
        ("max-connections", config.max_connections),
    ] {
        if let Some(v) = value {
            line(&mut out, key, &v.to_string());
        }
    }
    if let Some(v) = config.hotplug_online {
        line(&mut out, "hotplug-online", bool_str(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `$QGA_CONF` that does not exist, so tests never read the host's configuration.
    pub(super) const NO_CONF: &str = "/nonexistent/qga-test/qemu-ga.conf";

    pub(super) fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("qemu-ga")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    pub(super) fn load_with(args: &[&str], conf: Option<&str>) -> Result<Action, ConfigError> {
        match conf {
            None => load(&argv(args), Some(OsStr::new(NO_CONF))),
            Some(text) => {
                let file = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(file.path(), text).unwrap();
                load(&argv(args), Some(file.path().as_os_str()))
            }
        }
    }

    pub(super) fn run_cfg(args: &[&str], conf: Option<&str>) -> Config {
        match load_with(args, conf).unwrap() {
            Action::Run(cfg) => *cfg,
            other => panic!("not Run: {other:?}"),
        }
    }

    fn dumped(args: &[&str], conf: Option<&str>) -> String {
        match load_with(args, conf).unwrap() {
            Action::DumpConf(text) => text,
            other => panic!("not DumpConf: {other:?}"),
        }
    }

    pub(super) fn error(args: &[&str], conf: Option<&str>) -> String {
        load_with(args, conf).unwrap_err().to_string()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    // Expected texts below are what /tmp/qga10/root/usr/sbin/qemu-ga (Debian 10.0.2) printed.

    #[test]
    fn test_dump_defaults_byte_exact() {
        assert_eq!(
            dumped(&["-D"], None),
            "[general]\ndaemon=false\nmethod=virtio-serial\n\
             path=/dev/virtio-ports/org.qemu.guest_agent.0\npidfile=/var/run/qemu-ga.pid\n\
             statedir=/var/run\nverbose=false\nretry-path=false\nblock-rpcs=\nallow-rpcs=\n"
        );
        assert_eq!(dump(&Config::default()), dumped(&["-D"], None));
    }

    #[test]
    fn test_dump_all_options_byte_exact() {
        let args = [
            "-m",
            "unix-listen",
            "-p",
            "/tmp/s",
            "-D",
            "-b",
            "guest-ping,guest-info",
            "-l",
            "/tmp/log",
            "-F",
            "-v",
            "-d",
            "-r",
            "-t",
            "/tmp/st",
            "-f",
            "/tmp/pid",
        ];
        assert_eq!(
            dumped(&args, None),
            "[general]\ndaemon=true\nmethod=unix-listen\npath=/tmp/s\nlogfile=/tmp/log\n\
             pidfile=/tmp/pid\nfsfreeze-hook=/etc/qemu/fsfreeze-hook\nstatedir=/tmp/st\n\
             verbose=true\nretry-path=true\nblock-rpcs=guest-info,guest-ping\nallow-rpcs=\n"
        );
    }

    #[test]
    fn test_dump_lists_file_then_cli_byte_exact() {
        let conf = "[general]\nblock-rpcs=a1,a2\nallow-rpcs=c1,c2\n";
        let args = ["-D", "-b", "b1,b2", "-b", "b3", "-a", "d1,d2", "-a", "d3"];
        let text = dumped(&args, Some(conf));
        assert!(
            text.ends_with("block-rpcs=a2,a1,b2,b1,b3\nallow-rpcs=c2,c1,d2,d1,d3\n"),
            "{text}"
        );
    }

    #[test]
    fn test_dump_escapes_byte_exact() {
        let args = [
            "-D",
            "-m",
            "unix-listen",
            "-p",
            "  a\\b\tc\nd  ",
            "-l",
            " x#y=z[a]",
            "-f",
            "\u{e9};,",
            "-t",
            "\t \tx\ty\rz\u{1}",
            "-F\n x",
        ];
        assert_eq!(
            dumped(&args, None),
            "[general]\ndaemon=false\nmethod=unix-listen\npath=\\s\\sa\\\\b\tc\\nd  \n\
             logfile=\\sx#y=z[a]\npidfile=\u{e9};,\nfsfreeze-hook=\\n\\sx\n\
             statedir=\\t\\s\\tx\ty\\rz\u{1}\nverbose=false\nretry-path=false\nblock-rpcs=\n\
             allow-rpcs=\n"
        );
        let conf = "[general]\n\tpath = \\s x\\n\\t\\r\\\\\n";
        assert!(dumped(&["-D"], Some(conf)).contains("\npath=\\s\\sx\\n\t\\r\\\\\n"));
    }

    #[test]
    fn test_dump_empty_values_byte_exact() {
        let text = dumped(
            &[
                "-D",
                "-m",
                "unix-listen",
                "-p",
                "",
                "-l",
                "",
                "-t",
                "",
                "-f",
                "",
            ],
            None,
        );
        assert_eq!(
            text,
            "[general]\ndaemon=false\nmethod=unix-listen\npath=\nlogfile=\npidfile=\nstatedir=\n\
             verbose=false\nretry-path=false\nblock-rpcs=\nallow-rpcs=\n"
        );
        assert!(dumped(&["-D", "--fsfreeze-hook="], None).contains("\nfsfreeze-hook=\n"));
    }

    #[test]
    fn test_dump_version_string_is_last() {
        let text = dumped(&["-D"], Some("[general]\nversion-string=9.9.9-custom\n"));
        assert!(
            text.ends_with("allow-rpcs=\nversion-string=9.9.9-custom\n"),
            "{text}"
        );
    }

    #[test]
    fn test_dump_lists_fixed_separators() {
        // qemu-ga 10.0.2 printed `block-rpcs=x\\y;z, sp ` (one bogus item per `,`): our fix.
        let text = dumped(&["-D", "-b", " sp ,x\\y;z"], None);
        assert!(text.contains("\nblock-rpcs=z,x\\\\y,sp\n"), "{text}");
    }

    #[test]
    fn test_load_precedence_scalars_cli_win() {
        let conf = "[general]\ndaemon=true\nmethod=unix-listen\npath=/f\nlogfile=/fl\n\
                    pidfile=/fp\nfsfreeze-hook=/fh\nstatedir=/fs\nverbose=1\nretry-path=true\n";
        let cfg = run_cfg(&[], Some(conf));
        assert_eq!(cfg.method, Method::UnixListen);
        assert_eq!(cfg.path.as_deref(), Some("/f"));
        assert_eq!(cfg.logfile, Some(PathBuf::from("/fl")));
        assert_eq!(cfg.pidfile, PathBuf::from("/fp"));
        assert_eq!(cfg.fsfreeze_hook, Some(PathBuf::from("/fh")));
        assert_eq!(cfg.statedir, PathBuf::from("/fs"));
        assert!(cfg.daemonize && cfg.verbose && cfg.retry_path);

        let args = [
            "-m",
            "vsock-listen",
            "-p",
            "3:1234",
            "-l",
            "/cl",
            "-f",
            "/cp",
            "-F/ch",
            "-t",
            "/cs",
        ];
        let cfg = run_cfg(&args, Some(conf));
        assert_eq!(cfg.method, Method::VsockListen);
        assert_eq!(cfg.path.as_deref(), Some("3:1234"));
        assert_eq!(cfg.logfile, Some(PathBuf::from("/cl")));
        assert_eq!(cfg.pidfile, PathBuf::from("/cp"));
        assert_eq!(cfg.fsfreeze_hook, Some(PathBuf::from("/ch")));
        assert_eq!(cfg.statedir, PathBuf::from("/cs"));
        assert!(cfg.daemonize && cfg.verbose && cfg.retry_path);
        assert!(!cfg.dump_conf);
    }

    #[test]
    fn test_load_defaults() {
        let cfg = run_cfg(&[], None);
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.channel_path().unwrap(), VIRTIO_SERIAL_DEFAULT_PATH);
        assert_eq!(cfg.version_string, None);
    }

    #[test]
    fn test_load_lists_accumulate_file_first() {
        let conf = "[general]\nblock-rpcs=guest-exec\nallow-rpcs=guest-ping,guest-info\n";
        let cfg = run_cfg(
            &["-b", "guest-file-open", "--allow-rpcs=guest-sync"],
            Some(conf),
        );
        assert_eq!(cfg.block_rpcs, strings(&["guest-exec", "guest-file-open"]));
        assert_eq!(
            cfg.allow_rpcs,
            strings(&["guest-info", "guest-ping", "guest-sync"])
        );
    }

    #[test]
    fn test_load_lists_semicolon_comma_and_empties() {
        let conf = "[general]\nblock-rpcs=guest-ping;guest-info;\nallow-rpcs = x ; y;\n";
        let cfg = run_cfg(&["-b", ",a,,b,", "-b", "", "-a", "z"], Some(conf));
        assert_eq!(
            cfg.block_rpcs,
            strings(&["guest-info", "guest-ping", "b", "a"])
        );
        assert_eq!(cfg.allow_rpcs, strings(&["y", "x", "z"]));
    }

    #[test]
    fn test_load_explicit_config_must_exist_err() {
        let missing = "/nonexistent/qga-test/explicit.conf";
        assert_eq!(
            error(&["-c", missing], None),
            format!("error loading configuration from path: {missing}, No such file or directory")
        );
        assert_eq!(
            error(&["-c", ""], None),
            "error loading configuration from path: , No such file or directory"
        );
        // The config file is loaded before -V is acted on.
        assert!(error(&["-V", "-c", missing], None).contains("No such file"));
    }

    #[test]
    fn test_load_default_config_missing_ignored_other_errors_fatal() {
        assert!(load(&argv(&["-D"]), Some(OsStr::new(NO_CONF))).is_ok());
        assert!(load(&argv(&["-D"]), Some(OsStr::new(""))).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let err = load(&argv(&["-D"]), Some(dir.path().as_os_str())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "error loading configuration from path: {}, Not a regular file",
                dir.path().display()
            )
        );
        assert!(!err.is_usage());
    }

    #[test]
    fn test_load_last_c_wins_over_env() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.conf");
        let bad = dir.path().join("bad.conf");
        std::fs::write(&good, "[general]\npath=/from-c\n").unwrap();
        std::fs::write(&bad, "[general]\nfoo\n").unwrap();
        let args = argv(&[
            "-c",
            bad.to_str().unwrap(),
            "--config",
            good.to_str().unwrap(),
        ]);
        let Action::Run(cfg) = load(&args, Some(bad.as_os_str())).unwrap() else {
            panic!("not Run");
        };
        assert_eq!(cfg.path.as_deref(), Some("/from-c"));
    }

    #[test]
    fn test_load_bad_config_file_err() {
        let bad = "[general]\nfoo\n";
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bad).unwrap();
        let err = load(&argv(&["-V"]), Some(file.path().as_os_str())).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "error loading configuration from path: {}, Key file contains line \u{201c}foo\u{201d} \
                 which is not a key-value pair, group, or comment",
                file.path().display()
            )
        );
        // Keys are read in qemu-ga's order; the first bad one is reported.
        let conf = "[general]\nverbose=yes\ndaemon=yes\n";
        assert!(error(&[], Some(conf)).ends_with(
            ", Key file contains key \u{201c}daemon\u{201d} which has a value that cannot be interpreted."
        ));
        assert!(
            error(&[], Some("[general]\nretry-path=TRUE\n")).contains("\u{201c}retry-path\u{201d}")
        );
        assert!(
            error(&[], Some("[general]\nblock-rpcs=a\\;b\n"))
                .contains("\u{201c}block-rpcs\u{201d}")
        );
        assert!(error(&[], Some("[]\n")).ends_with(", Invalid group name: "));
    }

    #[test]
    fn test_load_unknown_keys_ignored() {
        let conf = "[general]\nblacklist=guest-ping\ndaemonize=1\nfoo=bar\n[other]\npath=/x\n";
        assert_eq!(run_cfg(&[], Some(conf)), Config::default());
    }

    #[test]
    fn test_load_and_dump_limits() {
        let cfg = run_cfg(
            &[],
            Some("[general]\nmax-file-handles=10\nmax-exec-output = 1048576\n"),
        );
        assert_eq!(
            (
                cfg.max_file_handles,
                cfg.max_exec_records,
                cfg.max_exec_output
            ),
            (Some(10), None, Some(1 << 20))
        );
        let text = dump(&cfg);
        assert!(
            text.ends_with("allow-rpcs=\nmax-file-handles=10\nmax-exec-output=1048576\n"),
            "{text}"
        );
    }

    #[test]
    fn test_load_version_string() {
        let cfg = run_cfg(&[], Some("[general]\nversion-string = 7.2.22\n"));
        assert_eq!(cfg.version_string.as_deref(), Some("7.2.22"));
    }

    #[test]
    fn test_load_method_and_path_errors() {
        assert_eq!(
            error(&["-m", "foo", "-p", "/x"], None),
            "unsupported channel method/type: foo"
        );
        assert_eq!(
            error(&["-m", "foo", "-p", "/x", "-D"], None),
            "unsupported channel method/type: foo"
        );
        assert_eq!(
            error(&["-m", "foo"], None),
            "must specify a path for this channel"
        );
        assert_eq!(
            error(&["-m", "unix-listen"], None),
            "must specify a path for this channel"
        );
        assert_eq!(
            error(&["-m", "vsock-listen", "-D"], None),
            "must specify a path for this channel"
        );
        assert_eq!(
            error(&[], Some("[general]\nmethod=\n")),
            "must specify a path for this channel"
        );
        assert_eq!(
            error(&[], Some("[general]\nmethod=unix-listen\n")),
            "must specify a path for this channel"
        );
        let cfg = run_cfg(&["-m", "isa-serial"], None);
        assert_eq!(cfg.channel_path().unwrap(), ISA_SERIAL_DEFAULT_PATH);
        let cfg = run_cfg(&["-m", "unix-listen", "-p", ""], None);
        assert_eq!(cfg.path.as_deref(), Some(""));
        // The last -m wins.
        assert_eq!(
            run_cfg(&["-m", "foo", "-m", "isa-serial"], None).method,
            Method::IsaSerial
        );
    }

    #[test]
    fn test_channel_path() {
        let mut cfg = Config {
            method: Method::UnixListen,
            ..Config::default()
        };
        assert_eq!(
            cfg.channel_path().unwrap_err().to_string(),
            "must specify a path for this channel"
        );
        cfg.path = Some("/run/qga.sock".to_owned());
        assert_eq!(cfg.channel_path().unwrap(), "/run/qga.sock");
        cfg.method = Method::VsockListen;
        cfg.path = None;
        assert!(cfg.channel_path().is_err());
    }

    #[test]
    fn test_method_names() {
        for (name, m) in [
            ("virtio-serial", Method::VirtioSerial),
            ("isa-serial", Method::IsaSerial),
            ("unix-listen", Method::UnixListen),
            ("vsock-listen", Method::VsockListen),
        ] {
            assert_eq!(name.parse::<Method>().unwrap(), m);
            assert_eq!(m.to_string(), name);
        }
        assert!("Unix-Listen".parse::<Method>().is_err());
    }

    #[test]
    fn test_unknown_group_fails_closed() {
        let msg = error(
            &["-m", "unix-listen", "-p", "/x", "-a", "@core,@invnetory"],
            None,
        );
        assert!(
            msg.starts_with("unknown command group '@invnetory' in block-rpcs/allow-rpcs (groups: @core, @inventory,"),
            "{msg}"
        );
        let msg = error(&[], Some("[general]\nblock-rpcs=@exec;@files\n"));
        assert!(msg.contains("'@files'"), "{msg}");
        let cfg = run_cfg(&["-b", "@exec,@auth"], None);
        assert_eq!(cfg.block_rpcs, strings(&["@auth", "@exec"]));
    }
}
