//! The broker leases' common part: a replica holds the lease while the heartbeats it and its
//! peers publish keep arriving at its single-active subscription.
//!
//! A [`Beacon`] is one broker's way to connect, publish a heartbeat and receive the ones
//! delivered to this replica ([`super::pulsar`], [`super::rabbitmq`]). [`keep`] drives it: it
//! publishes every [`Timing::interval`] on a task of its own (a stuck publish must not delay
//! noticing what arrives), follows what arrives with a [`Tracker`], and connects again when the
//! subscription closes.
//!
//! Any heartbeat received, whoever sent it and however old, proves that the broker sees this
//! replica as the active consumer at that moment: that is the only fact the lease rests on.
//! The broker may also move the active consumer while the previous one lives (Pulsar's
//! Failover may prefer a newcomer), and that one goes on running until [`Timing::window`]
//! passes without a heartbeat. A live previous holder still publishes, so a replica that
//! starts receiving heartbeats from another waits [`Timing::probation`], which outlasts that
//! one's window, before it holds the lease: the two never hold it at once. When only its own
//! arrive for [`Timing::quiet`] (the holder died, or there was none), it holds it then.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{LeaseError, LeaseState, Timing};

/// One connection's worth of a broker lease.
pub struct Link {
    /// One item per heartbeat delivered to this replica; closes when the subscription dies.
    pub beats: mpsc::Receiver<Beat>,
    /// Publishes heartbeats.
    pub sender: Box<dyn BeatSender>,
}

/// A heartbeat delivered to this replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    /// Sent by this replica itself, not another.
    pub own: bool,
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
    async fn connect(&self) -> Result<Link, LeaseError>;
}

/// Keep the lease through `beacon`, reporting to `state`; runs until aborted.
pub async fn keep(beacon: Arc<dyn Beacon>, timing: Timing, state: watch::Sender<LeaseState>) {
    loop {
        let link = match tokio::time::timeout(timing.window, beacon.connect()).await {
            Ok(Ok(link)) => Some(link),
            Ok(Err(e)) => {
                set(&state, LeaseState::Lapsed(e.to_string()));
                None
            }
            Err(_elapsed) => {
                set(&state, LeaseState::Lapsed(format!("no connection within {:?}", timing.window)));
                None
            }
        };
        if let Some(link) = link {
            let why = follow(link, timing, &state).await;
            set(&state, LeaseState::Lapsed(why));
        }
        // Not sooner: a broker that is down is asked again once per window, not per heartbeat.
        tokio::time::sleep(timing.window).await;
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
                Some(beat) => tracker.beat(Instant::now().into_std(), beat),
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
    /// The first heartbeat of the current unbroken run (no gap over the window).
    first_beat: Option<std::time::Instant>,
    last_beat: Option<std::time::Instant>,
    /// Whether another replica's heartbeat is in the current run.
    heard_another: bool,
}

impl Tracker {
    pub fn new(timing: Timing, subscribed: std::time::Instant) -> Self {
        Self { timing, subscribed, first_beat: None, last_beat: None, heard_another: false }
    }

    /// `beat` arrived at `now`.
    pub fn beat(&mut self, now: std::time::Instant, beat: Beat) {
        if !self.beating(now) {
            self.first_beat = Some(now);
            self.heard_another = false;
        }
        self.last_beat = Some(now);
        self.heard_another |= !beat.own;
    }

    /// Whether heartbeats are arriving: the last within the window.
    fn beating(&self, now: std::time::Instant) -> bool {
        self.last_beat.is_some_and(|last| now.duration_since(last) <= self.timing.window)
    }

    /// Where this replica stands at `now`; `None` while that is not known yet (just
    /// subscribed, or receiving heartbeats but still waiting to hold).
    pub fn state(&self, now: std::time::Instant) -> Option<LeaseState> {
        if let (true, Some(first)) = (self.beating(now), self.first_beat) {
            let wait = if self.heard_another { self.timing.probation } else { self.timing.quiet };
            return (now.duration_since(first) >= wait).then_some(LeaseState::Held);
        }
        if self.last_beat.is_some() {
            // Heartbeats came on this subscription, then stopped: the broker went quiet, or moved
            // the active consumer. Either way, not held.
            return Some(LeaseState::Lapsed(format!("no lease heartbeat for over {:?}", self.timing.window)));
        }
        (now.duration_since(self.subscribed) > self.timing.window).then_some(LeaseState::Standby)
    }
}

/// Report `new` if it differs from what was last reported (so watchers wake only on changes).
fn set(state: &watch::Sender<LeaseState>, new: LeaseState) {
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

    /// For a 1 s gate backoff: interval 50 ms, window 250 ms, quiet 100 ms, probation 350 ms.
    fn timing() -> Timing {
        Timing::for_gate_backoff(Duration::from_secs(1))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const OWN: Beat = Beat { own: true };
    const OTHER: Beat = Beat { own: false };

    #[test]
    fn timing_follows_the_gate_backoff() {
        let t = Timing::for_gate_backoff(Duration::from_secs(5));
        assert_eq!((t.interval, t.window, t.quiet, t.probation), (ms(100), ms(1250), ms(200), ms(1450)));
        let short = Timing::for_gate_backoff(Duration::from_millis(100));
        assert_eq!((short.interval, short.window), (ms(10), ms(50)));
        // A previous holder, whose last heartbeat came when this replica's first did, gives up
        // after its window and one check, before this one may hold.
        assert!(t.probation > t.window + t.interval);
    }

    #[test]
    fn without_heartbeats_a_replica_is_on_standby_after_the_window() {
        let start = Instant::now();
        let tracker = Tracker::new(timing(), start);
        assert_eq!(tracker.state(start + ms(100)), None);
        assert_eq!(tracker.state(start + ms(251)), Some(LeaseState::Standby));
    }

    #[test]
    fn alone_a_replica_holds_after_the_quiet_period_and_loses_after_the_window() {
        let start = Instant::now();
        let mut tracker = Tracker::new(timing(), start);
        tracker.beat(start, OWN);
        tracker.beat(start + ms(50), OWN);
        assert_eq!(tracker.state(start + ms(50)), None);
        tracker.beat(start + ms(100), OWN);
        assert_eq!(tracker.state(start + ms(100)), Some(LeaseState::Held));
        assert!(matches!(tracker.state(start + ms(351)), Some(LeaseState::Lapsed(_))));
    }

    #[test]
    fn hearing_another_live_replica_means_waiting_out_its_window() {
        let start = Instant::now();
        let mut tracker = Tracker::new(timing(), start);
        let mut at = start;
        while at < start + ms(350) {
            tracker.beat(at, if at == start + ms(50) { OTHER } else { OWN });
            assert_eq!(tracker.state(at), None, "held during probation, at {:?}", at - start);
            at += ms(50);
        }
        tracker.beat(at, OWN);
        assert_eq!(tracker.state(at), Some(LeaseState::Held));
    }

    #[test]
    fn a_gap_in_the_heartbeats_starts_afresh() {
        let start = Instant::now();
        let mut tracker = Tracker::new(timing(), start);
        tracker.beat(start, OTHER);
        tracker.beat(start + ms(400), OWN); // after a gap over the window
        assert_eq!(tracker.state(start + ms(450)), None);
        tracker.beat(start + ms(500), OWN);
        assert_eq!(tracker.state(start + ms(500)), Some(LeaseState::Held), "the other was in the earlier run");
    }
}
