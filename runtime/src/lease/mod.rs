//! One active replica: the lease that lets only one bootstrap-wasm process of a deployment
//! run initialisers, while any others wait as standbys and take over when it dies.
//!
//! Each backend has its own way to elect the holder, using what the deployment already has:
//! - **embedded**: an exclusive lock on `<state>.lock`, beside the state file ([`mod@file`]). The
//!   kernel drops it when the holder dies, however it dies, and the waiting standby's
//!   blocking lock returns at once.
//! - **Pulsar**: an Exclusive subscription ([`pulsar`]), which the broker refuses to a second
//!   consumer while the first one's connection lives; a standby asks again every
//!   [`Timing::retry`]. **RabbitMQ**: a queue with `x-single-active-consumer`
//!   ([`rabbitmq`]), which delivers to one consumer at a time and moves to the next when the
//!   active one's connection closes. Neither client library tells a consumer that it is the
//!   one served, so every subscribed replica publishes a small heartbeat every
//!   [`Timing::interval`] to the lease topic or queue and consumes from it: only the one
//!   served receives them, and it holds the lease while they keep arriving ([`heartbeat`]),
//!   from the first one on. It loses the lease when none has arrived
//!   for [`Timing::window`], or at once when its subscription closes.
//! - **Kafka**: heartbeats committed in transactions under one transactional id ([`kafka`]).
//!   A standby that has seen none for [`Timing::window`] takes the transactional id, which
//!   makes the broker fence the holder: its next heartbeat is refused. (A consumer group
//!   would move the lease only after a session timeout, at least 6 s on a default broker.)
//!
//! A [`Lease`] reports [`LeaseState`] changes and logs them in one place: "standby: another
//! replica holds the lease", "lease acquired", "lease lost". What the holder does with the
//! lease is the caller's business (the binary stops the running wake when it is lost); the
//! reconcile loop knows nothing of leases.
//!
//! A broker lease cannot fence the holder's work: a holder cut off from the broker (a network
//! partition rather than a crash) may run on for up to [`Timing::window`] after the broker has
//! already handed the lease to a standby. A dead holder's connection closes, and Pulsar and
//! RabbitMQ move the lease at once; on Kafka a standby takes it after a window of silence.

pub mod file;
pub mod heartbeat;
pub mod kafka;
pub mod pulsar;
pub mod rabbitmq;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Why a lease could not be set up or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lock file could not be opened or locked.
    #[error("lock file {}: {source}", path.display())]
    LockFile { path: std::path::PathBuf, source: std::io::Error },
    /// The lease's name cannot name a queue.
    #[error("lease name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    /// Pulsar could not be reached, or refused the lease's subscription or producer.
    #[error("pulsar: {0}")]
    Pulsar(#[source] crate::broker::pulsar::PulsarError),
    /// RabbitMQ could not be reached, or refused the lease's queue.
    #[error("rabbitmq: {0}")]
    RabbitMq(#[source] lapin::Error),
    /// Kafka could not be reached, or refused the lease's topic or transactional id.
    #[error("kafka: {0}")]
    Kafka(String),
}

/// Where a replica stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// Just started: not yet known.
    Unknown,
    /// Another replica holds the lease.
    Standby,
    /// Not held, for the reason given: the broker cannot be reached, the subscription
    /// closed, or the heartbeats stopped arriving.
    Lapsed(String),
    /// This replica holds the lease.
    Held,
}

/// The least time connecting to a lease may take: what Pulsar's clients allow an operation.
pub const MIN_CONNECT_BUDGET: Duration = Duration::from_secs(10);

/// How often heartbeats are sent, and how long without one loses the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Between two heartbeats of the holder, and two checks of what arrived.
    pub interval: Duration,
    /// Without a heartbeat for this long, a holder has lost the lease (and a RabbitMQ replica
    /// kept waiting knows that another holds it).
    pub window: Duration,
    /// Between two attempts of a refused standby (Pulsar) to take the lease: how soon it
    /// takes over, against what asking costs it while it waits (on pulsar-lite, which closes
    /// the asking connection, a reconnect each time).
    pub retry: Duration,
    /// How long connecting to the lease (a lookup, a subscribe, a producer) may take. Longer
    /// than the window: a real broker's first load of the lease's topic can take seconds, and
    /// a replica that is still connecting holds nothing, so waiting costs only time.
    pub connect: Duration,
}

impl Timing {
    /// For a given `--gate-backoff`: a heartbeat every twentieth of it, at most every 100 ms;
    /// the lease lost after a quarter of the backoff without one; a refused standby asking
    /// five times per window, so it takes over within a twentieth of the backoff (at least one
    /// interval) of the holder's death; connecting allowed the window or
    /// [`MIN_CONNECT_BUDGET`], whichever is longer.
    pub fn for_gate_backoff(gate_backoff: Duration) -> Self {
        let interval = (gate_backoff / 20).clamp(Duration::from_millis(10), Duration::from_millis(100));
        let window = (gate_backoff / 4).max(interval * 5);
        Self { interval, window, retry: window / 5, connect: window.max(MIN_CONNECT_BUDGET) }
    }
}

