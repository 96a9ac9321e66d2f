//! The Redis registry: this node's record, and an owner record (with its epoch) for each
//! stream published here.
//!
//! Keys (`<p>` is `cluster.key_prefix`, `<key>` the hub key `app/stream`):
//!
//! | key | value | life |
//! |---|---|---|
//! | `<p>:node:<id>` | JSON: id, advertise, state, streams, sessions, cpu (cores), egress_bps, started | `expiry_ms`, refreshed every `heartbeat_ms` |
//! | `<p>:owner:<key>` | `"<node id> <epoch> <advertise>"` | `expiry_ms`, refreshed every `heartbeat_ms` |
//! | `<p>:epoch:<key>` | the last epoch handed out (`INCR`) | kept |
//!
//! One Lua script ([`CLAIM_SCRIPT`]) refreshes, claims or refuses atomically: it refreshes
//! the record when it still holds this node's exact claim; otherwise, when the record is
//! absent (or the claim is forced, on a new publish here: the publisher is where the
//! encoder is now, so the newest publish wins at once instead of waiting for a dead owner's
//! record to expire), it takes the next epoch and writes the record; otherwise the stream
//! is another node's and this node is fenced: it stops serving relays of its old epoch.
//!
//! Every command has a time limit ([`COMMAND_TIMEOUT`]); failures are counted, logged once
//! per outage and retried with back-off. Nothing here touches the media path: a stream that
//! flows keeps flowing whatever Redis does.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Notify;

use crate::{Cluster, ClusterError, RELAY_PROTOCOL};

/// Time limit of one Redis command: a slow Redis must not hold the registry's pass longer
/// than about a heartbeat.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Longest wait between two registry passes while Redis fails (the back-off doubles from
/// the heartbeat up to this).
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Refreshes the caller's claim, or claims (a new epoch) when the owner record is absent or
/// the claim is forced; refuses when another node holds it.
/// KEYS: owner, epoch. ARGV: node id, advertise, expiry ms, force ("1"/"0"), the caller's
/// current record value ("" when it has none).
/// Returns 0 (refreshed), -1 (another node's), or the new epoch.
pub const CLAIM_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur == ARGV[5] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 0
end
if cur and ARGV[4] ~= '1' then
  return -1
end
local ep = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ep .. ' ' .. ARGV[2], 'PX', ARGV[3])
return ep
";

/// Deletes an owner record only if it still holds the caller's claim.
/// KEYS: owner. ARGV: the caller's record value. Returns 1 when deleted.
pub const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A stream's owner as the registry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The owning node's id.
    pub node: String,
    /// The claim's epoch.
    pub epoch: u64,
    /// Where the owner's HTTP listener (and relay) is reached.
    pub advertise: String,
}

impl Owner {
    /// Parses an owner record value `"<node> <epoch> <advertise>"`.
    pub fn parse(value: &str) -> Option<Owner> {
        let mut it = value.splitn(3, ' ');
        let node = it.next().filter(|s| !s.is_empty())?;
        let epoch = it.next()?.parse().ok()?;
        let advertise = it.next().filter(|s| !s.is_empty() && !s.contains(' '))?;
        Some(Owner {
            node: node.to_owned(),
            epoch,
            advertise: advertise.to_owned(),
        })
    }

    /// The record value.
    pub fn value(&self) -> String {
        format!("{} {} {}", self.node, self.epoch, self.advertise)
    }
}

#[derive(Debug)]
struct Owned {
    epoch: u64,
    value: String,
    /// When Redis last confirmed the claim.
    confirmed: Instant,
}

/// The registry's state and its Redis connection.
pub struct Registry {
    conn: ConnectionManager,
    prefix: String,
    node_id: String,
    advertise: String,
    heartbeat: Duration,
    expiry: Duration,
    owned: Mutex<HashMap<String, Owned>>,
    /// Streams published here since the last pass: claimed with force.
    fresh: Mutex<HashSet<String>>,
    /// Streams lost to another node's claim (not re-claimed while that claim lives).
    fenced: Mutex<HashSet<String>>,
    last_ok: Mutex<Option<Instant>>,
    wake: Notify,
    started: u64,
    /// The previous load sample, for rates.
    sample: Mutex<Option<LoadSample>>,
}

