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
//!
//! Each replica subscribes with a priority level, name and id that sort by its start time, so
//! that a broker keeps the older replica active when a newer one subscribes. pulsar-lite 0.2
//! still hands the lease to the newcomer now and then (about one start in eight in the tests);
//! the probation of [`super::heartbeat`] keeps that handover safe. It does move the active
//! consumer when the holder's connection drops, at once.

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
    let started = since_2020(std::time::SystemTime::now());
    let priority = i32::try_from(started.as_secs()).unwrap_or(i32::MAX);
    let millis = u64::try_from(started.as_millis()).unwrap_or(u64::MAX >> 24);
    let beacon = PulsarBeacon {
        options: options.clone(),
        topic: topic(name),
        subscription: name.to_owned(),
        replica: format!("bootstrap-{millis:013}-{}", uuid::Uuid::new_v4()),
        priority,
        consumer_id: consumer_id(millis),
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
    /// subscribes, rather than Pulsar handing it over to the newcomer. The consumer name and id
    /// also sort by age, for brokers that order consumers by them.
    priority: i32,
    consumer_id: u64,
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
            // Consumer ids are the client's own, per connection; the crate counts them from 0 in
            // every process. pulsar-lite 0.2 keys a failover subscription's consumers by this id
            // alone, so it refuses a second replica's consumer 0 (closing the connection) and
            // then hands the lease to the retry. An id of its own (start time, random bits) keeps
            // replicas apart everywhere.
            .with_consumer_id(self.consumer_id)
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

/// A consumer id (see [`PulsarBeacon::connect`]): the milliseconds from 2020 to the replica's
/// start in the high bits, random bits in the low 24.
fn consumer_id(millis: u64) -> u64 {
    let (random, _) = uuid::Uuid::new_v4().as_u64_pair();
    (millis << 24) | (random & 0xff_ffff)
}

/// The time from 2020-01-01 to `start`.
fn since_2020(start: std::time::SystemTime) -> Duration {
    const Y2020: Duration = Duration::from_secs(1_577_836_800);
    start.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().saturating_sub(Y2020)
}

fn broker_error(error: impl std::fmt::Display) -> LeaseError {
    LeaseError::Broker(format!("pulsar: {error}"))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn an_older_replica_has_the_lower_consumer_id() {
        let older = super::since_2020(UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap();
        assert!(super::consumer_id(millis(older)) < super::consumer_id(millis(older + Duration::from_millis(1))));
        assert_eq!(super::since_2020(UNIX_EPOCH), Duration::ZERO);
    }

    #[test]
    fn the_topic_lives_where_every_cluster_has_a_namespace() {
        assert_eq!(super::topic("bootstrap"), "non-persistent://public/default/tg-lease-bootstrap");
    }
}
