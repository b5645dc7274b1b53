//! The [`Transport`] for Apache Pulsar, as upstream's `pulsar_backend.py` uses it.
//!
//! Queues map to topics with [`Queue::pulsar_topic`] (`non-persistent://tg/request/config`);
//! a message's body is the payload and its correlation id the `id` property. Request and flow
//! queues are read through Shared subscriptions (the service's instances split the work),
//! response and notify queues through Exclusive ones (each subscriber sees everything), all
//! starting at the latest message.
//!
//! Built on the `pulsar` crate, with two things it does not do by itself:
//!
//! - **Connecting lazily.** The bootstrapper must start while the broker is still down (its
//!   gate stays closed and retries), so [`PulsarTransport::new`] does not connect: the first
//!   publish or subscribe does. After a failure the client and its producers are dropped and
//!   the next call connects afresh, so a restarted broker is picked up.
//! - **TCP_NODELAY.** The crate leaves Nagle's algorithm on, and its small request frames then
//!   wait for delayed ACKs: a request/response round trip costs ~88 ms instead of well under
//!   one. It owns its sockets and has no hook for them, so [`set_nodelay_towards`] finds this
//!   process's sockets connected to the broker and sets the option on them, after each connect
//!   and every few seconds (to catch the crate's own reconnects).
//!
//! The crate does not send a listener name in its lookups, so `--pulsar-listener` cannot be
//! honoured: a configured listener is logged and ignored.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use pulsar::consumer::InitialPosition;
use pulsar::{
    Authentication, ConnectionRetryOptions, Consumer, ConsumerOptions, OperationRetryOptions, Producer, Pulsar,
    SubType, TokioExecutor,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Envelope, Queue, Subscription, Transport, TransportError};

/// The message property carrying the correlation id, as upstream's.
const ID_PROPERTY: &str = "id";

/// How many delivered messages may wait for their subscriber before the consumer stops reading.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// How often the background sweep looks for broker sockets without TCP_NODELAY (the crate
/// reconnects by itself after a dropped connection; until the sweep, that socket is slow).
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// How long closing a dead subscription's consumer may take before it is abandoned.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how to reach the broker: upstream's `--pulsar-host`, `--pulsar-api-key`,
/// `--pulsar-listener`.
#[derive(Debug, Clone)]
pub struct PulsarOptions {
    /// `pulsar://host:6650` or `pulsar+ssl://host:6651`.
    pub url: String,
    /// A token, sent with Pulsar's token authentication.
    pub api_key: Option<String>,
    /// The advertised listener to be directed to. Not supported by the client: logged, unused.
    pub listener: Option<String>,
    /// Set TCP_NODELAY on the client's broker sockets (see the module's documentation). Always
    /// on in the binary; off only to measure what it saves.
    pub tcp_nodelay: bool,
}

/// Publishes to and subscribes to Pulsar topics; see the module's documentation.
pub struct PulsarTransport {
    options: PulsarOptions,
    /// The client and its producers while the broker is reachable; `None` before the first
    /// use and after a failure.
    client: tokio::sync::Mutex<Option<Client>>,
    /// The addresses of the brokers the client talks to, for the TCP_NODELAY sweep.
    brokers: Arc<Mutex<HashSet<SocketAddr>>>,
    /// The periodic sweep, from the first connect on.
    sweeper: Mutex<Option<JoinHandle<()>>>,
    /// The tasks forwarding each subscription's messages (they own the consumers).
    forwarders: Mutex<Vec<JoinHandle<()>>>,
}

type SharedProducer = Arc<tokio::sync::Mutex<Producer<TokioExecutor>>>;
type PulsarConsumer = Consumer<Vec<u8>, TokioExecutor>;

struct Client {
    pulsar: Pulsar<TokioExecutor>,
    /// One producer per topic, kept while healthy.
    producers: HashMap<String, SharedProducer>,
}

impl PulsarTransport {
    /// A transport for `options`. Does not connect (see the module's documentation).
    pub fn new(options: PulsarOptions) -> Self {
        if let Some(listener) = &options.listener {
            tracing::warn!(
                listener,
                "the Pulsar client cannot ask for an advertised listener; connecting as the broker's lookups direct"
            );
        }
        Self {
            options,
            client: tokio::sync::Mutex::new(None),
            brokers: Arc::default(),
            sweeper: Mutex::default(),
            forwarders: Mutex::default(),
        }
    }

