//! Shutdown and suspend, for guest-shutdown and guest-suspend-disk/-ram/-hybrid.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::helper::{self, HelperError, QuietStatus};
use crate::sysroot::{SysRoot, strerror};

/// What guest-shutdown does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Stop without powering off.
    Halt,
    /// Power off.
    Powerdown,
    /// Restart.
    Reboot,
}

/// The command qemu-ga 10.2 runs for `mode`: `/sbin/poweroff`, `/sbin/halt` or
/// `/sbin/reboot` without arguments when executable (BusyBox has no `shutdown`), else
/// `/sbin/shutdown -h -P|-H|-r +0 "hypervisor initiated shutdown"`.
pub fn shutdown_argv(mode: ShutdownMode, executable: impl Fn(&Path) -> bool) -> Vec<&'static str> {
    let (direct, flag) = match mode {
        ShutdownMode::Powerdown => ("/sbin/poweroff", "-P"),
        ShutdownMode::Halt => ("/sbin/halt", "-H"),
        ShutdownMode::Reboot => ("/sbin/reboot", "-r"),
    };
    if executable(Path::new(direct)) {
        vec![direct]
    } else {
        vec![
            "/sbin/shutdown",
            "-h",
            flag,
            "+0",
            "hypervisor initiated shutdown",
        ]
    }
}

/// Shuts the guest down (waits for the command, which only starts the shutdown).
pub fn shutdown(mode: ShutdownMode) -> Result<(), HelperError> {
    let argv = shutdown_argv(mode, helper::is_executable);
    helper::run_command(&argv, None, "shutdown")
}

/// What guest-suspend-* does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendMode {
    /// Hibernate (guest-suspend-disk).
    Disk,
    /// Suspend to RAM (guest-suspend-ram).
    Ram,
    /// Both (guest-suspend-hybrid).
    Hybrid,
}

impl SuspendMode {
    fn systemd_unit(self) -> &'static str {
        match self {
            Self::Disk => "systemd-hibernate",
            Self::Ram => "systemd-suspend",
            Self::Hybrid => "systemd-hybrid-sleep",
        }
    }
    fn systemctl_verb(self) -> &'static str {
        match self {
            Self::Disk => "hibernate",
            Self::Ram => "suspend",
            Self::Hybrid => "hybrid-sleep",
        }
    }
    fn pm_flag(self) -> &'static str {
        match self {
            Self::Disk => "--hibernate",
            Self::Ram => "--suspend",
            Self::Hybrid => "--suspend-hybrid",
        }
    }
    fn pm_program(self) -> &'static str {
        match self {
            Self::Disk => "pm-hibernate",
            Self::Ram => "pm-suspend",
            Self::Hybrid => "pm-suspend-hybrid",
        }
    }
    fn sysfs_word(self) -> Option<&'static str> {
        match self {
            Self::Disk => Some("disk"),
            Self::Ram => Some("mem"),
            Self::Hybrid => None,
        }
    }
}

/// Why a suspend failed; the texts are qemu-ga's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuspendError {
    /// No method supports the mode.
    #[error("the requested suspend mode is not supported by the guest")]
    NotSupported,
    /// The helper vanished between the check and the run.
    #[error("the helper program '{0}' was not found")]
    NotFound(String),
    /// The helper failed.
    #[error("the helper program '{program}' returned an unexpected exit status code ({status})")]
    Status {
        /// The helper and its argument, e.g. `systemctl suspend`.
        program: String,
        /// Its exit status.
        status: i32,
    },
    /// The helper could not be started.
    #[error("failed to create child process, error '{0}'")]
    Spawn(String),
    /// Writing `/sys/power/state` failed.
    #[error("suspend: cannot write to '/sys/power/state': {0}")]
    Write(String),
}

/// The operations a suspend uses, so that the choice of method can be tested.
pub trait SuspendOps {
    /// Runs a helper quietly.
    fn run(&mut self, argv: &[&str]) -> QuietStatus;
    /// The start of `/sys/power/state` (up to 31 bytes), `None` if unreadable.
    fn read_state(&mut self) -> Option<String>;
    /// Writes `word` to `/sys/power/state` (returns after the guest resumes).
    fn write_state(&mut self, word: &str) -> io::Result<()>;
}

