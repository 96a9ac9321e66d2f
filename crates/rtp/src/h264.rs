//! H.264 both ways between the hub and str0m:
//!
//! - [`AnnexB`] (WHEP): hub AVCC (length-prefixed NAL units) to the Annex B access units
//!   str0m's frame writer takes, with the SPS and PPS of the sequence header put in front of
//!   every keyframe so a viewer can start decoding at any keyframe. The viewers of a stream
//!   share each conversion through its [`AnnexBCache`]: a frame is converted once per
//!   stream, and every viewer hands str0m the same `Arc<[u8]>`.
//! - [`Avcc`] (WHIP): the Annex B access units str0m depacketizes to hub AVCC (4-byte
//!   lengths), with an AVCDecoderConfigurationRecord built from the in-band SPS/PPS.
//!
//! The record formats, NAL unit types and NAL unit framing are `media`'s ([`media::avc`],
//! [`media::nal`], which also bounds the NAL units of one access unit); what is here is
//! WebRTC's policy: parameter sets before every keyframe one way, a record from the in-band
//! parameter sets the other way. [`crate::hevc`] applies the same policy to H.265 with the
//! shared pieces below.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use media::avc::{self, NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS};
use media::nal::{START_CODE, split_annexb, split_length_prefixed};

/// Largest Annex B access unit converted for the hub (a 4K intra frame fits easily).
pub const MAX_ACCESS_UNIT_BYTES: usize = 4 * 1024 * 1024;
/// Largest SPS or PPS put into a configuration record (real ones are tens of bytes; the
/// record's 16-bit lengths would allow 64 KiB).
pub const MAX_PARAM_SET_BYTES: usize = 1024;

/// Conversions an [`AnnexBCache`] remembers: the viewers of a stream convert the same frame
/// within one wake of each other, a few frames cover one lagging a little.
pub const ANNEXB_CACHE_FRAMES: usize = 4;

/// Parameter sets of the current sequence header.
#[derive(Debug, Clone, Default)]
pub struct AnnexB {
    /// Bytes of the NAL length prefix (1, 2 or 4).
    nal_length_size: usize,
    /// A start code and each SPS and PPS of the record, put before each keyframe.
    params: Arc<[u8]>,
    /// The stream's shared conversions (`None`: each conversion is this viewer's own).
    cache: Option<Arc<AnnexBCache>>,
}

impl AnnexB {
    /// Takes an AVCDecoderConfigurationRecord; false (state unchanged) if it is malformed.
    pub fn set_config(&mut self, record: &Bytes) -> bool {
        let Ok(rec) = avc::parse_avc_decoder_config(record) else {
            return false;
        };
        self.nal_length_size = usize::from(rec.nal_length_size);
        self.params = annexb_params(rec.parameter_sets());
        true
    }

    /// Shares conversions with the other viewers of a stream from now on.
    pub fn with_cache(mut self, cache: Arc<AnnexBCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// [`AnnexB::convert`] of a hub frame's payload, as the shared bytes str0m's writer
    /// takes: taken from the stream's cache when another viewer converted the same payload
    /// with the same parameter sets, else converted and put there.
    pub fn convert_shared(&self, payload: &Bytes, keyframe: bool) -> Option<Arc<[u8]>> {
        if !self.ready() {
            return None;
        }
        AnnexBCache::shared(
            self.cache.as_deref(),
            payload,
            keyframe,
            self.nal_length_size,
            &self.params,
            || self.convert(payload, keyframe),
        )
    }

    /// True once a valid sequence header was seen.
    pub fn ready(&self) -> bool {
        self.nal_length_size != 0
    }

    /// Converts one AVCC access unit to Annex B; `None` if it is malformed or empty (a
    /// truncated length, too many NAL units) or no sequence header was seen yet.
    pub fn convert(&self, avcc: &[u8], keyframe: bool) -> Option<Vec<u8>> {
        if !self.ready() {
            return None;
        }
        // Parameter sets and AUDs in band are dropped: ours go before each keyframe.
        to_annexb(avcc, self.nal_length_size, keyframe, &self.params, |nal| {
            matches!(avc::nal_type(nal), Some(NAL_SPS..=NAL_AUD))
        })
    }
}

/// Start code + each parameter set, in order: what goes before each keyframe.
pub(crate) fn annexb_params<'a>(sets: impl Iterator<Item = &'a Bytes>) -> Arc<[u8]> {
    let mut params = Vec::new();
    for set in sets {
        params.extend_from_slice(&START_CODE);
        params.extend_from_slice(set);
    }
    params.into()
}

