//! Registration in the workspace protocol, end to end against TrustGraph 2.11.1's own
//! config-svc, flow-svc and no-auth-svc: the core initialisers converge a fresh deployment
//! through the binary (WorkspaceInit registering its workspace with IAM, DefaultFlowStart
//! waiting for the registration), and a guest's `iam` calls reach IAM only with their grant.

use super::*;

/// `bootstrap-wasm --once` in the workspace protocol.
fn once(deployment: &Deployment, init: &std::path::Path) -> std::process::Output {
    super::once(deployment, init, WORKSPACES)
}

/// Run `init` in the workspace protocol until it converges ([`super::converge`]).
fn converge(deployment: &Deployment, init: &std::path::Path) -> String {
    super::converge(deployment, init, WORKSPACES)
}

on_each_broker!(the_core_initialisers_converge_a_fresh_deployment_and_a_second_run_changes_nothing);
async fn the_core_initialisers_converge_a_fresh_deployment_and_a_second_run_changes_nothing(deployment: Deployment) {
    let init = support::repo().join("examples/init.yaml");
    let logs = converge(&deployment, &init);
    assert!(support::logged(&logs, "workspace-init", &["Workspace 'default' created via IAM"]), "{logs}");
    assert!(support::logged(&logs, "default-flow-start", &["Flow 'default' started"]), "{logs}");

    // IAM registered the workspace, config-svc and WorkspaceInit filled it, flow-svc runs its flow.
    let services = BrokerServices::speaking(Protocol::Workspaces, deployment.transport(), Duration::from_secs(10));
    let config = ConfigClient(&services);
    let registered = config.keys("__workspaces__", "workspace").await.unwrap();
    assert_eq!(registered, ["default"]);
    let blueprints = config.keys("default", "flow-blueprint").await.unwrap();
    assert_eq!(blueprints, ["document-rag"]);
    let list = FlowRequest {
        operation: FlowOperation::ListFlows.as_str().into(),
        workspace: "default".into(),
        ..Default::default()
    };
    assert_eq!(services.flow(list).await.unwrap().flow_ids, ["default"]);
    let flags = config.values("__system__", "init-state").await.unwrap();
    let names: Vec<&str> = flags.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["default-flow-start", "template-seed", "workspace-init"]);

    // Everything is at its flag: the next run skips everything and writes nothing.
    let before = config_version(&services).await;
    let again = once(&deployment, &init);
    let log = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{log}");
    for name in ["template-seed", "workspace-init", "default-flow-start"] {
        assert!(!support::logged(&log, name, &["running"]), "{name} ran again:\n{log}");
    }
    assert_eq!(config_version(&services).await, before, "{log}");
}

/// The registrar test guest as `name`, making `calls`, with `grants`.
fn registrar(name: &str, calls: Value, grants: Value) -> Value {
    let mut guest = support::entry(name, "registrar", calls);
    guest["grants"] = grants;
    guest
}

on_each_broker!(a_guests_iam_calls_reach_iam_only_with_their_grant);
async fn a_guests_iam_calls_reach_iam_only_with_their_grant(deployment: Deployment) {
    let scratch = Scratch::new();
    let init = scratch.init_file(&[
        registrar("stranger", json!({"create": ["rogue"]}), json!({"config": {"read": ["*"], "write": ["*"]}})),
        registrar(
            "founder",
            json!({"create": ["acme", "acme"], "ask": ["acme"], "timeout_ms": 5000}),
            json!({"iam": {"workspaces": ["acme"]}}),
        ),
        registrar("user", json!({"ask": ["ghost"], "create": ["ghost"]}), json!({"flow": {"workspaces": ["ghost"]}})),
    ]);
    let output = once(&deployment, &init);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");

    assert!(support::logged(&log, "founder", &["registers-workspaces: true"]), "{log}");
    // TrustGraph 2.11's IAM registers idempotently: the second call is taken as the first.
    let created = log.lines().filter(|line| line.contains("iam.create-workspace acme: ok Registered")).count();
    assert_eq!(created, 2, "{log}");
    assert!(support::logged(&log, "founder", &["iam.is-registered acme: ok true"]), "{log}");
    assert!(support::logged(&log, "user", &["iam.is-registered ghost: ok false"]), "{log}");
    let denied = |id: &str| format!("iam.create-workspace {id}: denied: iam.create-workspace on '{id}': not granted");
    assert!(support::logged(&log, "stranger", &[&denied("rogue")]), "{log}");
    assert!(support::logged(&log, "user", &[&denied("ghost")]), "{log}");

    // Only the granted registration reached IAM.
    let services = BrokerServices::new(deployment.transport(), Duration::from_secs(10));
    assert_eq!(ConfigClient(&services).keys("__workspaces__", "workspace").await.unwrap(), ["acme"]);
}

on_each_broker!(default_flow_start_fails_until_its_workspace_is_registered);
async fn default_flow_start_fails_until_its_workspace_is_registered(deployment: Deployment) {
    let example = support::repo().join("examples/init.yaml");
    let entries: Value = serde_saphyr::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    let mut flow_only = entries.clone();
    flow_only["initialisers"].as_array_mut().unwrap().retain(|entry| entry["name"] != "workspace-init");
    let scratch = Scratch::new();
    std::fs::copy(support::repo().join("examples/seed.json"), scratch.path("seed.json")).unwrap();
    let without_registration = scratch.write("flow-only.json", &flow_only.to_string());

    let output = once(&deployment, &without_registration);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(support::logged(&log, "default-flow-start", &["failed: Workspace 'default' does not exist yet"]), "{log}");

    // Once WorkspaceInit has registered the workspace, the next wake starts the flow.
    let all = scratch.write("all.json", &entries.to_string());
    let logs = converge(&deployment, &all);
    assert!(support::logged(&logs, "default-flow-start", &["Flow 'default' started"]), "{logs}");
}
