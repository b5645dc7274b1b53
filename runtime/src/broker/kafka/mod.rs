//! The [`Transport`] over Kafka, laid out exactly as TrustGraph's own Kafka backend lays it out
//! (`trustgraph-base/trustgraph/base/kafka_backend.py` in 2.4, `async_kafka_backend.py` in
//! 2.11), so the bootstrapper and TrustGraph's services meet on the same topics and groups.
//!
//! Each queue `class:topicspace:topic` is the topic `topicspace.class.topic` (any further `:`
//! as `.`), made if missing with one partition and upstream's retention (`topics`). A message
//! is the UTF-8 JSON body, with the correlation id in the header `id`. The request and flow
//! classes are read by a consumer group named after the subscription, whose members split the
//! messages (`group`); the response and notify classes are read by every subscriber, which
//! upstream does with a group per subscriber and here one consumer assigned every such topic
//! by hand, each subscription live from the end offsets it read (`answers`).
//!
//! librdkafka is the client, as in TrustGraph's services (confluent-kafka): it connects,
//! reconnects and finds partition leaders by itself, so [`KafkaTransport::new`] connects to
//! nothing, a broker that goes away and comes back is met again without the transport's help,
//! and subscriptions outlive it. A publish waits for the broker's acknowledgement, at most
//! the operation timeout given: a publish into a cluster that is down fails then, and the
//! message is not sent later.

mod answers;
mod group;
mod options;
pub(crate) mod topics;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use tokio::task::JoinHandle;

pub use options::{KafkaOptions, SASL_MECHANISMS, SecurityProtocol};

use super::{Envelope, Queue, QueueClass, Subscription, Transport, TransportError};
use answers::Answers;
use topics::Topics;

/// How long closing may wait for producers to flush and groups to be left.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A librdkafka client that closes on a thread of its own, wherever it is dropped. A consumer
/// with a group (and librdkafka's consumers all have one) leaves it as it closes and waits for
/// the coordinator's answer, for as long as that takes: a cluster that has gone away would
/// hold whoever drops it for good, an executor's thread or, at exit, the executor itself
/// waiting for its blocking tasks. The thread outlives such a close if it must and ends with
/// the process; [`close`] waits for it, a while.
pub(crate) struct OffThread<T: Send + 'static> {
    client: Option<T>,
    on_closed: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl<T: Send + 'static> OffThread<T> {
    pub(crate) fn new(client: T) -> Arc<Self> {
        Arc::new(Self { client: Some(client), on_closed: Mutex::default() })
    }
}

impl<T: Send + 'static> std::ops::Deref for OffThread<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.client.as_ref().expect("present until dropped")
    }
}

impl<T: Send + 'static> Drop for OffThread<T> {
    fn drop(&mut self) {
        let client = self.client.take();
        let on_closed = self.on_closed.get_mut().unwrap().take();
        let closing = std::thread::Builder::new().name("kafka-close".into()).spawn(move || {
            drop(client);
            on_closed.map(|closed| closed.send(()));
        });
        if let Err(e) = closing {
            tracing::warn!("cannot start a thread to close a Kafka client: {e}");
        }
    }
}

/// Drop `client`, and if that is its last owner, wait for it to close, at most `timeout`.
pub(crate) async fn close<T: Send + 'static>(client: Arc<OffThread<T>>, timeout: Duration) {
    let (closed, done) = tokio::sync::oneshot::channel();
    *client.on_closed.lock().unwrap() = Some(closed);
    drop(client);
    let _ = tokio::time::timeout(timeout, done).await;
}

/// A [`Transport`] to one Kafka cluster.
pub struct KafkaTransport {
    options: KafkaOptions,
    described: String,
    /// Bounds each publish (the broker's acknowledgement included), topic creation and join.
    timeout: Duration,
    topics: Topics,
    /// Acknowledged by the partition leader (the request, response and notify classes) and by
    /// every in-sync replica (the flow class), as upstream's; each made on first use.
    producers: [OnceLock<Result<FutureProducer, String>>; 2],
    answers: Answers,
    /// The tasks forwarding group subscriptions' messages (each leaves its group when done).
    group_forwarders: Mutex<Vec<JoinHandle<()>>>,
}

