//! Compressed messages, made whole again as they arrive. A producer of Pulsar's Java or C++
//! clients (and so the Python client TrustGraph's services use) compresses a message's whole
//! payload (a batch's entries and their metadata together) and names the codec and the size
//! before compression in the message's metadata (`compression`, `uncompressed_size`). The
//! consumer decompresses the payload before it splits a batch ([`super::frame::split_batch`]).
//!
//! The formats are those clients' codecs, and each is read by a crate that reads that format
//! alone:
//!
//! - LZ4: LZ4's raw block format (no frame), of the announced size: `lz4_flex`, in safe Rust,
//!   without its frame format (and its hashing crate);
//! - ZLIB: a zlib stream (deflate behind zlib's header): `miniz_oxide`, the pure-Rust inflater
//!   behind flate2, whose output can be bounded;
//! - ZSTD: zstd frames: `zstd`, the bindings of the reference libzstd, which rdkafka already
//!   builds and links;
//! - SNAPPY: Snappy's raw format (not its framing format): `snap`, in pure Rust.
//!
//! A payload is never inflated past the size its metadata announces, and that size may be no
//! more than `limit` (the connection's: sixteen frames, 80 MiB at Pulsar's default limit): a
//! few bytes that announce gigabytes (a decompression bomb) are refused before anything is
//! allocated. An output of another size than announced is refused too. Pulsar's own clients
//! bound only the compressed size (by the broker's `maxMessageSize`), so they can send and
//! read a message larger than that uncompressed (an 8 MiB body, 5 MiB allowed); so can this
//! one, up to the limit.
//!
//! Chunked messages (`num_chunks_from_msg` over 1: a message too large for one frame, sent in
//! parts) are not reassembled: a producer compresses the whole message and then cuts it, so a
//! part alone is neither a message nor something that decompresses. They are refused here, so
//! that a part is never read as a whole message. Pulsar's clients chunk only on persistent
//! topics (on a non-persistent one, such as the transport's request and response queues, a
//! message too large is refused to its producer), and only when asked to (TrustGraph 2.4's
//! producers ask). Encryption is not undone either: TrustGraph's services do not encrypt.

use bytes::Bytes;

use super::proto::{CompressionType, MessageMetadata};

/// Why a message's payload cannot be read. The message is dropped; the connection is fine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A part of a message too large for one frame (see the module's documentation).
    #[error("it is chunk {chunk} of {chunks} of a larger message, and this client does not read chunked messages")]
    Chunked { chunk: i32, chunks: i32 },
    /// A codec this client does not know (a newer Pulsar's).
    #[error("its compression ({0}) is not one Pulsar defines")]
    UnknownCompression(i32),
    /// More than the connection reads in a frame, announced: refused before it is decoded.
    #[error("it announces {size} bytes uncompressed, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The codec cannot decode it.
    #[error("its {compression:?} payload is corrupt: {reason}")]
    Corrupt { compression: CompressionType, reason: String },
    /// It decodes to more than announced: decoding stopped there.
    #[error("its {compression:?} payload inflates past the {announced} bytes announced")]
    Overflow { compression: CompressionType, announced: usize },
    /// It decodes to less than announced.
    #[error("its {compression:?} payload inflates to {actual} bytes, not the {announced} announced")]
    SizeMismatch { compression: CompressionType, announced: usize, actual: usize },
}

/// How a codec failed, before [`decompress`] names the codec.
enum Failure {
    /// The output would be longer than announced.
    Overflow,
    Corrupt(String),
}

