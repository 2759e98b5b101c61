//! Counting lines: tracks crossing a segment, counted per line, direction and label. Pure.
//!
//! # Left and right
//!
//! Left and right are those of someone walking along the line from its first point to its
//! second, on the image as displayed (x to the right, y downwards). For the line
//! `points = [[0.5, 0.0], [0.5, 1.0]]` the walker goes down the picture, so their left hand is
//! the right half of the picture: an object moving from x = 0.2 to x = 0.8 crosses
//! `right_to_left`, and one moving from x = 0.8 to x = 0.2 crosses `left_to_right`. For
//! `[[0.0, 0.5], [1.0, 0.5]]` (walking right) the walker's left is the top of the picture, so
//! an object coming down the picture (usually towards the camera) crosses `left_to_right`.
//! Swap the two points to swap the names.
//!
//! # What counts as a crossing
//!
//! Each track has a confirmed side per line, which changes only when its reference point is
//! more than `hysteresis` (normalised distance) from the infinite line through the two points:
//! inside that band nothing changes, so a box jittering on the line never counts twice. When
//! the confirmed side changes, it is a crossing if the segment from the last point confirmed
//! on the old side to the first point confirmed on the new side intersects the line segment:
//! walking around the end of a line is not crossing it. Each track counts at most once per
//! line per direction, so someone dithering in a doorway counts once each way at most.

use std::collections::{BTreeMap, HashMap};

use super::geometry::{self, Point};
use super::{FrameSize, Problems, RulesError, TrackedObject};

/// Half-width of the dead band around a line, normalised: 2% of the frame.
pub const DEFAULT_HYSTERESIS: f32 = 0.02;

/// The direction of one crossing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    LeftToRight,
    RightToLeft,
}

impl Direction {
    /// The config and payload name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::LeftToRight => "left_to_right",
            Direction::RightToLeft => "right_to_left",
        }
    }
}

/// The directions a line counts: the `direction` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directions {
    LeftToRight,
    RightToLeft,
    Both,
}

impl Directions {
    /// Parse the `direction` key: `"left_to_right"`, `"right_to_left"` or `"both"`.
    pub fn from_key(key: &str) -> Option<Directions> {
        match key {
            "left_to_right" => Some(Directions::LeftToRight),
            "right_to_left" => Some(Directions::RightToLeft),
            "both" => Some(Directions::Both),
            _ => None,
        }
    }

    pub fn allows(self, d: Direction) -> bool {
        match self {
            Directions::Both => true,
            Directions::LeftToRight => d == Direction::LeftToRight,
            Directions::RightToLeft => d == Direction::RightToLeft,
        }
    }
}

/// One counting line, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct LineConfig {
    /// Unique per camera.
    pub name: String,
    /// Normalised x, y of the two ends; left and right are seen walking from the first to the second.
    pub points: [Point; 2],
    pub direction: Directions,
    /// Only these labels count; `None` counts every label.
    pub labels: Option<Vec<String>>,
    /// Normalised distance from the line a point must pass before its side changes.
    pub hysteresis: f32,
    /// false: the line counts nothing whatever its switch says (`enabled = false`).
    pub enabled: bool,
}

impl LineConfig {
    /// A line with the documented defaults: both directions, every label, hysteresis 0.02.
    pub fn new(name: impl Into<String>, points: [Point; 2]) -> LineConfig {
        LineConfig {
            name: name.into(),
            points,
            direction: Directions::Both,
            labels: None,
            hysteresis: DEFAULT_HYSTERESIS,
            enabled: true,
        }
    }

    /// This line's own problems (its name's uniqueness is the lines' to check).
    pub(crate) fn check(&self) -> Result<(), RulesError> {
        let mut problems = Problems::default();
        self.validate(&mut problems);
        problems.finish()
    }

