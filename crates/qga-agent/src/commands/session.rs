//! guest-sync, guest-sync-delimited, guest-ping, guest-info.

use qga_schema::{
    Empty, GuestAgentCommandInfo, GuestAgentInfo, GuestInfo, GuestPing, GuestSync,
    GuestSyncDelimited, NoArgs, SyncArgs,
};

use crate::agent::Agent;
use crate::error::CommandError;
use crate::registry::{COMMANDS, Handle};

impl Handle for GuestSync {
    fn handle(_agent: &mut Agent, args: SyncArgs) -> Result<i64, CommandError> {
        Ok(args.id)
    }
}

impl Handle for GuestSyncDelimited {
    fn handle(agent: &mut Agent, args: SyncArgs) -> Result<i64, CommandError> {
        agent.delimit_response = true;
        Ok(args.id)
    }
}

impl Handle for GuestPing {
    fn handle(_agent: &mut Agent, _args: NoArgs) -> Result<Empty, CommandError> {
        Ok(Empty {})
    }

    fn audit(_args: &NoArgs) -> Option<String> {
        Some("guest-ping called".to_string())
    }
}

impl Handle for GuestInfo {
    fn handle(agent: &mut Agent, _args: NoArgs) -> Result<GuestAgentInfo, CommandError> {
        // qemu-ga builds this list by prepending, so it comes out in reverse table order.
        let supported_commands = COMMANDS
            .iter()
            .rev()
            .map(|c| GuestAgentCommandInfo {
                name: c.name.to_string(),
                enabled: agent.policy.is_enabled(c, agent.frozen),
                success_response: c.success_response,
            })
            .collect();
        Ok(GuestAgentInfo {
            version: agent.version.clone(),
            supported_commands,
        })
    }
}
