//! End-to-end tests of `bootstrap-wasm check` (the operator's review of an init file) and of
//! integrity pins (`sha256:`), through the binary.

mod support;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use bootstrap_wasm::builtins::Builtin;
use bootstrap_wasm::integrity::Digest;
use serde_json::{Value, json};
use support::{Scratch, bin, entry, logged, stderr};

fn check(init: &Path) -> Output {
    bin().arg("check").arg("-c").arg(init).output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `check` on `init`, which must pass; its report.
fn checked(init: &Path) -> String {
    let output = check(init);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    stdout(&output)
}

/// The report's block for initialiser `name`.
fn block<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .split("\n\n")
        .find(|block| block.starts_with(&format!("{name} (entry ")))
        .unwrap_or_else(|| panic!("no block for {name} in:\n{report}"))
}

/// The value of row `label` in a block (`  sha256   abc...` gives `abc...`).
fn row<'a>(block: &'a str, label: &str) -> &'a str {
    block
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(label).filter(|rest| rest.starts_with(' ')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no row {label:?} in:\n{block}"))
}

/// `check` on `init`, which must fail with exit 2 and a message containing every one of
/// `expected`, printing no report.
fn check_refused(init: &Path, expected: &[&str]) {
    let output = check(init);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    for text in expected {
        assert!(message.contains(text), "expected {text:?} in:\n{message}");
    }
    assert!(output.stdout.is_empty(), "a refused check printed a report:\n{}", stdout(&output));
}

fn digest_of(path: &Path) -> String {
    Digest::of(&std::fs::read(path).unwrap()).to_string()
}

#[test]
fn the_example_checks_clean_and_shows_each_builtins_derived_grants() {
    let init = support::repo().join("examples/init.yaml");
    let report = checked(&init);
    assert!(report.starts_with(&format!("{}: valid, 3 initialisers\n", init.display())), "{report}");

    let seed = block(&report, "template-seed");
    assert_eq!(row(seed, "code"), "class trustgraph.bootstrap.initialisers.TemplateSeed (builtin template-seed)");
    assert_eq!(row(seed, "sha256"), format!("{} (not pinned)", Digest::of(Builtin::TemplateSeed.component())));
    assert_eq!(row(seed, "flag"), "\"v1\"");
    assert_eq!(row(seed, "runs"), "after the service gate");
    assert!(row(seed, "summary").contains("__template__"), "{seed}");
    assert_eq!(row(seed, "grants"), "derived from the builtin's params");
    assert_eq!(row(seed, "config read"), "__template__");
    assert_eq!(row(seed, "config write"), "__template__");
    assert_eq!(row(seed, "flow"), "none");
    assert_eq!(row(seed, "http"), "none");
    assert_eq!(row(seed, "files"), support::example_seed().display().to_string());
    assert_eq!(row(seed, "memory"), "256 MiB");
    assert_eq!(row(seed, "timeout"), "30s");

    let workspace = block(&report, "workspace-init");
    assert_eq!(row(workspace, "config read"), "default, __template__");
    assert_eq!(row(workspace, "config write"), "default");
    assert_eq!(row(workspace, "iam"), "default");
    assert_eq!(row(workspace, "files"), "none");
    assert_eq!(row(block(&report, "default-flow-start"), "flow"), "default");
    assert_eq!(row(block(&report, "default-flow-start"), "iam"), "none");
}

#[test]
fn a_pre_gate_builtin_shows_its_stage_and_origin() {
    let scratch = Scratch::new();
    let init = scratch.write(
        "init.yaml",
        "initialisers:\n  - {name: topology, flag: v1, builtin: pulsar-topology,\n     params: {admin_url: 'http://127.0.0.1:9'}}\n",
    );
    let topology = checked(&init);
    let topology = block(&topology, "topology");
    assert!(row(topology, "runs").starts_with("pre-gate"), "{topology}");
    assert_eq!(row(topology, "http"), "http://127.0.0.1:9");
    assert_eq!(row(topology, "config write"), "none");
}

