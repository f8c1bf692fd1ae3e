//! The QEMU guest agent's commands and types, declared once and shared by the agent (which
//! decodes arguments and encodes returns) and the client (which does the reverse).
//!
//! Member names follow the QAPI schema (kebab-case, with the historical exception
//! `supported_commands`). Optional members are `Option<T>` and are left out when `None`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ext;
pub mod files;
pub mod storage;
pub mod system;
pub mod types;

pub use files::*;
pub use storage::*;
pub use system::*;
pub use types::*;

/// A QGA command: its wire name, argument and return types, and its policy flags.
pub trait Command {
    /// The wire name, e.g. `guest-ping`.
    const NAME: &'static str;
    /// Whether a reply is sent on success (false for shutdown and suspend).
    const SUCCESS_RESPONSE: bool = true;
    /// Whether the command stays enabled while filesystems are frozen.
    const ALLOWED_WHILE_FROZEN: bool = false;
    /// The policy group (`@file`, `@exec`...) allow and block lists can name.
    const GROUP: Group;
    /// The `arguments` object.
    type Args: serde::Serialize + serde::de::DeserializeOwned;
    /// The `return` value.
    type Ret: serde::Serialize + serde::de::DeserializeOwned;
}

/// A policy group: a set of commands an allow or block list can name as `@<name>`, so a
/// policy stays right when commands are added. Each command belongs to exactly one group,
/// written first on its line in [`commands!`] (`@file GuestFileOpen = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Group {
    name: &'static str,
    doc: &'static str,
}

impl Group {
    /// Every group with a one-line description, in the order the documentation lists them.
    pub const ALL: &'static [Group] = &[
        Group::new("core", "protocol: sync, sync-delimited, ping, info"),
        Group::new("inventory", "read-only queries of the guest's state"),
        Group::new("file", "guest-file-*: open, read, write any file"),
        Group::new("exec", "guest-exec and guest-exec-status: run any program"),
        Group::new("auth", "passwords and SSH authorized keys"),
        Group::new("freeze", "fsfreeze status, freeze and thaw"),
        Group::new(
            "system",
            "changes to the guest: time, vCPUs, memory blocks, fstrim",
        ),
        Group::new("power", "shutdown and suspend"),
    ];

    const fn new(name: &'static str, doc: &'static str) -> Group {
        Group { name, doc }
    }

    /// The name without the `@`, e.g. `file`.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// A one-line description.
    pub const fn doc(self) -> &'static str {
        self.doc
    }

    /// The group called `name` (without `@`), if there is one.
    pub fn find(name: &str) -> Option<Group> {
        Group::ALL.iter().copied().find(|g| g.name == name)
    }

    /// The group called `name`; evaluated at compile time, so a misspelt group in
    /// [`commands!`] does not build.
    const fn named(name: &str) -> Group {
        let mut i = 0;
        while i < Group::ALL.len() {
            let g = Group::ALL[i];
            if g.name.len() == name.len() {
                let (a, b) = (g.name.as_bytes(), name.as_bytes());
                let mut j = 0;
                while j < a.len() && a[j] == b[j] {
                    j += 1;
                }
                if j == a.len() {
                    return g;
                }
            }
            i += 1;
        }
        panic!("unknown command group")
    }
}

macro_rules! commands {
    ($(
        $(#[$doc:meta])*
        @$group:ident $ty:ident = $name:literal, $args:ty => $ret:ty $(, $flag:ident = $val:expr)*;
    )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;
        impl Command for $ty {
            const NAME: &'static str = $name;
            const GROUP: Group = Group::named(stringify!($group));
            $(const $flag: bool = $val;)*
            type Args = $args;
            type Ret = $ret;
        }
    )*
    /// Every command's wire name, in declaration order.
    pub const ALL_COMMAND_NAMES: &[&str] = &[$($name),*];
    };
}

