//! Sluice's adaptive-bitrate ladder: a hub consumer that publishes renditions back into the
//! hub.
//!
//! The crate's rule: one supervised `ffmpeg` child per source stream of a `[transcode]`
//! app, never linked libav (Debian's is GPL; Sluice links FDK AAC). The child reads the
//! stream as FLV on its stdin (fed from a hub subscription, the GOP cache first), decodes it
//! once, scales and encodes each rung below the source's height ([`command`]) with keyframes
//! where the source has them, copies the audio, and sends each rung as FLV to a loopback
//! socket of its own; each rung is then published into the hub through `control` as the
//! stream `{stream}_{name}`, so every egress plays it. A child that dies is restarted with
//! back-off (its last error lines logged and shown in `GET /api/v1/server`); the rung
//! streams wait out the hub's publisher grace meanwhile, so their viewers stay attached.
//! Only the binary depends on this crate.

pub mod command;
mod supervisor;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use control::Control;

/// What the API shows of one source's ladder.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// The rung streams being encoded.
    pub rungs: Vec<String>,
    /// The ffmpeg child's process id while one runs.
    pub pid: Option<u32>,
    /// Children restarted after dying.
    pub restarts: u64,
    /// The last failure (ffmpeg's last error lines, or why it stopped).
    pub last_error: Option<String>,
}

/// The running ladders, by source stream.
#[derive(Debug, Default)]
pub struct Ladders {
    sources: Mutex<BTreeMap<String, Status>>,
    restarts: AtomicU64,
}

impl Ladders {
    /// The status of `source`'s ladder, if it has one.
    pub fn status(&self, source: &str) -> Option<Status> {
        self.lock().get(source).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Status>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, source: &str, f: impl FnOnce(&mut Status)) {
        f(self.lock().entry(source.to_owned()).or_default());
    }

    fn remove(&self, source: &str) {
        self.lock().remove(source);
    }
}

/// Starts the ladder for every stream published in a `[transcode]` app (nothing when
/// `transcode.apps` is empty).
pub fn start(ctl: &Arc<Control>) -> Arc<Ladders> {
    let ladders = Arc::new(Ladders::default());
    if ctl.config.transcode.apps.is_empty() {
        return ladders;
    }
    ctl.add_source(Arc::new(Source(ladders.clone())));
    let (c, l) = (ctl.clone(), ladders.clone());
    ctl.on_publish("ladder", move |key| {
        if !wants_ladder(&c, key) || l.lock().contains_key(key) {
            return;
        }
        l.update(key, |_| {});
        let (ctl, ladders, key) = (c.clone(), l.clone(), key.to_owned());
        c.tracker.spawn(async move {
            supervisor::run(&ctl, &ladders, &key).await;
            ladders.remove(&key);
        });
    });
    ladders
}

/// True for a stream of a `[transcode]` app that is not itself a rung (`{stream}_{name}`).
fn wants_ladder(ctl: &Control, key: &str) -> bool {
    let t = &ctl.config.transcode;
    let Some((app, stream)) = key.split_once('/') else {
        return false;
    };
    t.apps.iter().any(|a| a == app)
        && !t
            .ladder
            .iter()
            .any(|r| stream.ends_with(&format!("_{}", r.name)))
}

/// `GET /metrics` and `GET /api/v1/server` for the ladders.
struct Source(Arc<Ladders>);

impl control::StatusSource for Source {
    fn metrics(&self) {
        metrics::describe_counter!(
            "sluice_transcode_restarts_total",
            "ffmpeg ladder children restarted after dying (the error is in the log and in GET /api/v1/server's transcode section)."
        );
        metrics::describe_gauge!(
            "sluice_transcode_ladders",
            "Source streams whose ladder is being encoded now."
        );
        metrics::counter!("sluice_transcode_restarts_total")
            .absolute(self.0.restarts.load(Ordering::Relaxed));
        metrics::gauge!("sluice_transcode_ladders").set(self.0.lock().len() as f64);
    }

    fn server_info(&self) -> Option<(&'static str, serde_json::Value)> {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .lock()
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    serde_json::json!({
                        "rungs": s.rungs,
                        "pid": s.pid,
                        "restarts": s.restarts,
                        "last_error": s.last_error,
                    }),
                )
            })
            .collect();
        Some(("transcode", serde_json::Value::Object(map)))
    }
}
