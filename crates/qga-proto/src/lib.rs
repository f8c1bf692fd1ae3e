//! The QEMU guest agent wire protocol: QEMU's JSON dialect (lexer, streamer, parser and
//! writer, byte-compatible with qemu-ga), the request envelope, replies, and decoding of
//! command arguments with QEMU's error texts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod args;
pub mod b64;
pub mod envelope;
pub mod error;
pub mod framer;
mod lexer;
mod parser;
mod scan;
mod utf8;
pub mod value;
pub mod writer;

pub use args::{ArgError, from_args, from_value_dict};
pub use envelope::{EnvelopeError, Reply, Request, parse_request, reply_err, reply_ok};
pub use error::{ErrorClass, QgaError};
pub use framer::{Frame, Framer, Limits};
pub use value::{ByteStream, Dict, Value};
