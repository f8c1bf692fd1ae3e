//! The command table: every command the agent has, declared once. Dispatch, guest-info,
//! `-b help`, the validation of allow/block names and the frozen policy all read it.

use qga_proto::{ArgError, Dict, Value, from_value_dict};
use qga_schema::{self as s, Command};

use crate::agent::Agent;
use crate::error::CommandError;

/// A command's handler: implemented on the schema's marker type in `commands/<domain>.rs`.
pub trait Handle: Command {
    /// Runs the command.
    fn handle(agent: &mut Agent, args: Self::Args) -> Result<Self::Ret, CommandError>;

    /// The audit line qemu-ga sends to syslog for this command, e.g. `guest-exec called:
    /// "/bin/ls"` (only commands that change or expose the guest have one).
    fn audit(_args: &Self::Args) -> Option<String> {
        None
    }

    /// Decodes the arguments. The default copies what it needs from the request; a command
    /// taking tens of MiB of text (guest-file-write) moves that text instead.
    fn decode_args(args: Dict) -> Result<Self::Args, ArgError> {
        from_value_dict(args)
    }

    /// Runs the command and builds the reply's value. The default converts the return value
    /// through serde; a command returning tens of MiB (guest-file-read) builds its value
    /// directly, with its data as [`Value::Bytes`] for the writer to encode on the way out.
    fn handle_value(agent: &mut Agent, args: Self::Args) -> Result<Value, CommandError> {
        let ret = Self::handle(agent, args)?;
        let json = serde_json::to_value(&ret).map_err(|e| CommandError::Failed(e.to_string()))?;
        Ok(Value::from_json(json))
    }
}

/// One row of the command table.
#[derive(Debug)]
pub struct CommandSpec {
    /// Wire name.
    pub name: &'static str,
    /// Whether a reply is sent on success.
    pub success_response: bool,
    /// Whether the command stays enabled while frozen.
    pub allowed_while_frozen: bool,
    /// The policy group (`@file`, ...) from the schema.
    pub group: s::Group,
    run: fn(&mut Agent, Dict) -> Result<Option<Value>, CommandError>,
    decode: fn(Dict) -> Result<(), CommandError>,
}

impl CommandSpec {
    /// Decodes the arguments, runs the handler and encodes its return value (`None` for a
    /// command that does not reply on success).
    pub fn run(&self, agent: &mut Agent, args: Dict) -> Result<Option<Value>, CommandError> {
        (self.run)(agent, args)
    }

    /// Only decodes the arguments (with the same errors as [`CommandSpec::run`]) without
    /// running anything: for fuzzing the argument decoding of every command.
    pub fn decode_args(&self, args: Dict) -> Result<(), CommandError> {
        (self.decode)(args)
    }
}

fn decode<C: Handle>(args: Dict) -> Result<(), CommandError> {
    C::decode_args(args)?;
    Ok(())
}

/// Members whose values are secret or bulk data: only their size is logged.
const REDACTED: &[&str] = &["password", "buf-b64", "input-data"];

/// The audit line for a command without a qemu-ga audit text: its name and each argument
/// summarised (short scalars as they are, strings cut at 64 characters, lists and objects
/// by size; passwords and file or input data only by size).
pub fn audit_summary(name: &str, args: &Dict) -> String {
    let mut line = format!("{name} called");
    for (i, (key, value)) in args.entries.iter().enumerate() {
        line.push_str(if i == 0 { ", " } else { " " });
        let shown = match value {
            Value::Str(t) if REDACTED.contains(&key.as_str()) => format!("<{} bytes>", t.len()),
            // Data the parser held decoded: the size of its text, as for a string.
            Value::Bytes(b) => format!("<{} bytes>", qga_proto::b64::encoded_len(b.len())),
            Value::Stream(s) => format!("<{} bytes>", qga_proto::b64::encoded_len(s.len())),
            Value::Str(t) if t.chars().count() > 64 => {
                format!("{:?}...", t.chars().take(64).collect::<String>())
            }
            Value::Str(t) => format!("{t:?}"),
            Value::List(l) => format!("<list of {}>", l.len()),
            Value::Dict(d) => format!("<object of {}>", d.len()),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::UInt(n) => n.to_string(),
            Value::Double(d) => d.to_string(),
        };
        line.push_str(&format!("{key}={shown}"));
    }
    line
}

fn run<C: Handle>(agent: &mut Agent, args: Dict) -> Result<Option<Value>, CommandError> {
    // Every command gets an audit line: the protocol commands (@core: libvirt syncs before
    // each command) only in the verbose log, the others also in syslog, with qemu-ga's text
    // where it has one.
    let core = C::GROUP.name() == "core";
    let log_on = crate::logging::enabled();
    let to_syslog = log_on && !core && qga_sys::process::syslog_listening();
    let summary = (to_syslog || (log_on && log::log_enabled!(log::Level::Debug)))
        .then(|| audit_summary(C::NAME, &args));
    let args = C::decode_args(args)?;
    if let Some(summary) = summary {
        let line = C::audit(&args).unwrap_or(summary);
        if to_syslog {
            qga_sys::process::syslog_info(&line);
        }
        log::debug!("audit: {line}");
    }
    if !C::SUCCESS_RESPONSE {
        C::handle(agent, args)?;
        return Ok(None);
    }
    C::handle_value(agent, args).map(Some)
}

