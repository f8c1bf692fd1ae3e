//! guest-shutdown, guest-suspend-disk, guest-suspend-ram, guest-suspend-hybrid,
//! guest-set-time.

use qga_schema::{
    Empty, GuestSetTime, GuestShutdown, GuestSuspendDisk, GuestSuspendHybrid, GuestSuspendRam,
    NoArgs, SetTimeArgs, ShutdownArgs,
};
use qga_sys::power::{self, ShutdownMode, SuspendMode};
use qga_sys::rtc;

use crate::agent::Agent;
use crate::error::CommandError;
use crate::registry::Handle;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// The mode of guest-shutdown; qemu-ga's error text lacks the closing parenthesis, ours has
/// it (docs/compat.md).
pub(crate) fn shutdown_mode(mode: Option<&str>) -> Result<ShutdownMode, CommandError> {
    match mode {
        None | Some("powerdown") => Ok(ShutdownMode::Powerdown),
        Some("halt") => Ok(ShutdownMode::Halt),
        Some("reboot") => Ok(ShutdownMode::Reboot),
        Some(_) => Err(CommandError::Failed(
            "mode is invalid (valid values are: halt|powerdown|reboot)".to_string(),
        )),
    }
}

impl Handle for GuestShutdown {
    fn handle(_agent: &mut Agent, args: ShutdownArgs) -> Result<Empty, CommandError> {
        let mode = shutdown_mode(args.mode.as_deref())?;
        power::shutdown(mode).map_err(failed)?;
        Ok(Empty {})
    }

    fn audit(args: &ShutdownArgs) -> Option<String> {
        // qemu-ga formats a missing mode with printf's "(null)".
        Some(format!(
            "guest-shutdown called, mode: {}",
            args.mode.as_deref().unwrap_or("(null)")
        ))
    }
}

impl Handle for GuestSuspendDisk {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Empty, CommandError> {
        power::suspend(SuspendMode::Disk).map_err(failed)?;
        Ok(Empty {})
    }
}

impl Handle for GuestSuspendRam {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Empty, CommandError> {
        power::suspend(SuspendMode::Ram).map_err(failed)?;
        Ok(Empty {})
    }
}

impl Handle for GuestSuspendHybrid {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Empty, CommandError> {
        power::suspend(SuspendMode::Hybrid).map_err(failed)?;
        Ok(Empty {})
    }
}

impl Handle for GuestSetTime {
    fn handle(_agent: &mut Agent, args: SetTimeArgs) -> Result<Empty, CommandError> {
        if let Some(time) = args.time {
            if !rtc::time_in_range(time) {
                return Err(CommandError::Failed("Invalid time".to_string()));
            }
            rtc::set_system_time(time).map_err(failed)?;
        }
        rtc::sync_clocks(args.time.is_some()).map_err(failed)?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_shutdown_mode() {
        assert_eq!(shutdown_mode(None).unwrap(), ShutdownMode::Powerdown);
        assert_eq!(shutdown_mode(Some("halt")).unwrap(), ShutdownMode::Halt);
        assert_eq!(shutdown_mode(Some("reboot")).unwrap(), ShutdownMode::Reboot);
        for bad in ["", "Reboot", "poweroff"] {
            assert_eq!(
                shutdown_mode(Some(bad)).unwrap_err().to_string(),
                "mode is invalid (valid values are: halt|powerdown|reboot)"
            );
        }
    }

    #[test]
    fn test_shutdown_audit_line() {
        assert_eq!(
            GuestShutdown::audit(&ShutdownArgs { mode: None }).unwrap(),
            "guest-shutdown called, mode: (null)"
        );
        assert_eq!(
            GuestShutdown::audit(&ShutdownArgs {
                mode: Some("reboot".into())
            })
            .unwrap(),
            "guest-shutdown called, mode: reboot"
        );
    }
}
