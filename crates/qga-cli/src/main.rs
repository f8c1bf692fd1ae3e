//! `qga`: talk to a QEMU guest agent (ours or qemu-ga) from the host.
//!
//! The connection is resynchronised (0xFF + guest-sync-delimited) before every session, so
//! stale replies left in a channel by an earlier client never confuse the answers.
#![forbid(unsafe_code)]

mod cp;
mod output;

use std::io::{IsTerminal, Read};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use qga_client::{Client, ClientError};
use qga_proto::b64;
use qga_schema as s;

/// A client for QEMU guest agents.
#[derive(Debug, Parser)]
#[command(
    name = "qga",
    version,
    after_help = "Examples:\n  qga -s /run/vm1.qga info\n  qga -s vm.sock exec -- uname -a\n  \
                  qga -s vm.sock cp ./file.txt :/tmp/file.txt\n  qga -s a.sock -s b.sock osinfo"
)]
struct Cli {
    /// The host end of the agent channel (a unix socket); repeat for several guests.
    #[arg(short, long = "socket", required = true)]
    sockets: Vec<PathBuf>,
    /// Print the agent's JSON return value instead of the human form.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 30, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check that the agent answers.
    Ping,
    /// The agent's version and commands.
    Info,
    /// Guest time; `time sync` sets it from the host's clock.
    Time {
        /// `sync` to set the guest clock to the host's.
        action: Option<String>,
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
    /// Load averages.
    Load,
    /// Mounted filesystems, their sizes and disks.
    Fsinfo,
    /// Freeze the guest's filesystems (all, or the mount points given).
    Freeze {
        /// Mount points to freeze (default: all).
        mountpoints: Vec<String>,
    },
    /// Thaw the guest's filesystems.
    Thaw,
    /// Discard unused blocks on the guest's filesystems.
    Trim,
    /// Run a command in the guest and show its output; exits with its exit code.
    Exec {
        /// Feed this file (or `-` for standard input) to the command.
        #[arg(long)]
        stdin: Option<PathBuf>,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        argv: Vec<String>,
    },
    /// Copy a file: `qga cp local :/guest/path` or `qga cp :/guest/path local`.
    Cp {
        /// Source (`:path` is in the guest).
        src: String,
        /// Destination (`:path` is in the guest).
        dst: String,
    },
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
        /// Keys to remove.
        #[arg(long)]
        remove: Vec<String>,
    },
}

/// The text to print and the exit code, or what went wrong.
type Outcome = Result<(String, u8), Failure>;

/// What went wrong, with a hint of what to do.
#[derive(Debug)]
struct Failure(String);

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure(match e {
            ClientError::Agent(q) if q.desc.contains("has been disabled") => {
                format!("{}: the guest's agent policy disables it (block-rpcs/allow-rpcs in its qemu-ga.conf)", q.desc)
            }
            ClientError::Agent(q) if q.class == qga_proto::ErrorClass::CommandNotFound => {
                format!("{}: the guest's agent is too old for this command", q.desc)
            }
            ClientError::Agent(q) => q.desc,
            ClientError::Io(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                "the agent did not answer in time: is it running in the guest? (try a larger --timeout)".into()
            }
            other => other.to_string(),
        })
    }
}

fn connect(path: &PathBuf, timeout: u64) -> Result<Client<UnixStream>, Failure> {
    let stream = UnixStream::connect(path).map_err(|e| {
        Failure(format!(
            "cannot connect to {}: {e} (is the VM running, and is this the agent's channel socket?)",
            path.display()
        ))
    })?;
    stream
        .set_read_timeout(Some(Duration::from_secs(timeout.max(1))))
        .map_err(|e| Failure(e.to_string()))?;
    let mut c = Client::new(stream);
    c.sync()?;
    Ok(c)
}

