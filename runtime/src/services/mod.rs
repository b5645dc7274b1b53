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
    IamRequest, IamResponse, WireError,
};

/// Which generation of TrustGraph's protocol the services speak. The config queues and records
/// are the same in both; flow-svc's queues, IAM and the gate differ (docs/design.md, "Two
/// protocols").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TrustGraph 2.4.4 to 2.4.10: one flow-svc queue for every workspace, no IAM; the gate
    /// asks config-svc and flow-svc.
    Legacy,
    /// TrustGraph 2.4.13 and later: flow-svc serves each workspace IAM registered on a queue
    /// of its own; the gate asks config-svc only.
    Workspaces,
}

impl Protocol {
    /// As `--protocol` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Workspaces => "workspaces",
        }
    }
}

/// What the operator asked for (`--protocol`): one protocol, or whichever the services answer
/// in. A backend detects it once config-svc answers ([`Services::settle_protocol`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolChoice {
    /// Ask the services (`--protocol auto`, the default).
    #[default]
    Detect,
    /// Speak this one, whatever answers.
    Speak(Protocol),
}

impl From<Protocol> for ProtocolChoice {
    fn from(protocol: Protocol) -> Self {
        Self::Speak(protocol)
    }
}

impl ProtocolChoice {
    /// As `--protocol` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Detect => "auto",
            Self::Speak(protocol) => protocol.name(),
        }
    }
}

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

/// The error kind of a flow call for a workspace IAM has not registered (workspace protocol).
pub const NOT_REGISTERED: &str = "not-registered";

impl ServiceError {
    /// An IAM call where the services have no IAM (the legacy protocol's).
    pub fn no_iam() -> Self {
        Self::Unavailable("no IAM service: TrustGraph before 2.4.13 has none".into())
    }

    /// A flow or IAM call before the protocol is detected: which queue it goes to depends on
    /// it. The gate detects it, so only pre-gate initialisers can meet this.
    pub fn protocol_unknown() -> Self {
        Self::Unavailable(
            "the services' protocol is not detected yet: the gate detects it once config-svc answers".into(),
        )
    }

    /// A flow call for `workspace`, which IAM has not registered, so flow-svc does not serve
    /// it (workspace protocol). Upstream's flow-svc does not answer at all; both backends
    /// say so at once instead.
    pub fn not_registered(workspace: &str) -> Self {
        let (registry, _) = wire::WORKSPACE_REGISTRY;
        let message = format!(
            "workspace '{workspace}' is not registered ({registry} has no entry for it), so flow-svc does not \
             serve it: IAM's create-workspace registers it"
        );
        Self::Remote(WireError::new(NOT_REGISTERED, message))
    }
}

/// A backend that carries config-svc and flow-svc requests. Implementations decide how a request
/// travels; they do not interpret it beyond turning an `error` field into [`ServiceError::Remote`].
#[async_trait]
pub trait Services: Send + Sync {
    /// One config-svc round trip.
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError>;
    /// One flow-svc round trip, for the workspace the request names.
    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError>;

    /// One IAM round trip. Services of the legacy protocol have no IAM, and refuse.
    async fn iam(&self, request: IamRequest) -> Result<IamResponse, ServiceError> {
        let _ = request;
        Err(ServiceError::no_iam())
    }

    /// The protocol these services speak; `None` while a backend told to detect it has not
    /// yet done so ([`Self::settle_protocol`]). The default: the legacy protocol.
    fn protocol(&self) -> Option<Protocol> {
        Some(Protocol::Legacy)
    }

    /// The protocol these services speak, found out first if it is not known yet. The gate
    /// asks this once config-svc answers, and stays closed while it fails. The default:
    /// [`Self::protocol`], known from the start.
    async fn settle_protocol(&self) -> Result<Protocol, ServiceError> {
        self.protocol().ok_or_else(ServiceError::protocol_unknown)
    }

    /// Close the connections behind the services, for a clean exit: after this, requests
    /// fail. The default has nothing to close.
    async fn close(&self) {}
}
