//! Broker figures, printed: the round trip of a config `get` through the runtime's own client
//! on each broker, and the broker round trips and time of a steady wake for 10 and 1,000
//! initialisers.
//!
//! `cargo bench -p bootstrap-wasm --bench brokers` (needs `.ci/setup`: pulsar-lite, RabbitMQ).
//! The brokers and the peer serving config-svc and flow-svc are the tests' (`tests/support`).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::rabbitmq::RabbitTransport;
use bootstrap_wasm::broker::{BrokerServices, Transport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::{ConfigClient, Protocol, Services};
use bootstrap_wasm::{Cadence, InitFile, Initialiser, Reconciler, Sandbox};
use serde_json::json;
use support::peer::{Behaviour, ServicePeer};

const ROUND_TRIPS: usize = 300;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pulsar = support::pulsar::PulsarLite::start();
    let vhost = support::rabbitmq::TestVhost::create();
    let pulsar_transport = || -> Arc<dyn Transport> { Arc::new(PulsarTransport::new(pulsar.direct_options())) };

    println!("config get round trip through the runtime's client ({ROUND_TRIPS} requests after warm-up)");
    println!("{:<34} {:>10} {:>10}", "broker", "median", "p99");
    let cases: [(&str, Arc<dyn Transport>); 2] =
        [("pulsar (pulsar-lite)", pulsar_transport()), ("rabbitmq", Arc::new(RabbitTransport::new(vhost.options())))];
    for (name, transport) in cases {
        let scratch = support::Scratch::new();
        let store = EmbeddedServices::open(&scratch.state()).unwrap().speaking(Protocol::Legacy);
        store.store().put_many("default", [("prompt", "system", "\"hello\"")]).unwrap();
        let _peer = ServicePeer::start(transport.clone(), store, Behaviour::default()).await;
        let services = BrokerServices::new(transport, Duration::from_secs(10));
        let mut times = round_trips(&services, ROUND_TRIPS).await;
        times.sort();
        println!("{name:<34} {:>10.3?} {:>10.3?}", times[times.len() / 2], times[times.len() * 99 / 100]);
    }

    println!();
    println!("steady wake over Pulsar (every initialiser already at its flag)");
    println!("{:>14} {:>16} {:>12}", "initialisers", "broker requests", "wake time");
    for count in [10, 1000] {
        let (requests, time) = steady_wake(pulsar_transport(), count).await;
        println!("{count:>14} {requests:>16} {time:>12.3?}");
    }
}

async fn round_trips(services: &dyn Services, count: usize) -> Vec<Duration> {
    let config = ConfigClient(services);
    for _ in 0..20 {
        config.get("default", "prompt", "system").await.unwrap();
    }
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let value = config.get("default", "prompt", "system").await.unwrap();
        times.push(start.elapsed());
        assert_eq!(value.as_deref(), Some("\"hello\""));
    }
    times
}

/// Converge `count` probes, then count the requests and time of one more wake.
async fn steady_wake(transport: Arc<dyn Transport>, count: usize) -> (usize, Duration) {
    let scratch = support::Scratch::new();
    let store = EmbeddedServices::open(&scratch.state()).unwrap().speaking(Protocol::Legacy);
    let peer = ServicePeer::start(transport.clone(), store, Behaviour::default()).await;
    let entries: Vec<_> = (0..count)
        .map(|i| {
            let mut probe = support::entry(&format!("probe-{i}"), "probe", json!({"workspace": "probed"}));
            probe["grants"] = json!({"config": {"write": ["probed"]}});
            probe
        })
        .collect();
    let file = InitFile::load(&scratch.init_file(&entries)).unwrap();
    let initialisers = Initialiser::prepare_all(&file, &Sandbox::new().unwrap()).await.unwrap();
    let services: Arc<dyn Services> = Arc::new(BrokerServices::new(transport, Duration::from_secs(30)));
    let mut reconciler = Reconciler::new(initialisers, services, Cadence::default());
    assert!(reconciler.wake().await.converged());

    let before = peer.request_count();
    let start = Instant::now();
    let report = reconciler.wake().await;
    let time = start.elapsed();
    assert!(report.converged());
    (peer.request_count() - before, time)
}
