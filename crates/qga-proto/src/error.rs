//! The one place where errors become the wire's `{"class", "desc"}` pair.

use std::fmt;

/// The error classes qemu-ga uses on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Every failure except an unknown or disabled command.
    GenericError,
    /// Unknown or disabled command.
    CommandNotFound,
}

impl ErrorClass {
    /// The class name as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
        }
    }

    /// Parses a wire class name; legacy names map to `GenericError`.
    pub fn from_wire(s: &str) -> ErrorClass {
        match s {
            "CommandNotFound" => ErrorClass::CommandNotFound,
            _ => ErrorClass::GenericError,
        }
    }
}

/// An error as it travels on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QgaError {
    /// The error class.
    pub class: ErrorClass,
    /// The human-readable description, in QEMU's words.
    pub desc: String,
}

impl QgaError {
    /// A `GenericError` with the given text.
    pub fn generic(desc: impl Into<String>) -> QgaError {
        QgaError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    /// A `CommandNotFound` error with the given text.
    pub fn not_found(desc: impl Into<String>) -> QgaError {
        QgaError {
            class: ErrorClass::CommandNotFound,
            desc: desc.into(),
        }
    }
}

impl fmt::Display for QgaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.desc)
    }
}

impl std::error::Error for QgaError {}
