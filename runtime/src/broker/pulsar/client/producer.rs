//! Producing to a topic, partitioned or not: one producer per partition, sent to in turn, as
//! Pulsar's clients route messages that carry no key (round robin).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Client;
use crate::broker::pulsar::connection::Producer;
use crate::broker::pulsar::error::PulsarError;
use crate::broker::pulsar::proto::KeyValue;

/// A producer on a topic: on each of its partitions if it has any.
pub struct TopicProducer {
    producers: Vec<Producer>,
    next: AtomicUsize,
}

impl Client {
    /// A producer on `topic` (on each of its partitions, if it is partitioned).
    pub async fn producer(&self, topic: &str) -> Result<TopicProducer, PulsarError> {
        let mut producers = Vec::new();
        for partition in self.partitions(topic).await? {
            let partition = partition.as_str();
            let make = || async move { self.lookup(partition).await?.producer(partition).await };
            producers.push(self.retrying(PulsarError::is_retriable, make).await?);
        }
        Ok(TopicProducer { producers, next: AtomicUsize::new(0) })
    }
}

impl TopicProducer {
    /// Publish one message (to the next partition) and wait for the broker's receipt.
    pub async fn send(&self, properties: Vec<KeyValue>, payload: &[u8]) -> Result<(), PulsarError> {
        let next = self.next.fetch_add(1, Ordering::Relaxed) % self.producers.len();
        self.producers[next].send(properties, payload).await
    }

    /// Whether sends can still succeed: every partition's producer is open.
    pub fn is_open(&self) -> bool {
        self.producers.iter().all(Producer::is_open)
    }
}
