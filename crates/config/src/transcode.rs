//! `[transcode]`: the adaptive-bitrate ladder. Streams of the listed apps get renditions
//! (`{stream}_{name}`, each a stream of its own) encoded by one supervised ffmpeg child per
//! source stream.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Most rungs in a ladder (each is one encoder in the source's ffmpeg child).
pub const MAX_RUNGS: usize = 8;
/// Longest back-off between restarts of a failing ffmpeg child (ms).
pub const MAX_RESTART_BACKOFF_MS: u64 = 60_000;

/// One rendition of the ladder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Its name: the rendition is the stream `{stream}_{name}` (letters, digits, `-`).
    pub name: String,
    /// Output height in pixels (the width follows the source's aspect ratio). Rungs at or
    /// above the source's height are skipped: a ladder never upscales.
    pub height: u32,
    /// Video bit rate in kbit/s (also the rate cap; the buffer is two seconds of it).
    pub video_kbps: u32,
    /// Extra ffmpeg output options for this rung's encoder (e.g. `["-profile:v", "main"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encoder_options: Vec<String>,
}

/// `[transcode]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranscodeConfig {
    /// Apps whose streams get the ladder, started when the stream is published; empty: off.
    pub apps: Vec<String>,
    /// The ffmpeg binary.
    pub ffmpeg: String,
    /// Video encoder (`libx264`, or a hardware H.264 encoder ffmpeg has: `h264_nvenc`,
    /// `h264_vaapi`, `h264_qsv`).
    pub encoder: String,
    /// Encoder preset (libx264's speed/quality trade: `veryfast` keeps four rungs of 720p
    /// and below within about one core).
    pub preset: String,
    /// First wait before restarting a child that died (ms); doubled after each failure up to
    /// [`MAX_RESTART_BACKOFF_MS`], reset once a child ran for a minute.
    pub restart_backoff_ms: u64,
    /// The rungs, highest first.
    pub ladder: Vec<Rung>,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        let rung = |name: &str, height, video_kbps| Rung {
            name: name.to_owned(),
            height,
            video_kbps,
            encoder_options: Vec::new(),
        };
        Self {
            apps: Vec::new(),
            ffmpeg: "ffmpeg".to_owned(),
            encoder: "libx264".to_owned(),
            preset: "veryfast".to_owned(),
            restart_backoff_ms: 1_000,
            ladder: vec![
                rung("720p", 720, 2_500),
                rung("480p", 480, 1_200),
                rung("360p", 360, 700),
                rung("240p", 240, 400),
            ],
        }
    }
}

impl TranscodeConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("transcode.{key}: {why}")));
        if self.ladder.len() > MAX_RUNGS {
            return bad("ladder", "at most 8 rungs");
        }
        if !(100..=MAX_RESTART_BACKOFF_MS).contains(&self.restart_backoff_ms) {
            return bad("restart_backoff_ms", "must be between 100 and 60000");
        }
        if !self.apps.is_empty() && self.ladder.is_empty() {
            return bad("ladder", "apps are listed but the ladder is empty");
        }
        let word = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        for (i, r) in self.ladder.iter().enumerate() {
            if !word(&r.name) {
                return bad("ladder.name", "1-32 letters, digits or '-'");
            }
            if self.ladder[..i].iter().any(|o| o.name == r.name) {
                return bad("ladder.name", "rung names must differ");
            }
            if !(16..=4320).contains(&r.height) || r.height % 2 != 0 {
                return bad("ladder.height", "an even number between 16 and 4320");
            }
            if !(50..=100_000).contains(&r.video_kbps) {
                return bad("ladder.video_kbps", "between 50 and 100000");
            }
        }
        if !word(&self.encoder.replace('_', "-")) || !word(&self.preset) {
            return bad(
                "encoder",
                "encoder and preset are ffmpeg names (letters, digits, '_', '-')",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_rungs_are_named() {
        assert!(TranscodeConfig::default().validate().is_ok());
        let mut c = TranscodeConfig::default();
        c.ladder[1].name = "720p".into();
        assert!(c.validate().unwrap_err().0.contains("differ"));
        let mut c = TranscodeConfig::default();
        c.ladder[0].height = 721;
        assert!(c.validate().unwrap_err().0.contains("ladder.height"));
        let c = TranscodeConfig {
            apps: vec!["live".into()],
            ladder: Vec::new(),
            ..TranscodeConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
