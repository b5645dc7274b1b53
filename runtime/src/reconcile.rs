//! The reconcile loop: wake, bring every initialiser to its configured flag, sleep, repeat.
//!
//! One wake does what upstream's bootstrapper does, in order:
//! 1. read every stored flag at once (`getvalues` on `__system__` / `init-state`);
//! 2. run the pre-gate initialisers (`wait-for-services: false`) that are not at their flag,
//!    *even when the flags cannot be read*: they set up what the services need to start, so
//!    waiting for the services first would deadlock (upstream's first version did);
//! 3. check the gate: config-svc answered step 1 (asked again if it had not) and flow-svc
//!    answers `list-blueprints`; if either fails, stop here;
//! 4. record the flags of pre-gate runs that succeeded while config-svc was down;
//! 5. run, in file order, every other initialiser whose stored flag differs from its
//!    configured one, storing the new flag only after a clean run. Up to
//!    [`Reconciler::with_concurrency`] of them run at once, those whose grants overlap still in
//!    file order ([`crate::schedule`]); one at a time by default, as upstream.
//!
//! Step 5 stores flags in batches, one `put` for many (`PendingFlags`): as soon as the oldest
//! has waited [`FLAG_BATCH_WINDOW`], whatever the runs still in flight are doing (a tenant's
//! slow run must not hold back the flags of those that finished beside it), and at the end of
//! the wake. Upstream
//! stores each flag right after its run, one request each, and config-svc announces a new
//! config version to every TrustGraph service after every put: a thousand tenants converging
//! cost it two thousand flag puts, and as many announcements. A wake cut short by
//! [`Reconciler::run_until`]'s shutdown still stores its batch; a crash loses at most the
//! batch, whose initialisers run again on the next start, as after a failed flag store
//! upstream. A flag is never stored before its run succeeded.
//!
//! A failure is logged with the initialiser's name and retried on the next wake; it never stops
//! the others. The loop knows nothing of transports or guest languages: it sees [`Services`]
//! and [`Initialiser`]s.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tracing::Instrument;

use crate::flag::Flag;
use crate::init_file::InitFile;
use crate::initialiser::Initialiser;
use crate::policy::SYSTEM_WORKSPACE;
use crate::sandbox::RunFailure;
use crate::schedule::{Footprint, Plan};
use crate::services::{ConfigClient, FlowClient, ServiceError, Services, WakeReadCache};

/// How long a clean run's flag may wait to be stored with others (see the module's docs).
pub const FLAG_BATCH_WINDOW: Duration = Duration::from_secs(1);

/// The most flags stored in one `put`.
const FLAG_BATCH_MAX: usize = 500;

/// How long a wake cut short (SIGTERM, a lost lease) may take to store its pending flags: the
/// process must be gone within 2 s of SIGTERM.
const SHUTDOWN_STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// The config type under which flags are stored, one key per initialiser.
pub const INIT_STATE_TYPE: &str = "init-state";

/// How long to sleep after a wake, by what the wake found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// The gate was closed: services are still coming up.
    pub gate_backoff: Duration,
    /// Something ran or failed: converge quickly.
    pub init_retry: Duration,
    /// Everything was already at its flag.
    pub steady_interval: Duration,
}

impl Default for Cadence {
    /// Upstream's tiers.
    fn default() -> Self {
        Self {
            gate_backoff: Duration::from_secs(5),
            init_retry: Duration::from_secs(15),
            steady_interval: Duration::from_secs(300),
        }
    }
}

/// What happened to one initialiser in one wake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already at its flag.
    Skipped,
    /// Ran cleanly and its flag is stored.
    Ran,
    /// Ran cleanly, but config-svc was down so its flag is not stored yet (pre-gate only).
    RanUnrecorded,
    /// Ran cleanly but storing its flag failed: it will run again.
    FlagNotStored(ServiceError),
    /// Its run failed, for the reason given: retried next wake.
    Failed(RunFailure),
    /// Not attempted: the gate was closed.
    Waiting,
}

