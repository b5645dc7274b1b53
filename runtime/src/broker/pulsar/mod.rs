//! The [`Transport`] for Apache Pulsar, as upstream's `pulsar_backend.py` uses it.
//!
//! Queues map to topics with [`Queue::pulsar_topic`] (`non-persistent://tg/request/config`);
//! a message's body is the payload and its correlation id the `id` property. Request and flow
//! queues are read through Shared subscriptions (the service's instances split the work),
//! response and notify queues through Exclusive ones (each subscriber sees everything), all
//! starting at the latest message.
//!
//! The client is this module's own, on tokio: [`client`] finds a topic's broker (and its
//! partitions) and keeps one connection per broker, `connection` speaks Pulsar's binary
//! protocol on it (`frame`, [`proto`]). It does no more than the transport and the lease need
//! (it reads batched and compressed messages, but does not batch or compress, and takes no
//! part in transactions), and costs a fraction of what the `pulsar` crate did for the same
//! work (docs/design.md, "The Pulsar client"): one write per request, answers read and
//! delivered on the connection's own task. It also sets TCP_NODELAY, which the crate left
//! off, and sends `--pulsar-listener` with its lookups, which the crate could not.
//!
//! When the broker moves a topic (an unload, a bundle split, a broker shutting down), the
//! client subscribes again on its own ([`client`]), and a publish whose producer was closed
//! under it is sent once more through a new one.
//!
//! The transport connects lazily: the bootstrapper must start while the broker is still down
//! (its gate stays closed and retries), so [`PulsarTransport::new`] does not connect; the first
//! publish or subscribe does, and after the broker went away the next one connects afresh.

pub mod client;
mod compression;
mod connection;
mod error;
mod frame;
mod pool;
pub mod proto;
#[cfg(test)]
mod scripted;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use client::tls::TlsOptions;
pub use client::{Client, ClientOptions, SubscriptionGuard, TopicProducer};
pub use error::PulsarError;
pub use proto::{ServerError, SubType};

use super::{Envelope, Queue, Subscription, Transport, TransportError};
use pool::Pool;
use proto::KeyValue;

/// The message property carrying the correlation id, as upstream's.
pub const ID_PROPERTY: &str = "id";

/// How long closing the client's consumers, producers and connections may take.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where and how to reach the broker: upstream's `--pulsar-host`, `--pulsar-api-key`,
/// `--pulsar-listener`, and this client's own TLS and lease settings.
#[derive(Debug, Clone)]
pub struct PulsarOptions {
    /// `pulsar://host:6650` or `pulsar+ssl://host:6651`.
    pub url: String,
    /// A token, sent with Pulsar's token authentication.
    pub api_key: Option<String>,
    /// The advertised listener whose addresses lookups answer with, for brokers with several.
    pub listener: Option<String>,
    /// Whom to trust for `pulsar+ssl://`, and whether certificates must name their host.
    pub tls: TlsOptions,
    /// The namespace (`tenant/namespace`) of the lease's topic (`crate::lease::pulsar`).
    pub lease_namespace: String,
}

impl PulsarOptions {
    /// The namespace every Pulsar cluster is created with.
    pub const DEFAULT_LEASE_NAMESPACE: &str = "public/default";

