//! `qga`: talk to a QEMU guest agent (ours or qemu-ga) from the host.
//!
//! The connection is resynchronised (0xFF + guest-sync-delimited) before every session, so
//! stale replies left in a channel by an earlier client never confuse the answers.
#![forbid(unsafe_code)]

mod assets;
mod cp;
mod exec;
mod fanout;
mod guest;
mod output;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use qga_client::{Channel, Client, ClientError, Target};
use qga_proto::b64;
use qga_schema as s;

const EXAMPLES: &str = "\
Examples:
  qga -s /run/vm1.qga info                 agent version and commands
  qga -d web1 osinfo                       a libvirt guest, by domain name
  qga --all inventory                      every libvirt guest: host name, OS, IPs, agent
  qga -s vsock:3:1234 ping                 an agent listening on vsock
  qga -s vm.sock ping --count 100          reply times: min, p50, p99, max
  qga -s /dev/pts/5 hostname               a serial channel (pty of a chardev)
  qga -s libvirt:web1 users                a libvirt guest through virsh
  qga -s vm.sock exec -- uname -a          run a command, exit with its code
  qga -s vm.sock cp ./file.txt :/tmp/file.txt
  qga -s vm.sock cp --resume :/var/log/big.log .
  qga -s vm.sock cp -r ./site :/srv/       copy a directory tree (both ways)
  qga -s vm.sock ls -l /var/log            list a guest directory
  qga -s vm.sock exec --cwd /srv --timeout 60 -- make
  qga -s a.sock -s b.sock --json osinfo    several guests at once

TARGET is a unix socket path, vsock:CID:PORT, a serial device path, or libvirt:DOMAIN.
libvirt guests (-d, --all) are found by their agent sockets under
/var/lib/libvirt/qemu/channel/target and /run/libvirt/qemu/channel; as libvirtd keeps the
socket of a running domain to itself, they are reached through virsh when it is installed.

exec, ls, stat and cp -r use the agent's __org.qga_ extensions when guest-info lists them
(qga's own agent) and fall back to standard commands with qemu-ga.";

/// A client for QEMU guest agents.
#[derive(Debug, Parser)]
#[command(name = "qga", version, after_help = EXAMPLES)]
struct Cli {
    /// The host end of an agent channel: a unix socket path, vsock:CID:PORT or a serial
    /// device; repeat for several guests.
    #[arg(short, long = "socket", value_name = "TARGET", global = true)]
    sockets: Vec<String>,
    /// A libvirt guest by domain name (its agent channel socket is found by itself); repeat
    /// for several.
    #[arg(short, long = "domain", value_name = "NAME", global = true)]
    domains: Vec<String>,
    /// Every libvirt guest with an agent channel on this host.
    #[arg(long, global = true)]
    all: bool,
    /// How to reach libvirt guests (-d, --all): through virsh (libvirtd holds the agent
    /// socket of a running domain), the socket itself, or auto (virsh when installed).
    #[arg(long, value_enum, default_value = "auto", global = true)]
    via: Via,
    /// How many guests to talk to at once.
    #[arg(long, default_value_t = 8, value_name = "N", global = true)]
    jobs: usize,
    /// Print the agent's JSON return value instead of the human form.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for each reply; given before the command (`qga --timeout 60 fsinfo`),
    /// so that `exec --timeout`, the command's own time limit, stays a separate option.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

/// How libvirt guests are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    /// virsh when it is installed, else the socket.
    Auto,
    /// `virsh qemu-agent-command`.
    Virsh,
    /// The channel socket under libvirt's directories.
    Socket,
}

/// Guest sleep states.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum SuspendMode {
    /// Suspend to disk (hibernate).
    Disk,
    /// Suspend to RAM.
    Ram,
    /// Save to disk, then suspend to RAM.
    Hybrid,
}