    fn validate(&self, problems: &mut Problems) {
        let owner = format!("line `{}`", self.name);
        let [a, b] = self.points;
        if problems.check(geometry::validate_points(&owner, &self.points)) && a == b {
            problems.push(RulesError::ZeroLength { owner: owner.clone() });
        }
        problems.labels(&owner, &self.labels);
        let h = self.hysteresis;
        let ok = h.is_finite() && (0.0..0.5).contains(&h);
        problems.range(ok, &owner, "hysteresis", h, "a normalised distance of at least 0 and below 0.5");
    }
}

/// Cumulative crossings of one line by one label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineCounts {
    pub left_to_right: u64,
    pub right_to_left: u64,
}

impl LineCounts {
    fn add(&mut self, d: Direction) {
        match d {
            Direction::LeftToRight => self.left_to_right += 1,
            Direction::RightToLeft => self.right_to_left += 1,
        }
    }
}

/// A counted crossing.
#[derive(Debug, Clone, PartialEq)]
pub enum LineEvent {
    /// `counts_for_label` are the line's counts for `label`, this crossing included.
    Crossed { line: String, id: u64, label: String, direction: Direction, t: f64, counts_for_label: LineCounts },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// A track's state on one line.
#[derive(Debug, Clone, Copy, Default)]
struct OnLine {
    /// The confirmed side and the last point confirmed on it; `None` until the track is first
    /// seen outside the dead band.
    side: Option<(Side, Point)>,
    counted_left_to_right: bool,
    counted_right_to_left: bool,
}

impl OnLine {
    /// Marks the direction counted; false if it already was.
    fn first_time(&mut self, d: Direction) -> bool {
        let flag = match d {
            Direction::LeftToRight => &mut self.counted_left_to_right,
            Direction::RightToLeft => &mut self.counted_right_to_left,
        };
        !std::mem::replace(flag, true)
    }
}

/// All counting lines of one camera, with each track's state and the cumulative counts.
#[derive(Debug, Clone)]
pub struct Lines {
    lines: Vec<LineConfig>,
    /// One state per line, in config order.
    tracks: HashMap<u64, Vec<OnLine>>,
    counts: BTreeMap<(String, String), LineCounts>,
    /// Per line, in config order: false while switched off (`toggles`): nothing counted.
    enabled: Vec<bool>,
}

impl Lines {
    /// Validate every line (names unique, two distinct points in the frame) and report every
    /// problem at once.
    pub fn new(lines: Vec<LineConfig>) -> Result<Lines, RulesError> {
        let mut problems = Problems::default();
        for l in &lines {
            l.validate(&mut problems);
        }
        super::check_names(&mut problems, "line", lines.iter().map(|l| l.name.as_str()));
        problems.finish()?;
        let enabled = lines.iter().map(|l| l.enabled).collect();
        Ok(Lines { lines, tracks: HashMap::new(), counts: BTreeMap::new(), enabled })
    }

    pub fn configs(&self) -> &[LineConfig] {
        &self.lines
    }

    /// Switch the line `name` on or off; false if there is no such line. Off, crossings are
    /// neither counted nor reported, but each track's side keeps following it, so switching
    /// the line back on does not count a crossing that happened while it was off.
    pub fn set_enabled(&mut self, name: &str, on: bool) -> bool {
        match self.lines.iter().position(|l| l.name == name) {
            Some(i) => {
                self.enabled[i] = on && self.lines[i].enabled;
                true
            }
            None => false,
        }
    }

