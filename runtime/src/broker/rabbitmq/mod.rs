//! The [`Transport`] over RabbitMQ (AMQP 0-9-1), laid out exactly as TrustGraph's own RabbitMQ
//! backend lays it out (`trustgraph-base/trustgraph/base/rabbitmq_backend.py`), so the
//! bootstrapper and TrustGraph's services meet on the same exchanges and queues.
//!
//! Each queue `class:topicspace:topic` is a durable fanout exchange `topicspace.class.topic`.
//! Publishers send to the exchange with an empty routing key, the correlation id in the AMQP
//! header `id`. Each subscriber binds a queue of its own to the exchange: for the shared
//! classes (request, flow) the named queue `<exchange>.<subscription>`, which every subscriber
//! under that name consumes from, so they split the messages; for the others (response,
//! notify) an exclusive, auto-deleted queue the server names, so each sees every message.
//!
//! [`RabbitTransport::new`] does not connect: the bootstrapper starts while the broker is
//! still coming up. The first publish or subscribe connects; one connection carries a channel
//! for publishing and a channel per subscription. When the connection dies, subscriptions
//! close (their owner subscribes again) and the next publish or subscribe connects afresh.
//!
//! The parts: `options` says where the broker is and makes lapin's URI, `topology` declares
//! the exchanges and queues, and `forward` hands a subscription's deliveries to its owner.

mod forward;
mod options;
mod topology;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

pub use options::RabbitOptions;
pub(crate) use options::amqp_uri;
use options::describe;
use topology::{declare_consumer_queue, declare_exchange, exchange_name};

use super::{Envelope, Queue, QueueClass, Subscription, Transport, TransportError};

/// The longest a publish or subscribe may take, connecting included. A broker that accepts the
/// TCP connection but never answers would otherwise hold the caller (and, through the shared
/// connection, every other caller) for good.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest connecting may take, in milliseconds (lapin's `connection_timeout`).
const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Heartbeat interval in seconds, as upstream's: detects a connection that died silently
/// (a network partition) within about twice this.
const HEARTBEAT_SECS: u16 = 60;

/// AMQP's reply code for a normal close.
const CLOSE_OK: u16 = 200;

/// How long closing a channel or the connection may take before it is abandoned.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The name the connection shows under in RabbitMQ's management UI.
const CONNECTION_NAME: &str = "bootstrap-wasm";

/// Messages a subscription buffers beyond the one RabbitMQ has in flight. RabbitMQ hands a
/// consumer one unacknowledged message at a time (prefetch 1, as upstream) and a message is
/// acknowledged once it is in this buffer, so a deep buffer would let one subscriber of a
/// shared queue hoard messages its peers could be working on.
const SUBSCRIPTION_BUFFER: usize = 1;

/// A [`Transport`] to one RabbitMQ virtual host.
pub struct RabbitTransport {
    uri: AMQPUri,
    described: String,
    /// The connection while it lives. Publishes hold the lock throughout, which keeps them
    /// in order on the one publishing channel; subscribes hold it only to open their channel.
    link: Mutex<Option<Link>>,
    /// The tasks forwarding each subscription's deliveries (they own the consumers' channels).
    forwarders: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// One live connection and what was set up on it.
struct Link {
    connection: Connection,
    /// The channel for publishing, in confirm mode; opened on the first publish, reopened if
    /// the broker closed it (a failed declare closes the channel, not the connection).
    publisher: Option<Channel>,
    /// Exchanges declared on this connection, so each publish need not declare again.
    exchanges: HashSet<String>,
}

impl RabbitTransport {
    /// A transport to the broker at `options`. Connects on first use, not here.
    pub fn new(options: RabbitOptions) -> Self {
        let described = describe(&options);
        let uri = amqp_uri(&options, HEARTBEAT_SECS, CONNECT_TIMEOUT_MS);
        Self { uri, described, link: Mutex::new(None), forwarders: std::sync::Mutex::default() }
    }

