//! The event lifecycle of tracked objects, in the spirit of Frigate: one `new` when a track
//! is confirmed and believable, `update`s when something a consumer cares about changes, and
//! one `end` when it is gone. Pure: tracks and rule outcomes in, lifecycle events out.
//!
//! Parked objects: a stationary object whose detections stop for longer than the tracker's
//! `max_lost_seconds` (a car behind a passing van, a person sitting still at dusk) would get a
//! new track when it is seen again, and so a new event. Instead its object is kept "parked"
//! for `parked_seconds`; a new track of the same label that appears on its spot takes over
//! the old object, and the consumer sees the same object id, with no second `new`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::track::{Track, TrackState};

/// How many recent scores decide whether an object is believable (Frigate uses 10 too).
const SCORE_HISTORY: usize = 10;
/// The top score must improve by this much to be worth an `update` (a better snapshot).
const TOP_SCORE_STEP: f32 = 0.05;
/// A new track re-attaches to a parked object when its box overlaps the parked box this much.
const PARKED_REATTACH_IOU: f32 = 0.5;

#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// Median of the recent scores an object needs before it is reported (`new`).
    pub threshold: f32,
    /// A reported object that is still seen gets an `update` at least this often.
    pub update_interval_seconds: f64,
    /// How long a stationary object that vanished is kept for re-identification.
    pub parked_seconds: f64,
}

impl Default for LifecycleConfig {
    fn default() -> LifecycleConfig {
        LifecycleConfig { threshold: 0.7, update_interval_seconds: 10.0, parked_seconds: 300.0 }
    }
}

/// Why an `update` was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpdateReason {
    Zones,
    Stationary,
    TopScore,
    Heartbeat,
}

impl UpdateReason {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateReason::Zones => "zones",
            UpdateReason::Stationary => "stationary",
            UpdateReason::TopScore => "top_score",
            UpdateReason::Heartbeat => "heartbeat",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    New,
    Update(Vec<UpdateReason>),
    End,
}

/// What an object event says about its object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectView {
    /// Stable across tracker restarts and re-identification: what consumers key on.
    pub object_id: String,
    /// The tracker's id for the object's current track.
    pub track_id: u64,
    pub class: usize,
    pub score: f32,
    pub top_score: f32,
    pub bbox: [f32; 4],
    /// Centre velocity, pixels per second.
    pub velocity: [f32; 2],
    /// Stream seconds (the tracker's clock) of the first and latest detection.
    pub first_seen: f64,
    pub last_seen: f64,
    pub current_zones: Vec<String>,
    pub entered_zones: Vec<String>,
    pub stationary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    pub kind: EventKind,
    pub object: ObjectView,
}

/// What the rules say about one object this frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleFacts {
    pub current_zones: Vec<String>,
    pub entered_zones: Vec<String>,
    pub stationary: bool,
}

#[derive(Debug, Clone)]
struct Object {
    view: ObjectView,
    scores: VecDeque<f32>,
    reported: bool,
    last_sent: f64,
    sent_top_score: f32,
}

impl Object {
    fn median_score(&self) -> f32 {
        let mut s: Vec<f32> = self.scores.iter().copied().collect();
        s.sort_by(f32::total_cmp);
        match s.len() {
            0 => 0.0,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }
}

#[derive(Debug, Clone)]
struct Parked {
    object: Object,
    removed_at: f64,
}

/// One camera's objects.
#[derive(Debug)]
pub struct Lifecycle {
    config: LifecycleConfig,
    /// Live objects by track id.
    objects: BTreeMap<u64, Object>,
    parked: Vec<Parked>,
}

impl Lifecycle {
    pub fn new(config: LifecycleConfig) -> Lifecycle {
        Lifecycle { config, objects: BTreeMap::new(), parked: Vec::new() }
    }

