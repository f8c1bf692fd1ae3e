//! Which commands are enabled: the allow list, the block list and the frozen state,
//! decided in this one place with QEMU 10.2's precedence.
//!
//! A list item is a command name or a group from the schema, written `@file`, `@exec`... (our
//! extension; no qemu-ga command name starts with `@`). Unknown groups are refused when the
//! configuration is loaded ([`unknown_groups`]), so a typo cannot silently allow everything.

use std::collections::HashSet;

use crate::registry::CommandSpec;

/// The command filters from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// When set, only these commands are allowed (before the block list applies).
    allow: Option<HashSet<String>>,
    /// These commands are disabled, even if allowed.
    block: HashSet<String>,
}

impl Policy {
    /// Builds the policy; an empty allow list means "allow everything", as in qemu-ga.
    pub fn new(allow: &[String], block: &[String]) -> Policy {
        Policy {
            allow: (!allow.is_empty()).then(|| allow.iter().cloned().collect()),
            block: block.iter().cloned().collect(),
        }
    }

    /// Whether `spec` may run now: allow list (if any), then the block list, and while
    /// frozen only the freeze-safe commands, whatever the lists say.
    pub fn is_enabled(&self, spec: &CommandSpec, frozen: bool) -> bool {
        if frozen {
            return spec.allowed_while_frozen;
        }
        let allowed = self.allow.as_ref().is_none_or(|a| matches(a, spec));
        allowed && !matches(&self.block, spec)
    }
}

/// Whether `list` names `spec` or its group.
fn matches(list: &HashSet<String>, spec: &CommandSpec) -> bool {
    list.contains(spec.name)
        || list
            .iter()
            .any(|item| item.strip_prefix('@') == Some(spec.group.name()))
}

/// The items of `list` that look like groups (`@name`) but name none.
pub fn unknown_groups(list: &[String]) -> Vec<&str> {
    list.iter()
        .filter_map(|item| item.strip_prefix('@'))
        .filter(|g| qga_schema::Group::find(g).is_none())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::find;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn test_policy_truth_table() {
        let ping = find("guest-ping").unwrap();
        let time = find("guest-get-time").unwrap();
        let open = Policy::new(&[], &[]);
        assert!(open.is_enabled(time, false));
        assert!(!open.is_enabled(time, true));
        assert!(open.is_enabled(ping, true));

        let allow = Policy::new(&names(&["guest-ping"]), &[]);
        assert!(allow.is_enabled(ping, false));
        assert!(!allow.is_enabled(time, false));

        let both = Policy::new(
            &names(&["guest-ping", "guest-get-time"]),
            &names(&["guest-ping"]),
        );
        assert!(!both.is_enabled(ping, false));
        assert!(both.is_enabled(time, false));
        // Frozen overrides the block list for freeze-safe commands (QEMU >= 9.1).
        assert!(both.is_enabled(ping, true));
    }

    #[test]
    fn test_groups_in_lists() {
        let exec = find("guest-exec").unwrap();
        let status = find("guest-exec-status").unwrap();
        let open = find("guest-file-open").unwrap();
        let ping = find("guest-ping").unwrap();
        let no_exec = Policy::new(&[], &names(&["@exec"]));
        assert!(!no_exec.is_enabled(exec, false));
        assert!(!no_exec.is_enabled(status, false));
        assert!(no_exec.is_enabled(open, false));
        let core_only = Policy::new(&names(&["@core", "guest-file-open"]), &[]);
        assert!(core_only.is_enabled(ping, false));
        assert!(core_only.is_enabled(open, false));
        assert!(!core_only.is_enabled(exec, false));
        assert_eq!(
            unknown_groups(&names(&["@file", "@nope", "guest-x", "@"])),
            ["nope", ""]
        );
    }

    #[test]
    fn test_security_doc_lists_every_command_in_its_group() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/security.md"
        ))
        .unwrap();
        for c in crate::registry::COMMANDS {
            let row = format!("| `@{}` |", c.group.name());
            let line = doc.lines().find(|l| l.starts_with(&row)).unwrap();
            assert!(
                line.contains(&format!("`{}`", c.name)),
                "docs/security.md: {} is not in the {row} row",
                c.name
            );
        }
    }

    #[test]
    fn test_every_group_has_a_command() {
        for g in qga_schema::Group::ALL {
            assert!(
                crate::registry::COMMANDS.iter().any(|c| c.group == *g),
                "{}",
                g.name()
            );
        }
    }
}
