//! [`AacToOpus`]: raw AAC-LC frames in, 20 ms Opus packets out.

use bytes::Bytes;
use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::packet::PacketRef;
use symphonia::core::units::{Duration, Timestamp};
use symphonia::default::codecs::AacDecoder;

use crate::resample::Resampler;
use crate::{
    AAC_FRAME_SAMPLES, DEFAULT_BITRATE_MONO, DEFAULT_BITRATE_STEREO, EXPECTED_LOSS_PERCENT,
    MAX_AAC_FRAME_BYTES, MAX_BITRATE, MAX_CHANNELS, MAX_GAP_MS, MAX_OPUS_PACKET_BYTES,
    MAX_PENDING_SAMPLES, MIN_BITRATE, OPUS_COMPLEXITY, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE,
    TranscodeError,
};

/// The 13 rates of the AAC sampling-frequency-index table (ISO/IEC 14496-3 1.6.3.4). Explicit
/// 24-bit rates are refused: they would need an arbitrary (possibly huge) resampler.
const AAC_SAMPLE_RATES: [u32; 13] = media::aac::SAMPLE_RATES;

/// Bytes of a rejected config kept in [`TranscodeError::InvalidConfig`].
const MAX_ASC_IN_ERROR: usize = 16;

/// One Opus packet (20 ms) ready for RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// One Opus packet (RFC 6716), a single 20 ms frame.
    pub data: Bytes,
    /// Hub-timeline time (ms) of the packet's first sample; steps by [`crate::OPUS_FRAME_MS`].
    pub dts_ms: u64,
    /// Samples per channel at 48 kHz: always 960 (the RTP timestamp increment).
    pub samples: u32,
}

/// One AAC → Opus transcoder (one per stream).
///
/// Timeline: the first frame (and the first frame after a reset) anchors the output at its dts;
/// from then on packet `k` has `dts_ms = anchor + 20 k`, i.e. the input time of the packet's
/// first sample. The resampler is time-aligned (it adds no offset, it only holds back
/// ~0.5 ms of input), so no correction is needed for it. The Opus encoder's look-ahead (6.5 ms
/// with `Application::Audio`) is, as in every WebRTC sender, not subtracted: RFC 7587 stamps a
/// packet with the sampling instant of its first input sample, and 6.5 ms is far inside
/// lip-sync tolerance.
///
/// Channels: Opus output has the input's channel count (mono stays mono, stereo stays stereo).
pub struct AacToOpus {
    decoder: AacDecoder,
    resampler: Resampler,
    encoder: opus::Encoder,
    sample_rate_in: u32,
    channels: u16,
    bitrate: u32,
    /// Scratch: the last decoded AAC frame, interleaved.
    decoded: Vec<f32>,
    /// Interleaved 48 kHz samples waiting for a complete Opus frame.
    pending: Vec<f32>,
    /// Scratch for libopus's output.
    packet_buf: Vec<u8>,
    /// Dts of the first input sample since the last reset; `None` before the first frame.
    anchor_dts_ms: Option<u64>,
    /// Input samples per channel decoded (or concealed) since the anchor.
    in_samples: u64,
    /// 48 kHz samples per channel encoded since the anchor.
    out_samples: u64,
}

impl std::fmt::Debug for AacToOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AacToOpus")
            .field("sample_rate_in", &self.sample_rate_in)
            .field("channels", &self.channels)
            .field("bitrate", &self.bitrate)
            .field("anchor_dts_ms", &self.anchor_dts_ms)
            .field("in_samples", &self.in_samples)
            .field("out_samples", &self.out_samples)
            .finish_non_exhaustive()
    }
}

fn opus_err(what: &'static str) -> impl FnOnce(opus::Error) -> TranscodeError {
    move |source| TranscodeError::Opus { what, source }
}

impl AacToOpus {
    /// From an AAC AudioSpecificConfig (the payload of the hub's AAC sequence header), with the
    /// default bitrate ([`DEFAULT_BITRATE_STEREO`] or [`DEFAULT_BITRATE_MONO`]).
    pub fn new(asc: &[u8]) -> Result<AacToOpus, TranscodeError> {
        Self::build(asc, None)
    }

    /// Like [`AacToOpus::new`] with an explicit Opus bitrate in bits per second
    /// ([`MIN_BITRATE`]..=[`MAX_BITRATE`]).
    pub fn with_bitrate(asc: &[u8], bitrate: u32) -> Result<AacToOpus, TranscodeError> {
        Self::build(asc, Some(bitrate))
    }