/// What one wake found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeReport {
    pub gate_open: bool,
    /// Requests the wake sent to config-svc and flow-svc (reads repeated within the wake are
    /// answered by [`WakeReadCache`] and not counted).
    pub requests: u64,
    /// One entry per initialiser, in file order.
    pub outcomes: Vec<(Arc<str>, Outcome)>,
    /// One entry per run attempted, in the order run.
    pub runs: Vec<RunStats>,
    /// How long the wake took, runs included.
    pub duration: Duration,
}

/// What one run cost and how it ended, for whoever watches the loop (the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStats {
    pub initialiser: Arc<str>,
    /// `None` for a clean run, else the kind of failure ([`crate::sandbox::RunFailure::kind`]).
    pub failure: Option<&'static str>,
    pub duration: Duration,
    pub fuel_used: u64,
    /// The guest met its memory limit: a growth of its memory was refused, whether or not it
    /// then failed (a guest may catch the refusal and succeed).
    pub memory_refused: bool,
}

impl WakeReport {
    /// Every initialiser is at its configured flag, and that is recorded.
    pub fn converged(&self) -> bool {
        self.gate_open && self.outcomes.iter().all(|(_, o)| matches!(o, Outcome::Skipped | Outcome::Ran))
    }

    /// Upstream's cadence rule.
    pub fn next_sleep(&self, cadence: &Cadence) -> Duration {
        if !self.gate_open {
            cadence.gate_backoff
        } else if self.outcomes.iter().any(|(_, o)| *o != Outcome::Skipped) {
            cadence.init_retry
        } else {
            cadence.steady_interval
        }
    }
}

/// The loop's state: the initialisers, the services, and pre-gate successes not yet recorded.
pub struct Reconciler {
    initialisers: Vec<Initialiser>,
    services: Arc<WakeReadCache>,
    cadence: Cadence,
    /// Pre-gate initialisers that succeeded while config-svc was down, by index, with the flag
    /// to record once it answers.
    unrecorded: HashMap<usize, Flag>,
    /// The current wake's clean runs whose flags are not stored yet; kept here rather than in
    /// the wake so that a wake cut short can still store them.
    pending: PendingFlags,
    /// How many post-gate initialisers may run at once.
    concurrency: usize,
}

impl Reconciler {
    pub fn new(initialisers: Vec<Initialiser>, services: Arc<dyn Services>, cadence: Cadence) -> Self {
        Self {
            initialisers,
            services: Arc::new(WakeReadCache::new(services)),
            cadence,
            unrecorded: HashMap::new(),
            pending: PendingFlags::default(),
            concurrency: 1,
        }
    }

    /// Run up to `concurrency` post-gate initialisers at once (see [`crate::schedule`]): those
    /// whose grants cannot touch the same workspaces, nor both reach HTTP, side by side; the
    /// others still in file order.
    pub fn with_concurrency(mut self, concurrency: std::num::NonZeroUsize) -> Self {
        self.concurrency = concurrency.get();
        self
    }

