//! The subscriptions shared among consumers (the request and flow classes): a consumer group
//! named after the subscription, as upstream's, so that its members split the messages (with
//! one partition, as upstream creates topics, one member at a time reads).
//!
//! A member's subscription is live once the group has assigned it its partitions. A partition
//! the group has committed no offset for starts at its end as of the assignment, set in the
//! rebalance callback, rather than wherever `auto.offset.reset=latest` finds it on the first
//! fetch afterwards, which would lose what is published in between. What the member hands to
//! its owner is committed (every second, and when it leaves), so the next member goes on from
//! there.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::OffThread;
use super::answers::correlation_id;
use crate::broker::{Envelope, Queue, Subscription, TransportError};

/// Messages buffered for the owner beyond the one being handed over: a member holds no more
/// than its owner is about to take, as the RabbitMQ transport's prefetch of 1.
const BUFFER: usize = 1;

/// Join group `group` on `topic` and return once it has an assignment (bounded by `timeout`),
/// with the task forwarding its messages (which leaves the group once the subscription is
/// dropped).
pub(super) async fn subscribe(
    config: &ClientConfig,
    queue: &Queue,
    topic: String,
    group: &str,
    timeout: Duration,
) -> Result<(Subscription, JoinHandle<()>), TransportError> {
    let (assigned, mut assignments) = watch::channel(0_u64);
    let context = GroupContext { assigned, timeout };
    let mut config = config.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "latest")
        // Upstream's, for a quick join of a group with one member.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.error.backoff.ms", "20")
        .set("fetch.message.max.bytes", "10485760");
    let consumer: StreamConsumer<GroupContext> = config
        .create_with_context(context)
        .map_err(|e| TransportError::caused_by("cannot make a Kafka consumer", e))?;
    consumer.subscribe(&[&topic]).map_err(|e| TransportError::caused_by(format!("cannot subscribe to {topic}"), e))?;
    let consumer = OffThread::new(consumer);

    // The rebalance runs inside the consumer's poll: keep polling while waiting for it.
    let (sender, messages) = mpsc::channel(BUFFER);
    let forwarder = tokio::spawn(forward(consumer.clone(), sender, queue.clone()));
    let joined = tokio::time::timeout(timeout, assignments.wait_for(|count| *count > 0)).await;
    if !matches!(joined, Ok(Ok(_))) {
        forwarder.abort();
        return Err(TransportError::new(format!("group {group} on topic {topic}: no assignment within {timeout:?}")));
    }
    Ok((Subscription::new(messages), forwarder))
}

/// Hand each message to the owner and store its offset for the next commit, until the owner
/// goes (then leave the group, committing what was stored).
async fn forward(consumer: Arc<OffThread<StreamConsumer<GroupContext>>>, sender: mpsc::Sender<Envelope>, queue: Queue) {
    loop {
        let message = tokio::select! {
            () = sender.closed() => break,
            next = consumer.recv() => match next {
                Ok(message) => message,
                Err(e) => {
                    tracing::debug!(%queue, "kafka consumer: {e}");
                    continue;
                }
            },
        };
        let envelope = Envelope { id: correlation_id(&message), body: message.payload().unwrap_or_default().to_vec() };
        if sender.send(envelope).await.is_err() {
            break;
        }
        if let Err(e) = consumer.store_offset_from_message(&message) {
            tracing::debug!(%queue, "cannot store an offset: {e}");
        }
    }
    // Leaving the group commits and waits on the coordinator, which may be gone.
    super::close(consumer, super::CLOSE_TIMEOUT).await;
}

/// Starts partitions without a committed offset at their end, and counts assignments.
struct GroupContext {
    assigned: watch::Sender<u64>,
    timeout: Duration,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, partitions: &mut TopicPartitionList) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let result = start_at_commits_or_ends(consumer, partitions, self.timeout)
                    .and_then(|assignment| consumer.assign(&assignment));
                self.assigned.send_modify(|count| *count += 1);
                result
            }
            _ => consumer.unassign(),
        };
        if let Err(e) = result {
            tracing::warn!("kafka group rebalance: {e}");
        }
    }
}

/// `partitions`, each at its committed offset, or at its end where the group has none.
fn start_at_commits_or_ends(
    consumer: &BaseConsumer<GroupContext>,
    partitions: &TopicPartitionList,
    timeout: Duration,
) -> KafkaResult<TopicPartitionList> {
    let mut assignment = consumer.committed_offsets(partitions.clone(), timeout)?;
    let uncommitted: Vec<(String, i32)> = assignment
        .elements()
        .iter()
        .filter(|element| element.offset() == Offset::Invalid)
        .map(|element| (element.topic().to_owned(), element.partition()))
        .collect();
    for (topic, partition) in uncommitted {
        let (_low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
        assignment.set_partition_offset(&topic, partition, Offset::Offset(high))?;
    }
    Ok(assignment)
}
