//! Both protocols, checked against TrustGraph's own services from PyPI over a real RabbitMQ, over
//! pulsar-lite and over a real Apache Kafka: trustgraph-flow 2.11.1's config-svc, flow-svc and
//! no-auth-svc (as IAM) for the workspace protocol (pulsar-lite serves 2.11's Pulsar client, `:`
//! in topic names included; on Kafka its client is aiokafka), and 2.4.4's config-svc and
//! flow-svc for the legacy one (on Kafka, confluent-kafka).
//!
//! From 2.4.13 on, flow-svc serves each workspace on a queue of its own, and only once IAM
//! has registered the workspace; these tests hold the records and queue names the runtime
//! speaks against what those services answer.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::broker::kafka::{KafkaOptions, KafkaTransport};
use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::rabbitmq::RabbitTransport;
use bootstrap_wasm::broker::{BrokerServices, Queue, RequestResponse, Transport};
use bootstrap_wasm::services::wire::{IamOperation, IamRequest, IamResponse, WorkspaceInput};
use bootstrap_wasm::services::{
    ConfigClient, FlowClient, FlowOperation, FlowRequest, FlowResponse, NOT_REGISTERED, Protocol, ServiceError,
    Services as _,
};
use serde_json::{Value, json};
use support::kafka::Kafka;
use support::pulsar::PulsarLite;
use support::rabbitmq::{TestVhost, backend_args};
use support::trustgraph::{TrustGraph, Version, config_version};
use support::{Scratch, bin};

/// A broker for one test, with TrustGraph's services on it.
struct Deployment {
    broker: Broker,
    trustgraph: TrustGraph,
}

enum Broker {
    RabbitMq(TestVhost),
    Pulsar(PulsarLite),
    Kafka(Kafka),
}

impl Deployment {
    fn on(version: Version, broker: Broker) -> Self {
        Self::holding_back(version, broker, &[])
    }

    /// The same, without the services named in `held_back`.
    fn holding_back(version: Version, broker: Broker, held_back: &[&str]) -> Self {
        let trustgraph = TrustGraph::start_except(version, &broker.args(), held_back);
        Self { broker, trustgraph }
    }

    /// A new connection to the broker.
    fn transport(&self) -> Arc<dyn Transport> {
        match &self.broker {
            Broker::RabbitMq(vhost) => Arc::new(RabbitTransport::new(vhost.options())),
            Broker::Pulsar(pulsar) => Arc::new(PulsarTransport::new(pulsar.options())),
            Broker::Kafka(kafka) => {
                let options = KafkaOptions::plaintext(kafka.bootstrap_servers());
                Arc::new(KafkaTransport::new(options, Duration::from_secs(10)))
            }
        }
    }

    /// `--pubsub-backend ...`, as both bootstrap-wasm and TrustGraph's services take them.
    fn args(&self) -> Vec<String> {
        self.broker.args()
    }
}

impl Broker {
    fn args(&self) -> Vec<String> {
        match self {
            Broker::RabbitMq(vhost) => backend_args(vhost.options()),
            Broker::Pulsar(pulsar) => vec!["--pubsub-backend".into(), "pulsar".into(), "-p".into(), pulsar.url()],
            Broker::Kafka(kafka) => {
                vec![
                    "--pubsub-backend".into(),
                    "kafka".into(),
                    "--kafka-bootstrap-servers".into(),
                    kafka.bootstrap_servers(),
                ]
            }
        }
    }
}