fn run_helper(ops: &mut dyn SuspendOps, argv: &[&str]) -> Result<(), SuspendError> {
    match ops.run(argv) {
        QuietStatus::Exited(0) => Ok(()),
        QuietStatus::Exited(status) => Err(SuspendError::Status {
            program: argv.join(" "),
            status,
        }),
        QuietStatus::NotFound => Err(SuspendError::NotFound(argv.join(" "))),
        QuietStatus::SpawnFailed(msg) => Err(SuspendError::Spawn(msg)),
    }
}

/// Suspends with the first method that supports `mode`: systemd (`systemctl status` of the
/// sleep unit exits 1 to 3), then pm-utils (`pm-is-supported` exits 0), then
/// `/sys/power/state` (not for hybrid). When a supported method fails and no later one
/// applies, its error is returned (qemu-ga then replies nothing, or for hybrid "unknown
/// guest suspend mode").
pub fn suspend_with(ops: &mut dyn SuspendOps, mode: SuspendMode) -> Result<(), SuspendError> {
    let mut failure = None;
    if matches!(
        ops.run(&["systemctl", "status", mode.systemd_unit()]),
        QuietStatus::Exited(1..=3)
    ) {
        match run_helper(ops, &["systemctl", mode.systemctl_verb()]) {
            Ok(()) => return Ok(()),
            Err(e) => failure = Some(e),
        }
    }
    if matches!(
        ops.run(&["pm-is-supported", mode.pm_flag()]),
        QuietStatus::Exited(0)
    ) {
        match run_helper(ops, &[mode.pm_program()]) {
            Ok(()) => return Ok(()),
            Err(e) => failure = Some(e),
        }
    }
    if let Some(word) = mode.sysfs_word()
        && ops.read_state().is_some_and(|s| s.contains(word))
    {
        return ops
            .write_state(word)
            .map_err(|e| SuspendError::Write(strerror(&e)));
    }
    Err(failure.unwrap_or(SuspendError::NotSupported))
}

/// The real system's helpers and `/sys/power/state` under `root`.
#[derive(Debug)]
pub struct SystemSuspend {
    /// Where `/sys/power/state` is.
    pub root: SysRoot,
}

impl SuspendOps for SystemSuspend {
    fn run(&mut self, argv: &[&str]) -> QuietStatus {
        helper::run_quiet(argv)
    }

    fn read_state(&mut self) -> Option<String> {
        let mut buf = [0u8; 31];
        let n = std::fs::File::open(self.root.path("/sys/power/state"))
            .and_then(|mut f| f.read(&mut buf))
            .ok()
            .filter(|&n| n > 0)?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    fn write_state(&mut self, word: &str) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.root.path("/sys/power/state"))?
            .write_all(word.as_bytes())
    }
}

