//! Sans-IO FLV demux: feed bytes, take tags.

use bytes::{Buf, Bytes, BytesMut};

use crate::FlvError;
use crate::mux::{FLV_HEADER_LEN, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};

/// Largest tag body [`FlvReader`] accepts: 8 MiB, well above any real media frame
/// (DataSize itself could express up to 16 MiB - 1).
pub const MAX_TAG_LEN: u32 = 8 * 1024 * 1024;
/// Largest file header (DataOffset) accepted; real files use 9.
pub const MAX_HEADER_LEN: u32 = 1024;

/// One FLV tag, its body a zero-copy slice of the reader's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Tag type (low five bits of the first header byte): [`crate::TAG_AUDIO`],
    /// [`crate::TAG_VIDEO`], [`crate::TAG_SCRIPT`] or anything else (passed through).
    pub tag_type: u8,
    /// Timestamp in milliseconds, including the TimestampExtended upper byte.
    pub timestamp: u32,
    /// The tag body (DataSize bytes).
    pub body: Bytes,
}

/// What the FLV file header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// The version byte (always 1).
    pub version: u8,
    /// TypeFlagsAudio.
    pub has_audio: bool,
    /// TypeFlagsVideo.
    pub has_video: bool,
}

/// A sans-IO FLV file/stream reader.
///
/// Feed bytes with [`push`](Self::push) in any split, then call [`next_tag`](Self::next_tag)
/// until it returns `Ok(None)` (needs more bytes). An `Err` means the stream is corrupt; the
/// reader should then be dropped. The buffer holds at most one partial tag plus whatever the
/// caller pushed without draining, so callers should drain after every push.
#[derive(Debug, Default)]
pub struct FlvReader {
    buf: BytesMut,
    header: Option<FileHeader>,
}

impl FlvReader {
    /// A reader expecting the FLV file header first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The file header, once it has been parsed.
    pub fn header(&self) -> Option<FileHeader> {
        self.header
    }

    /// Bytes received but not yet returned as (part of) a tag.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete tag: `Ok(None)` when more bytes are needed.
    ///
    /// Checks the signature, version and DataOffset of the file header, each tag's
    /// DataSize against [`MAX_TAG_LEN`] (before waiting for the body) and each
    /// PreviousTagSize.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        if self.header.is_none() && !self.read_header()? {
            return Ok(None);
        }
        let Some(head) = self.buf.get(..TAG_HEADER_LEN) else {
            return Ok(None);
        };
        let type_byte = head[0];
        let data_size = u32::from_be_bytes([0, head[1], head[2], head[3]]);
        let timestamp = u32::from_be_bytes([head[7], head[4], head[5], head[6]]);
        let tag_type = type_byte & 0x1F;
        if type_byte & 0x20 != 0 {
            return Err(FlvError::EncryptedTag { tag_type });
        }
        if data_size > MAX_TAG_LEN {
            return Err(FlvError::TagTooLarge {
                len: data_size,
                max: MAX_TAG_LEN,
            });
        }
        // Bounded by MAX_TAG_LEN above, so this cannot overflow.
        let body_len = data_size as usize;
        let total = TAG_HEADER_LEN + body_len + PREVIOUS_TAG_SIZE_LEN;
        let Some(trailer) = self.buf.get(TAG_HEADER_LEN + body_len..total) else {
            return Ok(None);
        };
        let found = u32::from_be_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let expected = data_size + TAG_HEADER_LEN as u32;
        if found != expected {
            return Err(FlvError::BadPreviousTagSize { expected, found });
        }
        let mut tag = self.buf.split_to(total).freeze();
        tag.advance(TAG_HEADER_LEN);
        tag.truncate(body_len);
        Ok(Some(Tag {
            tag_type,
            timestamp,
            body: tag,
        }))
    }

    /// Parses the file header and PreviousTagSize0; false when more bytes are needed.
    fn read_header(&mut self) -> Result<bool, FlvError> {
        if let Some(sig) = self.buf.get(..3)
            && sig != b"FLV"
        {
            return Err(FlvError::BadSignature {
                found: [sig[0], sig[1], sig[2]],
            });
        }
        let Some(head) = self.buf.get(..FLV_HEADER_LEN) else {
            return Ok(false);
        };
        let version = head[3];
        if version != 1 {
            return Err(FlvError::UnsupportedVersion { version });
        }
        let flags = head[4];
        let data_offset = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        if !(FLV_HEADER_LEN as u32..=MAX_HEADER_LEN).contains(&data_offset) {
            return Err(FlvError::BadHeaderLength { len: data_offset });
        }
        // Bounded by MAX_HEADER_LEN above.
        let skip = data_offset as usize + PREVIOUS_TAG_SIZE_LEN;
        if self.buf.len() < skip {
            return Ok(false);
        }
        // PreviousTagSize0 is specified as 0 but not checked: some writers put junk there.
        self.buf.advance(skip);
        self.header = Some(FileHeader {
            version,
            has_audio: flags & 0x04 != 0,
            has_video: flags & 0x01 != 0,
        });
        Ok(true)
    }
}

