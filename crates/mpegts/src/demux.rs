//! MPEG-TS demuxer (sans-IO): transport stream bytes in, elementary stream units out.
//!
//! [`TsDemuxer::push`] takes bytes in any split (an SRT datagram of seven packets, a file
//! read, one byte at a time) and yields [`EsUnit`]s: H.264/H.265 access units (Annex B, as
//! carried), raw AAC frames (each ADTS frame of a PES, several per PES as muxers pack them)
//! and Opus packets (each access unit of a PES, from its `opus_control_header`), with
//! presentation and decode timestamps unwrapped past the 33-bit wrap.
//!
//! Transport streams travel over lossy links, so damage is counted, not fatal
//! ([`DemuxStats`]): a lost or repeated packet (continuity counter), a packet with the
//! transport error flag, lost sync, an oversized or malformed PES each drop what they touch
//! and the demuxer goes on at the next PES. What an ingest does with a stream that never
//! yields a unit is its decision (it has the counters).
//!
//! Programs: the first program of the PAT; its PMT's H.264 (stream type 0x1B), H.265 (0x24),
//! AAC ADTS (0x0F) and Opus (private data 0x06 with the `Opus` registration descriptor)
//! streams, at most [`MAX_ES_PIDS`]; other streams are skipped. A new PMT version replaces
//! the stream list (streams that stay keep their state).
//!
//! Every allocation is bounded: a partial packet (187 bytes), one PSI section
//! ([`MAX_SECTION_BYTES`]), one PES per stream ([`MAX_PES_BYTES`]), units per PES
//! ([`MAX_UNITS_PER_PES`]).

use bytes::{Bytes, BytesMut};
use media::aac::{AdtsConfig, AdtsHeader};
use media::opus::{OPUS_RATE, opus_packet_duration};

use crate::crc::crc32_mpeg2;
use crate::packet::{SYNC_BYTE, TIMESTAMP_MASK, TS_PACKET_LEN};
use crate::pes::decode_timestamp;
use crate::{STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, STREAM_TYPE_H265};

/// Largest PES packet kept (one video access unit): 8 MiB is a 4K intra frame at a high
/// bit rate several times over; a larger one is dropped and counted.
pub const MAX_PES_BYTES: usize = 8 * 1024 * 1024;
/// Most elementary streams followed in one program (a camera sends two; a contribution
/// encoder a few audio languages more).
pub const MAX_ES_PIDS: usize = 8;
/// Largest PSI section (the standard's 1021-byte `section_length` plus its 3-byte header).
pub const MAX_SECTION_BYTES: usize = 1024;
/// Smallest PSI section read: a PAT with no program (3-byte header, 5 bytes of syntax
/// fields, the CRC); shorter ones are malformed.
const MIN_SECTION_BYTES: usize = 12;
/// Most audio units taken from one PES (ffmpeg packs about 3 AAC frames; a PES of hundreds
/// of tiny units is hostile).
pub const MAX_UNITS_PER_PES: usize = 64;

/// PMT stream type: PES private data (Opus, with its registration descriptor).
pub const STREAM_TYPE_PRIVATE_PES: u8 = 0x06;
/// The registration descriptor's format identifier for Opus.
const OPUS_FORMAT_ID: &[u8; 4] = b"Opus";
/// Descriptor tags: registration, and the DVB extension descriptor carrying Opus' channel
/// configuration (extension tag 0x80).
const DESCRIPTOR_REGISTRATION: u8 = 0x05;
const DESCRIPTOR_EXTENSION: u8 = 0x7F;
const EXTENSION_OPUS: u8 = 0x80;
/// The PAT's PID and the null packets' PID.
const PAT_PID: u16 = 0x0000;
const NULL_PID: u16 = 0x1FFF;
/// Samples in one AAC raw data block.
const AAC_SAMPLES_PER_BLOCK: u64 = 1024;
/// The 90 kHz clock of PTS and DTS.
const CLOCK_HZ: u64 = 90_000;

