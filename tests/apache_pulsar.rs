//! The Pulsar client and the bootstrapper on a real Apache Pulsar (4.2.4, standalone, and a
//! Pulsar proxy in front of it), where `tests/pulsar.rs` uses pulsar-lite: the transport's
//! shared test bodies, directly and through the proxy; TrustGraph 2.11.1's own services
//! converged by the real binary, PulsarTopology creating TrustGraph's namespaces through the
//! broker's real admin API; the lease between two replicas; and a broker moving topics under
//! a client (an unload) and a partitioned response topic.
//!
//! The tests share one broker (`support::apache_pulsar`); each uses a tenant of its own, but
//! for those that need TrustGraph's `tg`, which take turns on it.

mod support;

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bootstrap_wasm::broker::pulsar::{PulsarOptions, PulsarTransport};
use bootstrap_wasm::broker::{BrokerServices, Queue, QueueClass, RequestResponse, Transport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::{ConfigClient, FlowClient, Protocol};
use serde_json::{Value, json};
use support::apache_pulsar::{ApachePulsar, ApachePulsarProxy};
use support::peer::{Behaviour, ServicePeer};
use support::replica::{PATIENCE, Replica, both_logs, failing_probe};
use support::transport::{HANG, carries_body_and_id, carries_request_response_calls};
use support::trustgraph::{TrustGraph, Version, config_version};
use support::{Scratch, bin};

/// TrustGraph's namespaces, as PulsarTopology creates them.
const TG_NAMESPACES: [&str; 4] = ["tg/flow", "tg/notify", "tg/request", "tg/response"];

fn transport(url: String) -> Arc<dyn Transport> {
    Arc::new(PulsarTransport::new(PulsarOptions::new(url)))
}

/// The `tg` namespaces the shared transport bodies use (`request:tg:echo`, `response:tg:echo`).
fn create_tg_echo_namespaces(broker: &ApachePulsar) {
    broker.create_tenant_and_namespace("tg", "request");
    broker.create_tenant_and_namespace("tg", "response");
}

#[tokio::test]
async fn the_client_round_trips_on_apache_pulsar() {
    let broker = ApachePulsar::shared();
    let _tg = broker.tg().await;
    create_tg_echo_namespaces(broker);

    let transport = transport(broker.url());
    carries_body_and_id(transport.as_ref()).await;
    carries_request_response_calls(transport.clone()).await;
    assert_eq!(transport.describe(), broker.url());
}

#[tokio::test]
async fn the_client_connects_through_a_pulsar_proxy() {
    let broker = ApachePulsar::shared();
    let _tg = broker.tg().await;
    create_tg_echo_namespaces(broker);
    let proxy = ApachePulsarProxy::start(broker);

    let transport = transport(proxy.url());
    carries_body_and_id(transport.as_ref()).await;
    carries_request_response_calls(transport.clone()).await;
    // The broker is reachable directly too: the proxy's log tells that the client went
    // through it, naming the broker in its CONNECT as a lookup through a proxy says to.
    assert!(
        proxy.log().contains("hasProxyToBrokerUrl: true"),
        "no client asked the proxy for a broker:\n{}",
        proxy.log()
    );
}

/// The scratch directory's copy of `examples/init.yaml` (TemplateSeed, WorkspaceInit,
/// DefaultFlowStart, with its seed) with PulsarTopology first, on `broker`'s admin API, as in
/// `examples/trustgraph-init.yaml`.
fn deployment_init_file(scratch: &Scratch, broker: &ApachePulsar) -> PathBuf {
    std::fs::copy(support::example_seed(), scratch.path("seed.json")).unwrap();
    let example = std::fs::read_to_string(support::repo().join("examples/init.yaml")).unwrap();
    let topology = format!(
        "initialisers:
  - class: trustgraph.bootstrap.initialisers.PulsarTopology
    name: pulsar-topology
    flag: v1
    params:
      admin_url: {}
      tenant: tg
",
        broker.admin_url()
    );
    let (_, initialisers) = example.split_once("initialisers:\n").unwrap();
    scratch.write("init.yaml", &(topology + initialisers))
}

/// How many wakes a fresh deployment may take to converge, as in `tests/trustgraph.rs`:
/// flow-svc serves a workspace shortly after IAM registers it.
const WAKES: usize = 5;

#[tokio::test]
async fn bootstrap_wasm_converges_a_deployment_on_apache_pulsar() {
    let broker = ApachePulsar::shared();
    let _tg = broker.tg().await;
    let scratch = Scratch::new();
    let init = deployment_init_file(&scratch, broker);
    let backend = ["--pubsub-backend", "pulsar", "--pulsar-host", &broker.url()].map(String::from);
    let once = |request_timeout: &str| -> Output {
        let mut command = bin();
        command.arg("-c").arg(&init).args(["--once", "--protocol", "workspaces", "--no-compile-cache"]);
        command.args(["--request-timeout", request_timeout, "--lease-name", "apache-pulsar-deployment"]);
        command.args(&backend).output().unwrap()
    };

    // A fresh cluster: TrustGraph's services need its namespaces before they can subscribe.
    // PulsarTopology, which runs before the services gate, creates them through the admin
    // API; the gate stays closed, as no service runs yet.
    let first = once("2s");
    let log = support::stderr(&first);
    assert_eq!(first.status.code(), Some(1), "{log}");
    assert!(support::logged(&log, "pulsar-topology", &["running"]), "{log}");
    let mut namespaces = broker.namespaces("tg");
    namespaces.sort();
    assert_eq!(namespaces, TG_NAMESPACES, "{log}");

    let _trustgraph = TrustGraph::start(Version::V2_11_1, &backend);
    let mut logs = String::new();
    let converged = (0..WAKES).any(|_| {
        let output = once("10s");
        logs.push_str(&support::stderr(&output));
        output.status.code() == Some(0)
    });
    assert!(converged, "not converged in {WAKES} wakes:\n{logs}");

    let services = BrokerServices::speaking(Protocol::Workspaces, transport(broker.url()), Duration::from_secs(10));
    let config = ConfigClient(&services);
    let version_before = config_version(&services).await;
    let second = once("10s");
    let log = support::stderr(&second);
    assert_eq!(second.status.code(), Some(0), "{log}");
    assert!(log.contains("converged=true"), "{log}");
    assert!(!log.contains("running (old_flag"), "the second run ran something again:\n{log}");
    assert_eq!(config_version(&services).await, version_before, "the second run wrote to the deployment:\n{log}");

    // The flags and the default flow, in TrustGraph's own config-svc and flow-svc.
    let flags = config.values("__system__", "init-state").await.unwrap();
    let names: Vec<&str> = flags.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["default-flow-start", "pulsar-topology", "template-seed", "workspace-init"]);
    assert!(flags.iter().all(|(_, flag)| flag == r#""v1""#), "{flags:?}");
    assert_eq!(FlowClient(&services).list_flows("default").await.unwrap(), ["default"]);
}

/// TrustGraph's namespaces, the services on them (the embedded backend's, over the broker, as
/// tests/replicas.rs serves them), and the binary's arguments for lease `lease_name`.
async fn lease_deployment(broker: &ApachePulsar, scratch: &Scratch, lease_name: &str) -> (ServicePeer, Vec<String>) {
    for namespace in TG_NAMESPACES {
        let (tenant, namespace) = namespace.split_once('/').unwrap();
        broker.create_tenant_and_namespace(tenant, namespace);
    }
    let store = EmbeddedServices::open(&scratch.path("peer.redb")).unwrap().speaking(Protocol::Workspaces);
    let peer = ServicePeer::start(transport(broker.url()), store, Behaviour::default()).await;
    let backend = ["--pubsub-backend", "pulsar", "-p", &broker.url(), "--protocol", "workspaces"]
        .into_iter()
        .chain(["--lease-name", lease_name])
        .map(String::from)
        .collect();
    (peer, backend)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_holds_the_lease_on_apache_pulsar() {
    let broker = ApachePulsar::shared();
    let _tg = broker.tg().await;
    let scratch = Scratch::new();
    let (_peer, backend) = lease_deployment(broker, &scratch, "apache-pulsar-replicas").await;

    let init = failing_probe(&scratch);

    let first = Replica::start("first", &scratch, &init, &backend);
    first.wait_for("took the lease and ran", |r| r.holds() && !r.runs().is_empty()).await;
    let second = Replica::start("second", &scratch, &init, &backend);
    second.wait_for("said where it stands", |r| r.log().contains("standby: ") || r.holds()).await;
    let mut replicas = [first, second];

    // One holds the lease and keeps running while the other stands by. (Apache Pulsar refuses
    // a second consumer on an Exclusive subscription: the newcomer never takes it.)
    let holder = replicas.iter().position(Replica::holds).expect("a holder");
    let runs_before = replicas[holder].runs().len();
    replicas[holder].wait_for("ran twice more", |r| r.runs().len() >= runs_before + 2).await;
    let standby = 1 - holder;
    assert!(replicas[holder].holds() && !replicas[standby].holds(), "{}", both_logs(&replicas));
    assert!(replicas[standby].log().contains("standby: "), "{}", both_logs(&replicas));
    assert!(replicas[standby].runs().is_empty(), "the standby ran:\n{}", both_logs(&replicas));

    let killed_at = replicas[holder].kill();
    let took_over = |r: &Replica| {
        r.times_of("lease acquired").last().is_some_and(|at| *at > killed_at)
            && r.runs().last().is_some_and(|at| *at > killed_at)
    };
    let deadline = Instant::now() + PATIENCE;
    while !took_over(&replicas[standby]) {
        if Instant::now() > deadline {
            let lease = "non-persistent://public/default/tg-lease-apache-pulsar-replicas";
            let logged = broker.log();
            // Consumers closed by their client are logged without their topic.
            let about_the_lease =
                |line: &&str| line.contains("tg-lease-apache-pulsar-replicas") || line.contains("Closing consumer");
            let lines: Vec<&str> = logged.lines().filter(about_the_lease).collect();
            panic!(
                "the standby never took over and ran:\n{}\n---\nthe lease topic: {}\nthe broker's log of it:\n{}",
                both_logs(&replicas),
                broker.topic_stats(lease),
                lines.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acquired = *replicas[standby].times_of("lease acquired").last().unwrap();
    println!("the standby took the lease {} ms after the holder's SIGKILL", ms_between(killed_at, acquired));
    // The standby ran only once it held the lease, after the holder died.
    assert!(replicas[standby].runs().iter().all(|run| *run >= acquired), "{}", both_logs(&replicas));
}

/// The broker moves the lease's topic (an unload) three times while a replica holds the lease:
/// its consumer and heartbeat producer come back on their own, and the lease never lapses.
/// At the default pace (`--gate-backoff 5s`, a 1.25 s loss window), which the broker's
/// fencing of an unloaded topic (it refuses the first resubscription) fits in.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_held_through_topic_unloads_never_lapses() {
    let broker = ApachePulsar::shared();
    let _tg = broker.tg().await;
    let scratch = Scratch::new();
    let (_peer, backend) = lease_deployment(broker, &scratch, "apache-pulsar-unloads").await;
    let init = failing_probe(&scratch);

    let holder = Replica::start_paced("holder", &scratch, &init, &backend, "5s");
    holder.wait_for("took the lease and ran", |r| r.holds() && !r.runs().is_empty()).await;
    for _ in 0..3 {
        broker.unload_topic("non-persistent://public/default/tg-lease-apache-pulsar-unloads");
        let runs = holder.runs().len();
        holder.wait_for("ran twice more", |r| r.runs().len() >= runs + 2).await;
    }
    let log = holder.log();
    assert!(log.contains("subscribing again"), "the broker moved the lease's topic:\n{log}");
    assert!(!log.contains("lease lost"), "the lease lapsed:\n{log}");
    assert_eq!(log.matches("lease acquired").count(), 1, "{log}");
}

fn ms_between(from: SystemTime, to: SystemTime) -> u128 {
    to.duration_since(from).unwrap_or_default().as_millis()
}

/// A tenant of the test's own on the shared broker, with the `request` and `response`
/// namespaces; its echo service's request and response queues there.
fn echo_queues(broker: &ApachePulsar, test: &str) -> (Queue, Queue) {
    let tenant = format!("{test}-{}", uuid::Uuid::new_v4().simple());
    broker.create_tenant_and_namespace(&tenant, "request");
    broker.create_tenant_and_namespace(&tenant, "response");
    let queue = |class| Queue { class, topicspace: tenant.clone(), topic: "echo".into() };
    (queue(QueueClass::Request), queue(QueueClass::Response))
}

/// An echo service on a client of its own, as a service process would be: subscribed (when
/// this returns) to `requests`, it answers each on `responses` with the request itself.
async fn start_echo_service(url: String, requests: &Queue, responses: &Queue) -> tokio::task::JoinHandle<()> {
    let transport = transport(url);
    let mut incoming = transport.subscribe(requests, "echo-svc").await.unwrap();
    let responses = responses.clone();
    tokio::spawn(async move {
        while let Some(request) = incoming.recv().await {
            transport.publish(&responses, request).await.unwrap();
        }
    })
}

/// Topics unloaded (moved by the broker) while calls are made: every call is answered, and a
/// subscription made before the unloads still delivers after them, never having closed.
///
/// The broker drops what is published to a non-persistent topic while it has no consumer, and
/// after an unload the service's consumer and the client's producer come back in either order
/// (the broker refuses the first resubscriptions while the topic is fenced): a request sent in
/// those milliseconds is lost, for Pulsar's own clients as for this one. So the calls here are
/// resent until answered under the same id, as the runtime resends its reads
/// (`RequestResponse::request_resending`); a write so lost fails after `--request-timeout` and
/// its initialiser runs again at the next wake.
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_unload_mid_cycle_loses_no_call_and_no_subscription() {
    let broker = ApachePulsar::shared();
    let (requests, responses) = echo_queues(broker, "unload");
    let _service = start_echo_service(broker.url(), &requests, &responses).await;
    let client_transport = transport(broker.url());
    let client =
        RequestResponse::new(client_transport.clone(), requests.clone(), responses.clone(), "client".into(), HANG);
    let mut watcher = client_transport.subscribe(&responses, "watcher").await.unwrap();

    // The unloads, from a thread of their own (the admin client blocks), each once the calls
    // have had [`ANSWERS_BETWEEN_UNLOADS`] more answers since the last: the request topic, the
    // response topic, then both, while the calls go on.
    let unloads = vec![
        vec![requests.pulsar_topic()],
        vec![responses.pulsar_topic()],
        vec![requests.pulsar_topic(), responses.pulsar_topic()],
    ];
    let total_unloads = unloads.len();
    let answered = Arc::new(AtomicUsize::new(0));
    let calls_over = Arc::new(AtomicBool::new(false));
    let unloader = {
        let (answered, calls_over) = (answered.clone(), calls_over.clone());
        std::thread::spawn(move || {
            let mut done = 0;
            for topics in unloads {
                let after = answered.load(Ordering::SeqCst) + ANSWERS_BETWEEN_UNLOADS;
                while answered.load(Ordering::SeqCst) < after {
                    if calls_over.load(Ordering::SeqCst) {
                        return done;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                for topic in &topics {
                    broker.unload_topic(topic);
                }
                done += 1;
            }
            done
        })
    };

    // Calls, one after the other, until every unload is done and a few more calls after that
    // (bounded, should the unloader never finish).
    let (mut outcome, mut calls_after_unloads) = (Ok(()), 0);
    for n in 0..1_000 {
        if unloader.is_finished() {
            if calls_after_unloads == ANSWERS_BETWEEN_UNLOADS {
                break;
            }
            calls_after_unloads += 1;
        }
        match client.request_resending::<_, Value>(&json!({"n": n}), Duration::from_millis(250)).await {
            Ok(answer) if answer == json!({"n": n}) => {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(answer) => {
                outcome = Err(format!("call {n} was answered {answer}"));
                break;
            }
            Err(e) => {
                outcome = Err(format!("call {n}: {e}"));
                break;
            }
        }
    }
    calls_over.store(true, Ordering::SeqCst);
    let unloaded = unloader.join().unwrap();
    if let Err(failure) = outcome {
        panic!(
            "{failure}, after {unloaded} of {total_unloads} unloads and {} answers\n{}",
            answered.load(Ordering::SeqCst),
            echo_diagnosis(broker, &requests, &responses)
        );
    }
    assert_eq!(unloaded, total_unloads, "every unload happened while calls were made");

    // The watcher's subscription outlived the unloads: what is published now reaches it.
    let after = bootstrap_wasm::broker::Envelope { id: Some("after".into()), body: b"{}".to_vec() };
    client_transport.publish(&responses, after).await.unwrap();
    loop {
        let delivered = tokio::time::timeout(HANG, watcher.recv()).await.expect("within the hang guard");
        match delivered.expect("the watcher's subscription never closed") {
            envelope if envelope.id.as_deref() == Some("after") => break,
            _earlier => {}
        }
    }
}

/// How many answers the client gets between two unloads.
const ANSWERS_BETWEEN_UNLOADS: usize = 3;

/// For a failure's message: who is subscribed to and publishing on the echo topics, as the
/// broker sees it, and what it logged of their consumers and producers.
fn echo_diagnosis(broker: &ApachePulsar, requests: &Queue, responses: &Queue) -> String {
    let mut diagnosis = String::new();
    for topic in [requests.pulsar_topic(), responses.pulsar_topic()] {
        let stats: Value = serde_json::from_str(&broker.topic_stats(&topic)).unwrap_or_default();
        let consumers: Vec<String> = stats["subscriptions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, subscription)| {
                format!("{name}: {} consumers", subscription["consumers"].as_array().map_or(0, Vec::len))
            })
            .collect();
        let producers = stats["publishers"].as_array().map_or(0, Vec::len);
        diagnosis += &format!("{topic}: {producers} producers; subscriptions {consumers:?}\n");
    }
    let tenant = requests.topicspace.as_str();
    let events = ["Unloading topic", "Disconnecting", "Subscribing on", "Created new producer", "Failed to create"];
    let logged = broker.log();
    let lines = logged.lines().filter(|line| {
        line.contains(tenant) && line.contains("/echo") && events.iter().any(|event| line.contains(event))
    });
    diagnosis + "the broker's log of them:\n" + &lines.collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_response_topic_works() {
    let broker = ApachePulsar::shared();
    let (requests, responses) = echo_queues(broker, "partitioned");
    broker.create_partitioned_topic(&responses.pulsar_topic(), 3);

    let _service = start_echo_service(broker.url(), &requests, &responses).await;
    let client = RequestResponse::new(transport(broker.url()), requests, responses.clone(), "client".into(), HANG);
    for n in 0..6 {
        let answer: Value = client.request(&json!({"n": n})).await.unwrap_or_else(|e| panic!("call {n}: {e}"));
        assert_eq!(answer, json!({"n": n}));
    }
    // The client reads every partition, wherever the service's producer sends: its
    // subscription stands on each.
    for partition in 0..3 {
        let topic = format!("{}-partition-{partition}", responses.pulsar_topic());
        let stats: Value = serde_json::from_str(&broker.topic_stats(&topic)).unwrap_or_default();
        let consumers = stats["subscriptions"]["client"]["consumers"].as_array().map_or(0, Vec::len);
        assert_eq!(consumers, 1, "{topic}: {stats}");
    }
}
