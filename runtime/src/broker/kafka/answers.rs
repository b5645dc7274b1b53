//! The subscriptions that see every message of their topic (the response and notify classes):
//! one consumer for all of them, assigned the topics' partitions by hand, with no group.
//!
//! Upstream gives each such subscriber a consumer group of its own that starts at the earliest
//! offset, so that an answer published before the group's first assignment (a join and a sync
//! with the group coordinator, after `group.initial.rebalance.delay.ms`) is not lost; it then
//! reads the whole retained topic (5 minutes of every client's answers) and keeps its own.
//! Here a subscription reads each partition's end offset and is assigned from there: it is
//! live when `subscribe` returns, with no group round trips, since whatever is published
//! later lands at or after that offset; and it reads nothing older.
//!
//! One librdkafka consumer serves every such subscription of the transport (in the workspace
//! protocol, a response topic per workspace), so a thousand workspaces cost a thousand
//! partitions in one fetch, not a thousand clients with their threads. The pump routes each
//! message to the subscriptions of its topic that started at or before its offset. The
//! consumer keeps its assignment while the cluster is away and fetches on from where it was
//! when it is back: these subscriptions outlive a broker restart, and an answer published
//! meanwhile still arrives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::OffThread;
use super::topics::end_offsets;
use crate::broker::{Envelope, Subscription, TransportError};

/// Messages a subscription buffers before the pump waits for its owner.
const BUFFER: usize = 64;

/// The shared consumer and who reads what from it.
pub(super) struct Answers {
    config: ClientConfig,
    /// Bounds a subscription's lookups.
    timeout: Duration,
    reader: tokio::sync::Mutex<Option<Reader>>,
    routes: Arc<Mutex<Routes>>,
}

/// The consumer, while it lives, and its pump.
struct Reader {
    consumer: Arc<OffThread<StreamConsumer>>,
    pump: JoinHandle<()>,
}

/// The subscriptions of each topic.
#[derive(Default)]
struct Routes {
    by_topic: HashMap<String, Vec<Route>>,
    next_id: u64,
}

struct Route {
    id: u64,
    /// Per partition, the first offset this subscription sees.
    from: HashMap<i32, i64>,
    sender: mpsc::Sender<Envelope>,
}

/// Ends its route when the subscription is dropped, and the topic's assignment with the last.
struct RouteGuard {
    topic: String,
    id: u64,
    routes: Arc<Mutex<Routes>>,
    consumer: Arc<OffThread<StreamConsumer>>,
}

