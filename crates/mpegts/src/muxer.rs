//! [`TsMuxer`]: hub frames in, 188-byte transport stream packets out.

use bytes::BytesMut;
use media::aac::AdtsConfig;
use media::{Codec, Frame, FrameRole, MediaKind};

use crate::packet::{
    ContinuityCounter, FirstPacketFlags, TIMESTAMP_MASK, write_pes_packets, write_section_packet,
};
use crate::pes::{
    MAX_PES_HEADER_LEN, PTS_ONLY_HEADER_TAIL, STREAM_ID_AUDIO, STREAM_ID_VIDEO, ms_to_90k,
    pes_header,
};
use crate::psi::{NO_PCR_PID, PmtStream, pat_section, pmt_section};
use crate::video::{VideoConfig, avcc_to_annexb, parse_avcc, parse_hvcc};
use crate::{AUDIO_PID, PAT_PID, PMT_PID, TsError, VIDEO_PID};

/// Added to every PTS and DTS (1.4 s at 90 kHz, what ffmpeg's muxer starts at), so the PCR
/// can run [`PCR_DELAY_90K`] ahead of the first DTS without going below zero.
pub const TS_TIMESTAMP_OFFSET_90K: u64 = 126_000;
/// How far the PCR runs behind the DTS of the PES that carries it (0.7 s), giving decoders
/// buffering headroom for interleaved audio.
pub const PCR_DELAY_90K: u64 = 63_000;
/// stream_type for H.264 video.
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// stream_type for H.265 video.
pub const STREAM_TYPE_H265: u8 = 0x24;
/// stream_type for AAC in ADTS.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0F;

/// A sans-IO MPEG-TS muxer for one program with at most one video (H.264/H.265) and one
/// audio (AAC) stream, on [`VIDEO_PID`] and [`AUDIO_PID`] with the PMT on [`PMT_PID`].
///
/// Output is always whole 188-byte packets appended to the caller's buffer. Continuity
/// counters persist across calls, so consecutive HLS segments from one muxer concatenate
/// into a valid stream.
#[derive(Debug, Default)]
pub struct TsMuxer {
    video: Option<VideoConfig>,
    audio: Option<AdtsConfig>,
    /// PMT version_number, bumped (mod 32) when the stream list differs from the last PMT
    /// written.
    pmt_version: u8,
    /// The stream list of the last PMT written.
    last_pmt: Option<Vec<PmtStream>>,
    pat_cc: ContinuityCounter,
    pmt_cc: ContinuityCounter,
    video_cc: ContinuityCounter,
    audio_cc: ContinuityCounter,
}

impl TsMuxer {
    /// A muxer with no streams configured.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the PAT and the PMT for the streams configured so far (one packet each). The
    /// HLS segmenter calls it at the start of every segment, before the keyframe.
    pub fn write_tables(&mut self, out: &mut BytesMut) {
        write_section_packet(out, PAT_PID, &mut self.pat_cc, &pat_section(PMT_PID));
        let streams = self.pmt_streams();
        if self.last_pmt.as_ref().is_some_and(|last| *last != streams) {
            self.pmt_version = (self.pmt_version + 1) & 0x1F;
        }
        let pmt = pmt_section(self.pmt_version, self.pcr_pid(), &streams);
        self.last_pmt = Some(streams);
        write_section_packet(out, PMT_PID, &mut self.pmt_cc, &pmt);
    }

