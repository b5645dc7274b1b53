//! Consumers: a subscription made on the connection, whose messages the connection's task
//! hands to a channel as [`Envelope`]s. Flow control keeps the broker from sending more than
//! the channel can take: the broker sends a consumer no more messages than it was granted
//! permits, and more are granted as the subscriber drains the channel. Messages are
//! acknowledged once handed over (on persistent topics); dropping the [`ConsumerGuard`] closes
//! the consumer on the broker.
//!
//! A subscribe that does not return its guard (it timed out, or its future was dropped) closes
//! its consumer all the same, whether or not the broker has answered yet, as Pulsar's Java
//! client closes one whose subscribe timed out: the broker may have made it, or may yet, and a
//! consumer nobody reads would hold an Exclusive subscription against everyone else (the
//! lease's). Only a subscribe the broker refused leaves nothing to close. For the same reason a
//! message for a consumer this side does not know gets that consumer closed, once.
//!
//! The channel a consumer hands its messages to is the subscriber's, not the consumer's: the
//! consumers of a partitioned topic's partitions share one, and when the broker closes a
//! consumer (its topic is moving: an unload, a bundle split, a broker shutting down) the
//! channel is handed back through [`Subscribed::moved`] for the client to subscribe again on it
//! ([`super::super::client`]), so that the subscriber never sees the move. When the connection
//! ends, the channel goes with it, and the subscriber sees its subscription close.

use tokio::sync::{mpsc, oneshot};

use super::{Closing, Connection, Shared, State, commands};
use crate::broker::Envelope;
use crate::broker::pulsar::ID_PROPERTY;
use crate::broker::pulsar::compression;
use crate::broker::pulsar::error::PulsarError;
use crate::broker::pulsar::frame::{self, MessagePayload};
use crate::broker::pulsar::proto::{
    AckType, BaseCommand, CommandAck, CommandMessage, CommandSubscribe, CommandType, InitialPosition, MessageIdData,
    SubType,
};

/// Messages a consumer is granted at a time. Its channel holds three times as many, so that
/// a batch arriving on the last permit still fits.
const PERMITS: u32 = 1000;

/// How many times larger than a frame a compressed message may be uncompressed. Pulsar's
/// clients bound only the compressed size, so a message several times the broker's limit
/// uncompressed is legitimate; a bound is kept against decompression bombs.
const UNCOMPRESSED_LIMIT: usize = 16;
pub const CONSUMER_CHANNEL: usize = 3 * PERMITS as usize;

/// A consumer open on the connection, as its task sees it.
pub(super) struct ConsumerSlot {
    sender: mpsc::Sender<Envelope>,
    /// Permits granted and not used yet.
    permits: u32,
    /// Whether its messages are acknowledged: not on a non-persistent topic, which keeps
    /// nothing to acknowledge (Pulsar's Java client does not acknowledge there either).
    acknowledges: bool,
    /// Where the channel goes if the broker closes the consumer.
    moved: oneshot::Sender<mpsc::Sender<Envelope>>,
    /// Its topic, for the log.
    topic: String,
}

impl ConsumerSlot {
    /// More permits, if half of them are used and the subscriber has room for them.
    fn refill(&mut self) -> Option<u32> {
        if self.permits > PERMITS / 2 || self.sender.capacity() < 2 * PERMITS as usize {
            return None;
        }
        let grant = PERMITS - self.permits;
        self.permits = PERMITS;
        Some(grant)
    }

    /// Hand `envelopes` to the subscriber; whether it has gone.
    fn hand_over(&self, consumer_id: u64, envelopes: Vec<Envelope>) -> bool {
        let mut gone = false;
        for envelope in envelopes {
            match self.sender.try_send(envelope) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(consumer_id, "dropped a Pulsar message: its subscriber is too far behind");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone = true,
            }
        }
        gone
    }
}

