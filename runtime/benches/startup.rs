//! Start-up figures, printed, from the release binary: the core initialisers of
//! `examples/init.yaml` (TemplateSeed, WorkspaceInit, DefaultFlowStart) converged with `--once`,
//! from spawn to exit, on the embedded backend, on Pulsar, on RabbitMQ and on Kafka, each with an
//! empty compile cache and a warm one: wall time, CPU (user + sys) and peak RSS, medians. Then
//! upstream's Python bootstrapper on the same brokers, and the load time of each builtin
//! component: compiled with Cranelift, deserialized from the artefact the build precompiled
//! into the binary, or deserialized from the compile cache.
//!
//! `cargo bench -p bootstrap-wasm --bench startup` (needs `.ci/setup`: pulsar-lite, RabbitMQ,
//! Kafka's jars). On the brokers, the tests' `ServicePeer` serves config-svc and flow-svc from a
//! fresh embedded store for every run.
//!
//! On Kafka each run takes the lease its predecessor released as it stopped (docs/design.md,
//! "One active replica"); a run whose predecessor could not release it would wait a lease
//! window (a quarter of `--gate-backoff`: 1.25 s by default). The `kafka` rows run with the
//! defaults, as a deployment does; the `kafka 1s` rows pass `--gate-backoff 1s` (a 250 ms
//! window).
//!
//! Name backends to run only their rows: `cargo bench --bench startup -- embedded kafka`.
//! See docs/performance.md, "Start-up".

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::Sandbox;
use bootstrap_wasm::broker::Transport;
use bootstrap_wasm::broker::kafka::{KafkaOptions, KafkaTransport};
use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::rabbitmq::RabbitTransport;
use bootstrap_wasm::builtins::Builtin;
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::sandbox::SandboxOptions;
use bootstrap_wasm::services::Protocol;
use support::kafka::Kafka;
use support::peer::{Behaviour, ServicePeer};
use support::upstream::Upstream;

/// Runs per figure; the median is printed.
const RUNS: usize = 5;

/// The brokers the bench runs on (see [`Brokers::args`]).
const BACKENDS: [&str; 5] = ["embedded", "pulsar", "rabbitmq", "kafka", "kafka 1s"];

