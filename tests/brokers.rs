//! End-to-end tests on real brokers: bootstrap-wasm against config-svc and flow-svc (and, in
//! the workspace protocol, IAM) served over Pulsar (pulsar-lite), RabbitMQ (the machine's
//! server) and Kafka (Apache Kafka 4.4, a node of its own per test) by a test peer with
//! TrustGraph's semantics (`support::peer`). Every scenario runs on every broker, in both
//! protocols: `legacy` (TrustGraph 2.4.4) and `workspaces` (2.11.1).

mod support;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use bootstrap_wasm::broker::kafka::{KafkaOptions, KafkaTransport};
use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::rabbitmq::{RabbitOptions, RabbitTransport};
use bootstrap_wasm::broker::{BrokerServices, Transport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::wire::{
    IamOperation, IamRequest, REGISTERED_WORKSPACE, WORKSPACE_REGISTRY, WorkspaceInput,
};
use bootstrap_wasm::services::{FlowClient, Protocol, Services};
use bootstrap_wasm::{Cadence, InitFile, Initialiser, Outcome, Reconciler, Sandbox};
use serde_json::{Value, json};
use support::kafka::Kafka;
use support::peer::{Behaviour, ServicePeer};
use support::pulsar::PulsarLite;
use support::rabbitmq::{Relay, TestVhost};
use support::{Scratch, bin, entry, logged, stderr, stored_flags};

/// A broker for one test, the protocol its services speak, and how to make the broker go away
/// and come back.
struct Broker {
    kind: BrokerKind,
    protocol: Protocol,
}

enum BrokerKind {
    Pulsar(PulsarLite),
    RabbitMq { vhost: TestVhost, relay: Relay },
    Kafka(Kafka),
}

impl Broker {
    fn pulsar(protocol: Protocol) -> Self {
        Broker { kind: BrokerKind::Pulsar(PulsarLite::start()), protocol }
    }

    fn rabbitmq(protocol: Protocol) -> Self {
        Broker { kind: BrokerKind::RabbitMq { vhost: TestVhost::create(), relay: Relay::start() }, protocol }
    }

    fn kafka(protocol: Protocol) -> Self {
        Broker { kind: BrokerKind::Kafka(Kafka::start()), protocol }
    }

    fn rabbitmq_options(vhost: &TestVhost, relay: &Relay) -> RabbitOptions {
        vhost.options_via(relay)
    }

    /// A new connection to the broker.
    fn transport(&self) -> Arc<dyn Transport> {
        match &self.kind {
            BrokerKind::Pulsar(broker) => Arc::new(PulsarTransport::new(broker.options())),
            BrokerKind::RabbitMq { vhost, relay } => {
                Arc::new(RabbitTransport::new(Self::rabbitmq_options(vhost, relay)))
            }
            BrokerKind::Kafka(broker) => Arc::new(KafkaTransport::new(
                KafkaOptions::plaintext(broker.bootstrap_servers()),
                Duration::from_secs(5),
            )),
        }
    }

    /// The services through the broker, as the runtime uses them.
    fn services(&self, timeout: Duration) -> Arc<dyn Services> {
        Arc::new(BrokerServices::speaking(self.protocol, self.transport(), timeout))
    }

    /// The binary's arguments for this broker and protocol.
    fn args(&self) -> Vec<String> {
        let mut args = self.broker_args();
        args.extend(["--protocol".into(), self.protocol.name().into()]);
        args
    }

    /// The broker's arguments alone: the binary detects the protocol.
    fn broker_args(&self) -> Vec<String> {
        match &self.kind {
            BrokerKind::Pulsar(broker) => vec!["--pubsub-backend".into(), "pulsar".into(), "-p".into(), broker.url()],
            BrokerKind::RabbitMq { vhost, relay } => {
                support::rabbitmq::backend_args(Self::rabbitmq_options(vhost, relay))
            }
            BrokerKind::Kafka(broker) => {
                vec![
                    "--pubsub-backend".into(),
                    "kafka".into(),
                    "--kafka-bootstrap-servers".into(),
                    broker.bootstrap_servers(),
                ]
            }
        }
    }

    /// The broker stops (Pulsar, Kafka: the process is killed) or becomes unreachable
    /// (RabbitMQ: its connections are cut; the machine's server is shared by other tests).
    fn go_away(&mut self) {
        match &mut self.kind {
            BrokerKind::Pulsar(broker) => broker.stop(),
            BrokerKind::RabbitMq { relay, .. } => relay.cut(),
            BrokerKind::Kafka(broker) => broker.stop(),
        }
    }

    fn come_back(&mut self) {
        match &mut self.kind {
            BrokerKind::Pulsar(broker) => broker.restart(),
            BrokerKind::RabbitMq { relay, .. } => relay.restore(),
            BrokerKind::Kafka(broker) => broker.restart(),
        }
    }

    /// A request timeout that the services' prompt answers meet and a delayed one does not:
    /// half a second, or two on Kafka, whose first request on a queue creates its topics and
    /// looks up their leaders, several round trips that can take over half a second on a
    /// loaded two-core test machine.
    fn short_request_timeout(&self) -> Duration {
        match self.kind {
            BrokerKind::Kafka(_) => Duration::from_secs(2),
            _ => Duration::from_millis(500),
        }
    }

    /// In the workspace protocol, register `workspace` with the peer's IAM, as WorkspaceInit
    /// does before DefaultFlowStart uses the workspace's flow queue; nothing in the legacy one.
    async fn register(&self, workspace: &str) {
        if self.protocol == Protocol::Legacy {
            return;
        }
        let record = WorkspaceInput { id: workspace.into(), name: workspace.into(), enabled: true };
        let request =
            IamRequest { operation: IamOperation::CreateWorkspace.as_str().into(), workspace_record: Some(record) };
        let services = self.services(Duration::from_secs(10));
        let answer = services.iam(request).await.unwrap();
        assert_eq!(answer.error, None);
        services.close().await;
    }
}

/// A peer serving the store `services` opened in `scratch` over `broker`, in its protocol.
async fn peer_on(broker: &Broker, store: EmbeddedServices, behaviour: Behaviour) -> (ServicePeer, EmbeddedServices) {
    let store = store.speaking(broker.protocol);
    (ServicePeer::start(broker.transport(), store.clone(), behaviour).await, store)
}

/// A peer serving a fresh store in `scratch` over `broker`.
async fn peer(broker: &Broker, scratch: &Scratch, behaviour: Behaviour) -> (ServicePeer, EmbeddedServices) {
    peer_on(broker, fresh_store(scratch), behaviour).await
}

fn fresh_store(scratch: &Scratch) -> EmbeddedServices {
    EmbeddedServices::open(&scratch.path("peer.redb")).unwrap()
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
    let (peer, store) = peer(&broker, &scratch, Behaviour::default()).await;
    broker.register("default").await;

    let first = run_once(&broker, &examples_init(), &[]).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let dump = store.dump(None).unwrap();
    assert!(dump["default"]["flow"]["default"].is_string(), "no flow started: {dump}");
    assert_eq!(stored_flags(&dump).as_object().unwrap().len(), 3);
    if broker.protocol == Protocol::Workspaces {
        assert_eq!(peer.flow_workspaces().await, ["default"], "flow-svc serves the registered workspace only");
    }

    let second = run_once(&broker, &examples_init(), &[]).await;
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(!stderr(&second).contains("running"), "{}", stderr(&second));
    // A steady wake reads the flags, which opens the gate, and in the legacy protocol asks
    // flow-svc too.
    let steady = if broker.protocol == Protocol::Legacy { 2 } else { 1 };
    assert!(stderr(&second).contains(&format!("converged=true requests={steady}")), "{}", stderr(&second));
    assert_eq!(store.dump(None).unwrap(), dump);
}

async fn detects_its_protocol(broker: Broker) {
    let scratch = Scratch::new();
    let (_peer, store) = peer(&broker, &scratch, Behaviour::default()).await;
    broker.register("default").await;

    let mut command = bin();
    command.arg("-c").arg(examples_init()).arg("--once").args(broker.broker_args());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let detected = log.lines().find(|line| line.contains("protocol detected")).unwrap_or_else(|| panic!("{log}"));
    assert!(detected.contains(&format!("protocol=\"{}\"", broker.protocol.name())), "{detected}");
    assert_eq!(stored_flags(&store.dump(None).unwrap()).as_object().unwrap().len(), 3);
}

async fn reads_upstream_state_as_converged(broker: Broker) {
    let scratch = Scratch::new();
    // What upstream's bootstrapper leaves: its flags, and in the workspace protocol the
    // workspace IAM registered, which the peer's flow-svc serves from its start.
    let store = fresh_store(&scratch);
    let flags = [
        ("init-state", "template-seed", "\"v1\""),
        ("init-state", "workspace-init", "\"v1\""),
        ("init-state", "default-flow-start", "\"v1\""),
    ];
    store.store().put_many("__system__", flags).unwrap();
    if broker.protocol == Protocol::Workspaces {
        let (registry, kind) = WORKSPACE_REGISTRY;
        store.store().put_many(registry, [(kind, "default", REGISTERED_WORKSPACE)]).unwrap();
    }
    let (peer, store) = peer_on(&broker, store, Behaviour::default()).await;
    if broker.protocol == Protocol::Workspaces {
        assert_eq!(peer.flow_workspaces().await, ["default"]);
    }

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
    broker.register("probed").await;
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
    // flow-svc came back too, on the workspace's own queue in the workspace protocol.
    let services = broker.services(Duration::from_secs(10));
    assert_eq!(FlowClient(&*services).list_flows("probed").await.unwrap(), Vec::<String>::new());
}

async fn no_flag_is_stored_for_work_that_did_not_finish(broker: Broker) {
    // Answers to config writes come too late: the probe's write times out inside the guest.
    let timeout = broker.short_request_timeout();
    let scratch = Scratch::new();
    let (_peer, store) = peer(&broker, &scratch, Behaviour { put_delay: timeout * 3, ..Default::default() }).await;
    let init = scratch.init_file(&[probe("slow")]);
    let timeout_arg = format!("{}ms", timeout.as_millis());
    let output = run_once(&broker, &init, &["--request-timeout", &timeout_arg]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(logged(&log, "slow", &["failed", "timed out"]), "the guest did not see a timeout:\n{log}");
    // Give the late answers time to land, then check nothing claims the probe is done.
    tokio::time::sleep(timeout * 4).await;
    assert_eq!(stored_flags(&store.dump(None).unwrap()), Value::Null);
}

async fn ignores_other_clients_answers_and_malformed_json(broker: Broker) {
    let scratch = Scratch::new();
    let (_peer, store) = peer(&broker, &scratch, Behaviour { noisy: true, ..Default::default() }).await;
    broker.register("default").await;
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
    let mut lines = table.lines().skip(1);
    let rows: Vec<Vec<&str>> =
        lines.by_ref().take_while(|line| !line.is_empty()).map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        [
            vec!["template-seed", "\"v1\"", "\"v1\"", "done"],
            vec!["workspace-init", "\"v1\"", "\"v0\"", "pending"],
            vec!["default-flow-start", "\"v1\"", "-", "pending"],
        ],
        "{table}"
    );
    let protocol = broker.protocol.name();
    assert_eq!(lines.next(), Some(format!("protocol: {protocol}").as_str()), "{table}");
}

/// Every scenario, on one broker, in one protocol.
macro_rules! on_broker {
    ($broker:ident, $protocol:ident, $speaking:expr) => {
        mod $protocol {
            use super::*;

            fn broker() -> Broker {
                Broker::$broker($speaking)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn converges_and_then_only_skips() {
                super::super::converges_and_then_only_skips(broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn detects_its_protocol() {
                super::super::detects_its_protocol(broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reads_upstream_state_as_converged() {
                super::super::reads_upstream_state_as_converged(broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn without_services_the_gate_stays_closed() {
                super::super::without_services_the_gate_stays_closed(broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn survives_the_broker_going_away_mid_cycle() {
                super::super::survives_the_broker_going_away_mid_cycle(broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn no_flag_is_stored_for_work_that_did_not_finish() {
                super::super::no_flag_is_stored_for_work_that_did_not_finish(broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ignores_other_clients_answers_and_malformed_json() {
                super::super::ignores_other_clients_answers_and_malformed_json(broker()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn status_shows_configured_and_stored_flags() {
                super::super::status_shows_configured_and_stored_flags(broker()).await;
            }
        }
    };
}

mod pulsar {
    use super::*;
    on_broker!(pulsar, legacy, Protocol::Legacy);
    on_broker!(pulsar, workspaces, Protocol::Workspaces);
}

mod rabbitmq {
    use super::*;
    on_broker!(rabbitmq, legacy, Protocol::Legacy);
    on_broker!(rabbitmq, workspaces, Protocol::Workspaces);
}

mod kafka {
    use super::*;
    on_broker!(kafka, legacy, Protocol::Legacy);
    on_broker!(kafka, workspaces, Protocol::Workspaces);
}
