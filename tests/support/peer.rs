//! The other side of the wire: TrustGraph's services served over a real broker by the embedded
//! backend's own handlers, in the protocol the given [`EmbeddedServices`] speak. It stands
//! where TrustGraph's Python services stand in a deployment; it lives with the tests, not in
//! the product.
//!
//! - Legacy protocol (2.4.4): config-svc on `request:tg:config`, flow-svc on `request:tg:flow`
//!   for every workspace.
//! - Workspace protocol (2.11.1): config-svc as before, IAM on `request:tg:iam`, and flow-svc on
//!   `request:tg:flow:<ws>` for each registered workspace only, taking the workspace from the
//!   queue; nothing answers on `request:tg:flow`. As 2.11's flow-svc, it subscribes at start
//!   for the workspaces already registered, and to each workspace registered later (by IAM,
//!   or any config put into `__workspaces__`). Unlike upstream, which subscribes once its
//!   config push arrives, it subscribes before it answers the request that registered the
//!   workspace, so that a test's next flow call never races the subscription.
//!
//! It can also misbehave as real peers do, for the tests that check the client copes: answer
//! late, answer other clients first, or put malformed JSON on the response queue.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootstrap_wasm::broker::{Envelope, Queue, Subscription, Transport};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::services::wire::WORKSPACE_REGISTRY;
use bootstrap_wasm::services::{ConfigRequest, FlowRequest, IamRequest, Protocol, Services as _};
use tokio::task::JoinHandle;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
    shared: Arc<Shared>,
}

impl ServicePeer {
    /// Serve `services` on `transport`, in the protocol they speak.
    pub async fn start(transport: Arc<dyn Transport>, services: EmbeddedServices, behaviour: Behaviour) -> Self {
        let shared = Arc::new(Shared {
            transport,
            services,
            behaviour,
            requests: AtomicUsize::new(0),
            tasks: Mutex::new(Tasks::default()),
            flows_served: tokio::sync::Mutex::new(HashSet::new()),
        });
        shared.serve(Service::Config).await;
        match shared.services.protocol().expect("the embedded services know their protocol") {
            Protocol::Legacy => shared.serve(Service::Flow(None)).await,
            Protocol::Workspaces => {
                shared.serve(Service::Iam).await;
                shared.serve_registered_workspaces().await;
            }
        }
        Self { shared }
    }

    /// How many requests it has answered (all services).
    pub fn request_count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The workspaces whose flow-svc queues it serves (workspace protocol).
    pub async fn flow_workspaces(&self) -> Vec<String> {
        let mut served: Vec<String> = self.shared.flows_served.lock().await.iter().cloned().collect();
        served.sort();
        served
    }
}

impl Drop for ServicePeer {
    fn drop(&mut self) {
        let mut tasks = self.shared.tasks.lock().unwrap();
        tasks.stopped = true;
        tasks.running.iter().for_each(JoinHandle::abort);
    }
}

/// The serving tasks; once stopped, a task started late is aborted at once.
#[derive(Default)]
struct Tasks {
    running: Vec<JoinHandle<()>>,
    stopped: bool,
}

/// One service the peer answers.
#[derive(Debug, Clone)]
enum Service {
    Config,
    Iam,
    /// flow-svc: for every workspace (legacy), or for one (workspace protocol).
    Flow(Option<String>),
}

impl Service {
    fn queues(&self) -> (Queue, Queue) {
        match self {
            Service::Config => (Queue::request("config"), Queue::response("config")),
            Service::Iam => (Queue::request("iam"), Queue::response("iam")),
            Service::Flow(None) => (Queue::request("flow"), Queue::response("flow")),
            Service::Flow(Some(workspace)) => {
                (Queue::request_for("flow", workspace), Queue::response_for("flow", workspace))
            }
        }
    }

    /// The subscription, as upstream's services name theirs (by the service's id).
    fn subscription(&self) -> &'static str {
        match self {
            Service::Config => "config-svc",
            Service::Iam => "iam-svc",
            Service::Flow(_) => "flow-svc",
        }
    }
}

