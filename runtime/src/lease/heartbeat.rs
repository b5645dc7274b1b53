//! The broker leases' common part: a replica holds the lease while the heartbeats published
//! to its lease subscription keep arriving.
//!
//! A [`Beacon`] is one broker's way to connect, publish a heartbeat and receive the ones
//! delivered to this replica ([`super::pulsar`], [`super::rabbitmq`]). [`keep`] drives it: it
//! publishes every [`Timing::interval`] on a task of its own (a stuck publish must not delay
//! noticing what arrives), follows what arrives with a [`Tracker`], and connects again when the
//! subscription closes or is refused.
//!
//! Both brokers keep a second replica out while the first one's connection lives: Pulsar
//! refuses a second consumer on an Exclusive subscription, and RabbitMQ delivers a
//! single-active-consumer queue to its first consumer only. So a heartbeat received, whoever
//! sent it, proves that this replica is the one the broker serves, and it holds the lease at
//! once: there is nothing to wait out. It loses the lease when none has arrived for
//! [`Timing::window`] (the broker went quiet, or this replica was cut off from it), or at once
//! when its subscription closes.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{LeaseError, LeaseState, Timing};

/// One connection's worth of a broker lease.
pub struct Link {
    /// One item per heartbeat delivered to this replica; closes when the subscription dies.
    pub beats: mpsc::Receiver<()>,
    /// Publishes heartbeats.
    pub sender: Box<dyn BeatSender>,
}

/// Why a [`Beacon`] has no link.
#[derive(Debug)]
pub enum Refusal {
    /// The broker refused the subscription because another replica holds it.
    Held,
    /// The broker could not be reached, or failed otherwise.
    Failed(LeaseError),
}

impl From<LeaseError> for Refusal {
    fn from(error: LeaseError) -> Self {
        Refusal::Failed(error)
    }
}

/// Publishes one heartbeat to the lease's topic or queue.
#[async_trait]
pub trait BeatSender: Send + 'static {
    async fn send(&mut self) -> Result<(), LeaseError>;
}

/// A broker's single-active subscription.
#[async_trait]
pub trait Beacon: Send + Sync + 'static {
    /// Connect and subscribe; the subscription is live when this returns.
    async fn connect(&self) -> Result<Link, Refusal>;
}

/// Keep the lease through `beacon`, reporting to `state`; runs until aborted.
pub async fn keep(beacon: Arc<dyn Beacon>, timing: Timing, state: watch::Sender<LeaseState>) {
    loop {
        let retry_after = match tokio::time::timeout(timing.connect, beacon.connect()).await {
            Ok(Ok(link)) => {
                let why = follow(link, timing, &state).await;
                set(&state, LeaseState::Lapsed(why));
                timing.window
            }
            // That is how soon a standby takes over.
            Ok(Err(Refusal::Held)) => {
                set(&state, LeaseState::Standby);
                timing.retry
            }
            Ok(Err(Refusal::Failed(e))) => {
                set(&state, LeaseState::Lapsed(e.to_string()));
                timing.window
            }
            Err(_elapsed) => {
                set(&state, LeaseState::Lapsed(format!("no connection within {:?}", timing.connect)));
                timing.window
            }
        };
        // A broker that is down is asked again once per window, not per heartbeat.
        tokio::time::sleep(retry_after).await;
    }
}

/// Publish heartbeats and follow what arrives on one link, until its subscription closes;
/// returns why it closed.
async fn follow(link: Link, timing: Timing, state: &watch::Sender<LeaseState>) -> String {
    let Link { mut beats, mut sender } = link;
    let publisher = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(timing.interval);
        loop {
            ticks.tick().await;
            if let Err(e) = sender.send().await {
                tracing::debug!("cannot send a lease heartbeat: {e}");
            }
        }
    });
    let mut tracker = Tracker::new(timing, Instant::now().into_std());
    let mut checks = tokio::time::interval(timing.interval);
    let why = loop {
        tokio::select! {
            beat = beats.recv() => match beat {
                Some(()) => tracker.beat(Instant::now().into_std()),
                None => break "the lease subscription closed".to_owned(),
            },
            _ = checks.tick() => {}
        }
        if let Some(now) = tracker.state(Instant::now().into_std()) {
            set(state, now);
        }
    };
    publisher.abort();
    why
}

/// What the heartbeats received on one subscription say about the lease.
#[derive(Debug)]
pub struct Tracker {
    timing: Timing,
    subscribed: std::time::Instant,
    last_beat: Option<std::time::Instant>,
}