    /// One frame: `objects` are the tracks seen in it, at capture time `t` seconds. Tracks not
    /// in the list keep their state until [`Lines::remove`]. Returns the counted crossings, per
    /// object, per line in config order.
    pub fn update(&mut self, t: f64, frame: FrameSize, objects: &[TrackedObject]) -> Vec<LineEvent> {
        let mut events = Vec::new();
        let n = self.lines.len();
        for obj in objects {
            let Some(p) = geometry::reference_point(obj.bbox, frame) else {
                continue;
            };
            let states = self.tracks.entry(obj.id).or_insert_with(|| vec![OnLine::default(); n]);
            for ((line, state), on) in self.lines.iter().zip(states.iter_mut()).zip(&self.enabled) {
                if !super::label_allowed(&line.labels, &obj.label) {
                    continue;
                }
                let Some(direction) = step(line, state, p) else {
                    continue;
                };
                if !on || !line.direction.allows(direction) || !state.first_time(direction) {
                    continue;
                }
                let counts = self.counts.entry((line.name.clone(), obj.label.clone())).or_default();
                counts.add(direction);
                events.push(LineEvent::Crossed {
                    line: line.name.clone(),
                    id: obj.id,
                    label: obj.label.clone(),
                    direction,
                    t,
                    counts_for_label: *counts,
                });
            }
        }
        events
    }

    /// The track ended: forget it. Crossings already counted stay counted.
    pub fn remove(&mut self, id: u64) {
        self.tracks.remove(&id);
    }