    /// Wake, hand the report to `on_wake`, sleep as the wake says, and repeat until `shutdown`
    /// resolves. A wake cut short by `shutdown` is dropped where it stands (a running guest
    /// stops at its next epoch check) and reports nothing; the flags of its clean runs so far
    /// are stored, within half a second (`SHUTDOWN_STORE_TIMEOUT`).
    pub async fn run_until(
        &mut self,
        shutdown: impl std::future::Future<Output = ()>,
        mut on_wake: impl FnMut(&WakeReport),
    ) {
        tokio::pin!(shutdown);
        loop {
            let report = tokio::select! {
                report = self.wake() => report,
                () = &mut shutdown => {
                    let pending = std::mem::take(&mut self.pending);
                    let config = ConfigClient(self.services.as_ref());
                    let storing = pending.store(config, &self.initialisers);
                    if tokio::time::timeout(SHUTDOWN_STORE_TIMEOUT, storing).await.is_err() {
                        tracing::warn!("could not store the flags of the last runs in time; they will run again");
                    }
                    return;
                }
            };
            on_wake(&report);
            let sleep = report.next_sleep(&self.cadence);
            tracing::info!("next wake in {sleep:?}");
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// One wake.
    pub async fn wake(&mut self) -> WakeReport {
        let started = Instant::now();
        let mut runs = Vec::new();
        self.services.begin_wake();
        let services: Arc<dyn Services> = self.services.clone();
        let config = ConfigClient(services.as_ref());
        let mut stored = read_flags(config).await;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; self.initialisers.len()];

        // Pre-gate: run whatever is not known to be at its flag.
        for (index, init) in self.initialisers.iter().enumerate().filter(|(_, i)| i.pre_gate) {
            let old_flag = stored.as_ref().ok().and_then(|flags| flags.get(&*init.name));
            if old_flag == Some(&init.flag) {
                outcomes[index] = Some(Outcome::Skipped);
                continue;
            }
            if self.unrecorded.get(&index) == Some(&init.flag) {
                // Done at this flag while config-svc was down; only the record is missing.
                outcomes[index] = Some(Outcome::RanUnrecorded);
                continue;
            }
            let outcome = async {
                let (stats, result) = run_one(init, &services, old_flag).await;
                runs.push(stats);
                match result {
                    Err(failure) => Outcome::Failed(failure),
                    Ok(()) if stored.is_ok() => store_flag(config, init).await,
                    Ok(()) => Outcome::RanUnrecorded,
                }
            }
            .instrument(run_span(init))
            .await;
            if outcome == Outcome::RanUnrecorded {
                self.unrecorded.insert(index, init.flag.clone());
            }
            outcomes[index] = Some(outcome);
        }

        // The gate.
        if stored.is_err() {
            stored = read_flags(config).await;
        }
        let gate = match &stored {
            Ok(_) => FlowClient(services.as_ref()).list_blueprints(SYSTEM_WORKSPACE).await.map(drop),
            Err(e) => Err(e.clone()),
        };
        let stored = match (gate, stored) {
            (Ok(()), Ok(stored)) => stored,
            (Err(e), _) | (_, Err(e)) => {
                tracing::info!("gate closed: services not ready ({e})");
                return self.report(false, outcomes, runs, started);
            }
        };

        // Pre-gate successes from wakes when config-svc was down.
        for (index, flag) in std::mem::take(&mut self.unrecorded) {
            let init = &self.initialisers[index];
            if init.flag != flag {
                continue; // The operator changed the flag since; it will run again.
            }
            let outcome = store_flag(config, init).await;
            if outcome != Outcome::Ran {
                self.unrecorded.insert(index, flag);
            }
            outcomes[index] = Some(outcome);
        }

        // Post-gate: in file order, several at once where their grants allow.
        let mut due = Vec::new();
        for (index, init) in self.initialisers.iter().enumerate().filter(|(_, i)| !i.pre_gate) {
            if stored.get(&*init.name) == Some(&init.flag) {
                outcomes[index] = Some(Outcome::Skipped);
            } else {
                due.push((index, Footprint::of(&init.grants)));
            }
        }
        let mut plan = Plan::new(due);
        let pending = &mut self.pending;
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < self.concurrency {
                let Some(index) = plan.start_next() else { break };
                let init = &self.initialisers[index];
                let (services, span) = (&services, run_span(init));
                let run = run_one(init, services, stored.get(&*init.name)).instrument(span.clone());
                running.push(async move { (index, span, run.await) });
            }
            // A batch waits at most its window, however long the runs in flight take: a slow
            // run must not hold back the flags of those that finished beside it.
            let flush_at = pending.flush_at();
            let finished = tokio::select! {
                finished = running.next() => finished,
                () = sleep_until(flush_at) => {
                    pending.flush(config, &self.initialisers, &mut outcomes).await;
                    continue;
                }
            };
            let Some((index, span, (stats, result))) = finished else { break };
            plan.finished(index);
            runs.push(stats);
            match result {
                Ok(()) => pending.add(index, span),
                Err(failure) => outcomes[index] = Some(Outcome::Failed(failure)),
            }
            // The runs in flight wait while it is stored: one round trip a second at most.
            if pending.due() {
                pending.flush(config, &self.initialisers, &mut outcomes).await;
            }
        }
        pending.flush(config, &self.initialisers, &mut outcomes).await;
        self.report(true, outcomes, runs, started)
    }