const fn spec<C: Handle>() -> CommandSpec {
    CommandSpec {
        name: C::NAME,
        success_response: C::SUCCESS_RESPONSE,
        allowed_while_frozen: C::ALLOWED_WHILE_FROZEN,
        group: C::GROUP,
        run: run::<C>,
        decode: decode::<C>,
    }
}

/// Every command, in qemu-ga's registration order (`qga_schema::QEMU_REGISTRATION_ORDER`):
/// `-b help` lists them in this order, guest-info in the reverse.
pub static COMMANDS: &[CommandSpec] = &[
    spec::<s::GuestSyncDelimited>(),
    spec::<s::GuestSync>(),
    spec::<s::GuestPing>(),
    spec::<s::GuestGetTime>(),
    spec::<s::GuestSetTime>(),
    spec::<s::GuestInfo>(),
    spec::<s::GuestShutdown>(),
    spec::<s::GuestFileOpen>(),
    spec::<s::GuestFileClose>(),
    spec::<s::GuestFileRead>(),
    spec::<s::GuestFileWrite>(),
    spec::<s::GuestFileSeek>(),
    spec::<s::GuestFileFlush>(),
    spec::<s::GuestFsfreezeStatus>(),
    spec::<s::GuestFsfreezeFreeze>(),
    spec::<s::GuestFsfreezeFreezeList>(),
    spec::<s::GuestFsfreezeThaw>(),
    spec::<s::GuestFstrim>(),
    spec::<s::GuestSuspendDisk>(),
    spec::<s::GuestSuspendRam>(),
    spec::<s::GuestSuspendHybrid>(),
    spec::<s::GuestNetworkGetInterfaces>(),
    spec::<s::GuestGetVcpus>(),
    spec::<s::GuestSetVcpus>(),
    spec::<s::GuestGetDisks>(),
    spec::<s::GuestGetFsinfo>(),
    spec::<s::GuestSetUserPassword>(),
    spec::<s::GuestGetMemoryBlocks>(),
    spec::<s::GuestSetMemoryBlocks>(),
    spec::<s::GuestGetMemoryBlockInfo>(),
    spec::<s::GuestExecStatus>(),
    spec::<s::GuestExec>(),
    spec::<s::GuestGetHostName>(),
    spec::<s::GuestGetUsers>(),
    spec::<s::GuestGetTimezone>(),
    spec::<s::GuestGetOsinfo>(),
    spec::<s::GuestSshGetAuthorizedKeys>(),
    spec::<s::GuestSshAddAuthorizedKeys>(),
    spec::<s::GuestSshRemoveAuthorizedKeys>(),
    spec::<s::GuestGetDiskstats>(),
    spec::<s::GuestGetCpustats>(),
    spec::<s::GuestGetLoad>(),
    spec::<s::GuestNetworkGetRoute>(),
    // Extensions (docs/extensions.md), after qemu-ga's commands.
    spec::<s::OrgQgaExec>(),
    spec::<s::OrgQgaExecOutput>(),
    spec::<s::OrgQgaExecSignal>(),
    spec::<s::OrgQgaFileStat>(),
    spec::<s::OrgQgaFileList>(),
    spec::<s::OrgQgaFileOpenNofollow>(),
];

/// The table row for `name`.
pub fn find(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_audit_summary_hides_secrets_and_data() {
        let mut args = Dict::new();
        args.insert("username", Value::Str("root".into()));
        args.insert("password", Value::Str("c2VjcmV0".into()));
        args.insert("crypted", Value::Bool(false));
        assert_eq!(
            audit_summary("guest-set-user-password", &args),
            "guest-set-user-password called, username=\"root\" password=<8 bytes> crypted=false"
        );
        let mut args = Dict::new();
        args.insert("handle", Value::Int(1000));
        args.insert("buf-b64", Value::Str("QUFB".repeat(100)));
        args.insert("arg", Value::List(vec![Value::Null; 3]));
        args.insert("path", Value::Str("x".repeat(100)));
        let line = audit_summary("guest-file-write", &args);
        assert_eq!(
            line,
            format!(
                "guest-file-write called, handle=1000 buf-b64=<400 bytes> arg=<list of 3> path=\"{}\"...",
                "x".repeat(64)
            )
        );
    }

    #[test]
    fn test_every_schema_command_is_registered_once() {
        for name in s::ALL_COMMAND_NAMES {
            assert_eq!(
                COMMANDS.iter().filter(|c| c.name == *name).count(),
                1,
                "{name}"
            );
        }
        assert_eq!(COMMANDS.len(), s::ALL_COMMAND_NAMES.len());
    }

    #[test]
    fn test_table_follows_qemu_registration_order() {
        let positions: Vec<usize> = COMMANDS
            .iter()
            .filter(|c| !c.name.starts_with(s::EXTENSION_PREFIX))
            .map(|c| {
                s::QEMU_REGISTRATION_ORDER
                    .iter()
                    .position(|n| *n == c.name)
                    .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }

    #[test]
    fn test_freeze_safe_commands() {
        let safe: Vec<&str> = COMMANDS
            .iter()
            .filter(|c| c.allowed_while_frozen)
            .map(|c| c.name)
            .collect();
        assert_eq!(
            safe,
            [
                "guest-sync-delimited",
                "guest-sync",
                "guest-ping",
                "guest-info",
                "guest-fsfreeze-status",
                "guest-fsfreeze-thaw"
            ]
        );
    }
}