/// Closes its consumer when dropped: the subscriber went away, or its subscribe never
/// returned.
pub struct ConsumerGuard {
    id: u64,
    closing: mpsc::UnboundedSender<Closing>,
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        let _ = self.closing.send(Closing::Consumer(self.id));
    }
}

/// A consumer the broker made.
pub struct Subscribed {
    /// Closes it when dropped.
    pub _guard: ConsumerGuard,
    /// The subscriber's channel, handed back if the broker closes the consumer; never, if the
    /// consumer is closed otherwise.
    pub moved: oneshot::Receiver<mpsc::Sender<Envelope>>,
}

impl Connection {
    /// Subscribe to `topic` from its latest message, as `consumer_name` or a fresh name;
    /// messages published once this returns go to `sender`, until the consumer or the
    /// connection ends. Dropping the guard closes the consumer.
    pub async fn subscribe(
        &self,
        topic: &str,
        subscription: &str,
        sub_type: SubType,
        consumer_name: Option<&str>,
        sender: mpsc::Sender<Envelope>,
    ) -> Result<Subscribed, PulsarError> {
        let consumer_id = self.shared.next_id();
        let (moved_sender, moved) = oneshot::channel();
        // Registered before subscribing, so that no message can arrive unclaimed.
        let acknowledges = !topic.starts_with("non-persistent://");
        let slot =
            ConsumerSlot { sender, permits: PERMITS, acknowledges, moved: moved_sender, topic: topic.to_owned() };
        self.shared.state.lock().unwrap().consumers.insert(consumer_id, slot);
        // Made now, so that however this ends without returning it, the consumer is closed.
        let guard = ConsumerGuard { id: consumer_id, closing: self.shared.closing.clone() };
        let subscribed = async {
            self.request(|request_id| BaseCommand {
                r#type: CommandType::Subscribe as i32,
                subscribe: Some(CommandSubscribe {
                    topic: topic.to_owned(),
                    subscription: subscription.to_owned(),
                    sub_type: sub_type as i32,
                    consumer_id,
                    request_id,
                    // A name of its own, as Pulsar's clients give theirs: brokers name
                    // consumers by it in their stats and errors.
                    consumer_name: Some(
                        consumer_name.map_or_else(|| format!("bootstrap-{}", uuid::Uuid::new_v4()), str::to_owned),
                    ),
                    initial_position: Some(InitialPosition::Latest as i32),
                }),
                ..Default::default()
            })
            .await?;
            self.shared.write(&frame::command(&commands::flow(consumer_id, PERMITS))).await?;
            // A broker drops what a non-persistent topic gets while its consumers have no
            // permits: wait until it has read the grant, so that what is published next is
            // delivered.
            self.sync().await
        };
        match subscribed.await {
            Ok(()) => Ok(Subscribed { _guard: guard, moved }),
            Err(refused @ PulsarError::Server { .. }) => {
                // The broker made no consumer: the guard finds nothing to close.
                self.shared.state.lock().unwrap().consumers.remove(&consumer_id);
                Err(refused)
            }
            Err(e) => Err(e),
        }
    }
}

