//! The Pulsar lease: an Exclusive subscription on a heartbeat topic ([`super::heartbeat`]).
//!
//! Every replica subscribes to `non-persistent://<namespace>/tg-lease-<name>` under the one
//! subscription name `<name>` (default `bootstrap`), Exclusive. The broker admits one consumer
//! to it and refuses every other (Apache Pulsar answers ConsumerBusy; pulsar-lite 0.2 closes
//! the asking connection) until that one's connection closes, when the next standby to ask
//! gets it. The holder publishes heartbeats there and receives them, which tells it that the
//! subscription still stands; a standby asks again every [`Timing::retry`].
//!
//! Why not a Failover subscription, which would keep the standbys subscribed: a Failover broker
//! may hand the active consumer to a newcomer while the holder lives (pulsar-lite does, about
//! one start in eight), so a Failover lease must listen for other replicas' heartbeats before it
//! holds: two intervals, 200 ms of every start. Exclusive needs no such wait.
//!
//! The namespace is `public/default` unless the operator names another
//! (`--pulsar-lease-namespace`, for clusters that forbid `public/default`). Why not
//! TrustGraph's `tg/...` namespaces: those are created by PulsarTopology, which runs under the
//! lease, so on a fresh cluster they do not exist yet when the lease is first taken, whereas
//! `public/default` is created with every Pulsar cluster. The topic is non-persistent: a
//! heartbeat matters only to whoever holds the lease when it is sent.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};

use super::heartbeat::{Beacon, BeatSender, Link, Refusal};
use super::{Lease, LeaseError, LeaseState, Timing};
use crate::broker::pulsar::{Client, ClientOptions, PulsarError, PulsarOptions, ServerError, SubType, TopicProducer};

/// The lease topic for lease `name`, in `namespace` (`tenant/namespace`).
pub fn topic(namespace: &str, name: &str) -> String {
    format!("non-persistent://{namespace}/tg-lease-{name}")
}

/// `namespace` if it is a Pulsar namespace, `tenant/namespace`, each part of the characters
/// Pulsar allows in names (letters, digits, `_`, `-`, `=`, `:`, `.`).
pub fn check_namespace(namespace: &str) -> Result<String, String> {
    let named = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "_-=:.".contains(c));
    match namespace.split_once('/') {
        Some((tenant, name)) if named(tenant) && named(name) => Ok(namespace.to_owned()),
        _ => Err(format!("{namespace:?} is not a Pulsar namespace, tenant/namespace")),
    }
}

/// Start keeping lease `name` on the broker of `options`, in the background.
pub fn lease(options: &PulsarOptions, name: &str, timing: Timing) -> Lease {
    // A client of its own: pulsar-lite closes the connection of a refused subscriber, which
    // must not be the services' connection. It is kept between a standby's attempts, allows
    // connecting as long as a real broker may take to load the topic (`Timing::connect`), and
    // gives up on a silent broker within a window.
    let client = Client::new(ClientOptions {
        connect_timeout: timing.connect,
        operation_timeout: timing.connect,
        keepalive: timing.window,
        ..options.client()
    });
    let beacon = PulsarBeacon {
        client,
        topic: topic(&options.lease_namespace, name),
        subscription: name.to_owned(),
        replica: format!("bootstrap-{}", uuid::Uuid::new_v4()),
    };
    let description = format!("pulsar topic {}, subscription {name}", beacon.topic);
    let (sender, receiver) = watch::channel(LeaseState::Unknown);
    let keeper = tokio::spawn(super::heartbeat::keep(Arc::new(beacon), timing, sender));
    Lease::new(receiver, keeper, description)
}

struct PulsarBeacon {
    client: Client,
    topic: String,
    subscription: String,
    /// This replica's consumer name, also the heartbeat's body.
    replica: String,
}

struct PulsarSender {
    client: Client,
    topic: String,
    producer: TopicProducer,
    body: Vec<u8>,
}

#[async_trait]
impl BeatSender for PulsarSender {
    async fn send(&mut self) -> Result<(), LeaseError> {
        match self.producer.send(Vec::new(), &self.body).await {
            // The topic is moving: the beat goes through a producer where it is now, so that the
            // move costs the holder nothing.
            Err(PulsarError::ProducerMoved) => {
                self.producer = self.client.producer(&self.topic).await.map_err(broker_error)?;
                self.producer.send(Vec::new(), &self.body).await.map_err(broker_error)
            }
            sent => sent.map_err(broker_error),
        }
    }
}

#[async_trait]
impl Beacon for PulsarBeacon {
    async fn connect(&self) -> Result<Link, Refusal> {
        let subscribed =
            self.client.subscribe(&self.topic, &self.subscription, SubType::Exclusive, Some(&self.replica)).await;
        let (mut messages, guard) = match subscribed {
            Ok(consumer) => consumer,
            Err(e) if held_by_another(&e) => return Err(Refusal::Held),
            Err(e) => return Err(broker_error(e).into()),
        };
        // On failure the guard, dropped, closes the subscription for the next attempt.
        let producer = self.client.producer(&self.topic).await.map_err(broker_error)?;
        let (beats, received) = mpsc::channel(16);
        tokio::spawn(async move {
            // Closing the consumer (with the guard) lets a standby subscribe at once, rather
            // than when the connection goes.
            let _guard = guard;
            loop {
                tokio::select! {
                    () = beats.closed() => break,
                    message = messages.recv() => match message {
                        // Full means the lease keeper already has news of the subscription standing.
                        Some(_) => { let _ = beats.try_send(()); }
                        None => break,
                    },
                }
            }
        });
        Ok(Link {
            beats: received,
            sender: Box::new(PulsarSender {
                client: self.client.clone(),
                topic: self.topic.clone(),
                producer,
                body: self.replica.clone().into_bytes(),
            }),
        })
    }
}

/// Whether a refused subscription means that another replica holds it: Apache Pulsar answers
/// ConsumerBusy, and pulsar-lite closes the connection of whoever asks.
fn held_by_another(error: &PulsarError) -> bool {
    matches!(error, PulsarError::Server { code: ServerError::ConsumerBusy, .. } | PulsarError::Disconnected(_))
}

fn broker_error(error: PulsarError) -> LeaseError {
    LeaseError::Pulsar(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_lives_in_the_namespace_given() {
        assert_eq!(topic("public/default", "bootstrap"), "non-persistent://public/default/tg-lease-bootstrap");
        assert_eq!(topic("ops/leases", "a"), "non-persistent://ops/leases/tg-lease-a");
    }

    #[test]
    fn a_namespace_is_a_tenant_and_a_name() {
        assert_eq!(check_namespace("ops/leases-1"), Ok("ops/leases-1".to_owned()));
        for bad in ["", "ops", "/leases", "ops/", "ops/a/b", "ops/a b", "non-persistent://ops/a"] {
            assert!(check_namespace(bad).is_err(), "{bad:?} accepted");
        }
    }
}
