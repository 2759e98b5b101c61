//! Rules: what the tracked objects of one camera mean. Pure: no I/O and no clock. Time comes
//! in as seconds (the capture time of the frame), so a test replays a trajectory exactly.
//!
//! ```toml
//! [[zones]]
//! name = "driveway"
//! polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0], [0.1, 1.0]]   # normalised x, y
//! labels = ["car"]          # optional: only these labels count in the zone
//! inertia = 3               # optional, default 3: updates in (out) before an enter (exit)
//! loitering_seconds = 30    # optional: one loitering event per visit after this long
//!
//! [[lines]]
//! name = "gate"
//! points = [[0.5, 0.0], [0.5, 1.0]]
//! direction = "both"        # "left_to_right", "right_to_left" or "both"
//! labels = ["person"]       # optional
//! hysteresis = 0.02         # optional, default 0.02: normalised dead band around the line
//! ```
//!
//! - [`filter`] drops raw detections before tracking (labels, score, area, ratio, masks) and
//!   names the reason, so every drop can be counted.
//! - [`zone`], [`line`] and [`stationary`] turn the tracked objects of each frame into events.
//!   Zones and lines test one reference point per object, the bottom centre of its box
//!   normalised by the frame size ([`geometry::reference_point`]): that is where an object
//!   touches the ground, which is what a polygon drawn on the floor means.
//! - [`Rules`] bundles them for one camera.
//!
//! Validation reports every problem at once ([`RulesError::Several`]), each naming the zone or
//! line and what to change.

pub mod filter;
pub mod geometry;
pub mod line;
pub mod stationary;
mod validate;
pub mod zone;

pub use filter::{Filters, LabelFilter, Rejected};
pub use geometry::Point;
pub use line::{Direction, Directions, LineConfig, LineCounts, LineEvent, Lines};
pub use stationary::{Stationary, StationaryConfig, StationaryEvent};
pub use zone::{ZoneConfig, ZoneEvent, Zones};

/// One tracked object in one frame, as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedObject {
    /// Track id, stable for the life of the track.
    pub id: u64,
    pub label: String,
    /// x1, y1, x2, y2 in source pixels.
    pub bbox: [f32; 4],
    pub score: f32,
}

/// Frame size in pixels, to normalise pixel boxes: zones and lines are drawn in 0..1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