/// The name a lease goes by on a broker when none is given: one per deployment.
pub const DEFAULT_NAME: &str = "bootstrap";

/// Check a lease name: it becomes part of a Pulsar topic and a RabbitMQ queue name, so
/// letters, digits, `.`, `_` and `-`, up to 100 of them.
pub fn check_name(name: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 100 || !name.chars().all(allowed) {
        return Err(format!("{name:?}: use 1 to 100 letters, digits, '.', '_' or '-'"));
    }
    Ok(name.to_owned())
}

/// A replica's lease: taken, waited for and lost in the background, from creation until
/// dropped (which releases it).
pub struct Lease {
    state: watch::Receiver<LeaseState>,
    /// The task that takes and keeps the lease; aborted on drop, which lets it go.
    keeper: JoinHandle<()>,
    description: String,
    /// Asks the keeper to say on the broker that the lease is free, and answers once it has:
    /// for a lease whose standbys would otherwise wait out a window (Kafka's).
    releaser: Option<mpsc::Sender<oneshot::Sender<()>>>,
}

impl Lease {
    /// A lease kept by `keeper`, which reports through the sender paired with `state`.
    pub(crate) fn new(state: watch::Receiver<LeaseState>, keeper: JoinHandle<()>, description: String) -> Self {
        Self { state, keeper, description, releaser: None }
    }

    /// The same, whose keeper answers release requests on `releaser`'s receiver.
    pub(crate) fn releasing_through(mut self, releaser: mpsc::Sender<oneshot::Sender<()>>) -> Self {
        self.releaser = Some(releaser);
        self
    }

    /// Let the lease go, telling the broker so if this lease can (so that the next replica
    /// need not wait for the heartbeats to stop), within `within` at most.
    pub async fn release(mut self, within: Duration) {
        let Some(releaser) = self.releaser.take() else { return };
        if *self.state.borrow() != LeaseState::Held {
            return;
        }
        let (done, released) = oneshot::channel();
        if releaser.try_send(done).is_ok() && tokio::time::timeout(within, released).await.is_err() {
            tracing::debug!(lease = %self.description, "releasing the lease took over {within:?}");
        }
    }

    /// Wait until this replica holds the lease. Logs once that it is on standby, and why, if
    /// it has to wait; further reasons (a broker that stays down) only at debug level.
    pub async fn acquired(&mut self) {
        let mut said_standby = false;
        loop {
            let state = self.state.borrow_and_update().clone();
            match &state {
                LeaseState::Held => {
                    tracing::info!(lease = %self.description, "lease acquired");
                    return;
                }
                LeaseState::Unknown => {}
                LeaseState::Standby if !said_standby => {
                    tracing::info!(lease = %self.description, "standby: another replica holds the lease");
                }
                LeaseState::Lapsed(why) if !said_standby => tracing::warn!(lease = %self.description, "standby: {why}"),
                LeaseState::Standby => {
                    tracing::debug!(lease = %self.description, "standby: another replica holds the lease")
                }
                LeaseState::Lapsed(why) => tracing::debug!(lease = %self.description, "standby: {why}"),
            }
            said_standby |= state != LeaseState::Unknown;
            if self.state.changed().await.is_err() {
                // The keeper ended (dropped, or the lock file failed for good): nothing more
                // will change.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves when this replica, holding the lease, loses it.
    pub async fn lost(&mut self) {
        loop {
            let state = self.state.borrow_and_update().clone();
            match state {
                LeaseState::Held | LeaseState::Unknown => {}
                LeaseState::Standby => {
                    tracing::warn!(lease = %self.description, "lease lost: another replica holds it");
                    return;
                }
                LeaseState::Lapsed(why) => {
                    tracing::warn!(lease = %self.description, "lease lost: {why}");
                    return;
                }
            }
            if self.state.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// What the lease is, for logs (`file lock /data/state.redb.lock`).
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_fit_topics_and_queues() {
        assert_eq!(check_name("acme-prod.1_a"), Ok("acme-prod.1_a".to_owned()));
        for bad in ["", "a/b", "a b", "a:b", &"x".repeat(101)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[tokio::test]
    async fn acquired_waits_through_standby_and_lost_follows_it() {
        let (sender, receiver) = watch::channel(LeaseState::Unknown);
        let mut lease = Lease::new(receiver, tokio::spawn(std::future::pending()), "test".into());
        sender.send_replace(LeaseState::Standby);
        let acquiring = tokio::spawn(async move {
            lease.acquired().await;
            lease
        });
        tokio::task::yield_now().await;
        sender.send_replace(LeaseState::Held);
        let mut lease = acquiring.await.unwrap();
        let losing = tokio::spawn(async move { lease.lost().await });
        tokio::task::yield_now().await;
        assert!(!losing.is_finished(), "lost while held");
        sender.send_replace(LeaseState::Lapsed("broker gone".into()));
        losing.await.unwrap();
    }
}
