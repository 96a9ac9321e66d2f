//! Active speakers from the RFC 6464 audio level a publisher stamps on each audio packet
//! (`-dBov`, 0 loudest, 127 silence): over each [`WINDOW`], a participant speaks when at
//! least [`MIN_LOUD_SHARE`] of its packets were at or above [`LOUD_DBOV`]; its level is the
//! mean linear amplitude of those packets. The room announces changes as SpeakersChanged.

use std::time::{Duration, Instant};

/// The window a speaking decision covers.
pub const WINDOW: Duration = Duration::from_millis(500);
/// A packet at most this many dB below full scale counts as loud (LiveKit's default active
/// level is 35).
pub const LOUD_DBOV: u8 = 40;
/// Share of a window's packets that must be loud for the participant to be speaking: speech
/// has pauses, so 75 ms of voice in 500 ms counts (Chromium's fake microphone, a beep,
/// is loud in about a fifth of its packets).
pub const MIN_LOUD_SHARE: f32 = 0.15;
/// A level change smaller than this is not announced again.
pub const LEVEL_STEP: f32 = 0.05;

/// One participant's audio levels over the current window.
#[derive(Debug)]
pub(crate) struct Meter {
    started: Instant,
    packets: u32,
    loud: u32,
    sum: f32,
}

impl Meter {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            started: now,
            packets: 0,
            loud: 0,
            sum: 0.0,
        }
    }

    /// One packet's level (`-dBov` as str0m gives it: 0 or negative, or positive).
    pub(crate) fn sample(&mut self, level: i8) {
        let dbov = level.unsigned_abs().min(127);
        self.packets += 1;
        if dbov <= LOUD_DBOV {
            self.loud += 1;
            self.sum += 10f32.powf(-f32::from(dbov) / 20.0);
        }
    }

    /// When the window is over: the level if speaking (else 0), and a new window starts.
    pub(crate) fn take(&mut self, now: Instant) -> Option<f32> {
        if now.duration_since(self.started) < WINDOW {
            return None;
        }
        let speaking =
            self.packets > 0 && (self.loud as f32) >= MIN_LOUD_SHARE * self.packets as f32;
        let level = if speaking {
            (self.sum / self.loud.max(1) as f32).clamp(0.0, 1.0)
        } else {
            0.0
        };
        *self = Self::new(now);
        Some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_windows_speak_and_quiet_ones_do_not() {
        let t0 = Instant::now();
        let mut m = Meter::new(t0);
        for _ in 0..25 {
            m.sample(-20);
        }
        assert_eq!(m.take(t0 + Duration::from_millis(100)), None);
        let level = m.take(t0 + WINDOW).unwrap();
        assert!((level - 0.1).abs() < 0.01, "{level}");
        for i in 0..25 {
            m.sample(if i < 3 { -10 } else { -127 });
        }
        assert_eq!(m.take(t0 + WINDOW * 2), Some(0.0));
        assert_eq!(m.take(t0 + WINDOW * 3), Some(0.0));
    }
}
