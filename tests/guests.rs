//! End-to-end tests of the example initialiser, `workspace-setup`, written in each guest
//! language (`initialisers/examples/`: Rust with the guest SDK, Python with componentize-py,
//! JavaScript with componentize-js, C with wit-bindgen and clang). Each is built by its own
//! `build.sh`, once per test process, and run by the real binary on the embedded backend,
//! beside the core initialisers that give it a workspace to work in. All four must behave
//! alike, to the log line.
//!
//! Every `bootstrap-wasm` process compiles each component it loads, and the Python and
//! JavaScript components are large (an interpreter: 15-20 s of Cranelift each on this
//! project's machines), so each language's whole story is told in three runs of the binary.

#[path = "support/examples.rs"]
mod examples;
mod support;

use std::process::Output;

use bootstrap_wasm::embedded::EmbeddedServices;
use examples::example;
use serde_json::{Value, json};
use support::{Scratch, example_seed, logged, stderr, stored_flags};

/// The example's entry: workspace-setup on `workspace`, granted exactly that workspace, with
/// `flag`, `seed` and `extra` params.
fn setup(language: &'static str, name: &str, workspace: &str, flag: Value, seed: Value, extra: Value) -> Value {
    let mut params = json!({"workspace": workspace, "blueprint": "document-rag", "flow_id": format!("{workspace}-rag"),
                            "description": format!("{workspace}'s document RAG"), "seed": seed});
    params.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    json!({"component": example(language), "name": name, "flag": flag, "params": params,
           "grants": {"config": {"read": [workspace], "write": [workspace]}, "flow": {"workspaces": [workspace]}}})
}

/// The core initialisers that give workspaces `acme` and `beta` the template's blueprints.
fn core() -> Vec<Value> {
    vec![
        json!({"builtin": "template-seed", "name": "template-seed", "flag": "v1", "params": {"config_file": example_seed()}}),
        json!({"builtin": "workspace-init", "name": "workspace-acme", "flag": "v1", "params": {"workspace": "acme"}}),
        json!({"builtin": "workspace-init", "name": "workspace-beta", "flag": "v1", "params": {"workspace": "beta"}}),
    ]
}

fn seed_v1() -> Value {
    json!({"prompt": {"system": "You are Acme's assistant."},
           "collection": {"handbook": {"name": "Employee handbook", "tags": ["hr", "policy"]}}})
}

/// The same seed at its next version: `system` reworded, `greeting` added.
fn seed_v2() -> Value {
    json!({"prompt": {"system": "You are Acme's assistant, v2.", "greeting": "Hello from Acme"},
           "collection": {"handbook": {"name": "Employee handbook", "tags": ["hr", "policy"]}}})
}

/// Run the core initialisers and `examples` once; returns the output and its log.
fn run(scratch: &Scratch, examples: Vec<Value>) -> (Output, String) {
    let mut entries = core();
    entries.extend(examples);
    let output = scratch.run_once(&scratch.init_file(&entries));
    let log = stderr(&output);
    (output, log)
}

/// Asserts that `initialiser` logged a line containing `text`.
fn assert_logged(log: &str, initialiser: &str, text: &str) {
    assert!(logged(log, initialiser, &[text]), "{initialiser} did not log {text:?}:\n{log}");
}

/// An operator's hand edit, between two runs.
fn operator_edits(scratch: &Scratch, workspace: &str, config_type: &str, key: &str, value: &str) {
    let services = EmbeddedServices::open(&scratch.state()).unwrap();
    services.store().put_many(workspace, [(config_type, key, value)]).unwrap();
}