    /// The live link in `slot`, connecting first if there is none or it died.
    async fn live_link<'a>(&self, slot: &'a mut Option<Link>) -> Result<&'a mut Link, TransportError> {
        if slot.as_ref().is_some_and(|link| link.connection.status().connected()) {
            return Ok(slot.as_mut().expect("checked above"));
        }
        let properties = ConnectionProperties::default().with_connection_name(CONNECTION_NAME.into());
        let connection = Connection::connect_uri(self.uri.clone(), properties)
            .await
            .map_err(|e| TransportError::caused_by(format!("cannot connect to {}", self.described), e))?;
        tracing::debug!(broker = %self.described, "connected");
        Ok(slot.insert(Link { connection, publisher: None, exchanges: HashSet::new() }))
    }

    async fn try_publish(
        &self,
        slot: &mut Option<Link>,
        queue: &Queue,
        envelope: Envelope,
    ) -> Result<(), TransportError> {
        let exchange = exchange_name(queue)?;
        let link = self.live_link(slot).await?;
        let channel = match &link.publisher {
            Some(channel) if channel.status().connected() => channel.clone(),
            _ => {
                let channel = link.connection.create_channel().await.map_err(failed("open a channel"))?;
                // Confirms make a successful publish mean the broker has the message, so a
                // publish into a connection that just died fails (and is retried) rather
                // than vanishing.
                channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(failed("enable confirms"))?;
                link.publisher = Some(channel.clone());
                channel
            }
        };
        if !link.exchanges.contains(exchange.as_str()) {
            declare_exchange(&channel, &exchange).await?;
            link.exchanges.insert(exchange.to_string());
        }

        let mut headers = FieldTable::default();
        if let Some(id) = envelope.id {
            headers.insert("id".into(), AMQPValue::LongString(id.into()));
        }
        // Upstream marks only the flow class's messages persistent (delivery mode 2).
        let delivery_mode = if queue.class == QueueClass::Flow { 2 } else { 1 };
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(delivery_mode)
            .with_headers(headers);
        let confirmation = channel
            .basic_publish(exchange.clone(), "".into(), BasicPublishOptions::default(), &envelope.body, properties)
            .await
            .map_err(failed(format!("publish to exchange {exchange}")))?
            .await
            .map_err(failed(format!("publish to exchange {exchange}")))?;
        if confirmation.is_nack() {
            return Err(TransportError::new(format!("the broker refused a message for exchange {exchange}")));
        }
        Ok(())
    }

    /// Declare and bind `queue`'s consumer queue on a fresh channel and start consuming.
    async fn try_subscribe(&self, queue: &Queue, subscription: &str) -> Result<(Channel, Consumer), TransportError> {
        let exchange = exchange_name(queue)?;
        let channel = {
            let mut slot = self.link.lock().await;
            let link = self.live_link(&mut slot).await?;
            link.connection.create_channel().await.map_err(failed("open a channel"))?
        };
        declare_exchange(&channel, &exchange).await?;
        let queue_name = declare_consumer_queue(&channel, queue, &exchange, subscription).await?;
        channel.basic_qos(1, BasicQosOptions::default()).await.map_err(failed("set the prefetch count"))?;
        // An empty consumer tag lets the server choose one; manual acknowledgement (no_ack
        // false) so an undelivered message goes back to the queue.
        let consumer = channel
            .basic_consume(queue_name.clone(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(failed(format!("consume from queue {queue_name}")))?;
        Ok((channel, consumer))
    }

    /// Forget the connection, so the next operation connects afresh. For when an operation
    /// timed out: the connection may be wedged in a way its status does not show.
    async fn drop_link(&self) {
        *self.link.lock().await = None;
    }
}

#[async_trait]
impl Transport for RabbitTransport {
    async fn publish(&self, queue: &Queue, envelope: Envelope) -> Result<(), TransportError> {
        let mut slot = self.link.lock().await;
        match tokio::time::timeout(OPERATION_TIMEOUT, self.try_publish(&mut slot, queue, envelope)).await {
            Ok(result) => result,
            Err(_elapsed) => {
                *slot = None;
                Err(TransportError::new(format!(
                    "publishing to {queue} on {} took over {OPERATION_TIMEOUT:?}",
                    self.described
                )))
            }
        }
    }

    async fn subscribe(&self, queue: &Queue, subscription: &str) -> Result<Subscription, TransportError> {
        let (channel, consumer) =
            match tokio::time::timeout(OPERATION_TIMEOUT, self.try_subscribe(queue, subscription)).await {
                Ok(result) => result?,
                Err(_elapsed) => {
                    self.drop_link().await;
                    return Err(TransportError::new(format!(
                        "subscribing to {queue} on {} took over {OPERATION_TIMEOUT:?}",
                        self.described
                    )));
                }
            };
        let (sender, messages) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let mut forwarders = self.forwarders.lock().unwrap();
        forwarders.retain(|forwarder| !forwarder.is_finished());
        forwarders.push(tokio::spawn(forward::forward(channel, consumer, sender, queue.clone())));
        Ok(Subscription::new(messages))
    }

    fn describe(&self) -> String {
        self.described.clone()
    }

    /// Wait for the consumers' channels to close (each forwarder closes its own once its
    /// subscriber is gone), then close the publishing channel and the connection.
    async fn close(&self) {
        let forwarders = std::mem::take(&mut *self.forwarders.lock().unwrap());
        let consumers = forwarders.len();
        for forwarder in forwarders {
            let _ = forwarder.await;
        }
        if let Some(link) = self.link.lock().await.take() {
            let closing = async {
                if let Some(publisher) = link.publisher {
                    let _ = publisher.close(CLOSE_OK, "shutting down".into()).await;
                }
                link.connection.close(CLOSE_OK, "shutting down".into()).await
            };
            if let Err(e) = tokio::time::timeout(CLOSE_TIMEOUT, closing).await.unwrap_or(Ok(())) {
                tracing::debug!(broker = %self.described, "closing the connection: {e}");
            }
        }
        tracing::info!(broker = %self.described, consumers, "closed the RabbitMQ connection");
    }
}

/// Turns a lapin error into "cannot <what>: <error>".
fn failed(what: impl fmt::Display) -> impl FnOnce(lapin::Error) -> TransportError {
    let what = what.to_string();
    move |e| TransportError::caused_by(format!("cannot {what}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(vhost: &str) -> RabbitOptions {
        RabbitOptions {
            host: "rabbitmq".into(),
            port: 5672,
            username: "guest".into(),
            password: "secret".into(),
            vhost: vhost.into(),
        }
    }

    #[test]
    fn describes_without_credentials() {
        assert_eq!(RabbitTransport::new(options("/")).describe(), "amqp://rabbitmq:5672/");
        assert_eq!(RabbitTransport::new(options("tg")).describe(), "amqp://rabbitmq:5672/tg");
        assert!(!format!("{:?}", options("/")).contains("secret"));
    }
}
