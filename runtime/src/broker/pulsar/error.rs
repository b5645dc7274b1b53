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
    /// A message larger than the broker accepts (the `max_message_size` of its CONNECTED), not
    /// sent: the broker would have closed the whole connection over it.
    #[error("a message of {size} bytes is over the broker's limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    /// The broker closed the producer (its topic is moving: an unload, a bundle split, a broker
    /// shutting down); a new one, looked up again, reaches the topic where it is now.
    #[error("the broker closed the producer: its topic is moving")]
    ProducerMoved,
}

impl PulsarError {
    /// Whether trying again shortly may succeed: the broker is busy or not ready yet (a topic
    /// being loaded or moved, a bundle being split), as Pulsar's Java client tells them apart.
    /// Everything else (a refusal, a timeout, a lost connection) is the caller's to handle.
    pub fn is_retriable(&self) -> bool {
        matches!(self, PulsarError::Server { code: ServerError::ServiceNotReady | ServerError::TooManyRequests, .. })
    }
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

/// A broker's error answer, its code and message (an unknown error without them).
pub(super) fn server_error(error: Option<(i32, String)>) -> PulsarError {
    let (code, message) = error.unwrap_or((ServerError::UnknownError as i32, "no detail".into()));
    PulsarError::Server { code: ServerError::try_from(code).unwrap_or(ServerError::UnknownError), message }
}

/// `what` was answered with a command of the type `kind`, not the one it asks for.
pub(super) fn unexpected(what: &str, kind: i32) -> PulsarError {
    PulsarError::Protocol(format!("{what} was answered with a command of type {kind}"))
}