/// Length-prefixed NAL units to an Annex B access unit, with `params` (start codes and
/// parameter sets) in front of a keyframe and the keyframe's own parameter sets and AUDs
/// (`in_band`) dropped. `None` if a length is malformed, there are too many NAL units, or
/// nothing but `params` would be sent.
pub(crate) fn to_annexb(
    data: &[u8],
    nal_length_size: usize,
    keyframe: bool,
    params: &[u8],
    in_band: impl Fn(&[u8]) -> bool,
) -> Option<Vec<u8>> {
    let nals = split_length_prefixed(data, u8::try_from(nal_length_size).ok()?).ok()?;
    let mut out = Vec::with_capacity(data.len() + params.len() + 16);
    if keyframe {
        out.extend_from_slice(params);
    }
    for nal in nals {
        if keyframe && in_band(nal) {
            continue;
        }
        out.extend_from_slice(&START_CODE);
        out.extend_from_slice(nal);
    }
    (out.len() > if keyframe { params.len() } else { 0 }).then_some(out)
}

/// One conversion: its inputs (the payload held, so its address names these bytes while
/// cached) and its result (`None`: malformed, as every viewer would find).
#[derive(Debug)]
struct Converted {
    payload: Bytes,
    keyframe: bool,
    /// What else the output depends on besides the parameter sets: for H.264 the NAL length
    /// size, for the other codecs a value of theirs (see `video_out`).
    tag: usize,
    params: Arc<[u8]>,
    out: Option<Arc<[u8]>>,
}

impl Converted {
    /// Same inputs: the same live payload bytes (address and length), keyframe flag, tag and
    /// parameter sets, so the conversion would give the same output.
    fn matches(&self, payload: &Bytes, keyframe: bool, tag: usize, params: &Arc<[u8]>) -> bool {
        self.payload.as_ptr() == payload.as_ptr()
            && self.payload.len() == payload.len()
            && self.keyframe == keyframe
            && self.tag == tag
            && (Arc::ptr_eq(&self.params, params) || self.params == *params)
    }
}

/// The last [`ANNEXB_CACHE_FRAMES`] conversions of one stream's video frames to what
/// str0m's packetizer takes (H.264 Annex B, and the other codecs' payloads), shared by its
/// viewers: each frame is converted (and copied) once per stream, not once per viewer.
#[derive(Debug, Default)]
pub struct AnnexBCache {
    recent: Mutex<(usize, Vec<Converted>)>,
}

impl AnnexBCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Vec<Converted>)> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The conversion of `payload` (with `keyframe`, `tag` and `params`, the other inputs
    /// of `convert`) through the stream's `cache`: another viewer's when it made the same
    /// one, else `convert`'s, kept. Without a cache, `convert`'s (the viewer's own).
    pub fn shared(
        cache: Option<&Self>,
        payload: &Bytes,
        keyframe: bool,
        tag: usize,
        params: &Arc<[u8]>,
        convert: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Arc<[u8]>> {
        let Some(cache) = cache else {
            return convert().map(Arc::from);
        };
        if let Some(hit) = cache
            .lock()
            .1
            .iter()
            .find(|c| c.matches(payload, keyframe, tag, params))
        {
            return hit.out.clone();
        }
        let out: Option<Arc<[u8]>> = convert().map(Arc::from);
        let c = Converted {
            payload: payload.clone(),
            keyframe,
            tag,
            params: Arc::clone(params),
            out: out.clone(),
        };
        let mut g = cache.lock();
        let (next, recent) = &mut *g;
        if recent.len() < ANNEXB_CACHE_FRAMES {
            recent.push(c);
        } else if let Some(slot) = recent.get_mut(*next % ANNEXB_CACHE_FRAMES) {
            *slot = c;
        }
        *next = (*next + 1) % ANNEXB_CACHE_FRAMES;
        out
    }
}

/// The [`AnnexBCache`] of each stream with WebRTC viewers: each viewer holds its stream's
/// cache, which goes with the last of them (entries are weak; dead ones are swept when a
/// viewer joins, so the map never outgrows the streams being watched).
#[derive(Debug, Default)]
pub struct AnnexBCaches {
    map: Mutex<HashMap<String, Weak<AnnexBCache>>>,
}

impl AnnexBCaches {
    /// The cache of `stream`, made if no viewer holds one.
    pub fn get(&self, stream: &str) -> Arc<AnnexBCache> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(stream).and_then(Weak::upgrade) {
            return c;
        }
        m.retain(|_, w| w.strong_count() > 0);
        let c = Arc::new(AnnexBCache::default());
        m.insert(stream.to_owned(), Arc::downgrade(&c));
        c
    }

    /// Streams with a live cache.
    #[cfg(test)]
    fn live(&self) -> usize {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.values().filter(|w| w.strong_count() > 0).count()
    }
}

