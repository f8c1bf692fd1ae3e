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
}

impl From<CommandError> for QgaError {
    fn from(e: CommandError) -> QgaError {
        QgaError::generic(e.to_string())
    }
}