/// `$test` as a test on each broker (RabbitMQ, pulsar-lite and Kafka), against TrustGraph
/// `$version` (2.11.1 if not given).
macro_rules! on_each_broker {
    ($test:ident) => {
        on_each_broker!($test, V2_11_1);
    };
    ($test:ident, $version:ident) => {
        mod $test {
            use super::{Broker, Deployment, Kafka, PulsarLite, TestVhost, Version};

            #[tokio::test]
            async fn on_rabbitmq() {
                super::$test(Deployment::on(Version::$version, Broker::RabbitMq(TestVhost::create()))).await;
            }

            #[tokio::test]
            async fn on_pulsar() {
                super::$test(Deployment::on(Version::$version, Broker::Pulsar(PulsarLite::start()))).await;
            }

            #[tokio::test]
            async fn on_kafka() {
                super::$test(Deployment::on(Version::$version, Broker::Kafka(Kafka::start()))).await;
            }
        }
    };
}

/// `--protocol workspaces`, for [`once`] and [`converge`].
const WORKSPACES: &[&str] = &["--protocol", "workspaces"];

/// `bootstrap-wasm -c <init> --once <protocol>` on `deployment` (`protocol` empty: detect it).
fn once(deployment: &Deployment, init: &std::path::Path, protocol: &[&str]) -> std::process::Output {
    let mut command = bin();
    command.arg("-c").arg(init).arg("--once").args(protocol).arg("--no-compile-cache");
    command.args(deployment.args()).output().unwrap()
}

/// How many wakes a fresh deployment may take: flow-svc starts serving a workspace shortly
/// after IAM registers it, so the run that registers it may find flow-svc not yet listening.
const WAKES: usize = 5;

/// Run `init` once a wake until it converges, at most [`WAKES`] times; returns the logs.
fn converge(deployment: &Deployment, init: &std::path::Path, protocol: &[&str]) -> String {
    let mut logs = String::new();
    let converged = (0..WAKES).any(|_| {
        let output = once(deployment, init, protocol);
        logs.push_str(&String::from_utf8_lossy(&output.stderr));
        output.status.code() == Some(0)
    });
    assert!(converged, "not converged in {WAKES} wakes:\n{logs}");
    logs
}

// After the macro, which it uses.
#[path = "trustgraph/detection.rs"]
mod detection;
#[path = "trustgraph/drop_in.rs"]
mod drop_in;
#[path = "trustgraph/registration.rs"]
mod registration;

/// How long the services may take to act on a registration (config-svc's copy of the
/// template, flow-svc's subscription to the new workspace's queue) before a test gives up.
const SETTLE: Duration = Duration::from_secs(60);

/// A client of one service's request and response queues, as the runtime makes them.
fn client(transport: &Arc<dyn Transport>, request: Queue, response: Queue, timeout: Duration) -> RequestResponse {
    RequestResponse::new(
        transport.clone(),
        request,
        response,
        format!("bootstrap--test--{}", uuid::Uuid::new_v4()),
        timeout,
    )
}

