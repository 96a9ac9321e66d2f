//! `[cluster]` configuration and its validation.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Shortest `cluster.secret`: the relay's only credential between nodes, so it must not be
/// guessable (16 bytes of a random string).
pub const MIN_CLUSTER_SECRET_LEN: usize = 16;
/// Shortest `cluster.heartbeat_ms`: more often only loads Redis (every node writes its record
/// and refreshes each stream it owns once per heartbeat).
pub const MIN_CLUSTER_HEARTBEAT_MS: u64 = 100;
/// Longest `cluster.heartbeat_ms` / `cluster.expiry_ms`: beyond a minute a dead node keeps
/// its streams for too long to be of use.
pub const MAX_CLUSTER_EXPIRY_MS: u64 = 60_000;
/// Longest `cluster.node_id` and `cluster.key_prefix`, in bytes (they go into every key).
pub const MAX_CLUSTER_NAME_LEN: usize = 128;

/// `[cluster]`: several Sluice nodes sharing one Redis (or Valkey). Off while `redis_url` is
/// empty: then no Redis connection is made and nothing else changes.
///
/// Each node keeps a record in Redis that expires after `expiry_ms` unless refreshed (every
/// `heartbeat_ms`); each live stream has an owner record (the node its publisher is on) with
/// an epoch counter that fences a stale owner. A player on a node that does not have the
/// stream makes that node pull it from the owner over an internal HTTP relay authenticated
/// by `secret`, at `advertise`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`); empty: clustering is off.
    pub redis_url: String,
    /// This node's name in the registry; empty: the host name (unique per machine, stable
    /// across restarts, which is what a StatefulSet's pod name gives too).
    pub node_id: String,
    /// `host:port` where other nodes reach this node's HTTP listener (the relay); empty: the
    /// HTTP listen address, which must then be a specific address (not 0.0.0.0).
    pub advertise: String,
    /// Shared secret every node presents to pull a stream from another (`Authorization:
    /// Bearer`), compared in constant time; required when clustering is on. Never logged.
    pub secret: String,
    /// Time (ms) between two refreshes of this node's record and of its streams' owner
    /// records: about a second keeps failover detection within the expiry below.
    pub heartbeat_ms: u64,
    /// Life (ms) of a node or owner record that is not refreshed: three heartbeats, so one
    /// lost refresh does not drop a node, and a dead owner's streams free up within 3 s.
    pub expiry_ms: u64,
    /// Prefix of every Redis key, so several clusters (or other software) can share a Redis.
    pub key_prefix: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            node_id: String::new(),
            advertise: String::new(),
            secret: String::new(),
            heartbeat_ms: 1_000,
            expiry_ms: 3_000,
            key_prefix: "sluice".to_owned(),
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ClusterConfig")
            // The URL may carry a password.
            .field("redis_url", &redacted(&self.redis_url))
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .field("secret", &redacted(&self.secret))
            .field("heartbeat_ms", &self.heartbeat_ms)
            .field("expiry_ms", &self.expiry_ms)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

impl ClusterConfig {
    /// True when clustering is on (`redis_url` is set).
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// Checks every key, naming the bad one (`cluster.secret: ...`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("cluster.{key}: {why}")));
        if !self.enabled() {
            return Ok(());
        }
        if !(self.redis_url.starts_with("redis://") || self.redis_url.starts_with("rediss://")) {
            return bad("redis_url", "must start with redis:// or rediss://");
        }
        if self.secret.len() < MIN_CLUSTER_SECRET_LEN {
            return bad(
                "secret",
                "must be set, at least 16 bytes, when clustering is on",
            );
        }
        let name_ok = |s: &str| {
            s.len() <= MAX_CLUSTER_NAME_LEN
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if !name_ok(&self.node_id) {
            return bad(
                "node_id",
                "at most 128 of letters, digits, '-', '.' and '_'",
            );
        }
        if self.key_prefix.is_empty() || !name_ok(&self.key_prefix) {
            return bad(
                "key_prefix",
                "1 to 128 of letters, digits, '-', '.' and '_'",
            );
        }
        // An empty `advertise` with a wildcard `http.listen` is refused when the cluster
        // starts (flags may still set the listen address after the file is loaded).
        if !self.advertise.is_empty() {
            let ok = self.advertise.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
            }) && !self.advertise.contains(['/', ' ', '@']);
            if !ok {
                return bad("advertise", "must be host:port (no scheme or path)");
            }
        }
        if !(MIN_CLUSTER_HEARTBEAT_MS..=MAX_CLUSTER_EXPIRY_MS).contains(&self.heartbeat_ms) {
            return bad("heartbeat_ms", "must be between 100 and 60000");
        }
        if self.expiry_ms < 2 * self.heartbeat_ms || self.expiry_ms > MAX_CLUSTER_EXPIRY_MS {
            return bad(
                "expiry_ms",
                "must be at least twice heartbeat_ms and at most 60000",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> ClusterConfig {
        ClusterConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            secret: "0123456789abcdef".into(),
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn off_by_default_and_then_anything_goes() {
        assert!(!ClusterConfig::default().enabled());
        assert!(ClusterConfig::default().validate().is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let check = |f: fn(&mut ClusterConfig), key: &str| {
            let mut c = on();
            f(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        };
        assert!(on().validate().is_ok());
        check(|c| c.redis_url = "http://x".into(), "cluster.redis_url");
        check(|c| c.secret = "short".into(), "cluster.secret");
        check(|c| c.node_id = "a b".into(), "cluster.node_id");
        check(|c| c.key_prefix = String::new(), "cluster.key_prefix");
        check(|c| c.advertise = "http://x:1".into(), "cluster.advertise");
        check(|c| c.advertise = "x:0".into(), "cluster.advertise");
        check(|c| c.heartbeat_ms = 10, "cluster.heartbeat_ms");
        check(|c| c.expiry_ms = 1500, "cluster.expiry_ms");
        let mut c = on();
        c.advertise = "10.0.0.5:8080".into();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn debug_hides_credentials() {
        let mut c = on();
        c.redis_url = "redis://:hunter2@db:6379".into();
        let s = format!("{c:?}");
        assert!(
            !s.contains("hunter2") && !s.contains("0123456789abcdef"),
            "{s}"
        );
    }
}