fn main() {
    // Started again as the middleman of one measured run (see `measured`)?
    if support::is_measuring_parent() {
        return support::peak_rss_parent();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let brokers = Brokers {
        pulsar: support::pulsar::PulsarLite::start(),
        vhost: support::rabbitmq::TestVhost::create(),
        kafka: Kafka::start(),
    };
    let init = support::repo().join("examples/init.yaml");

    println!("converge examples/init.yaml (3 core initialisers) with --once, release binary");
    println!("median of {RUNS} runs; CPU = user + sys; peak RSS from wait4");
    println!("{:<10} {:<12} {:>9} {:>9} {:>10}", "backend", "cache", "wall", "CPU", "peak RSS");
    for backend in BACKENDS.into_iter().filter(|backend| wanted(backend)) {
        let warm = tempfile::tempdir().unwrap();
        for cache in ["empty", "warm"] {
            let mut figures = Vec::new();
            // One run before the warm figures fills the cache they load from.
            let runs = if cache == "warm" { RUNS + 1 } else { RUNS };
            for run in 0..runs {
                let empty = tempfile::tempdir().unwrap();
                let cache_dir = if cache == "warm" { warm.path() } else { empty.path() };
                let scratch = support::Scratch::new();
                let mut command = support::bin();
                command.arg("-c").arg(&init).arg("--once").arg("--compile-cache").arg(cache_dir);
                if backend == "embedded" {
                    command.args(["--pubsub-backend", "embedded", "--state"]).arg(scratch.state());
                } else {
                    command.args(brokers.args(backend));
                }
                if backend == "kafka 1s" {
                    command.args(["--gate-backoff", "1s"]);
                }
                let _peer = if backend == "embedded" {
                    None
                } else {
                    let store = EmbeddedServices::open(&scratch.state()).unwrap().speaking(Protocol::Legacy);
                    Some(ServicePeer::start(brokers.peer_transport(backend), store, Behaviour::default()).await)
                };
                let result = tokio::task::spawn_blocking(move || measured(&command)).await.unwrap();
                if cache == "warm" && run == 0 {
                    continue;
                }
                figures.push(result);
            }
            print_medians(backend, cache, &figures);
        }
    }
    println!("Python bootstrapper (issue 6): pulsar 430 ms wall, 250 ms CPU, 54 MB; rabbitmq 560 ms, 260 ms, 38 MB");
    upstream_startup(&init, &brokers).await;

    println!();
    println!("load time per builtin (Sandbox::load), median of {RUNS}");
    println!(
        "{:<20} {:>12} {:>14} {:>8} {:>14} {:>8}",
        "component", "compile", "precompiled", "ratio", "from cache", "ratio"
    );
    let cache = tempfile::tempdir().unwrap();
    let compiling = SandboxOptions { use_precompiled: false, ..Default::default() };
    let compiling = Sandbox::with_options(compiling).unwrap();
    let precompiled = Sandbox::new().unwrap();
    let cached = Sandbox::new().unwrap().with_compile_cache(cache.path().to_path_buf());
    for builtin in Builtin::ALL {
        let code = builtin.code();
        cached.load_code(code).unwrap();
        let compile = support::median((0..RUNS).map(|_| timed(|| compiling.load_code(code).unwrap())));
        let embedded = support::median((0..RUNS).map(|_| timed(|| precompiled.load_code(code).unwrap())));
        let load = support::median((0..RUNS).map(|_| timed(|| cached.load_code(code).unwrap())));
        let ratio = |faster: Duration| compile.as_secs_f64() / faster.as_secs_f64();
        println!(
            "{:<20} {:>12.2?} {:>14.2?} {:>7.0}x {:>14.2?} {:>7.0}x",
            builtin.name(),
            compile,
            embedded,
            ratio(embedded),
            load,
            ratio(load)
        );
    }
}

/// Upstream's Python bootstrapper on the same init file, broker and peer: from spawn to its last
/// answered request. On Pulsar and RabbitMQ, as `runtime/benches/install-upstream` installs it;
/// on Kafka (whose client, confluent-kafka, that leaves out), as `.ci/setup` installs it for
/// TrustGraph 2.4.4's services. The same trustgraph-flow 2.4.4 either way.
async fn upstream_startup(init: &Path, brokers: &Brokers) {
    println!("upstream's Python bootstrapper (trustgraph-flow 2.4.4), same machine, broker and peer:");
    let installed = Upstream::find();
    if installed.is_none() {
        println!("(not installed for pulsar and rabbitmq: runtime/benches/install-upstream)");
    }
    let on_kafka = Upstream::find_in(".venv-trustgraph-2.4.4");
    if on_kafka.is_none() {
        println!("(not installed for kafka: .venv-trustgraph-2.4.4, run .ci/setup)");
    }
    for backend in ["pulsar", "rabbitmq", "kafka"].into_iter().filter(|backend| wanted(backend)) {
        let Some(upstream) = (if backend == "kafka" { &on_kafka } else { &installed }) else { continue };
        let mut figures = Vec::new();
        for _ in 0..RUNS {
            let scratch = support::Scratch::new();
            let args = brokers.args(backend);
            let store = EmbeddedServices::open(&scratch.state()).unwrap().speaking(Protocol::Legacy);
            let peer = ServicePeer::start(brokers.peer_transport(backend), store, Behaviour::default()).await;
            let run = tokio::task::block_in_place(|| upstream.run(init, &args, &peer));
            assert_eq!(run.completed, 3, "upstream did not converge on {backend}: {run:?}");
            figures.push(run.usage);
        }
        print_medians(backend, "upstream", &figures);
    }
}

/// Whether `backend`'s rows run: all, unless the bench's arguments name backends (`kafka` names
/// both Kafka rows).
fn wanted(backend: &str) -> bool {
    let named: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    let name = backend.split(' ').next().unwrap_or(backend);
    named.is_empty() || named.iter().any(|named| named == name)
}

/// The brokers, one of each for the whole bench.
struct Brokers {
    pulsar: support::pulsar::PulsarLite,
    vhost: support::rabbitmq::TestVhost,
    kafka: Kafka,
}

impl Brokers {
    /// The arguments naming `backend`'s broker, as both bootstrappers take them.
    fn args(&self, backend: &str) -> Vec<String> {
        let args: Vec<String> = match backend {
            "pulsar" => vec!["--pubsub-backend".into(), "pulsar".into(), "-p".into(), self.pulsar.direct_url()],
            "rabbitmq" => support::rabbitmq::backend_args(self.vhost.options()),
            _ => vec![
                "--pubsub-backend".into(),
                "kafka".into(),
                "--kafka-bootstrap-servers".into(),
                self.kafka.bootstrap_servers(),
            ],
        };
        args
    }

    /// The transport the peer serves `backend` on.
    fn peer_transport(&self, backend: &str) -> Arc<dyn Transport> {
        match backend {
            "pulsar" => Arc::new(PulsarTransport::new(self.pulsar.direct_options())),
            "rabbitmq" => Arc::new(RabbitTransport::new(self.vhost.options())),
            _ => Arc::new(KafkaTransport::new(
                KafkaOptions::plaintext(self.kafka.bootstrap_servers()),
                Duration::from_secs(10),
            )),
        }
    }
}

/// One row: the median wall time, CPU and peak RSS of `figures`.
fn print_medians(backend: &str, label: &str, figures: &[support::Usage]) {
    let wall = support::median(figures.iter().map(|f| f.wall));
    let cpu = support::median(figures.iter().map(|f| f.cpu));
    let rss = support::median(figures.iter().map(|f| f.peak_rss_kib));
    println!("{backend:<10} {label:<12} {:>7.0?}ms {:>7.0?}ms {:>6} MiB", ms(wall), ms(cpu), rss / 1024);
}

fn timed<T>(f: impl FnOnce() -> T) -> Duration {
    let start = Instant::now();
    drop(f());
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Run `command` to completion (it must converge: exit 0) and measure it. The binary is started
/// by a small middleman (this bench, started again): Linux counts in a process's peak RSS the
/// memory of its parent at `exec`, and this process holds brokers' clients and compilers.
fn measured(command: &Command) -> support::Usage {
    let (output, usage) = support::output_and_usage(command);
    assert!(output.status.success(), "bootstrap-wasm did not converge: {}", support::stderr(&output));
    usage
}
