//! Viewers per stream and publishers per app: counts keyed by stream key or app name, one
//! slot per admitted viewer or publisher, released on drop (every exit path).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{LimitReason, LimitRefusal, Limits};
use config::LimitsConfig;

/// Which count a slot is held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Viewer,
    Publisher,
}

/// Per-stream viewer and per-app publisher counts. An entry exists only while its count is
/// above zero, so both maps are bounded by the connections and WebRTC peers that hold slots.
pub struct SlotTable {
    max_viewers: usize,
    max_publishers: usize,
    viewers: Mutex<HashMap<String, usize>>,
    publishers: Mutex<HashMap<String, usize>>,
}

impl SlotTable {
    pub fn new(cfg: &LimitsConfig) -> Self {
        Self {
            max_viewers: cfg.max_viewers_per_stream,
            max_publishers: cfg.max_publishers_per_app,
            viewers: Mutex::new(HashMap::new()),
            publishers: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self, kind: Kind) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        let m = match kind {
            Kind::Viewer => &self.viewers,
            Kind::Publisher => &self.publishers,
        };
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Viewers holding a slot of `key` now.
    #[cfg(test)]
    pub fn viewers(&self, key: &str) -> usize {
        self.map(Kind::Viewer).get(key).copied().unwrap_or(0)
    }

    /// Publishers holding a slot of `app` now.
    #[cfg(test)]
    pub fn publishers(&self, app: &str) -> usize {
        self.map(Kind::Publisher).get(app).copied().unwrap_or(0)
    }

    /// Admits a viewer of `key`; `others` are viewers counted elsewhere (HLS clients).
    pub fn admit_viewer(
        &self,
        limits: &Arc<Limits>,
        key: &str,
        others: usize,
    ) -> Result<StreamSlot, LimitRefusal> {
        self.admit(limits, Kind::Viewer, key, others, self.max_viewers)
            .map_err(|n| LimitRefusal {
                reason: LimitReason::ViewersPerStream,
                message: format!("stream {key} has {n} viewers, the most allowed"),
            })
    }

    /// Admits a publisher in `app`.
    pub fn admit_publisher(
        &self,
        limits: &Arc<Limits>,
        app: &str,
    ) -> Result<StreamSlot, LimitRefusal> {
        self.admit(limits, Kind::Publisher, app, 0, self.max_publishers)
            .map_err(|n| LimitRefusal {
                reason: LimitReason::PublishersPerApp,
                message: format!("app {app} has {n} publishers, the most allowed"),
            })
    }

    /// Takes a slot unless `max` (0 = unlimited) are taken; `Err` carries the count.
    fn admit(
        &self,
        limits: &Arc<Limits>,
        kind: Kind,
        key: &str,
        others: usize,
        max: usize,
    ) -> Result<StreamSlot, usize> {
        let mut m = self.map(kind);
        let held = m.get(key).copied().unwrap_or(0);
        let total = held.saturating_add(others);
        if max != 0 && total >= max {
            return Err(total);
        }
        m.insert(key.to_owned(), held + 1);
        Ok(StreamSlot {
            limits: Arc::clone(limits),
            kind,
            key: key.to_owned(),
        })
    }

    fn release(&self, kind: Kind, key: &str) {
        let mut m = self.map(kind);
        if let Some(n) = m.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(key);
            }
        }
    }
}

/// A viewer's place in its stream's count, or a publisher's in its app's; released on drop.
pub struct StreamSlot {
    limits: Arc<Limits>,
    kind: Kind,
    key: String,
}

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSlot")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .finish()
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.limits.streams.release(self.kind, &self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(viewers: usize, publishers: usize) -> Arc<Limits> {
        let cfg = LimitsConfig {
            max_viewers_per_stream: viewers,
            max_publishers_per_app: publishers,
            ..LimitsConfig::default()
        };
        Limits::new(&cfg, &super::super::ListenerKind::ALL).expect("valid")
    }

    #[test]
    fn viewers_per_stream_counts_other_protocols_and_frees_on_drop() {
        let l = limits(2, 0);
        let t = &l.streams;
        let a = t.admit_viewer(&l, "live/a", 0).expect("first");
        let _b = t.admit_viewer(&l, "live/a", 0).expect("second");
        let err = t.admit_viewer(&l, "live/a", 0).unwrap_err();
        assert_eq!(err.reason, LimitReason::ViewersPerStream);
        assert!(err.message.contains("live/a"), "{}", err.message);
        // Another stream has its own count.
        let _c = t.admit_viewer(&l, "live/b", 0).expect("other stream");
        drop(a);
        assert_eq!(t.viewers("live/a"), 1);
        // One HLS client already watching fills the last place.
        assert!(t.admit_viewer(&l, "live/a", 1).is_err());
        let _d = t.admit_viewer(&l, "live/a", 0).expect("slot freed");
    }

    #[test]
    fn publishers_per_app_and_zero_means_unlimited() {
        let l = limits(0, 1);
        let t = &l.streams;
        let p = t.admit_publisher(&l, "live").expect("first");
        let err = t.admit_publisher(&l, "live").unwrap_err();
        assert_eq!(err.reason, LimitReason::PublishersPerApp);
        let _q = t.admit_publisher(&l, "other").expect("other app");
        drop(p);
        assert_eq!(t.publishers("live"), 0);
        assert!(
            t.viewers.lock().unwrap().is_empty(),
            "no entries left behind"
        );
        let held: Vec<_> = (0..100)
            .map(|_| t.admit_viewer(&l, "live/x", 0).expect("unlimited"))
            .collect();
        assert_eq!(t.viewers("live/x"), 100);
        drop(held);
        assert_eq!(t.viewers("live/x"), 0);
        assert!(t.viewers.lock().unwrap().is_empty());
    }
}
