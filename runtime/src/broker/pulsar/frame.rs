//! Pulsar's framing: how commands and messages travel on a connection.
//!
//! Every frame starts with its size and a [`BaseCommand`]:
//!
//! ```text
//! [total size: u32][command size: u32][command]                                   a command
//! [total size: u32][command size: u32][command]
//!     [magic 0x0e01: u16][CRC32-C: u32][metadata size: u32][metadata][payload]      a message
//! ```
//!
//! Sizes are big-endian and `total size` counts what follows it. The checksum covers everything
//! after itself. Brokers may leave the magic number and checksum out (pulsar-lite does), so a
//! message without them is read as it is; one with them is checked. A batch is one message whose
//! payload holds several, each behind its own [`SingleMessageMetadata`] ([`split_batch`]).

use bytes::{Buf, Bytes, BytesMut};
use prost::Message as _;

use super::proto::{BaseCommand, KeyValue, MessageMetadata, SingleMessageMetadata};

/// The magic number before a message's checksum.
const MAGIC_CRC32C: u16 = 0x0e01;

/// A frame read from the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub command: BaseCommand,
    /// Set on message frames.
    pub message: Option<MessagePayload>,
}

/// A message frame's metadata and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePayload {
    pub metadata: MessageMetadata,
    pub data: Bytes,
}

/// Why bytes from the broker are not a frame. The connection cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is over the limit of {1}")]
    TooLarge(usize, usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("a message's checksum does not match")]
    Checksum,
}

/// Append the frame of `command` to `out`.
pub fn put_command(out: &mut Vec<u8>, command: &BaseCommand) {
    let command_size = command.encoded_len();
    out.reserve(8 + command_size);
    out.extend_from_slice(&(4 + command_size as u32).to_be_bytes());
    out.extend_from_slice(&(command_size as u32).to_be_bytes());
    command.encode(out).expect("a Vec grows as needed");
}

/// The frame of `command` alone.
pub fn command(command: &BaseCommand) -> Vec<u8> {
    let mut out = Vec::new();
    put_command(&mut out, command);
    out
}

/// The frame of a message: `command` (a `SEND`), then `metadata` and `payload`, checksummed.
pub fn message(command: &BaseCommand, metadata: &MessageMetadata, payload: &[u8]) -> Vec<u8> {
    let (command_size, metadata_size) = (command.encoded_len(), metadata.encoded_len());
    let total = 4 + command_size + 2 + 4 + 4 + metadata_size + payload.len();
    let mut out = Vec::with_capacity(4 + total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(command_size as u32).to_be_bytes());
    command.encode(&mut out).expect("a Vec grows as needed");
    out.extend_from_slice(&MAGIC_CRC32C.to_be_bytes());
    let checksum_at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(metadata_size as u32).to_be_bytes());
    metadata.encode(&mut out).expect("a Vec grows as needed");
    out.extend_from_slice(payload);
    let checksum = crc32c::crc32c(&out[checksum_at + 4..]);
    out[checksum_at..checksum_at + 4].copy_from_slice(&checksum.to_be_bytes());
    out
}

/// Take the first whole frame off `buffer`: `None` until one has arrived. Frames over
/// `max_size` bytes are refused before they are read.
pub fn decode(buffer: &mut BytesMut, max_size: usize) -> Result<Option<Frame>, FrameError> {
    let Some(size) = buffer.get(..4) else { return Ok(None) };
    let size = u32::from_be_bytes(size.try_into().expect("four bytes")) as usize;
    if size > max_size {
        return Err(FrameError::TooLarge(size, max_size));
    }
    if buffer.len() < 4 + size {
        buffer.reserve(4 + size - buffer.len());
        return Ok(None);
    }
    buffer.advance(4);
    let mut frame = buffer.split_to(size).freeze();
    let command_size = take_u32(&mut frame, "command size")? as usize;
    let command = BaseCommand::decode(take(&mut frame, command_size, "command")?).map_err(malformed)?;
    if frame.is_empty() {
        return Ok(Some(Frame { command, message: None }));
    }
    if frame.starts_with(&MAGIC_CRC32C.to_be_bytes()) {
        frame.advance(2);
        let checksum = take_u32(&mut frame, "checksum")?;
        if crc32c::crc32c(&frame) != checksum {
            return Err(FrameError::Checksum);
        }
    }
    let metadata_size = take_u32(&mut frame, "metadata size")? as usize;
    let metadata = MessageMetadata::decode(take(&mut frame, metadata_size, "metadata")?).map_err(malformed)?;
    Ok(Some(Frame { command, message: Some(MessagePayload { metadata, data: frame }) }))
}

/// The messages of a payload: one, or each message of a batch, with their properties.
/// Messages that compaction removed from a batch are left out.
pub fn split_batch(payload: &MessagePayload) -> Result<Vec<(Vec<KeyValue>, Bytes)>, FrameError> {
    let Some(count) = payload.metadata.num_messages_in_batch else {
        return Ok(vec![(payload.metadata.properties.clone(), payload.data.clone())]);
    };
    let mut data = payload.data.clone();
    let mut messages = Vec::with_capacity(count.max(0) as usize);
    for _ in 0..count {
        let size = take_u32(&mut data, "batch entry size")? as usize;
        let single =
            SingleMessageMetadata::decode(take(&mut data, size, "batch entry metadata")?).map_err(malformed)?;
        let body = take(&mut data, usize::try_from(single.payload_size).unwrap_or(usize::MAX), "batch entry")?;
        if single.compacted_out != Some(true) {
            messages.push((single.properties, body));
        }
    }
    Ok(messages)
}

