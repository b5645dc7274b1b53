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
//! the wake. The runs in flight go on while a batch is stored: one may hold what the `put`
//! needs (a broker client's lock, across a publish), which it lets go of only if polled.
//! Upstream
//! stores each flag right after its run, one request each, and config-svc announces a new
//! config version to every TrustGraph service after every put: a thousand tenants converging
//! cost it two thousand flag puts, and as many announcements. A wake cut short by
//! [`Reconciler::run_until`]'s shutdown still stores its batch; a crash loses at most the
//! batch, whose initialisers run again on the next start, as after a failed flag store
//! upstream. A flag is never stored before its run succeeded.
//!
//! A failure is logged with the initialiser's name and retried on the next wake; it never stops
//! the others. The loop knows nothing of transports or guest languages: it sees [`Services`]
//! and [`Initialiser`]s: the operator's, fixed for the process's life, then the tenants'
//! ([`Tenants`]), which each wake first refreshes from their files.

mod pending;
mod run;
mod wake;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use pending::FLAG_BATCH_WINDOW;

use crate::flag::Flag;
use crate::initialiser::Initialiser;
use crate::sandbox::RunFailure;
use crate::services::{ConfigClient, ServiceError, Services, WakeReadCache};
use crate::tenants::{Tenants, TenantsReport};
use pending::PendingFlags;

/// How long a wake cut short (SIGTERM, a lost lease) may take to store its pending flags: the
/// process must be gone within 2 s of SIGTERM.
const SHUTDOWN_STORE_TIMEOUT: Duration = Duration::from_millis(500);

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
    /// One entry per initialiser, the operator's in file order, then the tenants'.
    pub outcomes: Vec<(Arc<str>, Outcome)>,
    /// One entry per run attempted, in the order run.
    pub runs: Vec<RunStats>,
    /// How long the wake took, runs included.
    pub duration: Duration,
    /// What refreshing the tenants found, when there are tenants.
    pub tenants: Option<TenantsReport>,
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
    /// This wake's initialisers: the operator's, then the tenants' in service.
    initialisers: Vec<Arc<Initialiser>>,
    /// The operator's.
    own: Vec<Arc<Initialiser>>,
    tenants: Option<Tenants>,
    services: Arc<WakeReadCache>,
    cadence: Cadence,
    /// Pre-gate initialisers that succeeded while config-svc was down, by name, with the flag
    /// to record once it answers.
    unrecorded: HashMap<Arc<str>, Flag>,
    /// The current wake's clean runs whose flags are not stored yet; kept here rather than in
    /// the wake so that a wake cut short can still store them.
    pending: PendingFlags,
    /// How many post-gate initialisers may run at once.
    concurrency: usize,
}

impl Reconciler {
    pub fn new(initialisers: Vec<Initialiser>, services: Arc<dyn Services>, cadence: Cadence) -> Self {
        let own: Vec<Arc<Initialiser>> = initialisers.into_iter().map(Arc::new).collect();
        Self {
            initialisers: own.clone(),
            own,
            tenants: None,
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

    /// Run `tenants`' initialisers too, after the operator's, refreshed from their files at
    /// the start of each wake.
    pub fn with_tenants(mut self, tenants: Tenants) -> Self {
        self.tenants = Some(tenants).filter(|tenants| !tenants.is_empty());
        self
    }

    /// Refresh the tenants, and this wake's initialisers if theirs changed.
    async fn refresh_tenants(&mut self) -> Option<TenantsReport> {
        let tenants = self.tenants.as_mut()?;
        let report = tenants.refresh().await;
        if report.changed {
            self.initialisers = self.own.iter().chain(tenants.running()).cloned().collect();
        }
        Some(report)
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
            let reload = self.tenants.as_ref().map(Tenants::reload_handle);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = reload_requested(reload) => tracing::info!("tenants' files to be read again: waking now"),
                () = &mut shutdown => return,
            }
        }
    }
}

/// Resolves when a reload of the tenants is asked for; never if there are none.
async fn reload_requested(reload: Option<crate::tenants::ReloadHandle>) {
    match reload {
        Some(reload) => reload.requested().await,
        None => std::future::pending().await,
    }
}
