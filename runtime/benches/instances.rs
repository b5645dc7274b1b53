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

use bootstrap_wasm::policy::{Grants, Limits, WorkspacePattern};
use bootstrap_wasm::sandbox::{Allocation, CallContext, LoadedComponent, SandboxOptions};
use bootstrap_wasm::services::embedded::EmbeddedServices;
use bootstrap_wasm::services::{ConfigClient, Services};
use bootstrap_wasm::Sandbox;

const WARM_UP: usize = 200;
const RUNS: usize = 2_000;
/// Host calls in one run of the host-call measurement.
const GETS: u32 = 1_000;
/// Runs of each kind (`GETS` calls, none) in the host-call measurement.
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
        let sandbox = Sandbox::with_options(SandboxOptions { allocation }).unwrap();
        let component = sandbox.load(&bytes).unwrap();
        let mut times = runs(&component, &context, 0, WARM_UP + RUNS).await.split_off(WARM_UP);
        times.sort();
        println!("{name:<12} {:>10.1?} {:>10.1?}", times[times.len() / 2], times[times.len() * 99 / 100]);
        pooled.get_or_insert(component);
    }
    let component = pooled.unwrap();

    println!();
    println!("one host call (config.get) on the embedded backend, pooled");
    let many = median(runs(&component, &context, GETS, CALL_RUNS).await);
    let none = median(runs(&component, &context, 0, CALL_RUNS).await);
    let per_call = many.saturating_sub(none) / GETS;
    let direct = direct_gets(services.as_ref(), 20_000).await;
    println!("{:<44} {:>10.2?}", format!("through the guest ({GETS} gets minus none) / {GETS}"), per_call);
    println!("{:<44} {:>10.2?}", "directly through Services (mean)", direct);
    println!("{:<44} {:>10.2?}", "host-call overhead", per_call.saturating_sub(direct));
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

/// The mean time of one `get` made directly through `services`, over `count` of them.
async fn direct_gets(services: &dyn Services, count: u32) -> Duration {
    let config = ConfigClient(services);
    for _ in 0..1_000 {
        config.get("bench", "bench", "key").await.unwrap();
    }
    let start = Instant::now();
    for _ in 0..count {
        config.get("bench", "bench", "key").await.unwrap();
    }
    start.elapsed() / count
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
