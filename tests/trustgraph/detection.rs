//! `--protocol auto`, the default, against TrustGraph's own services: 2.11.1's are found to
//! speak the workspace protocol (IAM answers), 2.4.4's the legacy one (flow-svc answers on the
//! shared queue), and the core initialisers converge either way; with config-svc alone nothing
//! tells, and the gate stays closed.

use super::*;

/// No `--protocol`: the binary detects it.
const AUTO: &[&str] = &[];

/// `bootstrap-wasm status` with no `--protocol`: its table, then the protocol line.
fn status(deployment: &Deployment) -> String {
    let mut command = bin();
    command.arg("status").arg("-c").arg(support::repo().join("examples/init.yaml")).args(deployment.args());
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The core initialisers converge with the protocol detected as `expected`, and `status`
/// says so.
async fn converges_detecting(deployment: Deployment, expected: Protocol) {
    let logs = converge(&deployment, &support::repo().join("examples/init.yaml"), AUTO);
    let detected = logs.lines().find(|line| line.contains("protocol detected")).unwrap_or_else(|| panic!("{logs}"));
    assert!(detected.contains(&format!("protocol=\"{}\"", expected.name())), "{detected}");
    assert!(support::logged(&logs, "default-flow-start", &["Flow 'default' started"]), "{logs}");

    let table = status(&deployment);
    assert!(table.ends_with(&format!("\nprotocol: {} (detected)\n", expected.name())), "{table}");
}

on_each_broker!(trustgraph_2_11_1_is_found_to_speak_the_workspace_protocol);
async fn trustgraph_2_11_1_is_found_to_speak_the_workspace_protocol(deployment: Deployment) {
    converges_detecting(deployment, Protocol::Workspaces).await;
}

on_each_broker!(trustgraph_2_4_4_is_found_to_speak_the_legacy_protocol, V2_4_4);
async fn trustgraph_2_4_4_is_found_to_speak_the_legacy_protocol(deployment: Deployment) {
    converges_detecting(deployment, Protocol::Legacy).await;
}

#[tokio::test]
async fn with_config_svc_alone_nothing_tells_and_the_gate_stays_closed() {
    let held_back = ["no-auth-svc", "flow-svc"];
    let deployment = Deployment::holding_back(Version::V2_11_1, Broker::RabbitMq(TestVhost::create()), &held_back);
    let init = support::repo().join("examples/init.yaml");
    let mut command = bin();
    command.arg("-c").arg(&init).args(["--once", "--request-timeout", "1s"]).args(deployment.args());
    let output = command.output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(log.contains("gate closed") && log.contains("cannot tell which protocol"), "{log}");
    assert!(!log.contains("running"), "nothing may run while the protocol is unknown:\n{log}");

    let services = BrokerServices::new(deployment.transport(), Duration::from_secs(10));
    assert_eq!(ConfigClient(&services).values("__system__", "init-state").await.unwrap(), []);
}
