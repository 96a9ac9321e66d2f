//! Clustering on Redis: several Sluice nodes share one Redis (or Valkey); a stream published
//! on any node can be watched on every node, over every protocol.
//!
//! Three parts, all started by [`Cluster::start`] when `[cluster]` has a `redis_url`:
//!
//! - **Registry** ([`registry`]): this node's record (`<prefix>:node:<id>`, JSON, expiring
//!   after `expiry_ms` unless refreshed every `heartbeat_ms`), and an owner record per stream
//!   whose publisher is here (`<prefix>:owner:<key>` = `"<node> <epoch> <advertise>"`, same
//!   expiry). A claim takes a new epoch from `<prefix>:epoch:<key>` (`INCR`, never reused),
//!   atomically with the owner record (a Lua script). The epoch fences a stale owner: each
//!   refresh succeeds only while the record still holds this node's claim, and a relay
//!   request names the epoch it looked up, which the owner checks. It is one more consumer
//!   of hub events: a publish claims at once, an unpublish releases, and a periodic pass
//!   resynchronises from the hub. A Redis outage is logged and retried with back-off; it
//!   never touches a stream that is flowing.
//! - **Relay, serving side** ([`serve`]): `GET /_cluster/relay/{app}/{stream}?epoch=N` on
//!   the HTTP listener, `Authorization: Bearer <cluster.secret>` compared in constant time;
//!   the body carries the hub's frames as published ([`relay`] framing): metadata, sequence
//!   headers and the GOP cache first, then live frames.
//! - **Relay, pulling side** ([`pull`]): a play of a stream the local hub does not have
//!   (decided once, in [`control::Control::authorize`], through [`control::RemoteStreams`])
//!   looks the owner up and pulls the stream into the local hub as an ingest of protocol
//!   [`RELAY_PROTOCOL`], one upstream connection per stream per node whatever the number of
//!   local viewers. Every egress then serves it. The pull stops when the stream ends upstream
//!   or has had no local viewer for [`PULL_IDLE`].
#![forbid(unsafe_code)]

pub mod pull;
pub mod registry;
pub mod serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use control::{Control, StatusSource};

/// The protocol label of a stream pulled from another node (sessions, hub publisher info).
/// Streams with this publisher are never claimed: their owner is elsewhere.
pub const RELAY_PROTOCOL: &str = "relay";

/// How long a pulled stream stays pulled with no local viewer (a player that reconnects, an
/// HLS muxer between requests, keeps it).
pub const PULL_IDLE: Duration = Duration::from_secs(5);

/// Errors of the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration does not let the cluster start; the message names the key.
    #[error("{0}")]
    Config(String),
    /// The Redis URL does not parse.
    #[error("cluster.redis_url: {0}")]
    RedisUrl(String),
    /// A Redis command failed or timed out.
    #[error("redis: {0}")]
    Redis(String),
    /// The relay connection failed.
    #[error("relay: {0}")]
    Relay(String),
}

/// Figures of the cluster, for `/metrics` and `GET /api/v1/server`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Relay connections this node opened to pull a stream (edge side), ever.
    pub pulls_total: AtomicU64,
    /// Relay connections this node has open to pull streams now.
    pub pulls_active: AtomicU64,
    /// Relay connections this node served (owner side), ever.
    pub served_total: AtomicU64,
    /// Relay connections this node serves now.
    pub served_active: AtomicU64,
    /// Bytes sent on served relay connections (counted in the node record's egress).
    pub served_bytes_total: AtomicU64,
    /// Relay requests refused (bad secret, not the owner at that epoch, no such stream).
    pub refused_total: AtomicU64,
    /// Redis commands that failed or timed out.
    pub redis_errors_total: AtomicU64,
    /// Owner claims this node made (each one a new epoch).
    pub claims_total: AtomicU64,
    /// Owner records this node lost to another node's claim (fenced).
    pub fenced_total: AtomicU64,
}