    /// Take in this frame's tracks. Returns the ids of the tracks that are reported objects
    /// seen this frame: the ones the zone, line and stationary rules should look at (a
    /// tentative or unbelievable track must not count in a zone).
    pub fn observe(&mut self, t: f64, tracks: &[Track]) -> Vec<u64> {
        let mut seen = Vec::new();
        for track in tracks {
            let matched = track.detection.is_some();
            if !self.objects.contains_key(&track.id) {
                if !matched {
                    continue;
                }
                let object = self.take_parked(track).unwrap_or_else(|| Object {
                    view: ObjectView {
                        object_id: uuid::Uuid::now_v7().to_string(),
                        track_id: track.id,
                        class: track.class,
                        score: track.score,
                        top_score: 0.0,
                        bbox: track.bbox,
                        velocity: track.velocity,
                        first_seen: track.first_seen,
                        last_seen: track.last_seen,
                        current_zones: Vec::new(),
                        entered_zones: Vec::new(),
                        stationary: false,
                    },
                    scores: VecDeque::new(),
                    reported: false,
                    last_sent: t,
                    sent_top_score: 0.0,
                });
                self.objects.insert(track.id, object);
            }
            let Some(object) = self.objects.get_mut(&track.id) else { continue };
            object.view.track_id = track.id;
            // A lost track's box is a prediction that may drift off the frame; events report
            // where the object was last seen.
            if matched {
                // A track's class can change by its label group's vote; the object's label
                // follows it until the object is reported, then stays.
                if !object.reported {
                    object.view.class = track.class;
                }
                object.view.bbox = track.bbox;
                object.view.velocity = track.velocity;
                object.view.score = track.score;
                object.view.top_score = object.view.top_score.max(track.score);
                object.view.last_seen = track.last_seen;
                object.scores.push_back(track.score);
                if object.scores.len() > SCORE_HISTORY {
                    object.scores.pop_front();
                }
            }
            let believable = track.state == TrackState::Confirmed && object.median_score() >= self.config.threshold;
            if (object.reported || believable) && matched {
                seen.push(track.id);
            }
        }
        seen
    }

    /// The class an object of `track_id` goes by: the track's own until it is reported, then
    /// frozen. `None` for a track with no object yet.
    pub fn class_of(&self, track_id: u64) -> Option<usize> {
        self.objects.get(&track_id).map(|o| o.view.class)
    }

    /// A stationary object that vanished and a new track where it was: the same object.
    fn take_parked(&mut self, track: &Track) -> Option<Object> {
        let (i, _) = self
            .parked
            .iter()
            .enumerate()
            .filter(|(_, p)| p.object.view.class == track.class)
            .map(|(i, p)| (i, crate::detect::nms::iou(p.object.view.bbox, track.bbox)))
            .filter(|(_, overlap)| *overlap >= PARKED_REATTACH_IOU)
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let mut object = self.parked.swap_remove(i).object;
        object.view.track_id = track.id;
        Some(object)
    }

    /// After the rules ran: emit `new` and `update` events for the objects seen this frame.
    /// `facts` holds the rules' view of each object in `seen`.
    pub fn report(&mut self, t: f64, facts: &BTreeMap<u64, RuleFacts>) -> Vec<ObjectEvent> {
        let mut events = Vec::new();
        let threshold = self.config.threshold;
        for (id, object) in self.objects.iter_mut() {
            let Some(f) = facts.get(id) else { continue };
            let mut reasons = BTreeSet::new();
            if object.reported {
                if f.current_zones != object.view.current_zones {
                    reasons.insert(UpdateReason::Zones);
                }
                if f.stationary != object.view.stationary {
                    reasons.insert(UpdateReason::Stationary);
                }
                if object.view.top_score >= object.sent_top_score + TOP_SCORE_STEP {
                    reasons.insert(UpdateReason::TopScore);
                }
                if t - object.last_sent >= self.config.update_interval_seconds {
                    reasons.insert(UpdateReason::Heartbeat);
                }
            }
            object.view.current_zones = f.current_zones.clone();
            object.view.entered_zones = f.entered_zones.clone();
            object.view.stationary = f.stationary;
            let kind = if !object.reported {
                if object.median_score() < threshold {
                    continue;
                }
                object.reported = true;
                EventKind::New
            } else if reasons.is_empty() {
                continue;
            } else {
                EventKind::Update(reasons.into_iter().collect())
            };
            object.last_sent = t;
            object.sent_top_score = object.view.top_score;
            events.push(ObjectEvent { kind, object: object.view.clone() });
        }
        events
    }

    /// The tracker removed these tracks: `end` for their reported objects, unless a
    /// stationary one is parked for re-identification. Also ends parked objects that waited
    /// too long.
    pub fn remove(&mut self, t: f64, removed: &[Track]) -> Vec<ObjectEvent> {
        let mut events = Vec::new();
        for track in removed {
            let Some(object) = self.objects.remove(&track.id) else { continue };
            if !object.reported {
                continue;
            }
            if object.view.stationary && self.config.parked_seconds > 0.0 {
                self.parked.push(Parked { object, removed_at: t });
            } else {
                events.push(ObjectEvent { kind: EventKind::End, object: object.view });
            }
        }
        let parked_seconds = self.config.parked_seconds;
        let (expired, kept): (Vec<Parked>, Vec<Parked>) =
            self.parked.drain(..).partition(|p| t - p.removed_at > parked_seconds);
        self.parked = kept;
        events.extend(expired.into_iter().map(|p| ObjectEvent { kind: EventKind::End, object: p.object.view }));
        events
    }

