//! Media fragments: one `moof` (ISO/IEC 14496-12 8.8.4-8.8.12) followed by one `mdat`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::boxes::{begin_box, begin_full_box, end_box};

/// tfhd flag: base data offset is the start of the enclosing moof.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// trun flags: data offset, then per-sample duration, size, flags and composition offset.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400 | 0x00_0800;
/// Bytes per sample in our trun (duration, size, flags, composition offset).
const TRUN_SAMPLE_LEN: usize = 16;

/// Sample flags of a sync sample: sample_depends_on = 2 (does not depend on others).
pub const SAMPLE_FLAGS_SYNC: u32 = 0x0200_0000;
/// Sample flags of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const SAMPLE_FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// One coded sample ready for a `trun`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Composition offset (pts - dts) in the track's timescale; may be negative (trun v1).
    pub cts_offset: i32,
    /// True for a sync sample (video keyframe; every audio sample).
    pub keyframe: bool,
    /// AVCC/HVCC length-prefixed NAL units, or one raw audio frame.
    pub data: Bytes,
}

/// The samples of one track in a fragment.
#[derive(Debug, Clone, Copy)]
pub struct TrackFragment<'a> {
    /// Track id (index in the init segment + 1).
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale (tfdt).
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: &'a [Sample],
}

/// Writes one `moof` (mfhd with `sequence_number`; per track a traf with tfhd
/// default-base-is-moof, tfdt version 1 and trun version 1 with a data offset and per-sample
/// duration, size, flags and composition offset) and one `mdat` holding every track's
/// samples in order.
///
/// The data offsets are 32-bit signed: keep a fragment below 2 GiB (the `Fragmenter`'s limits
/// do); beyond that offsets saturate instead of panicking.
pub fn write_fragment(sequence_number: u32, tracks: &[TrackFragment<'_>], out: &mut BytesMut) {
    let moof_start = out.len();
    let moof = begin_box(out, b"moof");
    let mfhd = begin_full_box(out, b"mfhd", 0, 0);
    out.put_u32(sequence_number);
    end_box(out, mfhd);
    // Where each trun's data_offset field sits, patched once the moof size is known.
    let mut offset_slots = Vec::with_capacity(tracks.len());
    for track in tracks {
        let traf = begin_box(out, b"traf");
        let tfhd = begin_full_box(out, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF);
        out.put_u32(track.track_id);
        end_box(out, tfhd);
        let tfdt = begin_full_box(out, b"tfdt", 1, 0);
        out.put_u64(track.base_decode_time);
        end_box(out, tfdt);
        let trun = begin_full_box(out, b"trun", 1, TRUN_FLAGS);
        out.put_u32(u32::try_from(track.samples.len()).unwrap_or(u32::MAX));
        offset_slots.push(out.len());
        out.put_i32(0); // data_offset, patched below
        out.reserve(track.samples.len().saturating_mul(TRUN_SAMPLE_LEN));
        for s in track.samples {
            out.put_u32(s.duration);
            out.put_u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
            out.put_u32(if s.keyframe {
                SAMPLE_FLAGS_SYNC
            } else {
                SAMPLE_FLAGS_NON_SYNC
            });
            out.put_i32(s.cts_offset);
        }
        end_box(out, trun);
        end_box(out, traf);
    }
    end_box(out, moof);

    let payload: usize = tracks
        .iter()
        .flat_map(|t| t.samples.iter())
        .map(|s| s.data.len())
        .fold(0usize, usize::saturating_add);
    // Offsets are relative to the moof start; the first sample follows the mdat header.
    let header_len = if payload.saturating_add(8) > u32::MAX as usize {
        16
    } else {
        8
    };
    let mut offset = out
        .len()
        .saturating_sub(moof_start)
        .saturating_add(header_len);
    for (slot, track) in offset_slots.iter().zip(tracks) {
        let value = i32::try_from(offset).unwrap_or(i32::MAX);
        if let Some(field) = out.get_mut(*slot..slot.saturating_add(4)) {
            field.copy_from_slice(&value.to_be_bytes());
        }
        offset = track
            .samples
            .iter()
            .fold(offset, |o, s| o.saturating_add(s.data.len()));
    }

    if header_len == 16 {
        out.put_u32(1); // size in largesize
        out.put_slice(b"mdat");
        out.put_u64((payload as u64).saturating_add(16));
    } else {
        // Checked above: payload + 8 fits in u32.
        out.put_u32((payload + 8) as u32);
        out.put_slice(b"mdat");
    }
    out.reserve(payload);
    for s in tracks.iter().flat_map(|t| t.samples.iter()) {
        out.put_slice(&s.data);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::boxes::walk::{Bx, all, boxes, names, u32_at, u64_at};

    /// What a trun says about one sample.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct RunSample {
        pub(crate) duration: u32,
        pub(crate) size: u32,
        pub(crate) flags: u32,
        pub(crate) cts: i32,
    }

    /// One traf parsed back: track id, tfdt, trun data offset and samples.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct ParsedTraf {
        pub(crate) track_id: u32,
        pub(crate) base_decode_time: u64,
        pub(crate) data_offset: i32,
        pub(crate) samples: Vec<RunSample>,
    }

    /// Parses a fragment written by [`write_fragment`]: checks the box layout and sizes and
    /// returns the sequence number, the trafs and the mdat payload offset (from moof start).
    pub(crate) fn parse_fragment(data: &[u8]) -> (u32, Vec<ParsedTraf>, Bx<'_>) {
        let top = boxes(data);
        assert_eq!(names(&top), ["moof", "mdat"]);
        let moof = top[0];
        let kids = moof.children(0);
        assert_eq!(kids[0].name(), "mfhd");
        let seq = u32_at(kids[0].body, 4);
        let mut trafs = Vec::new();
        for traf in all(&kids, "traf") {
            assert_eq!(names(&traf.children(0)), ["tfhd", "tfdt", "trun"]);
            let tfhd = traf.child("tfhd");
            assert_eq!(u32_at(tfhd.body, 0), TFHD_DEFAULT_BASE_IS_MOOF);
            let tfdt = traf.child("tfdt");
            assert_eq!(tfdt.body[0], 1, "tfdt version 1");
            let trun = traf.child("trun");
            assert_eq!(u32_at(trun.body, 0), (1 << 24) | TRUN_FLAGS);
            let count = u32_at(trun.body, 4) as usize;
            assert_eq!(trun.body.len(), 12 + count * TRUN_SAMPLE_LEN);
            let samples = (0..count)
                .map(|i| {
                    let at = 12 + i * TRUN_SAMPLE_LEN;
                    RunSample {
                        duration: u32_at(trun.body, at),
                        size: u32_at(trun.body, at + 4),
                        flags: u32_at(trun.body, at + 8),
                        cts: u32_at(trun.body, at + 12) as i32,
                    }
                })
                .collect();
            trafs.push(ParsedTraf {
                track_id: u32_at(tfhd.body, 4),
                base_decode_time: u64_at(tfdt.body, 4),
                data_offset: u32_at(trun.body, 8) as i32,
                samples,
            });
        }
        (seq, trafs, top[1])
    }

    fn sample(duration: u32, cts: i32, keyframe: bool, data: &'static [u8]) -> Sample {
        Sample {
            duration,
            cts_offset: cts,
            keyframe,
            data: Bytes::from_static(data),
        }
    }

    #[test]
    fn two_track_fragment() {
        let video = [
            sample(3600, 7200, true, b"\x00\x00\x00\x02\x65\x88"),
            sample(3600, -3600, false, b"\x00\x00\x00\x01\x41"),
        ];
        let audio = [
            sample(1024, 0, true, b"AAC1"),
            sample(1024, 0, true, b"AAC22"),
        ];
        let mut out = BytesMut::from(&b"prefix"[..]);
        write_fragment(
            7,
            &[
                TrackFragment {
                    track_id: 1,
                    base_decode_time: 90_000,
                    samples: &video,
                },
                TrackFragment {
                    track_id: 2,
                    base_decode_time: 1 << 40,
                    samples: &audio,
                },
            ],
            &mut out,
        );
        let data = &out[6..];
        let (seq, trafs, mdat) = parse_fragment(data);
        assert_eq!(seq, 7);
        assert_eq!(trafs.len(), 2);
        assert_eq!((trafs[0].track_id, trafs[0].base_decode_time), (1, 90_000));
        assert_eq!((trafs[1].track_id, trafs[1].base_decode_time), (2, 1 << 40));
        assert_eq!(
            trafs[0].samples,
            [
                RunSample {
                    duration: 3600,
                    size: 6,
                    flags: 0x0200_0000,
                    cts: 7200
                },
                RunSample {
                    duration: 3600,
                    size: 5,
                    flags: 0x0101_0000,
                    cts: -3600
                },
            ]
        );
        assert_eq!(trafs[1].samples[1].size, 5);
        assert_eq!(trafs[1].samples[1].flags, SAMPLE_FLAGS_SYNC);
        // data_offset points at each track's first sample byte inside mdat.
        let v0 = trafs[0].data_offset as usize;
        assert_eq!(v0, mdat.offset + 8);
        assert_eq!(&data[v0..v0 + 6], b"\x00\x00\x00\x02\x65\x88");
        let a0 = trafs[1].data_offset as usize;
        assert_eq!(&data[a0..a0 + 9], b"AAC1AAC22");
        assert_eq!(mdat.body.len(), 6 + 5 + 4 + 5);
        assert_eq!(mdat.whole.len() + mdat.offset, data.len());
    }

    #[test]
    fn empty_track_list_still_well_formed() {
        let mut out = BytesMut::new();
        write_fragment(1, &[], &mut out);
        let (seq, trafs, mdat) = parse_fragment(&out);
        assert_eq!((seq, trafs.len(), mdat.body.len()), (1, 0, 0));
    }
}
