//! The Pulsar transport against a real broker: pulsar-lite, through the test relay
//! (`support::pulsar`).

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bootstrap_wasm::broker::pulsar::{PulsarOptions, PulsarTransport, TlsOptions};
use bootstrap_wasm::broker::{Envelope, Queue, QueueClass, RequestResponse, Subscription, Transport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::Protocol;
use support::peer::{Behaviour, ServicePeer};
use support::pulsar::{PulsarLite, rewrite_lookup};
use support::tls_front::TlsFront;

/// A guard against hanging, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

fn transport(broker: &PulsarLite) -> PulsarTransport {
    PulsarTransport::new(broker.options())
}

fn envelope(id: &str, body: &str) -> Envelope {
    Envelope { id: Some(id.into()), body: body.as_bytes().to_vec() }
}

async fn next(subscription: &mut Subscription) -> Option<Envelope> {
    tokio::time::timeout(PATIENCE, subscription.recv()).await.expect("no message, nor the subscription closing")
}

/// Subscribe to `queue` as `reader`, publish a message there and check that it arrives.
async fn check_round_trip(transport: &PulsarTransport, queue: &Queue, id: &str) -> Subscription {
    let mut subscription = transport.subscribe(queue, "reader").await.unwrap();
    transport.publish(queue, envelope(id, "{}")).await.unwrap();
    assert_eq!(next(&mut subscription).await, Some(envelope(id, "{}")));
    subscription
}

#[tokio::test]
async fn a_message_arrives_with_its_id() {
    let broker = PulsarLite::start();
    let transport = transport(&broker);
    let queue = Queue::response("round-trip");

    let mut subscription = transport.subscribe(&queue, "reader").await.unwrap();
    transport.publish(&queue, envelope("id-1", r#"{"a":1}"#)).await.unwrap();
    transport.publish(&queue, Envelope { id: None, body: b"{}".to_vec() }).await.unwrap();

    assert_eq!(next(&mut subscription).await, Some(envelope("id-1", r#"{"a":1}"#)));
    assert_eq!(next(&mut subscription).await, Some(Envelope { id: None, body: b"{}".to_vec() }));
    assert_eq!(transport.describe(), broker.url());
}

#[tokio::test]
async fn response_subscribers_each_see_everything_and_request_subscribers_split_the_work() {
    let broker = PulsarLite::start();
    // Separate clients, as separate processes would be.
    let (one, two, publisher) = (transport(&broker), transport(&broker), transport(&broker));

    let responses = Queue::response("fan-out");
    let mut seen_by_one = one.subscribe(&responses, "client-one").await.unwrap();
    let mut seen_by_two = two.subscribe(&responses, "client-two").await.unwrap();
    for n in 0..5 {
        publisher.publish(&responses, envelope(&n.to_string(), "{}")).await.unwrap();
    }
    for subscription in [&mut seen_by_one, &mut seen_by_two] {
        for n in 0..5 {
            assert_eq!(next(subscription).await.unwrap().id, Some(n.to_string()));
        }
    }

    let requests = Queue::request("work");
    assert!(requests.is_shared());
    let mut worker_one = one.subscribe(&requests, "service").await.unwrap();
    let mut worker_two = two.subscribe(&requests, "service").await.unwrap();
    let total = 20;
    for n in 0..total {
        publisher.publish(&requests, envelope(&n.to_string(), "{}")).await.unwrap();
    }
    let (mut got_one, mut got_two) = (Vec::new(), Vec::new());
    while got_one.len() + got_two.len() < total {
        tokio::select! {
            message = worker_one.recv() => got_one.push(message.unwrap().id.unwrap()),
            message = worker_two.recv() => got_two.push(message.unwrap().id.unwrap()),
            () = tokio::time::sleep(PATIENCE) => panic!("only {} of {total} requests arrived", got_one.len() + got_two.len()),
        }
    }
    let all: HashSet<_> = got_one.iter().chain(&got_two).cloned().collect();
    assert_eq!(all.len(), total, "each request goes to one worker: {got_one:?} / {got_two:?}");
    assert!(!got_one.is_empty() && !got_two.is_empty(), "both workers get requests: {got_one:?} / {got_two:?}");
}

#[tokio::test]
async fn a_subscriber_gets_far_more_messages_than_its_first_grant_of_permits() {
    // The client grants a consumer 1,000 messages at a time, and more as they are read; a
    // non-persistent topic drops what arrives for a consumer without permits.
    let broker = PulsarLite::start();
    let (subscriber, publisher) = (transport(&broker), transport(&broker));
    for queue in
        [Queue::response("many"), Queue { class: QueueClass::Flow, topicspace: "tg".into(), topic: "many".into() }]
    {
        let mut subscription = subscriber.subscribe(&queue, "reader").await.unwrap();
        let total = 2_500;
        let reader = tokio::spawn(async move {
            let mut ids = Vec::with_capacity(total);
            while ids.len() < total {
                ids.push(next(&mut subscription).await.expect("the subscription closed").id.unwrap());
            }
            ids
        });
        for n in 0..total {
            publisher.publish(&queue, envelope(&n.to_string(), "{}")).await.unwrap();
        }
        let ids = reader.await.unwrap();
        assert_eq!(ids, (0..total).map(|n| n.to_string()).collect::<Vec<_>>(), "on {queue}");
    }
}

#[tokio::test]
async fn a_flow_queue_is_persistent_and_shared() {
    let broker = PulsarLite::start();
    let transport = transport(&broker);
    let queue = Queue { class: QueueClass::Flow, topicspace: "tg".into(), topic: "load".into() };

    check_round_trip(&transport, &queue, "p").await;
}

#[tokio::test]
async fn the_transport_connects_only_when_used_and_again_after_the_broker_restarts() {
    let mut broker = PulsarLite::start();
    broker.stop();
    // Created while the broker is down, as the bootstrapper may be.
    let transport = transport(&broker);
    let queue = Queue::response("restart");
    let error = transport.publish(&queue, envelope("x", "{}")).await.unwrap_err();
    assert!(error.to_string().contains(&broker.url()), "{error}");

    broker.restart();
    let mut subscription = check_round_trip(&transport, &queue, "before").await;

    broker.stop();
    assert_eq!(next(&mut subscription).await, None, "the subscription closes when the broker goes");
    // While it is down, both fail at once (the dead connection's producer is not used again).
    assert!(transport.subscribe(&queue, "reader").await.is_err());
    assert!(transport.publish(&queue, envelope("x", "{}")).await.is_err());

    broker.restart();
    check_round_trip(&transport, &queue, "after").await;
}

#[tokio::test]
async fn a_subscription_closes_when_the_broker_becomes_unreachable() {
    let broker = PulsarLite::start();
    let transport = transport(&broker);
    let queue = Queue::response("unreachable");
    let mut subscription = check_round_trip(&transport, &queue, "warm").await;

    broker.pause();
    assert_eq!(next(&mut subscription).await, None);

    broker.resume();
    check_round_trip(&transport, &queue, "back").await;
}

#[tokio::test]
async fn the_clients_broker_sockets_have_tcp_nodelay() {
    let broker = PulsarLite::start();
    let transport = transport(&broker);
    let _subscription = check_round_trip(&transport, &Queue::response("nodelay"), "x").await;

    let relay: SocketAddr = broker.url().trim_start_matches("pulsar://").parse().unwrap();
    let sockets = sockets_to(relay);
    assert!(!sockets.is_empty(), "the client is connected to {relay}");
    assert!(sockets.iter().all(|&nodelay| nodelay), "TCP_NODELAY on every socket to {relay}: {sockets:?}");
}

/// TCP_NODELAY of each socket of this process connected to `peer`.
fn sockets_to(peer: SocketAddr) -> Vec<bool> {
    use std::os::fd::{BorrowedFd, RawFd};
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(raw) = entry.file_name().to_string_lossy().parse::<RawFd>() else { continue };
        // SAFETY: only queried; a descriptor closed meanwhile fails the calls with EBADF.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let socket = socket2::SockRef::from(&fd);
        if socket.peer_addr().ok().and_then(|a| a.as_socket()) == Some(peer) {
            found.push(socket.tcp_nodelay().unwrap());
        }
    }
    found
}

#[tokio::test]
async fn a_request_gets_its_answer_over_pulsar() {
    let broker = PulsarLite::start();
    // A service answering each request on the response queue with the same id.
    let service = Arc::new(transport(&broker));
    let mut requests = service.subscribe(&Queue::request("echo"), "echo-svc").await.unwrap();
    let responder = service.clone();
    tokio::spawn(async move {
        while let Some(request) = requests.recv().await {
            responder.publish(&Queue::response("echo"), request).await.unwrap();
        }
    });

    let client = RequestResponse::new(
        Arc::new(transport(&broker)),
        Queue::request("echo"),
        Queue::response("echo"),
        "client".into(),
        PATIENCE,
    );
    let answer: serde_json::Value = client.request(&serde_json::json!({"ping": 1})).await.unwrap();
    assert_eq!(answer, serde_json::json!({"ping": 1}));
    let answer: serde_json::Value = client.request(&serde_json::json!({"ping": 2})).await.unwrap();
    assert_eq!(answer, serde_json::json!({"ping": 2}));
}

#[test]
fn the_relay_points_lookups_at_itself_and_leaves_other_frames_alone() {
    use bootstrap_wasm::broker::pulsar::proto::{BaseCommand, CommandLookupTopicResponse, CommandType};
    use prost::Message as _;

    let answer = BaseCommand {
        r#type: CommandType::LookupResponse as i32,
        lookup_topic_response: Some(CommandLookupTopicResponse {
            broker_service_url: Some("pulsar://127.0.0.1:6650".into()),
            request_id: 7,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let frame = [&(answer.len() as u32).to_be_bytes()[..], &answer].concat();

    let rewritten = rewrite_lookup(&frame, "pulsar://127.0.0.1:1234").unwrap();
    let decoded = BaseCommand::decode(&rewritten[4..]).unwrap().lookup_topic_response.unwrap();
    assert_eq!(decoded.broker_service_url.as_deref(), Some("pulsar://127.0.0.1:1234"));
    assert_eq!(decoded.request_id, 7);

    let pong = [0, 0, 0, 2, 0x08, 0x13];
    assert_eq!(rewrite_lookup(&pong, "pulsar://relay:1"), None);
}

/// Options for `url` trusting `ca` (or only the Mozilla roots and the machine's store).
fn tls_options(url: String, ca: Option<PathBuf>, check_hostname: bool) -> PulsarOptions {
    PulsarOptions { tls: TlsOptions { trust_certs: ca, check_hostname }, ..PulsarOptions::new(url) }
}

fn broker_address(broker: &PulsarLite) -> String {
    broker.direct_url().trim_start_matches("pulsar://").to_owned()
}

#[tokio::test]
async fn pulsar_ssl_reaches_a_broker_whose_certificate_is_trusted_and_refuses_any_other() {
    let broker = PulsarLite::start();
    let front = TlsFront::start(&broker_address(&broker), &["localhost"], "localhost").await;
    let queue = Queue::response("tls");

    let untrusting = PulsarTransport::new(tls_options(front.url("localhost"), None, true));
    let error = untrusting.subscribe(&queue, "reader").await.err().expect("an untrusted certificate is refused");
    assert!(error.to_string().contains("certificate"), "{error}");

    let trusting = PulsarTransport::new(tls_options(front.url("localhost"), Some(front.ca()), true));
    check_round_trip(&trusting, &queue, "over-tls").await;
}

#[tokio::test]
async fn pulsar_ssl_checks_an_ip_address_against_the_certificates_ip_addresses() {
    let broker = PulsarLite::start();
    let front = TlsFront::start(&broker_address(&broker), &["127.0.0.1"], "127.0.0.1").await;
    let transport = PulsarTransport::new(tls_options(front.url("127.0.0.1"), Some(front.ca()), true));
    check_round_trip(&transport, &Queue::response("tls-ip"), "over-tls").await;
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_unless_the_check_is_turned_off() {
    let broker = PulsarLite::start();
    // Trusted, but made for a name the client does not connect to.
    let front = TlsFront::start(&broker_address(&broker), &["broker.internal"], "localhost").await;
    let queue = Queue::response("tls-name");

    let checking = PulsarTransport::new(tls_options(front.url("localhost"), Some(front.ca()), true));
    let error = checking.subscribe(&queue, "reader").await.err().expect("a certificate for another host is refused");
    assert!(error.to_string().contains("not valid for name"), "{error}");

    let unchecked = PulsarTransport::new(tls_options(front.url("localhost"), Some(front.ca()), false));
    check_round_trip(&unchecked, &queue, "over-tls").await;
}

/// A deployment's CA installed in the machine's trust store (here `SSL_CERT_FILE`, which
/// OpenSSL and rustls-native-certs read) is trusted without `--pulsar-tls-trust-certs`: the
/// binary converges the example over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_machines_trust_store_is_trusted() {
    let broker = PulsarLite::start();
    let front = TlsFront::start(&broker_address(&broker), &["localhost"], "localhost").await;
    let scratch = support::Scratch::new();
    let store = EmbeddedServices::open(&scratch.path("peer.redb")).unwrap().speaking(Protocol::Legacy);
    let transport = Arc::new(PulsarTransport::new(broker.options()));
    let _peer = ServicePeer::start(transport, store.clone(), Behaviour::default()).await;
    let empty = tempfile::tempdir().unwrap();

    let mut command = support::bin();
    command.arg("-c").arg(support::repo().join("examples/init.yaml")).arg("--once");
    command.args(["-p", &front.url("localhost"), "--protocol", "legacy"]);
    // The machine's own store is left out: only the front's certificate is in this one.
    command.env("SSL_CERT_FILE", front.ca()).env("SSL_CERT_DIR", empty.path());
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let dump = store.dump(None).unwrap();
    assert!(dump["default"]["flow"]["default"].is_string(), "no flow started: {dump}");
}