/// What an elementary stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsCodec {
    /// H.264 access units in Annex B.
    H264,
    /// H.265 access units in Annex B.
    H265,
    /// Raw AAC frames (ADTS headers removed).
    Aac,
    /// Opus packets.
    Opus,
}

/// Codec parameters an audio unit carries with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioParams {
    /// From the frame's ADTS header: the AudioSpecificConfig fields.
    Aac(AdtsConfig),
    /// From the PMT's extension descriptor: the channel count (2 when not signalled).
    Opus {
        /// Output channels.
        channels: u8,
    },
}

/// One unit of an elementary stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsUnit {
    /// The elementary stream's PID.
    pub pid: u16,
    /// What `data` is.
    pub codec: EsCodec,
    /// Presentation timestamp, 90 kHz, unwrapped (see [`TsDemuxer`]: it starts at the first
    /// timestamp seen plus 2^33, so units slightly before it stay positive).
    pub pts: u64,
    /// Decode timestamp, 90 kHz, unwrapped (the PTS when the PES has no DTS).
    pub dts: u64,
    /// Video: the access unit holds an IDR (H.264) or IRAP (H.265) picture, or the packet
    /// was flagged random access. Audio: always true.
    pub keyframe: bool,
    /// Audio: the codec parameters; `None` for video.
    pub audio: Option<AudioParams>,
    /// Annex B access unit, raw AAC frame or Opus packet.
    pub data: Bytes,
}

/// What the demuxer counted (damage is counted, never fatal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Whole 188-byte packets read.
    pub packets: u64,
    /// Times a packet did not start with the sync byte and bytes were skipped to find one.
    pub sync_losses: u64,
    /// Packets of a followed stream lost or out of order (continuity counter jumps).
    pub continuity_errors: u64,
    /// Packets with the transport error indicator set (skipped).
    pub transport_errors: u64,
    /// PES packets dropped: damaged by loss, oversized, malformed or without a timestamp.
    pub pes_dropped: u64,
    /// PSI sections refused (bad CRC, oversized, malformed).
    pub bad_sections: u64,
    /// Units produced.
    pub units: u64,
}

/// One followed elementary stream.
#[derive(Debug)]
struct EsStream {
    pid: u16,
    codec: EsCodec,
    opus_channels: u8,
    /// The last continuity counter seen on a packet with payload.
    cc: Option<u8>,
    /// The PES being assembled (from its first byte), if one is.
    pes: Option<BytesMut>,
    /// The packet that started the PES was flagged random access.
    random_access: bool,
    /// The previous PES's PTS (for a PES without one).
    last_pts: Option<u64>,
}

/// A PSI section being assembled (PAT or PMT).
#[derive(Debug, Default)]
struct Section {
    buf: Vec<u8>,
    active: bool,
}

impl Section {
    /// Adds a packet's payload; returns the section once complete.
    fn push(&mut self, pusi: bool, payload: &[u8], stats: &mut DemuxStats) -> Option<Vec<u8>> {
        if pusi {
            let pointer = usize::from(*payload.first()?);
            let Some(start) = payload.get(1 + pointer..) else {
                stats.bad_sections += 1;
                self.active = false;
                return None;
            };
            self.buf.clear();
            self.buf.extend_from_slice(start);
            self.active = true;
        } else if self.active {
            self.buf.extend_from_slice(payload);
        } else {
            return None;
        }
        if self.buf.len() < 3 {
            return None;
        }
        let total = 3 + ((usize::from(self.buf[1] & 0x0F) << 8) | usize::from(self.buf[2]));
        if !(MIN_SECTION_BYTES..=MAX_SECTION_BYTES).contains(&total) {
            stats.bad_sections += 1;
            self.active = false;
            return None;
        }
        if self.buf.len() < total {
            return None;
        }
        self.active = false;
        let section = &self.buf[..total];
        let crc = u32::from_be_bytes([
            section[total - 4],
            section[total - 3],
            section[total - 2],
            section[total - 1],
        ]);
        if crc32_mpeg2(&section[..total - 4]) != crc {
            stats.bad_sections += 1;
            return None;
        }
        Some(section.to_vec())
    }
}