impl KafkaTransport {
    /// A transport to the cluster of `options`; each publish, topic creation or group join
    /// gives up after `timeout`. Connects on first use, not here.
    pub fn new(options: KafkaOptions, timeout: Duration) -> Self {
        let config = options.client_config();
        let timeout = timeout.max(Duration::from_millis(100));
        Self {
            described: options.describe(),
            topics: Topics::new(config.clone(), timeout),
            answers: Answers::new(config, timeout),
            producers: Default::default(),
            group_forwarders: Mutex::default(),
            options,
            timeout,
        }
    }

    /// The producer for `class`, made on first use.
    fn producer(&self, class: QueueClass) -> Result<&FutureProducer, TransportError> {
        let durable = class == QueueClass::Flow;
        self.producers[usize::from(durable)]
            .get_or_init(|| {
                let mut config = self.options.client_config();
                config
                    .set("acks", if durable { "all" } else { "1" })
                    // librdkafka lingers 5 ms by default to batch; a request goes at once.
                    .set("linger.ms", "0")
                    // Delivered within the timeout, or never: a late request is worse than none.
                    .set("message.timeout.ms", self.timeout.as_millis().to_string())
                    .set("message.max.bytes", "10485760");
                config.create().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| TransportError::new(format!("cannot make a Kafka producer: {e}")))
    }
}

#[async_trait]
impl Transport for KafkaTransport {
    async fn publish(&self, queue: &Queue, envelope: Envelope) -> Result<(), TransportError> {
        let topic = self.topics.ensure(queue).await?;
        let producer = self.producer(queue.class)?;
        let headers =
            envelope.id.as_deref().map(|id| OwnedHeaders::new().insert(Header { key: "id", value: Some(id) }));
        let mut record = FutureRecord::<(), _>::to(&topic).payload(&envelope.body);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        producer
            .send(record, Timeout::After(self.timeout))
            .await
            .map(|_delivered| ())
            .map_err(|(e, _message)| TransportError::caused_by(format!("cannot publish to topic {topic}"), e))
    }

    async fn subscribe(&self, queue: &Queue, subscription: &str) -> Result<Subscription, TransportError> {
        let topic = self.topics.ensure(queue).await?;
        if !queue.is_shared() {
            return self.answers.subscribe(topic).await;
        }
        let config = self.options.client_config();
        let (subscription, forwarder) = group::subscribe(&config, queue, topic, subscription, self.timeout).await?;
        let mut forwarders = self.group_forwarders.lock().unwrap();
        forwarders.retain(|forwarder| !forwarder.is_finished());
        forwarders.push(forwarder);
        Ok(subscription)
    }

    fn describe(&self) -> String {
        self.described.clone()
    }

    /// Wait for the groups to be left (each forwarder leaves its own once its subscriber is
    /// gone), end the other subscriptions, and flush the producers.
    async fn close(&self) {
        let forwarders = std::mem::take(&mut *self.group_forwarders.lock().unwrap());
        let groups = forwarders.len();
        for forwarder in forwarders {
            if tokio::time::timeout(CLOSE_TIMEOUT, forwarder).await.is_err() {
                tracing::debug!(broker = %self.described, "leaving a consumer group took over {CLOSE_TIMEOUT:?}");
            }
        }
        self.answers.close().await;
        for producer in self.producers.iter().filter_map(|producer| producer.get()?.as_ref().ok()) {
            let producer = producer.clone();
            let flushed = tokio::task::spawn_blocking(move || producer.flush(Timeout::After(CLOSE_TIMEOUT)));
            let _ = flushed.await;
        }
        tracing::info!(broker = %self.described, groups, "closed the Kafka clients");
    }
}