/// Runs one command against one guest; returns the text to print and the exit code.
fn run(cli: &Cli, c: &mut Client<UnixStream>) -> Result<(String, u8), Failure> {
    let none = s::NoArgs {};
    let json = |v: &dyn erased::Json| v.to_json_text();
    let out = match &cli.command {
        Cmd::Ping => {
            c.execute::<s::GuestPing>(&none)?;
            if cli.json {
                "{}".to_string()
            } else {
                "ok".to_string()
            }
        }
        Cmd::Info => {
            let i = c.execute::<s::GuestInfo>(&none)?;
            if cli.json { json(&i) } else { output::info(&i) }
        }
        Cmd::Time { action } => match action.as_deref() {
            None => {
                let t = c.execute::<s::GuestGetTime>(&none)?;
                if cli.json {
                    t.to_string()
                } else {
                    output::time(t)
                }
            }
            Some("sync") => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|e| Failure(e.to_string()))?;
                let ns = i64::try_from(now.as_nanos()).map_err(|e| Failure(e.to_string()))?;
                c.execute::<s::GuestSetTime>(&s::SetTimeArgs { time: Some(ns) })?;
                if cli.json {
                    "{}".into()
                } else {
                    format!("guest time set to {}", output::time(ns))
                }
            }
            Some(other) => {
                return Err(Failure(format!(
                    "unknown time action '{other}' (use: qga time, qga time sync)"
                )));
            }
        },
        Cmd::Hostname => {
            let h = c.execute::<s::GuestGetHostName>(&none)?;
            if cli.json { json(&h) } else { h.host_name }
        }
        Cmd::Osinfo => {
            let o = c.execute::<s::GuestGetOsinfo>(&none)?;
            if cli.json {
                json(&o)
            } else {
                output::osinfo(&o)
            }
        }
        Cmd::Timezone => {
            let t = c.execute::<s::GuestGetTimezone>(&none)?;
            if cli.json {
                json(&t)
            } else {
                format!("{} ({:+} s)", t.zone.as_deref().unwrap_or("?"), t.offset)
            }
        }
        Cmd::Users => {
            let u = c.execute::<s::GuestGetUsers>(&none)?;
            if cli.json {
                json(&u)
            } else {
                output::users(&u)
            }
        }
        Cmd::Interfaces => {
            let i = c.execute::<s::GuestNetworkGetInterfaces>(&none)?;
            if cli.json {
                json(&i)
            } else {
                output::interfaces(&i)
            }
        }
        Cmd::Routes => {
            let r = c.execute::<s::GuestNetworkGetRoute>(&none)?;
            if cli.json {
                json(&r)
            } else {
                output::routes(&r)
            }
        }
        Cmd::Vcpus => {
            let v = c.execute::<s::GuestGetVcpus>(&none)?;
            if cli.json {
                json(&v)
            } else {
                output::vcpus(&v)
            }
        }
        Cmd::Load => {
            let l = c.execute::<s::GuestGetLoad>(&none)?;
            if cli.json {
                json(&l)
            } else {
                format!("{:.2} {:.2} {:.2}", l.load1m, l.load5m, l.load15m)
            }
        }
        Cmd::Fsinfo => {
            let f = c.execute::<s::GuestGetFsinfo>(&none)?;
            if cli.json {
                json(&f)
            } else {
                output::fsinfo(&f)
            }
        }
        Cmd::Freeze { mountpoints } => {
            let n = if mountpoints.is_empty() {
                c.execute::<s::GuestFsfreezeFreeze>(&none)?
            } else {
                c.execute::<s::GuestFsfreezeFreezeList>(&s::FreezeListArgs {
                    mountpoints: Some(mountpoints.clone()),
                })?
            };
            if cli.json {
                n.to_string()
            } else {
                format!("{n} filesystems frozen")
            }
        }
        Cmd::Thaw => {
            let n = c.execute::<s::GuestFsfreezeThaw>(&none)?;
            if cli.json {
                n.to_string()
            } else {
                format!("{n} filesystems thawed")
            }
        }
        Cmd::Trim => {
            let t = c.execute::<s::GuestFstrim>(&s::FstrimArgs { minimum: None })?;
            if cli.json { json(&t) } else { output::trim(&t) }
        }
        Cmd::Exec {
            stdin,
            timeout,
            argv,
        } => return exec(cli, c, stdin.as_ref(), *timeout, argv),
        Cmd::Cp { src, dst } => cp::copy(c, src, dst).map_err(Failure)?,
        Cmd::Raw { request } => {
            c.send_raw(format!("{request}\n").as_bytes())
                .map_err(Failure::from)?;
            String::from_utf8_lossy(&c.read_reply()?.line).into_owned()
        }
        Cmd::Shutdown { mode } => {
            c.execute::<s::GuestShutdown>(&s::ShutdownArgs { mode: mode.clone() })?;
            "shutdown requested".into()
        }
        Cmd::Password { user, crypted } => {
            let password = read_password(user)?;
            let args = s::SetUserPasswordArgs {
                username: user.clone(),
                password: b64::encode(password.as_bytes()),
                crypted: *crypted,
            };
            c.execute::<s::GuestSetUserPassword>(&args)?;
            format!("password of {user} set")
        }
        Cmd::SshKeys { user, add, remove } => {
            if !add.is_empty() {
                c.execute::<s::GuestSshAddAuthorizedKeys>(&s::SshAddKeysArgs {
                    username: user.clone(),
                    keys: add.clone(),
                    reset: None,
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
            if cli.json {
                json(&k)
            } else {
                k.keys.join("\n")
            }
        }
    };
    Ok((out, 0))
}

/// Runs a command in the guest, polling its status; output is printed when it ends.
fn exec(
    cli: &Cli,
    c: &mut Client<UnixStream>,
    stdin: Option<&PathBuf>,
    timeout: Option<u64>,
    argv: &[String],
) -> Result<(String, u8), Failure> {
    let input = match stdin {
        None => None,
        Some(p) if p.as_os_str() == "-" => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Failure(e.to_string()))?;
            Some(b64::encode(&buf))
        }
        Some(p) => Some(b64::encode(
            &std::fs::read(p).map_err(|e| Failure(format!("{}: {e}", p.display())))?,
        )),
    };
    let (path, args) = argv
        .split_first()
        .ok_or_else(|| Failure("no command given".into()))?;
    let pid = c
        .execute::<s::GuestExec>(&s::ExecArgs {
            path: path.clone(),
            arg: Some(args.to_vec()),
            env: None,
            input_data: input,
            capture_output: Some(s::GuestExecCaptureOutput::Flag(true)),
        })?
        .pid;
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        let st = c.execute::<s::GuestExecStatus>(&s::ExecStatusArgs { pid })?;
        if st.exited {
            let decode = |d: &Option<String>| {
                d.as_deref()
                    .map(b64::decode)
                    .transpose()
                    .map_err(|e| Failure(e.to_string()))
            };
            let out = decode(&st.out_data)?.unwrap_or_default();
            let err = decode(&st.err_data)?.unwrap_or_default();
            if cli.json {
                return Ok((erased::Json::to_json_text(&st), 0));
            }
            std::io::Write::write_all(&mut std::io::stderr(), &err)
                .map_err(|e| Failure(e.to_string()))?;
            let code = match (st.exitcode, st.signal) {
                (Some(c), _) => u8::try_from(c & 0xFF).unwrap_or(1),
                (None, Some(sig)) => u8::try_from((128 + sig) & 0xFF).unwrap_or(1),
                _ => 1,
            };
            return Ok((
                String::from_utf8_lossy(&out)
                    .trim_end_matches('\n')
                    .to_string(),
                code,
            ));
        }
        if timeout.is_some_and(|t| start.elapsed() > Duration::from_secs(t)) {
            return Err(Failure(format!(
                "timed out: process {pid} still runs in the guest"
            )));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
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

mod erased {
    //! JSON text of any serialisable reply.
    /// Serialises to pretty JSON.
    pub(crate) trait Json {
        fn to_json_text(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json_text(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.sockets.len() == 1 {
        let result = connect(&cli.sockets[0], cli.timeout).and_then(|mut c| run(&cli, &mut c));
        return match result {
            Ok((text, code)) => {
                if !text.is_empty() {
                    println!("{text}");
                }
                ExitCode::from(code)
            }
            Err(Failure(msg)) => {
                eprintln!("qga: {msg}");
                ExitCode::from(1)
            }
        };
    }
    // Several guests: at most 8 at a time; one guest's failure does not stop the others.
    let results: Vec<(PathBuf, Outcome)> = std::thread::scope(|scope| {
        let mut out = Vec::new();
        for group in cli.sockets.chunks(8) {
            let handles: Vec<_> = group
                .iter()
                .map(|p| {
                    scope.spawn(|| {
                        (
                            p.clone(),
                            connect(p, cli.timeout).and_then(|mut c| run(&cli, &mut c)),
                        )
                    })
                })
                .collect();
            out.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        }
        out
    });
    let mut failed = 0;
    for (path, r) in &results {
        match r {
            Ok((text, _)) => println!("== {}\n{text}", path.display()),
            Err(Failure(msg)) => {
                failed += 1;
                println!("== {}\nerror: {msg}", path.display());
            }
        }
    }
    println!(
        "{} guests, {} ok, {failed} failed",
        results.len(),
        results.len() - failed
    );
    ExitCode::from(u8::from(failed > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn test_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
