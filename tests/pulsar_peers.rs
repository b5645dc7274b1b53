//! The Pulsar client beside the official Python client, pulsar-client 3.13.0 (the bindings of
//! Pulsar's C++ client, and what TrustGraph's Python services use), on pulsar-lite:
//!
//! - what Python produces, with each of Pulsar's codecs (none, LZ4, ZLIB, ZSTD, Snappy), in
//!   batches of several messages and one message at a time, arrives here whole, with its `id`,
//!   in order: this client decompresses as the C++ and Java clients compress;
//! - what this client publishes, Python reads with its body and `id` intact: the C++ client's
//!   checksum and metadata checks accept this client's frames.
//!
//! pulsar-lite forwards a message's metadata and payload as its producer sent them: it does not
//! decompress, re-batch or re-compress, as [`pulsar_lite_forwards_compressed_batches_as_produced`]
//! checks on the raw frames. So what arrives compressed here is the Python client's own output.
//!
//! The topics are non-persistent, as the transport's request and response queues are. pulsar-lite
//! 0.2 misdelivers pipelined single messages on persistent topics (duplicated or out of order,
//! compressed or not, and to the Python client too), so persistent topics are not used here.
//! Chunked messages are not produced: this client does not read them (it drops them with a
//! warning; the scripted-broker test in `broker::pulsar::compression` shows that).

mod support;

use std::process::Stdio;
use std::time::Duration;

use bootstrap_wasm::broker::pulsar::PulsarTransport;
use bootstrap_wasm::broker::pulsar::proto::{
    BaseCommand, CommandConnect, CommandFlow, CommandSubscribe, CommandType, CompressionType, MessageMetadata, SubType,
};
use bootstrap_wasm::broker::{Envelope, Queue, Subscription, Transport};
use prost::Message as _;
use support::pulsar::PulsarLite;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;

/// A guard against hanging, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// Pulsar's codecs, by the Python client's names for them.
const CODECS: [&str; 5] = ["NONE", "LZ4", "ZLib", "ZSTD", "SNAPPY"];

/// Messages each producer sends: with batches of 4, two whole batches and a partial one.
const COUNT: usize = 10;

/// Room for the codecs to compress (and bytes beyond ASCII, kept as they are).
const TEXT: &str = "a body that compresses well, a body that compresses well, a body that compresses – well";

/// Produce [`COUNT`] messages to `topic` with the Python client, compressed with `codec`, in
/// batches of 4 if `batched`: each with the `id` `<codec>-<n>` and the body [`body`]`(codec, n)`.
const PRODUCE: &str = r#"
import sys, time
import pulsar
url, topic, codec, batched, count, text = sys.argv[1:7]
client = pulsar.Client(url, operation_timeout_seconds=30, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
producer = client.create_producer(
    topic,
    compression_type=getattr(pulsar.CompressionType, codec),
    batching_enabled=batched == "batched",
    # Batches cut by count, not by time: several messages each.
    batching_max_messages=4,
    batching_max_publish_delay_ms=60000,
)
results = []
for n in range(int(count)):
    body = '{"n":%d,"codec":"%s","text":"%s"}' % (n, codec, text)
    producer.send_async(body.encode(), lambda result, _id: results.append(result), properties={"id": f"{codec}-{n}"})
producer.flush()
deadline = time.monotonic() + 30
while len(results) < int(count) and time.monotonic() < deadline:
    time.sleep(0.01)
assert results == [pulsar.Result.Ok] * int(count), results
client.close()
"#;

/// Subscribe to `topic` with the Python client, say `ready`, then print each of `count`
/// messages as a JSON line: its `id` property (null if none) and its body.
const CONSUME: &str = r#"
import json, sys
import pulsar
url, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = pulsar.Client(url, operation_timeout_seconds=30, logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn))
consumer = client.subscribe(topic, "python-reader", consumer_type=pulsar.ConsumerType.Exclusive)
print("ready", flush=True)
for _ in range(count):
    message = consumer.receive(timeout_millis=60000)
    line = {"id": message.properties().get("id"), "body": message.data().decode()}
    print(json.dumps(line, ensure_ascii=False), flush=True)
    consumer.acknowledge(message)