/// The whole story, for one language: converge; skip and be denied; re-run on a flag bump.
fn converges_skips_is_denied_and_reruns_on_a_flag_bump(language: &'static str) {
    let scratch = Scratch::new();

    // 1. A fresh store: the example seeds its workspace and starts its flow.
    let acme = |flag: Value, seed: Value| setup(language, "acme-setup", "acme", flag, seed, json!({}));
    let beta = |flag: Value, seed: Value| setup(language, "beta-setup", "beta", flag, seed, json!({"overwrite": true}));
    let typo = setup(language, "acme-setup", "acme", json!("v1"), seed_v1(), json!({"typo": 1}));
    let (first, log) = run(&scratch, vec![typo, beta(json!("v1"), seed_v1())]);
    assert_eq!(first.status.code(), Some(0), "{log}");
    assert_logged(&log, "acme-setup", "unknown parameter `typo` is ignored");
    assert_logged(&log, "acme-setup", "flag none -> v1: wrote 2 seed entries to 'acme' (all entries)");
    assert_logged(&log, "acme-setup", "flow 'acme-rag' started from blueprint 'document-rag' in workspace 'acme'");
    let dump = scratch.dump();
    assert_eq!(dump["acme"]["prompt"]["system"], "\"You are Acme's assistant.\"");
    // Values are stored as Python's json.dumps writes them, in every language.
    assert_eq!(dump["acme"]["collection"]["handbook"], r#"{"name": "Employee handbook", "tags": ["hr", "policy"]}"#);
    let flow: Value = serde_json::from_str(dump["acme"]["flow"]["acme-rag"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&flow["blueprint-name"], &flow["description"]),
        (&json!("document-rag"), &json!("acme's document RAG"))
    );
    assert!(dump["beta"]["flow"]["beta-rag"].is_string(), "{dump:#}");
    let flags = stored_flags(&dump);
    assert_eq!((&flags["acme-setup"], &flags["beta-setup"]), (&json!("\"v1\""), &json!("\"v1\"")));

    // 2. The flags are unchanged, so the examples are skipped; a third entry, pointed (through
    // its params) at a workspace it was not granted, gets the typed `denied` error back and
    // says so in its own words. Nothing is written there and its flag is not stored.
    operator_edits(&scratch, "acme", "prompt", "system", "\"Edited by the operator\"");
    operator_edits(&scratch, "beta", "prompt", "system", "\"Edited by the operator\"");
    let mut intruder = setup(language, "intruder", "acme", json!("v1"), seed_v1(), json!({}));
    intruder["params"]["workspace"] = json!("beta");
    let (second, log) = run(&scratch, vec![acme(json!("v1"), seed_v1()), beta(json!("v1"), seed_v1()), intruder]);
    assert_eq!(second.status.code(), Some(1), "a denied run cannot converge:\n{log}");
    for name in ["acme-setup", "beta-setup"] {
        assert!(!logged(&log, name, &["running"]), "{name} ran at an unchanged flag:\n{log}");
    }
    // The host's message, behind the guest's own "denied: " (which only the typed error gives).
    assert_logged(
        &log,
        "intruder",
        "failed: writing the seed to workspace 'beta': denied: config.put on 'beta': not granted",
    );
    let dump = scratch.dump();
    assert_eq!(dump["beta"]["prompt"]["system"], "\"Edited by the operator\"", "the denied write went through");
    assert!(stored_flags(&dump).get("intruder").is_none(), "{dump:#}");

    // 3. A flag bump (to a number, which the guest gets as its JSON text): with `overwrite`
    // off, only the missing key is added and the operator's edit survives; with it on, every
    // entry is rewritten. The flows are running already, so neither is started again.
    let (third, log) = run(&scratch, vec![acme(json!(2), seed_v2()), beta(json!("v2"), seed_v2())]);
    assert_eq!(third.status.code(), Some(0), "{log}");
    assert_logged(&log, "acme-setup", "flag v1 -> 2: wrote 1 seed entries to 'acme' (missing entries only)");
    assert_logged(&log, "beta-setup", "flag v1 -> v2: wrote 3 seed entries to 'beta' (all entries)");
    assert_logged(&log, "acme-setup", "flow 'acme-rag' already running in workspace 'acme'");
    let dump = scratch.dump();
    assert_eq!(dump["acme"]["prompt"]["system"], "\"Edited by the operator\"");
    assert_eq!(dump["acme"]["prompt"]["greeting"], "\"Hello from Acme\"");
    assert_eq!(dump["beta"]["prompt"]["system"], "\"You are Acme's assistant, v2.\"");
    let flags = stored_flags(&dump);
    assert_eq!((&flags["acme-setup"], &flags["beta-setup"]), (&json!("2"), &json!("\"v2\"")));
}

#[test]
fn rust_example_converges_skips_is_denied_and_reruns_on_a_flag_bump() {
    converges_skips_is_denied_and_reruns_on_a_flag_bump("rust");
}

#[test]
fn python_example_converges_skips_is_denied_and_reruns_on_a_flag_bump() {
    converges_skips_is_denied_and_reruns_on_a_flag_bump("python");
}

#[test]
fn javascript_example_converges_skips_is_denied_and_reruns_on_a_flag_bump() {
    converges_skips_is_denied_and_reruns_on_a_flag_bump("js");
}

#[test]
fn c_example_converges_skips_is_denied_and_reruns_on_a_flag_bump() {
    converges_skips_is_denied_and_reruns_on_a_flag_bump("c");
}