#[test]
fn a_component_shows_its_explicit_grants_and_the_limits_it_changed() {
    let scratch = Scratch::new();
    let granted = scratch.write("seed.json", "{}");
    let mut acme = entry("acme", "probe", json!({"workspace": "acme"}));
    acme["limits"] = json!({"memory": "64MiB", "host_calls": 50});
    acme["grants"] = json!({
        "config": {"read": ["acme", "shared-*"], "write": ["acme"]},
        "flow": {"workspaces": ["acme"]},
        "iam": {"workspaces": ["acme", "acme-*"]},
        "http": ["http://127.0.0.1:9"],
        "files": [granted, scratch.path("absent.json")],
    });
    let bare = entry("bare", "probe", json!({"workspace": "w"}));
    let init = scratch.init_file(&[acme, bare]);
    let report = checked(&init);

    let acme = block(&report, "acme");
    let probe = support::component("probe");
    assert_eq!(row(acme, "code"), format!("component {}", probe.display()));
    assert_eq!(row(acme, "sha256"), format!("{} (not pinned)", digest_of(&probe)));
    assert_eq!(row(acme, "summary"), "Test probe: records each run's flags in config");
    assert_eq!(row(acme, "grants"), "from the entry's grants:");
    assert_eq!(row(acme, "config read"), "acme, shared-*");
    assert_eq!(row(acme, "config write"), "acme");
    assert_eq!(row(acme, "flow"), "acme");
    assert_eq!(row(acme, "iam"), "acme, acme-*");
    assert_eq!(row(acme, "http"), "http://127.0.0.1:9");
    assert_eq!(
        row(acme, "files"),
        format!("{}, {} (not found)", granted.display(), scratch.path("absent.json").display())
    );
    assert_eq!(row(acme, "memory"), "64 MiB  (default 256 MiB)");
    assert_eq!(row(acme, "host_calls"), "50  (default 100000)");
    assert_eq!(row(acme, "fuel"), "20000000000");

    let bare = block(&report, "bare");
    assert_eq!(row(bare, "grants"), "none: no grants: in the entry");
    for grant in ["config read", "config write", "flow", "iam", "http", "files"] {
        assert_eq!(row(bare, grant), "none", "{bare}");
    }
}

