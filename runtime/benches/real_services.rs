//! Figures against TrustGraph's own services, printed: what a deployment sees.
//!
//! `cargo bench -p bootstrap-wasm --bench real_services` (after `.ci/setup`). For TrustGraph
//! 2.4.4 (the legacy protocol) and 2.11.1 (the workspace protocol), and for N = 10, 100 and
//! 1,000 tenants (one TemplateSeed, then a WorkspaceInit and a DefaultFlowStart per tenant:
//! 1 + 2N initialisers), each bootstrapper converges a fresh deployment: that version's own
//! config-svc and flow-svc (and in 2.11.1 no-auth-svc as IAM), upstream's processes with
//! config-svc's table in memory instead of Cassandra (`tests/support/trustgraph_services.py`),
//! on pulsar-lite and on Apache Kafka (4.4, one KRaft node: `tests/support/kafka.rs`), a fresh
//! broker for every deployment. On Kafka the services use their own Kafka clients (2.4.4's
//! confluent-kafka, 2.11.1's aiokafka), as do upstream's bootstrappers. Rows:
//! - `bootstrap-wasm`: the release binary as a daemon, with its default cadence, its protocol
//!   detected, and a warm compile cache; its run ends at its first converged wake. Then one
//!   steady `--once` on the converged deployment, as a whole process.
//! - `upstream`: the same version's own Python bootstrapper on the same init file; its run ends
//!   when it has logged the last initialiser's completion.
//!
//! Each row gives the bootstrapper's wall time, CPU and peak memory, and the CPU the services
//! spent meanwhile: they are the other side of every request, and what a deployment waits for.
//!
//! Name parts to run only those: `cargo bench --bench real_services -- pulsar kafka 2.4.4 2.11.1
//! 10 100 1000` (a broker, a version, a number of tenants); a kind of part left unnamed runs
//! all of its kind, both brokers included.
//!
//! See docs/performance.md, "Against TrustGraph's services".

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::kafka::Kafka;
use support::pulsar::PulsarLite;
use support::running::Running;
use support::trustgraph::{TrustGraph, Version};
use support::{Scratch, Usage, tenants};

const TENANTS: [usize; 3] = [10, 100, 1000];

const BROKERS: [&str; 2] = ["pulsar", "kafka"];

/// The longest a converging run may take before the bench gives up.
const DEADLINE: Duration = Duration::from_secs(1200);

fn main() {
    if support::is_measuring_parent() {
        support::peak_rss_parent();
        return;
    }
    // cargo passes `--bench`; every other argument names a part to run.
    let parts: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    let (brokers, parts): (Vec<&String>, Vec<&String>) =
        parts.iter().partition(|part| BROKERS.contains(&part.as_str()));
    let (versions, sizes): (Vec<&String>, Vec<&String>) = parts.into_iter().partition(|part| part.contains('.'));
    let wanted_broker = |broker: &str| brokers.is_empty() || brokers.iter().any(|b| *b == broker);
    let wanted = |version: Version| versions.is_empty() || versions.iter().any(|v| *v == version.number());
    let wanted_n = |n: usize| sizes.is_empty() || sizes.iter().any(|s| **s == n.to_string());
    let cache = tempfile::tempdir().unwrap();

    println!("converging a fresh deployment of TrustGraph's own services, 1 + 2N initialisers");
    println!("(whole processes; services: their CPU over the bootstrapper's run, config-svc's table in memory)");
    println!(
        "{:<7} {:<8} {:<15} {:>5} | {:>8} {:>8} {:>7} | {:>8} {:>8} {:>8} {:>8}",
        "broker", "version", "bootstrapper", "N", "wall", "cpu", "peak", "config", "flow", "iam", "services"
    );
    for broker in BROKERS.into_iter().filter(|b| wanted_broker(b)) {
        for version in [Version::V2_4_4, Version::V2_11_1].into_iter().filter(|v| wanted(*v)) {
            for tenants in TENANTS.into_iter().filter(|n| wanted_n(*n)) {
                let scratch = Scratch::new();
                let init = scratch.init_file(&tenants::entries(tenants));
                tenants::warm_compile_cache(&init, cache.path());
                let row = |label: &str, (usage, services): (Usage, Vec<(&str, Duration)>)| {
                    print_row(broker, version, label, tenants, usage, &services);
                };

                let deployment = Deployment::start(broker, version);
                row("bootstrap-wasm", deployment.measure(|| deployment.converge_bootstrap_wasm(&init, cache.path())));
                row("  steady --once", deployment.measure(|| deployment.steady_once(&init, cache.path())));
                drop(deployment);

                let deployment = Deployment::start(broker, version);
                row("upstream", deployment.measure(|| deployment.converge_upstream(&init, tenants)));
            }
        }
    }
}

