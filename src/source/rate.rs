//! The detect-rate gate: which frames detection needs, decided from their timestamps. Pure.
//!
//! Runs on the decoder's output pad, so frames it rejects never reach scaling or colour
//! conversion and cost only their decode. Timestamps rather than arrival times make it exact
//! and repeatable on files, whatever the machine's speed.

/// Admits at most `fps` frames per second of stream time, keeping a steady cadence.
#[derive(Debug, Clone)]
pub struct RateGate {
    interval_ns: u64,
    next_due_ns: Option<u64>,
}

impl RateGate {
    pub fn new(fps: f64) -> RateGate {
        let interval_ns = if fps > 0.0 { (1e9 / fps) as u64 } else { 0 };
        RateGate { interval_ns, next_due_ns: None }
    }

    /// Should the frame at `ts_ns` go on to detection?
    pub fn admit(&mut self, ts_ns: u64) -> bool {
        match self.next_due_ns {
            Some(due) if ts_ns < due => {
                // A timestamp far before the due time means the stream restarted or seeked
                // backwards: start the cadence again rather than starve for the gap.
                if due - ts_ns > 2 * self.interval_ns.max(1) {
                    self.next_due_ns = Some(ts_ns.saturating_add(self.interval_ns));
                    return true;
                }
                false
            }
            Some(due) => {
                // Keep the cadence anchored to the due time, unless we fell a whole interval
                // behind (a gap in the stream): then re-anchor on this frame.
                let next = due.saturating_add(self.interval_ns);
                self.next_due_ns = Some(if ts_ns >= next { ts_ns.saturating_add(self.interval_ns) } else { next });
                true
            }
            None => {
                self.next_due_ns = Some(ts_ns.saturating_add(self.interval_ns));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(gate: &mut RateGate, stamps: impl Iterator<Item = u64>) -> usize {
        stamps.filter(|&t| gate.admit(t)).count()
    }

    #[test]
    fn five_of_twenty_five_fps_is_exactly_one_in_five() {
        let mut g = RateGate::new(5.0);
        let frames = (0..250u64).map(|i| 80_000_000 + i * 40_000_000);
        assert_eq!(admitted(&mut g, frames), 50);
    }

    #[test]
    fn ntsc_rate_gets_the_asked_rate() {
        let mut g = RateGate::new(5.0);
        // 29.97 fps for 10 s.
        let frames = (0..300u64).map(|i| i * 1_001_000_000_000 / 30_000);
        let n = admitted(&mut g, frames);
        assert!((49..=51).contains(&n), "{n}");
    }

    #[test]
    fn a_rate_above_the_stream_passes_everything() {
        let mut g = RateGate::new(50.0);
        assert_eq!(admitted(&mut g, (0..100u64).map(|i| i * 40_000_000)), 100);
    }

    #[test]
    fn fractional_rates_work() {
        let mut g = RateGate::new(0.5);
        assert_eq!(admitted(&mut g, (0..250u64).map(|i| i * 40_000_000)), 5);
    }

    #[test]
    fn restart_from_zero_is_admitted_at_once() {
        let mut g = RateGate::new(1.0);
        assert!(g.admit(100_000_000_000));
        assert!(g.admit(0));
        assert!(!g.admit(500_000_000));
        assert!(g.admit(1_000_000_000));
    }

    #[test]
    fn a_gap_re_anchors_the_cadence() {
        let mut g = RateGate::new(1.0);
        assert!(g.admit(0));
        assert!(g.admit(10_300_000_000)); // 10 s gap
        assert!(!g.admit(11_000_000_000));
        assert!(g.admit(11_300_000_000));
    }
}