/// Suspends the guest.
pub fn suspend(mode: SuspendMode) -> Result<(), SuspendError> {
    suspend_with(
        &mut SystemSuspend {
            root: SysRoot::host(),
        },
        mode,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_shutdown_argv() {
        assert_eq!(
            shutdown_argv(ShutdownMode::Powerdown, |_| false),
            [
                "/sbin/shutdown",
                "-h",
                "-P",
                "+0",
                "hypervisor initiated shutdown"
            ]
        );
        assert_eq!(shutdown_argv(ShutdownMode::Halt, |_| false)[2], "-H");
        assert_eq!(shutdown_argv(ShutdownMode::Reboot, |_| false)[2], "-r");
        assert_eq!(
            shutdown_argv(ShutdownMode::Reboot, |p| p == Path::new("/sbin/reboot")),
            ["/sbin/reboot"]
        );
        assert_eq!(shutdown_argv(ShutdownMode::Halt, |_| true), ["/sbin/halt"]);
    }

    /// A scripted system: helper exit codes by command line, the state file's text and the
    /// words written to it.
    #[derive(Default)]
    struct Fake {
        exits: Vec<(String, QuietStatus)>,
        state: Option<String>,
        written: Vec<String>,
        ran: Vec<String>,
    }

    impl SuspendOps for Fake {
        fn run(&mut self, argv: &[&str]) -> QuietStatus {
            let line = argv.join(" ");
            self.ran.push(line.clone());
            match self.exits.iter().find(|(l, _)| *l == line) {
                Some((_, QuietStatus::Exited(c))) => QuietStatus::Exited(*c),
                Some((_, QuietStatus::SpawnFailed(m))) => QuietStatus::SpawnFailed(m.clone()),
                _ => QuietStatus::NotFound,
            }
        }
        fn read_state(&mut self) -> Option<String> {
            self.state.clone()
        }
        fn write_state(&mut self, word: &str) -> io::Result<()> {
            self.written.push(word.to_string());
            Ok(())
        }
    }

    fn fake(exits: &[(&str, i32)], state: Option<&str>) -> Fake {
        Fake {
            exits: exits
                .iter()
                .map(|(l, c)| (l.to_string(), QuietStatus::Exited(*c)))
                .collect(),
            state: state.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn test_suspend_systemd() {
        let mut f = fake(
            &[
                ("systemctl status systemd-suspend", 3),
                ("systemctl suspend", 0),
            ],
            None,
        );
        assert_eq!(suspend_with(&mut f, SuspendMode::Ram), Ok(()));
        assert_eq!(
            f.ran,
            ["systemctl status systemd-suspend", "systemctl suspend"]
        );
        // Status 4 (unknown unit) means unsupported.
        let mut f = fake(&[("systemctl status systemd-hibernate", 4)], None);
        assert_eq!(
            suspend_with(&mut f, SuspendMode::Disk),
            Err(SuspendError::NotSupported)
        );
    }

    #[test]
    fn test_suspend_falls_back_to_pm_utils_and_sysfs() {
        let mut f = fake(
            &[
                ("pm-is-supported --suspend-hybrid", 0),
                ("pm-suspend-hybrid", 0),
            ],
            None,
        );
        assert_eq!(suspend_with(&mut f, SuspendMode::Hybrid), Ok(()));
        let mut f = fake(&[], Some("freeze mem disk\n"));
        assert_eq!(suspend_with(&mut f, SuspendMode::Disk), Ok(()));
        assert_eq!(f.written, ["disk"]);
        let mut f = fake(&[], Some("freeze mem\n"));
        assert_eq!(
            suspend_with(&mut f, SuspendMode::Disk),
            Err(SuspendError::NotSupported)
        );
        // sysfs cannot do hybrid.
        let mut f = fake(&[], Some("freeze mem disk\n"));
        assert_eq!(
            suspend_with(&mut f, SuspendMode::Hybrid),
            Err(SuspendError::NotSupported)
        );
        assert!(f.written.is_empty());
    }

    #[test]
    fn test_suspend_reports_failure_of_supported_method() {
        let mut f = fake(
            &[
                ("systemctl status systemd-hibernate", 3),
                ("systemctl hibernate", 1),
            ],
            None,
        );
        assert_eq!(
            suspend_with(&mut f, SuspendMode::Disk)
                .unwrap_err()
                .to_string(),
            "the helper program 'systemctl hibernate' returned an unexpected exit status code (1)"
        );
        let mut f = fake(&[("pm-is-supported --suspend", 0)], None);
        assert_eq!(
            suspend_with(&mut f, SuspendMode::Ram)
                .unwrap_err()
                .to_string(),
            "the helper program 'pm-suspend' was not found"
        );
        // A later method that works wins.
        let mut f = fake(
            &[
                ("systemctl status systemd-suspend", 3),
                ("systemctl suspend", 1),
            ],
            Some("mem"),
        );
        assert_eq!(suspend_with(&mut f, SuspendMode::Ram), Ok(()));
        assert_eq!(f.written, ["mem"]);
    }

    #[test]
    fn test_system_suspend_reads_state_under_root() {
        let dir = tempfile::tempdir().unwrap();
        let mut ops = SystemSuspend {
            root: SysRoot::at(dir.path()),
        };
        assert_eq!(ops.read_state(), None);
        std::fs::create_dir_all(dir.path().join("sys/power")).unwrap();
        std::fs::write(dir.path().join("sys/power/state"), "freeze mem disk\n").unwrap();
        assert_eq!(ops.read_state().as_deref(), Some("freeze mem disk\n"));
        ops.write_state("mem").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sys/power/state")).unwrap(),
            "mem"
        );
        assert_eq!(
            SuspendError::Write(strerror(&io::Error::from_raw_os_error(libc::EBUSY))).to_string(),
            "suspend: cannot write to '/sys/power/state': Device or resource busy"
        );
    }
}