    /// Cumulative crossings per (line, label), for the pairs crossed at least once.
    pub fn counts(&self) -> BTreeMap<(String, String), LineCounts> {
        self.counts.clone()
    }
}

/// Move one track's state on one line to the point `p`; the direction if it crossed.
fn step(line: &LineConfig, state: &mut OnLine, p: Point) -> Option<Direction> {
    let [a, b] = line.points;
    let length = ((b.x - a.x).powi(2) + (b.y - a.y).powi(2)).sqrt();
    let distance = geometry::side(a, b, p) / length;
    if distance.abs() <= line.hysteresis {
        return None;
    }
    // Negative is the walker's left: see geometry::side.
    let side = if distance < 0.0 { Side::Left } else { Side::Right };
    let previous = state.side.replace((side, p));
    match previous {
        Some((was, from)) if was != side && geometry::segments_intersect(from, p, a, b) => {
            Some(if was == Side::Left { Direction::LeftToRight } else { Direction::RightToLeft })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: FrameSize = FrameSize { width: 100, height: 100 };

    fn p(x: f32, y: f32) -> Point {
        Point::new(x, y)
    }

    /// Walking down the middle of the picture.
    fn vertical() -> LineConfig {
        LineConfig::new("gate", [p(0.5, 0.0), p(0.5, 1.0)])
    }

    fn obj(id: u64, label: &str, x: f32, y: f32) -> TrackedObject {
        let (px, py) = (x * 100.0, y * 100.0);
        TrackedObject { id, label: label.into(), bbox: [px - 5.0, py - 20.0, px + 5.0, py], score: 0.9 }
    }

    /// Move track `id` through the points, one per frame; return the directions counted.
    fn walk(lines: &mut Lines, id: u64, label: &str, path: &[(f32, f32)]) -> Vec<Direction> {
        path.iter()
            .enumerate()
            .flat_map(|(i, &(x, y))| lines.update(i as f64, FRAME, &[obj(id, label, x, y)]))
            .map(|LineEvent::Crossed { direction, .. }| direction)
            .collect()
    }

    #[test]
    fn a_line_switched_off_counts_nothing_and_back_on_does_not_count_the_past() {
        let mut lines = Lines::new(vec![vertical()]).unwrap();
        assert!(lines.set_enabled("gate", false) && !lines.set_enabled("nope", false));
        // Crossed while off: not counted, not reported.
        assert!(walk(&mut lines, 1, "person", &xs(&[0.2, 0.4, 0.6, 0.8], 0.5)).is_empty());
        assert!(lines.counts().is_empty());
        // Back on: the same track, already on the right, is not counted for its earlier crossing...
        lines.set_enabled("gate", true);
        assert!(lines.update(9.0, FRAME, &[obj(1, "person", 0.9, 0.5)]).is_empty());
        // ...and its next crossing is.
        let back: Vec<Direction> = [0.6, 0.4, 0.2]
            .iter()
            .enumerate()
            .flat_map(|(i, &x)| lines.update(10.0 + i as f64, FRAME, &[obj(1, "person", x, 0.5)]))
            .map(|LineEvent::Crossed { direction, .. }| direction)
            .collect();
        assert_eq!(back.len(), 1);
    }

    #[test]
    fn a_line_its_config_turns_off_stays_off_whatever_its_switch_says() {
        let mut lines = Lines::new(vec![LineConfig { enabled: false, ..vertical() }]).unwrap();
        assert!(lines.set_enabled("gate", true));
        assert!(walk(&mut lines, 1, "person", &xs(&[0.2, 0.4, 0.6, 0.8], 0.5)).is_empty());
        assert!(lines.counts().is_empty());
    }

    fn xs(xs: &[f32], y: f32) -> Vec<(f32, f32)> {
        xs.iter().map(|&x| (x, y)).collect()
    }

    #[test]
    fn left_and_right_as_seen_walking_from_first_point_to_second() {
        // Walking down the picture, the walker's left is the picture's right (x > 0.5).
        let mut lines = Lines::new(vec![vertical()]).expect("valid");
        assert_eq!(walk(&mut lines, 1, "person", &xs(&[0.2, 0.8], 0.5)), vec![Direction::RightToLeft]);
        assert_eq!(walk(&mut lines, 2, "person", &xs(&[0.8, 0.2], 0.5)), vec![Direction::LeftToRight]);
        // The same line drawn upwards swaps them.
        let mut lines = Lines::new(vec![LineConfig::new("gate", [p(0.5, 1.0), p(0.5, 0.0)])]).expect("valid");
        assert_eq!(walk(&mut lines, 1, "person", &xs(&[0.2, 0.8], 0.5)), vec![Direction::LeftToRight]);
        // Walking right along the picture, the walker's left is the top: coming down is left to right.
        let mut lines = Lines::new(vec![LineConfig::new("road", [p(0.0, 0.5), p(1.0, 0.5)])]).expect("valid");
        let down = [(0.5, 0.3), (0.5, 0.7)];
        assert_eq!(walk(&mut lines, 1, "car", &down), vec![Direction::LeftToRight]);
        let up = [(0.5, 0.7), (0.5, 0.3)];
        assert_eq!(walk(&mut lines, 2, "car", &up), vec![Direction::RightToLeft]);
    }

    #[test]
    fn counts_are_per_line_direction_and_label() {
        let mut lines = Lines::new(vec![vertical()]).expect("valid");
        walk(&mut lines, 1, "person", &xs(&[0.2, 0.8], 0.5));
        walk(&mut lines, 2, "person", &xs(&[0.2, 0.8], 0.5));
        walk(&mut lines, 3, "person", &xs(&[0.8, 0.2], 0.5));
        let ev = lines.update(9.0, FRAME, &[obj(4, "car", 0.2, 0.5)]);
        assert!(ev.is_empty());
        let ev = lines.update(10.0, FRAME, &[obj(4, "car", 0.8, 0.5)]);
        assert_eq!(
            ev,
            vec![LineEvent::Crossed {
                line: "gate".into(),
                id: 4,
                label: "car".into(),
                direction: Direction::RightToLeft,
                t: 10.0,
                counts_for_label: LineCounts { left_to_right: 0, right_to_left: 1 },
            }]
        );
        let counts = lines.counts();
        assert_eq!(
            counts.get(&("gate".into(), "person".into())),
            Some(&LineCounts { left_to_right: 1, right_to_left: 2 })
        );
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn jitter_on_the_line_never_double_counts() {
        let mut lines = Lines::new(vec![vertical()]).expect("valid");
        // From the right side, then wobbling within ±0.015 of the line, then on to the left.
        let mut path = vec![0.3];
        path.extend((0..30).map(|i| if i % 2 == 0 { 0.485 } else { 0.515 }));
        path.push(0.7);
        path.extend((0..30).map(|i| if i % 2 == 0 { 0.485 } else { 0.515 }));
        assert_eq!(walk(&mut lines, 1, "person", &xs(&path, 0.5)), vec![Direction::RightToLeft]);
        // A track that only ever jitters on the line never counts.
        let jitter: Vec<f32> = (0..30).map(|i| if i % 2 == 0 { 0.49 } else { 0.51 }).collect();
        assert!(walk(&mut lines, 2, "person", &xs(&jitter, 0.5)).is_empty());
    }

    #[test]
    fn a_crossing_in_small_steps_through_the_band_counts_once() {
        let mut lines = Lines::new(vec![vertical()]).expect("valid");
        let path: Vec<f32> = (0..=60).map(|i| 0.2 + i as f32 * 0.01).collect();
        assert_eq!(walk(&mut lines, 1, "person", &xs(&path, 0.5)), vec![Direction::RightToLeft]);
    }

    #[test]
    fn a_crossing_outside_the_segment_does_not_count() {
        let mut lines = Lines::new(vec![LineConfig::new("door", [p(0.5, 0.4), p(0.5, 0.6)])]).expect("valid");
        // Passing below the door's lower end.
        assert!(walk(&mut lines, 1, "person", &xs(&[0.2, 0.8], 0.9)).is_empty());
        // Walking around the end: down the right side, across below it, up the left side.
        let around = [(0.3, 0.5), (0.3, 0.8), (0.7, 0.8), (0.7, 0.5)];
        assert!(walk(&mut lines, 2, "person", &around).is_empty());
        // Through the door: counted.
        assert_eq!(walk(&mut lines, 3, "person", &xs(&[0.2, 0.8], 0.5)), vec![Direction::RightToLeft]);
        // A diagonal step that passes the line at y = 0.59, just inside the door's lower end.
        assert_eq!(walk(&mut lines, 4, "person", &[(0.2, 0.2), (0.8, 0.98)]), vec![Direction::RightToLeft]);
    }

    #[test]
    fn direction_filter_is_respected() {
        let line = LineConfig { direction: Directions::LeftToRight, ..vertical() };
        let mut lines = Lines::new(vec![line]).expect("valid");
        assert!(walk(&mut lines, 1, "person", &xs(&[0.2, 0.8], 0.5)).is_empty());
        assert_eq!(walk(&mut lines, 2, "person", &xs(&[0.8, 0.2], 0.5)), vec![Direction::LeftToRight]);
        // A disallowed crossing is neither reported nor counted.
        assert_eq!(
            lines.counts().get(&("gate".into(), "person".into())),
            Some(&LineCounts { left_to_right: 1, right_to_left: 0 })
        );
        // A disallowed crossing still moves the side: the way back is counted.
        assert_eq!(walk(&mut lines, 3, "person", &xs(&[0.2, 0.8, 0.2], 0.5)), vec![Direction::LeftToRight]);
    }

    #[test]
    fn a_dithering_track_counts_at_most_once_per_direction() {
        let mut lines = Lines::new(vec![vertical()]).expect("valid");
        let path: Vec<f32> = (0..20).map(|i| if i % 2 == 0 { 0.3 } else { 0.7 }).collect();
        assert_eq!(
            walk(&mut lines, 1, "person", &xs(&path, 0.5)),
            vec![Direction::RightToLeft, Direction::LeftToRight]
        );
        assert_eq!(
            lines.counts().get(&("gate".into(), "person".into())),
            Some(&LineCounts { left_to_right: 1, right_to_left: 1 })
        );
        // Once removed, the same id is a new track and counts again.
        lines.remove(1);
        assert_eq!(walk(&mut lines, 1, "person", &xs(&[0.3, 0.7], 0.5)), vec![Direction::RightToLeft]);
    }

    #[test]
    fn a_gap_keeps_the_side() {
        let mut lines = Lines::new(vec![vertical()]).expect("valid");
        assert!(lines.update(0.0, FRAME, &[obj(1, "person", 0.3, 0.5)]).is_empty());
        for t in 1..5 {
            assert!(lines.update(t as f64, FRAME, &[]).is_empty());
        }
        assert_eq!(lines.update(5.0, FRAME, &[obj(1, "person", 0.7, 0.5)]).len(), 1);
    }

    #[test]
    fn labels_restrict_the_line() {
        let line = LineConfig { labels: Some(vec!["car".into()]), ..vertical() };
        let mut lines = Lines::new(vec![line]).expect("valid");
        assert!(walk(&mut lines, 1, "person", &xs(&[0.2, 0.8], 0.5)).is_empty());
        assert_eq!(walk(&mut lines, 2, "car", &xs(&[0.2, 0.8], 0.5)).len(), 1);
    }

    /// Property: whatever the trajectories, a track counts at most once per line per
    /// direction, and the cumulative counts are exactly the reported crossings.
    #[test]
    fn property_at_most_once_per_direction_and_counts_match_events() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32) / ((1u64 << 31) as f32)
        };
        let diagonal = LineConfig::new("diagonal", [p(0.1, 0.2), p(0.8, 0.9)]);
        let door =
            LineConfig { direction: Directions::RightToLeft, ..LineConfig::new("door", [p(0.5, 0.3), p(0.5, 0.7)]) };
        let mut lines = Lines::new(vec![diagonal, door]).expect("valid");
        let mut per_track: BTreeMap<(u64, String, Direction), u32> = BTreeMap::new();
        let mut totals: BTreeMap<(String, String), LineCounts> = BTreeMap::new();
        let mut pos: Vec<(f32, f32)> = (0..8).map(|_| (next(), next())).collect();
        for step in 0..5000 {
            let mut objects = Vec::new();
            for (id, q) in pos.iter_mut().enumerate() {
                q.0 = (q.0 + (next() - 0.5) * 0.15).clamp(0.0, 1.0);
                q.1 = (q.1 + (next() - 0.5) * 0.15).clamp(0.0, 1.0);
                if next() < 0.9 {
                    objects.push(obj(id as u64, if id % 2 == 0 { "person" } else { "car" }, q.0, q.1));
                }
            }
            for LineEvent::Crossed { line, id, label, direction, counts_for_label, .. } in
                lines.update(step as f64, FRAME, &objects)
            {
                assert!(line != "door" || direction == Direction::RightToLeft);
                *per_track.entry((id, line.clone(), direction)).or_default() += 1;
                let total = totals.entry((line, label)).or_default();
                total.add(direction);
                assert_eq!(*total, counts_for_label);
            }
        }
        assert!(per_track.values().all(|&n| n == 1), "{per_track:?}");
        assert!(!per_track.is_empty());
        assert_eq!(totals, lines.counts());
    }

    #[test]
    fn direction_keys() {
        assert_eq!(Directions::from_key("both"), Some(Directions::Both));
        assert_eq!(Directions::from_key("left_to_right"), Some(Directions::LeftToRight));
        assert_eq!(Directions::from_key("right_to_left"), Some(Directions::RightToLeft));
        assert_eq!(Directions::from_key("up"), None);
        assert_eq!(Direction::LeftToRight.as_str(), "left_to_right");
    }

    #[test]
    fn validation() {
        let err = |l: LineConfig| Lines::new(vec![l]).err().map(|e| e.to_string());
        assert_eq!(
            err(LineConfig::new("gate", [p(0.5, 0.5), p(0.5, 0.5)])).as_deref(),
            Some("line `gate`: both points are the same; a counting line needs two distinct points")
        );
        assert!(matches!(
            Lines::new(vec![LineConfig::new("gate", [p(0.5, 0.5), p(1.5, 0.5)])]),
            Err(RulesError::OutsideFrame { index: 1, .. })
        ));
        assert_eq!(
            err(LineConfig { hysteresis: -0.1, ..vertical() }).as_deref(),
            Some(
                "line `gate`: hysteresis = -0.1 is out of range; expected a normalised distance of at least 0 and below 0.5"
            )
        );
        assert!(Lines::new(vec![vertical(), vertical()]).is_err());
    }
}