client.close()
"#;

/// The Python client's interpreter, as `.ci/setup` installs it.
fn python() -> Command {
    let mut command = Command::new(support::repo().join(".venv-trustgraph/bin/python"));
    // The bodies are UTF-8, whatever the machine's locale.
    command.env("PYTHONIOENCODING", "utf-8").kill_on_drop(true);
    command
}

/// The body of the message `n` that [`PRODUCE`] sends with `codec`.
fn body(codec: &str, n: usize) -> String {
    format!(r#"{{"n":{n},"codec":"{codec}","text":"{TEXT}"}}"#)
}

/// Run [`PRODUCE`] to `topic`, and wait for it to finish.
async fn python_produces(broker: &PulsarLite, topic: &str, codec: &str, batched: bool) {
    let batching = if batched { "batched" } else { "single" };
    let mut command = python();
    command.arg("-c").arg(PRODUCE).args([&broker.url(), topic, codec, batching, &COUNT.to_string(), TEXT]);
    let output = tokio::time::timeout(PATIENCE, command.output()).await.expect("the Python producer hung").unwrap();
    assert!(
        output.status.success(),
        "the Python producer failed ({codec}, {batching}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn next(subscription: &mut Subscription) -> Envelope {
    let received = tokio::time::timeout(PATIENCE, subscription.recv()).await;
    received.expect("no message within the patience").expect("the subscription closed")
}

/// For each codec, Python produces to a response queue this client reads, and every message
/// arrives with its id and body, in order.
async fn check_python_messages_arrive(batched: bool) {
    let broker = PulsarLite::start();
    let transport = PulsarTransport::new(broker.options());
    for codec in CODECS {
        let queue = Queue::response(&format!("peers-{codec}-{}", if batched { "batched" } else { "single" }));
        let mut subscription = transport.subscribe(&queue, "reader").await.unwrap();
        python_produces(&broker, &queue.pulsar_topic(), codec, batched).await;
        for n in 0..COUNT {
            let Envelope { id, body: received } = next(&mut subscription).await;
            assert_eq!(id.as_deref(), Some(&*format!("{codec}-{n}")), "{codec}, batched: {batched}");
            assert_eq!(String::from_utf8(received).unwrap(), body(codec, n), "{codec}, batched: {batched}");
        }
    }
}

#[tokio::test]
async fn python_batches_arrive_whole_with_each_codec() {
    check_python_messages_arrive(true).await;
}

#[tokio::test]
async fn python_single_messages_arrive_whole_with_each_codec() {
    check_python_messages_arrive(false).await;
}

#[tokio::test]
async fn python_reads_what_this_client_publishes() {
    let broker = PulsarLite::start();
    let transport = PulsarTransport::new(broker.options());
    let queue = Queue::request("peers-python-reads");
    let envelopes: Vec<Envelope> = (0..COUNT)
        .map(|n| Envelope { id: Some(format!("ours-{n}")), body: body("ours", n).into_bytes() })
        .chain([Envelope { id: None, body: b"{}".to_vec() }])
        .collect();

    let mut command = python();
    command.arg("-c").arg(CONSUME).args([&broker.url(), &queue.pulsar_topic(), &envelopes.len().to_string()]);
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(PATIENCE, lines.next_line()).await.expect("the Python consumer hung");
    assert_eq!(ready.unwrap().as_deref(), Some("ready"), "the Python consumer did not subscribe");

    for envelope in &envelopes {
        transport.publish(&queue, envelope.clone()).await.unwrap();
    }
    let mut read = Vec::new();
    for _ in 0..envelopes.len() {
        let line = tokio::time::timeout(PATIENCE, lines.next_line()).await.expect("the Python consumer hung").unwrap();
        let Some(line) = line else { break };
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        let id = line["id"].as_str().map(str::to_owned);
        read.push(Envelope { id, body: line["body"].as_str().unwrap().as_bytes().to_vec() });
    }
    let output =
        tokio::time::timeout(PATIENCE, child.wait_with_output()).await.expect("the Python consumer hung").unwrap();
    assert!(output.status.success(), "the Python consumer failed:\n{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(read, envelopes);
}

/// What pulsar-lite sends a consumer of a batch the Python client compressed: read off a
/// connection of its own, frame by frame, so that nothing decodes it on the way.
#[tokio::test]
async fn pulsar_lite_forwards_compressed_batches_as_produced() {
    let broker = PulsarLite::start();
    let topic = Queue::response("peers-raw").pulsar_topic();
    let mut raw = RawConsumer::subscribe(&broker, &topic).await;
    python_produces(&broker, &topic, "LZ4", true).await;

    let (metadata, payload) = raw.next_message().await;
    assert_eq!(metadata.compression, Some(CompressionType::Lz4 as i32), "compressed as the producer sent it");
    assert_eq!(metadata.num_messages_in_batch, Some(4), "batched as the producer sent it");
    let uncompressed = metadata.uncompressed_size.unwrap() as usize;
    assert!(payload.len() < uncompressed, "{} bytes, not the {uncompressed} uncompressed", payload.len());
}

/// A consumer that speaks just enough of Pulsar's protocol to see a message frame as it is.
struct RawConsumer {
    stream: TcpStream,
}

impl RawConsumer {
    /// Connect to the broker (not through the relay, which rewrites nothing here but lookups)
    /// and subscribe to `topic` with permits for what follows.
    async fn subscribe(broker: &PulsarLite, topic: &str) -> Self {
        let address = broker.direct_url().trim_start_matches("pulsar://").to_owned();
        let mut consumer = Self { stream: TcpStream::connect(address).await.unwrap() };
        consumer
            .send(BaseCommand {
                r#type: CommandType::Connect as i32,
                connect: Some(CommandConnect {
                    client_version: "pulsar-peers-test".into(),
                    protocol_version: Some(21),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await;
        assert_eq!(consumer.next_frame().await.0.r#type, CommandType::Connected as i32);
        consumer
            .send(BaseCommand {
                r#type: CommandType::Subscribe as i32,
                subscribe: Some(CommandSubscribe {
                    topic: topic.to_owned(),
                    subscription: "raw".into(),
                    sub_type: SubType::Exclusive as i32,
                    consumer_id: 1,
                    request_id: 1,
                    consumer_name: None,
                    initial_position: None,
                }),
                ..Default::default()
            })
            .await;
        assert_eq!(consumer.next_frame().await.0.r#type, CommandType::Success as i32);
        let flow = CommandFlow { consumer_id: 1, message_permits: 100 };
        consumer.send(BaseCommand { r#type: CommandType::Flow as i32, flow: Some(flow), ..Default::default() }).await;
        consumer
    }

    async fn send(&mut self, command: BaseCommand) {
        let encoded = command.encode_to_vec();
        let mut frame = Vec::new();
        frame.extend_from_slice(&(4 + encoded.len() as u32).to_be_bytes());
        frame.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        frame.extend_from_slice(&encoded);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next frame: its command, and what follows it (a message's metadata and payload).
    async fn next_frame(&mut self) -> (BaseCommand, Vec<u8>) {
        let read = async {
            let size = self.stream.read_u32().await.unwrap() as usize;
            let mut frame = vec![0; size];
            self.stream.read_exact(&mut frame).await.unwrap();
            let command_size = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
            let command = BaseCommand::decode(&frame[4..4 + command_size]).unwrap();
            (command, frame[4 + command_size..].to_vec())
        };
        tokio::time::timeout(PATIENCE, read).await.expect("no frame within the patience")
    }

    /// The next message's metadata and payload, as they came.
    async fn next_message(&mut self) -> (MessageMetadata, Vec<u8>) {
        loop {
            let (command, mut rest) = self.next_frame().await;
            if command.r#type != CommandType::Message as i32 {
                continue;
            }
            if rest.starts_with(&[0x0e, 0x01]) {
                rest.drain(..6); // The magic number and the checksum.
            }
            let metadata_size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let metadata = MessageMetadata::decode(&rest[4..4 + metadata_size]).unwrap();
            return (metadata, rest[4 + metadata_size..].to_vec());
        }
    }
}
