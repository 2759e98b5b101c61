//! Multi-object tracking: ByteTrack's two-stage association on a seconds-based Kalman filter.
//! Pure: no I/O, no clock. The caller passes each frame's capture time in seconds.
//!
//! ```text
//! per update(t, observations):
//!   expire   tracks unmatched longer than their limit → Removed (reported once)
//!   predict  every live track by dt = t - previous t        (kalman.rs, velocities in px/s)
//!   stage 1  Confirmed + Lost   × high detections   IoU ≥ match_iou           (assign.rs)
//!   stage 2  still-Confirmed    × low detections    IoU ≥ low_match_iou
//!   stage 3  Tentative          × high left over    IoU ≥ tentative_match_iou
//!   then     unmatched Confirmed → Lost; unmatched high ≥ new_track_score → new Tentative
//! ```
//!
//! Differences from ByteTrack, and why:
//! - Time, not frames: the Kalman filter and every "how long" limit are in seconds, so the same
//!   scene tracked at 5 fps or 30 fps (or with dropped frames) behaves the same.
//! - Association is class-aware: a person on a bicycle overlaps the bicycle almost entirely,
//!   and a class-agnostic tracker would swap their identities. Classes the detector confuses
//!   with each other (car, truck, bus) can be put in one of [`TrackerConfig::label_groups`]:
//!   a track then matches any class of its group, so a car seen as a truck for a few frames
//!   stays one object instead of starting a second. A track's class is the one with the
//!   highest summed score over its life (a van seen as a bus for three weak frames, then as a
//!   car for many strong ones, is a car); the objects layer freezes the label once the object
//!   is reported, so a consumer never sees it change. A second box of another class of the
//!   group on the same object in the same frame (per-class NMS keeps both) starts no track of
//!   its own.
//! - A new track is Tentative until it has `min_hits` matches (ByteTrack confirms after the
//!   second); a lone false positive therefore never gets a Confirmed identity.
//! - The first-stage cost is plain `1 - IoU` (ByteTrack multiplies IoU by detection score).
//!
//! The camera's `[track]` table (docs/configuration.md) sets `low_score`, `new_track_score`,
//! `min_hits`, `max_lost_seconds` and `label_groups`; `high_score` is `detect.min_score`. The
//! IoU thresholds and the tentative gap keep these defaults:
//!
//! ```toml
//! match_iou = 0.2
//! low_match_iou = 0.5
//! tentative_match_iou = 0.3
//! max_tentative_gap_seconds = 0.5
//! ```

pub mod assign;
pub mod kalman;

use crate::detect::nms::iou;
use assign::{CostMatrix, match_below};
use kalman::KalmanBox;

/// Default [`TrackerConfig::high_score`] (ByteTrack's `track_thresh`).
pub const DEFAULT_HIGH_SCORE: f32 = 0.5;
/// Default [`TrackerConfig::low_score`] (ByteTrack's low cut, 0.1).
pub const DEFAULT_LOW_SCORE: f32 = 0.1;
/// Default [`TrackerConfig::new_track_score`] (ByteTrack's `track_thresh + 0.1`).
pub const DEFAULT_NEW_TRACK_SCORE: f32 = 0.6;
/// Default [`TrackerConfig::match_iou`] (ByteTrack's `match_thresh` 0.8 as a cost = 1 - IoU).
pub const DEFAULT_MATCH_IOU: f32 = 0.2;
/// Default [`TrackerConfig::low_match_iou`] (ByteTrack's second-stage threshold 0.5).
pub const DEFAULT_LOW_MATCH_IOU: f32 = 0.5;
/// Default [`TrackerConfig::tentative_match_iou`] (ByteTrack's unconfirmed threshold 0.7).
pub const DEFAULT_TENTATIVE_MATCH_IOU: f32 = 0.3;
/// Default [`TrackerConfig::min_hits`].
pub const DEFAULT_MIN_HITS: u32 = 3;
/// Default [`TrackerConfig::max_lost_seconds`] (ByteTrack's 30-frame buffer at 30 fps is 1 s;
/// a little longer rides out the typical pedestrian occlusion).
pub const DEFAULT_MAX_LOST_SECONDS: f64 = 1.5;
/// Default [`TrackerConfig::max_tentative_gap_seconds`].
pub const DEFAULT_MAX_TENTATIVE_GAP_SECONDS: f64 = 0.5;

