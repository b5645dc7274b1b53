//! End-to-end tests on real brokers: bootstrap-wasm against config-svc and flow-svc served
//! over Pulsar (pulsar-lite) and RabbitMQ (the machine's server) by a test peer with
//! TrustGraph's semantics (`support::peer`). Every scenario runs on both brokers.

mod support;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::rabbitmq::{RabbitOptions, RabbitTransport};
use bootstrap_wasm::broker::{BrokerServices, Transport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::Services;
use bootstrap_wasm::{Cadence, InitFile, Initialiser, Outcome, Reconciler, Sandbox};
use serde_json::{Value, json};
use support::peer::{Behaviour, ServicePeer};
use support::pulsar::PulsarLite;
use support::rabbitmq::{Relay, TestVhost};
use support::{Scratch, bin, entry, logged, stderr, stored_flags};

/// A broker for one test, and how to make it go away and come back.
enum Broker {
    Pulsar(PulsarLite),
    RabbitMq { vhost: TestVhost, relay: Relay },
}

impl Broker {
    fn pulsar() -> Self {
        Broker::Pulsar(PulsarLite::start())
    }

    fn rabbitmq() -> Self {
        Broker::RabbitMq { vhost: TestVhost::create(), relay: Relay::start() }
    }

    fn rabbitmq_options(vhost: &TestVhost, relay: &Relay) -> RabbitOptions {
        vhost.options_via(relay)
    }

    /// A new connection to the broker.
    fn transport(&self) -> Arc<dyn Transport> {
        match self {
            Broker::Pulsar(broker) => Arc::new(PulsarTransport::new(broker.options())),
            Broker::RabbitMq { vhost, relay } => Arc::new(RabbitTransport::new(Self::rabbitmq_options(vhost, relay))),
        }
    }

    /// The services through the broker, as the runtime uses them.
    fn services(&self, timeout: Duration) -> Arc<dyn Services> {
        Arc::new(BrokerServices::new(self.transport(), timeout))
    }

    /// The binary's backend arguments for this broker.
    fn args(&self) -> Vec<String> {
        match self {
            Broker::Pulsar(broker) => vec!["--pubsub-backend".into(), "pulsar".into(), "-p".into(), broker.url()],
            Broker::RabbitMq { vhost, relay } => support::rabbitmq::backend_args(Self::rabbitmq_options(vhost, relay)),
        }
    }

    /// The broker stops (Pulsar: the process is killed) or becomes unreachable (RabbitMQ: its
    /// connections are cut; the machine's server is shared by other tests).
    fn go_away(&mut self) {
        match self {
            Broker::Pulsar(broker) => broker.stop(),
            Broker::RabbitMq { relay, .. } => relay.cut(),
        }
    }

    fn come_back(&mut self) {
        match self {
            Broker::Pulsar(broker) => broker.restart(),
            Broker::RabbitMq { relay, .. } => relay.restore(),
        }
    }
}

/// A peer serving a fresh store in `scratch` over `broker`.
async fn peer(broker: &Broker, scratch: &Scratch, behaviour: Behaviour) -> (ServicePeer, EmbeddedServices) {
    let store = EmbeddedServices::open(&scratch.path("peer.redb")).unwrap();
    (ServicePeer::start(broker.transport(), store.clone(), behaviour).await, store)
}

/// `bootstrap-wasm -c init --once` on `broker`, run off the async executor.
async fn run_once(broker: &Broker, init: &Path, extra: &[&str]) -> Output {
    let mut command = bin();
    command.arg("-c").arg(init).arg("--once").args(broker.args()).args(extra);
    tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap()
}

fn examples_init() -> std::path::PathBuf {
    support::repo().join("examples/init.yaml")
}

fn probe(name: &str) -> Value {
    let mut probe = entry(name, "probe", json!({"workspace": "probed"}));
    probe["grants"] = json!({"config": {"write": ["probed"]}});
    probe
}

async fn reconciler(init: &Path, services: Arc<dyn Services>) -> Reconciler {
    let file = InitFile::load(init).unwrap();
    let initialisers = Initialiser::prepare_all(&file, &Sandbox::new().unwrap()).await.unwrap();
    Reconciler::new(initialisers, services, Cadence::default())
}

async fn converges_and_then_only_skips(broker: Broker) {
    let scratch = Scratch::new();
    let (_peer, store) = peer(&broker, &scratch, Behaviour::default()).await;

    let first = run_once(&broker, &examples_init(), &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let dump = store.dump(None).unwrap();
    assert!(dump["default"]["flow"]["default"].is_string(), "no flow started: {dump}");
    assert_eq!(stored_flags(&dump).as_object().unwrap().len(), 3);

    let second = run_once(&broker, &examples_init(), &[]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(!stderr(&second).contains("running"), "{}", stderr(&second));
    assert_eq!(store.dump(None).unwrap(), dump);
}

async fn reads_upstream_state_as_converged(broker: Broker) {
    let scratch = Scratch::new();
    let (_peer, store) = peer(&broker, &scratch, Behaviour::default()).await;
    let flags = [
        ("init-state", "template-seed", "\"v1\""),
        ("init-state", "workspace-init", "\"v1\""),
        ("init-state", "default-flow-start", "\"v1\""),
    ];
    store.store().put_many("__system__", flags).unwrap();

    let output = run_once(&broker, &examples_init(), &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(!stderr(&output).contains("running"), "{}", stderr(&output));
    assert!(store.dump(Some("__template__")).unwrap().as_object().unwrap().is_empty());
}

async fn without_services_the_gate_stays_closed(broker: Broker) {
    // The broker is up, but nobody serves config-svc.
    let scratch = Scratch::new();
    let mut loop_ =
        reconciler(&scratch.init_file(&[probe("probe")]), broker.services(Duration::from_millis(500))).await;
    let report = loop_.wake().await;
    assert!(!report.gate_open);
    assert_eq!(report.outcomes[0].1, Outcome::Waiting);
    assert_eq!(report.next_sleep(&Cadence::default()), Cadence::default().gate_backoff);

    let output = run_once(&broker, &scratch.init_file(&[probe("probe")]), &["--request-timeout", "500ms"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("gate closed"), "{}", stderr(&output));
}

async fn survives_the_broker_going_away_mid_cycle(mut broker: Broker) {
    let scratch = Scratch::new();
    // A slow peer, so that the broker goes away while the wake is under way.
    let (_peer, store) =
        peer(&broker, &scratch, Behaviour { delay: Duration::from_millis(100), ..Default::default() }).await;
    let names: Vec<String> = (0..6).map(|i| format!("probe-{i}")).collect();
    let entries: Vec<Value> = names.iter().map(|name| probe(name)).collect();
    let mut loop_ = reconciler(&scratch.init_file(&entries), broker.services(Duration::from_secs(2))).await;

    let wake = tokio::spawn(async move {
        let report = loop_.wake().await;
        (loop_, report)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    broker.go_away();
    let (mut loop_, interrupted) = wake.await.unwrap();
    assert!(!interrupted.converged(), "the wake finished before the broker went away: {interrupted:?}");

    broker.come_back();
    let mut converged = false;
    for _ in 0..20 {
        if loop_.wake().await.converged() {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(converged, "never converged after the broker came back");
    let dump = store.dump(None).unwrap();
    for name in &names {
        assert_eq!(stored_flags(&dump)[name], "\"v1\"");
    }
    assert_eq!(dump["probed"]["probe-runs"]["v1"], r#"{"new":"v1","old":null}"#);
}

async fn no_flag_is_stored_for_work_that_did_not_finish(broker: Broker) {
    // Answers to config writes come too late: the probe's write times out inside the guest.
    let scratch = Scratch::new();
    let (_peer, store) =
        peer(&broker, &scratch, Behaviour { put_delay: Duration::from_millis(1500), ..Default::default() }).await;
    let init = scratch.init_file(&[probe("slow")]);
    let output = run_once(&broker, &init, &["--request-timeout", "500ms"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(logged(&log, "slow", &["failed", "timed out"]), "the guest did not see a timeout:\n{log}");
    // Give the late answers time to land, then check nothing claims the probe is done.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stored_flags(&store.dump(None).unwrap()), Value::Null);
}

async fn ignores_other_clients_answers_and_malformed_json(broker: Broker) {
    let scratch = Scratch::new();
    let (_peer, store) = peer(&broker, &scratch, Behaviour { noisy: true, ..Default::default() }).await;
    let output = run_once(&broker, &examples_init(), &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("not JSON"), "the malformed answers were not logged:\n{}", stderr(&output));
    assert_eq!(stored_flags(&store.dump(None).unwrap()).as_object().unwrap().len(), 3);
}

async fn status_shows_configured_and_stored_flags(broker: Broker) {
    let scratch = Scratch::new();
    let (_peer, store) = peer(&broker, &scratch, Behaviour::default()).await;
    store
        .store()
        .put_many("__system__", [("init-state", "template-seed", "\"v1\""), ("init-state", "workspace-init", "\"v0\"")])
        .unwrap();
    let mut command = bin();
    command.arg("status").arg("-c").arg(examples_init()).args(broker.args());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<Vec<&str>> = table.lines().skip(1).map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [
            vec!["template-seed", "\"v1\"", "\"v1\"", "done"],
            vec!["workspace-init", "\"v1\"", "\"v0\"", "pending"],
            vec!["default-flow-start", "\"v1\"", "-", "pending"],
        ],
        "{table}"
    );
}

/// Every scenario, on one broker.
macro_rules! on_broker {
    ($broker:ident) => {
        mod $broker {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn converges_and_then_only_skips() {
                super::converges_and_then_only_skips(Broker::$broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reads_upstream_state_as_converged() {
                super::reads_upstream_state_as_converged(Broker::$broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn without_services_the_gate_stays_closed() {
                super::without_services_the_gate_stays_closed(Broker::$broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn survives_the_broker_going_away_mid_cycle() {
                super::survives_the_broker_going_away_mid_cycle(Broker::$broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_flag_is_stored_for_work_that_did_not_finish() {
                super::no_flag_is_stored_for_work_that_did_not_finish(Broker::$broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ignores_other_clients_answers_and_malformed_json() {
                super::ignores_other_clients_answers_and_malformed_json(Broker::$broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn status_shows_configured_and_stored_flags() {
                super::status_shows_configured_and_stored_flags(Broker::$broker()).await;
            }
        }
    };
}

on_broker!(pulsar);
on_broker!(rabbitmq);