/// Seek origins.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Whence {
    /// From the start.
    Set,
    /// From the current position.
    Cur,
    /// From the end.
    End,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check that the agent answers; with --count, measure its reply time.
    Ping {
        /// Send this many guest-pings one after another and print the round-trip times
        /// (min, p50, p99, max).
        #[arg(long, value_name = "N")]
        count: Option<u32>,
        /// With --count: milliseconds to wait between pings.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        interval: u64,
    },
    /// The agent's version and commands.
    Info,
    /// Guest time (`time`), or set it: `time sync`, `time set NS`, `time from-rtc`.
    Time {
        #[command(subcommand)]
        action: Option<TimeAction>,
    },
    /// The guest's host name.
    Hostname,
    /// The guest's operating system.
    Osinfo,
    /// The guest's time zone.
    Timezone,
    /// Logged-in users.
    Users,
    /// Network interfaces and addresses.
    Interfaces,
    /// Routes.
    Routes,
    /// Virtual CPUs.
    Vcpus,
    /// Take virtual CPUs online or offline: `set-vcpus 1=off 2=on`.
    SetVcpus {
        /// CPU=on|off pairs.
        #[arg(required = true, value_name = "CPU=on|off")]
        changes: Vec<String>,
    },
    /// Per-CPU time counters.
    Cpustats,
    /// Load averages.
    Load,
    /// Memory blocks (hot-pluggable memory sections).
    MemoryBlocks,
    /// Take memory blocks online or offline: `set-memory-blocks 32=off`.
    SetMemoryBlocks {
        /// INDEX=on|off pairs.
        #[arg(required = true, value_name = "INDEX=on|off")]
        changes: Vec<String>,
    },
    /// The size of one memory block.
    MemoryBlockInfo,
    /// Mounted filesystems, their sizes and disks.
    Fsinfo,
    /// Disks and partitions.
    Disks,
    /// Disk I/O counters.
    Diskstats,
    /// Whether the agent froze the filesystems.
    FreezeStatus,
    /// Freeze the guest's filesystems (all, or the mount points given).
    Freeze {
        /// Mount points to freeze (default: all).
        mountpoints: Vec<String>,
    },
    /// Thaw the guest's filesystems.
    Thaw,
    /// Discard unused blocks on the guest's filesystems.
    Trim {
        /// Skip free ranges smaller than this many bytes.
        #[arg(long)]
        minimum: Option<i64>,
    },
    /// Run a command in the guest and show its output; exits with its exit code (128+N
    /// when signal N ended it).
    ///
    /// With an agent that offers __org.qga_exec (qga's agent) the output is shown as it
    /// arrives and Ctrl-C is sent on to the guest process; with qemu-ga the output is shown
    /// when the command ends.
    Exec {
        /// Feed this file (or `-` for standard input) to the command.
        #[arg(long)]
        stdin: Option<PathBuf>,
        /// Time limit in seconds: with __org.qga_exec the agent then sends --signal to the
        /// command's process group; with qemu-ga qga stops waiting and the command keeps
        /// running.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
        /// The signal sent at the time limit (default KILL): a number or HUP, INT, QUIT,
        /// ABRT, KILL, PIPE, ALRM, TERM. Needs __org.qga_exec.
        #[arg(long, value_name = "SIGNAL", requires = "timeout")]
        signal: Option<String>,
        /// Start the command and print its pid (see `exec-status`).
        #[arg(long)]
        detach: bool,
        /// Environment variables (NAME=VALUE) for the command.
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Working directory of the command (with qemu-ga: set by `sh -c 'cd DIR && exec
        /// ...'` in the guest).
        #[arg(long, value_name = "DIR")]
        cwd: Option<String>,
        /// Run as this account (name or uid). Needs __org.qga_exec.
        #[arg(long)]
        user: Option<String>,
        /// Report the exit as soon as the command itself exits, even while a process it
        /// left in the background holds its output open. Needs __org.qga_exec.
        #[arg(long)]
        exit_on_main: bool,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        argv: Vec<String>,
    },
    /// The state of a command started with `exec --detach`.
    ExecStatus {
        /// The pid `exec --detach` printed.
        pid: i64,
    },
    /// Copy a file: `qga cp local :/guest/path` or `qga cp :/guest/path local`; with -r a
    /// directory tree.
    Cp {
        /// Continue an interrupted copy: append to the destination from its current size.
        #[arg(long, conflicts_with = "recursive")]
        resume: bool,
        /// Copy directories and everything in them (regular files and directories; links
        /// and special files are skipped and named).
        #[arg(short, long)]
        recursive: bool,
        /// Source (`:path` is in the guest).
        src: String,
        /// Destination (`:path` is in the guest).
        dst: String,
    },
    /// List a guest directory (a file: that file), sorted by name.
    ///
    /// Uses __org.qga_file-list when the agent offers it, else find and stat in the guest
    /// through guest-exec.
    Ls {
        /// Long form: type and permissions, owner, group, size, modification time, name.
        #[arg(short, long)]
        long: bool,
        /// The guest path.
        path: String,
    },
    /// Describe a guest file: type, size, mode, owner, times, link target.
    ///
    /// Uses __org.qga_file-stat when the agent offers it, else stat in the guest through
    /// guest-exec.
    Stat {
        /// Describe what a symbolic link points to instead of the link.
        #[arg(short = 'L', long)]
        dereference: bool,
        /// The guest path.
        path: String,
    },
    /// Low-level file operations on guest file handles (guest-file-*).
    #[command(subcommand)]
    File(FileCmd),
    /// Send a raw JSON request and print the reply line.
    Raw {
        /// The request, e.g. '{"execute":"guest-ping"}'.
        request: String,
    },
    /// Power the guest off (or `--mode halt|reboot`).
    Shutdown {
        /// halt, powerdown (default) or reboot.
        #[arg(long)]
        mode: Option<String>,
    },
    /// Suspend the guest to disk, RAM or both.
    Suspend {
        /// The sleep state.
        mode: SuspendMode,
    },
    /// Set a user's password (read from the terminal without echo, or from standard input).
    Password {
        /// The account.
        user: String,
        /// The password given is already crypted (`$6$...`).
        #[arg(long)]
        crypted: bool,
    },
    /// A user's SSH authorized keys: `ssh-keys USER`, `--add KEY`, `--remove KEY`.
    SshKeys {
        /// The account.
        user: String,
        /// Keys to add.
        #[arg(long)]
        add: Vec<String>,
        /// With --add: replace all keys by the ones given.
        #[arg(long)]
        reset: bool,
        /// Keys to remove.
        #[arg(long)]
        remove: Vec<String>,
    },
    /// One row per guest: name, host name, OS, addresses, agent version or the error.
    Inventory,
    /// Write the man page and shell completions under DIR (for packagers).
    #[command(hide = true)]
    GenerateAssets {
        /// Output directory: DIR/man/qga.1, DIR/completions/{qga.bash,_qga,qga.fish}.
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TimeAction {
    /// Set the guest clock to the host's.
    Sync,
    /// Set the guest clock to NS nanoseconds since the epoch.
    Set {
        /// Nanoseconds since 1970-01-01 UTC.
        ns: i64,
    },
    /// Set the guest's system clock from its hardware clock.
    FromRtc,
}

#[derive(Debug, Subcommand)]
enum FileCmd {
    /// Open a file; prints the handle.
    Open {
        /// The guest path.
        path: String,
        /// fopen-style mode: r, w, a, r+, w+, a+ (with b).
        #[arg(long, default_value = "r")]
        mode: String,
        /// Refuse a symbolic link as the last path component (through
        /// __org.qga_file-open-nofollow; qemu-ga has no such command).
        #[arg(long)]
        no_follow: bool,
    },
    /// Read from a handle; writes the bytes to standard output.
    Read {
        /// The handle.
        handle: i64,
        /// At most this many bytes.
        #[arg(long)]
        count: Option<i64>,
    },
    /// Write bytes (the argument, or standard input with `-`) to a handle.
    Write {
        /// The handle.
        handle: i64,
        /// The data (`-` reads standard input).
        data: String,
    },
    /// Move a handle's position; prints the new position.
    Seek {
        /// The handle.
        handle: i64,
        /// The offset.
        #[arg(allow_negative_numbers = true)]
        offset: i64,
        /// Where the offset counts from.
        #[arg(long, value_enum, default_value = "set")]
        whence: Whence,
    },
    /// Flush a handle.
    Flush {
        /// The handle.
        handle: i64,
    },
    /// Close a handle.
    Close {
        /// The handle.
        handle: i64,
    },
}

/// What went wrong, with a hint of what to do.
#[derive(Debug)]
struct Failure(String);

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure(match e {
            ClientError::Agent(q) if q.desc.contains("has been disabled") => {
                format!(
                    "{}: the guest's agent policy disables it (block-rpcs/allow-rpcs in its qemu-ga.conf)",
                    q.desc
                )
            }
            ClientError::Agent(q) if q.class == qga_proto::ErrorClass::CommandNotFound => {
                format!("{}: the guest's agent is too old for this command", q.desc)
            }
            ClientError::Agent(q) => q.desc,
            ClientError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                "the agent did not answer in time: is qemu-ga running in the guest? (check with `systemctl status qemu-guest-agent` inside; try a larger `qga --timeout SECONDS` before the command)".into()
            }
            ClientError::Closed => {
                "the channel closed: another client may hold it, or the guest's agent stopped"
                    .into()
            }
            other => other.to_string(),
        })
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure(s)
    }
}