impl Answers {
    /// Subscriptions on the cluster `config` reaches; the consumer is made on first use.
    pub(super) fn new(mut config: ClientConfig, timeout: Duration) -> Self {
        config
            // librdkafka's consumers need a group, though this one never joins it: it is
            // assigned by hand and commits nothing.
            .set("group.id", format!("bootstrap-wasm-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Only for an assigned offset the topic no longer has (it was deleted or the
            // cluster's log wiped): an answer published since then is at the start.
            .set("auto.offset.reset", "earliest")
            // A fetch in flight does not include a partition assigned meanwhile: keep fetches
            // short, or a new subscription's first answer waits for the last fetch's timeout.
            .set("fetch.wait.max.ms", "50")
            // A topic just created may not be served yet at the first fetch: ask again soon,
            // not after librdkafka's default half second.
            .set("fetch.error.backoff.ms", "20")
            // Upstream's largest message.
            .set("fetch.message.max.bytes", "10485760");
        Self { config, timeout, reader: tokio::sync::Mutex::new(None), routes: Arc::default() }
    }

    /// Every message published to `topic` from now on.
    pub(super) async fn subscribe(&self, topic: String) -> Result<Subscription, TransportError> {
        let consumer = self.consumer().await?;
        let ends = {
            let (topic, consumer, timeout) = (topic.clone(), consumer.clone(), self.timeout);
            tokio::task::spawn_blocking(move || end_offsets(&**consumer, &topic, timeout))
                .await
                .expect("the lookup does not panic")?
        };
        let (sender, messages) = mpsc::channel(BUFFER);
        let id = {
            let mut routes = self.routes.lock().unwrap();
            let first = !routes.by_topic.contains_key(&topic);
            if first {
                let mut assignment = TopicPartitionList::new();
                for &(partition, end) in &ends {
                    assignment
                        .add_partition_offset(&topic, partition, Offset::Offset(end))
                        .map_err(|e| TransportError::caused_by(format!("cannot assign topic {topic}"), e))?;
                }
                consumer
                    .incremental_assign(&assignment)
                    .map_err(|e| TransportError::caused_by(format!("cannot assign topic {topic}"), e))?;
            }
            routes.next_id += 1;
            let id = routes.next_id;
            let route = Route { id, from: ends.into_iter().collect(), sender };
            routes.by_topic.entry(topic.clone()).or_default().push(route);
            id
        };
        let guard = RouteGuard { topic, id, routes: self.routes.clone(), consumer };
        Ok(Subscription::closing_on_drop(messages, guard))
    }

    /// The consumer, made and its pump started on first use.
    async fn consumer(&self) -> Result<Arc<OffThread<StreamConsumer>>, TransportError> {
        let mut reader = self.reader.lock().await;
        if let Some(reader) = reader.as_ref() {
            return Ok(reader.consumer.clone());
        }
        let consumer: StreamConsumer =
            self.config.create().map_err(|e| TransportError::caused_by("cannot make a Kafka consumer", e))?;
        let consumer = OffThread::new(consumer);
        let pump = tokio::spawn(pump(consumer.clone(), self.routes.clone()));
        Ok(reader.insert(Reader { consumer, pump }).consumer.clone())
    }

    /// End every subscription, stop the pump and close the consumer.
    pub(super) async fn close(&self) {
        self.routes.lock().unwrap().by_topic.clear();
        if let Some(reader) = self.reader.lock().await.take() {
            reader.pump.abort();
            let _ = reader.pump.await;
            super::close(reader.consumer, super::CLOSE_TIMEOUT).await;
        }
    }
}

/// Hand each message to the subscriptions of its topic that see its offset.
async fn pump(consumer: Arc<OffThread<StreamConsumer>>, routes: Arc<Mutex<Routes>>) {
    loop {
        let (topic, partition, offset, envelope) = match consumer.recv().await {
            Ok(message) => (
                message.topic().to_owned(),
                message.partition(),
                message.offset(),
                Envelope { id: correlation_id(&message), body: message.payload().unwrap_or_default().to_vec() },
            ),
            // librdkafka reconnects by itself; these only say that it is trying.
            Err(e) => {
                tracing::debug!("kafka consumer: {e}");
                continue;
            }
        };
        let senders: Vec<_> = {
            let routes = routes.lock().unwrap();
            let Some(subscribed) = routes.by_topic.get(&topic) else { continue };
            subscribed
                .iter()
                .filter(|route| route.from.get(&partition).is_some_and(|from| offset >= *from))
                .map(|route| route.sender.clone())
                .collect()
        };
        for sender in senders {
            // A subscription dropped meanwhile has gone: nothing to hand it.
            let _ = sender.send(envelope.clone()).await;
        }
    }
}

/// The `id` header, as upstream sends it (UTF-8 bytes).
pub(super) fn correlation_id(message: &impl Message) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == "id")
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        let mut routes = self.routes.lock().unwrap();
        let Some(subscribed) = routes.by_topic.get_mut(&self.topic) else { return };
        subscribed.retain(|route| route.id != self.id);
        if !subscribed.is_empty() {
            return;
        }
        routes.by_topic.remove(&self.topic);
        // The last subscription of the topic: stop fetching it.
        let mut assignment = TopicPartitionList::new();
        if let Ok(current) = self.consumer.assignment() {
            for element in current.elements_for_topic(&self.topic) {
                assignment.add_partition(&self.topic, element.partition());
            }
        }
        if let Err(e) = self.consumer.incremental_unassign(&assignment) {
            tracing::debug!(topic = %self.topic, "cannot unassign: {e}");
        }
    }
}
