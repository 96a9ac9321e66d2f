//! A small streaming polyphase resampler (windowed-sinc FIR, Blackman window) for interleaved
//! `f32` audio at a fixed rational ratio, e.g. 44.1 kHz → 48 kHz (160/147).
//!
//! Why our own rather than `rubato`: the job is one fixed ratio between two known rates, mono or
//! stereo, driven by push-style chunks of 1024 frames. That is ~150 lines with an exact rational
//! phase (no drift, no floating-point position), a filter bank precomputed once, and an exact
//! time alignment: output frame `n` is the input signal evaluated at input time
//! `n * from / to`, so resampling adds no timestamp offset (it only holds back
//! `taps / 2` input frames until their right-hand neighbours arrive).
//!
//! Filter: `taps` coefficients per phase (48 for up-sampling, scaled by the ratio when
//! down-sampling), cut-off at [`ROLLOFF`] × the lower Nyquist frequency, Blackman window
//! (≈ −74 dB side lobes), every phase normalised to unity DC gain.

use crate::TranscodeError;

/// Coefficients per phase when up-sampling; transition band ≈ 5.5 / taps of the input rate.
pub const BASE_TAPS: usize = 48;
/// Cut-off as a fraction of the lower of the two Nyquist frequencies.
pub const ROLLOFF: f64 = 0.94;
/// Largest filter bank (phases × taps) a resampler may allocate. The worst standard AAC rate,
/// 11 025 Hz → 48 kHz, needs 640 phases × 48 taps = 30 720.
pub const MAX_RESAMPLER_COEFFS: usize = 65_536;

/// Streaming resampler state for one stream (all channels).
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Interleaved channels.
    channels: usize,
    /// Interpolation factor L (output rate / gcd).
    up: usize,
    /// Decimation factor M (input rate / gcd).
    down: usize,
    /// Coefficients per phase.
    taps: usize,
    /// `up` phases of `taps` coefficients each, phase-major.
    bank: Vec<f32>,
    /// Interleaved input frames not yet fully consumed; starts with `taps / 2 - 1` zero frames.
    buf: Vec<f32>,
    /// Frame index in `buf` of the first tap of the next output frame.
    start: usize,
    /// Phase (0..up) of the next output frame.
    phase: usize,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Blackman window on [-1, 1] (zero at both ends).
