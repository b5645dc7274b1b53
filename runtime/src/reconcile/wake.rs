//! One wake, in its four steps: the pre-gate runs, the gate, the records owed from earlier
//! wakes, and the post-gate runs (the module docs of [`crate::reconcile`] say why in this
//! order).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tracing::Instrument;

use super::pending::store_flag;
use super::run::{run_one, run_span};
use super::{Outcome, Reconciler, RunStats, WakeReport};
use crate::flag::{Flag, FlagStore};
use crate::policy::SYSTEM_WORKSPACE;
use crate::schedule::{Footprint, Plan};
use crate::services::{ConfigClient, FlowClient, Protocol, ServiceError, Services};
use crate::tenants::TenantsReport;

/// What one wake has found so far.
struct Wake {
    started: Instant,
    /// One per initialiser, in file order; `None` until it is decided.
    outcomes: Vec<Option<Outcome>>,
    runs: Vec<RunStats>,
    tenants: Option<TenantsReport>,
}

impl Reconciler {
    /// One wake.
    pub async fn wake(&mut self) -> WakeReport {
        let tenants = self.refresh_tenants().await;
        let mut wake =
            Wake { started: Instant::now(), outcomes: vec![None; self.initialisers.len()], runs: Vec::new(), tenants };
        self.services.begin_wake();
        let services: Arc<dyn Services> = self.services.clone();
        let flags = FlagStore(ConfigClient(services.as_ref()));
        let stored = flags.read_all().await;
        self.run_pre_gate(&services, stored.as_ref().ok(), &mut wake).await;
        let stored = match open_gate(&services, stored).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::info!("gate closed: services not ready ({e})");
                return self.report(false, wake);
            }
        };
        self.record_unrecorded(&services, &mut wake).await;
        self.run_post_gate(&services, &stored, &mut wake).await;
        self.report(true, wake)
    }

    /// Run every pre-gate initialiser not known to be at its flag; `stored` is `None` while
    /// config-svc cannot be read, and a clean run's flag is then remembered to be recorded
    /// once it can.
    async fn run_pre_gate(
        &mut self,
        services: &Arc<dyn Services>,
        stored: Option<&HashMap<String, Flag>>,
        wake: &mut Wake,
    ) {
        let config = ConfigClient(services.as_ref());
        for (index, init) in self.initialisers.iter().enumerate().filter(|(_, i)| i.pre_gate) {
            let old_flag = stored.and_then(|flags| flags.get(&*init.name));
            if old_flag == Some(&init.flag) {
                wake.outcomes[index] = Some(Outcome::Skipped);
                continue;
            }
            if self.unrecorded.get(&init.name) == Some(&init.flag) {
                // Done at this flag while config-svc was down; only the record is missing.
                wake.outcomes[index] = Some(Outcome::RanUnrecorded);
                continue;
            }
            let outcome = async {
                let (stats, result) = run_one(init, services, old_flag).await;
                wake.runs.push(stats);
                match result {
                    Err(failure) => Outcome::Failed(failure),
                    Ok(()) if stored.is_some() => store_flag(config, init).await,
                    Ok(()) => Outcome::RanUnrecorded,
                }
            }
            .instrument(run_span(init))
            .await;
            if outcome == Outcome::RanUnrecorded {
                self.unrecorded.insert(init.name.clone(), init.flag.clone());
            }
            wake.outcomes[index] = Some(outcome);
        }
    }

    /// Record the flags of pre-gate runs that succeeded in wakes when config-svc was down.
    async fn record_unrecorded(&mut self, services: &Arc<dyn Services>, wake: &mut Wake) {
        let config = ConfigClient(services.as_ref());
        for (name, flag) in std::mem::take(&mut self.unrecorded) {
            // Gone from a tenant's file since, or its flag changed: nothing to record.
            let Some(index) = self.initialisers.iter().position(|init| init.name == name) else { continue };
            let init = &self.initialisers[index];
            if init.flag != flag {
                continue; // The operator changed the flag since; it will run again.
            }
            let outcome = store_flag(config, init).await;
            if outcome != Outcome::Ran {
                self.unrecorded.insert(name, flag);
            }
            wake.outcomes[index] = Some(outcome);
        }
    }

    /// Run, in file order, every post-gate initialiser not at its `stored` flag, several at
    /// once where their grants allow, storing the flags of clean runs in batches.
    async fn run_post_gate(&mut self, services: &Arc<dyn Services>, stored: &HashMap<String, Flag>, wake: &mut Wake) {
        let config = ConfigClient(services.as_ref());
        let mut due = Vec::new();
        for (index, init) in self.initialisers.iter().enumerate().filter(|(_, i)| !i.pre_gate) {
            if stored.get(&*init.name) == Some(&init.flag) {
                wake.outcomes[index] = Some(Outcome::Skipped);
            } else {
                due.push((index, Footprint::of(&init.grants)));
            }
        }
        let mut plan = Plan::new(due);
        let pending = &mut self.pending;
        let mut running = FuturesUnordered::new();
        // Runs that finished while flags were being stored, taken in before any other.
        let mut finished_meanwhile = VecDeque::new();
        loop {
            while running.len() < self.concurrency {
                let Some(index) = plan.start_next() else { break };
                let init = &self.initialisers[index];
                let span = run_span(init);
                let run = run_one(init, services, stored.get(&*init.name)).instrument(span.clone());
                running.push(async move { (index, span, run.await) });
            }
            let finished = match finished_meanwhile.pop_front() {
                Some(finished) => Some(finished),
                // A batch waits at most its window, however long the runs in flight take: a
                // slow run must not hold back the flags of those that finished beside it.
                None => tokio::select! {
                    finished = running.next() => finished,
                    () = sleep_until(pending.flush_at()) => {
                        let outcomes = &mut wake.outcomes;
                        finished_meanwhile.extend(pending.flush(config, &self.initialisers, outcomes, &mut running).await);
                        continue;
                    }
                },
            };
            let Some((index, span, (stats, result))) = finished else { break };
            plan.finished(index);
            wake.runs.push(stats);
            match result {
                Ok(()) => pending.add(index, span),
                Err(failure) => wake.outcomes[index] = Some(Outcome::Failed(failure)),
            }
            // One round trip a second at most; no run starts while it is stored.
            if pending.due() {
                let outcomes = &mut wake.outcomes;
                finished_meanwhile.extend(pending.flush(config, &self.initialisers, outcomes, &mut running).await);
            }
        }
        pending.flush(config, &self.initialisers, &mut wake.outcomes, &mut running).await;
    }

    fn report(&self, gate_open: bool, wake: Wake) -> WakeReport {
        let outcomes = self
            .initialisers
            .iter()
            .zip(wake.outcomes)
            .map(|(init, outcome)| (init.name.clone(), outcome.unwrap_or(Outcome::Waiting)))
            .collect();
        let requests = self.services.requests_sent();
        let duration = wake.started.elapsed();
        let report = WakeReport { gate_open, requests, outcomes, runs: wake.runs, duration, tenants: wake.tenants };
        tracing::info!(gate_open, converged = report.converged(), requests = report.requests, "wake done");
        report
    }
}

/// The gate: config-svc answered the flags' read (asked again if it had not), the services'
/// protocol is known (detected now if it is not yet) and, in the legacy protocol, flow-svc
/// answers `list-blueprints` (in the workspace protocol flow-svc serves only registered
/// workspaces, so the gate asks config-svc only, as upstream's does). Open, the stored flags.
async fn open_gate(
    services: &Arc<dyn Services>,
    stored: Result<HashMap<String, Flag>, ServiceError>,
) -> Result<HashMap<String, Flag>, ServiceError> {
    let stored = match stored {
        Ok(stored) => stored,
        Err(_) => FlagStore(ConfigClient(services.as_ref())).read_all().await?,
    };
    if services.settle_protocol().await? == Protocol::Legacy {
        FlowClient(services.as_ref()).list_blueprints(SYSTEM_WORKSPACE).await?;
    }
    Ok(stored)
}

/// Sleep until `at`, or forever if there is no `at`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