    fn build(asc: &[u8], bitrate: Option<u32>) -> Result<AacToOpus, TranscodeError> {
        let invalid = |reason: String| TranscodeError::InvalidConfig {
            asc: asc.iter().take(MAX_ASC_IN_ERROR).copied().collect(),
            reason,
        };
        if asc.len() < 2 {
            return Err(invalid("shorter than 2 bytes".into()));
        }
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(asc.to_vec().into_boxed_slice());
        let decoder = AacDecoder::try_new(&params, &AudioDecoderOptions::default())
            .map_err(|e| invalid(e.to_string()))?;
        let decoded_params = decoder.codec_params();
        let sample_rate_in = decoded_params
            .sample_rate
            .ok_or_else(|| invalid("no sample rate".into()))?;
        if !AAC_SAMPLE_RATES.contains(&sample_rate_in) {
            return Err(TranscodeError::UnsupportedSampleRate {
                rate: sample_rate_in,
            });
        }
        let channel_count = decoded_params.channels.as_ref().map_or(0, |c| c.count());
        let channels = match u16::try_from(channel_count) {
            Ok(c @ 1..=MAX_CHANNELS) => c,
            _ => {
                return Err(TranscodeError::UnsupportedChannels {
                    channels: channel_count,
                });
            }
        };
        let bitrate = bitrate.unwrap_or(if channels == 1 {
            DEFAULT_BITRATE_MONO
        } else {
            DEFAULT_BITRATE_STEREO
        });
        if !(MIN_BITRATE..=MAX_BITRATE).contains(&bitrate) {
            return Err(TranscodeError::InvalidBitrate { bitrate });
        }
        let opus_channels = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        // Application::Audio, not LowDelay: LowDelay forces CELT-only, which cannot carry
        // in-band FEC (LBRR is a SILK feature) and costs quality; its 4 ms look-ahead saving
        // is irrelevant next to WebRTC jitter buffers.
        let mut encoder =
            opus::Encoder::new(OPUS_SAMPLE_RATE, opus_channels, opus::Application::Audio)
                .map_err(opus_err("create"))?;
        let bitrate_i32 =
            i32::try_from(bitrate).map_err(|_| TranscodeError::InvalidBitrate { bitrate })?;
        encoder
            .set_bitrate(opus::Bitrate::Bits(bitrate_i32))
            .map_err(opus_err("set bitrate"))?;
        encoder
            .set_complexity(OPUS_COMPLEXITY)
            .map_err(opus_err("set complexity"))?;
        encoder
            .set_inband_fec(true)
            .map_err(opus_err("enable in-band FEC"))?;
        encoder
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(opus_err("set expected packet loss"))?;
        let resampler = Resampler::new(sample_rate_in, OPUS_SAMPLE_RATE, usize::from(channels))?;
        let ch = usize::from(channels);
        Ok(AacToOpus {
            decoder,
            resampler,
            encoder,
            sample_rate_in,
            channels,
            bitrate,
            decoded: Vec::with_capacity(AAC_FRAME_SAMPLES * ch),
            pending: Vec::with_capacity((MAX_PENDING_SAMPLES + 8 * OPUS_FRAME_SAMPLES) * ch),
            packet_buf: vec![0; MAX_OPUS_PACKET_BYTES],
            anchor_dts_ms: None,
            in_samples: 0,
            out_samples: 0,
        })
    }