/// Unwraps 33-bit timestamps onto one 64-bit timeline (shared by every stream of the
/// program: they share the clock). Each value is placed nearest the previous one.
#[derive(Debug, Default)]
struct Unwrapper {
    last: Option<u64>,
}

impl Unwrapper {
    fn unwrap(&mut self, ts: u64) -> u64 {
        let ts = ts & TIMESTAMP_MASK;
        let value = match self.last {
            None => ts + (1 << 33),
            Some(last) => {
                let diff = ts.wrapping_sub(last) & TIMESTAMP_MASK;
                if diff < (1 << 32) {
                    last + diff
                } else {
                    last.saturating_sub((1 << 33) - diff)
                }
            }
        };
        self.last = Some(value);
        value
    }
}

/// The demuxer. See the module documentation.
#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// The start of a packet that the last push cut (fewer than 188 bytes).
    carry: Vec<u8>,
    pat: Section,
    pmt: Section,
    pmt_pid: Option<u16>,
    pmt_version: Option<u8>,
    streams: Vec<EsStream>,
    clock: Unwrapper,
    stats: DemuxStats,
}

impl TsDemuxer {
    /// A demuxer waiting for its first PAT.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was counted so far.
    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// The followed streams (PID and codec), once a PMT was read.
    pub fn streams(&self) -> impl Iterator<Item = (u16, EsCodec)> + '_ {
        self.streams.iter().map(|s| (s.pid, s.codec))
    }

    /// Reads `data` (any split) and appends the units it completes to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<EsUnit>) {
        if !self.carry.is_empty() {
            let need = TS_PACKET_LEN - self.carry.len();
            let take = need.min(data.len());
            self.carry.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.carry.len() < TS_PACKET_LEN {
                return;
            }
            let packet = std::mem::take(&mut self.carry);
            self.packet(&packet, out);
        }
        while !data.is_empty() {
            if data[0] != SYNC_BYTE {
                self.stats.sync_losses += 1;
                match data.iter().position(|b| *b == SYNC_BYTE) {
                    Some(i) => data = &data[i..],
                    None => return,
                }
            }
            if data.len() < TS_PACKET_LEN {
                self.carry.extend_from_slice(data);
                return;
            }
            let (packet, rest) = data.split_at(TS_PACKET_LEN);
            self.packet(packet, out);
            data = rest;
        }
    }

    /// The end of the input: completes every PES being assembled.
    pub fn flush(&mut self, out: &mut Vec<EsUnit>) {
        for i in 0..self.streams.len() {
            self.finish_pes(i, out);
        }
        self.carry.clear();
    }

    fn packet(&mut self, p: &[u8], out: &mut Vec<EsUnit>) {
        self.stats.packets += 1;
        if p[1] & 0x80 != 0 {
            self.stats.transport_errors += 1;
            return;
        }
        let pusi = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let afc = (p[3] >> 4) & 0x03;
        let cc = p[3] & 0x0F;
        if pid == NULL_PID || afc == 0 {
            return;
        }
        let mut start = 4;
        let mut random_access = false;
        if afc & 0x02 != 0 {
            let len = usize::from(p[4]);
            if len > TS_PACKET_LEN - 5 {
                self.stats.transport_errors += 1;
                return;
            }
            random_access = len > 0 && p[5] & 0x40 != 0;
            start = 5 + len;
        }
        if afc & 0x01 == 0 {
            return;
        }
        let payload = &p[start..];
        if pid == PAT_PID {
            if let Some(s) = self.pat.push(pusi, payload, &mut self.stats) {
                self.read_pat(&s);
            }
        } else if Some(pid) == self.pmt_pid {
            if let Some(s) = self.pmt.push(pusi, payload, &mut self.stats) {
                self.read_pmt(&s, out);
            }
        } else if let Some(i) = self.streams.iter().position(|s| s.pid == pid) {
            self.es_packet(i, pusi, cc, random_access, payload, out);
        }
    }

    fn read_pat(&mut self, s: &[u8]) {
        if s[0] != 0x00 {
            self.stats.bad_sections += 1;
            return;
        }
        let programs = &s[8..s.len() - 4];
        let pmt = programs
            .chunks_exact(4)
            .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
            .map(|e| (u16::from(e[2] & 0x1F) << 8) | u16::from(e[3]));
        if pmt.is_some() && pmt != self.pmt_pid {
            self.pmt_pid = pmt;
            self.pmt_version = None;
            self.pmt = Section::default();
        }
    }

    fn read_pmt(&mut self, s: &[u8], out: &mut Vec<EsUnit>) {
        if s[0] != 0x02 {
            self.stats.bad_sections += 1;
            return;
        }
        let version = (s[5] >> 1) & 0x1F;
        if self.pmt_version == Some(version) {
            return;
        }
        let end = s.len() - 4;
        let info_len = (usize::from(s[10] & 0x0F) << 8) | usize::from(s[11]);
        let mut i = 12 + info_len;
        let mut found = Vec::new();
        while i + 5 <= end {
            let stream_type = s[i];
            let pid = (u16::from(s[i + 1] & 0x1F) << 8) | u16::from(s[i + 2]);
            let es_len = (usize::from(s[i + 3] & 0x0F) << 8) | usize::from(s[i + 4]);
            let Some(descriptors) = s
                .get(i + 5..i + 5 + es_len)
                .filter(|_| i + 5 + es_len <= end)
            else {
                self.stats.bad_sections += 1;
                return;
            };
            if let Some((codec, channels)) = classify(stream_type, descriptors)
                && found.len() < MAX_ES_PIDS
                && !found.iter().any(|(p, _, _)| *p == pid)
            {
                found.push((pid, codec, channels));
            }
            i += 5 + es_len;
        }
        self.pmt_version = Some(version);
        // Streams that stay keep their state; the others end with what they assembled.
        let mut kept = Vec::with_capacity(found.len());
        for (pid, codec, channels) in found {
            match self
                .streams
                .iter()
                .position(|s| s.pid == pid && s.codec == codec)
            {
                Some(at) => {
                    let mut st = self.streams.swap_remove(at);
                    st.opus_channels = channels;
                    kept.push(st);
                }
                None => kept.push(EsStream {
                    pid,
                    codec,
                    opus_channels: channels,
                    cc: None,
                    pes: None,
                    random_access: false,
                    last_pts: None,
                }),
            }
        }
        for i in 0..self.streams.len() {
            self.finish_pes(i, out);
        }
        self.streams = kept;
    }

    fn es_packet(
        &mut self,
        i: usize,
        pusi: bool,
        cc: u8,
        random_access: bool,
        payload: &[u8],
        out: &mut Vec<EsUnit>,
    ) {
        let st = &mut self.streams[i];
        if let Some(prev) = st.cc {
            if cc == prev {
                // A duplicate packet (allowed once by the standard): already taken.
                return;
            }
            if cc != (prev + 1) & 0x0F {
                self.stats.continuity_errors += 1;
                if st.pes.take().is_some() {
                    self.stats.pes_dropped += 1;
                }
            }
        }
        st.cc = Some(cc);
        if pusi {
            self.finish_pes(i, out);
            let st = &mut self.streams[i];
            let mut pes = BytesMut::with_capacity(payload.len().max(4096));
            pes.extend_from_slice(payload);
            st.pes = Some(pes);
            st.random_access = random_access;
        } else {
            let Some(pes) = st.pes.as_mut() else {
                return;
            };
            if pes.len() + payload.len() > MAX_PES_BYTES {
                st.pes = None;
                self.stats.pes_dropped += 1;
                return;
            }
            pes.extend_from_slice(payload);
        }
        // A PES that states its length is complete as soon as it has it (audio goes out
        // without waiting for the next PES).
        let st = &self.streams[i];
        if let Some(pes) = &st.pes
            && pes.len() >= 6
        {
            let len = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
            if len > 0 && pes.len() >= 6 + len {
                self.finish_pes(i, out);
            }
        }
    }

    /// Ends stream `i`'s PES (if one is being assembled) and emits its units.
    fn finish_pes(&mut self, i: usize, out: &mut Vec<EsUnit>) {
        let Some(pes) = self.streams[i].pes.take() else {
            return;
        };
        let pes = pes.freeze();
        let Some(h) = PesHeader::parse(&pes) else {
            self.stats.pes_dropped += 1;
            return;
        };
        let st = &mut self.streams[i];
        let (pts, dts) = match (h.pts, h.dts) {
            (Some(p), d) => {
                let pts = self.clock.unwrap(p);
                let dts = d.map_or(pts, |d| self.clock.unwrap(d));
                (pts, dts.min(pts))
            }
            (None, _) => match st.last_pts {
                Some(p) => (p, p),
                None => {
                    self.stats.pes_dropped += 1;
                    return;
                }
            },
        };
        st.last_pts = Some(pts);
        let payload = pes.slice(h.payload);
        let before = out.len();
        match st.codec {
            EsCodec::H264 | EsCodec::H265 => {
                let keyframe = st.random_access || has_random_access_picture(st.codec, &payload);
                out.push(EsUnit {
                    pid: st.pid,
                    codec: st.codec,
                    pts,
                    dts,
                    keyframe,
                    audio: None,
                    data: payload,
                });
            }
            EsCodec::Aac => split_adts(st.pid, pts, &payload, out),
            EsCodec::Opus => split_opus(st.pid, st.opus_channels, pts, &payload, out),
        }
        if out.len() == before {
            self.stats.pes_dropped += 1;
        }
        self.stats.units += (out.len() - before) as u64;
    }
}