/// A config problem in the rules of one camera. Each message names the zone, line or filter
/// and what the operator should change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulesError {
    #[error("{owner}: polygon needs at least 3 points, got {got}")]
    TooFewPoints { owner: String, got: usize },
    #[error("{owner}: point {index} [{x}, {y}] is not a finite number")]
    NotFinite { owner: String, index: usize, x: f32, y: f32 },
    #[error(
        "{owner}: point {index} [{x}, {y}] is outside the frame; coordinates are normalised, \
         each between 0 and 1"
    )]
    OutsideFrame { owner: String, index: usize, x: f32, y: f32 },
    #[error(
        "{owner}: polygon encloses no area (its points are repeated or on one line); give it \
         at least 3 points around a region"
    )]
    ZeroArea { owner: String },
    #[error("{owner}: both points are the same; a counting line needs two distinct points")]
    ZeroLength { owner: String },
    #[error("{owner}: {key} = {value} is out of range; expected {expected}")]
    OutOfRange { owner: String, key: &'static str, value: String, expected: &'static str },
    #[error("{owner}: {min_key} = {min} is above {max_key} = {max}; make {min_key} at most {max_key}")]
    MinAboveMax { owner: String, min_key: &'static str, min: String, max_key: &'static str, max: String },
    #[error(
        "{owner}: labels is empty, so nothing would match; omit labels to match every label, \
         or list at least one"
    )]
    EmptyLabels { owner: String },
    #[error("a {kind} has an empty name; give every {kind} a name")]
    EmptyName { kind: &'static str },
    #[error("{kind} `{name}` is defined more than once; give each {kind} a unique name")]
    DuplicateName { kind: &'static str, name: String },
    /// More than one problem: validation reports them all at once.
    #[error("{}", join(.0))]
    Several(Vec<RulesError>),
}

impl RulesError {
    /// The individual problems, so a caller can attach its file and key to each.
    pub fn into_list(self) -> Vec<RulesError> {
        match self {
            RulesError::Several(list) => list,
            one => vec![one],
        }
    }
}

fn join(list: &[RulesError]) -> String {
    list.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Collects every validation problem, so the operator fixes a config in one pass.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<RulesError>);

impl Problems {
    pub(crate) fn push(&mut self, e: RulesError) {
        self.0.extend(e.into_list());
    }

    /// Records the problem, if any; true when there was none.
    pub(crate) fn check(&mut self, r: Result<(), RulesError>) -> bool {
        match r {
            Ok(()) => true,
            Err(e) => {
                self.push(e);
                false
            }
        }
    }

    /// `ok` is the condition the value must meet; a problem is recorded when it does not.
    pub(crate) fn range(
        &mut self,
        ok: bool,
        owner: &str,
        key: &'static str,
        value: impl ToString,
        expected: &'static str,
    ) {
        if !ok {
            self.push(RulesError::OutOfRange { owner: owner.to_string(), key, value: value.to_string(), expected });
        }
    }

    pub(crate) fn labels(&mut self, owner: &str, labels: &Option<Vec<String>>) {
        if labels.as_ref().is_some_and(Vec::is_empty) {
            self.push(RulesError::EmptyLabels { owner: owner.to_string() });
        }
    }

    pub(crate) fn finish(self) -> Result<(), RulesError> {
        if self.0.is_empty() { Ok(()) } else { Err(self.into_error()) }
    }

    /// The problems as one error: the problem itself when there is one.
    pub(crate) fn into_error(mut self) -> RulesError {
        if self.0.len() == 1 { self.0.remove(0) } else { RulesError::Several(self.0) }
    }
}

/// Names must be non-empty and unique within their kind: they are MQTT topic levels and the
/// keys of counts, so two zones of one name would merge silently.
pub(crate) fn check_names<'a>(problems: &mut Problems, kind: &'static str, names: impl Iterator<Item = &'a str>) {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if name.is_empty() {
            problems.push(RulesError::EmptyName { kind });
        } else if !seen.insert(name) {
            problems.push(RulesError::DuplicateName { kind, name: name.to_string() });
        }
    }
}

/// `None` matches every label.
pub(crate) fn label_allowed(labels: &Option<Vec<String>>, label: &str) -> bool {
    labels.as_ref().is_none_or(|l| l.iter().any(|x| x == label))
}

/// Everything the rules of one camera are built from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesConfig {
    pub filters: Filters,
    pub zones: Vec<ZoneConfig>,
    pub lines: Vec<LineConfig>,
    pub stationary: StationaryConfig,
}

/// What one update of [`Rules`] produced, each list in the order its module emitted it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RulesOutput {
    pub zone_events: Vec<ZoneEvent>,
    pub line_events: Vec<LineEvent>,
    pub stationary_events: Vec<StationaryEvent>,
}

impl RulesOutput {
    pub fn is_empty(&self) -> bool {
        self.zone_events.is_empty() && self.line_events.is_empty() && self.stationary_events.is_empty()
    }
}

/// The rules of one camera: filters for the raw detections, then zones, lines and stationary
/// state for the tracked objects.
#[derive(Debug, Clone)]
pub struct Rules {
    filters: Filters,
    zones: Zones,
    lines: Lines,
    stationary: Stationary,
}

impl Rules {
    /// Validate everything and report every problem at once.
    pub fn new(config: RulesConfig) -> Result<Rules, RulesError> {
        let mut problems = Problems::default();
        let filters_ok = problems.check(config.filters.validate());
        let zones = Zones::new(config.zones).map_err(|e| problems.push(e));
        let lines = Lines::new(config.lines).map_err(|e| problems.push(e));
        let stationary = Stationary::new(config.stationary).map_err(|e| problems.push(e));
        match (zones, lines, stationary) {
            (Ok(zones), Ok(lines), Ok(stationary)) if filters_ok => {
                Ok(Rules { filters: config.filters, zones, lines, stationary })
            }
            _ => Err(problems.into_error()),
        }
    }

    /// The detection filters: apply them to raw detections, before the tracker sees them.
    pub fn filters(&self) -> &Filters {
        &self.filters
    }

