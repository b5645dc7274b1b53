//! Producers: made on the connection to the broker that serves their topic, they send one
//! message at a time and wait for its receipt. A message over the broker's `max_message_size`
//! is refused before it is sent (as Pulsar's clients do), since the broker would close the
//! connection over it. The broker may close a producer (its topic moved): its sends fail from
//! then on and its owner makes a new one. Dropping a producer closes it on the broker, from the
//! connection's task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::{Closing, Connection};
use crate::broker::pulsar::error::{PulsarError, unexpected};
use crate::broker::pulsar::frame;
use crate::broker::pulsar::proto::{BaseCommand, CommandProducer, CommandSend, CommandType, KeyValue, MessageMetadata};

/// A producer created on a connection.
pub struct Producer {
    connection: Arc<Connection>,
    id: u64,
    /// The name the broker gave it, which every message's metadata carries.
    name: String,
    next_sequence: AtomicU64,
}

impl Connection {
    /// A producer on `topic`, which this connection's broker serves.
    pub async fn producer(self: &Arc<Self>, topic: &str) -> Result<Producer, PulsarError> {
        let producer_id = self.shared.next_id();
        let answer = self
            .request(|request_id| BaseCommand {
                r#type: CommandType::Producer as i32,
                producer: Some(CommandProducer { topic: topic.to_owned(), producer_id, request_id }),
                ..Default::default()
            })
            .await?;
        let kind = answer.r#type;
        let success = answer.producer_success.ok_or_else(|| unexpected("a producer's creation", kind))?;
        let next_sequence = u64::try_from(success.last_sequence_id.unwrap_or(-1) + 1).unwrap_or(0);
        self.shared.state.lock().unwrap().producers.insert(producer_id);
        Ok(Producer {
            connection: self.clone(),
            id: producer_id,
            name: success.producer_name,
            next_sequence: AtomicU64::new(next_sequence),
        })
    }
}

impl Producer {
    /// Whether sends can still succeed: its connection is up and the broker has not closed it.
    pub fn is_open(&self) -> bool {
        let state = self.connection.shared.state.lock().unwrap();
        state.ended.is_none() && state.producers.contains(&self.id)
    }

    /// Publish one message and wait for the broker's receipt.
    pub async fn send(&self, properties: Vec<KeyValue>, payload: &[u8]) -> Result<(), PulsarError> {
        let shared = &self.connection.shared;
        // Before it takes a sequence id, which would otherwise be a gap the broker never sees.
        if payload.len() > shared.max_message_size {
            return Err(PulsarError::MessageTooLarge { size: payload.len(), limit: shared.max_message_size });
        }
        let sequence_id = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let waiter = shared.register(&shared.receipts, |state| {
            if state.producers.contains(&self.id) {
                Ok((self.id, sequence_id))
            } else {
                Err(PulsarError::ProducerMoved)
            }
        })?;
        let send = BaseCommand {
            r#type: CommandType::Send as i32,
            send: Some(CommandSend { producer_id: self.id, sequence_id, num_messages: Some(1) }),
            ..Default::default()
        };
        let metadata = self.metadata(sequence_id, properties, payload.len());
        shared.write(&frame::message(&send, &metadata, payload)).await?;
        shared.wait(waiter).await?
    }

    /// The metadata of the message `sequence_id`, whose payload is `size` bytes.
    fn metadata(&self, sequence_id: u64, properties: Vec<KeyValue>, size: usize) -> MessageMetadata {
        MessageMetadata {
            producer_name: self.name.clone(),
            sequence_id,
            publish_time: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |t| t.as_millis() as u64),
            properties,
            uncompressed_size: Some(size as u32),
            ..Default::default()
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.connection.shared.closing.send(Closing::Producer(self.id));
    }
}