    /// Decodes one raw AAC frame (no ADTS) whose decode time is `dts_ms` (hub timeline, ms) and
    /// appends every complete 20 ms Opus packet now available. A timestamp gap larger than
    /// [`MAX_GAP_MS`] resets the buffers (the output timeline follows the input's dts). A corrupt
    /// frame is an Err for that frame only: the transcoder keeps working with the next one.
    ///
    /// A frame that fails to decode ([`TranscodeError::Decode`]) is replaced by 1024 samples of
    /// silence so the timeline stays continuous; packets completed by that silence are still
    /// appended to `out` before the Err is returned, so callers should send what `out` holds
    /// even on Err. Empty or oversized frames are rejected without touching any state.
    pub fn push(
        &mut self,
        aac: &[u8],
        dts_ms: u64,
        out: &mut Vec<OpusPacket>,
    ) -> Result<(), TranscodeError> {
        if aac.is_empty() {
            return Err(TranscodeError::EmptyFrame { dts_ms });
        }
        if aac.len() > MAX_AAC_FRAME_BYTES {
            return Err(TranscodeError::FrameTooLarge {
                len: aac.len(),
                max: MAX_AAC_FRAME_BYTES,
                dts_ms,
            });
        }
        if let Some(expected) = self.expected_dts()
            && dts_ms.abs_diff(expected) > MAX_GAP_MS
        {
            self.reset();
        }
        if self.anchor_dts_ms.is_none() {
            self.anchor_dts_ms = Some(dts_ms);
        }

        let ch = usize::from(self.channels);
        let packet = PacketRef::new(
            0,
            Timestamp::from(0i64),
            Duration::from(AAC_FRAME_SAMPLES as u64),
            aac,
        );
        let result = match self.decoder.decode_ref(&packet) {
            Ok(buf) if buf.frames() == AAC_FRAME_SAMPLES && buf.spec().channels().count() == ch => {
                buf.copy_to_vec_interleaved(&mut self.decoded);
                Ok(())
            }
            Ok(buf) => Err(format!(
                "decoded {} frames of {} channels, expected {AAC_FRAME_SAMPLES} of {ch}",
                buf.frames(),
                buf.spec().channels().count()
            )),
            Err(e) => Err(e.to_string()),
        };
        if result.is_err() {
            // Conceal with silence; drop the decoder's half-updated overlap state.
            self.decoder.reset();
            self.decoded.clear();
            self.decoded.resize(AAC_FRAME_SAMPLES * ch, 0.0);
        }
        self.in_samples += AAC_FRAME_SAMPLES as u64;
        self.resampler.process(&self.decoded, &mut self.pending);
        self.encode_pending(out)?;
        result.map_err(|reason| TranscodeError::Decode { dts_ms, reason })
    }

    /// Encodes every complete 20 ms frame in `pending`.
    fn encode_pending(&mut self, out: &mut Vec<OpusPacket>) -> Result<(), TranscodeError> {
        let frame_len = OPUS_FRAME_SAMPLES * usize::from(self.channels);
        let anchor = self.anchor_dts_ms.unwrap_or(0);
        let mut consumed = 0;
        let mut result = Ok(());
        while let Some(frame) = self.pending.get(consumed..consumed + frame_len) {
            consumed += frame_len;
            let dts_ms =
                anchor.saturating_add(self.out_samples * 1000 / u64::from(OPUS_SAMPLE_RATE));
            self.out_samples += OPUS_FRAME_SAMPLES as u64;
            match self.encoder.encode_float(frame, &mut self.packet_buf) {
                Ok(len) => out.push(OpusPacket {
                    data: Bytes::copy_from_slice(self.packet_buf.get(..len).unwrap_or_default()),
                    dts_ms,
                    samples: OPUS_FRAME_SAMPLES as u32,
                }),
                Err(source) => {
                    result = Err(TranscodeError::Opus {
                        what: "encode",
                        source,
                    });
                }
            }
        }
        self.pending.drain(..consumed);
        debug_assert!(self.pending.len() < MAX_PENDING_SAMPLES * usize::from(self.channels));
        result
    }

    /// The dts the next frame should carry if the stream is continuous.
    fn expected_dts(&self) -> Option<u64> {
        let anchor = self.anchor_dts_ms?;
        Some(anchor.saturating_add(self.in_samples * 1000 / u64::from(self.sample_rate_in)))
    }

    /// Drops all buffered audio and codec state; the next frame starts a new timeline at its
    /// own dts (used automatically on a dts gap; call it when the publisher restarts).
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.resampler.reset();
        // A reset encoder state never fails with a valid encoder; if it did, the encoder
        // merely keeps its history, which is harmless.
        let _ = self.encoder.reset_state();
        self.pending.clear();
        self.anchor_dts_ms = None;
        self.in_samples = 0;
        self.out_samples = 0;
    }

    /// The AAC input sample rate in Hz (from the AudioSpecificConfig).
    pub fn sample_rate_in(&self) -> u32 {
        self.sample_rate_in
    }

    /// Channel count of both the AAC input and the Opus output (1 or 2).
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// The Opus target bitrate in bits per second.
    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }
}

#[cfg(test)]
mod tests;
