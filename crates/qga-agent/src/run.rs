//! Start-up and the main loop: configuration, logging, state, channel (with
//! `--retry-path`), daemonizing after the channel is open (as qemu-ga 10.x), signals.

use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use qga_sys::chan;
use qga_sys::process::{self, PidFile};

use crate::agent::{Agent, QEMU_COMPAT_VERSION};
use crate::config::{self, Action, Config, Method};
use crate::exec_table::{DEFAULT_MAX_OUTPUT, DEFAULT_MAX_RECORDS, ExecTable};
use crate::handles::{DEFAULT_MAX_HANDLES, Handles};
use crate::policy::Policy;
use crate::registry::COMMANDS;
use crate::state::StateFile;
use crate::transport::{self, Endpoint};

/// Set by SIGTERM/SIGINT.
static QUIT: AtomicBool = AtomicBool::new(false);

/// How long `--retry-path` waits before trying the channel again (as qemu-ga).
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// Prints a start-up failure the way GLib prints qemu-ga's criticals before logging is set:
/// qemu-ga never sets a locale, so GLib writes non-ASCII characters (its quotes) as `?`.
fn critical(msg: &str) {
    let msg: String = msg
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (h, m, s) = (
        (now.as_secs() / 3600) % 24,
        (now.as_secs() / 60) % 60,
        now.as_secs() % 60,
    );
    let _ = writeln!(
        std::io::stderr(),
        "\n** (process:{}): CRITICAL **: {h:02}:{m:02}:{s:02}.{:03}: {msg}",
        std::process::id(),
        now.subsec_millis()
    );
}

/// The version to report: the configured one, else the QEMU-compatible default.
fn version(config_version: Option<&str>) -> String {
    config_version.unwrap_or(QEMU_COMPAT_VERSION).to_string()
}