#[test]
fn json_output_carries_the_same_review() {
    let init = support::repo().join("examples/init.yaml");
    let output = bin().arg("check").arg("-c").arg(&init).args(["--format", "json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let seed = &report["initialisers"][0];
    assert_eq!(seed["name"], "template-seed");
    assert_eq!(seed["entry"], 1);
    assert_eq!(seed["flag"], "v1");
    assert_eq!(
        seed["code"],
        json!({"builtin": "template-seed", "class": "trustgraph.bootstrap.initialisers.TemplateSeed"})
    );
    assert_eq!(seed["sha256"], Digest::of(Builtin::TemplateSeed.component()).to_string());
    assert_eq!(seed["pinned"], false);
    assert_eq!(seed["pre_gate"], false);
    assert_eq!(seed["limits"]["memory"], "256 MiB");
    assert_eq!(seed["grants"]["source"], "params");
    assert_eq!(seed["grants"]["config_write"], json!(["__template__"]));
    assert_eq!(seed["grants"]["files"], json!([support::example_seed()]));
    assert_eq!(seed["grants"]["http"], json!([]));
    assert_eq!(seed["grants"]["iam"], json!([]));
    assert_eq!(report["initialisers"][1]["grants"]["iam"], json!(["default"]));
    assert_eq!(report["initialisers"].as_array().unwrap().len(), 3);
}

#[test]
fn a_bad_file_exits_2_with_the_usual_message() {
    let scratch = Scratch::new();
    let init = scratch.write("init.yaml", "initialisers:\n  - {name: a, builtin: template-seed}\n");
    check_refused(&init, &[&format!("{}: initialiser 'a' (entry 1), field 'flag': missing", init.display())]);

    // Refusals that need the component itself: validate() and the WIT world.
    let init = scratch.write("init.yaml", "initialisers:\n  - {name: seed, flag: v1, builtin: template-seed}\n");
    check_refused(&init, &["'seed' (entry 1), field 'params'", "config_file"]);
    let init = scratch.init_file(&[entry("stranger", "wrong-world", json!({}))]);
    check_refused(&init, &["'stranger' (entry 1), field 'component'", "initialiser-component"]);

    check_refused(&scratch.path("nope.yaml"), &["nope.yaml: cannot read"]);
}

#[test]
fn check_takes_no_backend_contacts_no_broker_and_writes_nothing() {
    let scratch = Scratch::new();
    let init = scratch.write(
        "init.yaml",
        &std::fs::read_to_string(support::repo().join("examples/init.yaml"))
            .unwrap()
            .replace("seed.json", &support::example_seed().display().to_string()),
    );
    // A "broker" that would see any connection: every backend's environment points at it.
    let broker = TcpListener::bind("127.0.0.1:0").unwrap();
    broker.set_nonblocking(true).unwrap();
    let port = broker.local_addr().unwrap().port().to_string();
    let output = bin()
        .arg("check")
        .arg("-c")
        .arg(&init)
        .current_dir(scratch.dir.path())
        .env("PUBSUB_BACKEND", "pulsar")
        .env("PULSAR_HOST", format!("pulsar://127.0.0.1:{port}"))
        .env("RABBITMQ_HOST", "127.0.0.1")
        .env("RABBITMQ_PORT", &port)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(broker.accept().map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock, "check contacted the broker");
    let left: Vec<_> = std::fs::read_dir(scratch.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["init.yaml"], "check wrote files");

    // Backend options are not check's: refused, not silently ignored.
    for option in [&["--pubsub-backend", "pulsar"][..], &["--state", "state.redb"], &["-p", "pulsar://127.0.0.1:1"]] {
        let output = bin().arg("check").arg("-c").arg(&init).args(option).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{option:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("unexpected argument"), "{}", stderr(&output));
    }
}

#[test]
fn a_correct_pin_loads_and_every_digest_is_logged() {
    let scratch = Scratch::new();
    let digest = digest_of(&support::component("probe"));
    let mut pinned = entry("pinned", "probe", json!({"workspace": "w"}));
    pinned["sha256"] = json!(digest);
    pinned["grants"] = json!({"config": {"write": ["w"]}});
    let init = scratch.init_file(&[pinned]);

    assert_eq!(row(block(&checked(&init), "pinned"), "sha256"), format!("{digest} (pinned)"));
    let output = scratch.run_once(&init);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(logged(&stderr(&output), "pinned", &["INFO", &format!("sha256={digest}")]), "{}", stderr(&output));
    assert_eq!(support::stored_flags(&scratch.dump())["pinned"], "\"v1\"");
}

#[test]
fn uppercase_hex_is_the_same_pin() {
    let scratch = Scratch::new();
    let digest = digest_of(&support::component("probe"));
    let mut pinned = entry("pinned", "probe", json!({"workspace": "w"}));
    pinned["sha256"] = json!(digest.to_uppercase());
    pinned["grants"] = json!({"config": {"write": ["w"]}});
    let init = scratch.init_file(&[pinned]);
    // Accepted by check and by start-up alike, and shown as sha256sum prints it.
    assert_eq!(row(block(&checked(&init), "pinned"), "sha256"), format!("{digest} (pinned)"));
    let output = scratch.run_once(&init);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn a_wrong_pin_is_refused_with_both_digests_and_nothing_is_written() {
    let probe = support::component("probe");
    let actual = digest_of(&probe);
    let wrong = Digest::of(b"some other component").to_string();
    let scratch = Scratch::new();
    let mut good = entry("good", "probe", json!({"workspace": "w"}));
    good["sha256"] = json!(actual);
    let mut bad = entry("bad", "probe", json!({"workspace": "w"}));
    bad["sha256"] = json!(wrong);
    // The second entry shares the first one's (already loaded) component: still checked.
    let init = scratch.init_file(&[good, bad]);
    let expected = [
        "'bad' (entry 2), field 'sha256'",
        &format!("expected sha256 {wrong}"),
        &format!("actual {actual}"),
        &probe.display().to_string(),
    ];
    check_refused(&init, &expected);

    let output = scratch.run_once(&init);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    for text in expected {
        assert!(stderr(&output).contains(text), "expected {text:?} in:\n{}", stderr(&output));
    }
    assert!(!scratch.state().exists(), "a refused start-up created the state store");
}

#[test]
fn a_malformed_pin_is_refused() {
    let scratch = Scratch::new();
    for (pin, why) in [
        (json!("abc123"), "expected 64 hex digits"),
        (json!(format!("sha256:{}", "0".repeat(64))), "expected 64 hex digits"),
        (json!("g".repeat(64)), "only hex digits"),
        (json!(42), "must be a string"),
    ] {
        let mut pinned = entry("p", "probe", json!({"workspace": "w"}));
        pinned["sha256"] = pin;
        let init = scratch.init_file(&[pinned]);
        check_refused(&init, &["'p' (entry 1), field 'sha256'", why]);
    }
}

#[test]
fn builtins_can_be_pinned_to_their_embedded_bytes() {
    let scratch = Scratch::new();
    let digest = Digest::of(Builtin::DefaultFlowStart.component()).to_string();
    let yaml = |pin: &str| {
        format!(
            "initialisers:\n  - {{name: flow, flag: v1, builtin: default-flow-start, sha256: {pin},\n     params: {{blueprint: x}}}}\n"
        )
    };
    let init = scratch.write("init.yaml", &yaml(&digest));
    assert_eq!(row(block(&checked(&init), "flow"), "sha256"), format!("{digest} (pinned)"));

    let other = Digest::of(Builtin::TemplateSeed.component()).to_string();
    let init = scratch.write("init.yaml", &yaml(&other));
    check_refused(&init, &["'flow' (entry 1), field 'sha256'", "builtin default-flow-start", &other, &digest]);
}
