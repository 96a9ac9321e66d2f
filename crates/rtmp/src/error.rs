//! The error type of the `rtmp` crate. Any error means: close the connection.

/// Everything that makes an RTMP connection unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RtmpError {
    /// The peer asked for an RTMP version other than 3.
    #[error("unsupported RTMP version {version}")]
    BadVersion {
        /// The version byte from C0/S0.
        version: u8,
    },
    /// A Set Chunk Size of 0 or with the high bit set.
    #[error("invalid chunk size {size}")]
    BadChunkSize {
        /// The requested size.
        size: u32,
    },
    /// A message longer than the configured maximum.
    #[error("message length {len} exceeds maximum {max}")]
    MessageTooLarge {
        /// Declared length.
        len: u32,
        /// Configured limit.
        max: u32,
    },
    /// More distinct chunk stream ids than allowed.
    #[error("more than {max} chunk streams (new csid {csid})")]
    TooManyChunkStreams {
        /// The csid that would exceed the limit.
        csid: u32,
        /// Configured limit.
        max: usize,
    },
    /// Incomplete messages would hold more bytes (allocated capacity
    /// included, across every chunk stream) than the connection's budget:
    /// the peer sends parts of messages faster than it completes them.
    #[error(
        "incomplete messages would hold {needed} bytes, over this connection's budget of \
         {budget} bytes (chunk stream {csid})"
    )]
    PartialBudgetExceeded {
        /// The chunk stream whose message needed to grow.
        csid: u32,
        /// Bytes the incomplete messages would hold with this chunk.
        needed: usize,
        /// The budget in force.
        budget: usize,
    },
    /// More chunk streams with an incomplete message at once than allowed.
    #[error("more than {max} chunk streams with an incomplete message (chunk stream {csid})")]
    TooManyPartialMessages {
        /// The chunk stream that would start one more.
        csid: u32,
        /// The limit ([`crate::chunk::MAX_PARTIAL_MESSAGES`]).
        max: usize,
    },
    /// A type 1/2/3 chunk on a chunk stream that never had a full header.
    #[error("chunk of format {fmt} on unknown chunk stream {csid}")]
    UnknownChunkStream {
        /// Chunk stream id.
        csid: u32,
        /// Header format 1, 2 or 3.
        fmt: u8,
    },
    /// A control or media message whose payload does not match its type.
    #[error("malformed message of type {msg_type}: {reason}")]
    MalformedMessage {
        /// RTMP message type id.
        msg_type: u8,
        /// What was wrong.
        reason: &'static str,
    },
    /// An AMF payload that does not decode.
    #[error("AMF error: {0}")]
    Amf(#[from] amf::AmfError),
}
