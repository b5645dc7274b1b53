//! What every broker's transport must do, as test bodies each broker's tests call with a
//! transport of their own (`tests/pulsar.rs`, `tests/rabbitmq.rs`, `tests/kafka.rs`), and the
//! helpers they share.

use std::sync::Arc;
use std::time::Duration;

use bootstrap_wasm::broker::{Envelope, Queue, RequestResponse, Subscription, Transport};
use serde_json::{Value, json};

/// Only guards against a hang; nothing here is meant to take more than a moment.
pub const HANG: Duration = Duration::from_secs(30);

pub fn envelope(id: &str, body: &str) -> Envelope {
    Envelope { id: Some(id.into()), body: body.as_bytes().to_vec() }
}

/// The next message on `subscription`.
pub async fn next(subscription: &mut Subscription) -> Envelope {
    tokio::time::timeout(HANG, subscription.recv())
        .await
        .expect("no message within the hang guard")
        .expect("the subscription closed")
}

/// A message arrives with its body and its id, or without an id if it had none.
pub async fn carries_body_and_id(transport: &dyn Transport) {
    let queue = Queue::response("echo");
    let mut subscription = transport.subscribe(&queue, "reader").await.unwrap();

    transport.publish(&queue, envelope("id-1", r#"{"a":1}"#)).await.unwrap();
    transport.publish(&queue, Envelope { id: None, body: b"{}".to_vec() }).await.unwrap();

    assert_eq!(next(&mut subscription).await, envelope("id-1", r#"{"a":1}"#));
    assert_eq!(next(&mut subscription).await, Envelope { id: None, body: b"{}".to_vec() });
}

/// A request/response client gets its answers from an echo service on the same transport,
/// which answers each request on the response queue under the request's id.
pub async fn carries_request_response_calls(transport: Arc<dyn Transport>) {
    let (requests, responses) = (Queue::request("echo"), Queue::response("echo"));
    let mut incoming = transport.subscribe(&requests, "echo-svc").await.unwrap();
    let service = transport.clone();
    let answers = responses.clone();
    tokio::spawn(async move {
        while let Some(request) = incoming.recv().await {
            service.publish(&answers, request).await.unwrap();
        }
    });

    let client = RequestResponse::new(transport.clone(), requests, responses, "client".into(), HANG);
    for n in 0..3 {
        let answer: Value = client.request(&json!({"n": n})).await.unwrap();
        assert_eq!(answer, json!({"n": n}));
    }
}
