//! Reconnect backoff: exponential with jitter, capped. Pure; the jitter comes from a small
//! seeded generator so that tests are repeatable and cameras that fail together (a switch
//! reboots) don't all retry in the same instant.

use std::time::Duration;

/// The first retry waits about this long.
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    seed: u64,
}

impl Backoff {
    /// `seed` should differ per camera (its index will do).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff { min, max: max.max(min), attempt: 0, seed: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 }
    }

    /// Consecutive failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A stream that ran is a fresh start: the next failure waits the minimum again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The wait before the next attempt: min * 2^attempt, capped at max, then jittered
    /// down by up to 25 % (never above the cap, never below half the minimum).
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.attempt.min(20));
        let capped = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let frac = (self.seed % 1000) as f64 / 1000.0 * 0.25;
        capped.mul_f64(1.0 - frac).max(self.min / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 7);
        let d: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
        let ceilings = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
        for (got, ceil) in d.iter().zip(ceilings) {
            assert!(*got <= ceil && *got >= ceil * 0.75 - 1e-9, "{d:?}");
        }
        assert_eq!(b.attempts(), 8);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 1);
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn cameras_get_different_jitter() {
        let mut a = Backoff::new(Duration::from_secs(8), Duration::from_secs(30), 0);
        let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(30), 1);
        assert_ne!(a.next_delay(), b.next_delay());
    }
}