    /// Switch a zone on or off ([`Zones::set_enabled`]); false if there is no such zone.
    pub fn set_zone_enabled(&mut self, name: &str, on: bool) -> bool {
        self.zones.set_enabled(name, on)
    }

    /// Switch mask `n` (from 1) on or off ([`Filters::set_mask_enabled`]).
    pub fn set_mask_enabled(&mut self, n: usize, on: bool) -> bool {
        self.filters.set_mask_enabled(n, on)
    }

    /// Switch a line on or off ([`Lines::set_enabled`]); false if there is no such line.
    pub fn set_line_enabled(&mut self, name: &str, on: bool) -> bool {
        self.lines.set_enabled(name, on)
    }

    pub fn zones(&self) -> &Zones {
        &self.zones
    }

    pub fn lines(&self) -> &Lines {
        &self.lines
    }

    pub fn stationary(&self) -> &Stationary {
        &self.stationary
    }

    /// One frame of tracked objects at capture time `t` (seconds). Tracks absent from
    /// `objects` keep their state until [`Rules::remove`].
    pub fn update(&mut self, t: f64, frame: FrameSize, objects: &[TrackedObject]) -> RulesOutput {
        RulesOutput {
            zone_events: self.zones.update(t, frame, objects),
            line_events: self.lines.update(t, frame, objects),
            stationary_events: self.stationary.update(t, objects),
        }
    }

    /// The track ended: it exits every zone it is in, and all its state is forgotten. Read
    /// [`Zones::entered_zones`] first if the end event needs it.
    pub fn remove(&mut self, id: u64) -> RulesOutput {
        self.lines.remove(id);
        self.stationary.remove(id);
        RulesOutput { zone_events: self.zones.remove(id), ..RulesOutput::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Vec<Point> {
        vec![Point::new(0.0, 0.5), Point::new(1.0, 0.5), Point::new(1.0, 1.0), Point::new(0.0, 1.0)]
    }

    #[test]
    fn reports_every_problem_at_once_naming_each_owner() {
        let config = RulesConfig {
            zones: vec![
                ZoneConfig::new("driveway", vec![Point::new(0.1, 0.5), Point::new(0.6, 0.5)]),
                ZoneConfig::new("driveway", square()),
            ],
            lines: vec![LineConfig::new("gate", [Point::new(0.5, 0.0), Point::new(0.5, 0.0)])],
            stationary: StationaryConfig { moving_updates: 0, ..StationaryConfig::default() },
            ..RulesConfig::default()
        };
        let err = Rules::new(config).err().map(RulesError::into_list).unwrap_or_default();
        let messages: Vec<String> = err.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec![
                "zone `driveway`: polygon needs at least 3 points, got 2".to_string(),
                "zone `driveway` is defined more than once; give each zone a unique name".into(),
                "line `gate`: both points are the same; a counting line needs two distinct points".into(),
                "stationary: moving_updates = 0 is out of range; expected at least 1 update".into(),
            ]
        );
    }

    #[test]
    fn bundles_zones_lines_and_stationary() {
        let config = RulesConfig {
            zones: vec![ZoneConfig { inertia: 1, ..ZoneConfig::new("yard", square()) }],
            lines: vec![LineConfig::new("gate", [Point::new(0.5, 0.0), Point::new(0.5, 1.0)])],
            ..RulesConfig::default()
        };
        let mut rules = Rules::new(config).expect("valid");
        let frame = FrameSize { width: 100, height: 100 };
        let at =
            |x: f32| TrackedObject { id: 7, label: "person".into(), bbox: [x - 5.0, 70.0, x + 5.0, 90.0], score: 0.9 };
        let out = rules.update(0.0, frame, &[at(20.0)]);
        assert_eq!(out.zone_events.len(), 2); // entered + occupancy
        assert!(out.line_events.is_empty());
        let out = rules.update(1.0, frame, &[at(80.0)]);
        assert_eq!(out.line_events.len(), 1);
        let out = rules.remove(7);
        assert!(matches!(out.zone_events[0], ZoneEvent::Exited { t: 1.0, .. }));
        assert!(rules.zones().current_zones(7).is_empty());
    }
}
