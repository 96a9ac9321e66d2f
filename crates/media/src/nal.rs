//! NAL unit framing shared by H.264 and H.265: length-prefixed NAL units (AVCC/HVCC, what
//! FLV, MP4 and the hub carry) and Annex B byte streams (what MPEG-TS and RTP packetizers
//! carry, ITU-T H.264 Annex B).

use crate::MediaError;

/// Most NAL units taken from one access unit (slices, SEI, parameter sets, ...); real frames
/// carry a few, and a hostile one cannot make a caller loop long or allocate much.
pub const MAX_NAL_UNITS: usize = 1024;

/// Largest SPS NAL unit the SPS parsers accept (a configuration record's length fields are
/// 16 bits); the RBSP copy they make is bounded by it.
pub const MAX_SPS_LEN: usize = 65_535;

/// Most parameter sets (H.264 SPS + PPS, H.265 VPS + SPS + PPS) kept from one decoder
/// configuration record. Real streams carry one to three; more are ignored rather than
/// stored without bound.
pub const MAX_PARAMETER_SETS: usize = 16;

/// The 4-byte Annex B start code.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Splits a length-prefixed payload (`length_size`-byte big-endian lengths, 1 to 4; other
/// sizes are an error) into its NAL units; empty ones are skipped. Every length prefix must lie inside the payload and
/// every NAL unit must end inside it; more than [`MAX_NAL_UNITS`] is an error.
pub fn split_length_prefixed(payload: &[u8], length_size: u8) -> Result<Vec<&[u8]>, MediaError> {
    if !(1..=4).contains(&length_size) {
        return Err(MediaError::InvalidCodecConfig {
            what: "NAL unit length size",
            reason: "not 1 to 4 bytes",
        });
    }
    let size = usize::from(length_size);
    let mut nals = Vec::new();
    let mut pos = 0;
    while pos < payload.len() {
        let bad = |len| MediaError::BadNalLength {
            offset: pos,
            len,
            payload_len: payload.len(),
        };
        let prefix = payload.get(pos..pos + size).ok_or(bad(0))?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        let start = pos + size;
        let nal = start
            .checked_add(len)
            .and_then(|end| payload.get(start..end))
            .ok_or(bad(len))?;
        if !nal.is_empty() {
            if nals.len() == MAX_NAL_UNITS {
                return Err(MediaError::TooManyNalUnits { max: MAX_NAL_UNITS });
            }
            nals.push(nal);
        }
        pos = start + len;
    }
    Ok(nals)
}

/// The NAL units of an Annex B byte stream (3- or 4-byte start codes), without their start
/// codes and trailing zero bytes; bytes before the first start code are ignored. More than
/// [`MAX_NAL_UNITS`] is an error.
pub fn split_annexb(data: &[u8]) -> Result<Vec<&[u8]>, MediaError> {
    let mut units = Vec::new();
    // Start of the current NAL unit's payload, once a start code was seen.
    let mut start: Option<usize> = None;
    let mut i = 0;
    while let Some(w) = data.get(i..i + 3) {
        if w == [0, 0, 1] {
            if let Some(s) = start {
                push_unit(&mut units, data.get(s..i))?;
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        push_unit(&mut units, data.get(s..))?;
    }
    Ok(units)
}

/// Adds one NAL unit (trailing zeros, i.e. the next 4-byte start code's first byte, cut).
fn push_unit<'a>(units: &mut Vec<&'a [u8]>, unit: Option<&'a [u8]>) -> Result<(), MediaError> {
    let unit = unit.unwrap_or_default();
    let end = unit.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    let unit = unit.get(..end).unwrap_or_default();
    if unit.is_empty() {
        return Ok(());
    }
    if units.len() >= MAX_NAL_UNITS {
        return Err(MediaError::TooManyNalUnits { max: MAX_NAL_UNITS });
    }
    units.push(unit);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixed_bounds() {
        // The prefix says 5 bytes, 3 follow.
        assert_eq!(
            split_length_prefixed(&[0, 0, 0, 2, 0x41, 0x9A, 0, 0, 0, 5, 1, 2, 3], 4),
            Err(MediaError::BadNalLength {
                offset: 6,
                len: 5,
                payload_len: 13
            })
        );
        // A truncated prefix.
        assert_eq!(
            split_length_prefixed(&[0, 0, 0, 1, 0x41, 0, 0], 4),
            Err(MediaError::BadNalLength {
                offset: 5,
                len: 0,
                payload_len: 7
            })
        );
        // A prefix near usize::MAX cannot overflow.
        assert!(split_length_prefixed(&[0xFF; 8], 4).is_err());
        // 2-byte and 1-byte prefixes; empty NAL units are skipped.
        assert_eq!(
            split_length_prefixed(&[0, 1, 7, 0, 0], 2).unwrap(),
            [&[7][..]]
        );
        assert_eq!(
            split_length_prefixed(&[2, 8, 9, 0], 1).unwrap(),
            [&[8, 9][..]]
        );
        assert_eq!(split_length_prefixed(&[], 4).unwrap(), Vec::<&[u8]>::new());
        // A length size of 0 would never advance; 5 and more are not NAL length sizes.
        assert!(split_length_prefixed(&[0, 0, 0, 1, 0x41], 0).is_err());
        assert!(split_length_prefixed(&[0, 0, 0, 0, 1, 0x41], 5).is_err());
    }

    #[test]
    fn too_many_nal_units() {
        let payload: Vec<u8> = (0..=MAX_NAL_UNITS).flat_map(|_| [1, 0x41]).collect();
        assert_eq!(
            split_length_prefixed(&payload, 1),
            Err(MediaError::TooManyNalUnits { max: MAX_NAL_UNITS })
        );
        assert_eq!(
            split_length_prefixed(&payload[2..], 1).unwrap().len(),
            MAX_NAL_UNITS
        );
        let many: Vec<u8> = std::iter::repeat_n([0u8, 0, 1, 0x41], MAX_NAL_UNITS + 1)
            .flatten()
            .collect();
        assert_eq!(
            split_annexb(&many),
            Err(MediaError::TooManyNalUnits { max: MAX_NAL_UNITS })
        );
        assert_eq!(split_annexb(&many[4..]).unwrap().len(), MAX_NAL_UNITS);
    }

    #[test]
    fn annexb_splits_on_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xCE, 0, 0, 0, 1, 0x65, 0x88, 0,
        ];
        let units = split_annexb(&data).unwrap();
        assert_eq!(units, vec![&[0x67, 0x42][..], &[0x68, 0xCE], &[0x65, 0x88]]);
        assert_eq!(split_annexb(&[1, 2, 3]).unwrap(), Vec::<&[u8]>::new());
        assert_eq!(split_annexb(&[]).unwrap(), Vec::<&[u8]>::new());
    }
}
