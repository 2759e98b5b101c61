//! The objects stage's settings (a camera file's `[track]`, `[filters]`, zones, lines,
//! `[stationary]`, `[events]` and `[snapshots]`), validated, with their defaults. `config` reads
//! and checks the files and builds these.

use crate::detect::labels::LabelTable;
use crate::detect::settings::DEFAULT_MIN_SCORE;
use crate::objects::lifecycle::LifecycleConfig;
use crate::objects::snapshot::SnapshotConfig;
use crate::rules::RulesConfig;
use crate::track::TrackerConfig;

/// Names a zone or line can't take: they would collide with other topics of the camera.
pub const RESERVED_TOPIC_NAMES: [&str; 5] = ["events", "status", "snapshot", "detect", "stats"];
pub const DEFAULT_TRACK_LOW_SCORE: f32 = 0.1;
pub const DEFAULT_TRACK_MIN_HITS: u32 = 3;
pub const DEFAULT_MAX_LOST_SECONDS: f64 = 1.5;
pub const DEFAULT_EVENT_THRESHOLD: f32 = 0.7;
pub const DEFAULT_UPDATE_INTERVAL_SECONDS: f64 = 10.0;
pub const DEFAULT_PARKED_SECONDS: f64 = 300.0;
pub const DEFAULT_SNAPSHOT_RETAIN_DAYS: f64 = 7.0;

/// Tracking, rules and the event lifecycle of one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectsSpec {
    pub tracker: TrackerConfig,
    pub lifecycle: LifecycleConfig,
    /// Validated: `Rules::new` accepts it.
    pub rules: RulesConfig,
    /// Publish every frame's raw detections too.
    pub publish_detections: bool,
    pub snapshots: SnapshotConfig,
    /// The model's class names: what a detection's class index means.
    pub labels: LabelTable,
}

impl Default for ObjectsSpec {
    /// The defaults a camera file with no object tables gets.
    fn default() -> ObjectsSpec {
        ObjectsSpec {
            tracker: TrackerConfig {
                high_score: DEFAULT_MIN_SCORE,
                low_score: DEFAULT_TRACK_LOW_SCORE,
                new_track_score: DEFAULT_MIN_SCORE + 0.1,
                min_hits: DEFAULT_TRACK_MIN_HITS,
                max_lost_seconds: DEFAULT_MAX_LOST_SECONDS,
                ..TrackerConfig::default()
            },
            lifecycle: LifecycleConfig {
                threshold: DEFAULT_EVENT_THRESHOLD,
                update_interval_seconds: DEFAULT_UPDATE_INTERVAL_SECONDS,
                parked_seconds: DEFAULT_PARKED_SECONDS,
            },
            rules: RulesConfig::default(),
            publish_detections: false,
            snapshots: SnapshotConfig::default(),
            labels: LabelTable::default(),
        }
    }
}