/// One access unit converted for the hub (by [`Avcc`], or [`crate::hevc::Hvcc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvccUnit {
    /// A new configuration record, when the parameter sets appeared or changed with this
    /// unit: it goes to the hub as a sequence header before the coded frame.
    pub config: Option<Vec<u8>>,
    /// The coded slices with 4-byte lengths (parameter sets, AUD and SEI dropped).
    pub data: Vec<u8>,
    /// The unit contains a random access picture (H.264 IDR, H.265 IRAP).
    pub keyframe: bool,
}

/// What a WHIP converter does with one NAL unit of an Annex B access unit.
pub(crate) enum InBand {
    /// Remember it as parameter set number `n` of the record.
    ParamSet(usize),
    /// Keep it in the coded frame; `key`: a random access picture.
    Slice {
        /// The NAL unit is a random access picture.
        key: bool,
    },
    /// Drop it (AUD, SEI, end of sequence, filler, ...: not needed by players).
    Drop,
}

/// The in-band parameter sets (`N` of them: SPS and PPS, or VPS, SPS and PPS) a WHIP
/// converter has seen, and the configuration record it last handed out.
#[derive(Debug, Clone)]
pub(crate) struct ParamSets<const N: usize> {
    sets: [Option<Vec<u8>>; N],
    config: Option<Vec<u8>>,
}

impl<const N: usize> Default for ParamSets<N> {
    fn default() -> Self {
        Self {
            sets: std::array::from_fn(|_| None),
            config: None,
        }
    }
}

impl<const N: usize> ParamSets<N> {
    /// Converts one Annex B access unit: each NAL unit as `classify` says, parameter sets
    /// up to [`MAX_PARAM_SET_BYTES`] remembered, slices kept with 4-byte lengths, and the
    /// record `record` makes from all `N` parameter sets handed out when it changed. `None`
    /// when the unit is malformed (too big, too many NAL units), carries no slice, or not all
    /// parameter sets were seen yet (a decoder could not use it).
    pub(crate) fn convert(
        &mut self,
        annexb: &[u8],
        classify: impl Fn(&[u8]) -> InBand,
        record: impl FnOnce(&[&[u8]]) -> Option<Vec<u8>>,
    ) -> Option<AvccUnit> {
        if annexb.len() > MAX_ACCESS_UNIT_BYTES {
            return None;
        }
        let mut data = Vec::with_capacity(annexb.len() + 4);
        let mut keyframe = false;
        for nal in split_annexb(annexb).ok()? {
            match classify(nal) {
                InBand::ParamSet(n) if nal.len() <= MAX_PARAM_SET_BYTES => {
                    if let Some(set) = self.sets.get_mut(n) {
                        *set = Some(nal.to_vec());
                    }
                }
                InBand::Slice { key } => {
                    keyframe |= key;
                    data.extend_from_slice(&u32::try_from(nal.len()).ok()?.to_be_bytes());
                    data.extend_from_slice(nal);
                }
                InBand::ParamSet(_) | InBand::Drop => {}
            }
        }
        let sets: Vec<&[u8]> = self
            .sets
            .iter()
            .map(Option::as_deref)
            .collect::<Option<_>>()?;
        let record = record(&sets)?;
        if data.is_empty() {
            return None;
        }
        let config = (self.config.as_ref() != Some(&record)).then(|| {
            self.config = Some(record.clone());
            record
        });
        Some(AvccUnit {
            config,
            data,
            keyframe,
        })
    }
}

/// Annex B (what str0m depacketizes from WebRTC) to AVCC for the hub.
#[derive(Debug, Clone, Default)]
pub struct Avcc {
    /// SPS and PPS.
    sets: ParamSets<2>,
}