/// The codec of a PMT entry, and Opus' channel count.
fn classify(stream_type: u8, descriptors: &[u8]) -> Option<(EsCodec, u8)> {
    match stream_type {
        STREAM_TYPE_H264 => Some((EsCodec::H264, 0)),
        STREAM_TYPE_H265 => Some((EsCodec::H265, 0)),
        STREAM_TYPE_AAC_ADTS => Some((EsCodec::Aac, 0)),
        STREAM_TYPE_PRIVATE_PES => {
            let mut opus = false;
            let mut channels = 2;
            let mut d = descriptors;
            while let [tag, len, rest @ ..] = d {
                let body = rest.get(..usize::from(*len))?;
                match (*tag, body) {
                    (DESCRIPTOR_REGISTRATION, [a, b, c, e, ..]) => {
                        opus |= &[*a, *b, *c, *e] == OPUS_FORMAT_ID;
                    }
                    (DESCRIPTOR_EXTENSION, [EXTENSION_OPUS, code, ..]) => {
                        // channel_config_code: 0x00..=0x08 is the channel count (0 means
                        // dual mono, two channels); 0x80 and up are explicit mappings.
                        channels = match *code {
                            0 => 2,
                            n @ 1..=8 => n,
                            _ => 2,
                        };
                    }
                    _ => {}
                }
                d = &rest[usize::from(*len)..];
            }
            opus.then_some((EsCodec::Opus, channels))
        }
        _ => None,
    }
}

