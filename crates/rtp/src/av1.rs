//! AV1 for WHIP ingest. str0m depacketizes an AV1 temporal unit (RFC: "RTP Payload Format
//! For AV1", AOM) into OBUs in the low overhead bitstream format, each with its size field
//! (AV1 spec 5.3). Enhanced RTMP v2 `av01` CodedFrames carry "one or more OBUs which
//! represent a single temporal unit" and SequenceStart the AV1CodecConfigurationRecord
//! (`av1C`), which [`media::av1`] builds from the sequence header OBU.
//!
//! A temporal unit with a sequence header is a random access point (WebRTC encoders send one
//! with every key frame); temporal delimiters are dropped from coded data as the ISO binding
//! asks.

use media::av1::{OBU_SEQUENCE_HEADER, OBU_TEMPORAL_DELIMITER, av1c};

/// The OBU and sequence header parsers the server's fuzzing used from here; they live in
/// [`media::av1`].
pub use media::av1::{obus, parse_sequence_header};

/// Largest sequence header OBU put into a configuration record (real ones are ~12 bytes).
pub const MAX_SEQUENCE_HEADER_BYTES: usize = 1024;

/// One temporal unit converted for the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Unit {
    /// A new `av1C` record, when a sequence header appeared or changed: it goes to the hub
    /// as a sequence header before the coded frame.
    pub config: Option<Vec<u8>>,
    /// The OBUs without temporal delimiters.
    pub data: Vec<u8>,
    /// The unit starts with a sequence header (a random access point).
    pub keyframe: bool,
}

/// AV1 temporal units from str0m to the hub, remembering the configuration record.
#[derive(Debug, Clone, Default)]
pub struct Av1In {
    config: Option<Vec<u8>>,
}

impl Av1In {
    /// Converts one temporal unit; `None` when it is malformed, empty, or no sequence
    /// header was seen yet.
    pub fn convert(&mut self, data: &[u8]) -> Option<Av1Unit> {
        let obus = obus(data).ok()?;
        let mut out = Vec::with_capacity(data.len());
        let mut keyframe = false;
        let mut changed = false;
        for obu in &obus {
            match obu.obu_type {
                OBU_TEMPORAL_DELIMITER => continue,
                OBU_SEQUENCE_HEADER if obu.bytes.len() <= MAX_SEQUENCE_HEADER_BYTES => {
                    let info = parse_sequence_header(obu.payload).ok()?;
                    let record = av1c(&info, obu.bytes);
                    keyframe = true;
                    if self.config.as_ref() != Some(&record) {
                        self.config = Some(record);
                        changed = true;
                    }
                }
                _ => {}
            }
            out.extend_from_slice(obu.bytes);
        }
        if self.config.is_none() || out.is_empty() {
            return None;
        }
        let config = if changed { self.config.clone() } else { None };
        Some(Av1Unit {
            config,
            data: out,
            keyframe,
        })
    }
}

#[cfg(test)]
mod tests {
    use media::fixtures::av1_sequence_header_obu;

    use super::*;

    #[test]
    fn temporal_units_become_hub_frames() {
        let mut a = Av1In::default();
        // Temporal delimiter (0x12 0x00) + a frame OBU (type 6, 0x32) of 2 bytes.
        let delta = [0x12, 0x00, 0x32, 0x02, 0xAA, 0xBB];
        assert_eq!(a.convert(&delta), None, "no sequence header yet");
        let mut key = vec![0x12, 0x00];
        key.extend_from_slice(&av1_sequence_header_obu());
        key.extend_from_slice(&[0x32, 0x01, 0xCC]);
        let u = a.convert(&key).unwrap();
        assert!(u.keyframe);
        assert_eq!(&u.data[..2], &[0x0A, 0x0B], "temporal delimiter dropped");
        assert_eq!(&u.config.unwrap()[..4], &[0x81, 0x08, 0x0C, 0x00]);
        let u = a.convert(&delta).unwrap();
        assert_eq!(
            (u.keyframe, u.config, u.data),
            (false, None, vec![0x32, 0x02, 0xAA, 0xBB])
        );
        // The same sequence header again: a keyframe, no new record.
        let u = a.convert(&key).unwrap();
        assert!(u.keyframe && u.config.is_none());
    }

    #[test]
    fn malformed_temporal_units_are_refused() {
        let mut a = Av1In::default();
        assert_eq!(
            a.convert(&[0x0A, 0x01, 0x00]),
            None,
            "truncated sequence header"
        );
        assert_eq!(a.convert(&[0x80]), None, "forbidden bit");
        let mut big = vec![0x0A, 0x88, 0x08]; // a 1032-byte sequence header OBU
        big.extend_from_slice(&[0; 1032]);
        assert_eq!(
            a.convert(&big),
            None,
            "too big to be a record: no record yet"
        );
    }
}