/// Cumulative figures at one instant; two of them give the node record's rates.
#[derive(Debug, Clone, Copy)]
struct LoadSample {
    at: Instant,
    cpu_seconds: f64,
    bytes_out: u64,
}

impl LoadSample {
    fn now(ctl: &control::Control, relay_bytes: u64) -> LoadSample {
        let bytes_out = control::counters::ViewerProtocol::ALL
            .iter()
            .map(|p| ctl.stats.bytes_out.get(*p))
            .sum::<u64>()
            .saturating_add(ctl.stats.vod_bytes_out.load(Ordering::Relaxed))
            .saturating_add(relay_bytes);
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| control::procfs::parse_cpu_seconds(&s))
            .unwrap_or(0.0);
        LoadSample {
            at: Instant::now(),
            cpu_seconds,
            bytes_out,
        }
    }
}

impl Registry {
    /// A registry for `cfg`; makes no connection yet (the first pass does).
    pub fn new(
        cfg: &config::ClusterConfig,
        node_id: &str,
        advertise: &str,
    ) -> Result<Registry, ClusterError> {
        let client = redis::Client::open(cfg.redis_url.as_str())
            .map_err(|e| ClusterError::RedisUrl(e.to_string()))?;
        let mcfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(COMMAND_TIMEOUT);
        let conn = ConnectionManager::new_lazy_with_config(client, mcfg)
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
        Ok(Registry {
            conn,
            prefix: cfg.key_prefix.clone(),
            node_id: node_id.to_owned(),
            advertise: advertise.to_owned(),
            heartbeat: Duration::from_millis(cfg.heartbeat_ms),
            expiry: Duration::from_millis(cfg.expiry_ms),
            owned: Mutex::new(HashMap::new()),
            fresh: Mutex::new(HashSet::new()),
            fenced: Mutex::new(HashSet::new()),
            last_ok: Mutex::new(None),
            wake: Notify::new(),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            sample: Mutex::new(None),
        })
    }

    fn owner_key(&self, key: &str) -> String {
        format!("{}:owner:{key}", self.prefix)
    }

    fn epoch_key(&self, key: &str) -> String {
        format!("{}:epoch:{key}", self.prefix)
    }

    fn node_key(&self) -> String {
        format!("{}:node:{}", self.prefix, self.node_id)
    }

    /// True while the node record's last refresh is younger than its expiry.
    pub fn registered(&self) -> bool {
        lock(&self.last_ok).is_some_and(|t| t.elapsed() < self.expiry)
    }

    /// Streams owned now.
    pub fn owned_count(&self) -> usize {
        lock(&self.owned).len()
    }

    /// The epoch of `key` if this node owns it and Redis confirmed the claim within its
    /// expiry (an owner that cannot refresh stops answering new relay requests).
    pub fn owned_epoch(&self, key: &str) -> Option<u64> {
        lock(&self.owned)
            .get(key)
            .filter(|o| o.confirmed.elapsed() < self.expiry)
            .map(|o| o.epoch)
    }

    /// False once this node lost `key` (released, or fenced by another node's claim); true
    /// while it holds it, confirmed or not (a Redis outage fences nobody), and after it
    /// re-claimed it itself (a Redis that lost its keys): the same publisher feeds it.
    pub fn still_owns(&self, key: &str) -> bool {
        lock(&self.owned).contains_key(key)
    }