// One line per command: `@group Type = "wire-name", Args => Ret, FLAGS...;`.
commands! {
    /// Echoes `id`; the reply is preceded by a 0xFF byte so a client can resynchronise.
    @core GuestSyncDelimited = "guest-sync-delimited", SyncArgs => i64, ALLOWED_WHILE_FROZEN = true;
    /// Echoes `id`, to synchronise a client with the agent's reply stream.
    @core GuestSync = "guest-sync", SyncArgs => i64, ALLOWED_WHILE_FROZEN = true;
    /// Checks that the agent answers.
    @core GuestPing = "guest-ping", NoArgs => Empty, ALLOWED_WHILE_FROZEN = true;
    /// The guest's wall-clock time in nanoseconds since the epoch.
    @inventory GuestGetTime = "guest-get-time", NoArgs => i64;
    /// Opens a file in the guest and returns a handle.
    @file GuestFileOpen = "guest-file-open", FileOpenArgs => i64;
    /// Closes a handle.
    @file GuestFileClose = "guest-file-close", FileHandleArgs => Empty;
    /// Reads from a handle.
    @file GuestFileRead = "guest-file-read", FileReadArgs => files::GuestFileRead;
    /// Writes to a handle.
    @file GuestFileWrite = "guest-file-write", FileWriteArgs => files::GuestFileWrite;
    /// Moves a handle's position.
    @file GuestFileSeek = "guest-file-seek", FileSeekArgs => files::GuestFileSeek;
    /// Flushes a handle.
    @file GuestFileFlush = "guest-file-flush", FileHandleArgs => Empty;
    /// Status and output of a process started by guest-exec.
    @exec GuestExecStatus = "guest-exec-status", ExecStatusArgs => files::GuestExecStatus;
    /// Starts a process.
    @exec GuestExec = "guest-exec", ExecArgs => files::GuestExec;
    /// The agent's version and its commands with their state.
    @core GuestInfo = "guest-info", NoArgs => GuestAgentInfo, ALLOWED_WHILE_FROZEN = true;
    /// The guest's host name.
    @inventory GuestGetHostName = "guest-get-host-name", NoArgs => GuestHostName;
    /// Users logged in to the guest.
    @inventory GuestGetUsers = "guest-get-users", NoArgs => Vec<GuestUser>;
    /// The guest's time zone.
    @inventory GuestGetTimezone = "guest-get-timezone", NoArgs => GuestTimezone;
    /// The guest's operating system.
    @inventory GuestGetOsinfo = "guest-get-osinfo", NoArgs => GuestOsInfo;
    /// Sets the system time (and the RTC), or without `time` the system time from the RTC.
    @system GuestSetTime = "guest-set-time", SetTimeArgs => Empty;
    /// Powers off, halts or reboots the guest (no reply on success).
    @power GuestShutdown = "guest-shutdown", ShutdownArgs => Empty, SUCCESS_RESPONSE = false;
    /// Hibernates the guest (no reply on success).
    @power GuestSuspendDisk = "guest-suspend-disk", NoArgs => Empty, SUCCESS_RESPONSE = false;
    /// Suspends the guest to RAM (no reply on success).
    @power GuestSuspendRam = "guest-suspend-ram", NoArgs => Empty, SUCCESS_RESPONSE = false;
    /// Hibernates and suspends to RAM (no reply on success).
    @power GuestSuspendHybrid = "guest-suspend-hybrid", NoArgs => Empty, SUCCESS_RESPONSE = false;
    /// The network interfaces with their addresses and counters.
    @inventory GuestNetworkGetInterfaces = "guest-network-get-interfaces", NoArgs => Vec<GuestNetworkInterface>;
    /// The logical processors.
    @inventory GuestGetVcpus = "guest-get-vcpus", NoArgs => Vec<GuestLogicalProcessor>;
    /// Brings logical processors online or offline; returns how many were processed.
    @system GuestSetVcpus = "guest-set-vcpus", SetVcpusArgs => i64;
    /// Sets an account's password.
    @auth GuestSetUserPassword = "guest-set-user-password", SetUserPasswordArgs => Empty;
    /// The memory blocks.
    @inventory GuestGetMemoryBlocks = "guest-get-memory-blocks", NoArgs => Vec<GuestMemoryBlock>;
    /// Brings memory blocks online or offline, with a response per block.
    @system GuestSetMemoryBlocks = "guest-set-memory-blocks", SetMemoryBlocksArgs => Vec<GuestMemoryBlockResponse>;
    /// The size of a memory block.
    @inventory GuestGetMemoryBlockInfo = "guest-get-memory-block-info", NoArgs => GuestMemoryBlockInfo;
    /// An account's SSH authorized keys.
    @auth GuestSshGetAuthorizedKeys = "guest-ssh-get-authorized-keys", SshUserArgs => GuestAuthorizedKeys;
    /// Adds SSH authorized keys to an account.
    @auth GuestSshAddAuthorizedKeys = "guest-ssh-add-authorized-keys", SshAddKeysArgs => Empty;
    /// Removes SSH authorized keys from an account.
    @auth GuestSshRemoveAuthorizedKeys = "guest-ssh-remove-authorized-keys", SshRemoveKeysArgs => Empty;
    /// Per-CPU times from /proc/stat, in milliseconds.
    @inventory GuestGetCpustats = "guest-get-cpustats", NoArgs => Vec<GuestCpuStats>;
    /// The load averages.
    @inventory GuestGetLoad = "guest-get-load", NoArgs => GuestLoadAverage;
    /// The IPv4 and IPv6 routes.
    @inventory GuestNetworkGetRoute = "guest-network-get-route", NoArgs => Vec<GuestNetworkRoute>;
    /// Whether the agent has frozen the filesystems.
    @freeze GuestFsfreezeStatus = "guest-fsfreeze-status", NoArgs => storage::GuestFsfreezeStatus, ALLOWED_WHILE_FROZEN = true;
    /// Freezes every mounted filesystem; returns how many were frozen.
    @freeze GuestFsfreezeFreeze = "guest-fsfreeze-freeze", NoArgs => i64;
    /// Freezes the listed mount points (all without a list); returns how many were frozen.
    @freeze GuestFsfreezeFreezeList = "guest-fsfreeze-freeze-list", FreezeListArgs => i64;
    /// Thaws the filesystems; returns how many were thawed.
    @freeze GuestFsfreezeThaw = "guest-fsfreeze-thaw", NoArgs => i64, ALLOWED_WHILE_FROZEN = true;
    /// Discards unused blocks of every mounted filesystem.
    @system GuestFstrim = "guest-fstrim", FstrimArgs => GuestFilesystemTrimResponse;
    /// The disks and partitions.
    @inventory GuestGetDisks = "guest-get-disks", NoArgs => Vec<GuestDiskInfo>;
    /// The mounted filesystems and the disks they live on.
    @inventory GuestGetFsinfo = "guest-get-fsinfo", NoArgs => Vec<GuestFilesystemInfo>;
    /// I/O counters of the block devices.
    @inventory GuestGetDiskstats = "guest-get-diskstats", NoArgs => Vec<GuestDiskStatsInfo>;
    /// Extension: guest-exec with working directory, user, time limit, exit-on-main.
    @exec OrgQgaExec = "__org.qga_exec", ext::ExecArgs => files::GuestExec;
    /// Extension: a running or exited process's output from given offsets (keeps the record).
    @exec OrgQgaExecOutput = "__org.qga_exec-output", ext::ExecOutputArgs => ext::ExecOutput;
    /// Extension: sends a signal to a process started by guest-exec or `__org.qga_exec`.
    @exec OrgQgaExecSignal = "__org.qga_exec-signal", ext::ExecSignalArgs => Empty;
    /// Extension: type, size, mode, owner and times of a path.
    @file OrgQgaFileStat = "__org.qga_file-stat", ext::FileStatArgs => ext::FileStat;
    /// Extension: the entries of a directory, each as `__org.qga_file-stat` describes it.
    @file OrgQgaFileList = "__org.qga_file-list", ext::FileListArgs => Vec<ext::FileStat>;
    /// Extension: guest-file-open that fails when the path's last component is a symlink.
    @file OrgQgaFileOpenNofollow = "__org.qga_file-open-nofollow", FileOpenArgs => i64;
}

