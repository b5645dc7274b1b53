//! A scripted Pulsar broker for the client's unit tests. It answers CONNECT itself (or never,
//! if told to), every other command as the test's script says, and keeps what it was sent; the
//! test can also send frames of its own on the latest connection (a late answer, a message, a
//! ping). Like Apache Pulsar, it closes the connection of a client that sends a frame over its
//! `max_message_size` and the frame padding.
//!
//! It checks what the client sends in ways pulsar-lite cannot (one broker, no proxy, listeners
//! or authentication, and answers on time): the real-broker tests are in tests/pulsar.rs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::frame;
use super::proto::{
    BaseCommand, CommandCloseConsumer, CommandCloseProducer, CommandConnected, CommandError,
    CommandLookupTopicResponse, CommandMessage, CommandPartitionedTopicMetadataResponse, CommandProducerSuccess,
    CommandSendReceipt, CommandSuccess, CommandType, KeyValue, LookupType, MessageIdData, MessageMetadata, ServerError,
    SingleMessageMetadata,
};
use super::{Client, ClientOptions, TlsOptions};

/// Apache Pulsar's default `maxMessageSize`.
const DEFAULT_MAX_MESSAGE_SIZE: usize = 5 << 20;

/// What Apache Pulsar allows a frame beyond `maxMessageSize` (`Commands.MESSAGE_SIZE_FRAME_PADDING`).
const FRAME_PADDING: usize = 10 << 10;

/// How long [`ScriptedBroker::wait_for`] waits.
const PATIENCE: Duration = Duration::from_secs(5);

/// How the broker answers CONNECT.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handshake {
    /// Whether it answers at all.
    pub(crate) answered: bool,
    /// The `max_message_size` its CONNECTED announces (none: Apache Pulsar's default applies).
    pub(crate) max_message_size: Option<i32>,
}

impl Default for Handshake {
    fn default() -> Self {
        Self { answered: true, max_message_size: None }
    }
}

/// The script: each command the broker gets, with its own URL, and what it answers.
type Script = dyn Fn(&BaseCommand, &str) -> Option<BaseCommand> + Send + Sync;

/// A broker that answers as its script says; see the module's documentation.
pub(crate) struct ScriptedBroker {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<BaseCommand>>>,
    /// Frames for each connection to send, in the order they were accepted.
    connections: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>>,
}

impl ScriptedBroker {
    /// A broker answering CONNECT at once, and everything else as `script` says.
    pub(crate) async fn start(
        script: impl Fn(&BaseCommand, &str) -> Option<BaseCommand> + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(Handshake::default(), script).await
    }

