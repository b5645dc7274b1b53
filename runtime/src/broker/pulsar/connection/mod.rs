//! One connection to a Pulsar broker: the handshake, then one task reading what the broker
//! sends and handing each frame to whoever waits for it.
//!
//! Writes go straight to the socket from the caller's task, one frame (or a few) per write, and
//! TCP_NODELAY is set on every socket: a small request must not wait for Nagle's algorithm.
//! Reads happen on the connection's own task, which
//!
//! - answers requests by their `request_id` (lookups, producer and consumer creation, closes),
//!   and sends by their producer and sequence id (receipts);
//! - hands a consumer's messages to its channel as [`Envelope`]s, acknowledges each (on
//!   persistent topics), and grants the broker more permits as the channel drains (flow
//!   control: a broker sends a consumer no more messages than it was granted);
//! - answers the broker's pings and pings it every `keepalive`, and gives up on a connection
//!   that stayed silent for two of them;
//! - closes consumers whose subscriber went away (their [`ConsumerGuard`] was dropped, or the
//!   subscribe that made it never returned it) and producers that were dropped; and closes
//!   on the broker any consumer it sends messages for that this side does not know, as Pulsar's
//!   Java client does, so that nothing stays subscribed on the broker that nobody reads.
//!
//! Sends are refused here, with [`PulsarError::MessageTooLarge`], when their message is over the
//! `max_message_size` the broker announced in CONNECTED: a broker closes the connection of a
//! client that sends a larger frame, and with it everything else on the connection.
//!
//! When the connection ends, every waiting request fails, every consumer's channel closes and
//! the connection refuses new work: the [`super::client::Client`] then opens a new one.
//!
//! This module holds what the parts share: the write half, the state and the requests waiting
//! for their answer. `handshake` opens the connection, `reader` is its task, `producer` and
//! `consumer` are what is made on it, and `commands` builds what they send.
//!
//! [`Envelope`]: crate::broker::Envelope

mod commands;
mod consumer;
mod handshake;
mod producer;
mod reader;

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use consumer::ConsumerSlot;
pub use consumer::{CONSUMER_CHANNEL, Subscribed};
pub use producer::Producer;

use super::error::{PulsarError, unexpected};
use super::frame;
use super::proto::{
    BaseCommand, CommandLookupTopic, CommandLookupTopicResponse, CommandPartitionedTopicMetadata, CommandType,
    ServerError,
};
use crate::broker::waiters::{Unanswered, Waiter, Waiters};

/// The size a broker allows a message when it does not say (Apache Pulsar's default).
const DEFAULT_MAX_MESSAGE_SIZE: usize = 5 << 20;

/// Room for a frame's command and metadata beyond its message's size, in what is read.
const FRAME_OVERHEAD: usize = 64 << 10;

/// Any byte stream to a broker: TCP, or TLS over TCP.
pub trait BrokerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> BrokerStream for T {}

/// How to open a connection.
#[derive(Clone)]
pub struct ConnectSettings {
    /// Sent as token authentication, in CONNECT and in answer to the broker's challenges.
    pub token: Option<String>,
    /// Through a proxy: the broker it should connect this connection to, as `host:port` (what
    /// Pulsar's proxy expects, and the Java and C++ clients send).
    pub proxy_to_broker_url: Option<String>,
    /// How long the handshake, and each request on the connection, may take.
    pub operation_timeout: Duration,
    /// How often to ping the broker.
    pub keepalive: Duration,
}

/// One open connection; see the module's documentation.
pub struct Connection {
    shared: Arc<Shared>,
    io: JoinHandle<()>,
}

/// What the connection's task and its callers share.
struct Shared {
    writer: tokio::sync::Mutex<WriteHalf<Box<dyn BrokerStream>>>,
    state: Mutex<State>,
    /// What to close on the connection's task: dropped [`ConsumerGuard`]s and [`Producer`]s.
    closing: mpsc::UnboundedSender<Closing>,
    next_id: AtomicU64,
    settings: ConnectSettings,
    /// The largest frame read: generous, whatever the broker announced, so that nothing it
    /// sends is refused.
    max_frame: usize,
    /// The largest message sent: the broker's announced limit.
    max_message_size: usize,
    /// Requests waiting for their answer, by request id (registered by [`Shared::register`],
    /// as are the two below).
    requests: Waiters<u64, Result<BaseCommand, PulsarError>>,
    /// Sends waiting for their receipt, by producer and sequence id.
    receipts: Waiters<(u64, u64), Result<(), PulsarError>>,
    /// [`Connection::sync`]s waiting for the pong to their ping, by the ping's number.
    pongs: Waiters<u64, ()>,
}

