//! Refusal counters (by protocol and reason, both from fixed label sets) and the refusal log
//! budget: [`LOG_BURST`] lines per [`LOG_WINDOW`], then one summary line for the rest.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{LOG_BURST, LOG_WINDOW, LimitReason, LimitRefusal};

/// What to do with one refusal's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDecision {
    /// Log it; `suppressed` refusals of the previous window went unlogged (log a summary).
    Log {
        /// Refusals not logged in the window that just ended.
        suppressed: u64,
    },
    /// Over the budget: counted for the summary only.
    Suppress,
}

#[derive(Debug, Default)]
struct Window {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// Counters and log budget of refusals.
#[derive(Debug, Default)]
pub struct Refusals {
    counts: Mutex<BTreeMap<(&'static str, LimitReason), u64>>,
    window: Mutex<Window>,
}

impl Refusals {
    /// Counts one refusal over `protocol` and logs it within the budget.
    pub fn refuse(&self, protocol: &'static str, refusal: &LimitRefusal, now: Instant) {
        {
            let mut m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry((protocol, refusal.reason)).or_insert(0) += 1;
        }
        match self.decide(now) {
            LogDecision::Suppress => {}
            LogDecision::Log { suppressed } => {
                summary(suppressed);
                tracing::warn!(
                    protocol,
                    reason = refusal.reason.as_str(),
                    "refused: {refusal}"
                );
            }
        }
    }

    /// Spends one line of the budget, or not.
    pub fn decide(&self, now: Instant) -> LogDecision {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let mut suppressed = 0;
        let expired = w
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= LOG_WINDOW);
        if expired {
            suppressed = std::mem::take(&mut w.suppressed);
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged < LOG_BURST {
            w.logged += 1;
            LogDecision::Log { suppressed }
        } else {
            w.suppressed += 1;
            LogDecision::Suppress
        }
    }

    /// Writes the summary of a finished window's unlogged refusals (called periodically, so
    /// the summary comes even when the flood stops). Returns how many it summed up.
    pub fn flush(&self, now: Instant) -> u64 {
        let n = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let expired = w
                .start
                .is_some_and(|s| now.saturating_duration_since(s) >= LOG_WINDOW);
            if !expired || w.suppressed == 0 {
                return 0;
            }
            std::mem::take(&mut w.suppressed)
        };
        summary(n);
        n
    }

    /// Every refusal counted: ((protocol, reason), count).
    pub fn counts(&self) -> Vec<((&'static str, LimitReason), u64)> {
        let m = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

fn summary(suppressed: u64) {
    if suppressed > 0 {
        tracing::warn!(
            suppressed,
            "{suppressed} more connections or requests refused by limits in the last {}s \
             (not logged one by one; see sluice_connections_refused_total)",
            LOG_WINDOW.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flood_logs_the_burst_then_one_summary() {
        let r = Refusals::default();
        let t0 = Instant::now();
        let decisions: Vec<_> = (0..10_000).map(|_| r.decide(t0)).collect();
        let logged = decisions
            .iter()
            .filter(|d| matches!(d, LogDecision::Log { .. }))
            .count();
        assert_eq!(logged, LOG_BURST as usize);
        // Inside the window nothing is flushed yet.
        assert_eq!(r.flush(t0 + Duration::from_secs(1)), 0);
        // After the window: the first refusal carries the count of the unlogged ones.
        assert_eq!(
            r.decide(t0 + LOG_WINDOW),
            LogDecision::Log {
                suppressed: 10_000 - u64::from(LOG_BURST)
            }
        );
    }

    #[test]
    fn flush_sums_up_once_the_window_ends() {
        let r = Refusals::default();
        let t0 = Instant::now();
        for _ in 0..(LOG_BURST + 5) {
            r.decide(t0);
        }
        assert_eq!(r.flush(t0 + LOG_WINDOW), 5);
        assert_eq!(r.flush(t0 + LOG_WINDOW * 2), 0, "summed up once");
    }

    #[test]
    fn counts_by_protocol_and_reason() {
        let r = Refusals::default();
        let refusal = |reason| LimitRefusal {
            reason,
            message: "x".into(),
        };
        let now = Instant::now();
        r.refuse("rtmp", &refusal(LimitReason::PerIpRate), now);
        r.refuse("rtmp", &refusal(LimitReason::PerIpRate), now);
        r.refuse("http", &refusal(LimitReason::MaxConnections), now);
        assert_eq!(
            r.counts(),
            vec![
                (("http", LimitReason::MaxConnections), 1),
                (("rtmp", LimitReason::PerIpRate), 2),
            ]
        );
    }
}
