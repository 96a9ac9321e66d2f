//! This connection's share of `limits.max_rtmp_partial_bytes`, the server-wide budget of
//! bytes held in incomplete RTMP messages.
//!
//! The session has its own budget (small until a publish is admitted). Before each read is
//! decoded, the connection reserves in the shared counter the room that read may need, and
//! caps the session's budget at what it got; after decoding, it keeps only what the session
//! holds. So the counter bounds the sum at every moment, and a connection whose growth would
//! pass it is refused before it allocates, while the others keep what they hold.

use super::*;

/// Bytes this connection has reserved in `ServerStats::rtmp_partial_bytes`; released when
/// dropped (on every exit path of the connection).
pub(super) struct PartialShare {
    shared: Arc<Control>,
    reserved: u64,
}

impl PartialShare {
    pub(super) fn new(shared: Arc<Control>) -> Self {
        Self {
            shared,
            reserved: 0,
        }
    }

    /// Grows the reservation toward `want` as far as the server-wide budget allows; returns
    /// the reservation.
    fn reserve(&mut self, want: u64) -> u64 {
        let max = self.shared.config.limits.max_rtmp_partial_bytes as u64;
        let total = &self.shared.stats.rtmp_partial_bytes;
        let mut used = total.load(Ordering::Relaxed);
        while want > self.reserved {
            let add = (want - self.reserved).min(max.saturating_sub(used));
            if add == 0 {
                break;
            }
            match total.compare_exchange_weak(
                used,
                used + add,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => self.reserved += add,
                Err(now) => used = now,
            }
        }
        self.reserved
    }

    /// Sets the reservation to exactly `held` bytes.
    fn settle(&mut self, held: u64) {
        let total = &self.shared.stats.rtmp_partial_bytes;
        if held < self.reserved {
            total.fetch_sub(self.reserved - held, Ordering::Relaxed);
        } else {
            total.fetch_add(held - self.reserved, Ordering::Relaxed);
        }
        self.reserved = held;
    }
}

impl Drop for PartialShare {
    fn drop(&mut self) {
        self.settle(0);
    }
}

impl Conn {
    /// Decodes bytes read within this connection's share of the server-wide budget.
    pub(super) fn feed(&mut self, data: &[u8]) -> Result<(), ConnError> {
        let held = self.session.partial_bytes() as u64;
        let own = self.session.partial_budget() as u64;
        // Room for every new byte and for the buffers to double (amortised copies), within
        // the session's own budget.
        let want = own.min(2 * (held + data.len() as u64)).max(held);
        let granted = self.partial.reserve(want);
        self.session
            .set_partial_grant(usize::try_from(granted).unwrap_or(usize::MAX));
        let result = self.session.handle_input(data);
        self.partial.settle(self.session.partial_bytes() as u64);
        match result {
            Err(rtmp::RtmpError::PartialBudgetExceeded { needed, budget, .. })
                if (budget as u64) < own && needed as u64 <= own =>
            {
                // Within its own budget, refused for want of room in the shared one.
                self.ctl
                    .stats
                    .rtmp_partial_refused
                    .fetch_add(1, Ordering::Relaxed);
                Err(ConnError::PartialBudget {
                    needed,
                    max: self.ctl.config.limits.max_rtmp_partial_bytes,
                    in_use: self.ctl.stats.rtmp_partial_bytes.load(Ordering::Relaxed),
                })
            }
            r => r.map_err(ConnError::from),
        }
    }
}