    /// The owner of `key`, from Redis.
    pub async fn lookup(&self, key: &str) -> Result<Option<Owner>, ClusterError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = timed(
            redis::cmd("GET")
                .arg(self.owner_key(key))
                .query_async(&mut conn),
        )
        .await?;
        Ok(value.as_deref().and_then(Owner::parse))
    }

    async fn claim(&self, key: &str, force: bool, current: &str) -> Result<i64, ClusterError> {
        let mut conn = self.conn.clone();
        let script = redis::Script::new(CLAIM_SCRIPT);
        let mut inv = script.prepare_invoke();
        inv.key(self.owner_key(key))
            .key(self.epoch_key(key))
            .arg(&self.node_id)
            .arg(&self.advertise)
            .arg(self.expiry.as_millis() as u64)
            .arg(if force { "1" } else { "0" })
            .arg(current);
        timed(inv.invoke_async(&mut conn)).await
    }

    async fn release(&self, key: &str, value: &str) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        let script = redis::Script::new(RELEASE_SCRIPT);
        let mut inv = script.prepare_invoke();
        inv.key(self.owner_key(key)).arg(value);
        let _: i64 = timed(inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn write_node(
        &self,
        ctl: &control::Control,
        streams: usize,
        relay_bytes: u64,
    ) -> Result<(), ClusterError> {
        let now = LoadSample::now(ctl, relay_bytes);
        let (cpu, egress_bps) = match lock(&self.sample).replace(now) {
            Some(prev) if now.at > prev.at => {
                let secs = (now.at - prev.at).as_secs_f64();
                (
                    ((now.cpu_seconds - prev.cpu_seconds) / secs).max(0.0),
                    (now.bytes_out.saturating_sub(prev.bytes_out) as f64 * 8.0 / secs) as u64,
                )
            }
            _ => (0.0, 0),
        };
        let record = serde_json::json!({
            "id": self.node_id,
            "advertise": self.advertise,
            "state": if ctl.shutdown.is_cancelled() { "draining" } else { "serving" },
            "streams": streams,
            "sessions": ctl.sessions.len(),
            // Cores' worth of CPU this process used since the last record, and bits per
            // second sent to viewers and other nodes: what a node choice by load reads.
            "cpu": (cpu * 100.0).round() / 100.0,
            "egress_bps": egress_bps,
            "started": self.started,
        })
        .to_string();
        let mut conn = self.conn.clone();
        let () = timed(
            redis::cmd("SET")
                .arg(self.node_key())
                .arg(record)
                .arg("PX")
                .arg(self.expiry.as_millis() as u64)
                .query_async(&mut conn),
        )
        .await?;
        *lock(&self.last_ok) = Some(Instant::now());
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn timed<T>(fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, ClusterError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ClusterError::Redis(e.to_string())),
        Err(_) => Err(ClusterError::Redis("timed out".into())),
    }
}

/// Starts the registry's tasks: one follows the hub's events (a publish is claimed at
/// once, an unpublish released), one makes a pass every heartbeat (node record, refresh of
/// every claim, resynchronisation from the hub), both until shutdown.
pub(crate) fn spawn(cluster: &Arc<Cluster>) {
    let c = Arc::clone(cluster);
    let mut events = c.ctl.hub.events();
    cluster.ctl.tracker.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = c.ctl.shutdown.cancelled() => return,
                e = events.recv() => e,
            };
            match event {
                Ok(hub::HubEvent::Published { key, protocol, .. })
                    if protocol != RELAY_PROTOCOL =>
                {
                    lock(&c.registry.fresh).insert(key.to_string());
                    c.registry.wake.notify_one();
                }
                Ok(hub::HubEvent::Unpublished { .. }) | Err(hub::RecvError::Lagged(_)) => {
                    c.registry.wake.notify_one();
                }
                Ok(_) => {}
                Err(hub::RecvError::Closed) => return,
            }
        }
    });
    let c = Arc::clone(cluster);
    cluster.ctl.tracker.spawn(async move {
        let reg = &c.registry;
        let mut failures: u32 = 0;
        loop {
            match pass(&c).await {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(failures, "cluster: redis reachable again");
                    }
                    failures = 0;
                }
                Err(e) => {
                    c.stats.redis_errors_total.fetch_add(1, Ordering::Relaxed);
                    if failures == 0 || failures.is_multiple_of(30) {
                        tracing::warn!(failures, "cluster: registry pass failed: {e}");
                    }
                    failures = failures.saturating_add(1);
                }
            }
            let delay = if failures == 0 {
                reg.heartbeat
            } else {
                (reg.heartbeat * 2u32.saturating_pow(failures.min(6) - 1)).min(MAX_BACKOFF)
            };
            tokio::select! {
                _ = c.ctl.shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
                _ = reg.wake.notified() => {}
            }
        }
        // Leaving: free this node's streams for others at once (best effort).
        let owned: Vec<(String, String)> = lock(&reg.owned)
            .drain()
            .map(|(k, o)| (k, o.value))
            .collect();
        for (key, value) in owned {
            let _ = reg.release(&key, &value).await;
        }
    });
}

