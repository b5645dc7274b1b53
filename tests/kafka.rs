//! The Kafka transport against a real Apache Kafka (4.4, one KRaft node per test): the topics
//! TrustGraph's services expect, delivery by queue class, a response subscription that is
//! live the moment it is made, upstream's own client (confluent-kafka) reading what the
//! transport writes and writing what it reads, and what happens when the broker goes away.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bootstrap_wasm::broker::kafka::{KafkaOptions, KafkaTransport};
use bootstrap_wasm::broker::{Queue, QueueClass, Transport};
use support::kafka::Kafka;
use support::transport::{envelope, next};

fn transport(kafka: &Kafka) -> KafkaTransport {
    KafkaTransport::new(KafkaOptions::plaintext(kafka.bootstrap_servers()), Duration::from_secs(5))
}

/// Run `script` with TrustGraph 2.4.4's Python (whose Kafka client is confluent-kafka, as its
/// services use it), the bootstrap servers as its first argument; its stdout.
fn python(kafka: &Kafka, script: &str) -> String {
    let python = support::repo().join(".venv-trustgraph-2.4.4/bin/python");
    let output = Command::new(python).arg("-c").arg(script).arg(kafka.bootstrap_servers()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn round_trip_carries_body_and_id() {
    let kafka = Kafka::start();
    support::transport::carries_body_and_id(&transport(&kafka)).await;
}

#[tokio::test]
async fn lays_out_topics_as_upstream() {
    let kafka = Kafka::start();
    let transport = transport(&kafka);
    let _responses = transport.subscribe(&Queue::response_for("flow", "acme"), "client").await.unwrap();
    transport.publish(&Queue::request("config"), envelope("r", "{}")).await.unwrap();
    let work = Queue { class: QueueClass::Flow, topicspace: "tg".into(), topic: "load".into() };
    let _work = transport.subscribe(&work, "loader").await.unwrap();

    // Each topic as upstream's Kafka backend makes it: one partition, its class's retention.
    let described = python(
        &kafka,
        r#"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
topics = admin.list_topics(timeout=10).topics
for name in ["tg.response.flow.acme", "tg.request.config", "tg.flow.load"]:
    resource = ConfigResource("topic", name)
    config = admin.describe_configs([resource])[resource].result()
    print(name, len(topics[name].partitions), config["retention.ms"].value)
"#,
    );
    assert_eq!(
        described.lines().collect::<Vec<_>>(),
        ["tg.response.flow.acme 1 300000", "tg.request.config 1 300000", "tg.flow.load 1 604800000"]
    );
}

#[tokio::test]
async fn a_response_subscription_is_live_when_subscribe_returns() {
    // Upstream's response consumer joins a group of its own and reads from the earliest offset,
    // lest an answer land before the group's first assignment. This one reads the topic's end
    // and is assigned at once: a message published right after subscribe returns, on a topic
    // with a history, is its first.
    let kafka = Kafka::start();
    let transport = transport(&kafka);
    let queue = Queue::response("config");
    for i in 0..3 {
        transport.publish(&queue, envelope(&format!("old-{i}"), "{}")).await.unwrap();
    }
    for round in 0..5 {
        let mut subscription = transport.subscribe(&queue, "client").await.unwrap();
        transport.publish(&queue, envelope(&format!("new-{round}"), "{}")).await.unwrap();
        assert_eq!(next(&mut subscription).await.id, Some(format!("new-{round}")));
    }
}

#[tokio::test]
async fn every_response_subscriber_sees_every_message() {
    let kafka = Kafka::start();
    let transport = transport(&kafka);
    let queue = Queue::response("flow");
    // The same subscription name twice: response topics are read whole by every subscriber.
    let mut first = transport.subscribe(&queue, "client").await.unwrap();
    let mut second = transport.subscribe(&queue, "client").await.unwrap();
    // A subscription on another topic sees none of it.
    let mut other = transport.subscribe(&Queue::response("config"), "client").await.unwrap();

    for i in 0..3 {
        transport.publish(&queue, envelope(&format!("m{i}"), "{}")).await.unwrap();
    }
    for subscription in [&mut first, &mut second] {
        for i in 0..3 {
            assert_eq!(next(subscription).await.id, Some(format!("m{i}")));
        }
    }
    // A subscription dropped and made again reads on from the end, not from where it was.
    drop(second);
    let mut again = transport.subscribe(&queue, "client").await.unwrap();
    transport.publish(&Queue::response("config"), envelope("c", "{}")).await.unwrap();
    transport.publish(&queue, envelope("m3", "{}")).await.unwrap();
    assert_eq!(next(&mut again).await.id.as_deref(), Some("m3"));
    assert_eq!(next(&mut first).await.id.as_deref(), Some("m3"));
    assert_eq!(next(&mut other).await.id.as_deref(), Some("c"));
}

#[tokio::test]
async fn request_subscribers_under_one_name_share_a_group_and_another_name_gets_everything() {
    let kafka = Kafka::start();
    let transport = transport(&kafka);
    let queue = Queue::request("config");
    let mut worker = transport.subscribe(&queue, "workers").await.unwrap();
    let mut auditor = transport.subscribe(&queue, "auditor").await.unwrap();

    let sent: BTreeSet<String> = (0..10).map(|i| format!("r{i}")).collect();
    for id in &sent {
        transport.publish(&queue, envelope(id, "{}")).await.unwrap();
    }
    for subscription in [&mut worker, &mut auditor] {
        let mut got = BTreeSet::new();
        for _ in 0..sent.len() {
            got.insert(next(subscription).await.id.unwrap());
        }
        assert_eq!(got, sent);
    }

    // The group commits what its member handed over: a member joining after the first has
    // left goes on from there, and sees each later message once.
    drop(worker);
    transport.close().await;
    let transport = self::transport(&kafka);
    let mut successor = transport.subscribe(&queue, "workers").await.unwrap();
    transport.publish(&queue, envelope("r10", "{}")).await.unwrap();
    assert_eq!(next(&mut successor).await.id.as_deref(), Some("r10"));
}

#[tokio::test]
async fn upstreams_client_reads_what_it_writes_and_writes_what_it_reads() {
    let kafka = Kafka::start();
    let transport = transport(&kafka);
    let requests = Queue::request("config");
    let responses = Queue::response("config");
    let mut answers = transport.subscribe(&responses, "client").await.unwrap();
    transport.publish(&requests, envelope("from-rust", r#"{"operation":"list"}"#)).await.unwrap();

    // confluent-kafka, as TrustGraph 2.4.4's services: a group reading the request topic from
    // the start, answering on the response topic with the request's id header.
    let read = python(
        &kafka,
        r#"
import sys
from confluent_kafka import Consumer, Producer
consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "config-svc", "auto.offset.reset": "earliest"})
consumer.subscribe(["tg.request.config"])
message = None
while message is None or message.error():
    message = consumer.poll(10)
headers = dict(message.headers())
producer = Producer({"bootstrap.servers": sys.argv[1]})
producer.produce("tg.response.config", value=b'{"version": 7}', headers=[("id", headers["id"])])
producer.flush()
print(headers["id"].decode(), message.value().decode())
"#,
    );
    assert_eq!(read.trim(), r#"from-rust {"operation":"list"}"#);
    assert_eq!(next(&mut answers).await, envelope("from-rust", r#"{"version": 7}"#));
}

#[tokio::test]
async fn outlives_the_broker_going_away() {
    let mut kafka = Kafka::start();
    let transport = transport(&kafka);
    let queue = Queue::response("config");
    let mut subscription = transport.subscribe(&queue, "s").await.unwrap();
    transport.publish(&queue, envelope("before", "{}")).await.unwrap();
    assert_eq!(next(&mut subscription).await.id.as_deref(), Some("before"));

    // While it is down, a publish fails within the transport's timeout (and is not sent later).
    kafka.stop();
    let error = transport.publish(&queue, envelope("during", "{}")).await.unwrap_err();
    assert!(error.to_string().contains("cannot publish to topic tg.response.config"), "{error}");

    // Back on the same port: the subscription made before reads on, and the next publish goes.
    kafka.restart();
    transport.publish(&queue, envelope("after", "{}")).await.unwrap();
    assert_eq!(next(&mut subscription).await.id.as_deref(), Some("after"));
}

#[tokio::test]
async fn carries_request_response_calls() {
    let kafka = Kafka::start();
    support::transport::carries_request_response_calls(Arc::new(transport(&kafka))).await;
}
