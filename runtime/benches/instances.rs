//! Sandbox figures, printed: the time to instantiate and run a trivial initialiser through the
//! runtime's own path (`LoadedComponent::run`, with a real `CallContext`, limits, grants and
//! the embedded backend), pooled and on demand; and the cost of one host call (`config.get`)
//! beside the same `get` made directly through `Services`, so the host's own overhead shows.
//!
//! `cargo bench -p bootstrap-wasm --bench instances`. The guest is the tests' `calls`
//! component (`tests/components/calls`); see docs/performance.md, "Instances".

#[path = "../../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::LoadedComponent;
use bootstrap_wasm::Sandbox;
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::policy::{Grants, Limits, WorkspacePattern};
use bootstrap_wasm::sandbox::{Allocation, CallContext, SandboxOptions};
use bootstrap_wasm::services::{ConfigClient, Services};

const WARM_UP: usize = 200;
const RUNS: usize = 2_000;
/// Host calls in one run of the host-call measurement.
const GETS: u32 = 1_000;
/// Rounds of the host-call measurement: a run making `GETS` calls, one making none, and `GETS`
/// direct `get`s; medians of each.
const CALL_RUNS: usize = 51;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scratch = support::Scratch::new();
    let store = EmbeddedServices::open(&scratch.state()).unwrap();
    store.store().put_many("bench", [("bench", "key", "\"value\"")]).unwrap();
    let services: Arc<dyn Services> = Arc::new(store);
    let bytes = std::fs::read(support::component("calls")).unwrap();
    let context = CallContext {
        initialiser: "calls".into(),
        limits: Limits::default(),
        grants: Arc::new(Grants { config_read: vec![WorkspacePattern::new("bench")], ..Grants::default() }),
        services: Some(services.clone()),
    };

    println!("instantiate and run a trivial initialiser (LoadedComponent::run, embedded backend)");
    println!("{RUNS} runs after {WARM_UP} of warm-up");
    println!("{:<12} {:>10} {:>10}", "allocation", "median", "p99");
    let mut pooled = None;
    for (name, allocation) in [("pooled", Allocation::default()), ("on demand", Allocation::OnDemand)] {
        let sandbox = Sandbox::with_options(SandboxOptions { allocation, ..Default::default() }).unwrap();
        let component = sandbox.load(&bytes).unwrap();
        let mut times = runs(&component, &context, 0, WARM_UP + RUNS).await.split_off(WARM_UP);
        times.sort();
        println!("{name:<12} {:>10.1?} {:>10.1?}", times[times.len() / 2], times[times.len() * 99 / 100]);
        pooled.get_or_insert(component);
    }
    let component = pooled.unwrap();

    println!();
    println!("one host call (config.get) on the embedded backend, pooled");
    // Interleaved, so that a change in the machine's load hits all three alike.
    let (mut many, mut none, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..CALL_RUNS {
        many.extend(runs(&component, &context, GETS, 1).await);
        none.extend(runs(&component, &context, 0, 1).await);
        direct.push(direct_gets(services.as_ref(), GETS).await);
    }
    // The minimum as well as the median: on a shared machine the fastest round is the one
    // least disturbed by others.
    println!("{:<46} {:>10} {:>10}", "per call", "median", "minimum");
    let through_guest = |pick: fn(&[Duration]) -> Duration| pick(&many).saturating_sub(pick(&none)) / GETS;
    let (guest_median, guest_min) = (through_guest(median), through_guest(minimum));
    let (direct_median, direct_min) = (median(&direct) / GETS, minimum(&direct) / GETS);
    println!(
        "{:<46} {:>10.2?} {:>10.2?}",
        format!("through the guest ({GETS} gets minus none)"),
        guest_median,
        guest_min
    );
    println!("{:<46} {:>10.2?} {:>10.2?}", "directly through Services", direct_median, direct_min);
    let overhead = |guest: Duration, direct: Duration| guest.saturating_sub(direct);
    println!(
        "{:<46} {:>10.2?} {:>10.2?}",
        "host-call overhead",
        overhead(guest_median, direct_median),
        overhead(guest_min, direct_min)
    );
}

/// `count` runs of the `calls` guest making `gets` host calls each; the time of each.
async fn runs(component: &LoadedComponent, context: &CallContext, gets: u32, count: usize) -> Vec<Duration> {
    let params = format!(r#"{{"gets": {gets}}}"#);
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        component.run(context, &params, None, "v1").await.result.unwrap();
        times.push(start.elapsed());
    }
    times
}

/// The time of `count` `get`s made directly through `services`, one after another.
async fn direct_gets(services: &dyn Services, count: u32) -> Duration {
    let config = ConfigClient(services);
    let start = Instant::now();
    for _ in 0..count {
        config.get("bench", "bench", "key").await.unwrap();
    }
    start.elapsed()
}

fn median(times: &[Duration]) -> Duration {
    support::median(times.iter().copied())
}

fn minimum(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap()
}