    /// End of stream, or the stream's clock jumped back (a reconnect or a looped file): every
    /// reported object, parked or live, ends now.
    pub fn finish(&mut self) -> Vec<ObjectEvent> {
        let live = std::mem::take(&mut self.objects).into_values().filter(|o| o.reported);
        let parked = self.parked.drain(..).map(|p| p.object);
        live.chain(parked).map(|o| ObjectEvent { kind: EventKind::End, object: o.view }).collect()
    }

    /// The object id of a track, once reported.
    pub fn object_id(&self, track_id: u64) -> Option<&str> {
        self.objects.get(&track_id).filter(|o| o.reported).map(|o| o.view.object_id.as_str())
    }

    /// Reported objects, live or parked.
    pub fn reported_count(&self) -> usize {
        self.objects.values().filter(|o| o.reported).count() + self.parked.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(id: u64, state: TrackState, score: f32, t: f64, matched: bool) -> Track {
        Track {
            id,
            class: 2,
            state,
            bbox: [100.0, 100.0, 200.0, 160.0],
            score,
            velocity: [0.0, 0.0],
            hits: 3,
            first_seen: 0.0,
            last_seen: t,
            detection: matched.then_some(0),
            confirmed_once: state != TrackState::Tentative,
        }
    }

    fn cfg() -> LifecycleConfig {
        LifecycleConfig { threshold: 0.7, update_interval_seconds: 5.0, parked_seconds: 60.0 }
    }

    /// One frame through the lifecycle with the given facts for every seen object.
    fn step(l: &mut Lifecycle, t: f64, tracks: &[Track], facts: RuleFacts) -> Vec<ObjectEvent> {
        let seen = l.observe(t, tracks);
        let f: BTreeMap<u64, RuleFacts> = seen.into_iter().map(|id| (id, facts.clone())).collect();
        l.report(t, &f)
    }

    #[test]
    fn new_needs_a_confirmed_track_and_a_believable_median() {
        let mut l = Lifecycle::new(cfg());
        assert!(step(&mut l, 0.0, &[track(1, TrackState::Tentative, 0.9, 0.0, true)], RuleFacts::default()).is_empty());
        // Confirmed, but the median of (0.9, 0.5, 0.5) is 0.5: not yet.
        let _ = step(&mut l, 0.2, &[track(1, TrackState::Tentative, 0.5, 0.2, true)], RuleFacts::default());
        assert!(step(&mut l, 0.4, &[track(1, TrackState::Confirmed, 0.5, 0.4, true)], RuleFacts::default()).is_empty());
        assert!(step(&mut l, 0.6, &[track(1, TrackState::Confirmed, 0.6, 0.6, true)], RuleFacts::default()).is_empty());
        // Median of (0.9, 0.5, 0.5, 0.6, 0.9) is 0.6: still not.
        let ev = step(&mut l, 0.8, &[track(1, TrackState::Confirmed, 0.9, 0.8, true)], RuleFacts::default());
        assert!(ev.is_empty());
        // (0.9, 0.5, 0.5, 0.6, 0.9, 0.9): (0.6 + 0.9) / 2 = 0.75.
        let ev = step(&mut l, 1.0, &[track(1, TrackState::Confirmed, 0.9, 1.0, true)], RuleFacts::default());
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].kind, EventKind::New);
        assert_eq!(ev[0].object.top_score, 0.9);
        // Exactly one `new`.
        assert!(step(&mut l, 1.2, &[track(1, TrackState::Confirmed, 0.9, 1.2, true)], RuleFacts::default()).is_empty());
    }

    #[test]
    fn updates_on_zone_change_stationary_flip_top_score_and_heartbeat() {
        let mut l = Lifecycle::new(cfg());
        let confirmed = |t: f64, s: f32| track(1, TrackState::Confirmed, s, t, true);
        assert_eq!(step(&mut l, 0.0, &[confirmed(0.0, 0.8)], RuleFacts::default())[0].kind, EventKind::New);
        let zones =
            RuleFacts { current_zones: vec!["drive".into()], entered_zones: vec!["drive".into()], stationary: false };
        let ev = step(&mut l, 0.2, &[confirmed(0.2, 0.8)], zones.clone());
        assert_eq!(ev[0].kind, EventKind::Update(vec![UpdateReason::Zones]));
        assert_eq!(ev[0].object.current_zones, vec!["drive".to_string()]);
        assert!(step(&mut l, 0.4, &[confirmed(0.4, 0.82)], zones.clone()).is_empty(), "a small score gain is no news");
        let ev = step(&mut l, 0.6, &[confirmed(0.6, 0.9)], zones.clone());
        assert_eq!(ev[0].kind, EventKind::Update(vec![UpdateReason::TopScore]));
        let parked = RuleFacts { stationary: true, ..zones.clone() };
        let ev = step(&mut l, 0.8, &[confirmed(0.8, 0.8)], parked.clone());
        assert_eq!(ev[0].kind, EventKind::Update(vec![UpdateReason::Stationary]));
        assert!(step(&mut l, 5.0, &[confirmed(5.0, 0.8)], parked.clone()).is_empty());
        let ev = step(&mut l, 5.8, &[confirmed(5.8, 0.8)], parked);
        assert_eq!(ev[0].kind, EventKind::Update(vec![UpdateReason::Heartbeat]));
    }

