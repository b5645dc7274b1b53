//! The RabbitMQ transport against the machine's real RabbitMQ server, each test in a virtual
//! host of its own: the exchange and queue layout TrustGraph's services expect, delivery by
//! queue class, and what happens when the broker goes away and comes back.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use bootstrap_wasm::broker::rabbitmq::RabbitTransport;
use bootstrap_wasm::broker::{Queue, QueueClass, Subscription, Transport};
use support::rabbitmq::{Relay, TestVhost};
use support::transport::{HANG, envelope, next};

/// A transport to a virtual host of its own (which lives as long as the returned guard).
fn fresh() -> (TestVhost, RabbitTransport) {
    let vhost = TestVhost::create();
    let transport = RabbitTransport::new(vhost.options());
    (vhost, transport)
}

/// Wait for `subscription` to close, discarding anything still on it.
async fn closed(subscription: &mut Subscription) {
    tokio::time::timeout(HANG, async { while subscription.recv().await.is_some() {} })
        .await
        .expect("the subscription did not close");
}

#[tokio::test]
async fn round_trip_carries_body_and_id() {
    let (_vhost, transport) = fresh();
    support::transport::carries_body_and_id(&transport).await;
}

#[tokio::test]
async fn a_message_larger_than_a_frame_arrives_whole() {
    // The runtime's connections take frames of 16 KiB at most; a 1 MiB config value (the
    // init file's cap on params) travels as many of them.
    let (_vhost, transport) = fresh();
    let queue = Queue::response("echo");
    let mut subscription = transport.subscribe(&queue, "reader").await.unwrap();
    let body = format!(r#"{{"value":"{}"}}"#, "x".repeat(1 << 20));

    transport.publish(&queue, envelope("big", &body)).await.unwrap();

    assert_eq!(next(&mut subscription).await, envelope("big", &body));
}

#[tokio::test]
async fn lays_out_exchanges_and_queues_as_upstream() {
    let (vhost, transport) = fresh();
    let _requests = transport.subscribe(&Queue::request("config"), "svc").await.unwrap();
    let _responses = transport.subscribe(&Queue::response("config"), "client").await.unwrap();
    let work = Queue { class: QueueClass::Flow, topicspace: "tg".into(), topic: "load".into() };
    let _work = transport.subscribe(&work, "loader").await.unwrap();

    let exchanges = vhost.list("exchanges", &["name", "type", "durable"]);
    for exchange in ["tg.request.config", "tg.response.config", "tg.flow.load"] {
        assert!(exchanges.contains(&format!("{exchange}\tfanout\ttrue")), "{exchange} in {exchanges:#?}");
    }

    // Shared classes: a named queue per subscription, durable only for the flow class.
    // Per-subscriber classes: an exclusive, auto-deleted queue the server names.
    let queues = vhost.list("queues", &["name", "durable", "exclusive", "auto_delete"]);
    assert!(queues.contains(&"tg.request.config.svc\tfalse\tfalse\tfalse".to_owned()), "{queues:#?}");
    assert!(queues.contains(&"tg.flow.load.loader\ttrue\tfalse\tfalse".to_owned()), "{queues:#?}");
    let anonymous: Vec<_> = queues.iter().filter(|q| q.starts_with("amq.gen-")).collect();
    assert_eq!(anonymous.len(), 1, "{queues:#?}");
    assert!(anonymous[0].ends_with("\tfalse\ttrue\ttrue"), "{queues:#?}");

    let bindings = vhost.list("bindings", &["source_name", "destination_name"]);
    assert!(bindings.contains(&"tg.request.config\ttg.request.config.svc".to_owned()), "{bindings:#?}");
    let anonymous_name = anonymous[0].split('\t').next().unwrap();
    assert!(bindings.contains(&format!("tg.response.config\t{anonymous_name}")), "{bindings:#?}");
}

#[tokio::test]
async fn every_response_subscriber_sees_every_message() {
    let (_vhost, transport) = fresh();
    let queue = Queue::response("flow");
    // The same subscription name twice: response queues are per subscriber regardless.
    let mut first = transport.subscribe(&queue, "client").await.unwrap();
    let mut second = transport.subscribe(&queue, "client").await.unwrap();

    for i in 0..3 {
        transport.publish(&queue, envelope(&format!("m{i}"), "{}")).await.unwrap();
    }
    for subscription in [&mut first, &mut second] {
        for i in 0..3 {
            assert_eq!(next(subscription).await.id, Some(format!("m{i}")));
        }
    }
}

#[tokio::test]
async fn request_subscribers_under_one_name_split_the_messages() {
    let (_vhost, transport) = fresh();
    let queue = Queue::request("config");
    let mut worker_a = transport.subscribe(&queue, "workers").await.unwrap();
    let mut worker_b = transport.subscribe(&queue, "workers").await.unwrap();
    // Another subscription name is another queue: it gets its own copy of everything.
    let mut auditor = transport.subscribe(&queue, "auditor").await.unwrap();

    let sent: BTreeSet<String> = (0..10).map(|i| format!("r{i}")).collect();
    for id in &sent {
        transport.publish(&queue, envelope(id, "{}")).await.unwrap();
    }

    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    while got_a.len() + got_b.len() < sent.len() {
        tokio::select! {
            message = next(&mut worker_a) => got_a.push(message.id.unwrap()),
            message = next(&mut worker_b) => got_b.push(message.id.unwrap()),
        }
    }
    assert!(!got_a.is_empty() && !got_b.is_empty(), "one worker took everything: {got_a:?} {got_b:?}");
    let split: BTreeSet<String> = got_a.iter().chain(&got_b).cloned().collect();
    assert_eq!(split, sent, "each message once, between them");

    let mut audited = BTreeSet::new();
    for _ in 0..sent.len() {
        audited.insert(next(&mut auditor).await.id.unwrap());
    }
    assert_eq!(audited, sent);
}

#[tokio::test]
async fn survives_the_broker_going_away() {
    let vhost = TestVhost::create();
    let relay = Relay::start();
    let queue = Queue::response("config");

    // Created while the broker is unreachable: no connection is attempted until first use,
    // and then the error says where it tried.
    relay.cut();
    let transport = RabbitTransport::new(vhost.options_via(&relay));
    let error = transport.publish(&queue, envelope("early", "{}")).await.unwrap_err();
    assert!(
        error.to_string().contains(&format!("cannot connect to amqp://127.0.0.1:{}/{}", relay.port(), vhost.name())),
        "{error}"
    );
    assert!(transport.subscribe(&queue, "s").await.is_err());

    relay.restore();
    let mut subscription = transport.subscribe(&queue, "s").await.unwrap();
    transport.publish(&queue, envelope("before", "{}")).await.unwrap();
    assert_eq!(next(&mut subscription).await.id.as_deref(), Some("before"));

    // The connection drops: the subscription closes, and nothing works while it is down.
    relay.cut();
    closed(&mut subscription).await;
    assert!(transport.publish(&queue, envelope("during", "{}")).await.is_err());
    assert!(transport.subscribe(&queue, "s").await.is_err());

    // Back again: the next subscribe and publish connect afresh.
    relay.restore();
    let mut subscription = transport.subscribe(&queue, "s").await.unwrap();
    transport.publish(&queue, envelope("after", "{}")).await.unwrap();
    assert_eq!(next(&mut subscription).await.id.as_deref(), Some("after"));
}

#[tokio::test]
async fn carries_request_response_calls() {
    let vhost = TestVhost::create();
    support::transport::carries_request_response_calls(Arc::new(RabbitTransport::new(vhost.options()))).await;
}