/// The payload of the message `metadata` describes, uncompressed; `payload` itself when it is
/// not compressed. `limit` bounds the size its metadata may announce.
pub fn decompress(metadata: &MessageMetadata, payload: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    if let Some(chunks) = metadata.num_chunks_from_msg.filter(|&n| n > 1) {
        return Err(DecodeError::Chunked { chunk: metadata.chunk_id.unwrap_or(0), chunks });
    }
    let raw = metadata.compression.unwrap_or(CompressionType::None as i32);
    let compression = CompressionType::try_from(raw).map_err(|_| DecodeError::UnknownCompression(raw))?;
    let codec: fn(&[u8], usize) -> Result<Vec<u8>, Failure> = match compression {
        CompressionType::None => return Ok(payload),
        CompressionType::Lz4 => lz4,
        CompressionType::Zlib => zlib,
        CompressionType::Zstd => zstd,
        CompressionType::Snappy => snappy,
    };
    // Absent, it is 0, as the Java client reads it: then only an empty payload decodes.
    let announced = metadata.uncompressed_size.unwrap_or(0) as usize;
    if announced > limit {
        return Err(DecodeError::TooLarge { size: announced, limit });
    }
    match codec(&payload, announced) {
        Ok(output) if output.len() == announced => Ok(Bytes::from(output)),
        Ok(output) => Err(DecodeError::SizeMismatch { compression, announced, actual: output.len() }),
        Err(Failure::Overflow) => Err(DecodeError::Overflow { compression, announced }),
        Err(Failure::Corrupt(reason)) => Err(DecodeError::Corrupt { compression, reason }),
    }
}

/// A raw LZ4 block: it carries no size of its own, so it is decoded into the announced size.
fn lz4(payload: &[u8], announced: usize) -> Result<Vec<u8>, Failure> {
    let mut output = vec![0; announced];
    match lz4_flex::block::decompress_into(payload, &mut output) {
        Ok(written) => {
            output.truncate(written);
            Ok(output)
        }
        Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => Err(Failure::Overflow),
        Err(e) => Err(Failure::Corrupt(e.to_string())),
    }
}

fn zlib(payload: &[u8], announced: usize) -> Result<Vec<u8>, Failure> {
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(payload, announced).map_err(|e| match e.status {
        miniz_oxide::inflate::TINFLStatus::HasMoreOutput => Failure::Overflow,
        _ => Failure::Corrupt(e.to_string()),
    })
}

fn zstd(payload: &[u8], announced: usize) -> Result<Vec<u8>, Failure> {
    // A frame that states its size (the clients' do) is checked before it is decoded.
    if let Ok(Some(stated)) = zstd::zstd_safe::get_frame_content_size(payload)
        && stated > announced as u64
    {
        return Err(Failure::Overflow);
    }
    zstd::bulk::decompress(payload, announced).map_err(|e| Failure::Corrupt(e.to_string()))
}