/// One registry pass: the node record, then each stream's claim.
async fn pass(c: &Cluster) -> Result<(), ClusterError> {
    let reg = &c.registry;
    let streams = c.ctl.hub.streams();
    let relay_bytes = c.stats.served_bytes_total.load(Ordering::Relaxed);
    reg.write_node(&c.ctl, streams.len(), relay_bytes).await?;
    let fresh: HashSet<String> = std::mem::take(&mut *lock(&reg.fresh));
    let mut first_error = None;
    // Streams whose publisher is here (not pulled): ours to claim. A stream in its grace
    // period keeps a claim it has (its publisher may come back; edges stay attached).
    for s in &streams {
        let relayed = s
            .publisher
            .as_ref()
            .is_some_and(|p| p.protocol == RELAY_PROTOCOL);
        let current = lock(&reg.owned).get(&s.key).map(|o| o.value.clone());
        if relayed || (current.is_none() && !s.is_live) {
            continue;
        }
        let force = fresh.contains(&s.key);
        let result = reg
            .claim(&s.key, force, current.as_deref().unwrap_or(""))
            .await;
        match result {
            Ok(0) => {
                if let Some(o) = lock(&reg.owned).get_mut(&s.key) {
                    o.confirmed = Instant::now();
                }
            }
            Ok(epoch) if epoch > 0 => {
                let owner = Owner {
                    node: c.node_id.clone(),
                    epoch: epoch as u64,
                    advertise: c.advertise.clone(),
                };
                c.stats.claims_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(key = %s.key, epoch, "cluster: stream claimed");
                lock(&reg.fenced).remove(&s.key);
                lock(&reg.owned).insert(
                    s.key.clone(),
                    Owned {
                        epoch: owner.epoch,
                        value: owner.value(),
                        confirmed: Instant::now(),
                    },
                );
            }
            Ok(_) => {
                if lock(&reg.owned).remove(&s.key).is_some() {
                    c.stats.fenced_total.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(key = %s.key, "cluster: another node claimed the stream; fenced");
                }
                if lock(&reg.fenced).insert(s.key.clone()) {
                    tracing::info!(key = %s.key, "cluster: stream owned by another node");
                }
            }
            Err(e) => {
                // Keep the claim as it is: its relays keep flowing; it is retried next pass.
                first_error.get_or_insert(e);
            }
        }
    }
    // Claims of streams no longer in the hub.
    let live: HashSet<&str> = streams.iter().map(|s| s.key.as_str()).collect();
    let gone: Vec<(String, String)> = lock(&reg.owned)
        .iter()
        .filter(|(k, _)| !live.contains(k.as_str()))
        .map(|(k, o)| (k.clone(), o.value.clone()))
        .collect();
    for (key, value) in gone {
        match reg.release(&key, &value).await {
            Ok(()) => {
                lock(&reg.owned).remove(&key);
                tracing::info!(%key, "cluster: stream released");
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    lock(&reg.fenced).retain(|k| live.contains(k.as_str()));
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_records_parse_and_print() {
        let o = Owner::parse("node-a 7 10.0.0.1:8080").unwrap();
        assert_eq!(o.node, "node-a");
        assert_eq!(o.epoch, 7);
        assert_eq!(o.advertise, "10.0.0.1:8080");
        assert_eq!(o.value(), "node-a 7 10.0.0.1:8080");
        assert_eq!(Owner::parse("[::1]:80").map(|o| o.epoch), None);
        assert_eq!(Owner::parse("a x b:1"), None);
        assert_eq!(Owner::parse("a 1"), None);
        assert_eq!(Owner::parse(" 1 b:1"), None);
        assert_eq!(Owner::parse("a 1 b:1 c"), None);
    }
}
