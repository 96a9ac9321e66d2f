//! [`OpusToAac`]: Opus packets (what WebRTC publishers send) in, raw AAC-LC frames out, for the
//! protocols that cannot carry Opus to the players people use (RTMP, FLV, MPEG-TS).
//!
//! Pipeline: libopus decoder (`opus` crate) at 48 kHz → Fraunhofer FDK AAC-LC encoder
//! (`fdk-aac`, which vendors and builds the FDK sources) at 48 kHz. No resampling: both run at
//! 48 kHz.
//!
//! Timeline: the first packet (and the first after a reset) anchors the output at its pts.
//! AAC frame `k` covers input samples `1024 k - delay ..`, where `delay` is the encoder's own
//! codec delay; frames made only of the encoder's priming are dropped, so the first frame out
//! starts at the anchor and audio stays aligned with video after the bridge.
//!
//! Loss: a forward jump of the input timeline up to [`MAX_CONCEAL_MS`] is filled with
//! libopus's packet-loss concealment, so the AAC timeline stays continuous and in sync with
//! the input; a longer jump, or a backward one beyond [`MAX_GAP_MS`], resets everything.

use bytes::Bytes;
use fdk_aac::enc::{AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport};

use crate::{AAC_FRAME_SAMPLES, MAX_CHANNELS, MAX_GAP_MS, MAX_OPUS_PACKET_BYTES, TranscodeError};

/// Output sample rate (the Opus decoder's and the AAC encoder's): no resampling.
const RATE: u64 = 48_000;
/// Longest Opus packet (RFC 6716: 120 ms) in samples per channel at 48 kHz
/// ([`media::opus::MAX_OPUS_PACKET_SAMPLES`] as a buffer length).
pub const MAX_OPUS_PACKET_SAMPLES: usize = media::opus::MAX_OPUS_PACKET_SAMPLES as usize;
/// The longest input gap concealed with libopus's PLC instead of resetting: lost packets on a
/// WebRTC path are short (tens of ms) and concealing keeps AAC continuous; beyond a second
/// the publisher paused and a new timeline is the truthful answer.
pub const MAX_CONCEAL_MS: u64 = 1_000;
/// Smallest forward jump (ms) treated as lost packets: below it the difference is timestamp
/// rounding (the input pts is in whole milliseconds).
pub const MIN_CONCEAL_MS: u64 = 10;
/// Samples per channel of one PLC step (libopus conceals in multiples of 2.5 ms).
const PLC_STEP: usize = 120;
/// AAC-LC bitrate for stereo output, bits per second (transparent for speech and music).
pub const AAC_BITRATE_STEREO: u32 = 128_000;
/// AAC-LC bitrate for mono output, bits per second.
pub const AAC_BITRATE_MONO: u32 = 64_000;
/// Output buffer for one AAC access unit: ISO/IEC 14496-3 caps a raw data block at 6144 bits
/// per channel (768 bytes), so two channels fit with room to spare.
const MAX_AAC_AU_BYTES: usize = 2 * 768 + 256;

/// One AAC-LC access unit (raw, no ADTS): 1024 samples per channel at 48 kHz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacFrame {
    /// The raw AAC frame, as an FLV `AACPacketType 1` body or an MP4 sample carries it.
    pub data: Bytes,
    /// Time of the frame's first sample on the input's millisecond timeline.
    pub pts_ms: u64,
}

/// One Opus → AAC-LC transcoder (one per WebRTC-published stream).
pub struct OpusToAac {
    decoder: opus::Decoder,
    encoder: Encoder,
    channels: u16,
    asc: Bytes,
    /// The encoder's codec delay, samples per channel.
    delay: u64,
    /// Input time of the first sample since the last reset.
    anchor_ms: Option<u64>,
    /// Samples per channel given to the encoder since the anchor (decoded or concealed).
    in_samples: u64,
    /// AAC frames the encoder produced since the anchor (priming included).
    out_frames: u64,
    /// Scratch for one decoded packet, interleaved.
    pcm: Vec<i16>,
    /// Interleaved samples waiting for a whole AAC frame.
    pending: Vec<i16>,
    au: Vec<u8>,
    corrupt: u64,
}

impl std::fmt::Debug for OpusToAac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusToAac")
            .field("channels", &self.channels)
            .field("delay", &self.delay)
            .field("anchor_ms", &self.anchor_ms)
            .field("in_samples", &self.in_samples)
            .field("out_frames", &self.out_frames)
            .finish_non_exhaustive()
    }
}

fn aac_error(what: &'static str) -> impl FnOnce(fdk_aac::enc::EncoderError) -> TranscodeError {
    move |e| TranscodeError::AacEncoder {
        what,
        reason: e.to_string(),
    }
}

