//! End-to-end tests of the command line: the README's demo, `dump`, every start-up error,
//! each of which must exit 2 with a message naming the file, the entry and the field, and
//! write nothing, and shutdown on SIGTERM on each backend.

mod support;

use std::path::Path;

use bootstrap_wasm::builtins::Builtin;
use serde_json::{Value, json};
use support::{Scratch, bin, entry, logged, stderr};

#[test]
fn the_readme_demo_converges_and_a_second_run_only_skips() {
    let scratch = Scratch::new();
    let init = support::repo().join("examples/init.yaml");
    let first = scratch.run_once(&init);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    for name in ["template-seed", "workspace-init", "default-flow-start"] {
        assert!(logged(&stderr(&first), name, &["completed"]), "{name} did not complete:\n{}", stderr(&first));
    }

    let second = scratch.run_once(&init);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(!stderr(&second).contains("running"), "a converged run ran something:\n{}", stderr(&second));

    let output = bin().args(["dump", "--workspace", "default", "--state"]).arg(scratch.state()).output().unwrap();
    assert!(output.status.success());
    let default: Value = serde_json::from_slice(&output.stdout).unwrap();
    let flow: Value = serde_json::from_str(default["flow"]["default"].as_str().unwrap()).unwrap();
    assert_eq!(flow["description"], "Default");
    assert!(default["flow-blueprint"]["document-rag"].is_string());
}

#[test]
fn dump_prints_every_workspace_or_one() {
    let scratch = Scratch::new();
    scratch.run_once(&support::repo().join("examples/init.yaml"));
    let all = scratch.dump();
    let mut workspaces: Vec<&str> = all.as_object().unwrap().keys().map(String::as_str).collect();
    workspaces.sort();
    // The embedded backend speaks current TrustGraph's protocol: IAM's registry is there too.
    assert_eq!(workspaces, ["__system__", "__template__", "__workspaces__", "default"]);

    let output = bin().args(["dump", "--workspace", "nobody", "--state"]).arg(scratch.state()).output().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&output.stdout).unwrap(), json!({}));

    let output = bin().args(["dump", "--state"]).arg(scratch.path("missing.redb")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("missing.redb: no such file"), "{}", stderr(&output));
}

/// Runs `init` (YAML text, or a path given as-is), expects exit 2, a message containing every
/// one of `expected`, and no state written.
fn refused(scratch: &Scratch, init: &Path, expected: &[&str]) {
    let output = scratch.run_once(init);
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{message}");
    for text in expected {
        assert!(message.contains(text), "expected {text:?} in:\n{message}");
    }
    assert!(!scratch.state().exists(), "a refused start-up created the state store");
}

fn refused_yaml(yaml: &str, expected: &[&str]) {
    let scratch = Scratch::new();
    let init = scratch.write("init.yaml", yaml);
    let file = init.display().to_string();
    let mut expected = expected.to_vec();
    expected.push(&file);
    refused(&scratch, &init, &expected);
}

#[test]
fn an_unreadable_init_file_is_refused() {
    let scratch = Scratch::new();
    refused(&scratch, &scratch.path("nope.yaml"), &["nope.yaml: cannot read"]);
}

#[test]
fn bad_yaml_is_refused_with_its_line() {
    refused_yaml("initialisers:\n  - name: a\n    flag: [v1\n", &["line"]);
}

#[test]
fn missing_fields_are_refused() {
    refused_yaml("initialisers:\n  - {flag: v1, builtin: template-seed}\n", &["entry 1, field 'name': missing"]);
    refused_yaml("initialisers:\n  - {name: a, builtin: template-seed}\n", &["'a' (entry 1), field 'flag': missing"]);
    refused_yaml("initialisers:\n  - {name: a, flag: v1}\n", &["'a' (entry 1), field 'component': missing"]);
}

