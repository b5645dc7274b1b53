//! Consumers: a subscription made on the connection, whose messages the connection's task
//! hands to a channel as [`Envelope`]s. Flow control keeps the broker from sending more than
//! the channel can take: the broker sends a consumer no more messages than it was granted
//! permits, and more are granted as the subscriber drains the channel. Messages are
//! acknowledged once handed over (on persistent topics); dropping the [`ConsumerGuard`] closes
//! the consumer on the broker.

use tokio::sync::mpsc;

use super::{Closing, Connection, Shared, commands};
use crate::broker::Envelope;
use crate::broker::pulsar::ID_PROPERTY;
use crate::broker::pulsar::error::PulsarError;
use crate::broker::pulsar::frame::{self, MessagePayload};
use crate::broker::pulsar::proto::{
    AckType, BaseCommand, CommandAck, CommandMessage, CommandSubscribe, CommandType, InitialPosition, MessageIdData,
    SubType,
};

/// Messages a consumer is granted at a time. Its channel holds three times as many, so that
/// a batch arriving on the last permit still fits.
const PERMITS: u32 = 1000;
const CONSUMER_CHANNEL: usize = 3 * PERMITS as usize;

/// A consumer open on the connection, as its task sees it.
pub(super) struct ConsumerSlot {
    sender: mpsc::Sender<Envelope>,
    /// Permits granted and not used yet.
    permits: u32,
    /// Whether its messages are acknowledged: not on a non-persistent topic, which keeps
    /// nothing to acknowledge (Pulsar's Java client does not acknowledge there either).
    acknowledges: bool,
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

/// Closes its consumer when dropped: the subscriber went away.
pub struct ConsumerGuard {
    id: u64,
    closing: mpsc::UnboundedSender<Closing>,
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        let _ = self.closing.send(Closing::Consumer(self.id));
    }
}

impl Connection {
    /// Subscribe to `topic` from its latest message, as `consumer_name` or a fresh name;
    /// messages published once this returns arrive on the channel, which closes when the
    /// consumer or the connection ends. Dropping the guard closes the consumer.
    pub async fn subscribe(
        &self,
        topic: &str,
        subscription: &str,
        sub_type: SubType,
        consumer_name: Option<&str>,
    ) -> Result<(mpsc::Receiver<Envelope>, ConsumerGuard), PulsarError> {
        let consumer_id = self.shared.next_id();
        let (sender, messages) = mpsc::channel(CONSUMER_CHANNEL);
        // Registered before subscribing, so that no message can arrive unclaimed.
        let slot = ConsumerSlot { sender, permits: PERMITS, acknowledges: !topic.starts_with("non-persistent://") };
        self.shared.state.lock().unwrap().consumers.insert(consumer_id, slot);
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
        if let Err(e) = subscribed.await {
            self.shared.state.lock().unwrap().consumers.remove(&consumer_id);
            return Err(e);
        }
        Ok((messages, ConsumerGuard { id: consumer_id, closing: self.shared.closing.clone() }))
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
            return replies; // Closed meanwhile.
        };
        let used = payload.metadata.num_messages_in_batch.map_or(1, |n| n.max(1) as u32);
        slot.permits = slot.permits.saturating_sub(used);
        if slot.hand_over(consumer_id, envelopes(&payload)) {
            // Unacknowledged, so that a shared subscription's other consumers get it.
            state.consumers.remove(&consumer_id);
            state.closed.0 += 1;
            let request_id = self.next_id();
            frame::put_command(&mut replies, &commands::close_consumer(consumer_id, request_id));
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

/// The envelopes of a message: its payload, or each of a batch's, with the `id` property.
/// A message this client cannot read (compressed, or a chunk of a larger one) is logged and
/// left out.
fn envelopes(payload: &MessagePayload) -> Vec<Envelope> {
    let metadata = &payload.metadata;
    if metadata.compression.is_some_and(|c| c != 0) || metadata.num_chunks_from_msg.is_some_and(|n| n > 1) {
        tracing::warn!(
            producer = %metadata.producer_name,
            "dropped a Pulsar message that is compressed or chunked, which this client does not read"
        );
        return Vec::new();
    }
    match frame::split_batch(payload) {
        Ok(messages) => messages
            .into_iter()
            .map(|(properties, body)| Envelope {
                id: properties.into_iter().find(|p| p.key == ID_PROPERTY).map(|p| p.value),
                body: body.to_vec(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(producer = %metadata.producer_name, "dropped a malformed Pulsar batch: {e}");
            Vec::new()
        }
    }
}
