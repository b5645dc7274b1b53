//! Drop-in, against TrustGraph's own services and its own bootstrapper: a deployment that
//! upstream's bootstrapper (2.11.1, or 2.4.4) has converged is converged for bootstrap-wasm
//! too, in the protocol named and in the one it detects, and bootstrap-wasm writes nothing to
//! it. And the registration race of the workspace protocol: a flow started right after IAM has
//! registered its workspace, before flow-svc serves it, fails cleanly when flow-svc does not
//! come within the request timeout, and converges in the same wake when it does.

use std::process::Stdio;

use super::*;

/// The example (TemplateSeed, WorkspaceInit, DefaultFlowStart) with its seed, in a scratch
/// directory, as both bootstrappers take it.
fn example(scratch: &Scratch) -> std::path::PathBuf {
    std::fs::copy(support::example_seed(), scratch.path("seed.json")).unwrap();
    let init = scratch.path("init.yaml");
    std::fs::copy(support::repo().join("examples/init.yaml"), &init).unwrap();
    init
}

/// The core initialisers' names, as the example names them and flags keep them.
const EXAMPLE: [&str; 3] = ["default-flow-start", "template-seed", "workspace-init"];

/// Upstream's bootstrapper converges the example on `deployment`, then bootstrap-wasm, in
/// `protocol` and detecting it, finds everything done and changes no config version.
async fn converged_by_upstream_is_converged_here(deployment: Deployment, protocol: Protocol) {
    let scratch = Scratch::new();
    let init = example(&scratch);

    // Upstream logs each initialiser's completion once, when its flag is stored.
    let mut upstream = deployment.trustgraph.bootstrapper(&init);
    upstream.wait_for_nth("Completed (flag='v1')", EXAMPLE.len());
    drop(upstream);

    let services = BrokerServices::speaking(protocol, deployment.transport(), Duration::from_secs(10));
    let config = ConfigClient(&services);
    let flags = config.values("__system__", "init-state").await.unwrap();
    assert_eq!(flags.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), EXAMPLE);
    assert_eq!(FlowClient(&services).list_flows("default").await.unwrap(), ["default"]);
    let before = config_version(&services).await;

    let named = ["--protocol", protocol.name()];
    for protocol_args in [&named[..], &[]] {
        let output = once(&deployment, &init, protocol_args);
        let log = support::stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{protocol_args:?}:\n{log}");
        assert!(log.contains("converged=true"), "{protocol_args:?}:\n{log}");
        assert!(!log.contains("running (old_flag"), "{protocol_args:?} ran something:\n{log}");
    }
    assert_eq!(config_version(&services).await, before, "bootstrap-wasm wrote to a converged deployment");
}

on_each_broker!(converged_by_trustgraph_2_11_1s_bootstrapper_is_converged_here);
async fn converged_by_trustgraph_2_11_1s_bootstrapper_is_converged_here(deployment: Deployment) {
    converged_by_upstream_is_converged_here(deployment, Protocol::Workspaces).await;
}

on_each_broker!(converged_by_trustgraph_2_4_4s_bootstrapper_is_converged_here, V2_4_4);
async fn converged_by_trustgraph_2_4_4s_bootstrapper_is_converged_here(deployment: Deployment) {
    converged_by_upstream_is_converged_here(deployment, Protocol::Legacy).await;
}

/// The race on each broker: TrustGraph 2.11.1 with flow-svc held back.
mod a_flow_started_before_flow_svc_serves_its_new_workspace_fails_cleanly_and_the_next_wake_converges {
    use super::{Broker, Kafka, PulsarLite, TestVhost};

    #[tokio::test]
    async fn on_rabbitmq() {
        super::registration_race(Broker::RabbitMq(TestVhost::create())).await;
    }

    #[tokio::test]
    async fn on_pulsar() {
        super::registration_race(Broker::Pulsar(PulsarLite::start())).await;
    }

    #[tokio::test]
    async fn on_kafka() {
        super::registration_race(Broker::Kafka(Kafka::start())).await;
    }
}

async fn registration_race(broker: Broker) {
    // IAM and config-svc run; flow-svc is not there yet to subscribe to `default`'s queue.
    let mut deployment = Deployment::holding_back(Version::V2_11_1, broker, &["flow-svc"]);
    let scratch = Scratch::new();
    let init = example(&scratch);

    let mut command = bin();
    command.arg("-c").arg(&init).args(["--once", "--request-timeout", "2s", "--no-compile-cache"]);
    let output = command.args(WORKSPACES).args(deployment.args()).output().unwrap();
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(support::logged(&log, "workspace-init", &["Workspace 'default' created via IAM"]), "{log}");
    assert!(support::logged(&log, "default-flow-start", &["failed", "no answer within 2s"]), "{log}");

    // What succeeded is kept; the flow's flag waits for the flow.
    let services = BrokerServices::speaking(Protocol::Workspaces, deployment.transport(), Duration::from_secs(10));
    let config = ConfigClient(&services);
    assert_eq!(config.keys("__system__", "init-state").await.unwrap(), ["template-seed", "workspace-init"]);
    assert_eq!(config.keys("__workspaces__", "workspace").await.unwrap(), ["default"]);

    // The next wake starts while flow-svc is still down, and flow-svc comes up during it: the
    // runtime sends its first read to the workspace's queue again until flow-svc, subscribed at
    // last, answers, and the wake converges.
    let mut command = bin();
    command.arg("-c").arg(&init).args(["--once", "--request-timeout", "60s", "--no-compile-cache"]);
    let next_wake = command.args(WORKSPACES).args(deployment.args()).stderr(Stdio::piped()).spawn().unwrap();
    deployment.trustgraph.start_service("flow-svc");
    let output = next_wake.wait_with_output().unwrap();
    let log = support::stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(support::logged(&log, "default-flow-start", &["Flow 'default' started"]), "{log}");
    assert_eq!(config.keys("__system__", "init-state").await.unwrap(), EXAMPLE);
    assert_eq!(FlowClient(&services).list_flows("default").await.unwrap(), ["default"]);
}