impl Tracker {
    pub fn new(timing: Timing, subscribed: std::time::Instant) -> Self {
        Self { timing, subscribed, last_beat: None }
    }

    /// A heartbeat arrived at `now`.
    pub fn beat(&mut self, now: std::time::Instant) {
        self.last_beat = Some(now);
    }

    /// Where this replica stands at `now`; `None` while that is not known yet (just
    /// subscribed, no heartbeat yet).
    pub fn state(&self, now: std::time::Instant) -> Option<LeaseState> {
        match self.last_beat {
            Some(last) if now.duration_since(last) <= self.timing.window => Some(LeaseState::Held),
            // Heartbeats came on this subscription, then stopped: the broker went quiet, or
            // this replica was cut off from it. Either way, not held.
            Some(_) => Some(LeaseState::Lapsed(format!("no lease heartbeat for over {:?}", self.timing.window))),
            // Subscribed but served nothing: the broker keeps this consumer waiting behind
            // another replica's (RabbitMQ's single active consumer).
            None => (now.duration_since(self.subscribed) > self.timing.window).then_some(LeaseState::Standby),
        }
    }
}

/// Report `new` if it differs from what was last reported (so watchers wake only on changes).
pub(super) fn set(state: &watch::Sender<LeaseState>, new: LeaseState) {
    state.send_if_modified(|current| {
        let changed = *current != new;
        *current = new;
        changed
    });
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// For a 1 s gate backoff: interval 50 ms, window 250 ms.
    fn timing() -> Timing {
        Timing::for_gate_backoff(Duration::from_secs(1))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn timing_follows_the_gate_backoff() {
        let t = Timing::for_gate_backoff(Duration::from_secs(5));
        assert_eq!((t.interval, t.window, t.retry, t.connect), (ms(100), ms(1250), ms(250), ms(10_000)));
        let short = Timing::for_gate_backoff(Duration::from_millis(100));
        assert_eq!((short.interval, short.window, short.retry), (ms(10), ms(50), ms(10)));
        let long = Timing::for_gate_backoff(Duration::from_secs(60));
        assert_eq!(long.connect, long.window, "never less than the window");
    }

    /// A broker whose lease subscription takes `delay` to be made, and then delivers every
    /// heartbeat sent.
    struct SlowBeacon {
        delay: Duration,
    }

    struct Echo(mpsc::Sender<()>);

    #[async_trait]
    impl BeatSender for Echo {
        async fn send(&mut self) -> Result<(), LeaseError> {
            let _ = self.0.try_send(());
            Ok(())
        }
    }

    #[async_trait]
    impl Beacon for SlowBeacon {
        async fn connect(&self) -> Result<Link, Refusal> {
            tokio::time::sleep(self.delay).await;
            let (sender, beats) = mpsc::channel(16);
            Ok(Link { beats, sender: Box::new(Echo(sender)) })
        }
    }

    #[tokio::test]
    async fn a_subscribe_slower_than_the_window_still_takes_the_lease() {
        // A real broker loading the lease's topic for the first time: four windows.
        let timing = timing();
        let beacon = Arc::new(SlowBeacon { delay: timing.window * 4 });
        let (state, mut states) = watch::channel(LeaseState::Unknown);
        let keeper = tokio::spawn(keep(beacon, timing, state));
        let held = tokio::time::timeout(timing.connect, states.wait_for(|s| *s == LeaseState::Held)).await;
        keeper.abort();
        assert!(held.is_ok(), "held once the subscribe was made");
    }

    #[test]
    fn without_heartbeats_a_replica_is_on_standby_after_the_window() {
        let start = Instant::now();
        let tracker = Tracker::new(timing(), start);
        assert_eq!(tracker.state(start + ms(100)), None);
        assert_eq!(tracker.state(start + ms(251)), Some(LeaseState::Standby));
    }

    #[test]
    fn a_heartbeat_holds_the_lease_until_the_window_passes_without_one() {
        let start = Instant::now();
        let mut tracker = Tracker::new(timing(), start);
        tracker.beat(start + ms(5));
        assert_eq!(tracker.state(start + ms(5)), Some(LeaseState::Held));
        tracker.beat(start + ms(55));
        assert_eq!(tracker.state(start + ms(305)), Some(LeaseState::Held));
        assert!(matches!(tracker.state(start + ms(306)), Some(LeaseState::Lapsed(_))));
        tracker.beat(start + ms(400));
        assert_eq!(tracker.state(start + ms(400)), Some(LeaseState::Held), "taken again when they resume");
    }
}