    #[test]
    fn an_objects_class_follows_its_track_until_reported_then_stays() {
        let mut l = Lifecycle::new(cfg());
        let with_class = |class: usize, state: TrackState, t: f64| Track { class, ..track(1, state, 0.9, t, true) };
        assert!(step(&mut l, 0.0, &[with_class(5, TrackState::Tentative, 0.0)], RuleFacts::default()).is_empty());
        assert_eq!(l.class_of(1), Some(5));
        // A label group's vote turned the track into class 2 before it was reported.
        let ev = step(&mut l, 0.2, &[with_class(2, TrackState::Confirmed, 0.2)], RuleFacts::default());
        assert_eq!((ev[0].kind.clone(), ev[0].object.class), (EventKind::New, 2));
        // Reported: a later vote no longer changes what the object is.
        let _ = step(&mut l, 0.4, &[with_class(5, TrackState::Confirmed, 0.4)], RuleFacts::default());
        assert_eq!(l.class_of(1), Some(2));
        assert_eq!(l.class_of(9), None);
    }

    #[test]
    fn end_only_for_reported_objects_and_exactly_once() {
        let mut l = Lifecycle::new(cfg());
        let _ = step(
            &mut l,
            0.0,
            &[track(1, TrackState::Confirmed, 0.9, 0.0, true), track(2, TrackState::Tentative, 0.9, 0.0, true)],
            RuleFacts::default(),
        );
        let mut gone =
            vec![track(1, TrackState::Removed, 0.9, 0.0, false), track(2, TrackState::Removed, 0.9, 0.0, false)];
        let ev = l.remove(2.0, &gone);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].kind.clone(), ev[0].object.track_id), (EventKind::End, 1));
        gone.truncate(1);
        assert!(l.remove(2.2, &gone).is_empty());
        assert!(l.finish().is_empty());
    }

    #[test]
    fn a_parked_car_that_vanishes_and_returns_keeps_its_object() {
        let mut l = Lifecycle::new(cfg());
        let still = RuleFacts { stationary: true, ..Default::default() };
        let ev = step(&mut l, 0.0, &[track(1, TrackState::Confirmed, 0.9, 0.0, true)], still.clone());
        let object_id = ev[0].object.object_id.clone();
        // Detections stop: the tracker removes the track; no `end` while the car is parked.
        assert!(l.remove(3.0, &[track(1, TrackState::Removed, 0.9, 0.0, false)]).is_empty());
        // A new track on the same spot is the same car: no second `new`.
        let _ = step(&mut l, 20.0, &[track(7, TrackState::Tentative, 0.9, 20.0, true)], still.clone());
        let ev = step(&mut l, 20.2, &[track(7, TrackState::Confirmed, 0.9, 20.2, true)], still);
        assert!(ev.iter().all(|e| e.kind != EventKind::New), "{ev:?}");
        assert_eq!(l.object_id(7), Some(object_id.as_str()));
        // When it drives off for good, one `end` with the same object id.
        let ev = l.remove(30.0, &[track(7, TrackState::Removed, 0.9, 20.2, false)]);
        assert!(ev.is_empty(), "still stationary: parked again");
        let ev = l.remove(100.0, &[]);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].kind.clone(), ev[0].object.object_id.clone()), (EventKind::End, object_id));
    }

    #[test]
    fn finish_ends_every_reported_object() {
        let mut l = Lifecycle::new(cfg());
        let still = RuleFacts { stationary: true, ..Default::default() };
        let _ = step(
            &mut l,
            0.0,
            &[track(1, TrackState::Confirmed, 0.9, 0.0, true), track(2, TrackState::Confirmed, 0.9, 0.0, true)],
            still,
        );
        let _ = l.remove(3.0, &[track(1, TrackState::Removed, 0.9, 0.0, false)]);
        let ev = l.finish();
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| e.kind == EventKind::End));
        assert_eq!(l.reported_count(), 0);
    }
}
