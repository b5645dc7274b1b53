//! The records a message frame carries after its command: the message's metadata, that of each
//! message of a batch, and the properties (the correlation `id` among them) both hold.

/// A message's metadata, between the command and the payload of a message frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MessageMetadata {
    #[prost(string, required, tag = "1")]
    pub producer_name: String,
    #[prost(uint64, required, tag = "2")]
    pub sequence_id: u64,
    #[prost(uint64, required, tag = "3")]
    pub publish_time: u64,
    #[prost(message, repeated, tag = "4")]
    pub properties: Vec<KeyValue>,
    #[prost(enumeration = "CompressionType", optional, tag = "8")]
    pub compression: Option<i32>,
    #[prost(uint32, optional, tag = "9")]
    pub uncompressed_size: Option<u32>,
    /// Set only on a batch: the payload is that many [`SingleMessageMetadata`]-prefixed messages.
    #[prost(int32, optional, tag = "11")]
    pub num_messages_in_batch: Option<i32>,
    /// Set on each chunk of a message too large for one frame.
    #[prost(int32, optional, tag = "27")]
    pub num_chunks_from_msg: Option<i32>,
    /// Which chunk this is, from 0.
    #[prost(int32, optional, tag = "29")]
    pub chunk_id: Option<i32>,
}

/// `CompressionType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CompressionType {
    None = 0,
    Lz4 = 1,
    Zlib = 2,
    Zstd = 3,
    Snappy = 4,
}

/// The metadata of one message of a batch.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SingleMessageMetadata {
    #[prost(message, repeated, tag = "1")]
    pub properties: Vec<KeyValue>,
    #[prost(int32, required, tag = "3")]
    pub payload_size: i32,
    /// Compaction removed it; the batch keeps its place.
    #[prost(bool, optional, tag = "4")]
    pub compacted_out: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}
