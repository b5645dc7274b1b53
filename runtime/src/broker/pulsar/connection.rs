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
//! - closes consumers whose subscriber went away (their [`ConsumerGuard`] was dropped) and
//!   producers that were dropped.
//!
//! When the connection ends, every waiting request fails, every consumer's channel closes and
//! the connection refuses new work: the [`super::client::Client`] then opens a new one.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ID_PROPERTY;
use super::error::PulsarError;
use super::frame::{self, Frame, MessagePayload};
use super::proto::{
    AckType, AuthData, BaseCommand, CommandAck, CommandAuthResponse, CommandCloseConsumer, CommandCloseProducer,
    CommandConnect, CommandFlow, CommandLookupTopic, CommandLookupTopicResponse, CommandMessage, CommandPing,
    CommandPong, CommandProducer, CommandSend, CommandSubscribe, CommandType, InitialPosition, KeyValue,
    MessageMetadata, ServerError, SubType,
};
use crate::broker::Envelope;
use crate::broker::waiters::{Unanswered, Waiter, Waiters};

/// What the client calls itself in CONNECT.
const CLIENT_VERSION: &str = concat!("bootstrap-wasm-", env!("CARGO_PKG_VERSION"));

/// The protocol version spoken: 12 has everything used here (and is what the `pulsar` crate
/// and older Java clients send).
const PROTOCOL_VERSION: i32 = 12;

/// The size a broker allows a message when it does not say (Apache Pulsar's default).
const DEFAULT_MAX_MESSAGE_SIZE: usize = 5 << 20;

/// Room for a frame's command and metadata beyond its message's size.
const FRAME_OVERHEAD: usize = 64 << 10;

/// Messages a consumer is granted at a time. Its channel holds three times as many, so that
/// a batch arriving on the last permit still fits.
const PERMITS: u32 = 1000;
const CONSUMER_CHANNEL: usize = 3 * PERMITS as usize;

/// Any byte stream to a broker: TCP, or TLS over TCP.
pub trait BrokerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> BrokerStream for T {}

/// How to open a connection.
#[derive(Clone)]
pub struct ConnectSettings {
    /// Sent as token authentication, in CONNECT and in answer to the broker's challenges.
    pub token: Option<String>,
    /// Through a proxy: the broker it should connect this connection to.
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
    max_frame: usize,
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
    /// Producers open on the broker: the broker may close one (its topic moved).
    producers: HashSet<u64>,
    /// Consumers and producers this side closed, for the log at shutdown.
    closed: (usize, usize),
    /// Pings this side sent and pongs it received, so that [`Connection::sync`] can wait for
    /// the answer to its own ping (the broker answers in order).
    pings_sent: u64,
    pongs_received: u64,
}

struct ConsumerSlot {
    sender: mpsc::Sender<Envelope>,
    /// Permits granted and not used yet.
    permits: u32,
    /// Whether its messages are acknowledged: not on a non-persistent topic, which keeps
    /// nothing to acknowledge (Pulsar's Java client does not acknowledge there either).
    acknowledges: bool,
}

impl ConsumerSlot {
    /// More permits, if half of them are used and the subscriber has room for them.
    fn refill(&mut self) -> Option<u32> {
        if self.permits > PERMITS / 2 || self.sender.capacity() < 2 * PERMITS as usize {
            return None;
        }
        let grant = PERMITS - self.permits;
        self.permits = PERMITS;
        Some(grant)
    }
}

/// A producer created on a connection.
pub struct Producer {
    connection: Arc<Connection>,
    id: u64,
    /// The name the broker gave it, which every message's metadata carries.
    name: String,
    next_sequence: AtomicU64,
}

/// Closes its consumer when dropped: the subscriber went away.
pub struct ConsumerGuard {
    id: u64,
    closing: mpsc::UnboundedSender<Closing>,
}