fn snappy(payload: &[u8], announced: usize) -> Result<Vec<u8>, Failure> {
    // Raw Snappy starts with the size it decodes to: checked before it is decoded.
    let stated = snap::raw::decompress_len(payload).map_err(|e| Failure::Corrupt(e.to_string()))?;
    if stated > announced {
        return Err(Failure::Overflow);
    }
    let mut output = vec![0; stated];
    let written =
        snap::raw::Decoder::new().decompress(payload, &mut output).map_err(|e| Failure::Corrupt(e.to_string()))?;
    output.truncate(written);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    /// Compress `data` as Pulsar's clients do, with each crate's own encoder.
    pub(super) fn compress(compression: CompressionType, data: &[u8]) -> Vec<u8> {
        match compression {
            CompressionType::None => data.to_vec(),
            CompressionType::Lz4 => lz4_flex::block::compress(data),
            CompressionType::Zlib => miniz_oxide::deflate::compress_to_vec_zlib(data, 6),
            CompressionType::Zstd => zstd::bulk::compress(data, 3).unwrap(),
            CompressionType::Snappy => snap::raw::Encoder::new().compress_vec(data).unwrap(),
        }
    }

    fn metadata(compression: CompressionType, uncompressed_size: usize) -> MessageMetadata {
        MessageMetadata {
            producer_name: "p".into(),
            compression: Some(compression as i32),
            uncompressed_size: Some(uncompressed_size as u32),
            ..Default::default()
        }
    }

    pub(super) const ALL: [CompressionType; 5] = [
        CompressionType::None,
        CompressionType::Lz4,
        CompressionType::Zlib,
        CompressionType::Zstd,
        CompressionType::Snappy,
    ];

    #[test]
    fn each_codec_round_trips() {
        let data: Vec<u8> = (0..10_000u32).flat_map(|n| format!("{{\"n\":{}}}", n % 97).into_bytes()).collect();
        for compression in ALL {
            for body in [&data[..], b"x", b""] {
                let compressed = Bytes::from(compress(compression, body));
                let decoded = decompress(&metadata(compression, body.len()), compressed, LIMIT);
                assert_eq!(decoded.as_deref(), Ok(body), "{compression:?}, {} bytes", body.len());
            }
        }
    }

    #[test]
    fn an_uncompressed_payload_is_passed_through_whatever_size_it_announces() {
        let payload = Bytes::from_static(b"as it is");
        let mut plain = metadata(CompressionType::None, 0);
        assert_eq!(decompress(&plain, payload.clone(), LIMIT), Ok(payload.clone()));
        plain.compression = None;
        plain.uncompressed_size = None;
        assert_eq!(decompress(&plain, payload.clone(), 1), Ok(payload));
    }

    #[test]
    fn a_size_over_the_limit_is_refused_before_decoding() {
        // A few bytes of zeros compressed announce more than the limit: nothing is allocated.
        let bomb = vec![0; LIMIT + 1];
        for compression in &ALL[1..] {
            let compressed = Bytes::from(compress(*compression, &bomb));
            assert!(compressed.len() < 64 << 10, "{compression:?} compresses zeros");
            let refused = decompress(&metadata(*compression, bomb.len()), compressed, LIMIT);
            assert_eq!(refused, Err(DecodeError::TooLarge { size: LIMIT + 1, limit: LIMIT }), "{compression:?}");
        }
    }

    #[test]
    fn an_output_longer_than_announced_is_refused() {
        let data = vec![b'a'; 4096];
        for compression in &ALL[1..] {
            let compressed = Bytes::from(compress(*compression, &data));
            // A lie under the limit: decoding stops at the size announced.
            let refused = decompress(&metadata(*compression, 100), compressed, LIMIT);
            assert_eq!(refused, Err(DecodeError::Overflow { compression: *compression, announced: 100 }));
        }
    }

    #[test]
    fn an_output_shorter_than_announced_is_refused() {
        let data = vec![b'a'; 4096];
        for compression in &ALL[1..] {
            let compressed = Bytes::from(compress(*compression, &data));
            let refused = decompress(&metadata(*compression, 5000), compressed, LIMIT);
            let expected = DecodeError::SizeMismatch { compression: *compression, announced: 5000, actual: 4096 };
            assert_eq!(refused, Err(expected));
        }
    }

    #[test]
    fn a_missing_size_decodes_only_an_empty_payload() {
        for compression in &ALL[1..] {
            let mut unsized_ = metadata(*compression, 0);
            unsized_.uncompressed_size = None;
            let compressed = Bytes::from(compress(*compression, b"something"));
            assert!(decompress(&unsized_, compressed, LIMIT).is_err(), "{compression:?}");
        }
    }

    #[test]
    fn garbage_and_unknown_codecs_are_errors_not_panics() {
        let garbage = Bytes::from_static(&[0xff, 0x13, 0x00, 0x07, 0x42, 0x99, 0x01]);
        for compression in &ALL[1..] {
            let decoded = decompress(&metadata(*compression, 64), garbage.clone(), LIMIT);
            assert!(decoded.is_err(), "{compression:?}: {decoded:?}");
        }
        let unknown = MessageMetadata { compression: Some(9), ..metadata(CompressionType::None, 1) };
        assert_eq!(decompress(&unknown, garbage, LIMIT), Err(DecodeError::UnknownCompression(9)));
    }

    #[test]
    fn a_chunk_is_refused_as_a_chunk() {
        let chunk =
            MessageMetadata { num_chunks_from_msg: Some(3), chunk_id: Some(1), ..metadata(CompressionType::None, 2) };
        let refused = decompress(&chunk, Bytes::from_static(b"{\""), LIMIT);
        assert_eq!(refused, Err(DecodeError::Chunked { chunk: 1, chunks: 3 }));
        assert!(refused.unwrap_err().to_string().contains("does not read chunked messages"));
        // A count of one is the whole message, as Pulsar's own consumers read it.
        let whole = MessageMetadata { num_chunks_from_msg: Some(1), chunk_id: Some(0), ..chunk };
        assert!(decompress(&whole, Bytes::from_static(b"{}"), LIMIT).is_ok());
    }
}