fn blackman(x: f64) -> f64 {
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let a = std::f64::consts::PI * x;
    0.42 + 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let a = std::f64::consts::PI * x;
        a.sin() / a
    }
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz for `channels` interleaved channels (1..=2 in this
    /// crate, any non-zero count works). Equal rates give a pass-through.
    pub fn new(from: u32, to: u32, channels: usize) -> Result<Resampler, TranscodeError> {
        let too_large = || TranscodeError::ResamplerTooLarge { from, to };
        if from == 0 || to == 0 || channels == 0 {
            return Err(too_large());
        }
        let g = gcd(u64::from(from), u64::from(to));
        let up = usize::try_from(u64::from(to) / g).map_err(|_| too_large())?;
        let down = usize::try_from(u64::from(from) / g).map_err(|_| too_large())?;
        if up == 1 && down == 1 {
            return Ok(Resampler {
                channels,
                up,
                down,
                taps: 1,
                bank: vec![1.0],
                buf: Vec::new(),
                start: 0,
                phase: 0,
            });
        }
        // Down-sampling widens the filter in input samples by the ratio.
        let mut taps = if down > up {
            BASE_TAPS.saturating_mul(down).div_ceil(up)
        } else {
            BASE_TAPS
        };
        taps += taps % 2;
        if up.saturating_mul(taps) > MAX_RESAMPLER_COEFFS {
            return Err(too_large());
        }
        // Cut-off in cycles per input sample.
        let cutoff = 0.5 * ROLLOFF * (up as f64 / down as f64).min(1.0);
        let half = (taps / 2) as f64;
        let mut bank = Vec::with_capacity(up * taps);
        for p in 0..up {
            let frac = p as f64 / up as f64;
            let first = bank.len();
            for k in 0..taps {
                // Distance from the output instant to tap k's input frame.
                let t = frac + (half - 1.0) - k as f64;
                bank.push((sinc(2.0 * cutoff * t) * blackman(t / half)) as f32);
            }
            let phase = bank.get_mut(first..).unwrap_or_default();
            let sum: f32 = phase.iter().sum();
            if sum.abs() > f32::EPSILON {
                phase.iter_mut().for_each(|c| *c /= sum);
            }
        }
        let mut r = Resampler {
            channels,
            up,
            down,
            taps,
            bank,
            buf: Vec::new(),
            start: 0,
            phase: 0,
        };
        r.reset();
        Ok(r)
    }

    /// True when input and output rates are equal (samples are copied through untouched).
    pub fn is_passthrough(&self) -> bool {
        self.up == 1 && self.down == 1
    }

    /// Input frames held back (the filter's right half) before they can be output.
    pub fn delay_frames(&self) -> usize {
        if self.is_passthrough() {
            0
        } else {
            self.taps / 2
        }
    }

    /// Forgets all buffered input: the next sample starts a new, time-aligned stream.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.phase = 0;
        if !self.is_passthrough() {
            // Zero history so output frame 0 is centred on input frame 0.
            self.buf.resize((self.taps / 2 - 1) * self.channels, 0.0);
        }
    }

    /// Resamples interleaved `input` (a whole number of frames; a trailing partial frame is
    /// ignored) and appends every output frame now computable to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let ch = self.channels;
        let whole = input.len() - input.len() % ch;
        let input = input.get(..whole).unwrap_or_default();
        if self.is_passthrough() {
            out.extend_from_slice(input);
            return;
        }
        self.buf.extend_from_slice(input);
        let frames = self.buf.len() / ch;
        let taps = self.taps;
        while self.start + taps <= frames {
            let window = self
                .buf
                .get(self.start * ch..(self.start + taps) * ch)
                .unwrap_or_default();
            let coeffs = self
                .bank
                .get(self.phase * taps..(self.phase + 1) * taps)
                .unwrap_or_default();
            match ch {
                1 => out.push(dot(window, coeffs)),
                2 => {
                    // Two frames per step (taps is even): four independent sums.
                    let (mut l0, mut r0, mut l1, mut r1) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
                    for (f, c) in window.chunks_exact(4).zip(coeffs.chunks_exact(2)) {
                        if let ([a0, b0, a1, b1], [c0, c1]) = (f, c) {
                            l0 += c0 * a0;
                            r0 += c0 * b0;
                            l1 += c1 * a1;
                            r1 += c1 * b1;
                        }
                    }
                    out.push(l0 + l1);
                    out.push(r0 + r1);
                }
                _ => {
                    for channel in 0..ch {
                        let v: f32 = window
                            .iter()
                            .skip(channel)
                            .step_by(ch)
                            .zip(coeffs)
                            .map(|(s, c)| s * c)
                            .sum();
                        out.push(v);
                    }
                }
            }
            self.phase += self.down;
            self.start += self.phase / self.up;
            self.phase %= self.up;
        }
        // Drop frames no future output can reach.
        let consumed = self.start.min(frames);
        self.buf.drain(..consumed * ch);
        self.start -= consumed;
    }
}

