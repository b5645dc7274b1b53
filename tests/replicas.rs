//! One active replica, on every backend (Kafka's lease on a real Apache Kafka), in both protocols (`legacy` and `workspaces`): two
//! real `bootstrap-wasm` processes on one deployment.
//! While both live, only the lease holder runs initialisers and the other says it is on
//! standby; after the holder is SIGKILLed, the standby takes the lease and runs. The runs of
//! the two never interleave in time (compared by their log lines' timestamps). On the brokers,
//! a replica whose broker goes away loses the lease, runs nothing, and takes it again when the
//! broker is back.
//!
//! The initialiser is the `probe` test component with `fail: true`: it fails every run, so it
//! runs again on every wake (every `--init-retry`, 200 ms here) for as long as its replica is
//! active. Each test prints how long the takeover took, from the SIGKILL to the standby's
//! "lease acquired" (docs/design.md quotes the figures).

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bootstrap_wasm::broker::Transport;
use bootstrap_wasm::broker::kafka::{KafkaOptions, KafkaTransport};
use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::rabbitmq::{RabbitOptions, RabbitTransport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::Protocol;
use support::Scratch;
use support::kafka::Kafka;
use support::peer::{Behaviour, ServicePeer};
use support::pulsar::PulsarLite;
use support::rabbitmq::{Relay, TestVhost};
use support::replica::{PATIENCE, Replica, failing_probe, timestamp};

/// The scenario, on a deployment reached with `backend` (the binary's arguments).
///
/// A broker may hand the lease to a newcomer as it subscribes (pulsar-lite sometimes prefers
/// it), so the holder is found from the logs rather than assumed to be the first replica;
/// such a handover must still leave the two holds apart in time, which the end checks.
async fn one_replica_runs_and_the_standby_takes_over(label: &str, scratch: &Scratch, backend: &[String]) {
    let init = failing_probe(scratch);
    let first = Replica::start("first", scratch, &init, backend);
    first.wait_for("took the lease and ran", |r| r.holds() && !r.runs().is_empty()).await;
    let started = timestamp(first.log().lines().next().expect("a log line"));
    let free_lease = first.times_of("lease acquired")[0].duration_since(started).unwrap_or_default();
    println!("{label}: a lone replica took the lease {} ms after its first log line", free_lease.as_millis());
    let second = Replica::start("second", scratch, &init, backend);
    second.wait_for("said where it stands", |r| r.log().contains("standby: ") || r.holds()).await;
    let mut replicas = [first, second];

    // One holds the lease and keeps running while the other stands by.
    let deadline = Instant::now() + PATIENCE;
    let holder = loop {
        let holding: Vec<usize> = (0..2).filter(|&i| replicas[i].holds()).collect();
        if let [holder] = holding[..] {
            let runs_before = replicas[holder].runs().len();
            replicas[holder].wait_for("ran twice more", |r| r.runs().len() >= runs_before + 2).await;
            if replicas[holder].holds() && !replicas[1 - holder].holds() {
                break holder;
            }
        }
        assert!(Instant::now() < deadline, "no single holder:\n{}\n---\n{}", replicas[0].log(), replicas[1].log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let standby = 1 - holder;
    assert!(replicas[standby].log().contains("standby: "), "{}", replicas[standby].log());

    let killed_at = replicas[holder].kill();
    replicas[standby]
        .wait_for("took over and ran", |r| {
            r.times_of("lease acquired").last().is_some_and(|at| *at > killed_at)
                && r.runs().last().is_some_and(|at| *at > killed_at)
        })
        .await;
    let acquired = *replicas[standby].times_of("lease acquired").last().unwrap();
    let takeover = acquired.duration_since(killed_at).unwrap();
    println!("{label}: the standby took the lease {} ms after the holder's SIGKILL", takeover.as_millis());

    // No overlap: the two replicas' holds are apart in time, and each ran only while holding.
    let holds = [replicas[0].holds_until(killed_at), replicas[1].holds_until(killed_at)];
    let [mine, theirs] = if holder == 0 { holds.clone() } else { [holds[1].clone(), holds[0].clone()] };
    for (from, to) in &mine {
        for (other_from, other_to) in &theirs {
            assert!(
                to <= other_from || other_to <= from,
                "both held the lease at once:\n{}\n---\n{}",
                replicas[0].log(),
                replicas[1].log()
            );
        }
    }
    for (replica, holds) in replicas.iter().zip(&holds) {
        for run in replica.runs() {
            assert!(
                holds.iter().any(|(from, to)| *from <= run && run <= *to),
                "ran without the lease:\n{}",
                replica.log()
            );
        }
    }
}

/// One replica whose broker goes away (`go_away`) and comes back (`come_back`).
async fn a_lost_lease_stops_the_runs_until_it_is_taken_again(
    scratch: &Scratch,
    backend: &[String],
    go_away: impl FnOnce(),
    come_back: impl FnOnce(),
) {
    let replica = Replica::start("only", scratch, &failing_probe(scratch), backend);
    replica.wait_for("took the lease and ran", |r| r.log().contains("lease acquired") && !r.runs().is_empty()).await;
    go_away();
    replica.wait_for("lost the lease", |r| r.log().contains("lease lost")).await;
    come_back();
    replica
        .wait_for("took the lease again and ran", |r| {
            let acquired = r.times_of("lease acquired");
            acquired.len() == 2 && r.runs().last().is_some_and(|run| *run > acquired[1])
        })
        .await;
    let lost = replica.times_of("lease lost")[0];
    let again = replica.times_of("lease acquired")[1];
    let runs_between = replica.runs().into_iter().filter(|run| lost < *run && *run < again).count();
    assert_eq!(runs_between, 0, "ran without the lease:\n{}", replica.log());
}

/// The lease scenarios, on every backend, in one protocol.
macro_rules! in_protocol {
    ($protocol:ident, $speaking:expr) => {
        mod $protocol {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn embedded() {
                let scratch = Scratch::new();
                let state = path_arg(&scratch.state());
                let backend =
                    speaking($speaking, vec!["--pubsub-backend".into(), "embedded".into(), "--state".into(), state]);
                one_replica_runs_and_the_standby_takes_over("embedded", &scratch, &backend).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn pulsar() {
                let scratch = Scratch::new();
                let (_broker, _peer, backend) = pulsar_deployment(&scratch, $speaking).await;
                one_replica_runs_and_the_standby_takes_over("pulsar", &scratch, &backend).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn rabbitmq() {
                let scratch = Scratch::new();
                let vhost = TestVhost::create();
                let _peer = peer(Arc::new(RabbitTransport::new(vhost.options())), &scratch, $speaking).await;
                let backend = rabbitmq_args(&vhost.options(), $speaking);
                one_replica_runs_and_the_standby_takes_over("rabbitmq", &scratch, &backend).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn kafka() {
                let scratch = Scratch::new();
                let (_broker, _peer, backend) = kafka_deployment(&scratch, $speaking).await;
                one_replica_runs_and_the_standby_takes_over("kafka", &scratch, &backend).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn kafka_lease_lost_and_taken_again() {
                let scratch = Scratch::new();
                let (broker, _peer, backend) = kafka_deployment(&scratch, $speaking).await;
                let (go_away, come_back) = (|| broker.pause(), || broker.resume());
                a_lost_lease_stops_the_runs_until_it_is_taken_again(&scratch, &backend, go_away, come_back).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn pulsar_lease_lost_and_taken_again() {
                let scratch = Scratch::new();
                let (broker, _peer, backend) = pulsar_deployment(&scratch, $speaking).await;
                let (go_away, come_back) = (|| broker.pause(), || broker.resume());
                a_lost_lease_stops_the_runs_until_it_is_taken_again(&scratch, &backend, go_away, come_back).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn rabbitmq_lease_lost_and_taken_again() {
                let scratch = Scratch::new();
                let vhost = TestVhost::create();
                let relay = Relay::start();
                // The peer reaches the server directly; the replica through the relay, which is cut.
                let _peer = peer(Arc::new(RabbitTransport::new(vhost.options())), &scratch, $speaking).await;
                let backend = rabbitmq_args(&vhost.options_via(&relay), $speaking);
                let (go_away, come_back) = (|| relay.cut(), || relay.restore());
                a_lost_lease_stops_the_runs_until_it_is_taken_again(&scratch, &backend, go_away, come_back).await;
            }
        }
    };
}

/// On Kafka a replica that stops cleanly says on the lease topic that the lease is free, and
/// the next replica takes it on that word rather than a loss window after the last heartbeat.
#[tokio::test(flavor = "multi_thread")]
async fn on_kafka_a_replica_stopped_cleanly_releases_the_lease_to_the_next() {
    let scratch = Scratch::new();
    let (_broker, _peer, backend) = kafka_deployment(&scratch, Protocol::Workspaces).await;
    let init = failing_probe(&scratch);
    let mut first = Replica::start("first", &scratch, &init, &backend);
    first.wait_for("took the lease and ran", |r| r.holds() && !r.runs().is_empty()).await;
    // SIGTERM, as an orchestrator stops it.
    assert!(first.terminate().success(), "a clean stop; its log:\n{}", first.log());

    let second = Replica::start("second", &scratch, &init, &backend);
    second.wait_for("took the lease and ran", |r| r.holds() && !r.runs().is_empty()).await;
    assert!(
        second.log().contains("the lease's holder released it"),
        "taken on the first replica's release; its log:\n{}",
        second.log()
    );
}

in_protocol!(legacy, Protocol::Legacy);
in_protocol!(workspaces, Protocol::Workspaces);

/// `backend` (the binary's arguments), speaking `protocol`.
fn speaking(protocol: Protocol, mut backend: Vec<String>) -> Vec<String> {
    backend.extend(["--protocol".into(), protocol.name().into()]);
    backend
}

/// pulsar-lite with the services on it, and the binary's arguments to reach it.
async fn pulsar_deployment(scratch: &Scratch, protocol: Protocol) -> (PulsarLite, ServicePeer, Vec<String>) {
    let broker = PulsarLite::start();
    let peer = peer(Arc::new(PulsarTransport::new(broker.options())), scratch, protocol).await;
    let backend = speaking(protocol, vec!["--pubsub-backend".to_owned(), "pulsar".into(), "-p".into(), broker.url()]);
    (broker, peer, backend)
}

/// A Kafka broker with the services on it, and the binary's arguments to reach it.
async fn kafka_deployment(scratch: &Scratch, protocol: Protocol) -> (Kafka, ServicePeer, Vec<String>) {
    let broker = Kafka::start();
    let transport = KafkaTransport::new(KafkaOptions::plaintext(broker.bootstrap_servers()), Duration::from_secs(10));
    let peer = peer(Arc::new(transport), scratch, protocol).await;
    let servers = broker.bootstrap_servers();
    let backend = vec!["--pubsub-backend".into(), "kafka".into(), "--kafka-bootstrap-servers".into(), servers];
    (broker, peer, speaking(protocol, backend))
}

/// The binary's arguments for the RabbitMQ server of `options`.
fn rabbitmq_args(options: &RabbitOptions, protocol: Protocol) -> Vec<String> {
    let port = options.port.to_string();
    let pairs = [("host", options.host.as_str()), ("port", &port), ("vhost", &options.vhost)];
    let mut args = vec!["--pubsub-backend".to_owned(), "rabbitmq".to_owned()];
    args.extend(pairs.iter().flat_map(|(name, value)| [format!("--rabbitmq-{name}"), (*value).to_owned()]));
    speaking(protocol, args)
}

/// The services for the replicas, over `transport`, on a store of their own, speaking
/// `protocol`.
async fn peer(transport: Arc<dyn Transport>, scratch: &Scratch, protocol: Protocol) -> ServicePeer {
    let store = EmbeddedServices::open(&scratch.path("peer.redb")).unwrap().speaking(protocol);
    ServicePeer::start(transport, store, Behaviour::default()).await
}

fn path_arg(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}