impl Avcc {
    /// Converts one access unit. `None` when it is malformed (too big, too many NAL units),
    /// carries no slice, or no SPS/PPS were seen yet (a decoder could not use it).
    pub fn convert(&mut self, annexb: &[u8]) -> Option<AvccUnit> {
        self.sets.convert(
            annexb,
            |nal| match avc::nal_type(nal) {
                Some(NAL_SPS) => InBand::ParamSet(0),
                Some(NAL_PPS) => InBand::ParamSet(1),
                Some(t @ 1..=NAL_IDR) => InBand::Slice { key: t == NAL_IDR },
                _ => InBand::Drop,
            },
            |sets| match sets {
                [sps, pps] => avc::decoder_config_record(sps, pps),
                _ => None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed demo clip (H.264 + AAC).
    static DEMO_FLV: &[u8] = include_bytes!("../../../fixtures/demo.flv");

    /// AVCDecoderConfigurationRecord: version 1, profile 66, compat 0xC0, level 30,
    /// 4-byte lengths, one SPS `67 42 C0 1E`, one PPS `68 CE 3C 80`.
    const RECORD: &[u8] = &[
        1, 66, 0xC0, 30, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E, 1, 0, 4, 0x68, 0xCE, 0x3C, 0x80,
    ];

    fn annexb() -> AnnexB {
        let mut a = AnnexB::default();
        assert!(a.set_config(&Bytes::from_static(RECORD)));
        a
    }

    #[test]
    fn keyframe_gets_parameter_sets_and_start_codes() {
        // IDR slice of 3 bytes and an in-band SPS (dropped: ours is prepended).
        let avcc = [0, 0, 0, 3, 0x65, 0x88, 0x84, 0, 0, 0, 2, 0x67, 0x42];
        let out = annexb().convert(&avcc, true).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE, 0x3C, 0x80, 0, 0, 0, 1,
                0x65, 0x88, 0x84
            ]
        );
    }

    #[test]
    fn delta_frame_is_converted_without_parameter_sets() {
        let avcc = [0, 0, 0, 2, 0x41, 0x9A, 0, 0, 0, 1, 0x01];
        let out = annexb().convert(&avcc, false).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x41, 0x9A, 0, 0, 0, 1, 0x01]);
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        let a = annexb();
        assert!(
            a.convert(&[0, 0, 0, 9, 0x41], false).is_none(),
            "length past end"
        );
        assert!(a.convert(&[0, 0], false).is_none(), "truncated length");
        assert!(a.convert(&[], false).is_none(), "empty");
        assert!(
            AnnexB::default()
                .convert(&[0, 0, 0, 1, 0x41], false)
                .is_none(),
            "no config"
        );
        let many: Vec<u8> =
            std::iter::repeat_n([0u8, 0, 0, 1, 0x41], media::nal::MAX_NAL_UNITS + 1)
                .flatten()
                .collect();
        assert!(a.convert(&many, false).is_none(), "too many NAL units");
        let mut b = AnnexB::default();
        assert!(!b.set_config(&Bytes::from_static(&[1, 66])));
        assert!(!b.ready());
    }

    #[test]
    fn demo_clip_converts_every_frame() {
        let mut a = AnnexB::default();
        let (mut keys, mut frames) = (0, 0);
        for tag in flv::read_all_tags(DEMO_FLV).unwrap() {
            let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap();
            if f.kind != media::MediaKind::Video {
                continue;
            }
            if f.role == media::FrameRole::SequenceHeader {
                assert!(a.set_config(&f.payload()));
                continue;
            }
            if f.role != media::FrameRole::Coded {
                continue;
            }
            let out = a.convert(&f.payload(), f.keyframe).unwrap();
            assert_eq!(&out[..4], &START_CODE);
            if f.keyframe {
                keys += 1;
                assert_eq!(out[4] & 0x1f, 7, "SPS first on a keyframe");
            }
            frames += 1;
        }
        // 4 s at 25 fps with a 1 s GOP.
        assert_eq!((keys, frames), (4, 100));
    }

    /// Two viewers of a stream: the second gets the first one's bytes (the same allocation),
    /// equal to what its own conversion gives; a new payload, the other keyframe flag or
    /// other parameter sets are converted afresh; a malformed frame is cached as refused.
    #[test]
    fn viewers_of_a_stream_share_each_conversion() {
        let caches = AnnexBCaches::default();
        let a = annexb().with_cache(caches.get("live/a"));
        let b = annexb().with_cache(caches.get("live/a"));
        let idr = Bytes::from_static(&[0, 0, 0, 3, 0x65, 0x88, 0x84]);
        let first = a.convert_shared(&idr, true).unwrap();
        let second = b.convert_shared(&idr, true).unwrap();
        assert!(Arc::ptr_eq(&first, &second), "converted once for both");
        assert_eq!(&first[..], &annexb().convert(&idr, true).unwrap()[..]);
        // Same bytes in another buffer: converted again, same result.
        let copy = Bytes::copy_from_slice(&idr);
        let again = b.convert_shared(&copy, true).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(first, again);
        // Same payload as a delta frame: no parameter sets in front.
        let delta = b.convert_shared(&idr, false).unwrap();
        assert_eq!(&delta[..], &[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        // A viewer with other parameter sets never takes the first one's bytes.
        let mut c = AnnexB::default().with_cache(caches.get("live/a"));
        let other = [
            1, 77, 0x40, 31, 0xFF, 0xE1, 0, 4, 0x67, 0x4D, 0x40, 0x1F, 1, 0, 4, 0x68, 0xEE, 0x3C,
            0x80,
        ];
        assert!(c.set_config(&Bytes::copy_from_slice(&other)));
        let theirs = c.convert_shared(&idr, true).unwrap();
        assert_eq!(&theirs[4..8], &[0x67, 0x4D, 0x40, 0x1F]);
        // Refusals are shared too, and a viewer without a sequence header converts nothing.
        let bad = Bytes::from_static(&[0, 0, 0, 9, 0x41]);
        assert!(a.convert_shared(&bad, false).is_none());
        assert!(b.convert_shared(&bad, false).is_none());
        let none = AnnexB::default().with_cache(caches.get("live/a"));
        assert!(none.convert_shared(&idr, true).is_none());
    }

    /// The cache holds at most ANNEXB_CACHE_FRAMES conversions, and a stream's cache goes
    /// with its last viewer.
    #[test]
    fn caches_are_bounded_and_freed_with_the_last_viewer() {
        let caches = AnnexBCaches::default();
        let a = annexb().with_cache(caches.get("live/a"));
        let frames: Vec<Bytes> = (0..ANNEXB_CACHE_FRAMES as u8 + 3)
            .map(|i| Bytes::from(vec![0, 0, 0, 2, 0x41, i]))
            .collect();
        for f in &frames {
            assert!(a.convert_shared(f, false).is_some());
        }
        let cache = caches.get("live/a");
        assert_eq!(cache.lock().1.len(), ANNEXB_CACHE_FRAMES);
        let b = annexb().with_cache(caches.get("live/b"));
        assert_eq!(caches.live(), 2);
        drop((a, cache));
        assert_eq!(caches.live(), 1, "live/a went with its last viewer");
        // A new viewer of live/a gets a fresh cache; the dead entry is swept.
        let _c = annexb().with_cache(caches.get("live/a"));
        assert_eq!(caches.map.lock().unwrap().len(), 2);
        drop(b);
        assert_eq!(caches.live(), 1);
    }

    /// Every frame of the demo clip, shared or not, converts to the same bytes.
    #[test]
    fn demo_clip_shared_equals_own_conversion() {
        let caches = AnnexBCaches::default();
        let mut own = AnnexB::default();
        let mut shared = [
            AnnexB::default().with_cache(caches.get("live/demo")),
            AnnexB::default().with_cache(caches.get("live/demo")),
        ];
        let mut n = 0;
        for tag in flv::read_all_tags(DEMO_FLV).unwrap() {
            let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap();
            if f.kind != media::MediaKind::Video {
                continue;
            }
            if f.role == media::FrameRole::SequenceHeader {
                assert!(own.set_config(&f.payload()));
                for s in &mut shared {
                    assert!(s.set_config(&f.payload()));
                }
                continue;
            }
            if f.role != media::FrameRole::Coded {
                continue;
            }
            let expect = own.convert(&f.payload(), f.keyframe).unwrap();
            for s in &shared {
                let got = s.convert_shared(&f.payload(), f.keyframe).unwrap();
                assert_eq!(&got[..], &expect[..]);
            }
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn annexb_keyframe_becomes_config_and_avcc() {
        let mut a = Avcc::default();
        // AUD, SPS, PPS, SEI, IDR slice.
        let au = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1E, 0, 0, 0, 1, 0x68, 0xCE,
            0x3C, 0x80, 0, 0, 1, 0x06, 0x05, 0, 0, 1, 0x65, 0x88, 0x84,
        ];
        let u = a.convert(&au).unwrap();
        assert_eq!(u.config.as_deref(), Some(RECORD));
        assert!(u.keyframe);
        assert_eq!(u.data, [0, 0, 0, 3, 0x65, 0x88, 0x84]);
        // Same parameter sets again: no new sequence header.
        assert_eq!(a.convert(&au).unwrap().config, None);
        // A delta frame.
        let u = a.convert(&[0, 0, 1, 0x41, 0x9A]).unwrap();
        assert!(!u.keyframe && u.config.is_none());
        assert_eq!(u.data, [0, 0, 0, 2, 0x41, 0x9A]);
        // New SPS: a new record.
        let au2 = [
            0, 0, 1, 0x67, 0x64, 0, 0x1F, 0, 0, 1, 0x68, 0xCE, 0, 0, 1, 0x65, 1,
        ];
        let rec = a.convert(&au2).unwrap().config.unwrap();
        assert_eq!(&rec[..4], &[1, 0x64, 0, 0x1F]);
    }

    #[test]
    fn annexb_without_parameter_sets_or_slices_is_refused() {
        let mut a = Avcc::default();
        assert!(
            a.convert(&[0, 0, 1, 0x65, 0x88]).is_none(),
            "IDR before SPS/PPS"
        );
        assert!(
            a.convert(&[0, 0, 1, 0x67, 0x42, 0xC0, 0x1E]).is_none(),
            "no slice"
        );
        assert!(
            a.convert(&[0, 0, 1, 0x68, 0xCE]).is_none(),
            "still no slice"
        );
        assert!(
            a.convert(&[0, 0, 1, 0x41, 0x9A]).is_some(),
            "SPS and PPS now known"
        );
        assert!(a.convert(&[7, 7, 7]).is_none(), "garbage");
        assert!(
            a.convert(&vec![0; MAX_ACCESS_UNIT_BYTES + 1]).is_none(),
            "too big"
        );
    }

    #[test]
    fn demo_clip_round_trips_avcc_annexb_avcc() {
        let mut to_annexb = AnnexB::default();
        let mut back = Avcc::default();
        let mut record = None;
        let mut frames = 0;
        for tag in flv::read_all_tags(DEMO_FLV).unwrap() {
            let f = flv::frame_from_tag(tag.tag_type, tag.timestamp, tag.body).unwrap();
            if f.kind != media::MediaKind::Video {
                continue;
            }
            if f.role == media::FrameRole::SequenceHeader {
                assert!(to_annexb.set_config(&f.payload()));
                record = Some(f.payload());
                continue;
            }
            if f.role != media::FrameRole::Coded {
                continue;
            }
            let annexb = to_annexb.convert(&f.payload(), f.keyframe).unwrap();
            let u = back.convert(&annexb).unwrap();
            assert_eq!(u.keyframe, f.keyframe, "frame {frames}");
            // The coded slices come back byte for byte (the clip's SEI/AUD are dropped).
            let want: Vec<u8> = slices_of(&f.payload());
            assert_eq!(u.data, want, "frame {frames}");
            if frames == 0 {
                let rec = avc::parse_avc_decoder_config(&Bytes::from(u.config.unwrap())).unwrap();
                let orig = avc::parse_avc_decoder_config(record.as_ref().unwrap()).unwrap();
                assert_eq!((rec.sps, rec.pps), (orig.sps, orig.pps));
            } else {
                assert!(u.config.is_none());
            }
            frames += 1;
        }
        assert_eq!(frames, 100);
    }

    /// The slice NAL units (types 1..=5) of a 4-byte-length AVCC frame, re-serialised.
    fn slices_of(avcc: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = avcc;
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let nal = &rest[4..4 + len];
            if matches!(nal[0] & 0x1f, 1..=5) {
                out.extend_from_slice(&rest[..4 + len]);
            }
            rest = &rest[4 + len..];
        }
        out
    }
}