/// Dot product with four independent accumulators (breaks the add dependency chain).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f32 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a4.zip(b4) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f64, frames: usize, channels: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(frames * channels);
        for n in 0..frames {
            let s = (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin() * 0.5;
            for c in 0..channels {
                // Right channel at half amplitude so a channel swap would show.
                v.push(if c == 0 { s } else { s * 0.5 } as f32);
            }
        }
        v
    }

    /// Frequency from rising zero crossings over a steady-state stretch of one channel.
    fn frequency(samples: &[f32], channels: usize, channel: usize, rate: u32) -> f64 {
        let mono: Vec<f32> = samples
            .iter()
            .skip(channel)
            .step_by(channels)
            .copied()
            .collect();
        let mut first = None;
        let mut last = 0;
        let mut count = 0;
        for i in 1..mono.len() {
            if mono[i - 1] < 0.0 && mono[i] >= 0.0 {
                if first.is_none() {
                    first = Some(i);
                } else {
                    count += 1;
                }
                last = i;
            }
        }
        let first = first.expect("signal crosses zero");
        f64::from(count) * f64::from(rate) / (last - first) as f64
    }

    fn peak(samples: &[f32], channels: usize, channel: usize) -> f32 {
        samples
            .iter()
            .skip(channel)
            .step_by(channels)
            .fold(0.0f32, |m, s| m.max(s.abs()))
    }

    #[test]
    fn upsample_44100_to_48000_keeps_frequency_amplitude_and_length() {
        let mut r = Resampler::new(44_100, 48_000, 2).unwrap();
        assert_eq!((r.up, r.down), (160, 147));
        let input = sine(44_100, 1000.0, 44_100, 2);
        let mut out = Vec::new();
        for chunk in input.chunks(1024 * 2) {
            r.process(chunk, &mut out);
        }
        let frames = out.len() / 2;
        // 1 s in, 1 s out minus the held-back right half of the filter.
        let expected = 48_000 - r.delay_frames() * 48_000 / 44_100;
        assert!(frames.abs_diff(expected) <= 2, "{frames} vs {expected}");
        let steady = &out[2000 * 2..];
        let f = frequency(steady, 2, 0, 48_000);
        assert!((f - 1000.0).abs() < 1.0, "left {f} Hz");
        let f = frequency(steady, 2, 1, 48_000);
        assert!((f - 1000.0).abs() < 1.0, "right {f} Hz");
        assert!(
            (peak(steady, 2, 0) - 0.5).abs() < 0.01,
            "{}",
            peak(steady, 2, 0)
        );
        assert!((peak(steady, 2, 1) - 0.25).abs() < 0.01);
    }

    #[test]
    fn output_is_time_aligned_with_input() {
        // Output frame n must equal the input signal at time n / 48000 s.
        let mut r = Resampler::new(44_100, 48_000, 1).unwrap();
        let input = sine(44_100, 440.0, 8820, 1);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        for n in [1000usize, 2345, 4000, 7000] {
            let t = n as f64 / 48_000.0;
            let want = ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 0.5) as f32;
            assert!(
                (out[n] - want).abs() < 2e-3,
                "frame {n}: {} vs {want}",
                out[n]
            );
        }
    }

    #[test]
    fn chunking_does_not_change_output() {
        let input = sine(22_050, 700.0, 5000, 2);
        let mut whole = Vec::new();
        Resampler::new(22_050, 48_000, 2)
            .unwrap()
            .process(&input, &mut whole);
        let mut pieces = Vec::new();
        let mut r = Resampler::new(22_050, 48_000, 2).unwrap();
        for chunk in input.chunks(2 * 77) {
            r.process(chunk, &mut pieces);
        }
        assert_eq!(whole, pieces);
    }

    #[test]
    fn downsample_96000_rejects_content_above_new_nyquist() {
        let mut r = Resampler::new(96_000, 48_000, 1).unwrap();
        // 1 kHz passes, 30 kHz (would alias to 18 kHz) is removed.
        let mut out = Vec::new();
        r.process(&sine(96_000, 1000.0, 48_000, 1), &mut out);
        assert!((peak(&out[2000..], 1, 0) - 0.5).abs() < 0.01);
        let mut r = Resampler::new(96_000, 48_000, 1).unwrap();
        let mut out = Vec::new();
        r.process(&sine(96_000, 30_000.0, 48_000, 1), &mut out);
        assert!(
            peak(&out[2000..], 1, 0) < 0.005,
            "{}",
            peak(&out[2000..], 1, 0)
        );
    }

    #[test]
    fn passthrough_and_reset() {
        let mut r = Resampler::new(48_000, 48_000, 2).unwrap();
        assert!(r.is_passthrough());
        let input = sine(48_000, 1000.0, 100, 2);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        assert_eq!(out, input);

        let mut r = Resampler::new(44_100, 48_000, 1).unwrap();
        let mut a = Vec::new();
        r.process(&input, &mut a);
        r.reset();
        let mut b = Vec::new();
        r.process(&input, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn every_standard_aac_rate_fits_the_bank_limit() {
        for rate in media::aac::SAMPLE_RATES {
            let r = Resampler::new(rate, 48_000, 2).unwrap();
            assert!(r.bank.len() <= MAX_RESAMPLER_COEFFS);
        }
        assert!(matches!(
            Resampler::new(44_101, 48_000, 2),
            Err(TranscodeError::ResamplerTooLarge { .. })
        ));
        assert!(Resampler::new(0, 48_000, 2).is_err());
    }
}
