//! Stationary objects: a parked car or a package left on the step. Pure.
//!
//! Each track keeps a reference position, the centre of its box. While the centre stays within
//! `threshold` × the box's larger side of it for `stationary_seconds`, the track becomes
//! stationary. It becomes moving again only after `moving_updates` consecutive updates more than
//! twice that far away: the wider band and the run of updates keep a noisy box on a parked car
//! from flapping. Distances are relative to the box, so the rule is the same near the camera
//! and far from it. Tracks absent from a frame keep their state: a short gap resets nothing.

use std::collections::HashMap;

use super::{Problems, RulesError, TrackedObject};

/// Movement allowed, as a fraction of the box's larger side.
pub const DEFAULT_THRESHOLD: f32 = 0.1;
/// Seconds within the threshold before a track is stationary.
pub const DEFAULT_STATIONARY_SECONDS: f64 = 10.0;
/// Consecutive updates beyond twice the threshold before a stationary track moves again.
pub const DEFAULT_MOVING_UPDATES: u32 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct StationaryConfig {
    /// Movement allowed while still, as a fraction of the box's larger side; above 0.
    pub threshold: f32,
    /// Seconds within the threshold before the track is stationary; 0 or more.
    pub stationary_seconds: f64,
    /// Consecutive updates beyond 2 × threshold before a stationary track moves; at least 1.
    pub moving_updates: u32,
}

impl Default for StationaryConfig {
    fn default() -> StationaryConfig {
        StationaryConfig {
            threshold: DEFAULT_THRESHOLD,
            stationary_seconds: DEFAULT_STATIONARY_SECONDS,
            moving_updates: DEFAULT_MOVING_UPDATES,
        }
    }
}