/// Parses a whole FLV file in memory (one copy of `file`, then zero-copy tag bodies).
///
/// Fails on a corrupt file and on one that ends in the middle of the header or a tag.
pub fn read_all_tags(file: &[u8]) -> Result<Vec<Tag>, FlvError> {
    let mut reader = FlvReader {
        buf: BytesMut::from(file),
        header: None,
    };
    let mut tags = Vec::new();
    while let Some(tag) = reader.next_tag()? {
        tags.push(tag);
    }
    if reader.header.is_none() || reader.buffered() > 0 {
        return Err(FlvError::Truncated {
            what: if reader.header.is_none() {
                "FLV file header"
            } else {
                "FLV tag"
            },
            need: reader.buffered() + 1,
            have: reader.buffered(),
        });
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::{TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, file_header, write_tag};

    /// Header, then a video tag (ts 0x01000010 via the extended byte) and an audio tag.
    const FILE: &[u8] = &[
        0x46, 0x4C, 0x56, 0x01, 0x05, 0x00, 0x00, 0x00, 0x09, // "FLV" v1 A+V, DataOffset 9
        0x00, 0x00, 0x00, 0x00, // PreviousTagSize0
        0x09, 0x00, 0x00, 0x02, // video, DataSize 2
        0x00, 0x00, 0x10, 0x01, // timestamp 0x10, extended 0x01
        0x00, 0x00, 0x00, // stream id
        0x17, 0x02, // body
        0x00, 0x00, 0x00, 0x0D, // PreviousTagSize 13
        0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
        0x00, // audio, 1 byte, ts 32
        0x2F, // body
        0x00, 0x00, 0x00, 0x0C, // PreviousTagSize 12
    ];

    #[test]
    fn reads_fixture() {
        let tags = read_all_tags(FILE).unwrap();
        assert_eq!(
            tags,
            vec![
                Tag {
                    tag_type: TAG_VIDEO,
                    timestamp: 0x0100_0010,
                    body: Bytes::from_static(&[0x17, 0x02])
                },
                Tag {
                    tag_type: TAG_AUDIO,
                    timestamp: 32,
                    body: Bytes::from_static(&[0x2F])
                },
            ]
        );
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let mut reader = FlvReader::new();
        let mut tags = Vec::new();
        for b in FILE {
            reader.push(std::slice::from_ref(b));
            while let Some(tag) = reader.next_tag().unwrap() {
                tags.push(tag);
            }
        }
        assert_eq!(tags, read_all_tags(FILE).unwrap());
        assert_eq!(
            reader.header(),
            Some(FileHeader {
                version: 1,
                has_audio: true,
                has_video: true
            })
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn mux_round_trip() {
        let mut out = BytesMut::new();
        out.extend_from_slice(&file_header(true, true));
        let bodies: [(u8, u32, &[u8]); 3] = [
            (TAG_SCRIPT, 0, b"\x02\x00\x0AonMetaData"),
            (TAG_VIDEO, 0xFFFF_FFFF, &[0x27, 0x01, 0, 0, 0, 9]),
            (TAG_AUDIO, 1_000_000, &[]),
        ];
        for (t, ts, body) in bodies {
            write_tag(&mut out, t, ts, body);
        }
        let tags = read_all_tags(&out).unwrap();
        assert_eq!(tags.len(), 3);
        for (tag, (t, ts, body)) in tags.iter().zip(bodies) {
            assert_eq!((tag.tag_type, tag.timestamp, &tag.body[..]), (t, ts, body));
        }
    }

    #[test]
    fn rejects_bad_signature_early() {
        let mut reader = FlvReader::new();
        reader.push(b"GIF");
        assert_eq!(
            reader.next_tag(),
            Err(FlvError::BadSignature { found: *b"GIF" })
        );
    }

    #[test]
    fn rejects_bad_header_fields() {
        let mut bad_version = FILE.to_vec();
        bad_version[3] = 2;
        assert_eq!(
            read_all_tags(&bad_version),
            Err(FlvError::UnsupportedVersion { version: 2 })
        );
        let mut short = FILE.to_vec();
        short[8] = 8;
        assert_eq!(
            read_all_tags(&short),
            Err(FlvError::BadHeaderLength { len: 8 })
        );
        let mut huge = FILE.to_vec();
        huge[5] = 0x7F;
        assert_eq!(
            read_all_tags(&huge),
            Err(FlvError::BadHeaderLength { len: 0x7F00_0009 })
        );
    }

    #[test]
    fn honours_larger_data_offset() {
        let mut file = FILE[..9].to_vec();
        file[8] = 12;
        file.extend_from_slice(&[0xAA, 0xBB, 0xCC]); // header extension, skipped
        file.extend_from_slice(&FILE[9..]);
        assert_eq!(read_all_tags(&file).unwrap().len(), 2);
    }

    #[test]
    fn rejects_bad_previous_tag_size() {
        let mut file = FILE.to_vec();
        file[29] = 0x0E;
        assert_eq!(
            read_all_tags(&file),
            Err(FlvError::BadPreviousTagSize {
                expected: 13,
                found: 14
            })
        );
    }

    #[test]
    fn rejects_encrypted_tag() {
        let mut file = FILE.to_vec();
        file[13] = 0x29;
        assert_eq!(
            read_all_tags(&file),
            Err(FlvError::EncryptedTag { tag_type: 9 })
        );
    }

    #[test]
    fn checks_length_before_buffering_body() {
        let mut reader = FlvReader::new();
        reader.push(&FILE[..13]);
        assert_eq!(reader.next_tag(), Ok(None));
        // DataSize 0xFFFFFF is above MAX_TAG_LEN: rejected from the 11-byte header alone.
        reader.push(&[0x09, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            reader.next_tag(),
            Err(FlvError::TagTooLarge {
                len: 0xFF_FFFF,
                max: MAX_TAG_LEN
            })
        );
    }

    #[test]
    fn truncated_file_is_an_error() {
        assert!(matches!(
            read_all_tags(&FILE[..FILE.len() - 1]),
            Err(FlvError::Truncated { .. })
        ));
        assert!(matches!(
            read_all_tags(&FILE[..5]),
            Err(FlvError::Truncated { .. })
        ));
        assert!(matches!(
            read_all_tags(&[]),
            Err(FlvError::Truncated { .. })
        ));
        assert_eq!(read_all_tags(&FILE[..13]), Ok(vec![]));
    }
}
