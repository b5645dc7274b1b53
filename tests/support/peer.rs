//! The other side of the wire: config-svc and flow-svc served over a real broker with
//! TrustGraph's semantics, by the embedded backend's own handlers. It stands where TrustGraph's
//! Python services stand in a deployment; it lives with the tests, not in the product.
//!
//! It can also misbehave as real peers do, for the tests that check the client copes: answer
//! late, answer other clients first, or put malformed JSON on the response queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bootstrap_wasm::broker::{Envelope, Queue, Subscription, Transport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::{ConfigRequest, FlowRequest};
use tokio::task::JoinHandle;

/// How the peer behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Wait this much longer before answering a config `put` (the write itself is done at
    /// once): the client times out on writes while the gate's reads still pass.
    pub put_delay: Duration,
    /// Before each real answer, publish an answer for another client's id and a malformed
    /// answer with the right id.
    pub noisy: bool,
}

/// A running peer; stops when dropped.
pub struct ServicePeer {
    tasks: Vec<JoinHandle<()>>,
    requests: Arc<AtomicUsize>,
}

impl ServicePeer {
    /// Serve both services from `services` on `transport`.
    pub async fn start(transport: Arc<dyn Transport>, services: EmbeddedServices, behaviour: Behaviour) -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for service in ["config", "flow"] {
            let serve = Serve {
                transport: transport.clone(),
                services: services.clone(),
                behaviour,
                requests: requests.clone(),
                request_queue: Queue::request(service),
                response_queue: Queue::response(service),
            };
            // Subscribe before returning, so no request published after `start` is missed.
            let subscription = serve.subscribe().await;
            tasks.push(tokio::spawn(serve.run(subscription)));
        }
        Self { tasks, requests }
    }

    /// How many requests it has answered (both services).
    pub fn request_count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ServicePeer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Serve {
    transport: Arc<dyn Transport>,
    services: EmbeddedServices,
    behaviour: Behaviour,
    requests: Arc<AtomicUsize>,
    request_queue: Queue,
    response_queue: Queue,
}

impl Serve {
    /// Subscribe to the request queue, retrying while the broker is away.
    async fn subscribe(&self) -> Subscription {
        let name = format!("{}-svc", self.request_queue.topic);
        loop {
            match self.transport.subscribe(&self.request_queue, &name).await {
                Ok(subscription) => return subscription,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn run(self, mut subscription: Subscription) {
        loop {
            while let Some(request) = subscription.recv().await {
                self.answer(request).await;
            }
            subscription = self.subscribe().await; // The broker went away and came back.
        }
    }

    async fn answer(&self, request: Envelope) {
        let Some(id) = request.id else { return };
        let mut delay = self.behaviour.delay;
        let body = match self.request_queue.topic.as_str() {
            "config" => serde_json::from_slice::<ConfigRequest>(&request.body).map(|r| {
                if r.operation == "put" {
                    delay += self.behaviour.put_delay;
                }
                serde_json::to_vec(&self.services.config_service().handle(r)).unwrap()
            }),
            _ => serde_json::from_slice::<FlowRequest>(&request.body)
                .map(|r| serde_json::to_vec(&self.services.flow_service().handle(r)).unwrap()),
        };
        let Ok(body) = body else { return };
        self.requests.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        if self.behaviour.noisy {
            let other = Envelope {
                id: Some(uuid_like(&id)),
                body: br#"{"error": {"type": "x", "message": "not yours"}}"#.to_vec(),
            };
            let malformed = Envelope { id: Some(id.clone()), body: b"{not json".to_vec() };
            for noise in [other, malformed] {
                let _ = self.transport.publish(&self.response_queue, noise).await;
            }
        }
        let _ = self.transport.publish(&self.response_queue, Envelope { id: Some(id), body }).await;
    }
}

/// An id that is not `id`.
fn uuid_like(id: &str) -> String {
    format!("other-{id}")
}