    /// The connected client, connecting first if there is none.
    async fn client<'a>(
        &self,
        slot: &'a mut tokio::sync::MutexGuard<'_, Option<Client>>,
    ) -> Result<&'a mut Client, String> {
        if slot.is_none() {
            let url = &self.options.url;
            // The broker's own address, so that the sweep recognises the first connection.
            self.learn_broker(url).await;
            let mut builder = Pulsar::builder(url.clone(), TokioExecutor)
                .with_connection_retry_options(connection_retry_options())
                .with_operation_retry_options(operation_retry_options());
            if let Some(token) = &self.options.api_key {
                builder = builder.with_auth(Authentication { name: "token".into(), data: token.clone().into_bytes() });
            }
            let pulsar = builder.build().await.map_err(|e| format!("cannot connect: {e}"))?;
            self.sweep();
            self.start_sweeper();
            tracing::info!(%url, "connected to Pulsar");
            **slot = Some(Client { pulsar, producers: HashMap::new() });
        }
        Ok(slot.as_mut().expect("connected above"))
    }

    /// Look `topic` up, remember the broker serving it, and make the connection to it fast.
    ///
    /// The crate connects to whichever broker the lookup names (in a cluster, not necessarily
    /// the one in the URL); looking up first tells the sweep which address that is.
    async fn prepare_topic(&self, pulsar: &Pulsar<TokioExecutor>, topic: &str) -> Result<(), String> {
        let broker = pulsar.lookup_topic(topic).await.map_err(|e| e.to_string())?;
        self.learn_broker(broker.url.as_str()).await;
        self.sweep();
        Ok(())
    }

    /// Add the addresses `url` resolves to to the brokers the sweep looks for.
    async fn learn_broker(&self, url: &str) {
        let addresses = broker_addresses(url).await;
        self.brokers.lock().unwrap().extend(addresses);
    }

    fn sweep(&self) {
        if !self.options.tcp_nodelay {
            return;
        }
        let brokers = self.brokers.lock().unwrap().clone();
        set_nodelay_towards(&brokers);
    }

    /// Sweep every [`SWEEP_INTERVAL`] from now on, for the connections the crate reopens by
    /// itself (a consumer reconnecting after a dropped connection).
    fn start_sweeper(&self) {
        if !self.options.tcp_nodelay {
            return;
        }
        let mut sweeper = self.sweeper.lock().unwrap();
        if sweeper.is_some() {
            return;
        }
        let brokers = self.brokers.clone();
        *sweeper = Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                ticks.tick().await;
                let brokers = brokers.lock().unwrap().clone();
                set_nodelay_towards(&brokers);
            }
        }));
    }

    /// The producer for `topic`, created (and the client connected) if needed.
    async fn producer(&self, topic: &str) -> Result<SharedProducer, String> {
        let mut slot = self.client.lock().await;
        let client = self.client(&mut slot).await?;
        if let Some(producer) = client.producers.get(topic) {
            return Ok(producer.clone());
        }
        let pulsar = client.pulsar.clone();
        self.prepare_topic(&pulsar, topic).await?;
        let producer = pulsar.producer().with_topic(topic).build().await.map_err(|e| e.to_string())?;
        self.sweep();
        let producer = Arc::new(tokio::sync::Mutex::new(producer));
        client.producers.insert(topic.to_owned(), producer.clone());
        Ok(producer)
    }

    /// Drop the client and its producers after a failure (most often a lost broker), so that
    /// the next call starts from scratch.
    async fn forget_client(&self) {
        *self.client.lock().await = None;
    }

    /// A consumer of `topic`, connecting the client if needed.
    async fn consumer(&self, queue: &Queue, topic: &str, subscription: &str) -> Result<PulsarConsumer, String> {
        let pulsar = {
            let mut slot = self.client.lock().await;
            self.client(&mut slot).await?.pulsar.clone()
        };
        self.prepare_topic(&pulsar, topic).await?;
        let kind = if queue.is_shared() { SubType::Shared } else { SubType::Exclusive };
        // `build` returns once the broker confirmed the subscription and was granted the
        // first permits, so what is published afterwards is delivered.
        let consumer = pulsar
            .consumer()
            .with_topic(topic)
            .with_subscription(subscription)
            .with_subscription_type(kind)
            .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Latest))
            .build::<Vec<u8>>()
            .await
            .map_err(|e| e.to_string())?;
        self.sweep();
        Ok(consumer)
    }
}