struct Shared {
    transport: Arc<dyn Transport>,
    services: EmbeddedServices,
    behaviour: Behaviour,
    requests: AtomicUsize,
    tasks: Mutex<Tasks>,
    flows_served: tokio::sync::Mutex<HashSet<String>>,
}

impl Shared {
    /// Subscribe to `service`'s request queue (returning once subscribed, so that no request
    /// published after is missed), and answer it from a task of its own.
    async fn serve(self: &Arc<Self>, service: Service) {
        let subscription = self.subscribe(&service).await;
        let task = tokio::spawn(self.clone().run(service, subscription));
        let mut tasks = self.tasks.lock().unwrap();
        if tasks.stopped {
            task.abort();
        }
        tasks.running.push(task);
    }

    /// Serve flow-svc for each registered workspace not served yet.
    async fn serve_registered_workspaces(self: &Arc<Self>) {
        let mut served = self.flows_served.lock().await;
        let (registry, kind) = WORKSPACE_REGISTRY;
        let registered = self.services.store().snapshot().unwrap().keys(registry, kind).unwrap();
        for workspace in registered {
            if !served.contains(&workspace) {
                self.serve(Service::Flow(Some(workspace.clone()))).await;
                served.insert(workspace);
            }
        }
    }

    /// Subscribe to the request queue, retrying while the broker is away.
    async fn subscribe(&self, service: &Service) -> Subscription {
        let (request_queue, _) = service.queues();
        loop {
            match self.transport.subscribe(&request_queue, service.subscription()).await {
                Ok(subscription) => return subscription,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    // Boxed: answering may serve another queue, which runs this again (a recursive future).
    fn run(self: Arc<Self>, service: Service, mut subscription: Subscription) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                while let Some(request) = subscription.recv().await {
                    self.answer(&service, request).await;
                }
                subscription = self.subscribe(&service).await; // The broker went away and came back.
            }
        })
    }

    async fn answer(self: &Arc<Self>, service: &Service, request: Envelope) {
        let Some(id) = request.id else { return };
        let mut delay = self.behaviour.delay;
        let Some((body, registers)) = self.handle(service, &request.body, &mut delay) else { return };
        if registers && self.services.protocol() == Some(Protocol::Workspaces) {
            self.serve_registered_workspaces().await;
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        let (_, response_queue) = service.queues();
        if self.behaviour.noisy {
            let other = Envelope {
                id: Some(format!("other-{id}")),
                body: br#"{"error": {"type": "x", "message": "not yours"}}"#.to_vec(),
            };
            let malformed = Envelope { id: Some(id.clone()), body: b"{not json".to_vec() };
            for noise in [other, malformed] {
                let _ = self.transport.publish(&response_queue, noise).await;
            }
        }
        let _ = self.transport.publish(&response_queue, Envelope { id: Some(id), body }).await;
    }

    /// The answer to one request body (`None` if it is not the service's request record), and
    /// whether the request may have registered a workspace. A config `put` adds the put delay.
    fn handle(&self, service: &Service, body: &[u8], delay: &mut Duration) -> Option<(Vec<u8>, bool)> {
        let answered = match service {
            Service::Config => {
                let request: ConfigRequest = serde_json::from_slice(body).ok()?;
                let put = request.operation == "put";
                if put {
                    *delay += self.behaviour.put_delay;
                }
                (serde_json::to_vec(&self.services.config_service().handle(request)), put)
            }
            Service::Iam => {
                let request: IamRequest = serde_json::from_slice(body).ok()?;
                (serde_json::to_vec(&self.services.iam_service().handle(request)), true)
            }
            Service::Flow(workspace) => {
                let mut request: FlowRequest = serde_json::from_slice(body).ok()?;
                if let Some(workspace) = workspace {
                    request.workspace = workspace.clone(); // From the queue, as upstream.
                }
                (serde_json::to_vec(&self.services.flow_service().handle(request)), false)
            }
        };
        Some((answered.0.unwrap(), answered.1))
    }
}