    /// A broker answering CONNECT as `handshake` says, and everything else as `script` says.
    pub(crate) async fn start_with(
        handshake: Handshake,
        script: impl Fn(&BaseCommand, &str) -> Option<BaseCommand> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("pulsar://{}", listener.local_addr().unwrap());
        let broker = Self { url, received: Arc::default(), connections: Arc::default() };
        let script: Arc<Script> = Arc::new(script);
        let (received, connections, own_url) =
            (broker.received.clone(), broker.connections.clone(), broker.url.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (frames, to_send) = mpsc::unbounded_channel();
                connections.lock().unwrap().push(frames);
                let connection = Served { handshake, script: script.clone(), received: received.clone() };
                tokio::spawn(connection.serve(socket, own_url.clone(), to_send));
            }
        });
        broker
    }

    /// The commands of type `kind` received so far, on every connection.
    pub(crate) fn received(&self, kind: CommandType) -> Vec<BaseCommand> {
        self.received.lock().unwrap().iter().filter(|c| c.r#type == kind as i32).cloned().collect()
    }

    /// The commands of type `kind` received, once there are `count` (panics after a while).
    pub(crate) async fn wait_for(&self, kind: CommandType, count: usize) -> Vec<BaseCommand> {
        let waiting = async {
            loop {
                let received = self.received(kind);
                if received.len() >= count {
                    return received;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let waited = tokio::time::timeout(PATIENCE, waiting).await;
        waited.unwrap_or_else(|_| panic!("{count} {kind:?} did not arrive within {PATIENCE:?}"))
    }

    /// Send `command` on the latest connection.
    pub(crate) fn send(&self, command: &BaseCommand) {
        self.send_frame(frame::command(command));
    }

    /// Send the bytes of a frame on the latest connection.
    pub(crate) fn send_frame(&self, frame: Vec<u8>) {
        let connections = self.connections.lock().unwrap();
        connections.last().expect("a connection").send(frame).expect("the connection is served");
    }

    /// Send a ping on the latest connection and wait for the client's pong: it has then acted on
    /// everything sent before, and the broker has read what it sent meanwhile.
    pub(crate) async fn round_trip(&self) {
        let pongs = self.received(CommandType::Pong).len();
        self.send(&BaseCommand {
            r#type: CommandType::Ping as i32,
            ping: Some(Default::default()),
            ..Default::default()
        });
        self.wait_for(CommandType::Pong, pongs + 1).await;
    }
}

/// One connection, as the broker serves it.
struct Served {
    handshake: Handshake,
    script: Arc<Script>,
    received: Arc<Mutex<Vec<BaseCommand>>>,
}

impl Served {
    /// Answer what arrives on `socket`, and send what the test gives `to_send`, until the client
    /// closes the connection or sends a frame too large.
    async fn serve(self, socket: TcpStream, own_url: String, mut to_send: mpsc::UnboundedReceiver<Vec<u8>>) {
        let (mut reader, mut writer) = socket.into_split();
        let limit = self.handshake.max_message_size.map_or(DEFAULT_MAX_MESSAGE_SIZE, |size| size as usize);
        let mut buffer = BytesMut::new();
        loop {
            tokio::select! {
                read = reader.read_buf(&mut buffer) => if !read.is_ok_and(|n| n > 0) {
                    return;
                },
                Some(frame) = to_send.recv() => {
                    writer.write_all(&frame).await.unwrap();
                    continue;
                }
            }
            loop {
                let command = match frame::decode(&mut buffer, limit + FRAME_PADDING) {
                    Ok(Some(frame)) => frame.command,
                    Ok(None) => break,
                    Err(_) => return, // Closed, as a broker closes a connection over a frame too large.
                };
                let reply = self.answer(&command, &own_url);
                self.received.lock().unwrap().push(command);
                if let Some(reply) = reply {
                    writer.write_all(&frame::command(&reply)).await.unwrap();
                }
            }
        }
    }

    fn answer(&self, command: &BaseCommand, own_url: &str) -> Option<BaseCommand> {
        if command.r#type == CommandType::Ping as i32 {
            // As every broker does, whatever the script.
            return Some(BaseCommand {
                r#type: CommandType::Pong as i32,
                pong: Some(Default::default()),
                ..Default::default()
            });
        }
        if command.r#type != CommandType::Connect as i32 {
            return (self.script)(command, own_url);
        }
        self.handshake.answered.then(|| BaseCommand {
            r#type: CommandType::Connected as i32,
            connected: Some(CommandConnected {
                server_version: "scripted".into(),
                max_message_size: self.handshake.max_message_size,
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

/// A client of the cluster at `url`, whose brokers may take `operation_timeout` to answer.
pub(crate) fn client(url: &str, operation_timeout: Duration) -> Client {
    Client::new(ClientOptions {
        url: url.to_owned(),
        token: None,
        listener: None,
        tls: TlsOptions::default(),
        connect_timeout: Duration::from_secs(5),
        operation_timeout,
        keepalive: Duration::from_secs(30),
    })
}

/// A script that serves every topic itself, none partitioned: it makes every producer and
/// consumer asked for, closes consumers and receives messages.
pub(crate) fn serves(command: &BaseCommand, own_url: &str) -> Option<BaseCommand> {
    match CommandType::try_from(command.r#type).unwrap() {
        CommandType::PartitionedMetadata => Some(partitions_answer(command, 0)),
        CommandType::Lookup => Some(lookup_answer(command, LookupType::Connect, own_url)),
        CommandType::Producer => Some(producer_success(command)),
        CommandType::Subscribe => Some(success(command.subscribe.as_ref().unwrap().request_id)),
        CommandType::CloseConsumer => Some(success(command.close_consumer.as_ref().unwrap().request_id)),
        CommandType::Send => Some(send_receipt(command)),
        _ => None,
    }
}

/// The answer to the lookup `asked`: `kind`, naming `broker`, authoritative.
pub(crate) fn lookup_answer(asked: &BaseCommand, kind: LookupType, broker: &str) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::LookupResponse as i32,
        lookup_topic_response: Some(CommandLookupTopicResponse {
            request_id: asked.lookup_topic.as_ref().unwrap().request_id,
            response: Some(kind as i32),
            broker_service_url: Some(broker.to_owned()),
            authoritative: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The lookup `asked` failed with `code`.
pub(crate) fn lookup_failed(asked: &BaseCommand, code: ServerError) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::LookupResponse as i32,
        lookup_topic_response: Some(CommandLookupTopicResponse {
            request_id: asked.lookup_topic.as_ref().unwrap().request_id,
            response: Some(LookupType::Failed as i32),
            error: Some(code as i32),
            message: Some(format!("scripted {code:?}")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The answer to the partitions query `asked`: the topic has `partitions` (0: none).
pub(crate) fn partitions_answer(asked: &BaseCommand, partitions: u32) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::PartitionedMetadataResponse as i32,
        partition_metadata_response: Some(CommandPartitionedTopicMetadataResponse {
            request_id: asked.partition_metadata.as_ref().unwrap().request_id,
            partitions: Some(partitions),
            response: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The broker closes the consumer `consumer_id` (its topic is moving).
pub(crate) fn close_consumer(consumer_id: u64) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::CloseConsumer as i32,
        close_consumer: Some(CommandCloseConsumer { consumer_id, request_id: 0 }),
        ..Default::default()
    }
}

/// The broker closes the producer `producer_id` (its topic is moving).
pub(crate) fn close_producer(producer_id: u64) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::CloseProducer as i32,
        close_producer: Some(CommandCloseProducer { producer_id, request_id: 0 }),
        ..Default::default()
    }
}

/// The producer `asked` for is made.
pub(crate) fn producer_success(asked: &BaseCommand) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::ProducerSuccess as i32,
        producer_success: Some(CommandProducerSuccess {
            request_id: asked.producer.as_ref().unwrap().request_id,
            producer_name: "scripted-producer".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The receipt of the message `sent`.
pub(crate) fn send_receipt(sent: &BaseCommand) -> BaseCommand {
    let send = sent.send.as_ref().unwrap();
    BaseCommand {
        r#type: CommandType::SendReceipt as i32,
        send_receipt: Some(CommandSendReceipt {
            producer_id: send.producer_id,
            sequence_id: send.sequence_id,
            message_id: None,
        }),
        ..Default::default()
    }
}

/// The request `request_id` succeeded.
pub(crate) fn success(request_id: u64) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::Success as i32,
        success: Some(CommandSuccess { request_id }),
        ..Default::default()
    }
}

/// The request `request_id` failed with `code`.
pub(crate) fn error(request_id: u64, code: ServerError) -> BaseCommand {
    BaseCommand {
        r#type: CommandType::Error as i32,
        error: Some(CommandError { request_id, error: code as i32, message: format!("scripted {code:?}") }),
        ..Default::default()
    }
}

/// The frame of a message for the consumer `consumer_id`.
pub(crate) fn message(consumer_id: u64, body: &[u8]) -> Vec<u8> {
    let message_id = MessageIdData { ledger_id: 1, entry_id: 1, partition: None, batch_index: None };
    let command = BaseCommand {
        r#type: CommandType::Message as i32,
        message: Some(CommandMessage { consumer_id, message_id }),
        ..Default::default()
    };
    let metadata =
        MessageMetadata { producer_name: "scripted".into(), sequence_id: 0, publish_time: 0, ..Default::default() };
    frame::message(&command, &metadata, body)
}

/// The frame of the message `entry_id` for the consumer `consumer_id`, with metadata of its own
/// (a batch's, a compressed payload's) and `payload` as it is.
pub(crate) fn message_with(consumer_id: u64, entry_id: u64, metadata: MessageMetadata, payload: &[u8]) -> Vec<u8> {
    let message_id = MessageIdData { ledger_id: 1, entry_id, partition: None, batch_index: None };
    let command = BaseCommand {
        r#type: CommandType::Message as i32,
        message: Some(CommandMessage { consumer_id, message_id }),
        ..Default::default()
    };
    frame::message(&command, &metadata, payload)
}

/// The payload of a batch of `messages`, each its `id` property and body, as Pulsar's clients
/// lay one out (before they compress it).
pub(crate) fn batch_payload(messages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, body) in messages {
        let single = SingleMessageMetadata {
            properties: vec![KeyValue { key: "id".into(), value: (*id).to_owned() }],
            payload_size: body.len() as i32,
            compacted_out: None,
        };
        payload.extend_from_slice(&(single.encoded_len() as u32).to_be_bytes());
        payload.extend_from_slice(&single.encode_to_vec());
        payload.extend_from_slice(body);
    }
    payload
}