    fn report(
        &self,
        gate_open: bool,
        outcomes: Vec<Option<Outcome>>,
        runs: Vec<RunStats>,
        started: Instant,
    ) -> WakeReport {
        let outcomes = self
            .initialisers
            .iter()
            .zip(outcomes)
            .map(|(init, outcome)| (init.name.clone(), outcome.unwrap_or(Outcome::Waiting)))
            .collect();
        let requests = self.services.requests_sent();
        let report = WakeReport { gate_open, requests, outcomes, runs, duration: started.elapsed() };
        tracing::info!(gate_open, converged = report.converged(), requests = report.requests, "wake done");
        report
    }
}

/// One initialiser's standing, as `bootstrap-wasm status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    pub name: String,
    pub configured: Flag,
    pub stored: Option<Flag>,
}

impl StatusRow {
    /// It will run on the next wake.
    pub fn pending(&self) -> bool {
        self.stored.as_ref() != Some(&self.configured)
    }
}

/// Each initialiser of `file` with its configured and stored flag, in file order: one
/// round trip, nothing run.
pub async fn status(file: &InitFile, services: &dyn Services) -> Result<Vec<StatusRow>, ServiceError> {
    let mut stored = read_flags(ConfigClient(services)).await?;
    Ok(file
        .initialisers
        .iter()
        .map(|spec| StatusRow {
            name: spec.name.clone(),
            configured: spec.flag.clone(),
            stored: stored.remove(&spec.name),
        })
        .collect())
}

/// Every stored flag, by initialiser name, in one round trip.
pub async fn read_flags(config: ConfigClient<'_>) -> Result<HashMap<String, Flag>, ServiceError> {
    let values = config.values(SYSTEM_WORKSPACE, INIT_STATE_TYPE).await?;
    Ok(values.into_iter().map(|(name, stored)| (name, Flag::from_stored(&stored))).collect())
}

/// Sleep until `at`, or forever if there is no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Numbers this process's runs, so that the lines of one run can be told apart.
static RUN_IDS: AtomicU64 = AtomicU64::new(1);

/// The span of one run: every line logged while it lasts (the runtime's, the guest's own log
/// calls and its stdout/stderr, storing its flag) carries the initialiser's name and the run id.
fn run_span(init: &Initialiser) -> tracing::Span {
    tracing::info_span!("run", initialiser = %init.name, run_id = RUN_IDS.fetch_add(1, Ordering::Relaxed))
}

/// Run `init`: what it cost, and how it ended.
async fn run_one(
    init: &Initialiser,
    services: &Arc<dyn Services>,
    old_flag: Option<&Flag>,
) -> (RunStats, Result<(), RunFailure>) {
    let shown = |flag: Option<&Flag>| flag.map_or("none".to_owned(), |f| format!("{:?}", f.to_string()));
    tracing::info!(initialiser = %init.name, "running (old_flag={} -> new_flag={})", shown(old_flag), shown(Some(&init.flag)));
    let started = Instant::now();
    let metered = init.run(services.clone(), old_flag).await;
    let duration = started.elapsed();
    tracing::debug!(initialiser = %init.name, fuel_used = metered.fuel_used, ?duration, "run ended");
    let failure = metered.result.as_ref().err().map(|failure| failure.kind());
    let memory_refused = metered.memory_refused;
    let stats =
        RunStats { initialiser: init.name.clone(), failure, duration, fuel_used: metered.fuel_used, memory_refused };
    if memory_refused && metered.result.is_ok() {
        tracing::warn!(
            initialiser = %init.name,
            limit = "limits.memory",
            "reached its memory limit of {} bytes: a growth was refused, and the guest carried on and succeeded",
            init.limits.memory
        );
    }
    if let Err(failure) = &metered.result {
        tracing::error!(initialiser = %init.name, fuel_used = metered.fuel_used, "{failure}");
    }
    (stats, metered.result)
}

