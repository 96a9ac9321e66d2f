//! `[srt]`: the SRT listener (MPEG-TS over SRT in live mode: OBS, vMix, ffmpeg, hardware
//! encoders publish; players read with `m=request`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Shortest and longest SRT passphrase (the protocol's bounds).
pub const PASSPHRASE_LEN: std::ops::RangeInclusive<usize> = 10..=79;
/// Longest latency that may be configured: beyond this SRT's buffers and a viewer's delay
/// grow without helping any real link.
pub const MAX_LATENCY_MS: u64 = 10_000;
/// Most SRT connections the listener keeps at once (`srt.max_connections` is capped here).
pub const MAX_SRT_CONNECTIONS_CEILING: usize = 100_000;

/// Encryption of the SRT connections of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SrtEncryption {
    /// The passphrase callers of this app must use (10 to 79 characters).
    pub passphrase: String,
    /// AES key length in bytes: 16 (AES-128), 24 (AES-192) or 32 (AES-256); 0 takes the
    /// caller's (`pbkeylen`).
    #[serde(default)]
    pub key_length: u16,
}

/// `[srt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SrtConfig {
    /// Bind the SRT listener.
    pub enabled: bool,
    /// UDP address of the listener.
    pub listen: SocketAddr,
    /// SRT latency (ms) asked of every connection (each side uses the larger of both):
    /// the time SRT has to retransmit a lost packet before the receiver plays on. 120 ms is
    /// the protocol's default and covers about four round trips on a 30 ms path; raise it on
    /// long or lossy links.
    pub latency_ms: u64,
    /// Per app (`live`), the passphrase its callers must use; apps not listed are
    /// unencrypted. `SLUICE_SRT_ENCRYPTION='{ live = { passphrase = "...", key_length = 32 } }'`
    /// sets it from the environment.
    pub encryption: BTreeMap<String, SrtEncryption>,
    /// Most SRT connections at once (publishers and players); beyond it a caller is
    /// rejected in the handshake.
    pub max_connections: usize,
}

impl Default for SrtConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8890)),
            latency_ms: 120,
            encryption: BTreeMap::new(),
            max_connections: 1000,
        }
    }
}

impl SrtConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: String| Err(ConfigError(format!("srt.{key}: {why}")));
        if !(20..=MAX_LATENCY_MS).contains(&self.latency_ms) {
            return bad(
                "latency_ms",
                format!("must be between 20 and {MAX_LATENCY_MS}"),
            );
        }
        if !(1..=MAX_SRT_CONNECTIONS_CEILING).contains(&self.max_connections) {
            return bad(
                "max_connections",
                format!("must be between 1 and {MAX_SRT_CONNECTIONS_CEILING}"),
            );
        }
        for (app, e) in &self.encryption {
            if !PASSPHRASE_LEN.contains(&e.passphrase.chars().count()) {
                return bad(
                    &format!("encryption.{app}.passphrase"),
                    "must be 10 to 79 characters".to_owned(),
                );
            }
            if ![0, 16, 24, 32].contains(&e.key_length) {
                return bad(
                    &format!("encryption.{app}.key_length"),
                    "must be 16, 24, 32 or 0 (the caller's)".to_owned(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        assert!(SrtConfig::default().validate().is_ok());
        let mut c = SrtConfig::default();
        c.encryption.insert(
            "live".into(),
            SrtEncryption {
                passphrase: "short".into(),
                key_length: 16,
            },
        );
        let e = c.validate().unwrap_err().0;
        assert!(e.contains("srt.encryption.live.passphrase"), "{e}");
        c.encryption.get_mut("live").unwrap().passphrase = "long enough pass".into();
        c.encryption.get_mut("live").unwrap().key_length = 20;
        assert!(c.validate().unwrap_err().0.contains("key_length"));
        let c = SrtConfig {
            latency_ms: 5,
            ..SrtConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("srt.latency_ms"));
    }
}
