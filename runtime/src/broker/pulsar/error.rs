//! What can go wrong talking to a Pulsar broker.

use std::time::Duration;

use super::frame::FrameError;
use super::proto::ServerError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PulsarError {
    /// The broker could not be reached, or refused the connection's handshake.
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The connection ended (the broker went away, or stopped answering pings).
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// The broker answered with an error.
    #[error("the broker answered {code:?}: {message}")]
    Server { code: ServerError, message: String },
    /// No answer within the operation timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The broker sent what the protocol does not allow, or the URL is not a Pulsar one.
    #[error("{0}")]
    Protocol(String),
}

impl From<std::io::Error> for PulsarError {
    fn from(error: std::io::Error) -> Self {
        PulsarError::Disconnected(error.to_string())
    }
}

impl From<FrameError> for PulsarError {
    fn from(error: FrameError) -> Self {
        PulsarError::Protocol(error.to_string())
    }
}