type Conn = Client<Channel>;

/// Opens and synchronises one guest's channel.
fn connect(target: &Target, timeout: u64) -> Result<Conn, Failure> {
    let t = Some(Duration::from_secs(timeout.max(1)));
    let mut c = Client::open(target, t).map_err(|e| {
        let e = match e {
            ClientError::Io(e) => e,
            other => return Failure(format!("cannot connect to {target}: {other}")),
        };
        let hint = match (target, e.kind()) {
            (_, std::io::ErrorKind::PermissionDenied) => {
                "run qga as root or as a user allowed to open it".to_string()
            }
            (Target::Unix(_), std::io::ErrorKind::NotFound) => {
                "is the VM running, and is this the agent's channel socket? libvirt guests can be named with -d DOMAIN".into()
            }
            (Target::Unix(_), std::io::ErrorKind::ResourceBusy) => {
                "for a libvirt guest, name it with -d DOMAIN to go through libvirt".into()
            }
            (Target::Libvirt(_), _) => {
                "is the domain running, with an agent channel, and can virsh reach libvirtd?"
                    .into()
            }
            (Target::Unix(_), std::io::ErrorKind::ConnectionRefused) => {
                "nobody listens on it: the VM or its agent channel is gone".into()
            }
            (Target::Unix(_), _) => {
                "is the VM running, and is this the agent's channel socket?".into()
            }
            (Target::Vsock { .. }, _) => {
                "is the guest's agent listening on this vsock port (qemu-ga -m vsock-listen -p PORT)?".into()
            }
            (Target::Serial(_), _) => {
                "is this the host end of the guest's agent serial port?".into()
            }
        };
        Failure(format!("cannot connect to {target}: {e} ({hint})"))
    })?;
    c.sync()?;
    Ok(c)
}