fn take(bytes: &mut Bytes, size: usize, what: &str) -> Result<Bytes, FrameError> {
    if bytes.len() < size {
        return Err(FrameError::Malformed(format!("{what}: {size} bytes announced, {} left", bytes.len())));
    }
    Ok(bytes.split_to(size))
}

fn take_u32(bytes: &mut Bytes, what: &str) -> Result<u32, FrameError> {
    let raw = take(bytes, 4, what)?;
    Ok(u32::from_be_bytes(raw[..].try_into().expect("four bytes")))
}

fn malformed(error: prost::DecodeError) -> FrameError {
    FrameError::Malformed(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::proto::{CommandSend, CommandType};
    use super::*;

    fn send_command() -> BaseCommand {
        BaseCommand {
            r#type: CommandType::Send as i32,
            send: Some(CommandSend { producer_id: 1, sequence_id: 7, num_messages: Some(1) }),
            ..Default::default()
        }
    }

    fn metadata(properties: Vec<KeyValue>) -> MessageMetadata {
        MessageMetadata { producer_name: "p".into(), sequence_id: 7, publish_time: 1, properties, ..Default::default() }
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
        decode(&mut BytesMut::from(bytes), 1 << 20)
    }

    #[test]
    fn a_message_frame_reads_back_as_written() {
        let id = KeyValue { key: "id".into(), value: "x".into() };
        let bytes = message(&send_command(), &metadata(vec![id]), b"{\"a\":1}");
        let frame = decode_all(&bytes).unwrap().unwrap();
        assert_eq!(frame.command, send_command());
        let payload = frame.message.unwrap();
        assert_eq!(payload.metadata.properties[0].value, "x");
        assert_eq!(&payload.data[..], b"{\"a\":1}");
    }

    #[test]
    fn frames_are_taken_one_at_a_time_and_only_when_whole() {
        let ping = BaseCommand { r#type: CommandType::Ping as i32, ..Default::default() };
        let mut stream = command(&ping);
        stream.extend(message(&send_command(), &metadata(vec![]), b"hi"));
        let mut buffer = BytesMut::from(&stream[..stream.len() - 1]);
        assert_eq!(decode(&mut buffer, 1 << 20).unwrap().unwrap().command, ping);
        assert_eq!(decode(&mut buffer, 1 << 20).unwrap(), None, "the message is one byte short");
        buffer.extend_from_slice(&stream[stream.len() - 1..]);
        assert_eq!(&decode(&mut buffer, 1 << 20).unwrap().unwrap().message.unwrap().data[..], b"hi");
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_message_without_a_checksum_is_read_and_a_wrong_one_refused() {
        let bytes = message(&send_command(), &metadata(vec![]), b"hi");
        // Drop the magic number and checksum (6 bytes after the command) and fix the size.
        let command_end = 8 + u32::from_be_bytes(bytes[4..8].try_into().unwrap()) as usize;
        let mut bare = [&bytes[..command_end], &bytes[command_end + 6..]].concat();
        let total = (bare.len() - 4) as u32;
        bare[..4].copy_from_slice(&total.to_be_bytes());
        assert_eq!(&decode_all(&bare).unwrap().unwrap().message.unwrap().data[..], b"hi");

        let mut corrupt = bytes.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(decode_all(&corrupt), Err(FrameError::Checksum));
    }

    #[test]
    fn oversized_and_truncated_frames_are_errors() {
        let bytes = message(&send_command(), &metadata(vec![]), &[0; 100]);
        assert!(matches!(decode(&mut BytesMut::from(&bytes[..]), 50), Err(FrameError::TooLarge(..))));
        // A command size pointing past the frame's end.
        let lying = [&9u32.to_be_bytes()[..], &100u32.to_be_bytes(), &[0; 5]].concat();
        assert!(matches!(decode_all(&lying), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn a_batch_splits_into_its_messages_and_leaves_out_compacted_ones() {
        let entry = |key: &str, body: &[u8], compacted: bool| {
            let single = SingleMessageMetadata {
                properties: vec![KeyValue { key: "id".into(), value: key.into() }],
                payload_size: body.len() as i32,
                compacted_out: compacted.then_some(true),
            };
            [&(single.encoded_len() as u32).to_be_bytes()[..], &single.encode_to_vec(), body].concat()
        };
        let data = [entry("a", b"one", false), entry("b", b"two", true), entry("c", b"three", false)].concat();
        let payload = MessagePayload {
            metadata: MessageMetadata { num_messages_in_batch: Some(3), ..metadata(vec![]) },
            data: Bytes::from(data),
        };
        let messages = split_batch(&payload).unwrap();
        let seen: Vec<_> = messages.iter().map(|(p, body)| (p[0].value.as_str(), &body[..])).collect();
        assert_eq!(seen, [("a", &b"one"[..]), ("c", &b"three"[..])]);

        let single = MessagePayload { metadata: metadata(vec![]), data: Bytes::from_static(b"x") };
        assert_eq!(split_batch(&single).unwrap().len(), 1);
        let short = MessagePayload { data: Bytes::from_static(&[0, 0, 0, 9]), ..payload };
        assert!(split_batch(&short).is_err());
    }
}