fn new_encoder(channels: u16) -> Result<Encoder, TranscodeError> {
    let (mode, bitrate) = if channels == 1 {
        (ChannelMode::Mono, AAC_BITRATE_MONO)
    } else {
        (ChannelMode::Stereo, AAC_BITRATE_STEREO)
    };
    Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(bitrate),
        sample_rate: RATE as u32,
        transport: Transport::Raw,
        channels: mode,
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(aac_error("open"))
}

impl OpusToAac {
    /// A transcoder for an Opus stream decoded to `channels` (1 or 2; RFC 7587 streams are
    /// always declared stereo and libopus up- or down-mixes what is coded) and encoded as
    /// AAC-LC 48 kHz with the same channel count.
    pub fn new(channels: u16) -> Result<OpusToAac, TranscodeError> {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(TranscodeError::UnsupportedChannels {
                channels: usize::from(channels),
            });
        }
        let opus_channels = if channels == 1 {
            opus::Channels::Mono
        } else {
            opus::Channels::Stereo
        };
        let decoder = opus::Decoder::new(RATE as u32, opus_channels).map_err(|source| {
            TranscodeError::Opus {
                what: "open decoder",
                source,
            }
        })?;
        let encoder = new_encoder(channels)?;
        let info = encoder.info().map_err(aac_error("info"))?;
        let conf_len = usize::try_from(info.confSize).unwrap_or(0);
        let asc = Bytes::copy_from_slice(info.confBuf.get(..conf_len).unwrap_or_default());
        if asc.len() < 2 || usize::try_from(info.frameLength).ok() != Some(AAC_FRAME_SAMPLES) {
            return Err(TranscodeError::AacEncoder {
                what: "info",
                reason: format!(
                    "unexpected config ({} bytes) or frame length {}",
                    asc.len(),
                    info.frameLength
                ),
            });
        }
        let ch = usize::from(channels);
        Ok(OpusToAac {
            decoder,
            encoder,
            channels,
            asc,
            delay: u64::from(info.nDelay),
            anchor_ms: None,
            in_samples: 0,
            out_frames: 0,
            pcm: vec![0; MAX_OPUS_PACKET_SAMPLES * ch],
            pending: Vec::with_capacity(2 * AAC_FRAME_SAMPLES * ch),
            au: vec![0; MAX_AAC_AU_BYTES],
            corrupt: 0,
        })
    }

    /// The AudioSpecificConfig to send as the AAC sequence header.
    pub fn audio_specific_config(&self) -> Bytes {
        self.asc.clone()
    }

    /// Packets libopus could not decode (each replaced by 20 ms of concealment).
    pub fn corrupt_packets(&self) -> u64 {
        self.corrupt
    }

    /// Output channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Decodes one Opus packet whose first sample plays at `pts_ms` and returns the AAC frames
    /// completed. A forward gap in the input timeline is concealed (up to [`MAX_CONCEAL_MS`]);
    /// larger gaps, or going back more than [`MAX_GAP_MS`], re-anchor the timeline. A packet
    /// libopus cannot decode is concealed (20 ms) and counted in [`Self::corrupt_packets`];
    /// empty or oversized packets are errors and change nothing.
    pub fn push(&mut self, packet: &[u8], pts_ms: u64) -> Result<Vec<AacFrame>, TranscodeError> {
        if packet.is_empty() {
            return Err(TranscodeError::EmptyFrame { dts_ms: pts_ms });
        }
        if packet.len() > MAX_OPUS_PACKET_BYTES {
            return Err(TranscodeError::FrameTooLarge {
                len: packet.len(),
                max: MAX_OPUS_PACKET_BYTES,
                dts_ms: pts_ms,
            });
        }
        let mut out = Vec::new();
        if let Some(expected) = self.expected_ms() {
            if pts_ms + MAX_GAP_MS < expected || pts_ms > expected + MAX_CONCEAL_MS {
                self.reset()?;
            } else if pts_ms >= expected + MIN_CONCEAL_MS {
                let missing = (pts_ms - expected) * RATE / 1000;
                self.conceal(usize::try_from(missing).unwrap_or(0), &mut out)?;
            }
        }
        self.anchor_ms.get_or_insert(pts_ms);
        let ch = usize::from(self.channels);
        let decoded = match self.decoder.decode(packet, &mut self.pcm, false) {
            Ok(n) => n,
            Err(_) => {
                // Conceal one 20 ms frame in its place so timing stays continuous.
                self.corrupt += 1;
                self.conceal(960, &mut out)?;
                return Ok(out);
            }
        };
        let samples = self.pcm.get(..decoded * ch).unwrap_or_default();
        self.pending.extend_from_slice(samples);
        self.in_samples += decoded as u64;
        self.encode_pending(&mut out)?;
        Ok(out)
    }

    /// Fills `samples` per channel with libopus's concealment and encodes what completes.
    fn conceal(&mut self, samples: usize, out: &mut Vec<AacFrame>) -> Result<(), TranscodeError> {
        let ch = usize::from(self.channels);
        let mut left = samples - samples % PLC_STEP;
        while left > 0 {
            let step = left.min(960);
            let buf = self.pcm.get_mut(..step * ch).unwrap_or_default();
            let n =
                self.decoder
                    .decode(&[], buf, false)
                    .map_err(|source| TranscodeError::Opus {
                        what: "conceal",
                        source,
                    })?;
            self.pending
                .extend_from_slice(self.pcm.get(..n * ch).unwrap_or_default());
            self.in_samples += n as u64;
            left -= step;
            self.encode_pending(out)?;
        }
        Ok(())
    }

    /// Encodes every whole AAC frame in `pending`.
    fn encode_pending(&mut self, out: &mut Vec<AacFrame>) -> Result<(), TranscodeError> {
        let frame_len = AAC_FRAME_SAMPLES * usize::from(self.channels);
        let anchor = self.anchor_ms.unwrap_or(0);
        while let Some(frame) = self.pending.get(..frame_len) {
            let info = self
                .encoder
                .encode(frame, &mut self.au)
                .map_err(aac_error("encode"))?;
            let consumed = info.input_consumed.min(frame_len);
            self.pending.drain(..consumed);
            if info.output_size > 0 {
                let k = self.out_frames;
                self.out_frames += 1;
                let first = k * AAC_FRAME_SAMPLES as u64;
                // Frames made only of the encoder's priming carry no input sample.
                if first + AAC_FRAME_SAMPLES as u64 > self.delay {
                    let at = first.saturating_sub(self.delay);
                    out.push(AacFrame {
                        data: Bytes::copy_from_slice(
                            self.au.get(..info.output_size).unwrap_or_default(),
                        ),
                        pts_ms: anchor + at * 1000 / RATE,
                    });
                }
            }
            if consumed == 0 {
                // The encoder took nothing: never spin; the samples wait for the next push.
                break;
            }
        }
        Ok(())
    }

    /// The pts the next packet should carry if the stream is continuous.
    fn expected_ms(&self) -> Option<u64> {
        Some(self.anchor_ms? + self.in_samples * 1000 / RATE)
    }

    /// Drops all buffered audio and codec state; the next packet starts a new timeline at its
    /// own pts (done automatically on a large gap; call it when the publisher restarts).
    pub fn reset(&mut self) -> Result<(), TranscodeError> {
        self.decoder
            .reset_state()
            .map_err(|source| TranscodeError::Opus {
                what: "reset decoder",
                source,
            })?;
        self.encoder = new_encoder(self.channels)?;
        self.pending.clear();
        self.anchor_ms = None;
        self.in_samples = 0;
        self.out_frames = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms Opus packets of a 440 Hz tone (stereo).
    fn tone(packets: usize) -> Vec<Vec<u8>> {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        let mut out = Vec::new();
        let mut t = 0usize;
        for _ in 0..packets {
            let mut pcm = Vec::with_capacity(1920);
            for _ in 0..960 {
                let v =
                    (f32::sin(t as f32 * 440.0 * std::f32::consts::TAU / 48_000.0) * 8000.0) as i16;
                pcm.extend_from_slice(&[v, v]);
                t += 1;
            }
            let mut buf = vec![0; 1500];
            let n = enc.encode(&pcm, &mut buf).unwrap();
            buf.truncate(n);
            out.push(buf);
        }
        out
    }

    #[test]
    fn asc_says_aac_lc_48k_stereo_and_mono() {
        let t = OpusToAac::new(2).unwrap();
        // AOT 2 (5 bits) | freq index 3 (4 bits) | channel config 2 (4 bits) | 000.
        assert_eq!(&t.audio_specific_config()[..2], &[0x11, 0x90]);
        let m = OpusToAac::new(1).unwrap();
        assert_eq!(&m.audio_specific_config()[..2], &[0x11, 0x88]);
        assert!(matches!(
            OpusToAac::new(3),
            Err(TranscodeError::UnsupportedChannels { channels: 3 })
        ));
    }

    #[test]
    fn continuous_input_gives_contiguous_frames_from_the_anchor() {
        let mut t = OpusToAac::new(2).unwrap();
        let mut frames = Vec::new();
        for (i, p) in tone(150).iter().enumerate() {
            frames.extend(t.push(p, 10_000 + 20 * i as u64).unwrap());
        }
        // 3 s of input: every whole frame minus what the codec delay still holds.
        let produced = 150 * 960 / 1024;
        assert!(
            frames.len() + 4 >= produced && frames.len() <= produced,
            "{}",
            frames.len()
        );
        assert_eq!(frames[0].pts_ms, 10_000);
        for w in frames.windows(2) {
            let d = w[1].pts_ms - w[0].pts_ms;
            assert!((21..=22).contains(&d), "step {d}");
        }
        assert!(
            frames
                .iter()
                .all(|f| !f.data.is_empty() && f.data.len() <= MAX_AAC_AU_BYTES)
        );
        // CBR 128 kb/s at 46.875 frames/s: about 341 bytes per frame on average.
        let mean = frames.iter().map(|f| f.data.len()).sum::<usize>() / frames.len();
        assert!((300..=400).contains(&mean), "mean {mean}");

        // Another decoder hears the same tone: 440 Hz is 880 zero crossings a second.
        let pcm = decode_aac(&t.audio_specific_config(), &frames);
        let left: Vec<f32> = pcm.iter().step_by(2).copied().skip(4096).collect();
        let crossings = left
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let secs = left.len() as f64 / 48_000.0;
        let hz = crossings as f64 / secs / 2.0;
        assert!((435.0..=445.0).contains(&hz), "tone at {hz} Hz");
        let peak = left.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!((0.2..=0.3).contains(&peak), "peak {peak}");
    }

    /// Decodes raw AAC frames with symphonia (an independent decoder), interleaved f32.
    fn decode_aac(asc: &[u8], frames: &[AacFrame]) -> Vec<f32> {
        use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
        use symphonia::core::codecs::audio::{
            AudioCodecParameters, AudioDecoder, AudioDecoderOptions,
        };
        use symphonia::core::packet::PacketRef;
        use symphonia::core::units::{Duration, Timestamp};
        use symphonia::default::codecs::AacDecoder;
        let mut params = AudioCodecParameters::new();
        params
            .for_codec(CODEC_ID_AAC)
            .with_extra_data(asc.to_vec().into_boxed_slice());
        let mut dec = AacDecoder::try_new(&params, &AudioDecoderOptions::default()).unwrap();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for f in frames {
            let p = PacketRef::new(0, Timestamp::from(0i64), Duration::from(1024u64), &f.data);
            dec.decode_ref(&p)
                .unwrap()
                .copy_to_vec_interleaved(&mut buf);
            out.extend_from_slice(&buf);
        }
        out
    }

    #[test]
    fn lost_packets_are_concealed_and_time_stays_aligned() {
        let mut t = OpusToAac::new(2).unwrap();
        let mut frames = Vec::new();
        for (i, p) in tone(100).iter().enumerate() {
            // Packets 40..45 are lost (100 ms).
            if (40..45).contains(&i) {
                continue;
            }
            frames.extend(t.push(p, 20 * i as u64).unwrap());
        }
        for w in frames.windows(2) {
            let d = w[1].pts_ms - w[0].pts_ms;
            assert!((21..=22).contains(&d), "step {d} at {}", w[0].pts_ms);
        }
        // The full 2 s were encoded: no sample of time went missing.
        assert!(frames.len() >= 2000 / 22 - 4, "{}", frames.len());
    }

    #[test]
    fn big_jumps_reset_the_timeline() {
        let mut t = OpusToAac::new(2).unwrap();
        let packets = tone(120);
        let mut frames = Vec::new();
        for (i, p) in packets.iter().take(60).enumerate() {
            frames.extend(t.push(p, 20 * i as u64).unwrap());
        }
        let before = frames.len();
        for (i, p) in packets.iter().skip(60).enumerate() {
            frames.extend(t.push(p, 50_000 + 20 * i as u64).unwrap());
        }
        let after = &frames[before..];
        assert_eq!(after[0].pts_ms, 50_000);
        assert!(frames[..before].iter().all(|f| f.pts_ms < 1_300));
        // And backwards (a publisher restarting its clock).
        let mut back = Vec::new();
        for (i, p) in packets.iter().take(60).enumerate() {
            back.extend(t.push(p, 100 + 20 * i as u64).unwrap());
        }
        assert_eq!(back[0].pts_ms, 100);
    }

    #[test]
    fn hostile_packets_are_errors_not_panics() {
        let mut t = OpusToAac::new(2).unwrap();
        assert!(matches!(
            t.push(&[], 0),
            Err(TranscodeError::EmptyFrame { .. })
        ));
        assert!(matches!(
            t.push(&[0u8; 1501], 0),
            Err(TranscodeError::FrameTooLarge { .. })
        ));
        let mut state = 0x1234_5678u32;
        for i in 0..500u64 {
            let len = 1 + (state % 200) as usize;
            let p: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = t.push(&p, i * 20);
        }
        // Still works after all that.
        let mut ok = Vec::new();
        for (i, p) in tone(60).iter().enumerate() {
            ok.extend(t.push(p, 10_000 + 20 * i as u64).unwrap());
        }
        assert!(!ok.is_empty());
    }
}