    /// Feeds one hub frame.
    ///
    /// * Sequence headers (H.264 avcC, H.265 hvcC, AAC AudioSpecificConfig) update the codec
    ///   state and write nothing (`Ok(false)`); a malformed one is an error and keeps the
    ///   previous state.
    /// * Coded H.264/H.265 -> one video PES (Annex B with AUD, parameter sets before
    ///   keyframes, see [`crate::video::avcc_to_annexb`]), PTS and DTS, PCR and
    ///   random_access_indicator in the first packet.
    /// * Coded AAC -> one audio PES (ADTS header + raw frame), PTS only.
    /// * Metadata, sequence ends, empty frames and other codecs write nothing: `Ok(false)`.
    ///
    /// Returns `Ok(true)` when packets were written. On error nothing is written.
    pub fn push(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<bool, TsError> {
        match (frame.kind, frame.role, frame.codec) {
            (MediaKind::Video, FrameRole::SequenceHeader, Codec::H264 | Codec::H265) => {
                let payload = frame.payload();
                let config = if frame.codec == Codec::H264 {
                    parse_avcc(&payload)?
                } else {
                    parse_hvcc(&payload)?
                };
                self.video = Some(config);
                Ok(false)
            }
            (MediaKind::Audio, FrameRole::SequenceHeader, Codec::Aac) => {
                let config = AdtsConfig::from_audio_specific_config(&frame.payload())?;
                self.audio = Some(config);
                Ok(false)
            }
            (MediaKind::Video, FrameRole::Coded, Codec::H264 | Codec::H265) => {
                self.push_video(frame, out)
            }
            (MediaKind::Audio, FrameRole::Coded, Codec::Aac) => self.push_audio(frame, out),
            _ => Ok(false),
        }
    }

    /// True once an H.264 or H.265 sequence header has been accepted.
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// True once an AAC sequence header has been accepted.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// The configured video codec, if any.
    pub fn video_codec(&self) -> Option<Codec> {
        self.video.as_ref().map(|v| v.codec)
    }

    /// The version_number of the last PMT written (it changes when the stream list does).
    pub fn pmt_version(&self) -> u8 {
        self.pmt_version
    }

    fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            VIDEO_PID
        } else if self.audio.is_some() {
            AUDIO_PID
        } else {
            NO_PCR_PID
        }
    }

    fn pmt_streams(&self) -> Vec<PmtStream> {
        let mut streams = Vec::with_capacity(2);
        if let Some(video) = &self.video {
            let stream_type = if video.codec == Codec::H265 {
                STREAM_TYPE_H265
            } else {
                STREAM_TYPE_H264
            };
            streams.push(PmtStream {
                stream_type,
                pid: VIDEO_PID,
            });
        }
        if self.audio.is_some() {
            streams.push(PmtStream {
                stream_type: STREAM_TYPE_AAC_ADTS,
                pid: AUDIO_PID,
            });
        }
        streams
    }

    fn push_video(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<bool, TsError> {
        let config = self
            .video
            .as_ref()
            .filter(|v| v.codec == frame.codec)
            .ok_or(TsError::MissingSequenceHeader { codec: frame.codec })?;
        let payload = frame.payload();
        if payload.is_empty() {
            return Ok(false);
        }
        let dts = ms_to_90k(frame.dts);
        // MPEG requires PTS >= DTS: a negative composition offset is clamped to zero.
        let cts = ms_to_90k(u64::from(frame.cts.max(0).unsigned_abs()));
        let dts = (dts + TS_TIMESTAMP_OFFSET_90K) & TIMESTAMP_MASK;
        let pts = (dts + cts) & TIMESTAMP_MASK;
        let mut pes = Vec::with_capacity(MAX_PES_HEADER_LEN + payload.len() + 64);
        pes_header(&mut pes, STREAM_ID_VIDEO, 0, pts, Some(dts));
        let random_access = avcc_to_annexb(config, &payload, frame.keyframe, &mut pes)?;
        let first = FirstPacketFlags {
            pcr: Some(pcr_for(dts)),
            random_access,
        };
        write_pes_packets(out, VIDEO_PID, &mut self.video_cc, &pes, first);
        Ok(true)
    }

    fn push_audio(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<bool, TsError> {
        let config = self
            .audio
            .ok_or(TsError::MissingSequenceHeader { codec: Codec::Aac })?;
        let payload = frame.payload();
        if payload.is_empty() {
            return Ok(false);
        }
        let adts = config.header(payload.len())?;
        let pts = (ms_to_90k(frame.pts()) + TS_TIMESTAMP_OFFSET_90K) & TIMESTAMP_MASK;
        // Fits: the ADTS frame is at most 8191 bytes (checked by `header`).
        let packet_length = (PTS_ONLY_HEADER_TAIL + adts.len() + payload.len()) as u16;
        let mut pes = Vec::with_capacity(6 + usize::from(packet_length));
        pes_header(&mut pes, STREAM_ID_AUDIO, packet_length, pts, None);
        pes.extend_from_slice(&adts);
        pes.extend_from_slice(&payload);
        // Without video the audio PID carries the PCR; every AAC frame is a random access point.
        let first = if self.video.is_none() {
            FirstPacketFlags {
                pcr: Some(pcr_for(pts)),
                random_access: true,
            }
        } else {
            FirstPacketFlags::default()
        };
        write_pes_packets(out, AUDIO_PID, &mut self.audio_cc, &pes, first);
        Ok(true)
    }
}

/// The PCR sent with a PES whose decode time is `dts` (both 33-bit 90 kHz).
fn pcr_for(dts: u64) -> u64 {
    dts.wrapping_sub(PCR_DELAY_90K) & TIMESTAMP_MASK
}
