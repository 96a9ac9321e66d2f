//! FLV mux: file header, tag header and whole tags.

use bytes::{BufMut, BytesMut};

/// Length of the FLV file header (signature, version, flags, DataOffset).
pub const FLV_HEADER_LEN: usize = 9;
/// Length of an FLV tag header (type, DataSize, Timestamp, TimestampExtended, StreamID).
pub const TAG_HEADER_LEN: usize = 11;
/// Length of the PreviousTagSize field that follows the file header and every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest body a tag can declare: DataSize is a 24-bit field.
pub const MAX_TAG_DATA_SIZE: u32 = 0x00FF_FFFF;

/// Tag type of an audio tag.
pub const TAG_AUDIO: u8 = 8;
/// Tag type of a video tag.
pub const TAG_VIDEO: u8 = 9;
/// Tag type of a script data (AMF0) tag.
pub const TAG_SCRIPT: u8 = 18;

/// The FLV file header followed by PreviousTagSize0 (always zero): 13 bytes.
///
/// Layout: `"FLV"`, version 1, flags (`0x04` audio, `0x01` video), DataOffset 9 (u32 BE),
/// then PreviousTagSize0 = 0 (u32 BE).
pub fn file_header(
    has_audio: bool,
    has_video: bool,
) -> [u8; FLV_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN] {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    [
        b'F',
        b'L',
        b'V',
        1,
        flags,
        0,
        0,
        0,
        FLV_HEADER_LEN as u8,
        0,
        0,
        0,
        0,
    ]
}

/// An 11-byte tag header: type, 24-bit DataSize, 24-bit timestamp, the timestamp's upper
/// 8 bits (TimestampExtended) and a zero 24-bit StreamID.
///
/// `data_size` is truncated to 24 bits; callers must keep bodies at or below
/// [`MAX_TAG_DATA_SIZE`].
pub fn tag_header(tag_type: u8, data_size: u32, timestamp: u32) -> [u8; TAG_HEADER_LEN] {
    let [_, s1, s2, s3] = data_size.to_be_bytes();
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    [tag_type, s1, s2, s3, t1, t2, t3, t0, 0, 0, 0]
}

/// Appends a whole tag to `out`: header, `body`, then PreviousTagSize (11 + body length).
///
/// A body longer than [`MAX_TAG_DATA_SIZE`] cannot be represented; its DataSize is truncated
/// to 24 bits (media bodies are far smaller, and the RTMP layer bounds message lengths to
/// 24 bits as well).
pub fn write_tag(out: &mut BytesMut, tag_type: u8, timestamp: u32, body: &[u8]) {
    let size = u32::try_from(body.len()).unwrap_or(u32::MAX) & MAX_TAG_DATA_SIZE;
    out.reserve(TAG_HEADER_LEN + body.len() + PREVIOUS_TAG_SIZE_LEN);
    out.put_slice(&tag_header(tag_type, size, timestamp));
    out.put_slice(body);
    out.put_u32(size + TAG_HEADER_LEN as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_flags() {
        assert_eq!(
            file_header(true, true),
            [0x46, 0x4C, 0x56, 0x01, 0x05, 0, 0, 0, 0x09, 0, 0, 0, 0]
        );
        assert_eq!(file_header(true, false)[4], 0x04);
        assert_eq!(file_header(false, true)[4], 0x01);
        assert_eq!(file_header(false, false)[4], 0x00);
    }

    #[test]
    fn tag_header_extended_timestamp() {
        // Timestamp 0x12345678: lower 24 bits 34 56 78, then the extended byte 12.
        assert_eq!(
            tag_header(TAG_VIDEO, 0x000102, 0x1234_5678),
            [0x09, 0x00, 0x01, 0x02, 0x34, 0x56, 0x78, 0x12, 0, 0, 0]
        );
    }

    #[test]
    fn write_tag_layout() {
        let mut out = BytesMut::new();
        write_tag(&mut out, TAG_AUDIO, 40, &[0xAF, 0x01, 0x21]);
        assert_eq!(
            &out[..],
            &[
                0x08, 0x00, 0x00, 0x03, // type, DataSize 3
                0x00, 0x00, 0x28, 0x00, // timestamp 40, extended 0
                0x00, 0x00, 0x00, // stream id
                0xAF, 0x01, 0x21, // body
                0x00, 0x00, 0x00, 0x0E, // PreviousTagSize 14
            ][..]
        );
    }
}
