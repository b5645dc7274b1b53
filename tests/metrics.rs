//! The Prometheus endpoint of the real binary on the embedded backend: scraped over HTTP after
//! the core initialisers converge, and after initialisers that fail, each kind of failure
//! counted under its own label.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use support::running::Running;
use support::{Scratch, bin, entry, example_seed};

/// The core initialisers, as in examples/init.yaml.
fn core() -> Vec<Value> {
    vec![
        json!({"builtin": "template-seed", "name": "template-seed", "flag": "v1", "params": {"config_file": example_seed()}}),
        json!({"builtin": "workspace-init", "name": "workspace-init", "flag": "v1", "params": {"workspace": "default"}}),
        json!({"builtin": "default-flow-start", "name": "default-flow-start", "flag": "v1",
               "params": {"workspace": "default", "flow_id": "default", "blueprint": "document-rag"}}),
    ]
}

/// The runtime, reconciling until killed, with metrics on a free loopback port and a short
/// retry so that a second wake comes soon after the first.
fn start(scratch: &Scratch, init: &Path) -> (Running, String) {
    let mut command: Command = bin();
    command.arg("-c").arg(init).args(["--pubsub-backend", "embedded", "--state"]).arg(scratch.state()).args([
        "--metrics-port",
        "0",
        "--metrics-address",
        "127.0.0.1",
        "--init-retry",
        "100ms",
    ]);
    let mut running = Running::spawn(&mut command);
    let line = running.wait_for("metrics on http://");
    let address = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
    (running, address)
}

/// `GET /metrics`, the body of the answer.
fn scrape(address: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    body.to_owned()
}

/// The value of the sample `name{labels}` (`labels` as written, in order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

fn ok_runs(name: &str) -> String {
    format!(r#"bootstrap_runs_total{{initialiser="{name}",result="ok",failure=""}}"#)
}

fn label(metric: &str, name: &str) -> String {
    format!(r#"{metric}{{initialiser="{name}"}}"#)
}

#[test]
fn after_convergence_each_initialiser_ran_once_and_is_at_its_flag() {
    let scratch = Scratch::new();
    let init = scratch.init_file(&core());
    let (mut running, address) = start(&scratch, &init);
    // The first wake runs all three, the second (100 ms later) finds them at their flags.
    // "next wake in" is logged once the wake is recorded.
    running.wait_for_nth("next wake in", 2);
    let text = scrape(&address);

    for name in ["template-seed", "workspace-init", "default-flow-start"] {
        assert_eq!(value(&text, &ok_runs(name)), 1.0, "{name}");
        assert_eq!(value(&text, &label("bootstrap_flag_current", name)), 1.0, "{name}");
        assert_eq!(value(&text, &label("bootstrap_run_duration_seconds_count", name)), 1.0, "{name}");
        assert!(value(&text, &label("bootstrap_fuel_used_total", name)) > 0.0, "{name} used no fuel:\n{text}");
    }
    assert!(!text.contains(r#"result="failed""#), "{text}");
    assert_eq!(value(&text, "bootstrap_gate_open"), 1.0);
    assert_eq!(value(&text, "bootstrap_wake_duration_seconds_count"), 2.0);
    // A steady wake costs two requests; the first did more.
    assert!(value(&text, "bootstrap_service_requests_total") > 4.0, "{text}");
}

#[test]
fn failed_runs_are_counted_by_kind_of_failure_and_leave_the_flag_pending() {
    let scratch = Scratch::new();
    let fuel: u64 = 20_000_000;
    let mut spinner = entry("spinner", "hostile", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": fuel});
    let mut failing = entry("failing", "probe", json!({"workspace": "probe", "fail": true}));
    failing["grants"] = json!({"config": {"write": ["probe"]}});
    let mut entries = core();
    entries.extend([spinner, failing]);
    let init = scratch.init_file(&entries);
    let (mut running, address) = start(&scratch, &init);
    running.wait_for_nth("next wake in", 2);
    let text = scrape(&address);

    let failed = |name: &str, kind: &str| {
        value(&text, &format!(r#"bootstrap_runs_total{{initialiser="{name}",result="failed",failure="{kind}"}}"#))
    };
    assert_eq!(failed("spinner", "out_of_fuel"), 2.0);
    assert_eq!(failed("failing", "guest_error"), 2.0);
    assert_eq!(sample(&text, &ok_runs("spinner")), None);
    // Out of fuel means all of it, each time.
    assert_eq!(value(&text, &label("bootstrap_fuel_used_total", "spinner")), 2.0 * fuel as f64);
    assert!(value(&text, &label("bootstrap_fuel_used_total", "failing")) > 0.0);
    for name in ["spinner", "failing"] {
        assert_eq!(value(&text, &label("bootstrap_flag_current", name)), 0.0, "{name}");
    }
    // The others converged regardless.
    for name in ["template-seed", "workspace-init", "default-flow-start"] {
        assert_eq!(value(&text, &ok_runs(name)), 1.0, "{name}");
        assert_eq!(value(&text, &label("bootstrap_flag_current", name)), 1.0, "{name}");
    }
    assert_eq!(value(&text, "bootstrap_gate_open"), 1.0);
}

#[test]
fn metrics_are_off_unless_asked_for() {
    let scratch = Scratch::new();
    let init = scratch.init_file(&core());
    let output = scratch.run_once(&init);
    assert_eq!(output.status.code(), Some(0), "{}", support::stderr(&output));
    assert!(!support::stderr(&output).contains("metrics on"), "{}", support::stderr(&output));
}