/// Tracker settings. Scores are detector confidences in [0, 1]; IoU thresholds are minimum
/// overlaps for a match.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// Detections scoring at least this take part in the first association.
    pub high_score: f32,
    /// Detections scoring below this are ignored entirely.
    pub low_score: f32,
    /// An unmatched high detection scoring at least this starts a new (Tentative) track.
    pub new_track_score: f32,
    /// Minimum IoU for the first association (Confirmed and Lost tracks × high detections).
    pub match_iou: f32,
    /// Minimum IoU for the second association (Confirmed tracks × low detections).
    pub low_match_iou: f32,
    /// Minimum IoU for matching Tentative tracks.
    pub tentative_match_iou: f32,
    /// Matches (including the first detection) before a Tentative track is Confirmed.
    pub min_hits: u32,
    /// A Confirmed track unmatched for longer than this (since `last_seen`) is removed.
    pub max_lost_seconds: f64,
    /// A Tentative track unmatched for longer than this (since `last_seen`) is removed.
    pub max_tentative_gap_seconds: f64,
    /// Sets of classes that may match each other's tracks (class indices). Empty: every class
    /// is tracked on its own.
    pub label_groups: Vec<Vec<usize>>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: DEFAULT_HIGH_SCORE,
            low_score: DEFAULT_LOW_SCORE,
            new_track_score: DEFAULT_NEW_TRACK_SCORE,
            match_iou: DEFAULT_MATCH_IOU,
            low_match_iou: DEFAULT_LOW_MATCH_IOU,
            tentative_match_iou: DEFAULT_TENTATIVE_MATCH_IOU,
            min_hits: DEFAULT_MIN_HITS,
            max_lost_seconds: DEFAULT_MAX_LOST_SECONDS,
            max_tentative_gap_seconds: DEFAULT_MAX_TENTATIVE_GAP_SECONDS,
            label_groups: Vec::new(),
        }
    }
}

/// One detection handed to the tracker.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub class: usize,
    pub score: f32,
    /// x1, y1, x2, y2 in pixels.
    pub bbox: [f32; 4],
}

impl From<&crate::detect::Detection> for Observation {
    fn from(d: &crate::detect::Detection) -> Self {
        Observation { class: d.class, score: d.score, bbox: d.bbox }
    }
}

/// Life cycle of a track: Tentative → Confirmed ⇄ Lost → Removed (Tentative → Removed too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    /// Seen fewer than `min_hits` times: may be a false positive.
    Tentative,
    /// Matched in this update or recently enough not to be lost.
    Confirmed,
    /// Confirmed earlier, unmatched in this update; coasting on its prediction.
    Lost,
    /// Gone for good; reported once in [`TrackerOutput::removed`] or by [`Tracker::finish`].
    Removed,
}

/// A tracked object as of the latest update.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Unique per tracker, starts at 1, strictly increasing, never reused.
    pub id: u64,
    pub class: usize,
    pub state: TrackState,
    /// Kalman-filtered x1,y1,x2,y2 after this update (the prediction while unmatched).
    pub bbox: [f32; 4],
    /// Score of the last matched detection.
    pub score: f32,
    /// Kalman velocity of the box centre, pixels per second.
    pub velocity: [f32; 2],
    /// Number of matched updates.
    pub hits: u32,
    /// Time of the first detection, seconds.
    pub first_seen: f64,
    /// Time of the last matched detection, seconds.
    pub last_seen: f64,
    /// Index into this update's observations that matched; `None` if unmatched.
    pub detection: Option<usize>,
    /// Whether the track has ever been Confirmed (Lost and Removed tracks keep this).
    pub confirmed_once: bool,
}

/// What one update produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerOutput {
    /// Every live track (Tentative, Confirmed, Lost) after this update, sorted by id.
    pub tracks: Vec<Track>,
    /// Tracks removed in this update (state Removed), each reported exactly once, sorted by id.
    pub removed: Vec<Track>,
}

/// A live track and its filter.
#[derive(Debug, Clone)]
struct Live {
    track: Track,
    kf: KalmanBox,
    /// Summed detection score per class: the class vote (one entry unless a label group let
    /// other classes match).
    votes: Vec<(usize, f32)>,
}

/// A second box of another class of a label group that overlaps a box matched this frame by
/// more than this is the same object, not a new one. Near a typical NMS threshold (0.45-0.65):
/// two boxes this close would have been merged had they had one class.
const SAME_OBJECT_IOU: f32 = 0.6;

/// The ByteTrack-style tracker. One per camera stream.
#[derive(Debug, Clone)]
pub struct Tracker {
    config: TrackerConfig,
    /// Live tracks, kept sorted by id (new ids are always the largest, so pushing keeps order).
    live: Vec<Live>,
    next_id: u64,
    /// Time of the previous update; `None` before the first.
    last_t: Option<f64>,
}

