//! Subscribing to a topic, partitioned or not, and staying subscribed when the broker moves it.
//!
//! A subscription is one consumer per partition (or one, on a topic without partitions), all
//! handing their messages to the one channel the subscriber reads. Each consumer has a keeper
//! task, idle but for this: when the broker closes the consumer because its topic is moving
//! (an unload, a bundle split, a broker shutting down), the keeper gets the channel back
//! ([`Subscribed::moved`]) and subscribes again on it, looking the topic up anew, as Pulsar's
//! Java and C++ clients reconnect a consumer without its user noticing. It tries for as long
//! as the operation timeout allows, and gives up at once if the broker refuses (another
//! consumer holds an Exclusive subscription, say): the channel then closes, as it does when
//! the connection ends, and the subscriber sees its subscription end.
//!
//! Dropping the [`SubscriptionGuard`] stops the keepers, whose consumers are then closed.

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::Client;
use crate::broker::Envelope;
use crate::broker::pulsar::connection::{CONSUMER_CHANNEL, Subscribed};
use crate::broker::pulsar::error::PulsarError;
use crate::broker::pulsar::proto::SubType;

/// Keeps a subscription's consumers; dropping it closes them.
pub struct SubscriptionGuard {
    keepers: Vec<AbortHandle>,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        for keeper in &self.keepers {
            keeper.abort();
        }
    }
}

/// What a consumer is made of, to make it again.
#[derive(Clone)]
struct Consumer {
    topic: String,
    subscription: String,
    sub_type: SubType,
    name: Option<String>,
}

impl Client {
    /// A subscription to `topic` (to each of its partitions, if it is partitioned) under
    /// `subscription`, as `consumer_name` or a fresh name, from its latest message: what is
    /// published once this returns arrives on the channel, which closes when the subscription
    /// ends (see the module's documentation). Dropping the guard closes it.
    pub async fn subscribe(
        &self,
        topic: &str,
        subscription: &str,
        sub_type: SubType,
        consumer_name: Option<&str>,
    ) -> Result<(mpsc::Receiver<Envelope>, SubscriptionGuard), PulsarError> {
        let partitions = self.partitions(topic).await?;
        let (sender, messages) = mpsc::channel(CONSUMER_CHANNEL * partitions.len());
        // Made first, so that a partition that fails closes those subscribed before it.
        let mut guard = SubscriptionGuard { keepers: Vec::new() };
        for topic in partitions {
            let consumer = Consumer {
                topic,
                subscription: subscription.to_owned(),
                sub_type,
                name: consumer_name.map(str::to_owned),
            };
            let subscribed =
                self.retrying(PulsarError::is_retriable, || self.consume(&consumer, sender.clone())).await?;
            guard.keepers.push(tokio::spawn(self.clone().keep(consumer, subscribed)).abort_handle());
        }
        Ok((messages, guard))
    }

    /// Make `consumer`, handing its messages to `sender`.
    async fn consume(&self, consumer: &Consumer, sender: mpsc::Sender<Envelope>) -> Result<Subscribed, PulsarError> {
        let Consumer { topic, subscription, sub_type, name } = consumer;
        self.lookup(topic).await?.subscribe(topic, subscription, *sub_type, name.as_deref(), sender).await
    }

    /// Make `consumer` again each time the broker moves its topic; see the module's
    /// documentation.
    async fn keep(self, consumer: Consumer, mut subscribed: Subscribed) {
        // Ends when the consumer is closed otherwise (its connection ended, or its subscriber
        // went away), which drops the channel's sender instead of handing it back.
        while let Ok(sender) = (&mut subscribed.moved).await {
            tracing::info!(topic = %consumer.topic, "the broker moved a Pulsar topic; subscribing again");
            // A refusal is final; anything else (the topic not loaded yet, its new broker not
            // reachable yet) is worth another try.
            let worth_retrying = |e: &PulsarError| e.is_retriable() || !matches!(e, PulsarError::Server { .. });
            match self.retrying(worth_retrying, || self.consume(&consumer, sender.clone())).await {
                Ok(again) => subscribed = again,
                Err(e) => {
                    tracing::warn!(topic = %consumer.topic, "cannot subscribe again after the broker moved the topic: {e}");
                    return;
                }
            }
        }
    }
}
