//! The Pulsar lease: a Failover subscription on a heartbeat topic ([`super::heartbeat`]).
//!
//! Every replica subscribes to `non-persistent://public/default/tg-lease-<name>` under the one
//! subscription name `<name>` (default `bootstrap`), Failover, and publishes heartbeats there.
//! Pulsar delivers a Failover subscription's messages to one consumer (on a non-partitioned
//! topic, the first to subscribe) and moves to the next when that one's connection closes.
//!
//! Why `public/default` rather than TrustGraph's `tg/...` namespaces: those are created by
//! PulsarTopology, which runs under the lease, so on a fresh cluster they do not exist yet when
//! the lease is first taken. `public/default` is created with every Pulsar cluster. The topic
//! is non-persistent: a heartbeat matters only to whoever is active when it is sent.
//!
//! The `pulsar` crate (6.9.1) receives CommandActiveConsumerChange but only logs it (its
//! consumer engine has a TODO to expose it), so the heartbeats are how a replica learns that
//! it is active.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use pulsar::consumer::InitialPosition;
use pulsar::{
    Authentication, ConnectionRetryOptions, ConsumerOptions, OperationRetryOptions, Producer, Pulsar, SubType,
    TokioExecutor,
};
use tokio::sync::{mpsc, watch};

use super::heartbeat::{Beacon, Beat, BeatSender, Link};
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
        priority: seniority(std::time::SystemTime::now()),
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
    /// Its consumer priority: the seconds from 2020 to its start. Pulsar serves the consumers
    /// of the best (lowest) level first, so an older replica keeps the lease when a newer one
    /// subscribes, rather than Pulsar handing it over to the newcomer.
    priority: i32,
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
    async fn connect(&self) -> Result<Link, LeaseError> {
        let pulsar = self.client().await?;
        let mut consumer = pulsar
            .consumer()
            .with_topic(&self.topic)
            .with_subscription(&self.subscription)
            .with_subscription_type(SubType::Failover)
            .with_consumer_name(&self.replica)
            .with_options(
                ConsumerOptions::default()
                    .with_initial_position(InitialPosition::Latest)
                    .with_priority_level(self.priority),
            )
            .build::<Vec<u8>>()
            .await
            .map_err(broker_error)?;
        let producer = pulsar.producer().with_topic(&self.topic).build().await.map_err(broker_error)?;
        let (beats, received) = mpsc::channel(16);
        let replica = self.replica.clone();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = beats.closed() => break,
                    message = consumer.next() => message,
                };
                let Some(Ok(message)) = message else { break };
                let _ = consumer.ack(&message).await;
                let own = message.payload.data == replica.as_bytes();
                // Full means the lease keeper already has news of this replica being active.
                let _ = beats.try_send(Beat { own });
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), consumer.close()).await;
        });
        Ok(Link {
            beats: received,
            sender: Box::new(PulsarSender { _client: pulsar, producer, body: self.replica.clone().into_bytes() }),
        })
    }
}

impl PulsarBeacon {
    /// A client that gives up quickly: the lease keeper retries on its own cadence.
    async fn client(&self) -> Result<Pulsar<TokioExecutor>, LeaseError> {
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
                max_retries: Some(2),
            });
        if let Some(token) = &self.options.api_key {
            builder = builder.with_auth(Authentication { name: "token".into(), data: token.clone().into_bytes() });
        }
        builder.build().await.map_err(broker_error)
    }
}

/// The seconds from 2020-01-01 to `start`, for [`PulsarBeacon::priority`].
fn seniority(start: std::time::SystemTime) -> i32 {
    const Y2020: Duration = Duration::from_secs(1_577_836_800);
    let since = start.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().saturating_sub(Y2020);
    i32::try_from(since.as_secs()).unwrap_or(i32::MAX)
}

fn broker_error(error: impl std::fmt::Display) -> LeaseError {
    LeaseError::Broker(format!("pulsar: {error}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn an_older_replica_has_the_better_priority() {
        let older = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(super::seniority(older) < super::seniority(older + Duration::from_secs(1)));
        assert_eq!(super::seniority(UNIX_EPOCH), 0);
    }

    #[test]
    fn the_topic_lives_where_every_cluster_has_a_namespace() {
        assert_eq!(super::topic("bootstrap"), "non-persistent://public/default/tg-lease-bootstrap");
    }
}
