//! Typed errors of command handlers, and the single conversion to the wire's
//! `{"class", "desc"}` form.

use qga_proto::{ArgError, QgaError};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The arguments did not match the command's schema.
    #[error(transparent)]
    Args(#[from] ArgError),
    /// The command ran and failed; the text is QEMU's wording.
    #[error("{0}")]
    Failed(String),
    /// The guest cannot do this at run time (QEMU's "not currently supported").
    #[error("this feature or command is not currently supported")]
    Unsupported,
    /// The command became disabled (frozen) while it waited for another connection's
    /// operation: the policy's error, as the dispatcher words it.
    #[error("Command {0} has been disabled: the command is not allowed")]
    Disabled(&'static str),
}

impl From<CommandError> for QgaError {
    fn from(e: CommandError) -> QgaError {
        match e {
            CommandError::Disabled(_) => QgaError::not_found(e.to_string()),
            e => QgaError::generic(e.to_string()),
        }
    }
}

/// An OS error as C's `strerror` words it ("No such file or directory"), without the
/// " (os error 2)" that Rust appends; QEMU's texts embed the bare form.
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(pos) if text.ends_with(')') => text[..pos].to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_strerror_strips_rust_suffix() {
        assert_eq!(
            strerror(&std::io::Error::from_raw_os_error(2)),
            "No such file or directory"
        );
        assert_eq!(strerror(&std::io::Error::other("custom")), "custom");
    }
}