/// `check` until it returns something, or panic after [`SETTLE`].
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let give_up = Instant::now() + SETTLE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < give_up, "{what}: not within {SETTLE:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_each_broker!(a_workspace_registered_through_iam_gets_the_template_and_its_own_flow_queue);
async fn a_workspace_registered_through_iam_gets_the_template_and_its_own_flow_queue(deployment: Deployment) {
    let transport = deployment.transport();
    let services = BrokerServices::new(transport.clone(), Duration::from_secs(10));
    let config = ConfigClient(&services);

    // What a new workspace starts from.
    let blueprint = json!({"description": "Everything", "class": {}, "flow": {}}).to_string();
    let template = vec![("flow-blueprint".to_owned(), "everything".to_owned(), blueprint)];
    config.put("__template__", template).await.unwrap();

    // WorkspaceInit's registration, as upstream's 2.11.1 sends it.
    let iam = client(&transport, Queue::request("iam"), Queue::response("iam"), Duration::from_secs(10));
    let create = IamRequest {
        operation: IamOperation::CreateWorkspace.as_str().into(),
        workspace_record: Some(WorkspaceInput { id: "acme".into(), name: "Acme".into(), enabled: true }),
    };
    let answer: IamResponse = iam.request(&create).await.unwrap();
    assert_eq!(answer.error, None);

    // IAM registered it where flow-svc looks, and config-svc copied the template into it.
    let registered = config.values("__workspaces__", "workspace").await.unwrap();
    let acme = registered.iter().find(|(key, _)| key == "acme").map(|(_, value)| value.as_str());
    let acme: Value = serde_json::from_str(acme.expect("acme is registered")).unwrap();
    assert_eq!(acme["enabled"], json!(true));
    let copied = eventually("the template copied into acme", || async {
        let values = config.values("acme", "flow-blueprint").await.unwrap();
        (!values.is_empty()).then_some(values)
    })
    .await;
    assert_eq!(copied.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["everything"]);

    // flow-svc answers for acme on acme's own queue, once it has subscribed to it.
    let list = FlowRequest { operation: FlowOperation::ListBlueprints.as_str().into(), ..Default::default() };
    let acme_flow = client(
        &transport,
        Queue::request_for("flow", "acme"),
        Queue::response_for("flow", "acme"),
        Duration::from_secs(1),
    );
    let answer: FlowResponse = eventually("flow-svc answering on request:tg:flow:acme", || async {
        acme_flow.request::<_, FlowResponse>(&list).await.ok()
    })
    .await;
    assert_eq!(answer.error, None);
    assert_eq!(answer.blueprint_names, ["everything"]);

    // The runtime's own flow client in the workspace protocol finds acme registered.
    let workspaces = BrokerServices::speaking(Protocol::Workspaces, transport.clone(), Duration::from_secs(10));
    let answer = workspaces.flow(FlowRequest { workspace: "acme".into(), ..list.clone() }).await.unwrap();
    assert_eq!(answer.blueprint_names, ["everything"]);

    // Nobody listens on the shared flow queue of TrustGraph 2.4.4 to 2.4.10 any more.
    let legacy = BrokerServices::new(transport.clone(), Duration::from_secs(2));
    let asked = legacy.flow(FlowRequest { workspace: "acme".into(), ..list.clone() }).await;
    assert!(matches!(asked, Err(ServiceError::Timeout(_))), "{asked:?}");
}

on_each_broker!(a_flow_call_for_a_workspace_iam_never_registered_fails_at_once_where_flow_svc_would_stay_silent);
async fn a_flow_call_for_a_workspace_iam_never_registered_fails_at_once_where_flow_svc_would_stay_silent(
    deployment: Deployment,
) {
    let transport = deployment.transport();

    let list = FlowRequest { operation: FlowOperation::ListBlueprints.as_str().into(), ..Default::default() };
    let unknown = client(
        &transport,
        Queue::request_for("flow", "nobody"),
        Queue::response_for("flow", "nobody"),
        Duration::from_secs(3),
    );
    let asked = unknown.request::<_, FlowResponse>(&list).await;
    assert!(matches!(asked, Err(ServiceError::Timeout(_))), "{asked:?}");

    // The runtime asks config-svc first, and says why without waiting out a timeout.
    let workspaces = BrokerServices::speaking(Protocol::Workspaces, transport, Duration::from_secs(600));
    let asked = workspaces.flow(FlowRequest { workspace: "nobody".into(), ..list }).await;
    let Err(ServiceError::Remote(error)) = asked else { panic!("{asked:?}") };
    assert_eq!(error.kind, NOT_REGISTERED);
    assert!(error.message.contains("'nobody' is not registered"), "{}", error.message);
}