/// Serialises a reply for `--json`.
fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// JSON or the human form of a reply.
fn show<T: serde::Serialize>(json: bool, v: &T, human: impl FnOnce(&T) -> String) -> String {
    if json { to_json(v) } else { human(v) }
}

/// Parses `N=on|off` pairs.
fn on_off(changes: &[String]) -> Result<Vec<(i64, bool)>, Failure> {
    changes
        .iter()
        .map(|c| {
            let bad = || Failure(format!("'{c}': write INDEX=on or INDEX=off"));
            let (n, state) = c.split_once('=').ok_or_else(bad)?;
            let n = n.parse::<i64>().map_err(|_| bad())?;
            match state {
                "on" | "online" => Ok((n, true)),
                "off" | "offline" => Ok((n, false)),
                _ => Err(bad()),
            }
        })
        .collect()
}

fn now_ns() -> Result<i64, Failure> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| Failure(e.to_string()))?;
    i64::try_from(now.as_nanos()).map_err(|e| Failure(e.to_string()))
}

fn read_input(data: &str) -> Result<Vec<u8>, Failure> {
    if data == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure(e.to_string()))?;
        Ok(buf)
    } else {
        Ok(data.as_bytes().to_vec())
    }
}

/// `qga ls`: a directory's entries, or the one file `path` names.
fn ls(j: bool, long: bool, c: &mut Conn, path: &str) -> Result<String, Failure> {
    let mut fs = guest::GuestFs::new(c)?;
    let entries = match fs.stat(path, true) {
        Ok(st) if st.kind == "directory" => fs.list(path)?,
        Ok(_) => vec![fs.stat(path, false)?],
        // A dangling link is still something to show.
        Err(e) => vec![fs.stat(path, false).map_err(|_| e)?],
    };
    Ok(if j {
        to_json(&entries)
    } else if long {
        output::ls_long(&entries)
    } else {
        entries
            .iter()
            .map(|e| output::shown_name(&e.name))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Runs one command against one guest; returns the text to print and the exit code.
/// `live` allows printing as the command goes (one guest): `qga exec`'s output.
fn run(cli: &Cli, c: &mut Conn, live: bool) -> Result<(String, u8), Failure> {
    let none = s::NoArgs {};
    let j = cli.json;
    let out = match &cli.command {
        Cmd::Ping { count: None, .. } => {
            c.execute::<s::GuestPing>(&none)?;
            if j { "{}".into() } else { "ok".into() }
        }
        Cmd::Ping {
            count: Some(n),
            interval,
        } => {
            let mut times = Vec::with_capacity(*n as usize);
            for i in 0..*n {
                if i > 0 && *interval > 0 {
                    std::thread::sleep(Duration::from_millis(*interval));
                }
                let t = Instant::now();
                c.execute::<s::GuestPing>(&none)?;
                times.push(t.elapsed());
            }
            let st = output::PingStats::of(&mut times);
            show(j, &st, output::ping_stats)
        }
        Cmd::Info => show(j, &c.execute::<s::GuestInfo>(&none)?, output::info),
        Cmd::Time { action } => match action {
            None => show(j, &c.execute::<s::GuestGetTime>(&none)?, |t| {
                output::time(*t)
            }),
            Some(a) => {
                let ns = match a {
                    TimeAction::Sync => Some(now_ns()?),
                    TimeAction::Set { ns } => Some(*ns),
                    TimeAction::FromRtc => None,
                };
                c.execute::<s::GuestSetTime>(&s::SetTimeArgs { time: ns })?;
                match (j, ns) {
                    (true, _) => "{}".into(),
                    (false, Some(ns)) => format!("guest time set to {}", output::time(ns)),
                    (false, None) => "guest time set from its hardware clock".into(),
                }
            }
        },
        Cmd::Hostname => show(j, &c.execute::<s::GuestGetHostName>(&none)?, |h| {
            h.host_name.clone()
        }),
        Cmd::Osinfo => show(j, &c.execute::<s::GuestGetOsinfo>(&none)?, output::osinfo),
        Cmd::Timezone => show(j, &c.execute::<s::GuestGetTimezone>(&none)?, |t| {
            format!("{} ({:+} s)", t.zone.as_deref().unwrap_or("?"), t.offset)
        }),
        Cmd::Users => show(j, &c.execute::<s::GuestGetUsers>(&none)?, |u| {
            output::users(u)
        }),
        Cmd::Interfaces => show(j, &c.execute::<s::GuestNetworkGetInterfaces>(&none)?, |i| {
            output::interfaces(i)
        }),
        Cmd::Routes => show(j, &c.execute::<s::GuestNetworkGetRoute>(&none)?, |r| {
            output::routes(r)
        }),
        Cmd::Vcpus => show(j, &c.execute::<s::GuestGetVcpus>(&none)?, |v| {
            output::vcpus(v)
        }),
        Cmd::SetVcpus { changes } => {
            let vcpus = on_off(changes)?
                .into_iter()
                .map(|(n, online)| s::GuestLogicalProcessor {
                    logical_id: n,
                    online,
                    can_offline: None,
                })
                .collect();
            let n = c.execute::<s::GuestSetVcpus>(&s::SetVcpusArgs { vcpus })?;
            show(j, &n, |n| {
                format!("{n} of {} changes applied", changes.len())
            })
        }
        Cmd::Cpustats => show(j, &c.execute::<s::GuestGetCpustats>(&none)?, |v| {
            output::cpustats(v)
        }),
        Cmd::Load => show(j, &c.execute::<s::GuestGetLoad>(&none)?, |l| {
            format!("{:.2} {:.2} {:.2}", l.load1m, l.load5m, l.load15m)
        }),
        Cmd::MemoryBlocks => show(j, &c.execute::<s::GuestGetMemoryBlocks>(&none)?, |m| {
            output::memory_blocks(m)
        }),
        Cmd::SetMemoryBlocks { changes } => {
            let mem_blks = on_off(changes)?
                .into_iter()
                .map(|(n, online)| {
                    Ok(s::GuestMemoryBlock {
                        phys_index: u64::try_from(n)
                            .map_err(|_| Failure(format!("{n}: not a block index")))?,
                        online,
                        can_offline: None,
                    })
                })
                .collect::<Result<_, Failure>>()?;
            let r = c.execute::<s::GuestSetMemoryBlocks>(&s::SetMemoryBlocksArgs { mem_blks })?;
            show(j, &r, |r| output::memory_block_responses(r))
        }
        Cmd::MemoryBlockInfo => show(j, &c.execute::<s::GuestGetMemoryBlockInfo>(&none)?, |i| {
            format!("{} bytes per block", i.size)
        }),
        Cmd::Fsinfo => show(j, &c.execute::<s::GuestGetFsinfo>(&none)?, |f| {
            output::fsinfo(f)
        }),
        Cmd::Disks => show(j, &c.execute::<s::GuestGetDisks>(&none)?, |d| {
            output::disks(d)
        }),
        Cmd::Diskstats => show(j, &c.execute::<s::GuestGetDiskstats>(&none)?, |d| {
            output::diskstats(d)
        }),
        Cmd::FreezeStatus => show(
            j,
            &c.execute::<s::GuestFsfreezeStatus>(&none)?,
            |st| match st {
                s::storage::GuestFsfreezeStatus::Thawed => "thawed".into(),
                s::storage::GuestFsfreezeStatus::Frozen => "frozen".into(),
            },
        ),
        Cmd::Freeze { mountpoints } => {
            let n = if mountpoints.is_empty() {
                c.execute::<s::GuestFsfreezeFreeze>(&none)?
            } else {
                c.execute::<s::GuestFsfreezeFreezeList>(&s::FreezeListArgs {
                    mountpoints: Some(mountpoints.clone()),
                })?
            };
            show(j, &n, |n| format!("{n} filesystems frozen"))
        }
        Cmd::Thaw => show(j, &c.execute::<s::GuestFsfreezeThaw>(&none)?, |n| {
            format!("{n} filesystems thawed")
        }),
        Cmd::Trim { minimum } => show(
            j,
            &c.execute::<s::GuestFstrim>(&s::FstrimArgs { minimum: *minimum })?,
            output::trim,
        ),
        Cmd::Exec {
            stdin,
            timeout,
            signal,
            detach,
            env,
            cwd,
            user,
            exit_on_main,
            argv,
        } => {
            let spec = exec::ExecSpec {
                stdin: stdin.as_ref(),
                timeout: *timeout,
                signal: signal.as_deref(),
                detach: *detach,
                env,
                cwd: cwd.as_deref(),
                user: user.as_deref(),
                exit_on_main: *exit_on_main,
                argv,
            };
            return exec::exec(j, live, c, &spec);
        }
        Cmd::ExecStatus { pid } => show(
            j,
            &c.execute::<s::GuestExecStatus>(&s::ExecStatusArgs { pid: *pid })?,
            output::exec_status,
        ),
        Cmd::Cp {
            resume,
            recursive,
            src,
            dst,
        } => {
            if *recursive {
                cp::copy_tree(c, src, dst)?
            } else {
                cp::copy(c, src, dst, *resume)?
            }
        }
        Cmd::Ls { long, path } => ls(j, *long, c, path)?,
        Cmd::Stat { dereference, path } => {
            let st = guest::GuestFs::new(c)?.stat(path, *dereference)?;
            show(j, &st, output::stat)
        }
        Cmd::File(f) => file(j, c, f)?,
        Cmd::Raw { request } => {
            c.send_raw(format!("{request}\n").as_bytes())?;
            String::from_utf8_lossy(&c.read_reply()?.line).into_owned()
        }
        Cmd::Shutdown { mode } => {
            c.execute_no_reply::<s::GuestShutdown>(
                &s::ShutdownArgs { mode: mode.clone() },
                Duration::from_secs(2),
            )?;
            if j {
                "{}".into()
            } else {
                "shutdown requested".into()
            }
        }
        Cmd::Suspend { mode } => {
            let wait = Duration::from_secs(2);
            match mode {
                SuspendMode::Disk => c.execute_no_reply::<s::GuestSuspendDisk>(&none, wait)?,
                SuspendMode::Ram => c.execute_no_reply::<s::GuestSuspendRam>(&none, wait)?,
                SuspendMode::Hybrid => c.execute_no_reply::<s::GuestSuspendHybrid>(&none, wait)?,
            }
            if j {
                "{}".into()
            } else {
                "suspend requested".into()
            }
        }
        Cmd::Password { user, crypted } => {
            let password = read_password(user)?;
            let args = s::SetUserPasswordArgs {
                username: user.clone(),
                password: b64::encode(password.as_bytes()),
                crypted: *crypted,
            };
            c.execute::<s::GuestSetUserPassword>(&args)?;
            if j {
                "{}".into()
            } else {
                format!("password of {user} set")
            }
        }
        Cmd::SshKeys {
            user,
            add,
            reset,
            remove,
        } => {
            if !add.is_empty() || *reset {
                c.execute::<s::GuestSshAddAuthorizedKeys>(&s::SshAddKeysArgs {
                    username: user.clone(),
                    keys: add.clone(),
                    reset: reset.then_some(true),
                })?;
            }
            if !remove.is_empty() {
                c.execute::<s::GuestSshRemoveAuthorizedKeys>(&s::SshRemoveKeysArgs {
                    username: user.clone(),
                    keys: remove.clone(),
                })?;
            }
            let k = c.execute::<s::GuestSshGetAuthorizedKeys>(&s::SshUserArgs {
                username: user.clone(),
            })?;
            show(j, &k, |k| k.keys.join("\n"))
        }
        Cmd::Inventory => show(j, &fanout::inventory_row(c), |r| {
            output::inventory(std::slice::from_ref(r))
        }),
        Cmd::GenerateAssets { .. } => {
            return Err(Failure("generate-assets talks to no guest".into()));
        }
    };
    Ok((out, 0))
}

/// The low-level `qga file` operations.
fn file(j: bool, c: &mut Conn, f: &FileCmd) -> Result<String, Failure> {
    let done = |j: bool, what: &str| {
        if j {
            "{}".to_string()
        } else {
            what.to_string()
        }
    };
    Ok(match f {
        FileCmd::Open {
            path,
            mode,
            no_follow,
        } => {
            let args = s::FileOpenArgs {
                path: path.clone(),
                mode: Some(mode.clone()),
            };
            let h = if *no_follow {
                c.execute::<s::OrgQgaFileOpenNofollow>(&args)?
            } else {
                c.execute::<s::GuestFileOpen>(&args)?
            };
            h.to_string()
        }
        FileCmd::Read { handle, count } => {
            let r = c.execute::<s::GuestFileRead>(&s::FileReadArgs {
                handle: *handle,
                count: *count,
            })?;
            if j {
                to_json(&r)
            } else {
                let data = b64::decode(&r.buf_b64).map_err(|e| Failure(e.to_string()))?;
                let mut out = std::io::stdout().lock();
                out.write_all(&data)
                    .and_then(|()| out.flush())
                    .map_err(|e| Failure(e.to_string()))?;
                String::new()
            }
        }
        FileCmd::Write { handle, data } => {
            let bytes = read_input(data)?;
            let r = c.execute::<s::GuestFileWrite>(&s::FileWriteArgs {
                handle: *handle,
                buf_b64: b64::encode(&bytes),
                count: None,
                decoded: None,
            })?;
            show(j, &r, |r| format!("{} bytes written", r.count))
        }
        FileCmd::Seek {
            handle,
            offset,
            whence,
        } => {
            let whence = match whence {
                Whence::Set => s::QgaSeek::Set,
                Whence::Cur => s::QgaSeek::Cur,
                Whence::End => s::QgaSeek::End,
            };
            let r = c.execute::<s::GuestFileSeek>(&s::FileSeekArgs {
                handle: *handle,
                offset: *offset,
                whence: s::GuestFileWhence::Name(whence),
            })?;
            show(j, &r, |r| r.position.to_string())
        }
        FileCmd::Flush { handle } => {
            c.execute::<s::GuestFileFlush>(&s::FileHandleArgs { handle: *handle })?;
            done(j, "flushed")
        }
        FileCmd::Close { handle } => {
            c.execute::<s::GuestFileClose>(&s::FileHandleArgs { handle: *handle })?;
            done(j, "closed")
        }
    })
}

fn read_password(user: &str) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("New password for {user}: ");
        // No echo while typing: the terminal is switched with stty, the standard tool.
        let quiet = std::process::Command::new("stty")
            .arg("-echo")
            .status()
            .is_ok_and(|s| s.success());
        let r = stdin.read_line(&mut line);
        if quiet {
            let _ = std::process::Command::new("stty").arg("echo").status();
            eprintln!();
        }
        r.map_err(|e| Failure(e.to_string()))?;
    } else {
        stdin
            .read_line(&mut line)
            .map_err(|e| Failure(e.to_string()))?;
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::GenerateAssets { dir } = &cli.command {
        use clap::CommandFactory;
        return match assets::generate(Cli::command(), dir) {
            Ok(paths) => {
                for p in paths {
                    println!("{p}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qga: {e}");
                ExitCode::from(1)
            }
        };
    }
    fanout::main(&cli)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn test_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_on_off_pairs() {
        assert_eq!(
            on_off(&["1=off".into(), "2=on".into()]).unwrap(),
            vec![(1, false), (2, true)]
        );
        assert!(on_off(&["1".into()]).is_err());
        assert!(on_off(&["x=on".into()]).is_err());
        assert!(on_off(&["1=maybe".into()]).is_err());
    }
}