impl Shared {
    /// Hand a message to its consumer's channel; returns the frames to send back: the
    /// acknowledgement, more permits, or the consumer's close if its subscriber is gone.
    pub(super) fn deliver(&self, delivered: CommandMessage, payload: MessagePayload) -> Vec<u8> {
        let consumer_id = delivered.consumer_id;
        let mut replies = Vec::new();
        let mut state = self.state.lock().unwrap();
        let Some(slot) = state.consumers.get_mut(&consumer_id) else {
            // Closed meanwhile, its close on its way; or unknown: closed once, here.
            if !state.closing_consumers.values().any(|&closing| closing == consumer_id) {
                tracing::debug!(consumer_id, "closing a Pulsar consumer this side does not know");
                frame::put_command(&mut replies, &self.close_consumer(&mut state, consumer_id));
            }
            return replies;
        };
        let used = payload.metadata.num_messages_in_batch.map_or(1, |n| n.max(1) as u32);
        slot.permits = slot.permits.saturating_sub(used);
        if slot.hand_over(consumer_id, envelopes(&slot.topic, payload, UNCOMPRESSED_LIMIT * self.max_frame)) {
            // Unacknowledged, so that a shared subscription's other consumers get it.
            state.consumers.remove(&consumer_id);
            state.closed.0 += 1;
            frame::put_command(&mut replies, &self.close_consumer(&mut state, consumer_id));
            return replies;
        }
        if slot.acknowledges {
            frame::put_command(&mut replies, &ack(consumer_id, delivered.message_id));
        }
        if let Some(grant) = slot.refill() {
            frame::put_command(&mut replies, &commands::flow(consumer_id, grant));
        }
        replies
    }

    /// The close of `consumer_id`, sent without waiting for its answer: remembered until the
    /// broker answers ([`Shared::close_answered`]), so that the messages still on their way for
    /// the consumer call for no other.
    pub(super) fn close_consumer(&self, state: &mut State, consumer_id: u64) -> BaseCommand {
        let request_id = self.next_id();
        state.closing_consumers.insert(request_id, consumer_id);
        commands::close_consumer(consumer_id, request_id)
    }

    /// The broker closed `consumer_id`: its channel goes back to whoever subscribed it.
    pub(super) fn consumer_moved(&self, consumer_id: u64) {
        let slot = self.state.lock().unwrap().consumers.remove(&consumer_id);
        if let Some(slot) = slot {
            let _ = slot.moved.send(slot.sender);
        }
    }

    /// The broker answered `request_id`, which no one waits for: a close this side sent.
    pub(super) fn close_answered(&self, request_id: u64) {
        self.state.lock().unwrap().closing_consumers.remove(&request_id);
    }

    /// Permits for consumers whose subscriber has caught up since their last message.
    pub(super) fn refills(&self) -> Vec<u8> {
        let mut frames = Vec::new();
        for (&consumer_id, slot) in &mut self.state.lock().unwrap().consumers {
            if let Some(grant) = slot.refill() {
                frame::put_command(&mut frames, &commands::flow(consumer_id, grant));
            }
        }
        frames
    }
}

/// The acknowledgement of the message (of the whole batch) `message_id`.
fn ack(consumer_id: u64, mut message_id: MessageIdData) -> BaseCommand {
    message_id.batch_index = None; // The whole batch.
    let ack = CommandAck { consumer_id, ack_type: AckType::Individual as i32, message_id: vec![message_id] };
    BaseCommand { r#type: CommandType::Ack as i32, ack: Some(ack), ..Default::default() }
}

/// The envelopes of a message: its payload, decompressed, or each of a batch's, with the `id`
/// property. A message this client cannot read (a chunk of a larger one, a payload that does
/// not decompress to what its metadata says, over `limit` uncompressed, a malformed batch) is
/// logged and left out, and acknowledged all the same, so that it is not delivered again.
fn envelopes(topic: &str, mut payload: MessagePayload, limit: usize) -> Vec<Envelope> {
    match compression::decompress(&payload.metadata, payload.data.clone(), limit) {
        Ok(data) => payload.data = data,
        Err(e) => {
            tracing::warn!(topic, producer = %payload.metadata.producer_name, "dropped a Pulsar message: {e}");
            return Vec::new();
        }
    }
    let metadata = &payload.metadata;
    match frame::split_batch(&payload) {
        Ok(messages) => messages
            .into_iter()
            .map(|(properties, body)| Envelope {
                id: properties.into_iter().find(|p| p.key == ID_PROPERTY).map(|p| p.value),
                body: body.to_vec(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(topic, producer = %metadata.producer_name, "dropped a malformed Pulsar batch: {e}");
            Vec::new()
        }
    }
}