on_each_broker!(the_runtime_in_the_workspace_protocol_converges_where_the_legacy_gate_stays_closed);
async fn the_runtime_in_the_workspace_protocol_converges_where_the_legacy_gate_stays_closed(deployment: Deployment) {
    let scratch = Scratch::new();
    let seed = scratch.write("seed.json", r#"{"flow-blueprint": {"everything": {"description": "Everything"}}}"#);
    let init = scratch.init_file(&[json!({
        "class": "trustgraph.bootstrap.initialisers.TemplateSeed",
        "name": "template-seed",
        "flag": "v1",
        "params": {"config_file": seed},
    })]);
    let run = |protocol: &str| {
        let mut command = bin();
        command.arg("-c").arg(&init).arg("--once").args(["--protocol", protocol]);
        command.args(deployment.args()).args(["--request-timeout", "2s", "--no-compile-cache"]);
        command.output().unwrap()
    };

    // flow-svc 2.11 answers nobody on the shared flow queue: the legacy gate never opens.
    let legacy = run("legacy");
    let log = String::from_utf8_lossy(&legacy.stderr);
    assert_eq!(legacy.status.code(), Some(1), "{log}");
    assert!(log.contains("gate closed"), "{log}");

    // The workspace protocol's gate asks config-svc only, as upstream's does.
    let workspaces = run("workspaces");
    let log = String::from_utf8_lossy(&workspaces.stderr);
    assert_eq!(workspaces.status.code(), Some(0), "{log}");

    // The flag and the template, in TrustGraph's own config-svc.
    let transport = deployment.transport();
    let services = BrokerServices::new(transport, Duration::from_secs(10));
    let config = ConfigClient(&services);
    assert_eq!(config.values("__system__", "init-state").await.unwrap(), [("template-seed".into(), r#""v1""#.into())]);
    let template = config.values("__template__", "flow-blueprint").await.unwrap();
    assert_eq!(template.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["everything"]);
}

on_each_broker!(the_runtime_in_the_legacy_protocol_converges_the_example_against_trustgraph_2_4_4, V2_4_4);
async fn the_runtime_in_the_legacy_protocol_converges_the_example_against_trustgraph_2_4_4(deployment: Deployment) {
    // examples/init.yaml (TemplateSeed, WorkspaceInit, DefaultFlowStart) and a probe.
    let scratch = Scratch::new();
    std::fs::copy(support::example_seed(), scratch.path("seed.json")).unwrap();
    let example = std::fs::read_to_string(support::repo().join("examples/init.yaml")).unwrap();
    let probe = support::component("probe");
    let probe = format!(
        "  - name: probe\n    flag: v1\n    component: {}\n    params: {{workspace: probed}}\n    grants: {{config: {{write: [probed]}}}}\n",
        probe.display()
    );
    let init = scratch.write("init.yaml", &(example + &probe));
    let run = || {
        let mut command = bin();
        command.arg("-c").arg(&init).args(["--once", "--protocol", "legacy", "--no-compile-cache"]);
        command.args(deployment.args()).output().unwrap()
    };

    let first = run();
    assert_eq!(first.status.code(), Some(0), "{}", support::stderr(&first));
    let second = run();
    let log = support::stderr(&second);
    assert_eq!(second.status.code(), Some(0), "{log}");
    assert!(!log.contains("running (old_flag"), "the second run ran something again:\n{log}");

    // The flags, the probe's record, and the flow 2.4.4's flow-svc started, in its own services.
    let services = BrokerServices::new(deployment.transport(), Duration::from_secs(10));
    let config = ConfigClient(&services);
    let flags = config.values("__system__", "init-state").await.unwrap();
    let names: Vec<&str> = flags.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["default-flow-start", "probe", "template-seed", "workspace-init"]);
    assert!(flags.iter().all(|(_, flag)| flag == r#""v1""#), "{flags:?}");
    assert_eq!(
        config.values("probed", "probe-runs").await.unwrap(),
        [("v1".into(), r#"{"new":"v1","old":null}"#.into())]
    );
    assert_eq!(FlowClient(&services).list_flows("default").await.unwrap(), ["default"]);
    let flow = config.values("default", "flow").await.unwrap();
    let flow: Value = serde_json::from_str(&flow.first().expect("flow-svc stored the flow").1).unwrap();
    assert_eq!(flow["blueprint-name"], "document-rag");
}