/// Which observations fall in which score band (indices into the update's slice).
struct Bands {
    high: Vec<usize>,
    low: Vec<usize>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Tracker {
        Tracker { config, live: Vec::new(), next_id: 1, last_t: None }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Feed one frame's observations captured at `t` seconds.
    ///
    /// `t` should be monotonic; a `t` not greater than the previous one (or not finite) is
    /// treated as the previous time (dt = 0), so a clock step backwards can neither rewind
    /// the filters nor make a gap look negative.
    pub fn update(&mut self, t: f64, observations: &[Observation]) -> TrackerOutput {
        let now = match self.last_t {
            Some(prev) if !t.is_finite() || t <= prev => prev,
            None if !t.is_finite() => 0.0,
            _ => t,
        };
        let dt = self.last_t.map_or(0.0, |prev| now - prev);
        self.last_t = Some(now);

        let removed = self.expire(now);
        for l in &mut self.live {
            if l.track.state == TrackState::Lost {
                l.kf.freeze_height();
            }
            l.kf.predict(dt);
            l.track.detection = None;
        }

        let bands = self.bands(observations);
        let mut det_used = vec![false; observations.len()];
        let mut track_used = vec![false; self.live.len()];

        // Stage 1: Confirmed and Lost tracks against the confident detections.
        let pool: Vec<usize> = self.indices(|s| matches!(s, TrackState::Confirmed | TrackState::Lost));
        let pairs = self.associate(&pool, &bands.high, observations, self.config.match_iou);
        self.apply(&pairs, observations, now, &mut track_used, &mut det_used);

        // Stage 2 (ByteTrack's key idea): tracks that were being followed and missed a
        // confident detection may still be behind a weak one (occlusion, blur). Lost tracks
        // are left out: a weak box far from certain is more likely clutter than a comeback.
        let pool: Vec<usize> =
            pool.into_iter().filter(|&i| !track_used[i] && self.live[i].track.state == TrackState::Confirmed).collect();
        let pairs = self.associate(&pool, &bands.low, observations, self.config.low_match_iou);
        self.apply(&pairs, observations, now, &mut track_used, &mut det_used);

        // Stage 3: Tentative tracks against the confident detections nobody took.
        let pool = self.indices(|s| s == TrackState::Tentative);
        let rest: Vec<usize> = bands.high.iter().copied().filter(|&d| !det_used[d]).collect();
        let pairs = self.associate(&pool, &rest, observations, self.config.tentative_match_iou);
        self.apply(&pairs, observations, now, &mut track_used, &mut det_used);

        for (l, used) in self.live.iter_mut().zip(&track_used) {
            if !used {
                if l.track.state == TrackState::Confirmed {
                    l.track.state = TrackState::Lost;
                }
                l.track.bbox = l.kf.bbox();
                l.track.velocity = l.kf.velocity();
            }
        }

        for &d in &rest {
            let o = &observations[d];
            // Written as a positive test so a NaN threshold starts nothing.
            let confident = o.score >= self.config.new_track_score;
            if det_used[d] || !confident || self.is_second_box(d, observations) {
                continue;
            }
            if let Some(kf) = KalmanBox::new(o.bbox) {
                let confirmed = self.config.min_hits <= 1;
                let track = Track {
                    id: self.next_id,
                    class: o.class,
                    state: if confirmed { TrackState::Confirmed } else { TrackState::Tentative },
                    bbox: kf.bbox(),
                    score: o.score,
                    velocity: kf.velocity(),
                    hits: 1,
                    first_seen: now,
                    last_seen: now,
                    detection: Some(d),
                    confirmed_once: confirmed,
                };
                self.next_id += 1;
                self.live.push(Live { track, kf, votes: vec![(o.class, o.score)] });
            }
        }

        TrackerOutput { tracks: self.live.iter().map(|l| l.track.clone()).collect(), removed }
    }

    /// Remove everything (end of stream): returns all live tracks, as Removed, sorted by id.
    /// The tracker can be reused afterwards; ids keep increasing.
    pub fn finish(&mut self) -> Vec<Track> {
        self.last_t = None;
        self.live
            .drain(..)
            .map(|mut l| {
                l.track.state = TrackState::Removed;
                l.track.detection = None;
                l.track
            })
            .collect()
    }

    /// Drop tracks whose gap since `last_seen` exceeds their limit. Done before association
    /// so an expired track can't be revived by this frame (ByteTrack checks after the frame,
    /// which is the same rule one frame later).
    fn expire(&mut self, now: f64) -> Vec<Track> {
        let (max_lost, max_gap) = (self.config.max_lost_seconds, self.config.max_tentative_gap_seconds);
        let mut removed = Vec::new();
        self.live.retain_mut(|l| {
            let limit = if l.track.state == TrackState::Tentative { max_gap } else { max_lost };
            // Written as a positive test so a NaN limit expires tracks rather than keeping
            // them forever.
            let within = now - l.track.last_seen <= limit;
            let expired = !within;
            if expired {
                l.track.state = TrackState::Removed;
                l.track.detection = None;
                removed.push(l.track.clone());
            }
            !expired
        });
        removed
    }

    /// Whether two classes may share a track: the same class, or one label group.
    fn same_group(&self, a: usize, b: usize) -> bool {
        a == b || self.config.label_groups.iter().any(|g| g.contains(&a) && g.contains(&b))
    }

    /// Whether detection `d` is another class's box on an object matched in this update.
    fn is_second_box(&self, d: usize, observations: &[Observation]) -> bool {
        if self.config.label_groups.is_empty() {
            return false;
        }
        let o = &observations[d];
        self.live.iter().any(|l| {
            l.track.detection.is_some_and(|m| {
                let matched = &observations[m];
                matched.class != o.class
                    && self.same_group(matched.class, o.class)
                    && iou(matched.bbox, o.bbox) > SAME_OBJECT_IOU
            })
        })
    }

    fn indices(&self, keep: impl Fn(TrackState) -> bool) -> Vec<usize> {
        (0..self.live.len()).filter(|&i| keep(self.live[i].track.state)).collect()
    }

    /// Split observations into the high and low bands, dropping unusable ones (non-finite
    /// score, empty or non-finite box): they would only produce zero IoUs or NaNs.
    fn bands(&self, observations: &[Observation]) -> Bands {
        let mut b = Bands { high: Vec::new(), low: Vec::new() };
        for (i, o) in observations.iter().enumerate() {
            if kalman::measure(o.bbox).is_none() || !o.score.is_finite() {
                continue;
            }
            if o.score >= self.config.high_score {
                b.high.push(i);
            } else if o.score >= self.config.low_score {
                b.low.push(i);
            }
        }
        b
    }

    /// Optimal class-aware IoU matching of `tracks` (indices into `live`) to `dets` (indices
    /// into `observations`); pairs under `min_iou`, or of classes not in one label group, never
    /// match.
    fn associate(
        &self,
        tracks: &[usize],
        dets: &[usize],
        observations: &[Observation],
        min_iou: f32,
    ) -> Vec<(usize, usize)> {
        if tracks.is_empty() || dets.is_empty() {
            return Vec::new();
        }
        let boxes: Vec<(usize, [f32; 4])> =
            tracks.iter().map(|&i| (self.live[i].track.class, self.live[i].kf.bbox())).collect();
        let cost = CostMatrix::from_fn(tracks.len(), dets.len(), |r, c| {
            let ((class, bbox), o) = (boxes[r], &observations[dets[c]]);
            if !self.same_group(class, o.class) {
                return f64::INFINITY;
            }
            let overlap = iou(bbox, o.bbox);
            // No overlap at all is never a match, whatever the threshold says.
            if overlap > 0.0 { 1.0 - f64::from(overlap) } else { f64::INFINITY }
        });
        match_below(&cost, 1.0 - f64::from(min_iou)).into_iter().map(|(r, c)| (tracks[r], dets[c])).collect()
    }

    /// Feed each matched detection to its track's filter and advance the track's life cycle.
    fn apply(
        &mut self,
        pairs: &[(usize, usize)],
        observations: &[Observation],
        now: f64,
        track_used: &mut [bool],
        det_used: &mut [bool],
    ) {
        for &(ti, di) in pairs {
            let o = &observations[di];
            let l = &mut self.live[ti];
            l.kf.update(o.bbox);
            let t = &mut l.track;
            // The class vote. Ties keep the earlier class (`max_by` returns the last of equal
            // maxima, so scan in reverse).
            match l.votes.iter_mut().find(|(c, _)| *c == o.class) {
                Some((_, sum)) => *sum += o.score,
                None => l.votes.push((o.class, o.score)),
            }
            if let Some(&(class, _)) = l.votes.iter().rev().max_by(|a, b| a.1.total_cmp(&b.1)) {
                t.class = class;
            }
            t.hits = t.hits.saturating_add(1);
            t.score = o.score;
            t.last_seen = now;
            t.detection = Some(di);
            t.bbox = l.kf.bbox();
            t.velocity = l.kf.velocity();
            let promote = match t.state {
                TrackState::Lost => true,
                TrackState::Tentative => t.hits >= self.config.min_hits,
                TrackState::Confirmed | TrackState::Removed => false,
            };
            if promote {
                t.state = TrackState::Confirmed;
                t.confirmed_once = true;
            }
            track_used[ti] = true;
            det_used[di] = true;
        }
    }
}

#[cfg(test)]
mod tests;