/// Clean runs of this wake whose flags are not stored yet, each with its run's span (so that
/// "completed" is logged as part of the run).
#[derive(Default)]
struct PendingFlags {
    runs: Vec<(usize, tracing::Span)>,
    oldest: Option<Instant>,
}

impl PendingFlags {
    fn add(&mut self, index: usize, span: tracing::Span) {
        self.oldest.get_or_insert_with(Instant::now);
        self.runs.push((index, span));
    }

    /// When the oldest will have waited the window; `None` while nothing is pending.
    fn flush_at(&self) -> Option<Instant> {
        self.oldest.map(|oldest| oldest + FLAG_BATCH_WINDOW)
    }

    /// Whether to store them before the next run.
    fn due(&self) -> bool {
        self.runs.len() >= FLAG_BATCH_MAX || self.oldest.is_some_and(|oldest| oldest.elapsed() >= FLAG_BATCH_WINDOW)
    }

    /// Store every pending flag in one `put`, and put each run's outcome in `outcomes`.
    async fn flush(
        &mut self,
        config: ConfigClient<'_>,
        initialisers: &[Initialiser],
        outcomes: &mut [Option<Outcome>],
    ) {
        for (index, outcome) in std::mem::take(self).store(config, initialisers).await {
            outcomes[index] = Some(outcome);
        }
    }

    /// Store every pending flag in one `put`; returns each run's outcome.
    async fn store(self, config: ConfigClient<'_>, initialisers: &[Initialiser]) -> Vec<(usize, Outcome)> {
        if self.runs.is_empty() {
            return Vec::new();
        }
        let entries = self.runs.iter().map(|(index, _)| flag_entry(&initialisers[*index])).collect();
        let result = config.put(SYSTEM_WORKSPACE, entries).await;
        let outcome = |(index, span): (usize, tracing::Span)| {
            let init = &initialisers[index];
            (index, span.in_scope(|| stored_outcome(init, &result)))
        };
        self.runs.into_iter().map(outcome).collect()
    }
}

async fn store_flag(config: ConfigClient<'_>, init: &Initialiser) -> Outcome {
    stored_outcome(init, &config.put(SYSTEM_WORKSPACE, vec![flag_entry(init)]).await)
}

/// The config entry (type, key, value) that records `init` at its configured flag.
fn flag_entry(init: &Initialiser) -> (String, String, String) {
    (INIT_STATE_TYPE.to_owned(), init.name.to_string(), init.flag.to_stored())
}

/// What storing `init`'s flag came to, logged.
fn stored_outcome(init: &Initialiser, result: &Result<(), ServiceError>) -> Outcome {
    match result {
        Ok(()) => {
            tracing::info!(initialiser = %init.name, "completed (flag={:?})", init.flag.to_string());
            Outcome::Ran
        }
        Err(e) => {
            tracing::warn!(initialiser = %init.name, "completed but could not store its flag ({e}); it will run again");
            Outcome::FlagNotStored(e.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_flags_are_due_after_the_window_or_at_the_batch_limit() {
        let mut pending = PendingFlags::default();
        assert!(!pending.due(), "nothing pending");
        pending.add(0, tracing::Span::none());
        assert!(!pending.due(), "fresh");
        pending.oldest = Instant::now().checked_sub(FLAG_BATCH_WINDOW);
        assert!(pending.due(), "waited the window");

        let mut many = PendingFlags::default();
        for index in 0..FLAG_BATCH_MAX {
            assert!(!many.due(), "due at {index}");
            many.add(index, tracing::Span::none());
        }
        assert!(many.due());
    }
}
