//! The RTMP chunk stream: decoder (wire -> messages) and encoder helpers.

mod decoder;
mod encoder;

pub use decoder::{ChunkDecoder, Message};
pub use encoder::{
    ChunkEncoder, MAX_ENCODED_LEN, chunk_body, encode_message, write_basic_header,
    write_message_header,
};

/// Chunk stream for protocol control messages (Set Chunk Size, Ack, ...).
pub const CSID_PROTOCOL_CONTROL: u32 = 2;
/// Chunk stream for command messages (connect, onStatus, ...).
pub const CSID_COMMAND: u32 = 3;
/// Chunk stream for audio.
pub const CSID_AUDIO: u32 = 4;
/// Chunk stream for data (metadata) messages.
pub const CSID_DATA: u32 = 5;
/// Chunk stream for video.
pub const CSID_VIDEO: u32 = 6;

/// Chunk size both sides use until a Set Chunk Size.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size Set Chunk Size may announce.
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Default limit on one message's declared length (8 MiB).
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 8 * 1024 * 1024;
/// Default limit on distinct chunk stream ids per connection.
pub const DEFAULT_MAX_CHUNK_STREAMS: usize = 64;
/// Smallest chunk stream id.
pub const MIN_CSID: u32 = 2;
/// Largest chunk stream id (3-byte basic header).
pub const MAX_CSID: u32 = 65599;
/// Timestamp field value meaning "extended timestamp follows".
pub const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Bytes a connection may hold in incomplete incoming messages (allocated
/// capacity included, across every chunk stream) while it only exchanges
/// commands: before a publish is admitted, and for players. A command or
/// control message is at most a few KiB (a `connect` carrying a long token is
/// about 2 KiB), so 64 KiB is far above any of them; it also covers what an
/// encoder that does not wait for NetStream.Publish.Start sends after its
/// `publish` within one 64 KiB read, before its server can admit it.
pub const COMMAND_PARTIAL_BUDGET: usize = 64 * 1024;
/// Most chunk streams with an incomplete message at once. An encoder
/// interleaves at most protocol control, commands, data, audio and video
/// (five); 16 leaves room for unusual layouts. Each incomplete message is an
/// allocation of its own, so their number is bounded as well as their bytes.
pub const MAX_PARTIAL_MESSAGES: usize = 16;

/// The budget of bytes in incomplete messages for a connection that carries
/// media: one message of the longest accepted length (a large keyframe must
/// fit), plus [`COMMAND_PARTIAL_BUDGET`] for the audio, data and commands
/// interleaved with it.
pub const fn media_partial_budget(max_message_len: u32) -> usize {
    max_message_len as usize + COMMAND_PARTIAL_BUDGET
}