#[test]
fn duplicate_names_are_refused() {
    refused_yaml(
        "initialisers:\n  - {name: a, flag: v1, builtin: default-flow-start, params: {blueprint: x}}\n  - {name: a, flag: v2, builtin: default-flow-start, params: {blueprint: x}}\n",
        &["'a' (entry 2), field 'name': duplicate name"],
    );
}

#[test]
fn unknown_classes_and_builtins_are_refused() {
    refused_yaml(
        "initialisers:\n  - {name: a, flag: v1, class: acme.Init}\n",
        &["field 'class': unknown class 'acme.Init'"],
    );
    refused_yaml(
        "initialisers:\n  - {name: a, flag: v1, builtin: seeder}\n",
        &["field 'builtin': unknown builtin 'seeder'"],
    );
}

#[test]
fn missing_unreadable_and_foreign_components_are_refused() {
    refused_yaml(
        "initialisers:\n  - {name: a, flag: v1, component: gone.wasm}\n",
        &["field 'component': cannot read", "gone.wasm"],
    );
    refused_yaml("initialisers:\n  - {name: a, flag: v1, component: .}\n", &["field 'component': cannot read"]);

    let scratch = Scratch::new();
    scratch.write("junk.wasm", "this is not wasm");
    let init = scratch.write("init.yaml", "initialisers:\n  - {name: junk, flag: v1, component: junk.wasm}\n");
    refused(&scratch, &init, &["'junk' (entry 1), field 'component'", "not a WebAssembly component"]);

    let scratch = Scratch::new();
    let init = scratch.init_file(&[entry("stranger", "wrong-world", json!({}))]);
    refused(&scratch, &init, &["'stranger' (entry 1), field 'component'", "initialiser-component"]);
}

#[test]
fn params_rejected_by_validate_are_refused() {
    refused_yaml(
        "initialisers:\n  - {name: seed, flag: v1, class: trustgraph.bootstrap.initialisers.TemplateSeed}\n",
        &["'seed' (entry 1), field 'params'", "config_file"],
    );
    refused_yaml(
        "initialisers:\n  - {name: ws, flag: v1, builtin: workspace-init, params: {source: elsewhere}}\n",
        &["'ws' (entry 1), field 'params'", "source"],
    );
    // A component's own validate() speaks for it too.
    let scratch = Scratch::new();
    let init = scratch.init_file(&[entry("h", "hostile", json!({"mode": "read-file"}))]);
    refused(&scratch, &init, &["'h' (entry 1), field 'params'", "path"]);
}

#[test]
fn an_unknown_param_of_a_core_initialiser_is_a_warning_that_names_it() {
    let scratch = Scratch::new();
    let seed = support::example_seed();
    let init = scratch.init_file(&[json!({"builtin": "template-seed", "name": "seed", "flag": "v1",
                                          "params": {"config_file": seed, "overwrte": true}})]);
    let output = scratch.run_once(&init);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(logged(&stderr(&output), "seed", &["WARN", "overwrte"]), "{}", stderr(&output));
}

