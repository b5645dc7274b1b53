//! The Pulsar lease: an Exclusive subscription on a heartbeat topic ([`super::heartbeat`]).
//!
//! Every replica subscribes to `non-persistent://public/default/tg-lease-<name>` under the one
//! subscription name `<name>` (default `bootstrap`), Exclusive. The broker admits one consumer
//! to it and refuses every other (Apache Pulsar answers ConsumerBusy; pulsar-lite 0.2 closes
//! the asking connection) until that one's connection closes, when the next standby to ask
//! gets it. The holder publishes heartbeats there and receives them, which tells it that the
//! subscription still stands; a standby asks again every [`Timing::retry`].
//!
//! Why not a Failover subscription, which would keep the standbys subscribed: the `pulsar`
//! crate (6.9.1) receives CommandActiveConsumerChange but only logs it, so a consumer cannot
//! tell that it became active except by receiving, and a Failover broker may hand the active
//! consumer to a newcomer while the holder lives (pulsar-lite does, about one start in eight).
//! A Failover lease must therefore listen for other replicas' heartbeats before it holds: two
//! intervals, 200 ms of every start. Exclusive needs no such wait.
//!
//! Why `public/default` rather than TrustGraph's `tg/...` namespaces: those are created by
//! PulsarTopology, which runs under the lease, so on a fresh cluster they do not exist yet when
//! the lease is first taken. `public/default` is created with every Pulsar cluster. The topic
//! is non-persistent: a heartbeat matters only to whoever holds the lease when it is sent.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use pulsar::consumer::InitialPosition;
use pulsar::error::ConnectionError;
use pulsar::proto::ServerError;
use pulsar::{
    Authentication, ConnectionRetryOptions, ConsumerOptions, OperationRetryOptions, Producer, Pulsar, SubType,
    TokioExecutor,
};
use tokio::sync::{Mutex, mpsc, watch};

use super::heartbeat::{Beacon, BeatSender, Link, Refusal};
use super::{Lease, LeaseError, LeaseState, Timing};
use crate::services::broker::pulsar::PulsarOptions;

/// The lease topic for lease `name`.
pub fn topic(name: &str) -> String {
    format!("non-persistent://public/default/tg-lease-{name}")
}

/// Start keeping lease `name` on the broker of `options`, in the background.
pub fn lease(options: &PulsarOptions, name: &str, timing: Timing) -> Lease {
    let beacon = PulsarBeacon {
        options: options.clone(),
        topic: topic(name),
        subscription: name.to_owned(),
        replica: format!("bootstrap-{}", uuid::Uuid::new_v4()),
        client: Mutex::new(None),
        timing,
    };
    let description = format!("pulsar topic {}, subscription {name}", beacon.topic);
    let (sender, receiver) = watch::channel(LeaseState::Unknown);
    let keeper = tokio::spawn(super::heartbeat::keep(Arc::new(beacon), timing, sender));
    Lease::new(receiver, keeper, description)
}

struct PulsarBeacon {
    options: PulsarOptions,
    topic: String,
    subscription: String,
    /// This replica's consumer name, also the heartbeat's body.
    replica: String,
    /// The client, kept between a standby's attempts (each would otherwise open a connection);
    /// dropped when the broker cannot be reached.
    client: Mutex<Option<Pulsar<TokioExecutor>>>,
    timing: Timing,
}

struct PulsarSender {
    /// Kept with the producer, which it serves, for the life of the link.
    _client: Pulsar<TokioExecutor>,
    producer: Producer<TokioExecutor>,
    body: Vec<u8>,
}

#[async_trait]
impl BeatSender for PulsarSender {
    async fn send(&mut self) -> Result<(), LeaseError> {
        let message = pulsar::producer::Message { payload: self.body.clone(), ..Default::default() };
        let receipt = self.producer.send_non_blocking(message).await.map_err(broker_error)?;
        receipt.await.map_err(broker_error)?;
        Ok(())
    }
}

