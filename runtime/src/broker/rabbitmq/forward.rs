//! A subscription's forwarder: the task that hands each delivery to the subscriber, as an
//! [`Envelope`] with the `id` header as its correlation id, and acknowledges it once handed
//! over. It owns the consumer's channel and closes it when either side goes.

use futures_util::StreamExt;
use lapin::options::BasicAckOptions;
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Consumer};
use tokio::sync::mpsc;

use super::{CLOSE_OK, CLOSE_TIMEOUT};
use crate::broker::{Envelope, Queue};

/// Hand each delivery to the subscription's owner and acknowledge it, until the consumer ends
/// (the connection or channel died, the broker cancelled it) or the owner drops the receiver.
/// Returning drops the sender, which closes the subscription, and the channel, which releases
/// the queue (an exclusive one is deleted).
pub(super) async fn forward(channel: Channel, mut consumer: Consumer, sender: mpsc::Sender<Envelope>, queue: Queue) {
    loop {
        let delivery = tokio::select! {
            () = sender.closed() => break,
            next = consumer.next() => match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(e)) => {
                    tracing::debug!(%queue, "consumer failed: {e}");
                    break;
                }
                None => {
                    tracing::debug!(%queue, "consumer cancelled by the broker");
                    break;
                }
            },
        };
        let envelope = Envelope { id: correlation_id(&delivery.properties), body: delivery.data };
        // Not acknowledged if the owner has gone: the broker gives it to another subscriber.
        if sender.send(envelope).await.is_err() {
            break;
        }
        if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
            tracing::debug!(%queue, "cannot acknowledge a message: {e}");
            break;
        }
    }
    // Closed, not just dropped: the server then releases the queue (an exclusive one is
    // deleted) now rather than when the connection goes. Bounded: a dead connection may not
    // answer.
    if channel.status().connected() {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, channel.close(CLOSE_OK, "unsubscribed".into())).await;
    }
}

/// The `id` header. Upstream (pika) sends text headers as long strings; accept the other
/// string-like encodings too.
fn correlation_id(properties: &BasicProperties) -> Option<String> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match properties.headers().as_ref()?.inner().get("id")? {
        AMQPValue::LongString(id) => Some(text(id.as_bytes())),
        AMQPValue::ShortString(id) => Some(id.as_str().to_owned()),
        AMQPValue::ByteArray(id) => Some(text(id.as_slice())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldTable;

    use super::*;

    #[test]
    fn reads_the_id_header_in_any_string_encoding() {
        let with = |value: AMQPValue| {
            let mut headers = FieldTable::default();
            headers.insert("id".into(), value);
            correlation_id(&BasicProperties::default().with_headers(headers))
        };
        assert_eq!(with(AMQPValue::LongString("a".into())).as_deref(), Some("a"));
        assert_eq!(with(AMQPValue::ShortString("b".into())).as_deref(), Some("b"));
        assert_eq!(with(AMQPValue::ByteArray(b"c".as_slice().into())).as_deref(), Some("c"));
        assert_eq!(with(AMQPValue::LongLongInt(7)), None);
        assert_eq!(correlation_id(&BasicProperties::default()), None);
    }
}