#[derive(Default)]
struct State {
    /// Why the connection ended, once it has.
    ended: Option<PulsarError>,
    consumers: HashMap<u64, ConsumerSlot>,
    /// Consumers this side asked the broker to close and the broker has not answered for yet,
    /// by the close's request id: the messages still on their way for them call for no other
    /// close.
    closing_consumers: HashMap<u64, u64>,
    /// Producers open on the broker: the broker may close one (its topic moved).
    producers: HashSet<u64>,
    /// Consumers and producers this side closed, for the log at shutdown.
    closed: (usize, usize),
    /// Pings this side sent and pongs it received, so that [`Connection::sync`] can wait for
    /// the answer to its own ping (the broker answers in order).
    pings_sent: u64,
    pongs_received: u64,
}

/// Something dropped, to close on the broker.
enum Closing {
    Consumer(u64),
    Producer(u64),
}

impl Connection {
    /// Open a connection over `stream` to a broker: CONNECT, and wait for CONNECTED.
    pub async fn open(stream: Box<dyn BrokerStream>, settings: ConnectSettings) -> Result<Arc<Self>, PulsarError> {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let mut buffer = BytesMut::with_capacity(8 << 10);
        let max_message_size = handshake::handshake(&mut reader, &mut writer, &mut buffer, &settings).await?;
        let (closing, closing_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            writer: tokio::sync::Mutex::new(writer),
            state: Mutex::default(),
            closing,
            // Ids need only be unique on the connection, but pulsar-lite 0.2 mixes up equal
            // consumer ids of different connections on one subscription: start anywhere.
            next_id: AtomicU64::new(uuid::Uuid::new_v4().as_u64_pair().0 >> 16),
            settings,
            max_frame: max_message_size.max(DEFAULT_MAX_MESSAGE_SIZE) + FRAME_OVERHEAD,
            max_message_size,
            requests: Waiters::default(),
            receipts: Waiters::default(),
            pongs: Waiters::default(),
        });
        let io = tokio::spawn(reader::read_loop(shared.clone(), reader, buffer, closing_rx));
        Ok(Arc::new(Self { shared, io }))
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.state.lock().unwrap().ended.is_some()
    }

    /// Where `topic` is served: `authoritative` after following a redirect.
    pub async fn lookup(
        &self,
        topic: &str,
        authoritative: bool,
        listener: Option<&str>,
    ) -> Result<CommandLookupTopicResponse, PulsarError> {
        let answer = self
            .request(|request_id| BaseCommand {
                r#type: CommandType::Lookup as i32,
                lookup_topic: Some(CommandLookupTopic {
                    topic: topic.to_owned(),
                    request_id,
                    authoritative: Some(authoritative),
                    advertised_listener_name: listener.map(str::to_owned),
                }),
                ..Default::default()
            })
            .await?;
        let kind = answer.r#type;
        answer.lookup_topic_response.ok_or_else(|| unexpected("a lookup", kind))
    }

    /// How many partitions `topic` has: 0 if it is not partitioned.
    pub async fn partitions(&self, topic: &str) -> Result<u32, PulsarError> {
        let answer = self
            .request(|request_id| BaseCommand {
                r#type: CommandType::PartitionedMetadata as i32,
                partition_metadata: Some(CommandPartitionedTopicMetadata { topic: topic.to_owned(), request_id }),
                ..Default::default()
            })
            .await?;
        let kind = answer.r#type;
        let metadata = answer.partition_metadata_response.ok_or_else(|| unexpected("a partitions query", kind))?;
        // `response` is Success (0) or Failed (1).
        if metadata.response == Some(1) {
            let code =
                metadata.error.and_then(|code| ServerError::try_from(code).ok()).unwrap_or(ServerError::UnknownError);
            let message = metadata.message.unwrap_or_else(|| "failed".into());
            return Err(PulsarError::Server { code, message: format!("asking how {topic} is partitioned: {message}") });
        }
        Ok(metadata.partitions.unwrap_or(0))
    }

    /// Wait until the broker has read everything written so far: ping, and wait for the pong.
    async fn sync(&self) -> Result<(), PulsarError> {
        let waiter = self.shared.register(&self.shared.pongs, |state| {
            state.pings_sent += 1;
            Ok(state.pings_sent)
        })?;
        self.shared.write(&frame::command(&commands::ping())).await?;
        self.shared.wait(waiter).await
    }

    /// Close every consumer and producer on the connection, then the connection, within
    /// `timeout`; returns how many consumers and producers were closed on it, now or before.
    pub async fn close(&self, timeout: Duration) -> (usize, usize) {
        let (consumers, producers): (Vec<u64>, Vec<u64>) = {
            let mut state = self.shared.state.lock().unwrap();
            let consumers: Vec<u64> = state.consumers.drain().map(|(id, _)| id).collect();
            let producers: Vec<u64> = state.producers.drain().collect();
            state.closed.0 += consumers.len();
            state.closed.1 += producers.len();
            (consumers, producers)
        };
        let closing = async {
            for consumer_id in consumers {
                let _ = self.request(|request_id| commands::close_consumer(consumer_id, request_id)).await;
            }
            for producer_id in producers {
                let _ = self.request(|request_id| commands::close_producer(producer_id, request_id)).await;
            }
            let _ = self.shared.writer.lock().await.shutdown().await;
        };
        let _ = tokio::time::timeout(timeout, closing).await;
        self.io.abort();
        self.shared.end(PulsarError::Disconnected("closed".into()));
        self.shared.state.lock().unwrap().closed
    }

    /// Send the command `build` makes with a fresh request id, and wait for its answer.
    async fn request(&self, build: impl FnOnce(u64) -> BaseCommand) -> Result<BaseCommand, PulsarError> {
        let request_id = self.shared.next_id();
        let waiter = self.shared.register(&self.shared.requests, |_| Ok(request_id))?;
        self.shared.write(&frame::command(&build(request_id))).await?;
        self.shared.wait(waiter).await?
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The task owns the read half; with it gone and the write half dropped with `shared`,
        // the socket closes.
        self.io.abort();
    }
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn write(&self, bytes: &[u8]) -> Result<(), PulsarError> {
        let written = self.writer.lock().await.write_all(bytes).await;
        written.map_err(|e| {
            let error = PulsarError::Disconnected(format!("cannot write: {e}"));
            self.end(error.clone());
            error
        })
    }

    /// Wait with `waiters` for the answer to the key `key` returns, unless the connection has
    /// ended. Under the state's lock, so that [`Shared::end`] cannot come between the check and
    /// the registration and leave the waiter to time out.
    fn register<'a, K: Eq + Hash + Clone, T>(
        &self,
        waiters: &'a Waiters<K, T>,
        key: impl FnOnce(&mut State) -> Result<K, PulsarError>,
    ) -> Result<Waiter<'a, K, T>, PulsarError> {
        let mut state = self.state.lock().unwrap();
        if let Some(ended) = &state.ended {
            return Err(ended.clone());
        }
        Ok(waiters.register(key(&mut state)?))
    }

    /// The answer `waiter` waits for, within the operation timeout.
    async fn wait<K: Eq + Hash, T>(&self, mut waiter: Waiter<'_, K, T>) -> Result<T, PulsarError> {
        let timeout = self.settings.operation_timeout;
        waiter.wait(timeout).await.map_err(|unanswered| match unanswered {
            Unanswered::TimedOut => PulsarError::Timeout(timeout),
            // By `end`, which has recorded why.
            Unanswered::Abandoned => self.ended(),
        })
    }

    /// Why the connection ended (or that it did).
    fn ended(&self) -> PulsarError {
        let state = self.state.lock().unwrap();
        state.ended.clone().unwrap_or_else(|| PulsarError::Disconnected("the connection ended".into()))
    }

    /// End the connection with `error`: fail everything waiting, close every consumer's channel.
    fn end(&self, error: PulsarError) {
        let mut state = self.state.lock().unwrap();
        if state.ended.is_none() {
            state.ended = Some(error);
        }
        // Each waiter then fails with the error recorded above (see `wait`).
        self.requests.abandon_all();
        self.receipts.abandon_all();
        self.pongs.abandon_all();
        state.consumers.clear();
        state.closing_consumers.clear();
        state.producers.clear();
    }
}