/// A running cluster membership: the registry, the relay's serving and pulling sides.
pub struct Cluster {
    ctl: Arc<Control>,
    node_id: String,
    advertise: String,
    secret: String,
    registry: registry::Registry,
    pulls: pull::Pulls,
    /// The figures.
    pub stats: ClusterStats,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.node_id)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the cluster described by `ctl.config.cluster`, or returns `None` when clustering
    /// is off (no Redis connection is made). Starts the registry's tasks and registers as
    /// the control plane's [`control::RemoteStreams`] and a status source. Redis need not be
    /// reachable now: the registry connects (and reconnects) in the background.
    pub fn start(ctl: &Arc<Control>) -> Result<Option<Arc<Cluster>>, ClusterError> {
        let cfg = &ctl.config.cluster;
        if !cfg.enabled() {
            return Ok(None);
        }
        let node_id = if cfg.node_id.is_empty() {
            hostname()
        } else {
            cfg.node_id.clone()
        };
        let advertise = if cfg.advertise.is_empty() {
            if ctl.addrs.http.ip().is_unspecified() {
                return Err(ClusterError::Config(
                    "cluster.advertise: must be set when http.listen is a wildcard address \
                     (0.0.0.0 or ::): other nodes need an address to reach this one"
                        .into(),
                ));
            }
            ctl.addrs.http.to_string()
        } else {
            cfg.advertise.clone()
        };
        let registry = registry::Registry::new(cfg, &node_id, &advertise)?;
        let cluster = Arc::new(Cluster {
            ctl: Arc::clone(ctl),
            node_id,
            advertise,
            secret: cfg.secret.clone(),
            registry,
            pulls: pull::Pulls::default(),
            stats: ClusterStats::default(),
        });
        registry::spawn(&cluster);
        ctl.set_remote(Arc::new(pull::Remote(Arc::clone(&cluster))));
        ctl.add_source(Arc::new(Status(Arc::clone(&cluster))));
        tracing::info!(node = %cluster.node_id, advertise = %cluster.advertise, "cluster: joined");
        Ok(Some(cluster))
    }

    /// This node's id in the registry.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Where other nodes reach this node's HTTP listener.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    /// True while this node's record is known to be in Redis (its last refresh succeeded
    /// within the record's expiry): what `/readyz` reports.
    pub fn registered(&self) -> bool {
        self.registry.registered()
    }

    /// The routes the cluster adds to the HTTP listener: the relay endpoint (outside the API
    /// guard: it has its own authentication).
    pub fn routes(self: &Arc<Self>) -> axum::Router {
        serve::routes(Arc::clone(self))
    }

    /// The owner of `key` as Redis says now.
    pub async fn owner(&self, key: &str) -> Result<Option<registry::Owner>, ClusterError> {
        self.registry.lookup(key).await
    }

    /// The epoch this node holds for `key`, if it owns it and is not fenced.
    pub fn owned_epoch(&self, key: &str) -> Option<u64> {
        self.registry.owned_epoch(key)
    }
}

/// The host name, for a default node id; `sluice-<pid>` when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("sluice-{}", std::process::id()))
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

struct Status(Arc<Cluster>);

impl StatusSource for Status {
    fn metrics_text(&self) -> String {
        let s = &self.0.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut add = |name: &str, kind: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        add(
            "sluice_cluster_registered",
            "gauge",
            "1 while this node's record is in Redis.",
            u64::from(self.0.registered()),
        );
        add(
            "sluice_cluster_owned_streams",
            "gauge",
            "Streams this node owns in the registry.",
            self.0.registry.owned_count() as u64,
        );
        add(
            "sluice_cluster_relay_pulls_total",
            "counter",
            "Relay connections opened to pull a stream from its owner.",
            get(&s.pulls_total),
        );
        add(
            "sluice_cluster_relay_pulls_active",
            "gauge",
            "Relay connections open now to pull streams.",
            get(&s.pulls_active),
        );
        add(
            "sluice_cluster_relay_served_total",
            "counter",
            "Relay connections served to other nodes.",
            get(&s.served_total),
        );
        add(
            "sluice_cluster_relay_served_active",
            "gauge",
            "Relay connections served now.",
            get(&s.served_active),
        );
        add(
            "sluice_cluster_relay_served_bytes_total",
            "counter",
            "Bytes sent on relay connections served to other nodes.",
            get(&s.served_bytes_total),
        );
        add(
            "sluice_cluster_relay_refused_total",
            "counter",
            "Relay requests refused.",
            get(&s.refused_total),
        );
        add(
            "sluice_cluster_redis_errors_total",
            "counter",
            "Redis commands that failed or timed out.",
            get(&s.redis_errors_total),
        );
        add(
            "sluice_cluster_claims_total",
            "counter",
            "Stream ownership claims (each a new epoch).",
            get(&s.claims_total),
        );
        add(
            "sluice_cluster_fenced_total",
            "counter",
            "Owner records lost to another node's claim.",
            get(&s.fenced_total),
        );
        out
    }

    fn server_info(&self) -> Option<(&'static str, serde_json::Value)> {
        let c = &self.0;
        let s = &c.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Some((
            "cluster",
            serde_json::json!({
                "node_id": c.node_id,
                "advertise": c.advertise,
                "registered": c.registered(),
                "owned_streams": c.registry.owned_count(),
                "relay_pulls_total": get(&s.pulls_total),
                "relay_pulls_active": get(&s.pulls_active),
                "relay_served_total": get(&s.served_total),
                "relay_served_active": get(&s.served_active),
                "relay_served_bytes_total": get(&s.served_bytes_total),
                "relay_refused_total": get(&s.refused_total),
                "redis_errors_total": get(&s.redis_errors_total),
                "claims_total": get(&s.claims_total),
                "fenced_total": get(&s.fenced_total),
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"secret-secret-00", b"secret-secret-00"));
        assert!(!constant_time_eq(b"secret-secret-00", b"secret-secret-01"));
        assert!(!constant_time_eq(b"secret", b"secret-secret-00"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
