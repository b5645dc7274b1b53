//! The services an initialiser and the reconcile loop talk to: config-svc and flow-svc.
//!
//! This is the port between the runtime and the services. Everything above it (the loop, the
//! host functions) sees only [`Services`]: a pair of request/response calls carrying
//! TrustGraph's own records ([`wire`]). Two modules implement it, and own nothing the loop
//! sees: [`crate::broker`] (TrustGraph's own services over Pulsar or RabbitMQ) and
//! [`crate::embedded`] (both services in-process, on a local store). Which one answers is
//! chosen once at start-up, by [`crate::deployment`].
//! [`ConfigClient`] and [`FlowClient`] wrap the raw calls in typed helpers.

pub mod clients;
pub mod read_cache;
pub mod wire;

use async_trait::async_trait;

pub use clients::{ConfigClient, FlowClient};
pub use read_cache::WakeReadCache;

pub use wire::{
    ConfigKey, ConfigOperation, ConfigRequest, ConfigResponse, ConfigValue, FlowOperation, FlowRequest, FlowResponse,
    WireError,
};

/// Why a service call produced no answer, or an error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// The service could not be reached (broker down, service not started).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// No answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
    /// An answer arrived but is not the record it should be.
    #[error("malformed answer: {0}")]
    BadAnswer(String),
    /// The service answered with an error record.
    #[error("{}: {}", .0.kind, .0.message)]
    Remote(WireError),
}

/// A backend that carries config-svc and flow-svc requests. Implementations decide how a request
/// travels; they do not interpret it beyond turning an `error` field into [`ServiceError::Remote`].
#[async_trait]
pub trait Services: Send + Sync {
    /// One config-svc round trip.
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError>;
    /// One flow-svc round trip.
    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError>;

    /// Close the connections behind the services, for a clean exit: after this, requests
    /// fail. The default has nothing to close.
    async fn close(&self) {}
}