    /// The broker at `url`, with no token or listener, the default trust and lease namespace.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            api_key: None,
            listener: None,
            tls: TlsOptions::default(),
            lease_namespace: Self::DEFAULT_LEASE_NAMESPACE.to_owned(),
        }
    }

    /// The client's options: fail fast when the broker is down (the callers retry on their own
    /// schedule), and notice a silently dropped connection within half a minute.
    pub fn client(&self) -> ClientOptions {
        ClientOptions {
            url: self.url.clone(),
            token: self.api_key.clone(),
            listener: self.listener.clone(),
            tls: self.tls.clone(),
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
    /// One producer per topic, kept while it works. Creating one holds no lock: a topic whose
    /// broker is slow to answer does not hold up publishing to the others.
    producers: Pool<String, Arc<TopicProducer>>,
}

impl PulsarTransport {
    /// A transport for `options`. Does not connect (see the module's documentation).
    pub fn new(options: PulsarOptions) -> Self {
        Self { url: options.url.clone(), client: Client::new(options.client()), producers: Pool::default() }
    }

    /// The producer for `topic`, created (and the client connected) if there is none or it
    /// can no longer send.
    async fn producer(&self, topic: &str) -> Result<Arc<TopicProducer>, PulsarError> {
        let make = || async { Ok(Arc::new(self.client.producer(topic).await?)) };
        self.producers.get_or_make(&topic.to_owned(), |producer| producer.is_open(), make).await
    }

    /// Publish to `topic` once: on failure, the producer is made anew next time, on a new
    /// connection if need be.
    async fn send(&self, topic: &str, properties: Vec<KeyValue>, body: &[u8]) -> Result<(), PulsarError> {
        let producer = self.producer(topic).await?;
        let sent = producer.send(properties, body).await;
        if sent.is_err() {
            self.producers.forget(&topic.to_owned(), |cached| Arc::ptr_eq(cached, &producer));
        }
        sent
    }
}

#[async_trait]
impl Transport for PulsarTransport {
    async fn publish(&self, queue: &Queue, envelope: Envelope) -> Result<(), TransportError> {
        let topic = queue.pulsar_topic();
        let properties: Vec<_> =
            envelope.id.into_iter().map(|id| KeyValue { key: ID_PROPERTY.to_owned(), value: id }).collect();
        // Returns once the broker's receipt arrived: a publish that returns Ok reached it.
        let mut sent = self.send(&topic, properties.clone(), &envelope.body).await;
        if let Err(PulsarError::ProducerMoved) = sent {
            // The topic is moving: sent again where it is now, as Pulsar's clients resend what
            // a moved producer had not had a receipt for. It may so arrive twice; an answer
            // to an id already answered is ignored.
            sent = self.send(&topic, properties, &envelope.body).await;
        }
        sent.map_err(|e| TransportError::caused_by(format!("cannot publish to {topic} on {}", self.url), e))
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
        self.producers.drain();
        tracing::info!(broker = %self.url, consumers, producers, "closed the Pulsar client");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::proto::{BaseCommand, CommandType};
    use super::scripted::{self, ScriptedBroker};
    use super::*;

    #[tokio::test]
    async fn a_publish_whose_producer_the_broker_closes_is_sent_again_through_a_new_one() {
        // The first send gets no receipt: the broker closes its producer instead.
        let first_send = Arc::new(AtomicBool::new(true));
        let unanswered = first_send.clone();
        let broker = ScriptedBroker::start(move |command: &BaseCommand, own_url: &str| {
            if command.r#type == CommandType::Send as i32 && unanswered.swap(false, Ordering::Relaxed) {
                return None;
            }
            scripted::serves(command, own_url)
        })
        .await;
        let transport = PulsarTransport::new(PulsarOptions::new(broker.url.clone()));
        let queue = Queue::request("config");

        let publish = transport.publish(&queue, Envelope { id: Some("1".into()), body: b"{}".to_vec() });
        let close = async {
            let producer = broker.wait_for(CommandType::Producer, 1).await.remove(0).producer.unwrap();
            broker.wait_for(CommandType::Send, 1).await;
            broker.send(&scripted::close_producer(producer.producer_id));
        };
        let (published, ()) = tokio::join!(publish, close);
        published.unwrap();

        let producers = broker.received(CommandType::Producer);
        assert_eq!(producers.len(), 2, "a new producer for the moved topic");
        let sends = broker.received(CommandType::Send);
        let by: Vec<_> = sends.iter().map(|s| s.send.as_ref().unwrap().producer_id).collect();
        let ids: Vec<_> = producers.iter().map(|p| p.producer.as_ref().unwrap().producer_id).collect();
        assert_eq!(by, ids, "sent once by each");
    }
}
