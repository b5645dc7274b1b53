//! config-svc and flow-svc over a message broker, exactly as TrustGraph's own clients reach
//! them (TrustGraph 2.4, `trustgraph-base/trustgraph/base/{pubsub,pulsar_backend,
//! rabbitmq_backend,kafka_backend}.py`).
//!
//! A service listens on a request queue and answers on a response queue; queues are named
//! `class:topicspace:topic` ([`Queue`]): config-svc on `request:tg:config` /
//! `response:tg:config`; flow-svc on `request:tg:flow` / `response:tg:flow` in the legacy
//! protocol, and in the workspace protocol (TrustGraph 2.4.13 on) on
//! `request:tg:flow:<workspace>` / `response:tg:flow:<workspace>`, beside IAM on
//! `request:tg:iam` / `response:tg:iam`. A request is the
//! UTF-8 JSON of the request record, carrying a fresh UUID in its `id` property (Pulsar) or
//! header (RabbitMQ, Kafka); the answer carries the same `id`, and every client sees every answer on
//! the response queue, so each keeps only its own.
//!
//! The layers: a [`Transport`] moves [`Envelope`]s to and from queues on one broker
//! ([`pulsar`], [`rabbitmq`], [`kafka`]); a [`RequestResponse`] client correlates answers with requests
//! by id, times them out and reconnects; [`BrokerServices`] puts one such client in front of
//! each service to implement [`Services`], in the protocol it was told or the one it detects
//! (`detect`).

mod detect;
pub mod kafka;
pub mod pulsar;
mod queue;
pub mod rabbitmq;
mod rpc;
mod waiters;
mod workspaces;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

pub use queue::{Queue, QueueClass};
pub use rpc::RequestResponse;

use crate::services::{
    ConfigRequest, ConfigResponse, FlowRequest, FlowResponse, IamRequest, IamResponse, Protocol, ProtocolChoice,
    ServiceError, Services,
};

/// What travels on a queue: the body (JSON text) and the correlation `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: Option<String>,
    pub body: Vec<u8>,
}

/// Why the broker could not carry a message: what was being done, and the broker client's
/// own error where there is one (its `source`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}{}", cause.as_ref().map(|cause| format!(": {cause}")).unwrap_or_default())]
pub struct TransportError {
    what: String,
    #[source]
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl TransportError {
    /// A failure the transport found itself (a refusal, a timeout).
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into(), cause: None }
    }

    /// `what` failed because of the broker client's `cause`.
    pub fn caused_by(what: impl Into<String>, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { what: what.into(), cause: Some(Arc::new(cause)) }
    }
}

/// Messages arriving on one subscription. It ends when the subscription dies (the broker went
/// away, the consumer was closed): the owner then subscribes again. Dropping it ends the
/// subscription on the broker.
pub struct Subscription {
    messages: mpsc::Receiver<Envelope>,
    /// Whatever ends the subscription on the broker when it is dropped, if the channel closing
    /// does not.
    _closer: Option<Box<dyn Send + Sync>>,
}

impl Subscription {
    pub fn new(messages: mpsc::Receiver<Envelope>) -> Self {
        Self { messages, _closer: None }
    }

    /// A subscription that drops `closer` with itself.
    pub fn closing_on_drop(messages: mpsc::Receiver<Envelope>, closer: impl Send + Sync + 'static) -> Self {
        Self { messages, _closer: Some(Box::new(closer)) }
    }

    /// The next message; `None` once the subscription has died.
    pub async fn recv(&mut self) -> Option<Envelope> {
        self.messages.recv().await
    }
}

/// One broker connection: publish to a queue, subscribe to one.
///
/// Implementations map queue names onto the broker's own (topics, exchanges), choose the
/// subscription type by the queue's class as upstream does (request and flow classes shared
/// among consumers, response and notify classes one per subscriber), and acknowledge what
/// they deliver. They need not survive the broker going away; [`RequestResponse`] subscribes
/// again when a subscription closes and retries a failed publish once.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Publish `envelope` to `queue`.
    async fn publish(&self, queue: &Queue, envelope: Envelope) -> Result<(), TransportError>;

    /// Start receiving from `queue` under `subscription`. Messages published after this
    /// returns are delivered.
    async fn subscribe(&self, queue: &Queue, subscription: &str) -> Result<Subscription, TransportError>;

    /// Where it connects, for logs (`pulsar://pulsar:6650`, `amqp://rabbitmq:5672/`).
    fn describe(&self) -> String;

    /// Close what is open on the broker (consumers, producers or channels, the connection),
    /// waiting for subscriptions whose owners are gone to end first.
    async fn close(&self) {}
}