/// Entry point of the `qemu-ga` binary.
pub fn main(args: &[OsString], qga_conf: Option<&OsStr>) -> ExitCode {
    let action = match config::load(args, qga_conf) {
        Ok(a) => a,
        Err(config::ConfigError::Usage { program, detail }) => {
            // As qemu-ga: getopt's diagnostic on stderr, the hint on stdout.
            eprintln!("{program}: {detail}");
            println!("Unknown option, try '{program} --help' for more information.");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            critical(&e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    let printed = match action {
        Action::PrintVersion => writeln!(stdout, "QEMU Guest Agent {}", version(None)),
        Action::Help(text) => write!(stdout, "{text}"),
        Action::DumpConf(text) => write!(stdout, "{text}"),
        Action::ListCommands => COMMANDS
            .iter()
            .try_for_each(|c| writeln!(stdout, "{}", c.name)),
        Action::Run(config) => return run(&config),
    };
    if printed.is_err() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn endpoint(config: &Config) -> Result<Endpoint, String> {
    if let Some(sock) = chan::listen_fds().map_err(|e| e.to_string())? {
        return Ok(Endpoint::Activated(sock.fd, sock.family));
    }
    let path = config.channel_path().map_err(|e| e.to_string())?;
    Ok(match config.method {
        Method::VirtioSerial => Endpoint::VirtioSerial(path.into()),
        Method::IsaSerial => Endpoint::IsaSerial(path.into()),
        Method::UnixListen => Endpoint::UnixListen(path.into()),
        Method::VsockListen => match chan::parse_vsock_addr(&path) {
            Some((cid, port)) => Endpoint::VsockListen(cid, port),
            None => return Err(format!("failed to parse vsock address: '{path}'")),
        },
    })
}

/// Runs the agent until SIGTERM/SIGINT (exit 0) or a fatal channel error (exit 1).
fn run(config: &Config) -> ExitCode {
    let logfile = match &config.logfile {
        None => None,
        Some(path) => match OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => Some(f),
            Err(e) => {
                critical(&format!("unable to open specified log file: {e}"));
                return ExitCode::FAILURE;
            }
        },
    };
    crate::logging::init(logfile, config.verbose);
    qga_sys::memory_tuning::keep_freed_memory();
    for name in config.block_rpcs.iter().chain(&config.allow_rpcs) {
        if !COMMANDS.iter().any(|c| c.name == name) {
            log::warn!("no such command in the command table: {name}");
        }
    }
    for dir in [Some(config.statedir.as_path()), config.pidfile.parent()]
        .into_iter()
        .flatten()
    {
        if let Some(why) = qga_sys::process::unsafe_dir(dir) {
            log::warn!("{why}: other users could tamper with the agent's files there");
        }
    }
    // From here on failures are logged in the agent's own format, as qemu-ga does.
    let state = match StateFile::open(&config.statedir) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            log::error!(
                "unable to create state file at path {}",
                config.statedir.join("qga.state").display()
            );
            log::error!("failed to load persistent state");
            log::error!("error initializing guest agent");
            return ExitCode::FAILURE;
        }
    };
    let mut agent = Agent {
        version: version(config.version_string.as_deref()),
        policy: Policy::new(&config.allow_rpcs, &config.block_rpcs),
        frozen: false,
        delimit_response: false,
        state,
        os_release_override: std::env::var_os("QGA_OS_RELEASE").map(Into::into),
        files: Handles::new(limit(config.max_file_handles, DEFAULT_MAX_HANDLES)),
        execs: ExecTable::new(
            limit(config.max_exec_records, DEFAULT_MAX_RECORDS),
            limit(config.max_exec_output, DEFAULT_MAX_OUTPUT),
        ),
        max_reply: limit(config.max_reply_size, 0),
        wire_limits: wire_limits(config),
    };
    let marker = config.statedir.join("qga.state.isfrozen");
    let hook_timeout = match config.fsfreeze_hook_timeout {
        None => Some(crate::commands::freeze::DEFAULT_HOOK_TIMEOUT),
        Some(0) => None,
        Some(s) => Some(Duration::from_secs(s)),
    };
    let frozen = crate::commands::freeze::init(crate::commands::freeze::FreezeSettings {
        hook: config.fsfreeze_hook.clone(),
        hook_timeout,
        watchdog: config
            .fsfreeze_watchdog
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        marker: marker.clone(),
    });
    if frozen {
        log::warn!(
            "previous instance appears to have exited with frozen filesystems. deferring \
             logging/pidfile creation and disabling non-fsfreeze-safe commands until \
             guest-fsfreeze-thaw is issued, or filesystems are manually unfrozen and the file \
             {} is removed",
            marker.display()
        );
        crate::logging::LOGGING_ENABLED.store(false, Ordering::SeqCst);
        agent.frozen = true;
    }
    if let Err(e) = process::install_signal_flag(&QUIT) {
        log::error!("failed to install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let mut pidfile: Option<PidFile> = None;
    let mut first = true;
    loop {
        let channel =
            endpoint(config).and_then(|ep| transport::open(ep).map_err(|e| e.to_string()));
        let channel = match channel {
            Ok(transport::Channel::Vsock(mut l)) => {
                l.allow_peers(vsock_peers(config));
                transport::Channel::Vsock(l)
            }
            Ok(c) => c,
            Err(e) => {
                log::error!("{e}");
                log::error!("failed to initialize guest agent channel");
                if !config.retry_path {
                    log::error!("error initializing guest agent");
                    return ExitCode::FAILURE;
                }
                if sleep_or_quit(RETRY_DELAY) {
                    return ExitCode::SUCCESS;
                }
                continue;
            }
        };
        if first {
            first = false;
            if config.daemonize {
                if let Err(e) = process::daemonize() {
                    log::error!("failed to daemonize: {e}");
                    return ExitCode::FAILURE;
                }
                match PidFile::create(&config.pidfile) {
                    Ok(p) => pidfile = Some(p),
                    Err(e) => {
                        log::error!("failed to create pidfile: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            if config.hotplug_online == Some(true) {
                crate::hotplug::start();
            }
        }
        let max_connections = limit(config.max_connections, transport::DEFAULT_MAX_CONNECTIONS);
        match transport::serve(&mut agent, &channel, &QUIT, max_connections) {
            Ok(transport::Stop::Quit) => break,
            // The port was unplugged: nothing is left to serve, and it is no failure. The
            // unit is bound to the port (BindsTo=) and a failed exit would put it into
            // Restart='s wait, where the stop job that the unplug queues blocks the start
            // that plugging the port back asks for (the port then stays without an agent).
            Err(e) if e.is_device_gone() && !config.retry_path => {
                log::warn!("the channel's device went away ({e}); exiting");
                break;
            }
            Err(e) => {
                log::error!("error reading channel: {e}");
                if !config.retry_path {
                    drop(pidfile);
                    return ExitCode::FAILURE;
                }
                if sleep_or_quit(RETRY_DELAY) {
                    break;
                }
            }
        }
    }
    // SIGTERM/SIGINT while frozen: thaw and run the thaw hook before exiting (qemu-ga
    // ignores the signal then).
    crate::commands::freeze::thaw_on_exit(&mut agent);
    if let Err(e) = agent.state.release_unused() {
        log::warn!("{e}");
    }
    drop(pidfile);
    ExitCode::SUCCESS
}

/// The vsock peers to accept: `vsock-allow-cids` (checked when loaded), else the host only.
fn vsock_peers(config: &Config) -> Option<Vec<u32>> {
    config
        .vsock_allow_cids
        .as_deref()
        .and_then(chan::parse_cid_list)
        .unwrap_or(Some(vec![chan::VSOCK_HOST_CID]))
}

/// The framer's limits: qemu-ga's, unless configured.
fn wire_limits(config: &Config) -> qga_proto::Limits {
    let d = qga_proto::Limits::default();
    qga_proto::Limits {
        token_size: limit(config.max_token_size, d.token_size),
        token_count: limit(config.max_token_count, d.token_count),
        nesting: limit(config.max_nesting, d.nesting),
    }
}

/// A configured limit, or the default.
fn limit(configured: Option<u64>, default: usize) -> usize {
    configured.map_or(default, |v| usize::try_from(v).unwrap_or(usize::MAX))
}

/// Sleeps, waking early on a quit signal; true when the agent should quit.
fn sleep_or_quit(d: Duration) -> bool {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() {
        if QUIT.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(step.min(left));
        left = left.saturating_sub(step);
    }
    QUIT.load(Ordering::SeqCst)
}
