//! The Kafka lease: heartbeats on a one-partition topic, written in transactions under one
//! transactional id, so that the broker itself fences a replica that took the lease over.
//!
//! Every replica reads `tg.lease.<name>` (default `tg.lease.bootstrap`, named as TrustGraph
//! names its topics), committed messages only, from its last few heartbeats on. The holder
//! writes a heartbeat, its own id, in a transaction of its own every [`beat_interval`] under the
//! transactional id `bootstrap-wasm.lease.<name>`. A standby that has seen no heartbeat for
//! [`Timing::window`] (and a short random wait more, so that two standbys seldom try at once)
//! takes the lease:
//! it initialises that transactional id, which makes the transaction coordinator fence
//! whoever had it (abort their open transaction, refuse their next commit), and holds once its
//! first heartbeat is committed. A holder whose commit fails, or takes over a window, has lost
//! the lease.
//!
//! Why not a consumer group, where the member that owns the lease topic's one partition
//! would be active: the coordinator notices a member that died without leaving only after
//! its session timeout, and brokers refuse one below `group.min.session.timeout.ms`, 6 s by
//! default; a standby could not take over within a 5 s `--gate-backoff`. Here a killed
//! holder's heartbeats stop at once and a standby takes over within about a window.
//!
//! A replica starting up need not wait a window to learn that nobody holds the lease: the
//! heartbeats already on the topic say when the last one was written (its timestamp), so a
//! topic with none, or whose newest is older than a window, is free at once, and one whose
//! newest is recent is watched until a window after it was written. Only those first
//! heartbeats are judged by their timestamps; later ones count when they arrive. So a
//! replica whose clock runs more than about a second ahead of the holder's may take the
//! lease from a live holder as it starts; the holder is then fenced within a beat, as below.
//!
//! A holder that stops cleanly (`Lease::release`) commits an empty record, which says that the
//! lease is free: a replica that reads it as the newest record takes the lease within a
//! random part of a beat, rather than a window after the last heartbeat. So a `--once` run
//! right after a daemon stopped, or a restart, does not wait out a window.
//!
//! Two standbys that try at the same moment both succeed in turn: the second fences the first,
//! whose next commit fails (within one beat). As with the other brokers' leases, a holder cut
//! off from the cluster may run on for up to a window after a standby has taken over; but
//! unlike theirs, its next heartbeat is refused even if its connection comes back.
//!
//! The cluster must allow transactions (Kafka 0.11 and later; `transaction.state.log.*`
//! settings that fit the cluster's size) and, with ACLs, let the bootstrapper write the
//! transactional id and the topic (docs/operations.md, "Kafka").

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::heartbeat::set;
use super::{Lease, LeaseError, LeaseState, Timing};
use crate::broker::kafka::topics::{Topics, watermarks};
use crate::broker::kafka::{KafkaOptions, OffThread};

/// The lease topic for lease `name`.
pub fn topic(name: &str) -> String {
    format!("tg.lease.{name}")
}

/// The transactional id the holder writes its heartbeats under.
pub fn transactional_id(name: &str) -> String {
    format!("bootstrap-wasm.lease.{name}")
}

/// How many offsets back from the end a replica starts reading: the last few heartbeats and
/// their commit markers.
const HISTORY: i64 = 8;

/// How many loss windows initialising the transactional id may take before the replica gives
/// up and watches the topic again.
const INIT_WINDOWS: u32 = 8;

/// How long heartbeats stay on the lease topic: nobody reads old ones.
const RETENTION_MS: &str = "300000";

/// How often the holder commits a heartbeat: five times a window, so that one late commit
/// does not lose the lease.
pub fn beat_interval(timing: Timing) -> Duration {
    timing.window / 5
}

/// Start keeping lease `name` on the cluster of `options`, in the background.
pub fn lease(options: &KafkaOptions, name: &str, timing: Timing) -> Result<Lease, LeaseError> {
    let config = options.client_config();
    let keeper = Keeper {
        topics: Topics::new(config.clone(), timing.window),
        config,
        topic: topic(name),
        transactional_id: transactional_id(name),
        me: uuid::Uuid::new_v4().to_string(),
        timing,
    };
    let description = format!("kafka topic {} at {}", keeper.topic, options.describe());
    let (sender, receiver) = watch::channel(LeaseState::Unknown);
    let (releaser, releases) = mpsc::channel(1);
    let keeper = tokio::spawn(keeper.keep(sender, releases));
    Ok(Lease::new(receiver, keeper, description).releasing_through(releaser))
}