/// The identity in subscription names (`bootstrap--config--<uuid>`), as upstream's
/// bootstrapper names its own.
const CLIENT_ID: &str = "bootstrap";

/// config-svc, flow-svc and (in the workspace protocol) IAM over one broker.
pub struct BrokerServices {
    transport: Arc<dyn Transport>,
    timeout: Duration,
    /// Set from the start, or once detected.
    protocol: OnceLock<Protocol>,
    config: RequestResponse,
    /// The legacy protocol's one flow-svc client.
    flow: RequestResponse,
    /// The workspace protocol's flow-svc clients, one per registered workspace.
    workspace_flows: workspaces::WorkspaceFlows,
    iam: RequestResponse,
}

impl BrokerServices {
    /// Clients for the services on `transport` in the legacy protocol, each request timing out
    /// after `timeout`. None subscribes before its first request.
    pub fn new(transport: Arc<dyn Transport>, timeout: Duration) -> Self {
        Self::speaking(Protocol::Legacy, transport, timeout)
    }

    /// The same, in the protocol `choice` names, or the one the services answer in.
    pub fn speaking(choice: impl Into<ProtocolChoice>, transport: Arc<dyn Transport>, timeout: Duration) -> Self {
        let client = |request: Queue, response: Queue| client(&transport, request, response, timeout);
        let protocol = OnceLock::new();
        if let ProtocolChoice::Speak(known) = choice.into() {
            protocol.get_or_init(|| known);
        }
        Self {
            config: client(Queue::request("config"), Queue::response("config")),
            flow: client(Queue::request("flow"), Queue::response("flow")),
            iam: client(Queue::request("iam"), Queue::response("iam")),
            workspace_flows: Default::default(),
            protocol,
            timeout,
            transport,
        }
    }
}

impl BrokerServices {
    /// The same, waiting `timeout` for each config-svc answer instead (upstream's
    /// `--config-timeout`).
    pub fn with_config_timeout(mut self, timeout: Duration) -> Self {
        self.config = client(&self.transport, Queue::request("config"), Queue::response("config"), timeout);
        self
    }
}

/// A request/response client on `request` and `response`, subscribed as upstream's
/// bootstrapper subscribes (`bootstrap--<service>--<uuid>`).
fn client(transport: &Arc<dyn Transport>, request: Queue, response: Queue, timeout: Duration) -> RequestResponse {
    let subscription = format!("{CLIENT_ID}--{}--{}", request.topic, uuid::Uuid::new_v4());
    RequestResponse::new(transport.clone(), request, response, subscription, timeout)
}

#[async_trait]
impl Services for BrokerServices {
    async fn config(&self, request: ConfigRequest) -> Result<ConfigResponse, ServiceError> {
        let response: ConfigResponse = self.config.request(&request).await?;
        match response.error {
            Some(error) => Err(ServiceError::Remote(error)),
            None => Ok(response),
        }
    }

    async fn flow(&self, request: FlowRequest) -> Result<FlowResponse, ServiceError> {
        let response: FlowResponse = match self.protocol.get() {
            None => return Err(ServiceError::protocol_unknown()),
            Some(Protocol::Legacy) => self.flow.request(&request).await?,
            Some(Protocol::Workspaces) => {
                self.workspace_flows.request(self, &self.transport, &request, self.timeout).await?
            }
        };
        match response.error {
            Some(error) => Err(ServiceError::Remote(error)),
            None => Ok(response),
        }
    }

    async fn iam(&self, request: IamRequest) -> Result<IamResponse, ServiceError> {
        match self.protocol.get() {
            None => return Err(ServiceError::protocol_unknown()),
            Some(Protocol::Legacy) => return Err(ServiceError::no_iam()),
            Some(Protocol::Workspaces) => {}
        }
        // An error answer is the caller's to read: `duplicate` is how IAM says "already there".
        self.iam.request(&request).await
    }

    fn protocol(&self) -> Option<Protocol> {
        self.protocol.get().copied()
    }

    async fn settle_protocol(&self) -> Result<Protocol, ServiceError> {
        if let Some(known) = self.protocol.get() {
            return Ok(*known);
        }
        let (detected, evidence) = detect::detect(self).await?;
        tracing::info!(protocol = detected.name(), "protocol detected: {evidence}");
        Ok(*self.protocol.get_or_init(|| detected))
    }

    /// Stop reading answers (which ends every subscription), then close the transport.
    async fn close(&self) {
        self.config.stop_listening().await;
        self.flow.stop_listening().await;
        self.iam.stop_listening().await;
        for flow in self.workspace_flows.clients() {
            flow.stop_listening().await;
        }
        self.transport.close().await;
    }
}