/// Compressed messages as a consumer receives them from a broker (the scripted one).
#[cfg(test)]
mod delivered {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::super::proto::{CommandType, SubType};
    use super::super::scripted::{self, ScriptedBroker};
    use super::tests::{ALL, compress};
    use super::*;
    use crate::broker::Envelope;

    const TOPIC: &str = "persistent://tg/flow/compressed";

    /// A compressed batch of `messages`' metadata, as a producer of Pulsar's clients sends it.
    fn batch(compression: CompressionType, messages: &[(&str, &[u8])]) -> (MessageMetadata, Vec<u8>) {
        let payload = scripted::batch_payload(messages);
        let metadata = MessageMetadata {
            producer_name: "java".into(),
            compression: Some(compression as i32),
            uncompressed_size: Some(payload.len() as u32),
            num_messages_in_batch: Some(messages.len() as i32),
            ..Default::default()
        };
        (metadata, compress(compression, &payload))
    }

    fn body(codec: CompressionType, n: usize) -> String {
        format!(r#"{{"codec":"{codec:?}","n":{n}}}"#)
    }

    /// What is logged at WARN and above on this thread (the test's runtime is single-threaded,
    /// so the connection's task logs here too).
    fn capture_warnings() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
        #[derive(Clone)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(log.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    #[tokio::test]
    async fn a_compressed_batch_is_delivered_as_its_messages_and_an_unreadable_one_is_dropped_and_acknowledged() {
        let (log, _logging) = capture_warnings();
        let broker = ScriptedBroker::start(scripted::serves).await;
        let client = scripted::client(&broker.url, Duration::from_secs(5));
        let (mut messages, _guard) = client.subscribe(TOPIC, "s", SubType::Exclusive, None).await.unwrap();
        let consumer_id = broker.received(CommandType::Subscribe).remove(0).subscribe.unwrap().consumer_id;

        // Two messages a batch: `<codec>-1` and `<codec>-2`.
        let batch_of = |codec: CompressionType| (1..=2).map(move |n| (format!("{codec:?}-{n}"), body(codec, n)));
        for (entry_id, compression) in (1..).zip(ALL) {
            let sent: Vec<_> = batch_of(compression).collect();
            let entries: Vec<_> = sent.iter().map(|(id, body)| (id.as_str(), body.as_bytes())).collect();
            let (metadata, payload) = batch(compression, &entries);
            broker.send_frame(scripted::message_with(consumer_id, entry_id, metadata, &payload));
        }
        // A bomb: a few bytes announcing more than any frame; then a chunk of a larger message.
        let (mut bomb, payload) = batch(CompressionType::Zstd, &[("bomb", &vec![0; 1 << 20])]);
        bomb.uncompressed_size = Some(u32::MAX);
        broker.send_frame(scripted::message_with(consumer_id, 100, bomb, &payload));
        let chunk = MessageMetadata {
            producer_name: "java".into(),
            num_chunks_from_msg: Some(2),
            chunk_id: Some(0),
            ..Default::default()
        };
        broker.send_frame(scripted::message_with(consumer_id, 101, chunk, br#"{"half":"#));
        let (last, payload) = batch(CompressionType::Lz4, &[("last", b"{}")]);
        broker.send_frame(scripted::message_with(consumer_id, 102, last, &payload));

        let mut received = Vec::new();
        for _ in 0..2 * ALL.len() + 1 {
            let Envelope { id, body } = messages.recv().await.unwrap();
            received.push((id.unwrap(), String::from_utf8(body).unwrap()));
        }
        let mut expected: Vec<_> = ALL.into_iter().flat_map(batch_of).collect();
        expected.push(("last".into(), "{}".into()));
        assert_eq!(received, expected, "every message, in order, and nothing of the two refused");

        // Every message is acknowledged, the two refused among them, so that none comes again.
        let acks = broker.wait_for(CommandType::Ack, ALL.len() + 3).await;
        let acked: Vec<_> = acks.iter().map(|a| a.ack.as_ref().unwrap().message_id[0].entry_id).collect();
        assert_eq!(acked, [1, 2, 3, 4, 5, 100, 101, 102]);
        let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        assert!(log.contains("over the limit"), "the bomb is named as such: {log}");
        assert!(log.contains(TOPIC) && log.contains("does not read chunked messages"), "{log}");
    }
}