struct Keeper {
    config: ClientConfig,
    /// Makes sure of the lease topic (once per process).
    topics: Topics,
    topic: String,
    transactional_id: String,
    /// This replica's id: the heartbeat's body.
    me: String,
    timing: Timing,
}

impl Keeper {
    /// Watch for heartbeats, take the lease when they stop, hold it while commits succeed;
    /// runs until aborted, or until the lease is released.
    async fn keep(self, state: watch::Sender<LeaseState>, mut releases: Releases) {
        let keeper = Arc::new(self);
        loop {
            let watcher = match keeper.watch().await {
                Ok(watcher) => watcher,
                Err(e) => {
                    set(&state, LeaseState::Lapsed(e.to_string()));
                    tokio::time::sleep(keeper.timing.window).await;
                    continue;
                }
            };
            keeper.wait_for_silence(&watcher, &state).await;
            match keeper.clone().take_over().await {
                Ok(holder) => match keeper.clone().hold(holder, &state, &mut releases).await {
                    Some(why) => set(&state, LeaseState::Lapsed(why)),
                    None => return,
                },
                Err(e) => {
                    set(&state, LeaseState::Lapsed(format!("cannot take the lease: {e}")));
                    tokio::time::sleep(keeper.timing.retry).await;
                }
            }
        }
    }

    /// A consumer of the lease topic's committed heartbeats, from the last few on.
    async fn watch(&self) -> Result<Watcher, LeaseError> {
        self.topics.ensure_topic(&self.topic, RETENTION_MS).await.map_err(|e| LeaseError::Kafka(e.to_string()))?;
        let mut config = self.config.clone();
        config
            // Never joined (the consumer is assigned by hand), but librdkafka's consumers need one.
            .set("group.id", format!("bootstrap-wasm-lease-{}", self.me))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .set("fetch.wait.max.ms", "100");
        let consumer: StreamConsumer = config.create().map_err(kafka_error)?;
        let consumer = OffThread::new(consumer);
        let marks = {
            let (consumer, topic, timeout) = (consumer.clone(), self.topic.clone(), self.timing.window);
            tokio::task::spawn_blocking(move || watermarks(&**consumer, &topic, timeout))
                .await
                .expect("the lookup does not panic")
                .map_err(|e| LeaseError::Kafka(e.to_string()))?
        };
        let mut assignment = TopicPartitionList::new();
        for &(partition, low, high) in &marks {
            let from = Offset::Offset((high - HISTORY).max(low));
            assignment.add_partition_offset(&self.topic, partition, from).map_err(kafka_error)?;
        }
        consumer.assign(&assignment).map_err(kafka_error)?;
        // Each heartbeat is followed by its transaction's commit marker.
        let last_heartbeat =
            marks.iter().filter(|(_, low, high)| high > low).map(|&(_, low, high)| (high - 2).max(low)).max();
        Ok(Watcher { consumer, last_heartbeat })
    }

    /// Return once no other replica's heartbeat has been written for a window (and a random
    /// part of a beat more), reporting standby while they arrive; at once if the heartbeats on
    /// the topic when watching began were all older than that, or there were none.
    async fn wait_for_silence(&self, watcher: &Watcher, state: &watch::Sender<LeaseState>) {
        let Some(last_heartbeat) = watcher.last_heartbeat else {
            return; // Nobody has held the lease within the topic's retention.
        };
        let quiet_for = || self.timing.window + jitter(beat_interval(self.timing));
        // Until the topic's earlier heartbeats are read, wait as long as for a live one.
        let mut deadline = Instant::now() + quiet_for();
        let (mut caught_up, mut heard) = (false, false);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                received = watcher.consumer.recv() => match received {
                    Ok(message) => {
                        let earlier = !caught_up;
                        caught_up |= message.offset() >= last_heartbeat;
                        if message.payload().is_none_or(<[u8]>::is_empty) {
                            // A holder let the lease go: free, but for a later heartbeat.
                            tracing::info!(topic = %self.topic, "the lease's holder released it");
                            heard = true;
                            deadline = Instant::now() + jitter(beat_interval(self.timing));
                        } else if message.payload() != Some(self.me.as_bytes()) {
                            // An earlier heartbeat counts from when it was written.
                            let age = if earlier { age(message.timestamp()) } else { Duration::ZERO };
                            if age < self.timing.window {
                                set(state, LeaseState::Standby);
                                heard = true;
                                deadline = Instant::now() + quiet_for().saturating_sub(age);
                            }
                        }
                        if caught_up && !heard {
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(topic = %self.topic, "lease consumer: {e}"),
                },
            }
        }
    }

