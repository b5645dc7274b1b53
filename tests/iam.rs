//! The `iam` interface as guests see it, on the embedded backend (which speaks TrustGraph's
//! legacy protocol: no IAM, every workspace served): each call passes only with its grant; IAM's
//! registry, `__workspaces__`, is out of every guest's reach through `config` and `flow`,
//! whatever the grants say; and a component built against the WIT before `iam` existed
//! (`trustgraph:bootstrap@0.1.0`, `tests/components/wit-0.1.0/`) loads and runs unchanged.
//! tests/trustgraph.rs has the same calls against TrustGraph 2.11.1's own IAM.

mod support;

use serde_json::{Value, json};
use support::{Scratch, component, entry, logged, probe, stderr, stored_flags};

#[test]
fn a_component_built_against_wit_0_1_0_loads_and_runs_unchanged() {
    // It really is a 0.1.0 component: every import of ours names 0.1.0, and it has no `iam`.
    let engine = wasmtime::Engine::default();
    let old = wasmtime::component::Component::from_file(&engine, component("old-wit")).unwrap();
    let ours: Vec<String> = old
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| name.starts_with("trustgraph:bootstrap/"))
        .collect();
    let expected = ["types", "config", "flow", "log"].map(|name| format!("trustgraph:bootstrap/{name}@0.1.0"));
    assert_eq!(ours, expected);
    let exports: Vec<String> = old.component_type().exports(&engine).map(|(name, _)| name.to_owned()).collect();
    assert_eq!(exports, ["trustgraph:bootstrap/initialiser@0.1.0"]);

    let mut veteran = entry("veteran", "old-wit", json!({"workspace": "acme"}));
    veteran["grants"] = json!({"config": {"read": ["acme"], "write": ["acme"]}, "flow": {"workspaces": ["acme"]}});
    let scratch = Scratch::new();
    let init = scratch.init_file(&[veteran]);
    let output = run_legacy(&scratch, &init);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    let record = r#"{"old": null, "new": "v1"}"#;
    assert!(logged(&log, "veteran", &[&format!("old-wit ran: wrote and read back {record}; 0 blueprints")]), "{log}");
    let dump = scratch.dump();
    assert_eq!(dump["acme"], json!({"old-wit-runs": {"v1": record}}));
    assert_eq!(stored_flags(&dump), json!({"veteran": "\"v1\""}));

    // `check` describes it like any other.
    let check = support::bin().arg("check").arg("-c").arg(&init).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    assert!(report.contains("Test guest built against trustgraph:bootstrap@0.1.0"), "{report}");
}

/// One wake on the embedded backend in the legacy protocol (its default is the workspace one).
fn run_legacy(scratch: &Scratch, init: &std::path::Path) -> std::process::Output {
    scratch.once_command(init).args(["--protocol", "legacy"]).output().unwrap()
}

/// The registrar as `name`, making the calls `params` list, with `grants`.
fn registrar(name: &str, params: Value, grants: Value) -> Value {
    let mut guest = entry(name, "registrar", params);
    guest["grants"] = grants;
    guest
}

/// Run `guests` beside the probe for one wake; every one of them must converge (the registrar
/// reports its calls' outcomes and succeeds). Returns the log and the store's contents.
fn run(guests: Vec<Value>) -> (String, Value) {
    let scratch = Scratch::new();
    let mut entries = guests;
    entries.push(probe());
    let output = run_legacy(&scratch, &scratch.init_file(&entries));
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    (log, scratch.dump())
}

#[test]
fn iam_calls_pass_only_with_their_grant() {
    let calls = json!({"create": ["acme"], "ask": ["acme"]});
    let (log, dump) = run(vec![
        registrar("stranger", calls.clone(), json!({"config": {"read": ["*"], "write": ["*"]}})),
        registrar("founder", calls.clone(), json!({"iam": {"workspaces": ["acme"]}})),
        registrar("user", calls.clone(), json!({"flow": {"workspaces": ["acme"]}})),
        registrar("tenant", json!({"create": ["tenant-1", "other"]}), json!({"iam": {"workspaces": ["tenant-*"]}})),
    ]);

    // The legacy protocol: nothing to register with, every workspace served.
    assert!(logged(&log, "founder", &["registers-workspaces: false"]), "{log}");
    // Not even a config grant on every workspace lets a guest register one, or ask.
    let denied = |call: &str, id: &str| format!("{call} {id}: denied: {call} on '{id}': not granted");
    assert!(logged(&log, "stranger", &[&denied("iam.create-workspace", "acme")]), "{log}");
    assert!(logged(&log, "stranger", &[&denied("iam.is-registered", "acme")]), "{log}");
    assert!(logged(&log, "stranger", &["denied: not granted", r#"function="iam.create-workspace""#]), "{log}");
    // With the iam grant the call reaches the services, which have no IAM here.
    let no_iam = "iam.create-workspace acme: service error: unavailable: no IAM service";
    assert!(logged(&log, "founder", &[no_iam]), "{log}");
    assert!(logged(&log, "founder", &["iam.is-registered acme: ok true"]), "{log}");
    // A flow grant lets a guest ask about its workspace, not register it.
    assert!(logged(&log, "user", &["iam.is-registered acme: ok true"]), "{log}");
    assert!(logged(&log, "user", &[&denied("iam.create-workspace", "acme")]), "{log}");
    // A prefix grants what it matches.
    assert!(logged(&log, "tenant", &["iam.create-workspace tenant-1: service error: unavailable: no IAM"]), "{log}");
    assert!(logged(&log, "tenant", &[&denied("iam.create-workspace", "other")]), "{log}");

    let workspaces: Vec<&String> = dump.as_object().unwrap().keys().collect();
    assert_eq!(workspaces, ["__system__", "probed"], "{dump}");
}

#[test]
fn the_registry_is_out_of_reach_of_config_and_flow_calls_whatever_the_grants() {
    let grants = json!({"config": {"read": ["*", "__workspaces__"], "write": ["*", "__workspaces__"]},
                        "flow": {"workspaces": ["*"]}, "iam": {"workspaces": ["*"]}});
    let (log, dump) = run(vec![
        registrar("forger", json!({"registry": true, "ask": ["__workspaces__"]}), grants),
        registrar("reader", json!({"registry": true}), json!({"config": {"read": ["__workspaces__"]}})),
    ]);
    let reason = "reserved for IAM's registry of workspaces (register one with iam.create-workspace)";
    const CALLS: [&str; 8] = [
        "config.get",
        "config.list-keys",
        "config.get-values",
        "config.get-workspace",
        "config.put",
        "config.delete",
        "flow.list-flows",
        "flow.put-blueprint",
    ];
    for (name, extra) in [("forger", Some("iam.is-registered")), ("reader", None)] {
        for call in CALLS.into_iter().chain(extra) {
            let reported = format!("{call} __workspaces__: denied: {call} on '__workspaces__': ");
            assert!(logged(&log, name, &[&reported]), "{name} {call}:\n{log}");
        }
        assert!(logged(&log, name, &["config.get __workspaces__: denied", reason]), "{name}:\n{log}");
    }
    assert!(logged(&log, "forger", &[&format!("denied: {reason}"), r#"target="__workspaces__""#]), "{log}");
    assert!(dump.get("__workspaces__").is_none(), "{dump}");
    assert_eq!(stored_flags(&dump), json!({"forger": "\"v1\"", "reader": "\"v1\"", "probe": "\"v1\""}));
}