impl Drop for ConsumerGuard {
    fn drop(&mut self) {
        let _ = self.closing.send(Closing::Consumer(self.id));
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.connection.shared.closing.send(Closing::Producer(self.id));
    }
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
        let connect = BaseCommand {
            r#type: CommandType::Connect as i32,
            connect: Some(CommandConnect {
                client_version: CLIENT_VERSION.to_owned(),
                auth_method_name: settings.token.as_ref().map(|_| "token".to_owned()),
                auth_data: settings.token.as_ref().map(|token| token.clone().into_bytes()),
                protocol_version: Some(PROTOCOL_VERSION),
                proxy_to_broker_url: settings.proxy_to_broker_url.clone(),
            }),
            ..Default::default()
        };
        let mut buffer = BytesMut::with_capacity(8 << 10);
        let handshake = async {
            writer.write_all(&frame::command(&connect)).await?;
            loop {
                while let Some(Frame { command, .. }) = frame::decode(&mut buffer, DEFAULT_MAX_MESSAGE_SIZE)? {
                    match CommandType::try_from(command.r#type) {
                        Ok(CommandType::Connected) => return Ok(command.connected.and_then(|c| c.max_message_size)),
                        Ok(CommandType::Error) => {
                            return Err(server_error(command.error.map(|e| (e.error, e.message))));
                        }
                        Ok(CommandType::AuthChallenge) => writer.write_all(&auth_response(&settings.token)).await?,
                        _ => {}
                    }
                }
                if reader.read_buf(&mut buffer).await? == 0 {
                    return Err(PulsarError::Disconnected("closed by the broker during the handshake".into()));
                }
            }
        };
        let max_message_size = tokio::time::timeout(settings.operation_timeout, handshake)
            .await
            .map_err(|_| PulsarError::Timeout(settings.operation_timeout))??;
        let max_message_size =
            max_message_size.and_then(|size| usize::try_from(size).ok()).unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);

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
            requests: Waiters::default(),
            receipts: Waiters::default(),
            pongs: Waiters::default(),
        });
        let io = tokio::spawn(read_loop(shared.clone(), reader, buffer, closing_rx));
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

    /// A producer on `topic`, which this connection's broker serves.
    pub async fn producer(self: &Arc<Self>, topic: &str) -> Result<Producer, PulsarError> {
        let producer_id = self.shared.next_id();
        let answer = self
            .request(|request_id| BaseCommand {
                r#type: CommandType::Producer as i32,
                producer: Some(CommandProducer { topic: topic.to_owned(), producer_id, request_id }),
                ..Default::default()
            })
            .await?;
        let kind = answer.r#type;
        let success = answer.producer_success.ok_or_else(|| unexpected("a producer's creation", kind))?;
        let next_sequence = u64::try_from(success.last_sequence_id.unwrap_or(-1) + 1).unwrap_or(0);
        self.shared.state.lock().unwrap().producers.insert(producer_id);
        Ok(Producer {
            connection: self.clone(),
            id: producer_id,
            name: success.producer_name,
            next_sequence: AtomicU64::new(next_sequence),
        })
    }

    /// Subscribe to `topic` from its latest message, as `consumer_name` or a fresh name;
    /// messages published once this returns arrive on the channel, which closes when the
    /// consumer or the connection ends. Dropping the guard closes the consumer.
    pub async fn subscribe(
        &self,
        topic: &str,
        subscription: &str,
        sub_type: SubType,
        consumer_name: Option<&str>,
    ) -> Result<(mpsc::Receiver<Envelope>, ConsumerGuard), PulsarError> {
        let consumer_id = self.shared.next_id();
        let (sender, messages) = mpsc::channel(CONSUMER_CHANNEL);
        // Registered before subscribing, so that no message can arrive unclaimed.
        let slot = ConsumerSlot { sender, permits: PERMITS, acknowledges: !topic.starts_with("non-persistent://") };
        self.shared.state.lock().unwrap().consumers.insert(consumer_id, slot);
        let subscribed = async {
            self.request(|request_id| BaseCommand {
                r#type: CommandType::Subscribe as i32,
                subscribe: Some(CommandSubscribe {
                    topic: topic.to_owned(),
                    subscription: subscription.to_owned(),
                    sub_type: sub_type as i32,
                    consumer_id,
                    request_id,
                    // A name of its own, as Pulsar's clients give theirs: brokers name
                    // consumers by it in their stats and errors.
                    consumer_name: Some(
                        consumer_name.map_or_else(|| format!("bootstrap-{}", uuid::Uuid::new_v4()), str::to_owned),
                    ),
                    initial_position: Some(InitialPosition::Latest as i32),
                }),
                ..Default::default()
            })
            .await?;
            self.shared.write(&frame::command(&flow(consumer_id, PERMITS))).await?;
            // A broker drops what a non-persistent topic gets while its consumers have no
            // permits: wait until it has read the grant, so that what is published next is
            // delivered.
            self.sync().await
        };
        if let Err(e) = subscribed.await {
            self.shared.state.lock().unwrap().consumers.remove(&consumer_id);
            return Err(e);
        }
        Ok((messages, ConsumerGuard { id: consumer_id, closing: self.shared.closing.clone() }))
    }

    /// Wait until the broker has read everything written so far: ping, and wait for the pong.
    async fn sync(&self) -> Result<(), PulsarError> {
        let waiter = self.shared.register(&self.shared.pongs, |state| {
            state.pings_sent += 1;
            Ok(state.pings_sent)
        })?;
        self.shared.write(&frame::command(&ping())).await?;
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
                let _ = self.request(|request_id| close_consumer(consumer_id, request_id)).await;
            }
            for producer_id in producers {
                let _ = self.request(|request_id| close_producer(producer_id, request_id)).await;
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

impl Producer {
    /// Whether sends can still succeed: its connection is up and the broker has not closed it.
    pub fn is_open(&self) -> bool {
        let state = self.connection.shared.state.lock().unwrap();
        state.ended.is_none() && state.producers.contains(&self.id)
    }

    /// Publish one message and wait for the broker's receipt.
    pub async fn send(&self, properties: Vec<KeyValue>, payload: &[u8]) -> Result<(), PulsarError> {
        let shared = &self.connection.shared;
        let sequence_id = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let waiter = shared.register(&shared.receipts, |state| match state.producers.contains(&self.id) {
            true => Ok((self.id, sequence_id)),
            false => Err(PulsarError::Disconnected("the broker closed the producer".into())),
        })?;
        let send = BaseCommand {
            r#type: CommandType::Send as i32,
            send: Some(CommandSend { producer_id: self.id, sequence_id, num_messages: Some(1) }),
            ..Default::default()
        };
        let metadata = MessageMetadata {
            producer_name: self.name.clone(),
            sequence_id,
            publish_time: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |t| t.as_millis() as u64),
            properties,
            uncompressed_size: Some(payload.len() as u32),
            ..Default::default()
        };
        if payload.len() > shared.max_frame - FRAME_OVERHEAD {
            return Err(PulsarError::Protocol(format!(
                "a message of {} bytes is over the broker's limit",
                payload.len()
            )));
        }
        shared.write(&frame::message(&send, &metadata, payload)).await?;
        shared.wait(waiter).await?
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
    fn register<'a, K: Eq + std::hash::Hash + Clone, T>(
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
    async fn wait<K: Eq + std::hash::Hash, T>(&self, waiter: Waiter<'_, K, T>) -> Result<T, PulsarError> {
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
        state.producers.clear();
    }

    /// Act on one frame from the broker.
    async fn dispatch(&self, frame: Frame) -> Result<(), PulsarError> {
        let Frame { command, message } = frame;
        let Ok(kind) = CommandType::try_from(command.r#type) else {
            tracing::trace!(r#type = command.r#type, "ignored a Pulsar command");
            return Ok(());
        };
        match kind {
            CommandType::Ping => self.write(&frame::command(&pong())).await?,
            CommandType::Pong => self.pong(),
            CommandType::Message => {
                let (Some(delivered), Some(payload)) = (command.message, message) else {
                    return Err(PulsarError::Protocol("a message frame without a message".into()));
                };
                let replies = self.deliver(delivered, payload);
                if !replies.is_empty() {
                    self.write(&replies).await?;
                }
            }
            CommandType::SendReceipt => {
                if let Some(receipt) = command.send_receipt {
                    self.answer_send(receipt.producer_id, receipt.sequence_id, Ok(()));
                }
            }
            CommandType::SendError => {
                if let Some(error) = command.send_error {
                    let failure = server_error(Some((error.error, error.message)));
                    self.answer_send(error.producer_id, error.sequence_id, Err(failure));
                }
            }
            CommandType::Success => self.answer(command.success.as_ref().map(|s| s.request_id), Ok(command)),
            CommandType::ProducerSuccess => {
                let ready = command.producer_success.as_ref().is_some_and(|s| s.producer_ready != Some(false));
                // A producer not ready yet waits for exclusive access; its second answer counts.
                if ready {
                    self.answer(command.producer_success.as_ref().map(|s| s.request_id), Ok(command));
                }
            }
            CommandType::LookupResponse => {
                self.answer(command.lookup_topic_response.as_ref().map(|l| l.request_id), Ok(command))
            }
            CommandType::Error => {
                if let Some(error) = command.error {
                    self.answer(Some(error.request_id), Err(server_error(Some((error.error, error.message)))));
                }
            }
            CommandType::CloseConsumer => {
                // The broker closed it (its topic moved): the subscriber sees its channel close,
                // and subscribes again.
                if let Some(close) = command.close_consumer {
                    self.state.lock().unwrap().consumers.remove(&close.consumer_id);
                }
            }
            CommandType::CloseProducer => {
                // Its sends fail from now on; its owner makes a new one, looking the topic up
                // again.
                if let Some(close) = command.close_producer {
                    let closed = close.producer_id;
                    // Under the state's lock, under which a send checks its producer is open.
                    let mut state = self.state.lock().unwrap();
                    state.producers.remove(&closed);
                    let failure = || Err(PulsarError::Disconnected("the broker closed the producer".into()));
                    self.receipts.answer_where(|(producer, _)| *producer == closed, failure);
                }
            }
            CommandType::AuthChallenge => self.write(&auth_response(&self.settings.token)).await?,
            _ => tracing::trace!(?kind, "ignored a Pulsar command"),
        }
        Ok(())
    }

    fn answer(&self, request_id: Option<u64>, answer: Result<BaseCommand, PulsarError>) {
        if let Some(request_id) = request_id {
            self.requests.answer(&request_id, answer);
        }
    }

    fn answer_send(&self, producer_id: u64, sequence_id: u64, result: Result<(), PulsarError>) {
        self.receipts.answer(&(producer_id, sequence_id), result);
    }

    fn pong(&self) {
        let mut state = self.state.lock().unwrap();
        state.pongs_received += 1;
        let answered = state.pongs_received;
        self.pongs.answer_where(|ping| *ping <= answered, || ());
    }

    /// Hand a message to its consumer's channel; returns the frames to send back: the
    /// acknowledgement, more permits, or the consumer's close if its subscriber is gone.
    fn deliver(&self, delivered: CommandMessage, payload: MessagePayload) -> Vec<u8> {
        let consumer_id = delivered.consumer_id;
        let mut replies = Vec::new();
        let mut state = self.state.lock().unwrap();
        let Some(slot) = state.consumers.get_mut(&consumer_id) else {
            return replies; // Closed meanwhile.
        };
        let used = payload.metadata.num_messages_in_batch.map_or(1, |n| n.max(1) as u32);
        slot.permits = slot.permits.saturating_sub(used);
        let mut gone = false;
        for envelope in envelopes(&payload) {
            match slot.sender.try_send(envelope) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(consumer_id, "dropped a Pulsar message: its subscriber is too far behind");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone = true,
            }
        }
        if gone {
            // Unacknowledged, so that a shared subscription's other consumers get it.
            state.consumers.remove(&consumer_id);
            state.closed.0 += 1;
            let request_id = self.next_id();
            frame::put_command(&mut replies, &close_consumer(consumer_id, request_id));
            return replies;
        }
        if slot.acknowledges {
            let mut message_id = delivered.message_id;
            message_id.batch_index = None; // The whole batch.
            let ack = CommandAck { consumer_id, ack_type: AckType::Individual as i32, message_id: vec![message_id] };
            frame::put_command(
                &mut replies,
                &BaseCommand { r#type: CommandType::Ack as i32, ack: Some(ack), ..Default::default() },
            );
        }
        if let Some(grant) = slot.refill() {
            frame::put_command(&mut replies, &flow(consumer_id, grant));
        }
        replies
    }

    /// Permits for consumers whose subscriber has caught up since their last message.
    fn refills(&self) -> Vec<u8> {
        let mut frames = Vec::new();
        for (&consumer_id, slot) in &mut self.state.lock().unwrap().consumers {
            if let Some(grant) = slot.refill() {
                frame::put_command(&mut frames, &flow(consumer_id, grant));
            }
        }
        frames
    }

    /// Close what was dropped, without waiting for the broker's answer.
    async fn close_dropped(&self, dropped: Closing) -> Result<(), PulsarError> {
        let command = {
            let mut state = self.state.lock().unwrap();
            // Unless already gone with its connection or by the broker.
            match dropped {
                Closing::Consumer(id) if state.consumers.remove(&id).is_some() => {
                    state.closed.0 += 1;
                    close_consumer(id, self.next_id())
                }
                Closing::Producer(id) if state.producers.remove(&id) => {
                    state.closed.1 += 1;
                    close_producer(id, self.next_id())
                }
                _ => return Ok(()),
            }
        };
        self.write(&frame::command(&command)).await
    }
}

/// The connection's task: read and dispatch frames, close what guards ask to, keep alive.
async fn read_loop(
    shared: Arc<Shared>,
    mut reader: ReadHalf<Box<dyn BrokerStream>>,
    mut buffer: BytesMut,
    mut closing: mpsc::UnboundedReceiver<Closing>,
) {
    let keepalive = shared.settings.keepalive;
    let mut ticks = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    let mut heard = Instant::now();
    let error = 'io: loop {
        loop {
            match frame::decode(&mut buffer, shared.max_frame) {
                Ok(Some(frame)) => {
                    if let Err(e) = shared.dispatch(frame).await {
                        break 'io e;
                    }
                }
                Ok(None) => break,
                Err(e) => break 'io PulsarError::Protocol(e.to_string()),
            }
        }
        tokio::select! {
            read = reader.read_buf(&mut buffer) => match read {
                Ok(0) => break PulsarError::Disconnected("closed by the broker".into()),
                Ok(_) => heard = Instant::now(),
                Err(e) => break PulsarError::Disconnected(format!("cannot read: {e}")),
            },
            Some(dropped) = closing.recv() => {
                if let Err(e) = shared.close_dropped(dropped).await {
                    break e;
                }
            }
            _ = ticks.tick() => {
                if heard.elapsed() > 2 * keepalive {
                    break PulsarError::Disconnected(format!("the broker answered no ping for {:?}", 2 * keepalive));
                }
                shared.state.lock().unwrap().pings_sent += 1;
                let mut frames = frame::command(&ping());
                frames.extend(shared.refills());
                if let Err(e) = shared.write(&frames).await {
                    break e;
                }
            }
        }
    };
    tracing::debug!("Pulsar connection ended: {error}");
    shared.end(error);
}

/// The envelopes of a message: its payload, or each of a batch's, with the `id` property.
/// A message this client cannot read (compressed, or a chunk of a larger one) is logged and
/// left out.
fn envelopes(payload: &MessagePayload) -> Vec<Envelope> {
    let metadata = &payload.metadata;
    if metadata.compression.is_some_and(|c| c != 0) || metadata.num_chunks_from_msg.is_some_and(|n| n > 1) {
        tracing::warn!(
            producer = %metadata.producer_name,
            "dropped a Pulsar message that is compressed or chunked, which this client does not read"
        );
        return Vec::new();
    }
    match frame::split_batch(payload) {
        Ok(messages) => messages
            .into_iter()
            .map(|(properties, body)| Envelope {
                id: properties.into_iter().find(|p| p.key == ID_PROPERTY).map(|p| p.value),
                body: body.to_vec(),
            })
            .collect(),
        Err(e) => {
            tracing::warn!(producer = %metadata.producer_name, "dropped a malformed Pulsar batch: {e}");
            Vec::new()
        }
    }
}

fn ping() -> BaseCommand {
    BaseCommand { r#type: CommandType::Ping as i32, ping: Some(CommandPing {}), ..Default::default() }
}

fn pong() -> BaseCommand {
    BaseCommand { r#type: CommandType::Pong as i32, pong: Some(CommandPong {}), ..Default::default() }
}

fn flow(consumer_id: u64, message_permits: u32) -> BaseCommand {
    let flow = CommandFlow { consumer_id, message_permits };
    BaseCommand { r#type: CommandType::Flow as i32, flow: Some(flow), ..Default::default() }
}

fn close_consumer(consumer_id: u64, request_id: u64) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::CloseConsumer as i32,
        close_consumer: Some(CommandCloseConsumer { consumer_id, request_id }),
        ..Default::default()
    }
}

fn close_producer(producer_id: u64, request_id: u64) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::CloseProducer as i32,
        close_producer: Some(CommandCloseProducer { producer_id, request_id }),
        ..Default::default()
    }
}

fn auth_response(token: &Option<String>) -> Vec<u8> {
    let response = CommandAuthResponse {
        client_version: Some(CLIENT_VERSION.to_owned()),
        response: Some(AuthData {
            auth_method_name: Some("token".to_owned()),
            auth_data: Some(token.clone().unwrap_or_default().into_bytes()),
        }),
        protocol_version: Some(PROTOCOL_VERSION),
    };
    frame::command(&BaseCommand {
        r#type: CommandType::AuthResponse as i32,
        auth_response: Some(response),
        ..Default::default()
    })
}

/// A broker's error answer.
fn server_error(error: Option<(i32, String)>) -> PulsarError {
    let (code, message) = error.unwrap_or((ServerError::UnknownError as i32, "no detail".into()));
    PulsarError::Server { code: ServerError::try_from(code).unwrap_or(ServerError::UnknownError), message }
}

fn unexpected(what: &str, kind: i32) -> PulsarError {
    PulsarError::Protocol(format!("{what} was answered with a command of type {kind}"))
}