/// The parts of a PES header the demuxer uses.
struct PesHeader {
    pts: Option<u64>,
    dts: Option<u64>,
    /// The payload's range in the PES.
    payload: std::ops::Range<usize>,
}

impl PesHeader {
    /// `None` for anything that is not a PES with the MPEG-2 header (`'10'` marker bits).
    fn parse(pes: &[u8]) -> Option<Self> {
        if pes.len() < 9 || pes[..3] != [0, 0, 1] || pes[6] & 0xC0 != 0x80 {
            return None;
        }
        let flags = pes[7] >> 6;
        let header_end = 9 + usize::from(pes[8]);
        let ts = |at: usize| -> Option<u64> {
            let b: [u8; 5] = pes.get(at..at + 5)?.try_into().ok()?;
            Some(decode_timestamp(b))
        };
        let (pts, dts) = match flags {
            0b10 => (Some(ts(9)?), None),
            0b11 => (Some(ts(9)?), Some(ts(14)?)),
            _ => (None, None),
        };
        let declared = usize::from(u16::from_be_bytes([pes[4], pes[5]]));
        let end = if declared == 0 {
            pes.len()
        } else {
            (6 + declared).min(pes.len())
        };
        if header_end > end {
            return None;
        }
        Some(Self {
            pts,
            dts,
            payload: header_end..end,
        })
    }
}

