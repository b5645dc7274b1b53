//! One run of one initialiser, as the loop sees it: under a span that names it, timed, its
//! failure logged, and what it cost reported for the metrics ([`RunStats`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::RunStats;
use crate::flag::Flag;
use crate::initialiser::Initialiser;
use crate::sandbox::RunFailure;
use crate::services::Services;

/// Numbers this process's runs, so that the lines of one run can be told apart.
static RUN_IDS: AtomicU64 = AtomicU64::new(1);

/// The span of one run: every line logged while it lasts (the runtime's, the guest's own log
/// calls and its stdout/stderr, storing its flag) carries the initialiser's name and the run id.
pub(super) fn run_span(init: &Initialiser) -> tracing::Span {
    tracing::info_span!("run", initialiser = %init.name, run_id = RUN_IDS.fetch_add(1, Ordering::Relaxed))
}

/// Run `init`: what it cost, and how it ended.
pub(super) async fn run_one(
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