/// The broker a deployment runs on, fresh for it.
enum Broker {
    Pulsar(PulsarLite),
    Kafka(Kafka),
}

impl Broker {
    fn start(name: &str) -> Self {
        match name {
            "pulsar" => Self::Pulsar(PulsarLite::start()),
            _ => Self::Kafka(Kafka::start()),
        }
    }

    /// `--pubsub-backend ...` naming the broker, as both bootstrappers and the services take
    /// them.
    fn args(&self) -> Vec<String> {
        match self {
            Self::Pulsar(pulsar) => ["--pubsub-backend", "pulsar", "-p", &pulsar.direct_url()].map(String::from).into(),
            Self::Kafka(kafka) => {
                ["--pubsub-backend", "kafka", "--kafka-bootstrap-servers", &kafka.bootstrap_servers()]
                    .map(String::from)
                    .into()
            }
        }
    }
}

/// A fresh broker with one version's services on it.
struct Deployment {
    // Dropped first: the services stop before their broker.
    trustgraph: TrustGraph,
    broker: Broker,
}

impl Deployment {
    fn start(broker: &str, version: Version) -> Self {
        let broker = Broker::start(broker);
        let trustgraph = TrustGraph::start(version, &broker.args());
        Self { trustgraph, broker }
    }

    /// `run`'s usage, and each service's CPU meanwhile.
    fn measure(&self, run: impl FnOnce() -> Usage) -> (Usage, Vec<(&'static str, Duration)>) {
        let before = self.trustgraph.cpu();
        let usage = run();
        let after = self.trustgraph.cpu();
        let spent = after.iter().zip(&before).map(|((name, after), (_, before))| (*name, *after - *before)).collect();
        (usage, spent)
    }

    /// The daemon, until its first converged wake.
    fn converge_bootstrap_wasm(&self, init: &Path, cache: &Path) -> Usage {
        let mut command = support::bin();
        command.arg("-c").arg(init).args(self.broker.args()).arg("--compile-cache").arg(cache);
        let started = Instant::now();
        let mut daemon = Running::spawn(&mut command);
        daemon.wait_for_nth_within("converged=true", 1, DEADLINE);
        let usage = usage_at(&daemon, started);
        // Stopped as an orchestrator stops it, which lets the lease go for the steady run.
        daemon.signal(libc::SIGTERM);
        assert!(daemon.wait_exit().success(), "the daemon did not stop cleanly");
        usage
    }

    /// One steady `--once` on the converged deployment.
    fn steady_once(&self, init: &Path, cache: &Path) -> Usage {
        let mut command = support::bin();
        command.arg("-c").arg(init).arg("--once").args(self.broker.args()).arg("--compile-cache").arg(cache);
        let (output, usage) = support::output_and_usage(&command);
        let log = support::stderr(&output);
        assert!(output.status.success() && log.contains("converged=true"), "not converged:\n{log}");
        assert!(!log.contains("running (old_flag"), "the steady run ran something:\n{log}");
        usage
    }

    /// The version's own bootstrapper, until it has completed every initialiser.
    fn converge_upstream(&self, init: &Path, tenants: usize) -> Usage {
        let started = Instant::now();
        let mut upstream = self.trustgraph.bootstrapper(init);
        upstream.wait_for_nth_within("Completed (flag=", 1 + 2 * tenants, DEADLINE);
        usage_at(&upstream, started)
    }
}

/// What a still-running process has cost since `started`.
fn usage_at(running: &Running, started: Instant) -> Usage {
    let pid = running.child.id();
    Usage { wall: started.elapsed(), cpu: support::cpu_of(pid), peak_rss_kib: support::peak_rss_kib_of(pid) }
}

fn print_row(
    broker: &str,
    version: Version,
    bootstrapper: &str,
    tenants: usize,
    usage: Usage,
    services: &[(&str, Duration)],
) {
    let seconds = |d: Duration| format!("{:>7.2}s", d.as_secs_f64());
    let service = |name: &str| {
        services
            .iter()
            .find(|(service, _)| *service == name)
            .map_or_else(|| format!("{:>8}", "-"), |(_, d)| seconds(*d))
    };
    let total: Duration = services.iter().map(|(_, d)| *d).sum();
    println!(
        "{broker:<7} {:<8} {bootstrapper:<15} {tenants:>5} | {} {} {:>3} MiB | {} {} {} {}",
        version.number(),
        seconds(usage.wall),
        seconds(usage.cpu),
        usage.peak_rss_kib / 1024,
        service("config-svc"),
        service("flow-svc"),
        service("no-auth-svc"),
        seconds(total)
    );
}