impl StationaryConfig {
    pub(crate) fn check(&self) -> Result<(), RulesError> {
        let mut problems = Problems::default();
        let owner = "stationary";
        let t = self.threshold;
        problems.range(t.is_finite() && t > 0.0, owner, "threshold", t, "a finite fraction of the box size above 0");
        let s = self.stationary_seconds;
        problems.range(
            s.is_finite() && s >= 0.0,
            owner,
            "stationary_seconds",
            s,
            "a finite number of seconds, 0 or more",
        );
        let m = self.moving_updates;
        problems.range(m >= 1, owner, "moving_updates", m, "at least 1 update");
        problems.finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StationaryEvent {
    /// The track became stationary (`stationary: true`) or moving again (`false`) at `t`.
    Became { id: u64, stationary: bool, t: f64 },
}

#[derive(Debug, Clone)]
struct Track {
    /// Box centre, in pixels, the track is measured against.
    reference: (f32, f32),
    /// When the reference was set: the start of the current still period.
    since: f64,
    stationary: bool,
    /// Consecutive updates beyond the moving band while stationary.
    moving_streak: u32,
}

/// The stationary state of every track of one camera.
#[derive(Debug, Clone)]
pub struct Stationary {
    config: StationaryConfig,
    tracks: HashMap<u64, Track>,
}

impl Stationary {
    pub fn new(config: StationaryConfig) -> Result<Stationary, RulesError> {
        config.check()?;
        Ok(Stationary { config, tracks: HashMap::new() })
    }

    /// One frame of tracks at capture time `t` seconds; returns the changes of state.
    pub fn update(&mut self, t: f64, objects: &[TrackedObject]) -> Vec<StationaryEvent> {
        let mut events = Vec::new();
        let c = &self.config;
        for obj in objects {
            let [x1, y1, x2, y2] = obj.bbox;
            let centre = ((x1 + x2) * 0.5, (y1 + y2) * 0.5);
            let size = (x2 - x1).max(y2 - y1).max(0.0);
            if !(centre.0.is_finite() && centre.1.is_finite() && size.is_finite()) {
                continue; // A box that cannot be measured says nothing about movement.
            }
            let track = self.tracks.entry(obj.id).or_insert(Track {
                reference: centre,
                since: t,
                stationary: false,
                moving_streak: 0,
            });
            let moved = (centre.0 - track.reference.0).hypot(centre.1 - track.reference.1);
            if track.stationary {
                if moved > 2.0 * c.threshold * size {
                    track.moving_streak += 1;
                } else {
                    track.moving_streak = 0;
                }
                if track.moving_streak >= c.moving_updates {
                    *track = Track { reference: centre, since: t, stationary: false, moving_streak: 0 };
                    events.push(StationaryEvent::Became { id: obj.id, stationary: false, t });
                }
            } else if moved > c.threshold * size {
                // Still moving: the still period starts again from here.
                track.reference = centre;
                track.since = t;
            } else if t - track.since >= c.stationary_seconds {
                track.stationary = true;
                track.moving_streak = 0;
                events.push(StationaryEvent::Became { id: obj.id, stationary: true, t });
            }
        }
        events
    }

    pub fn is_stationary(&self, id: u64) -> bool {
        self.tracks.get(&id).is_some_and(|t| t.stationary)
    }

    /// The track ended: forget it.
    pub fn remove(&mut self, id: u64) {
        self.tracks.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 100 × 50 px box centred on (x, y): the threshold distance is 0.1 × 100 = 10 px.
    fn obj(id: u64, x: f32, y: f32) -> TrackedObject {
        TrackedObject { id, label: "car".into(), bbox: [x - 50.0, y - 25.0, x + 50.0, y + 25.0], score: 0.9 }
    }

    fn still() -> Stationary {
        Stationary::new(StationaryConfig::default()).expect("valid")
    }

    /// Positions at 1 s intervals from `t0`; return the times and states of the events.
    fn feed(s: &mut Stationary, t0: f64, path: &[(f32, f32)]) -> Vec<(f64, bool)> {
        path.iter()
            .enumerate()
            .flat_map(|(i, &(x, y))| s.update(t0 + i as f64, &[obj(1, x, y)]))
            .map(|StationaryEvent::Became { stationary, t, .. }| (t, stationary))
            .collect()
    }

    #[test]
    fn a_still_object_becomes_stationary_after_stationary_seconds_and_not_before() {
        let mut s = still();
        // t = 0..9: still, but not yet for 10 s.
        assert!(feed(&mut s, 0.0, &[(500.0, 500.0); 10]).is_empty());
        assert!(!s.is_stationary(1));
        assert_eq!(
            s.update(10.0, &[obj(1, 500.0, 500.0)]),
            vec![StationaryEvent::Became { id: 1, stationary: true, t: 10.0 }]
        );
        assert!(s.is_stationary(1));
        // No repeated events while it stays.
        assert!(feed(&mut s, 11.0, &[(500.0, 500.0); 20]).is_empty());
    }

    #[test]
    fn a_noisy_but_parked_object_does_not_flap() {
        let mut s = still();
        // Jitter of up to ±3 px on each axis: any two positions are at most 6.7 px apart,
        // under the 10 px threshold whichever of them becomes the reference.
        let jitter = |i: usize| -> (f32, f32) {
            let dx = [0.0, 3.0, -3.0, 2.0, -2.0][i % 5];
            let dy = [3.0, -3.0, 0.0, -2.0, 2.0][i % 5];
            (500.0 + dx, 500.0 + dy)
        };
        let path: Vec<(f32, f32)> = (0..60).map(jitter).collect();
        assert_eq!(feed(&mut s, 0.0, &path), vec![(10.0, true)]);
        // While stationary, bursts of big jumps (25 px, beyond 2 × threshold) shorter than
        // moving_updates do not make it move.
        let mut path = Vec::new();
        for i in 0..60 {
            path.push(if i % 3 == 2 { jitter(i) } else { (525.0, 500.0) });
        }
        assert!(feed(&mut s, 60.0, &path).is_empty());
        assert!(s.is_stationary(1));
        // Creeping within 2 × threshold (20 px) while stationary is still stationary.
        assert!(feed(&mut s, 120.0, &[(515.0, 500.0); 20]).is_empty());
    }

    #[test]
    fn a_moving_object_never_becomes_stationary() {
        let mut s = still();
        // 15 px per second, beyond the 10 px threshold every update, for a long time.
        let path: Vec<(f32, f32)> = (0..300).map(|i| (i as f32 * 15.0, 500.0)).collect();
        assert!(feed(&mut s, 0.0, &path).is_empty());
        // Slow but steady: 6 px per second drifts past the threshold every 2 s, resetting it.
        let mut s = still();
        let path: Vec<(f32, f32)> = (0..300).map(|i| (i as f32 * 6.0, 500.0)).collect();
        assert!(feed(&mut s, 0.0, &path).is_empty());
    }

    #[test]
    fn a_short_gap_keeps_the_state() {
        let mut s = still();
        feed(&mut s, 0.0, &[(500.0, 500.0); 5]);
        // Absent from t = 5 to 8: the still period keeps running from t = 0.
        for t in 5..9 {
            assert!(s.update(t as f64, &[]).is_empty());
        }
        assert_eq!(feed(&mut s, 9.0, &[(500.0, 500.0); 2]), vec![(10.0, true)]);
        // A gap while stationary keeps it stationary.
        for t in 11..20 {
            s.update(t as f64, &[]);
        }
        assert!(s.is_stationary(1));
        assert!(feed(&mut s, 20.0, &[(500.0, 500.0)]).is_empty());
    }

    #[test]
    fn it_becomes_moving_after_moving_updates() {
        let mut s = still();
        assert_eq!(feed(&mut s, 0.0, &[(500.0, 500.0); 11]), vec![(10.0, true)]);
        // Drives off at 30 px per update: moving at the third update beyond 20 px.
        let path: Vec<(f32, f32)> = (1..=6).map(|i| (500.0 + 30.0 * i as f32, 500.0)).collect();
        assert_eq!(feed(&mut s, 11.0, &path), vec![(13.0, false)]);
        assert!(!s.is_stationary(1));
        // The reference reset where it became moving: parking again takes stationary_seconds.
        assert_eq!(feed(&mut s, 17.0, &[(800.0, 500.0); 11]), vec![(27.0, true)]);
    }

    #[test]
    fn tracks_are_independent_and_remove_forgets() {
        let mut s = still();
        for t in 0..=10 {
            s.update(t as f64, &[obj(1, 500.0, 500.0), obj(2, 30.0 * t as f32, 100.0)]);
        }
        assert!(s.is_stationary(1));
        assert!(!s.is_stationary(2));
        s.remove(1);
        assert!(!s.is_stationary(1));
    }

    #[test]
    fn validation() {
        let err = |c: StationaryConfig| Stationary::new(c).err().map(|e| e.to_string());
        assert_eq!(
            err(StationaryConfig { threshold: 0.0, ..StationaryConfig::default() }).as_deref(),
            Some("stationary: threshold = 0 is out of range; expected a finite fraction of the box size above 0")
        );
        assert!(err(StationaryConfig { stationary_seconds: f64::NAN, ..StationaryConfig::default() }).is_some());
        assert!(err(StationaryConfig { moving_updates: 0, ..StationaryConfig::default() }).is_some());
    }
}