/// The prefix of this project's extension commands (QAPI's downstream-extension form
/// `__<reverse domain>_`); see docs/extensions.md.
pub const EXTENSION_PREFIX: &str = "__org.qga_";

/// The order in which qemu-ga 10.x registers its Linux commands. `-b help` lists commands
/// in this order and guest-info in the reverse; the agent's table follows it.
pub const QEMU_REGISTRATION_ORDER: &[&str] = &[
    "guest-sync-delimited",
    "guest-sync",
    "guest-ping",
    "guest-get-time",
    "guest-set-time",
    "guest-info",
    "guest-shutdown",
    "guest-file-open",
    "guest-file-close",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
    "guest-fsfreeze-status",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-network-get-interfaces",
    "guest-get-vcpus",
    "guest-set-vcpus",
    "guest-get-disks",
    "guest-get-fsinfo",
    "guest-set-user-password",
    "guest-get-memory-blocks",
    "guest-set-memory-blocks",
    "guest-get-memory-block-info",
    "guest-exec-status",
    "guest-exec",
    "guest-get-host-name",
    "guest-get-users",
    "guest-get-timezone",
    "guest-get-osinfo",
    "guest-ssh-get-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "guest-get-diskstats",
    "guest-get-cpustats",
    "guest-get-load",
    "guest-network-get-route",
];
