//! The exchanges and queues, declared exactly as upstream declares them (declaring one
//! otherwise would fail against one upstream made): a durable fanout exchange per queue, and
//! for each subscriber a queue bound to it, shared by name or its own (see the transport's
//! documentation).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

use super::failed;
use crate::broker::{Queue, QueueClass, TransportError};

/// The name of `queue`'s exchange, `topicspace.class.topic`.
pub(super) fn exchange_name(queue: &Queue) -> Result<ShortString, TransportError> {
    ShortString::try_new(queue.rabbitmq_exchange())
        .map_err(|e| TransportError::caused_by(format!("exchange name for {queue}"), e))
}

/// Declare `queue`'s exchange: fanout and durable, as upstream declares it.
pub(super) async fn declare_exchange(channel: &Channel, exchange: &ShortString) -> Result<(), TransportError> {
    let options = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare(exchange.clone(), ExchangeKind::Fanout, options, FieldTable::default())
        .await
        .map_err(failed(format!("declare exchange {exchange}")))
}

/// Declare the queue a subscriber of `queue` under `subscription` consumes from, and bind it
/// to `exchange`; returns its name.
pub(super) async fn declare_consumer_queue(
    channel: &Channel,
    queue: &Queue,
    exchange: &ShortString,
    subscription: &str,
) -> Result<ShortString, TransportError> {
    let queue_name = if queue.is_shared() {
        // Every subscriber under one name consumes from one queue: they split the messages.
        // The queue outlives its consumers, so nothing published meanwhile is lost; only
        // the flow class's survives a broker restart.
        let name = ShortString::try_new(format!("{exchange}.{subscription}"))
            .map_err(|e| TransportError::caused_by(format!("queue name for {queue} under {subscription:?}"), e))?;
        let options =
            QueueDeclareOptions { durable: queue.class == QueueClass::Flow, ..QueueDeclareOptions::default() };
        channel
            .queue_declare(name.clone(), options, FieldTable::default())
            .await
            .map_err(failed(format!("declare queue {name}")))?;
        name
    } else {
        // A queue of our own that the server names and deletes when we go.
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..QueueDeclareOptions::default() };
        let declared = channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .map_err(failed(format!("declare a queue for {exchange}")))?;
        declared.name().clone()
    };
    channel
        .queue_bind(queue_name.clone(), exchange.clone(), "".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .map_err(failed(format!("bind queue {queue_name} to exchange {exchange}")))?;
    Ok(queue_name)
}
