//! The [`Transport`] for Apache Pulsar, as upstream's `pulsar_backend.py` uses it.
//!
//! Queues map to topics with [`Queue::pulsar_topic`] (`non-persistent://tg/request/config`);
//! a message's body is the payload and its correlation id the `id` property. Request and flow
//! queues are read through Shared subscriptions (the service's instances split the work),
//! response and notify queues through Exclusive ones (each subscriber sees everything), all
//! starting at the latest message.
//!
//! The client is this module's own, on tokio: [`client`] finds a topic's broker and keeps one
//! connection per broker, `connection` speaks Pulsar's binary protocol on it (`frame`,
//! [`proto`]). It does no more than the transport and the lease need (it reads batches, but
//! does not batch, compress, partition or take part in transactions), and costs a fraction of
//! what the `pulsar`
//! crate did for the same work (docs/performance.md): one write per request, answers read
//! and delivered on the connection's own task. It also sets TCP_NODELAY, which the crate left
//! off, and sends `--pulsar-listener` with its lookups, which the crate could not.
//!
//! The transport connects lazily: the bootstrapper must start while the broker is still down
//! (its gate stays closed and retries), so [`PulsarTransport::new`] does not connect; the first
//! publish or subscribe does, and after the broker went away the next one connects afresh.

pub mod client;
mod connection;
mod error;
mod frame;
pub mod proto;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use client::{Client, ClientOptions};
pub use connection::{ConsumerGuard, Producer};
pub use error::PulsarError;
pub use proto::{ServerError, SubType};

use super::{Envelope, Queue, Subscription, Transport, TransportError};
use proto::KeyValue;

/// The message property carrying the correlation id, as upstream's.
pub const ID_PROPERTY: &str = "id";

/// How long closing the client's consumers, producers and connections may take.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where and how to reach the broker: upstream's `--pulsar-host`, `--pulsar-api-key`,
/// `--pulsar-listener`.
#[derive(Debug, Clone)]
pub struct PulsarOptions {
    /// `pulsar://host:6650` or `pulsar+ssl://host:6651`.
    pub url: String,
    /// A token, sent with Pulsar's token authentication.
    pub api_key: Option<String>,
    /// The advertised listener whose addresses lookups answer with, for brokers with several.
    pub listener: Option<String>,
    /// Certificates (PEM) to trust for `pulsar+ssl://`, besides the Mozilla roots.
    pub tls_trust_certs: Option<std::path::PathBuf>,
}

impl PulsarOptions {
    /// The client's options: fail fast when the broker is down (the callers retry on their own
    /// schedule), and notice a silently dropped connection within half a minute.
    pub fn client(&self) -> ClientOptions {
        ClientOptions {
            url: self.url.clone(),
            token: self.api_key.clone(),
            listener: self.listener.clone(),
            tls_trust_certs: self.tls_trust_certs.clone(),
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
        }
    }
}

/// Publishes to and subscribes to Pulsar topics; see the module's documentation.
pub struct PulsarTransport {
    url: String,
    client: Client,
    /// One producer per topic, kept while it works.
    producers: tokio::sync::Mutex<HashMap<String, Arc<Producer>>>,
}

impl PulsarTransport {
    /// A transport for `options`. Does not connect (see the module's documentation).
    pub fn new(options: PulsarOptions) -> Self {
        Self {
            url: options.url.clone(),
            client: Client::new(options.client()),
            producers: tokio::sync::Mutex::default(),
        }
    }

    /// The producer for `topic`, created (and the client connected) if there is none or it
    /// can no longer send.
    async fn producer(&self, topic: &str) -> Result<Arc<Producer>, PulsarError> {
        let mut producers = self.producers.lock().await;
        if let Some(producer) = producers.get(topic).filter(|producer| producer.is_open()) {
            return Ok(producer.clone());
        }
        let producer = Arc::new(self.client.producer(topic).await?);
        producers.insert(topic.to_owned(), producer.clone());
        Ok(producer)
    }
}

#[async_trait]
impl Transport for PulsarTransport {
    async fn publish(&self, queue: &Queue, envelope: Envelope) -> Result<(), TransportError> {
        let topic = queue.pulsar_topic();
        let properties =
            envelope.id.into_iter().map(|id| KeyValue { key: ID_PROPERTY.to_owned(), value: id }).collect();
        let failed =
            |e: PulsarError| TransportError::caused_by(format!("cannot publish to {topic} on {}", self.url), e);
        let producer = self.producer(&topic).await.map_err(failed)?;
        // Returns once the broker's receipt arrived: a publish that returns Ok reached it.
        if let Err(e) = producer.send(properties, &envelope.body).await {
            // Made anew next time, on a new connection if need be.
            let mut producers = self.producers.lock().await;
            if producers.get(&topic).is_some_and(|cached| Arc::ptr_eq(cached, &producer)) {
                producers.remove(&topic);
            }
            return Err(failed(e));
        }
        Ok(())
    }

    async fn subscribe(&self, queue: &Queue, subscription: &str) -> Result<Subscription, TransportError> {
        let topic = queue.pulsar_topic();
        let kind = if queue.is_shared() { SubType::Shared } else { SubType::Exclusive };
        let (messages, guard) = self
            .client
            .subscribe(&topic, subscription, kind, None)
            .await
            .map_err(|e| TransportError::caused_by(format!("cannot subscribe to {topic} on {}", self.url), e))?;
        Ok(Subscription::closing_on_drop(messages, guard))
    }

    fn describe(&self) -> String {
        self.url.clone()
    }

    /// Close the consumers, the producers and the connections.
    async fn close(&self) {
        let (consumers, producers) = self.client.close(CLOSE_TIMEOUT).await;
        self.producers.lock().await.clear();
        tracing::info!(broker = %self.url, consumers, producers, "closed the Pulsar client");
    }
}
