//! The RabbitMQ lease: a single-active-consumer queue carrying heartbeats
//! ([`super::heartbeat`]).
//!
//! Every replica declares the queue `tg.lease.<name>` (default `tg.lease.bootstrap`, named as
//! TrustGraph names its exchanges, `topicspace.class.topic`) in the deployment's vhost with
//! `x-single-active-consumer: true`, consumes from it, and publishes heartbeats to it through
//! the default exchange. RabbitMQ delivers to one consumer at a time and moves to the next
//! when that one's channel or connection closes.
//!
//! RabbitMQ never moves the active consumer away from a live, connected one, so a replica
//! that receives a heartbeat holds the lease at once ([`super::heartbeat`]). A holder cut off by a partition stops receiving heartbeats at once
//! and gives up after [`Timing::window`]; RabbitMQ moves the lease only when the AMQP
//! heartbeat timeout, set to twice the window, has passed.
//!
//! Nothing piles up: deliveries are acknowledged on receipt, a heartbeat waiting with no
//! consumer expires after [`MESSAGE_TTL_MS`], and the queue itself is deleted after
//! [`QUEUE_EXPIRES_MS`] without consumers. Both are fixed, not derived from the cadence:
//! replicas must declare the queue with the same arguments, or RabbitMQ refuses the second.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::{mpsc, watch};

use super::heartbeat::{Beacon, BeatSender, Link, Refusal};
use super::{Lease, LeaseError, LeaseState, Timing};
use crate::broker::rabbitmq::{RabbitOptions, amqp_uri};

/// How long a heartbeat waits in the queue when no replica consumes.
pub const MESSAGE_TTL_MS: i64 = 10_000;

/// How long the queue outlives its last consumer.
pub const QUEUE_EXPIRES_MS: i64 = 60_000;

/// The lease queue for lease `name`.
pub fn queue(name: &str) -> String {
    format!("tg.lease.{name}")
}

/// Start keeping lease `name` on the broker of `options`, in the background.
pub fn lease(options: &RabbitOptions, name: &str, timing: Timing) -> Result<Lease, LeaseError> {
    let queue = ShortString::try_new(queue(name))
        .map_err(|e| LeaseError::BadName { name: name.to_owned(), reason: e.to_string() })?;
    let description = format!("rabbitmq queue {queue} in vhost {}", options.vhost);
    // The AMQP heartbeat timeout (whole seconds): the broker notices a silently dead holder,
    // and moves the lease, after it; the holder gives up after its window.
    let heartbeat = u16::try_from((timing.window * 2).as_secs().max(1)).unwrap_or(u16::MAX);
    let connect_timeout = u64::try_from(timing.window.as_millis()).unwrap_or(u64::MAX);
    let uri = amqp_uri(options, heartbeat, connect_timeout);
    let (sender, receiver) = watch::channel(LeaseState::Unknown);
    let keeper = tokio::spawn(super::heartbeat::keep(
        Arc::new(RabbitBeacon { uri, queue, body: uuid::Uuid::new_v4().to_string().into_bytes() }),
        timing,
        sender,
    ));
    Ok(Lease::new(receiver, keeper, description))
}

struct RabbitBeacon {
    uri: AMQPUri,
    queue: ShortString,
    /// The heartbeat's body: this replica's id, for anyone reading the queue.
    body: Vec<u8>,
}

struct RabbitSender {
    /// Kept with the channel, which it carries, for the life of the link.
    _connection: Arc<Connection>,
    channel: Channel,
    queue: ShortString,
    /// The heartbeat's body.
    body: Vec<u8>,
}

#[async_trait]
impl BeatSender for RabbitSender {
    async fn send(&mut self) -> Result<(), LeaseError> {
        self.channel
            .basic_publish(
                "".into(),
                self.queue.clone(),
                BasicPublishOptions::default(),
                &self.body,
                BasicProperties::default(),
            )
            .await
            .map_err(broker_error)?;
        Ok(())
    }
}

#[async_trait]
impl Beacon for RabbitBeacon {
    async fn connect(&self) -> Result<Link, Refusal> {
        let properties = ConnectionProperties::default().with_connection_name("bootstrap-wasm lease".into());
        let connection = Arc::new(Connection::connect_uri(self.uri.clone(), properties).await.map_err(broker_error)?);
        let channel = connection.create_channel().await.map_err(broker_error)?;
        let mut arguments = FieldTable::default();
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(MESSAGE_TTL_MS));
        arguments.insert("x-expires".into(), AMQPValue::LongLongInt(QUEUE_EXPIRES_MS));
        channel
            .queue_declare(self.queue.clone(), QueueDeclareOptions::default(), arguments)
            .await
            .map_err(broker_error)?;
        let consume = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut consumer = channel
            .basic_consume(self.queue.clone(), "".into(), consume, FieldTable::default())
            .await
            .map_err(broker_error)?;
        let (beats, received) = mpsc::channel(16);
        let kept = connection.clone();
        tokio::spawn(async move {
            loop {
                let delivery = tokio::select! {
                    () = beats.closed() => break,
                    delivery = consumer.next() => delivery,
                };
                let Some(Ok(_delivery)) = delivery else { break };
                // Full means the lease keeper already has news of this replica being served.
                let _ = beats.try_send(());
            }
            // Closing the connection hands the lease on at once rather than at its heartbeat.
            let _ = kept.close(200, "lease released".into()).await;
        });
        Ok(Link {
            beats: received,
            sender: Box::new(RabbitSender {
                _connection: connection,
                channel,
                queue: self.queue.clone(),
                body: self.body.clone(),
            }),
        })
    }
}

fn broker_error(error: lapin::Error) -> LeaseError {
    LeaseError::RabbitMq(error)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_queue_is_named_as_trustgraph_names_its_exchanges() {
        assert_eq!(super::queue("bootstrap"), "tg.lease.bootstrap");
    }
}
