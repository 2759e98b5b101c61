//! Repeated warnings, rate-limited: the first of a kind is logged, then at most one line per
//! window with how many were held back.
//!
//! A source element can post the same warning thousands of times a second (rtspsrc, with a
//! dropped client, posted "Could not read from resource." 2,354 times a second in a fault
//! run): one line tells the operator as much and keeps the journal readable. Pure: the caller
//! passes the time, so the tests need no clock.

use std::time::{Duration, Instant};

/// How long a kind of warning stays quiet after it was logged.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);
/// Kinds remembered at once; past this the one logged longest ago is forgotten, so a source that
/// posts ever-different texts cannot grow the table.
const MAX_KINDS: usize = 16;

/// What to do with one warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `held_back` of the same kind were not logged since the last line.
    Log { held_back: u64 },
    /// Count it and say nothing.
    Hold,
}

/// Decides, per kind of warning (its text), whether to log it.
#[derive(Debug)]
pub struct RepeatLimiter {
    window: Duration,
    /// (kind, when it was last logged, how many held back since).
    kinds: Vec<(String, Instant, u64)>,
}

impl RepeatLimiter {
    pub fn new(window: Duration) -> RepeatLimiter {
        RepeatLimiter { window, kinds: Vec::new() }
    }

    /// Judge one warning of kind `text` seen at `now`.
    pub fn judge(&mut self, text: &str, now: Instant) -> Verdict {
        if let Some((_, logged_at, held)) = self.kinds.iter_mut().find(|(k, _, _)| k == text) {
            if now.saturating_duration_since(*logged_at) < self.window {
                *held += 1;
                return Verdict::Hold;
            }
            let held_back = std::mem::take(held);
            *logged_at = now;
            return Verdict::Log { held_back };
        }
        if self.kinds.len() >= MAX_KINDS
            && let Some(oldest) = self.kinds.iter().enumerate().min_by_key(|(_, (_, at, _))| *at).map(|(i, _)| i)
        {
            self.kinds.swap_remove(oldest);
        }
        self.kinds.push((text.to_string(), now, 0));
        Verdict::Log { held_back: 0 }
    }

    /// Kinds with warnings held back and not yet reported, with their counts, which restart
    /// at zero: for a last line when the pipeline they came from ends. The kinds stay quiet
    /// until their window ends, so a camera that warns on every reconnect still logs one line
    /// a window.
    pub fn take_held(&mut self) -> Vec<(String, u64)> {
        self.kinds.iter_mut().filter(|(_, _, n)| *n > 0).map(|(k, _, n)| (k.clone(), std::mem::take(n))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_line_then_one_per_window_with_its_count() {
        let t0 = Instant::now();
        let mut r = RepeatLimiter::new(Duration::from_secs(10));
        assert_eq!(r.judge("Could not read", t0), Verdict::Log { held_back: 0 });
        let mut logged = 0;
        // 2,000 a second for 25 s.
        for i in 1..50_000u64 {
            if let Verdict::Log { held_back } = r.judge("Could not read", t0 + Duration::from_micros(i * 500)) {
                logged += 1;
                assert!(held_back >= 19_000, "{held_back}");
            }
        }
        assert_eq!(logged, 2, "one line at 10 s and one at 20 s");
        let held = r.take_held();
        assert_eq!(held.len(), 1);
        assert!(held[0].1 > 9_000, "{held:?}");
        assert!(r.take_held().is_empty(), "taken once");
        assert_eq!(r.judge("Could not read", t0 + Duration::from_secs(26)), Verdict::Hold, "still in its window");
    }

    #[test]
    fn kinds_are_limited_apart_and_the_table_stays_bounded() {
        let t0 = Instant::now();
        let mut r = RepeatLimiter::new(Duration::from_secs(10));
        assert_eq!(r.judge("a", t0), Verdict::Log { held_back: 0 });
        assert_eq!(r.judge("b", t0), Verdict::Log { held_back: 0 });
        assert_eq!(r.judge("a", t0), Verdict::Hold);
        assert_eq!(r.judge("a", t0 + Duration::from_secs(11)), Verdict::Log { held_back: 1 });
        for i in 0..1000 {
            r.judge(&format!("text {i}"), t0 + Duration::from_millis(i));
        }
        assert!(r.kinds.len() <= MAX_KINDS);
    }
}
