//! Topics: each queue's Kafka topic, created (if missing) as upstream's Kafka backend creates
//! it before anything is published or read there, and where each topic's partitions end.
//!
//! Upstream creates topics with one partition and a retention of 5 minutes (7 days for the
//! flow class). Here the replication factor is the cluster's own default where upstream asks
//! for 1: on a single broker that is the same, on a real cluster it keeps the topic when a
//! broker goes. A topic that exists is used as it is, whatever its settings; a topic that
//! cannot be created (no permission to) is used if it exists.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;

use crate::broker::{Queue, QueueClass, TransportError};

/// Retention of the flow class's topics, as upstream's.
const FLOW_RETENTION_MS: &str = "604800000";

/// Retention of the other classes' topics (request, response, notify), as upstream's.
const SHORT_RETENTION_MS: &str = "300000";

/// How often a partition lookup is tried while a topic just created is not yet in the
/// metadata, and how long apart.
const LOOKUP_TRIES: u32 = 20;
const LOOKUP_PAUSE: Duration = Duration::from_millis(50);

/// The topics this transport (or the lease) has made sure of, and the clients it does that
/// with.
pub(crate) struct Topics {
    config: ClientConfig,
    timeout: Duration,
    admin: OnceLock<Result<AdminClient<DefaultClientContext>, String>>,
    ensured: Mutex<HashSet<String>>,
}

impl Topics {
    /// Topics on the cluster `config` reaches, each operation bounded by `timeout`.
    pub(crate) fn new(config: ClientConfig, timeout: Duration) -> Self {
        Self { config, timeout, admin: OnceLock::new(), ensured: Mutex::default() }
    }

    /// `queue`'s topic, created first if this transport has not made sure of it yet.
    pub(super) async fn ensure(&self, queue: &Queue) -> Result<String, TransportError> {
        let topic = topic_name(queue)?;
        let retention = if queue.class == QueueClass::Flow { FLOW_RETENTION_MS } else { SHORT_RETENTION_MS };
        self.ensure_topic(&topic, retention).await?;
        Ok(topic)
    }

    /// Topic `topic` with one partition, created with `retention_ms` if missing.
    pub(crate) async fn ensure_topic(&self, topic: &str, retention_ms: &str) -> Result<(), TransportError> {
        if self.ensured.lock().unwrap().contains(topic) {
            return Ok(());
        }
        let admin = self
            .admin
            .get_or_init(|| self.config.create().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| TransportError::new(format!("cannot make a Kafka admin client: {e}")))?;
        let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("retention.ms", retention_ms);
        let options = AdminOptions::new().request_timeout(Some(self.timeout)).operation_timeout(Some(self.timeout));
        let results = admin
            .create_topics([&new_topic], &options)
            .await
            .map_err(|e| TransportError::caused_by(format!("cannot create topic {topic}"), e))?;
        for result in results {
            match result {
                Ok(_) => tracing::debug!(%topic, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                // Not ours to create (ACLs, auto-creation only): it may exist all the same.
                Err((
                    _,
                    code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::PolicyViolation),
                )) => {
                    tracing::debug!(%topic, "cannot create the topic ({code}); using it if it exists");
                }
                Err((_, code)) => return Err(TransportError::new(format!("cannot create topic {topic}: {code}"))),
            }
        }
        self.ensured.lock().unwrap().insert(topic.to_owned());
        Ok(())
    }
}

/// The partitions of `topic` with the offset the next message on each will have (its high
/// watermark), looked up through `consumer`, which then also knows where they live: the
/// consumer about to be assigned them, so that its first fetch need not wait for its next
/// metadata refresh (up to a second away). Blocking: run it off the async executor.
pub(crate) fn end_offsets<X: ConsumerContext>(
    consumer: &impl Consumer<X>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64)>, TransportError> {
    Ok(watermarks(consumer, topic, timeout)?.into_iter().map(|(partition, _low, high)| (partition, high)).collect())
}

/// As [`end_offsets`], with each partition's first offset still kept (its low watermark) too:
/// `(partition, low, high)`.
pub(crate) fn watermarks<X: ConsumerContext>(
    consumer: &impl Consumer<X>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>, TransportError> {
    let failed = |what: &str, e| TransportError::caused_by(format!("cannot {what} of topic {topic}"), e);
    let mut tries = 0;
    let partitions: Vec<i32> = loop {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(|e| failed("read the metadata", e))?;
        let found = metadata.topics().first().filter(|found| found.error().is_none());
        if let Some(found) = found.filter(|found| !found.partitions().is_empty()) {
            break found.partitions().iter().map(|partition| partition.id()).collect();
        }
        // Just created: the broker answering may not know it yet.
        tries += 1;
        if tries == LOOKUP_TRIES {
            return Err(TransportError::new(format!("topic {topic} has no partitions on the cluster")));
        }
        std::thread::sleep(LOOKUP_PAUSE);
    };
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) =
                consumer.fetch_watermarks(topic, partition, timeout).map_err(|e| failed("read the end offsets", e))?;
            Ok((partition, low, high))
        })
        .collect()
}

/// `queue`'s topic name, if Kafka allows it: letters, digits, `.`, `_` and `-`, up to 249.
pub(super) fn topic_name(queue: &Queue) -> Result<String, TransportError> {
    let topic = queue.kafka_topic();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.len() > 249 || !topic.chars().all(allowed) {
        return Err(TransportError::new(format!(
            "{queue} cannot be a Kafka topic ({topic:?}: letters, digits, '.', '_' and '-' only, up to 249)"
        )));
    }
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_topics_as_upstream_and_refuses_what_kafka_cannot_hold() {
        assert_eq!(topic_name(&Queue::response_for("flow", "acme-1")).unwrap(), "tg.response.flow.acme-1");
        assert!(
            topic_name(&Queue::request_for("flow", "a b")).unwrap_err().to_string().contains("cannot be a Kafka topic")
        );
        assert!(topic_name(&Queue::request_for("flow", &"x".repeat(250))).is_err());
    }
}