#[test]
fn the_embedded_backend_needs_a_state_file() {
    let scratch = Scratch::new();
    let init = scratch.init_file(&[entry("p", "probe", json!({"workspace": "w"}))]);
    let output = bin().arg("-c").arg(&init).args(["--once", "--pubsub-backend", "embedded"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--pubsub-backend embedded needs --state"), "{}", stderr(&output));
}

#[test]
fn json_logs_carry_the_initialiser_and_run_id_on_every_line_of_a_run() {
    let scratch = Scratch::new();
    let init = support::repo().join("examples/init.yaml");
    let output = scratch.once_command(&init).args(["--log-format", "json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines: Vec<Value> = stderr(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let run_of = |text: &str| {
        let line = lines
            .iter()
            .find(|line| line["fields"]["message"].as_str().is_some_and(|m| m.contains(text)))
            .unwrap_or_else(|| panic!("no line with {text:?}"));
        (line["span"]["initialiser"].as_str().unwrap().to_owned(), line["span"]["run_id"].as_u64().unwrap())
    };
    // The guest's own log line and the runtime's lines of the same run share the run id.
    let (seeded_by, seed_run) = run_of("Template seeded");
    assert_eq!(seeded_by, "template-seed");
    let (_, populated_run) = run_of("populated with");
    assert_ne!(seed_run, populated_run, "two runs share a run id");
    let completed: Vec<u64> = lines
        .iter()
        .filter(|line| line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("completed")))
        .map(|line| line["span"]["run_id"].as_u64().unwrap())
        .collect();
    assert!(completed.contains(&seed_run) && completed.contains(&populated_run), "{completed:?}");
}

#[test]
fn sigterm_stops_the_running_guest_stores_nothing_and_exits_0() {
    use std::io::BufRead;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let scratch = Scratch::new();
    let mut spinner = entry("spinner", "hostile", json!({"mode": "spin"}));
    spinner["limits"] = json!({"fuel": 1_000_000_000_000_u64, "timeout": "10m"});
    let init = scratch.init_file(&[spinner]);
    let mut child = bin()
        .arg("-c")
        .arg(&init)
        .args(["--pubsub-backend", "embedded", "--state"])
        .arg(scratch.state())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Wait until the guest is running (bounded only so that a broken build cannot hang the suite).
    let (started_tx, started) = std::sync::mpsc::channel();
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in std::io::BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            if line.contains("running (old_flag=none") {
                let _ = started_tx.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    started.recv_timeout(Duration::from_secs(120)).expect("the guest never started");

    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let give_up = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > give_up {
            child.kill().unwrap();
            panic!("still running long after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert_eq!(support::stored_flags(&scratch.dump()), Value::Null, "a flag was stored for a stopped run");
}

#[test]
fn builtins_load_precompiled_and_are_cached_for_the_next_start() {
    let scratch = Scratch::new();
    let cache = scratch.path("compiled");
    let init = support::repo().join("examples/init.yaml");
    let start = || {
        let output = scratch
            .once_command(&init)
            .arg("--compile-cache")
            .arg(&cache)
            .args(["--log-level", "bootstrap_wasm=debug"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stderr(&output)
    };
    let first = start();
    assert!(!first.contains("from the cache"), "{first}");
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 3, "one artefact per builtin: {cached:?}");
    // The first start compiled nothing: it cached the artefacts the build precompiled.
    for path in &cached {
        let artefact = std::fs::read(path).unwrap();
        let precompiled = Builtin::ALL.iter().any(|builtin| builtin.precompiled() == artefact.as_slice());
        assert!(precompiled, "{} is not an artefact of the build", path.display());
    }

    let second = start();
    assert_eq!(second.matches("loaded a compiled component from the cache").count(), 3, "{second}");
}

/// SIGTERM while a guest runs against a broker backend: the guest stops, nothing is stored for
/// it, the broker clients are closed (the log line `closed`), and the process exits 0. `args`
/// are the backend's options; `store` is what the service peer on that broker serves;
/// `while_running` checks the broker while the guest runs. Returns the runtime's log.
fn sigterm_on_a_broker(
    args: &[String],
    store: &bootstrap_wasm::embedded::EmbeddedServices,
    closed: &str,
    while_running: impl FnOnce(),
) -> String {
    let scratch = Scratch::new();
    let init = support::running::probe_then_spinner(&scratch);
    let mut running = support::running::Running::spawn(bin().arg("-c").arg(&init).args(args));
    // The probe ran (the clients have produced and consumed), the spinner is running.
    running.wait_for_nth(support::running::RUNNING, 2);
    while_running();

    running.signal(libc::SIGTERM);
    let status = running.wait_exit();
    let log = running.log.clone();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.lines().any(|line| line.contains(closed)), "no {closed:?} in:\n{log}");
    let flags = support::stored_flags(&store.dump(None).unwrap());
    assert_eq!(flags, json!({"probe": "\"v1\""}), "a flag was stored for the stopped run:\n{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_pulsar_closes_its_consumers_producers_and_client_and_exits_0() {
    use bootstrap_wasm::broker::pulsar::PulsarTransport;

    let broker = support::pulsar::PulsarLite::start();
    let scratch = Scratch::new();
    let store = bootstrap_wasm::embedded::EmbeddedServices::open(&scratch.path("peer.redb"))
        .unwrap()
        .speaking(bootstrap_wasm::services::Protocol::Legacy);
    let _peer = support::peer::ServicePeer::start(
        std::sync::Arc::new(PulsarTransport::new(broker.options())),
        store.clone(),
        support::peer::Behaviour::default(),
    )
    .await;
    // The peer's protocol, given: detecting it would open IAM's queues too.
    let args = [
        "--pubsub-backend".to_owned(),
        "pulsar".into(),
        "-p".into(),
        broker.url(),
        "--protocol".into(),
        "legacy".into(),
    ];
    let log = tokio::task::block_in_place(|| sigterm_on_a_broker(&args, &store, "closed the Pulsar client", || {}));
    // One consumer and one producer for each of config-svc and flow-svc.
    assert!(log.contains("consumers=2 producers=2"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_rabbitmq_closes_its_connection_and_exits_0() {
    use bootstrap_wasm::broker::rabbitmq::RabbitTransport;

    let vhost = support::rabbitmq::TestVhost::create();
    let scratch = Scratch::new();
    let store = bootstrap_wasm::embedded::EmbeddedServices::open(&scratch.path("peer.redb"))
        .unwrap()
        .speaking(bootstrap_wasm::services::Protocol::Legacy);
    let _peer = support::peer::ServicePeer::start(
        std::sync::Arc::new(RabbitTransport::new(vhost.options())),
        store.clone(),
        support::peer::Behaviour::default(),
    )
    .await;
    let mut args = support::rabbitmq::backend_args(vhost.options());
    args.extend(["--protocol".into(), "legacy".into()]);
    // While it runs: the peer's connection and the runtime's two (services and lease); after
    // the exit, the peer's alone.
    let log = tokio::task::block_in_place(|| {
        sigterm_on_a_broker(&args, &store, "closed the RabbitMQ connection", || assert_eq!(vhost.connections(), 3))
    });
    assert!(log.contains("consumers=2"), "{log}");
    assert_eq!(vhost.connections(), 1, "the runtime's connection is still open on the server");
}

#[test]
fn under_an_address_space_limit_instances_are_mapped_per_call_and_it_still_converges() {
    // 16 GiB: too little for the instance pool's reservation (~100 GiB), enough for instances
    // mapped one call at a time.
    let scratch = Scratch::new();
    let init = support::repo().join("examples/init.yaml");
    let runtime = scratch.once_command(&init);
    let mut limited = std::process::Command::new("sh");
    limited
        .args(["-c", "ulimit -v 16777216 && exec \"$0\" \"$@\""])
        .arg(runtime.get_program())
        .args(runtime.get_args());
    let output = limited.output().unwrap();
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{log}");
    assert!(log.contains("mapping instances per call instead of from a pool"), "{log}");
    assert!(logged(&log, "default-flow-start", &["completed"]), "{log}");
}

#[test]
fn a_concurrency_of_zero_is_refused_before_anything_is_written() {
    let scratch = Scratch::new();
    let init = support::repo().join("examples/init.yaml");
    let output = scratch.once_command(&init).args(["--concurrency", "0"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--concurrency"), "{}", stderr(&output));
    assert!(!scratch.state().exists(), "a refused start-up created the state store");

    let output = scratch.once_command(&init).args(["--concurrency", "1"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_kafka_closes_its_clients_and_exits_0() {
    use bootstrap_wasm::broker::kafka::{KafkaOptions, KafkaTransport};

    let broker = support::kafka::Kafka::start();
    let scratch = Scratch::new();
    let store = bootstrap_wasm::embedded::EmbeddedServices::open(&scratch.path("peer.redb"))
        .unwrap()
        .speaking(bootstrap_wasm::services::Protocol::Legacy);
    let options = KafkaOptions::plaintext(broker.bootstrap_servers());
    let _peer = support::peer::ServicePeer::start(
        std::sync::Arc::new(KafkaTransport::new(options, std::time::Duration::from_secs(10))),
        store.clone(),
        support::peer::Behaviour::default(),
    )
    .await;
    let args = [
        "--pubsub-backend".to_owned(),
        "kafka".into(),
        "--kafka-bootstrap-servers".into(),
        broker.bootstrap_servers(),
        "--protocol".into(),
        "legacy".into(),
    ];
    let log = tokio::task::block_in_place(|| sigterm_on_a_broker(&args, &store, "closed the Kafka clients", || {}));
    // The runtime reads answers only: it joined no consumer group.
    assert!(log.contains("groups=0"), "{log}");
}

#[test]
fn kafka_settings_that_cannot_work_are_a_configuration_error() {
    let init = support::repo().join("examples/init.yaml");
    let refusals: [(&[&str], &str); 5] = [
        (&["--kafka-security-protocol", "TLS"], "--kafka-security-protocol"),
        (&["--kafka-config", "no.such.setting=1"], "no.such.setting"),
        (&["--kafka-config", "linger.ms"], "use KEY=VALUE"),
        (&["--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-mechanism", "GSSAPI"], "GSSAPI"),
        (&["--kafka-sasl-username", "svc"], "use SASL_PLAINTEXT or SASL_SSL"),
    ];
    for (settings, expected) in refusals {
        let mut command = bin();
        command.arg("-c").arg(&init).args(["--once", "--pubsub-backend", "kafka"]).args(settings);
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{settings:?}: {}", stderr(&output));
        assert!(stderr(&output).contains(expected), "{settings:?}: {}", stderr(&output));
    }
}

#[test]
fn a_pulsar_url_or_certificate_file_that_cannot_work_is_a_configuration_error() {
    let init = support::repo().join("examples/init.yaml");
    let output = bin().arg("-c").arg(&init).args(["--once", "-p", "http://pulsar:6650"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--pulsar-host: not a pulsar:// or pulsar+ssl:// URL"), "{}", stderr(&output));

    let scratch = Scratch::new();
    let not_pem = scratch.write("ca.pem", "not a certificate");
    for certs in [scratch.path("missing.pem"), not_pem] {
        let mut command = bin();
        command.arg("-c").arg(&init).args(["--once", "-p", "pulsar+ssl://pulsar:6651", "--pulsar-tls-trust-certs"]);
        let output = command.arg(&certs).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let expected = format!("--pulsar-tls-trust-certs: {}", certs.display());
        assert!(stderr(&output).contains(&expected), "{}", stderr(&output));
    }
}

#[test]
fn trustgraph_2_11_command_lines_run_unchanged() {
    // Upstream's processor flags, as a TrustGraph 2.11 deployment passes them to its
    // bootstrapper; `--concurrency` counts receiver workers there, initialisers at once here.
    let scratch = Scratch::new();
    let init = support::repo().join("examples/init.yaml");
    let mut command = scratch.once_command(&init);
    command.args(["--id", "bootstrap", "--config-push-queue", "notify:tg:config", "--concurrency", "1"]);
    command.args(["--config-timeout", "60", "--pulsar-admin-url", "http://pulsar:8080", "-l", "WARNING"]);
    command.args(["--no-loki-enabled", "--loki-url", "http://loki:3100/loki/api/v1/push", "--no-metrics"]);
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    // `-l WARNING` is upstream's spelling of `warn`: a converged run has nothing to say.
    assert!(!stderr(&output).contains("INFO"), "{}", stderr(&output));
}