    /// Initialise the transactional id, fencing whoever had it.
    async fn take_over(self: Arc<Self>) -> Result<Arc<OffThread<BaseProducer>>, LeaseError> {
        tokio::task::spawn_blocking(move || {
            let mut config = self.config.clone();
            config
                .set("transactional.id", &self.transactional_id)
                .set("linger.ms", "0")
                .set("transaction.timeout.ms", (self.timing.window * 4).as_millis().max(1000).to_string());
            let producer: BaseProducer = config.create().map_err(kafka_error)?;
            // The coordinator may still be loading (a fresh cluster creates its transaction log
            // now, which takes seconds) or aborting a dead holder's transaction: calling again
            // resumes the same initialisation, where a new producer would start it over.
            let deadline = Instant::now() + self.timing.window * INIT_WINDOWS;
            loop {
                match producer.init_transactions(self.timing.window * 2) {
                    Ok(()) => return Ok(OffThread::new(producer)),
                    Err(KafkaError::Transaction(e)) if e.is_retriable() && Instant::now() < deadline => {
                        tracing::debug!(topic = %self.topic, "taking the lease, again: {e}");
                    }
                    Err(e) => return Err(kafka_error(e)),
                }
            }
        })
        .await
        .expect("taking the lease does not panic")
    }

    /// Commit a heartbeat every beat until one fails or is late, or the lease is released;
    /// why the lease was lost (none: released).
    async fn hold(
        self: Arc<Self>,
        producer: Arc<OffThread<BaseProducer>>,
        state: &watch::Sender<LeaseState>,
        releases: &mut Releases,
    ) -> Option<String> {
        let mut beats = tokio::time::interval(beat_interval(self.timing));
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = beats.tick() => {}
                Some(done) = releases.recv() => {
                    let keeper = self.clone();
                    let producer = producer.clone();
                    let released = tokio::task::spawn_blocking(move || keeper.commit(&producer, b"")).await;
                    if let Ok(Err(e)) = released {
                        tracing::debug!(topic = %self.topic, "cannot say the lease is released: {e}");
                    }
                    let _ = done.send(());
                    return None;
                }
            }
            let beat = {
                let (keeper, producer) = (self.clone(), producer.clone());
                tokio::task::spawn_blocking(move || keeper.beat(&producer))
            };
            let lost = match tokio::time::timeout(self.timing.window, beat).await {
                Ok(Ok(Ok(()))) => {
                    set(state, LeaseState::Held);
                    continue;
                }
                Ok(Ok(Err(e))) => format!("a heartbeat was refused: {e}"),
                Ok(Err(_panicked)) => "the heartbeat failed".into(),
                Err(_elapsed) => format!("no heartbeat committed within {:?}", self.timing.window),
            };
            return Some(lost);
        }
    }

    /// One heartbeat, in a transaction of its own. Blocking.
    fn beat(&self, producer: &BaseProducer) -> Result<(), KafkaError> {
        self.commit(producer, self.me.as_bytes())
    }

    /// `payload` (a heartbeat, or nothing to say the lease is free) in a transaction of its
    /// own. Blocking.
    fn commit(&self, producer: &BaseProducer, payload: &[u8]) -> Result<(), KafkaError> {
        producer.begin_transaction()?;
        let record = BaseRecord::<(), _>::to(&self.topic).payload(payload);
        if let Err((e, _record)) = producer.send(record) {
            let _ = producer.abort_transaction(self.timing.window);
            return Err(e);
        }
        producer.commit_transaction(self.timing.window)
    }
}

/// Requests to release the lease, each answered once it is.
type Releases = mpsc::Receiver<tokio::sync::oneshot::Sender<()>>;

/// A consumer of the lease topic, and the offset of the last heartbeat that was on it when it
/// began to read (none if there was none).
struct Watcher {
    consumer: Arc<OffThread<StreamConsumer>>,
    last_heartbeat: Option<i64>,
}

/// How long ago a message was written, by its timestamp (none: just now).
fn age(timestamp: Timestamp) -> Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let written = timestamp.to_millis().and_then(|ms| u64::try_from(ms).ok()).map(Duration::from_millis);
    written.map_or(Duration::ZERO, |written| now.saturating_sub(written))
}

/// Between zero and `most`, different in each replica.
fn jitter(most: Duration) -> Duration {
    let fraction = (uuid::Uuid::new_v4().as_u128() % 1000) as u32;
    most * fraction / 1000
}

fn kafka_error(e: KafkaError) -> LeaseError {
    LeaseError::Kafka(e.to_string())
}