impl Drop for PulsarTransport {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.get_mut().unwrap().take() {
            sweeper.abort();
        }
    }
}

#[async_trait]
impl Transport for PulsarTransport {
    async fn publish(&self, queue: &Queue, envelope: Envelope) -> Result<(), TransportError> {
        let topic = queue.pulsar_topic();
        let result = async {
            let producer = self.producer(&topic).await?;
            let message = pulsar::producer::Message {
                payload: envelope.body,
                properties: envelope.id.into_iter().map(|id| (ID_PROPERTY.to_owned(), id)).collect(),
                ..Default::default()
            };
            // Wait for the receipt, not just the hand-over to the connection: a publish that
            // returns Ok reached the broker.
            let receipt = producer.lock().await.send_non_blocking(message).await.map_err(|e| e.to_string())?;
            receipt.await.map_err(|e| e.to_string())?;
            Ok(())
        }
        .await;
        if result.is_err() {
            self.forget_client().await;
        }
        result.map_err(|e: String| TransportError(format!("cannot publish to {topic} on {}: {e}", self.options.url)))
    }

    async fn subscribe(&self, queue: &Queue, subscription: &str) -> Result<Subscription, TransportError> {
        let topic = queue.pulsar_topic();
        let consumer = match self.consumer(queue, &topic, subscription).await {
            Ok(consumer) => consumer,
            Err(e) => {
                self.forget_client().await;
                return Err(TransportError(format!("cannot subscribe to {topic} on {}: {e}", self.options.url)));
            }
        };
        let (sender, messages) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let mut forwarders = self.forwarders.lock().unwrap();
        forwarders.retain(|forwarder| !forwarder.is_finished());
        forwarders.push(tokio::spawn(forward(consumer, sender, topic)));
        Ok(Subscription { messages })
    }

    fn describe(&self) -> String {
        self.options.url.clone()
    }

    /// Wait for the consumers to close (each forwarder closes its own once its subscriber is
    /// gone), close the producers, and drop the client, which closes its connections.
    async fn close(&self) {
        let forwarders = std::mem::take(&mut *self.forwarders.lock().unwrap());
        let consumers = forwarders.len();
        for forwarder in forwarders {
            // Each forwarder bounds its own close by CLOSE_TIMEOUT.
            let _ = forwarder.await;
        }
        let client = self.client.lock().await.take();
        let producers = client.as_ref().map_or(0, |client| client.producers.len());
        if let Some(client) = client {
            for producer in client.producers.into_values() {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, async { producer.lock().await.close().await }).await;
            }
        }
        if let Some(sweeper) = self.sweeper.lock().unwrap().take() {
            sweeper.abort();
        }
        tracing::info!(broker = %self.options.url, consumers, producers, "closed the Pulsar client");
    }
}

/// Hand each message of `consumer` to `sender` and acknowledge it, until the consumer fails or
/// ends (the broker went away and the crate could not reconnect) or the subscriber goes away.
/// Dropping `sender` then closes the [`Subscription`].
async fn forward(mut consumer: PulsarConsumer, sender: mpsc::Sender<Envelope>, topic: String) {
    loop {
        let message = tokio::select! {
            message = consumer.next() => message,
            () = sender.closed() => break,
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                tracing::warn!(%topic, "Pulsar consumer failed: {e}");
                break;
            }
            None => {
                tracing::warn!(%topic, "Pulsar consumer ended");
                break;
            }
        };
        let id = message.payload.metadata.properties.iter().find(|p| p.key == ID_PROPERTY).map(|p| p.value.clone());
        let envelope = Envelope { id, body: message.payload.data.clone() };
        // Unacknowledged when the subscriber is gone: a shared subscription's other consumers
        // then get it.
        if sender.send(envelope).await.is_err() {
            break;
        }
        if let Err(e) = consumer.ack(&message).await {
            tracing::warn!(%topic, "cannot acknowledge a Pulsar message: {e}");
            break;
        }
    }
    // Close before the subscription is seen closed: its owner subscribes again under the same
    // name at once, and an Exclusive subscription admits one consumer. Bounded, since a dead
    // connection may not answer.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, consumer.close()).await;
    drop(sender);
}