#[async_trait]
impl Beacon for PulsarBeacon {
    async fn connect(&self) -> Result<Link, Refusal> {
        let pulsar = self.client().await?;
        let subscribed = pulsar
            .consumer()
            .with_topic(&self.topic)
            .with_subscription(&self.subscription)
            .with_subscription_type(SubType::Exclusive)
            .with_consumer_name(&self.replica)
            .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Latest))
            .build::<Vec<u8>>()
            .await;
        let mut consumer = match subscribed {
            Ok(consumer) => consumer,
            Err(e) if held_by_another(&e) => return Err(Refusal::Held),
            Err(e) => return Err(self.forget_client(e).await),
        };
        let producer = match pulsar.producer().with_topic(&self.topic).build().await {
            Ok(producer) => producer,
            // The consumer, dropped, closes its subscription for the next attempt.
            Err(e) => return Err(self.forget_client(e).await),
        };
        let (beats, received) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = beats.closed() => break,
                    message = consumer.next() => message,
                };
                let Some(Ok(message)) = message else { break };
                let _ = consumer.ack(&message).await;
                // Full means the lease keeper already has news of the subscription standing.
                let _ = beats.try_send(());
            }
            // Closing lets a standby subscribe at once, rather than when the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), consumer.close()).await;
        });
        Ok(Link {
            beats: received,
            sender: Box::new(PulsarSender { _client: pulsar, producer, body: self.replica.clone().into_bytes() }),
        })
    }
}

impl PulsarBeacon {
    /// The client, connecting one that gives up quickly (the lease keeper retries on its own
    /// cadence) if there is none.
    async fn client(&self) -> Result<Pulsar<TokioExecutor>, LeaseError> {
        let mut slot = self.client.lock().await;
        if let Some(pulsar) = &*slot {
            return Ok(pulsar.clone());
        }
        let mut builder = Pulsar::builder(self.options.url.clone(), TokioExecutor)
            .with_connection_retry_options(ConnectionRetryOptions {
                min_backoff: Duration::from_millis(50),
                max_backoff: self.timing.interval,
                max_retries: 2,
                connection_timeout: self.timing.window,
                // A dead connection noticed within a few windows, where the crate's default
                // would take a minute.
                keep_alive: self.timing.window,
                ..Default::default()
            })
            .with_operation_retry_options(OperationRetryOptions {
                operation_timeout: self.timing.window,
                retry_delay: self.timing.interval,
                // A refused subscription is asked again by the lease keeper, not by the crate.
                max_retries: Some(0),
            });
        if let Some(token) = &self.options.api_key {
            builder = builder.with_auth(Authentication { name: "token".into(), data: token.clone().into_bytes() });
        }
        let pulsar = builder.build().await.map_err(broker_error)?;
        // Without TCP_NODELAY, the request after subscribing waits ~40 ms for the broker's
        // delayed ACK of the crate's flow permits (see `services::broker::pulsar`). The lease
        // topic is looked up on this connection, so its broker is the URL's in a one-broker
        // deployment; a cluster's other brokers get it from the transport's periodic sweep.
        if self.options.tcp_nodelay {
            crate::services::broker::pulsar::set_nodelay_towards_url(&self.options.url).await;
        }
        *slot = Some(pulsar.clone());
        Ok(pulsar)
    }

    /// Drop the client after `error`, so that the next attempt connects afresh.
    async fn forget_client(&self, error: pulsar::Error) -> Refusal {
        *self.client.lock().await = None;
        broker_error(error).into()
    }
}

/// Whether a refused subscription means that another replica holds it: Apache Pulsar answers
/// ConsumerBusy, and pulsar-lite closes the connection of whoever asks.
fn held_by_another(error: &pulsar::Error) -> bool {
    matches!(
        error,
        pulsar::Error::Connection(
            ConnectionError::PulsarError(Some(ServerError::ConsumerBusy), _) | ConnectionError::Disconnected
        )
    )
}

fn broker_error(error: impl std::fmt::Display) -> LeaseError {
    LeaseError::Broker(format!("pulsar: {error}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_topic_lives_where_every_cluster_has_a_namespace() {
        assert_eq!(super::topic("bootstrap"), "non-persistent://public/default/tg-lease-bootstrap");
    }
}