/// True when an Annex B access unit holds an IDR (H.264) or IRAP (H.265) picture.
fn has_random_access_picture(codec: EsCodec, au: &[u8]) -> bool {
    let Ok(units) = media::nal::split_annexb(au) else {
        return false;
    };
    units.iter().any(|nal| match codec {
        EsCodec::H264 => media::avc::nal_type(nal) == Some(media::avc::NAL_IDR),
        _ => media::hevc::nal_type(nal).is_some_and(media::hevc::is_irap),
    })
}

/// Each ADTS frame of a PES payload as one unit, timestamps advanced by 1024 samples per
/// raw data block. Stops at the first damaged header.
fn split_adts(pid: u16, pts: u64, payload: &Bytes, out: &mut Vec<EsUnit>) {
    let mut at = 0;
    let mut samples = 0u64;
    for _ in 0..MAX_UNITS_PER_PES {
        let Some(rest) = payload.get(at..).filter(|r| !r.is_empty()) else {
            return;
        };
        let Ok(h) = AdtsHeader::parse(rest) else {
            return;
        };
        if h.frame_len > rest.len() {
            return;
        }
        let rate = u64::from(h.sample_rate());
        let ts = pts + samples * CLOCK_HZ / rate;
        out.push(EsUnit {
            pid,
            codec: EsCodec::Aac,
            pts: ts,
            dts: ts,
            keyframe: true,
            audio: Some(AudioParams::Aac(h.config)),
            data: payload.slice(at + h.header_len..at + h.frame_len),
        });
        samples += AAC_SAMPLES_PER_BLOCK * u64::from(h.blocks);
        at += h.frame_len;
    }
}

/// Each Opus access unit of a PES payload (its `opus_control_header`: the 0x3FF prefix,
/// trim and extension flags, a 255-coded size) as one unit, timestamps advanced by each
/// packet's duration. Stops at the first damaged header.
fn split_opus(pid: u16, channels: u8, pts: u64, payload: &Bytes, out: &mut Vec<EsUnit>) {
    let mut at = 0;
    let mut samples = 0u64;
    for _ in 0..MAX_UNITS_PER_PES {
        let Some(rest) = payload.get(at..).filter(|r| r.len() >= 2) else {
            return;
        };
        if (u16::from(rest[0]) << 3) | u16::from(rest[1] >> 5) != 0x3FF {
            return;
        }
        let (start_trim, end_trim, extension) = (
            rest[1] & 0x10 != 0,
            rest[1] & 0x08 != 0,
            rest[1] & 0x04 != 0,
        );
        let mut i = 2;
        let mut size = 0usize;
        loop {
            let Some(&b) = rest.get(i) else { return };
            i += 1;
            size += usize::from(b);
            if b != 0xFF {
                break;
            }
        }
        i += 2 * usize::from(start_trim) + 2 * usize::from(end_trim);
        if extension {
            let Some(&len) = rest.get(i) else { return };
            i += 1 + usize::from(len);
        }
        let Some(packet) = rest.get(i..i + size) else {
            return;
        };
        let Ok(duration) = opus_packet_duration(packet) else {
            return;
        };
        let ts = pts + samples * CLOCK_HZ / u64::from(OPUS_RATE);
        out.push(EsUnit {
            pid,
            codec: EsCodec::Opus,
            pts: ts,
            dts: ts,
            keyframe: true,
            audio: Some(AudioParams::Opus { channels }),
            data: payload.slice(at + i..at + i + size),
        });
        samples += u64::from(duration);
        at += i + size;
    }
}

#[cfg(test)]
#[path = "demux_tests.rs"]
mod tests;