/// Fail fast when the broker is down (the callers retry on their own schedule) rather than the
/// crate's default of 12 retries with backoff up to 30 s.
fn connection_retry_options() -> ConnectionRetryOptions {
    ConnectionRetryOptions {
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        max_retries: 2,
        connection_timeout: Duration::from_secs(5),
        // A ping unanswered within the operation timeout marks the connection dead: ping more
        // often than the default 60 s to notice a silently dropped one sooner.
        keep_alive: Duration::from_secs(15),
        ..Default::default()
    }
}

/// Bounded operations: the default retries "service not ready" answers forever.
fn operation_retry_options() -> OperationRetryOptions {
    OperationRetryOptions {
        operation_timeout: Duration::from_secs(10),
        retry_delay: Duration::from_millis(500),
        max_retries: Some(4),
    }
}

/// The addresses the broker of `url` resolves to; none if it does not resolve (the client's
/// own connect will then fail and say so).
async fn broker_addresses(url: &str) -> HashSet<SocketAddr> {
    let Some(authority) = broker_authority(url) else { return HashSet::new() };
    match tokio::net::lookup_host(&authority).await {
        Ok(addresses) => addresses.collect(),
        Err(e) => {
            tracing::debug!(%authority, "cannot resolve the broker: {e}");
            HashSet::new()
        }
    }
}

/// [`set_nodelay_towards`] the broker of `url`, for a client of the crate other than the
/// transport's own (the lease's), which connects before the transport's first sweep.
pub(crate) async fn set_nodelay_towards_url(url: &str) {
    set_nodelay_towards(&broker_addresses(url).await);
}

/// `host:port` of a `pulsar://` or `pulsar+ssl://` URL, with the scheme's default port.
fn broker_authority(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_credentials, host)| host);
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        return Some(authority.to_owned());
    }
    let port = if scheme == "pulsar+ssl" { 6651 } else { 6650 };
    Some(format!("{authority}:{port}"))
}

/// Set TCP_NODELAY on every TCP socket of this process whose peer is one of `peers`; returns
/// how many it changed.
///
/// For clients that open their own sockets and do not set it (the `pulsar` crate): the sockets
/// are found through `/proc/self/fd`. Elsewhere than Linux this does nothing.
pub fn set_nodelay_towards(peers: &HashSet<SocketAddr>) -> usize {
    if peers.is_empty() {
        return 0;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::{BorrowedFd, RawFd};

        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return 0 };
        let mut changed = 0;
        for entry in entries.flatten() {
            let Some(raw) = entry.file_name().to_str().and_then(|name| name.parse::<RawFd>().ok()) else { continue };
            // SAFETY: the descriptor is only queried and configured, never closed or kept. If
            // another thread closes it meanwhile, the calls fail with EBADF; if the number is
            // reused, they act on the new descriptor, which changes nothing unless it too is a
            // socket to the broker.
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            let socket = socket2::SockRef::from(&fd);
            let Ok(peer) = socket.peer_addr() else { continue };
            let Some(peer) = peer.as_socket() else { continue };
            if !peers.contains(&peer) || socket.tcp_nodelay().unwrap_or(true) {
                continue;
            }
            if socket.set_tcp_nodelay(true).is_ok() {
                changed += 1;
            }
        }
        changed
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_sets_nodelay_on_sockets_to_the_peer_only() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let bystander = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!client.nodelay().unwrap());
        assert!(!bystander.nodelay().unwrap());

        let changed = set_nodelay_towards(&HashSet::from([listener.local_addr().unwrap()]));

        assert!(changed >= 1);
        assert!(client.nodelay().unwrap());
        assert!(!bystander.nodelay().unwrap(), "a socket to another peer is left alone");
    }

    #[test]
    fn authorities_default_the_port_by_scheme() {
        assert_eq!(broker_authority("pulsar://pulsar:6650").as_deref(), Some("pulsar:6650"));
        assert_eq!(broker_authority("pulsar://pulsar").as_deref(), Some("pulsar:6650"));
        assert_eq!(broker_authority("pulsar+ssl://pulsar/").as_deref(), Some("pulsar:6651"));
        assert_eq!(broker_authority("pulsar://[::1]").as_deref(), Some("[::1]:6650"));
        assert_eq!(broker_authority("pulsar://[::1]:7000").as_deref(), Some("[::1]:7000"));
        assert_eq!(broker_authority("pulsar://"), None);
    }
}
