//! Objects: what one camera's detections mean over time. The per-camera stage after the
//! detect workers runs [`CameraObjects`]:
//!
//! ```text
//! detections ─▶ filters (labels, score, area, ratio, masks; drops counted by reason)
//!            ─▶ tracker (ByteTrack, crate::track)
//!            ─▶ lifecycle (new / update / end, stable object ids)   ─┐
//!            ─▶ rules (zones, lines, stationary, crate::rules)      ─┴▶ messages to publish
//! ```
//!
//! Everything here is pure apart from minting uuids: frames in, messages out, so a test can
//! replay a clip's detections exactly. Time is the stream's own clock (PTS), so a file decoded
//! faster than real time tracks the same as one played at its rate.

pub mod discovery;
pub mod lifecycle;
pub mod reorder;
pub mod settings;
pub mod snapshot;
pub mod stage;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::detect::Detection;
use crate::publish::payload::{self, Envelope, FrameRef, LineCountsOut};
use crate::publish::{Outgoing, Topic};
use crate::rules::{FrameSize, LineEvent, Rules, RulesError, RulesOutput, TrackedObject, ZoneEvent};
use crate::source::FrameMeta;
use crate::track::{Observation, Tracker};
use lifecycle::{EventKind, Lifecycle, ObjectEvent, RuleFacts, UpdateReason};
use settings::ObjectsSpec;
use snapshot::BestView;

pub use crate::detect::frame::{DetectedFrame, FrameImage};

/// One camera's tracker, rules and lifecycle, and the messages they produce.
pub struct CameraObjects {
    gateway_id: String,
    camera: String,
    spec: ObjectsSpec,
    tracker: Tracker,
    rules: Rules,
    lifecycle: Lifecycle,
    /// The previous frame's stream time: a jump back means a new stream (reconnect, loop).
    last_t: Option<f64>,
    /// Where each not-yet-reported track was seen. The rules only look at reported objects
    /// (a false positive must not count in a zone or on a line), but by the time a track is
    /// believable it may already have crossed a line: its path so far is replayed through the
    /// rules when it is reported.
    backlog: BTreeMap<u64, Vec<(f64, TrackedObject)>>,
    /// Each live track's best-scoring view so far, when snapshots are on.
    best: BTreeMap<u64, BestView>,
    /// Confident detections the filters rejected since the last [`CameraObjects::take_filtered`],
    /// by reason ([`crate::rules::Rejected::ALL`] order).
    filtered: [u64; 5],
    /// Snapshots switched off at run time (`toggles`): none are sent while it is set.
    snapshots_off: bool,
    /// Whether the last frame left any live track (tentative, confirmed or lost).
    tracking: bool,
    /// The objects the rules saw in the last frame, for the console's viewers (read by
    /// `stage` only while someone watches; kept by a move, so it costs nothing otherwise).
    last_objects: Vec<TrackedObject>,
}

/// The most positions kept per unreported track (at 5 fps, 12 s).
const BACKLOG_LIMIT: usize = 60;

/// Stream seconds of a frame: its PTS, else its capture time.
fn stream_seconds(f: &DetectedFrame) -> f64 {
    match f.pts {
        Some(p) => p.as_secs_f64(),
        None => f.meta.captured_at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    }
}

/// Labels in topics: `traffic light` becomes `traffic_light`.
fn topic_label(label: &str) -> String {
    label.replace(' ', "_")
}

impl CameraObjects {
    pub fn new(gateway_id: &str, camera: &str, spec: &ObjectsSpec) -> Result<CameraObjects, RulesError> {
        Ok(CameraObjects {
            gateway_id: gateway_id.to_string(),
            camera: camera.to_string(),
            tracker: Tracker::new(spec.tracker.clone()),
            rules: Rules::new(spec.rules.clone())?,
            lifecycle: Lifecycle::new(spec.lifecycle.clone()),
            spec: spec.clone(),
            last_t: None,
            backlog: BTreeMap::new(),
            best: BTreeMap::new(),
            filtered: [0; 5],
            snapshots_off: false,
            tracking: false,
            last_objects: Vec::new(),
        })
    }

    /// Switch one of the camera's zones, lines or masks, or its snapshots, on or off
    /// (`toggles`); false if it has no such thing. Motion gating is the source's.
    pub fn set_switch(&mut self, kind: crate::toggles::Kind, name: &str, on: bool) -> bool {
        use crate::toggles::Kind;
        match kind {
            Kind::Zone => self.rules.set_zone_enabled(name, on),
            Kind::Line => self.rules.set_line_enabled(name, on),
            Kind::Mask => name.parse().is_ok_and(|n| self.rules.set_mask_enabled(n, on)),
            Kind::Snapshots => {
                self.snapshots_off = !on;
                self.spec.snapshots.enabled
            }
            Kind::Motion => false,
        }
    }

    /// One frame's detections in, the messages they cause out, in order.
    pub fn on_frame(&mut self, frame: &DetectedFrame, min_score: f32) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let t = stream_seconds(frame);
        if self.last_t.is_some_and(|last| t < last) {
            // A new stream: its objects can't be matched to the old one's.
            out.extend(self.finish(frame.meta));
        }
        self.last_t = Some(t);
        let size = FrameSize { width: frame.meta.width, height: frame.meta.height };

        if self.spec.publish_detections {
            let wanted =
                |d: &&Detection| self.spec.rules.filters.labels.as_ref().is_none_or(|l| l.iter().any(|x| x == d.label));
            let confident: Vec<Detection> =
                frame.detections.iter().filter(|d| d.score >= min_score).filter(wanted).cloned().collect();
            if !confident.is_empty() {
                let payload = payload::detection_event(&self.gateway_id, &self.camera, frame.meta, &confident);
                out.push(Outgoing::about_frame(Topic::Events(self.camera.clone()), payload, frame.meta.captured_at));
            }
        }

        let mut observations = Vec::with_capacity(frame.detections.len());
        for d in &frame.detections {
            match self.rules.filters().keep_detection(d, size) {
                Ok(()) => observations.push(Observation { class: d.class, score: d.score, bbox: d.bbox }),
                // Counted among confident detections only: the weak ones the detector keeps for
                // the tracker's second association are mostly clutter, and counting their
                // rejections would drown the figure that matters (what the filters take away
                // from what would otherwise be reported).
                Err(why) if d.score >= min_score => self.filtered[why.index()] += 1,
                Err(_) => {}
            }
        }
        let tracked = self.tracker.update(t, &observations);
        self.tracking = !tracked.tracks.is_empty();
        if let Some(image) = &frame.image {
            for tr in tracked.tracks.iter().filter(|tr| tr.detection.is_some()) {
                if self.best.get(&tr.id).is_none_or(|b| tr.score > b.score) {
                    self.best.insert(tr.id, BestView { score: tr.score, frame: image.clone(), bbox: tr.bbox });
                }
            }
        }
        let seen = self.lifecycle.observe(t, &tracked.tracks);
        let mut objects = Vec::new();
        let mut rules_out = RulesOutput::default();
        for tr in tracked.tracks.iter().filter(|tr| tr.detection.is_some()) {
            // The Kalman box can reach past the frame's edge; an object standing on the
            // bottom edge must still be in a zone drawn down to it.
            let (w, h) = (size.width as f32, size.height as f32);
            let b = tr.bbox;
            let bbox = [b[0].clamp(0.0, w), b[1].clamp(0.0, h), b[2].clamp(0.0, w), b[3].clamp(0.0, h)];
            // The object's label, frozen once reported, not the track's current vote.
            let class = self.lifecycle.class_of(tr.id).unwrap_or(tr.class);
            let obj =
                TrackedObject { id: tr.id, label: self.spec.labels.name(class).to_string(), bbox, score: tr.score };
            if !seen.contains(&tr.id) {
                let path = self.backlog.entry(tr.id).or_default();
                if path.len() < BACKLOG_LIMIT {
                    path.push((t, obj));
                }
                continue;
            }
            // Reported now: first its path so far, in order.
            // Under the label it is reported with: a label group's vote may have changed it.
            for (then, mut old) in self.backlog.remove(&tr.id).unwrap_or_default() {
                old.label.clone_from(&obj.label);
                let r = self.rules.update(then, size, std::slice::from_ref(&old));
                rules_out.zone_events.extend(r.zone_events);
                rules_out.line_events.extend(r.line_events);
                rules_out.stationary_events.extend(r.stationary_events);
            }
            objects.push(obj);
        }
        let r = self.rules.update(t, size, &objects);
        self.last_objects = objects;
        rules_out.zone_events.extend(r.zone_events);
        rules_out.line_events.extend(r.line_events);
        rules_out.stationary_events.extend(r.stationary_events);
        let facts: BTreeMap<u64, RuleFacts> = seen
            .iter()
            .map(|&id| {
                let f = RuleFacts {
                    current_zones: self.rules.zones().current_zones(id),
                    entered_zones: self.rules.zones().entered_zones(id),
                    stationary: self.rules.stationary().is_stationary(id),
                };
                (id, f)
            })
            .collect();
        let object_events = self.lifecycle.report(t, &facts);
        // `new` before the rule events that name the object.
        out.extend(self.object_messages(&object_events, frame.meta, t));
        out.extend(self.snapshots(&object_events));
        out.extend(self.rule_messages(rules_out, frame.meta));

        let mut removed_rules = RulesOutput::default();
        for tr in &tracked.removed {
            self.backlog.remove(&tr.id);
            self.best.remove(&tr.id);
            let r = self.rules.remove(tr.id);
            removed_rules.zone_events.extend(r.zone_events);
        }
        out.extend(self.rule_messages(removed_rules, frame.meta));
        let ended = self.lifecycle.remove(t, &tracked.removed);
        out.extend(self.object_messages(&ended, frame.meta, t));
        out
    }

    /// Confident detections the filters rejected since the last call, by reason in
    /// [`crate::rules::Rejected::ALL`] order; the count restarts at zero.
    pub fn take_filtered(&mut self) -> [u64; 5] {
        std::mem::take(&mut self.filtered)
    }

    /// Whether anything is being tracked (tentative, confirmed or lost) after the last frame.
    pub fn tracking(&self) -> bool {
        self.tracking
    }

    /// End of stream: every object ends, every zone empties.
    pub fn finish(&mut self, meta: FrameMeta) -> Vec<Outgoing> {
        let t = self.last_t.unwrap_or(0.0);
        let mut zone_exits = RulesOutput::default();
        for tr in self.tracker.finish() {
            zone_exits.zone_events.extend(self.rules.remove(tr.id).zone_events);
        }
        self.backlog.clear();
        self.best.clear();
        let mut out = self.rule_messages(zone_exits, meta);
        let ended = self.lifecycle.finish();
        out.extend(self.object_messages(&ended, meta, t));
        self.tracker = Tracker::new(self.spec.tracker.clone());
        self.last_t = None;
        self.tracking = false;
        out
    }

    /// Wall-clock time of stream second `x`, given that stream second `t` was captured at `at`.
    fn wall(at: SystemTime, t: f64, x: f64) -> String {
        let back = (t - x).max(0.0);
        payload::timestamp(at.checked_sub(Duration::from_secs_f64(back)).unwrap_or(at))
    }

    fn object_messages(&self, events: &[ObjectEvent], meta: FrameMeta, t: f64) -> Vec<Outgoing> {
        events
            .iter()
            .map(|ev| {
                let o = &ev.object;
                let (kind, reasons) = match &ev.kind {
                    EventKind::New => ("new", Vec::new()),
                    EventKind::Update(r) => ("update", r.iter().map(|x| x.as_str()).collect()),
                    EventKind::End => ("end", Vec::new()),
                };
                let (bbox, box_normalized) = payload::boxes(o.bbox, meta.width, meta.height);
                let (direction_degrees, speed_px_per_second) = payload::heading(o.velocity);
                let msg = payload::ObjectEvent {
                    object_id: &o.object_id,
                    track_id: o.track_id,
                    label: self.spec.labels.name(o.class),
                    score: payload::score(o.score),
                    top_score: payload::score(o.top_score),
                    bbox,
                    box_normalized,
                    first_seen: Self::wall(meta.captured_at, t, o.first_seen),
                    last_seen: Self::wall(meta.captured_at, t, o.last_seen),
                    current_zones: &o.current_zones,
                    entered_zones: &o.entered_zones,
                    stationary: o.stationary,
                    direction_degrees,
                    speed_px_per_second,
                    reasons,
                    frame: FrameRef::from(meta),
                };
                let bytes = Envelope::event(&self.gateway_id, &self.camera, kind, msg).to_bytes();
                Outgoing::about_frame(Topic::Events(self.camera.clone()), bytes, meta.captured_at)
            })
            .collect()
    }

    fn rule_messages(&self, r: RulesOutput, meta: FrameMeta) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let now = payload::timestamp(meta.captured_at);
        let event = |kind: &'static str,
                     zone: Option<&str>,
                     line: Option<&str>,
                     id: u64,
                     label: &str,
                     dwell: Option<f64>,
                     direction: Option<&'static str>,
                     counts: Option<LineCountsOut>| {
            let msg = payload::RuleEvent {
                zone,
                line,
                object_id: self.lifecycle.object_id(id),
                track_id: id,
                label,
                dwell_seconds: dwell.map(|d| (d * 10.0).round() / 10.0),
                direction,
                counts,
                frame: FrameRef::from(meta),
            };
            let bytes = Envelope::event(&self.gateway_id, &self.camera, kind, msg).to_bytes();
            Outgoing::about_frame(Topic::Events(self.camera.clone()), bytes, meta.captured_at)
        };
        let mut occupancy_changed = false;
        for z in &r.zone_events {
            match z {
                ZoneEvent::Entered { zone, id, label, .. } => {
                    out.push(event("zone_enter", Some(zone), None, *id, label, None, None, None))
                }
                ZoneEvent::Exited { zone, id, label, dwell_seconds, .. } => {
                    out.push(event("zone_exit", Some(zone), None, *id, label, Some(*dwell_seconds), None, None))
                }
                ZoneEvent::Loitering { zone, id, label, dwell_seconds, .. } => {
                    out.push(event("loitering", Some(zone), None, *id, label, Some(*dwell_seconds), None, None))
                }
                ZoneEvent::Occupancy { zone, label, count } => {
                    occupancy_changed = true;
                    out.push(self.occupancy(zone, label, *count, &now));
                }
            }
        }
        if occupancy_changed {
            // `all`: every label together, for each zone whose count changed.
            let mut totals: BTreeMap<String, u32> = BTreeMap::new();
            for ((zone, _), n) in self.rules.zones().occupancy() {
                *totals.entry(zone).or_default() += n;
            }
            let changed: std::collections::BTreeSet<&str> = r
                .zone_events
                .iter()
                .filter_map(|z| match z {
                    ZoneEvent::Occupancy { zone, .. } => Some(zone.as_str()),
                    _ => None,
                })
                .collect();
            for zone in changed {
                out.push(self.occupancy(zone, "all", totals.get(zone).copied().unwrap_or(0), &now));
            }
        }
        for l in &r.line_events {
            let LineEvent::Crossed { line, id, label, direction, counts_for_label, .. } = l;
            let counts = LineCountsOut {
                left_to_right: counts_for_label.left_to_right,
                right_to_left: counts_for_label.right_to_left,
            };
            out.push(event("line_cross", None, Some(line), *id, label, None, Some(direction.as_str()), Some(counts)));
            let msg = payload::LineCount { line, label, counts, time: now.clone() };
            out.push(Outgoing::new(
                Topic::LineCount { camera: self.camera.clone(), line: line.clone(), label: topic_label(label) },
                Envelope::state(&self.gateway_id, &self.camera, "line_count", msg).to_bytes(),
            ));
        }
        // Stationary flips reach consumers as object updates (reason `stationary`), not here.
        out
    }

    /// A snapshot when an object is first reported, and whenever its best view improved.
    fn snapshots(&self, events: &[ObjectEvent]) -> Vec<Outgoing> {
        let cfg = &self.spec.snapshots;
        if !cfg.enabled || self.snapshots_off {
            return Vec::new();
        }
        let mut out = Vec::new();
        for ev in events {
            let wanted = match &ev.kind {
                EventKind::New => true,
                EventKind::Update(reasons) => reasons.contains(&UpdateReason::TopScore),
                EventKind::End => false,
            };
            let o = &ev.object;
            let Some(view) = self.best.get(&o.track_id).filter(|_| wanted) else { continue };
            let label = self.spec.labels.name(o.class);
            match snapshot::encode(cfg, view, o.class, label) {
                Ok(jpeg) => out.push(Outgoing::new(
                    Topic::Snapshot { camera: self.camera.clone(), object_id: o.object_id.clone() },
                    jpeg,
                )),
                Err(e) => tracing::warn!(camera = %self.camera, error = %e, "could not encode a snapshot"),
            }
        }
        out
    }

    fn occupancy(&self, zone: &str, label: &str, count: u32, now: &str) -> Outgoing {
        let msg = payload::Occupancy { zone, label, count, time: now.to_string() };
        Outgoing::new(
            Topic::Occupancy { camera: self.camera.clone(), zone: zone.to_string(), label: topic_label(label) },
            Envelope::state(&self.gateway_id, &self.camera, "occupancy", msg).to_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::settings::ObjectsSpec;
    use proptest::prelude::*;

    fn stage(objects: ObjectsSpec) -> CameraObjects {
        CameraObjects {
            gateway_id: "gw".into(),
            camera: "cam".into(),
            tracker: Tracker::new(objects.tracker.clone()),
            rules: Rules::new(objects.rules.clone()).unwrap(),
            lifecycle: Lifecycle::new(objects.lifecycle.clone()),
            spec: objects,
            last_t: None,
            backlog: BTreeMap::new(),
            best: BTreeMap::new(),
            filtered: [0; 5],
            snapshots_off: false,
            tracking: false,
            last_objects: Vec::new(),
        }
    }

    fn frame(t: f64, seq: u64, dets: Vec<Detection>) -> DetectedFrame {
        let meta = FrameMeta {
            captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_secs_f64(t),
            capture_clock: "arrival",
            pts_ms: Some((t * 1000.0) as u64),
            seq,
            width: 1280,
            height: 720,
        };
        DetectedFrame {
            ticket: seq,
            skipped: false,
            meta,
            pts: Some(Duration::from_secs_f64(t)),
            detections: dets,
            image: None,
        }
    }

    fn car(x: f32, score: f32) -> Detection {
        Detection { class: 2, label: "car", score, bbox: [x, 400.0, x + 200.0, 520.0] }
    }

    fn parse(out: &[Outgoing]) -> Vec<serde_json::Value> {
        out.iter().filter_map(|m| serde_json::from_slice(&m.payload).ok()).collect()
    }

    #[test]
    fn filter_rejections_of_confident_detections_are_counted_by_reason() {
        let mut spec = ObjectsSpec::default();
        spec.rules
            .filters
            .per_label
            .insert("car".into(), crate::rules::LabelFilter { min_area: Some(30_000.0), ..Default::default() });
        spec.rules.filters.masks = vec![vec![
            crate::rules::Point::new(0.0, 0.0),
            crate::rules::Point::new(0.2, 0.0),
            crate::rules::Point::new(0.2, 1.0),
            crate::rules::Point::new(0.0, 1.0),
        ]];
        let mut s = stage(spec);
        assert!(!s.tracking());
        // A car of 200x120 = 24000 px² (under min_area) twice; a weak one (not counted); a
        // person in the mask (bottom centre x = 100 of 1280); a person that passes.
        let person = |x: f32| Detection { class: 0, label: "person", score: 0.9, bbox: [x, 300.0, x + 60.0, 500.0] };
        let dets = vec![car(500.0, 0.9), car(800.0, 0.6), car(300.0, 0.3), person(70.0), person(900.0)];
        s.on_frame(&frame(0.0, 0, dets), 0.5);
        let by_reason = s.take_filtered();
        assert_eq!(by_reason[crate::rules::Rejected::Area.index()], 2, "{by_reason:?}");
        assert_eq!(by_reason[crate::rules::Rejected::Mask.index()], 1, "{by_reason:?}");
        assert_eq!(by_reason.iter().sum::<u64>(), 3, "the weak car is not counted: {by_reason:?}");
        assert_eq!(s.take_filtered(), [0; 5], "taken, so counted once");
        assert!(s.tracking(), "the kept person starts a track");
    }

    #[test]
    fn a_parked_car_never_starts_a_second_event() {
        let mut spec = ObjectsSpec::default();
        spec.rules.stationary.stationary_seconds = 5.0;
        let mut s = stage(spec);
        let mut msgs = Vec::new();
        let mut seq = 0;
        // 8 s parked (stationary after 5 s), then 20 s without a detection (a van in front:
        // far beyond max_lost_seconds), then the same car again for 4 s, then the end.
        for i in 0..160 {
            let t = i as f64 * 0.2;
            let dets = if (8.0..28.0).contains(&t) { vec![] } else { vec![car(500.0 + (i % 3) as f32, 0.85)] };
            msgs.extend(parse(&s.on_frame(&frame(t, seq, dets), 0.5)));
            seq += 1;
        }
        msgs.extend(parse(&s.finish(frame(32.0, seq, vec![]).meta)));
        let kinds: Vec<&str> = msgs.iter().filter_map(|m| m["type"].as_str()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "new").count(), 1, "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| **k == "end").count(), 1, "{kinds:?}");
        let ids: std::collections::BTreeSet<&str> = msgs.iter().filter_map(|m| m["object_id"].as_str()).collect();
        assert_eq!(ids.len(), 1, "one object throughout: {ids:?}");
        assert!(
            msgs.iter().any(|m| m["type"] == "update"
                && m["reasons"].as_array().is_some_and(|r| r.iter().any(|x| x == "stationary")))
        );
        let track_ids: std::collections::BTreeSet<u64> = msgs.iter().filter_map(|m| m["track_id"].as_u64()).collect();
        assert!(track_ids.len() >= 2, "the tracker did lose it (else this test proves nothing): {track_ids:?}");
    }

    #[test]
    fn a_moving_car_that_vanishes_does_get_a_new_event() {
        let mut s = stage(ObjectsSpec::default());
        let mut msgs = Vec::new();
        for i in 0..100u64 {
            let t = i as f64 * 0.2;
            let dets = if (6.0..12.0).contains(&t) { vec![] } else { vec![car(100.0 + 10.0 * (i % 30) as f32, 0.85)] };
            msgs.extend(parse(&s.on_frame(&frame(t, i, dets), 0.5)));
        }
        msgs.extend(parse(&s.finish(frame(20.0, 100, vec![]).meta)));
        let news = msgs.iter().filter(|m| m["type"] == "new").count();
        assert!(news >= 2, "not stationary: no re-identification");
        assert_eq!(news, msgs.iter().filter(|m| m["type"] == "end").count());
    }

    #[test]
    fn time_going_back_ends_every_object_and_starts_afresh() {
        let mut s = stage(ObjectsSpec::default());
        let mut msgs = Vec::new();
        for i in 0..10u64 {
            msgs.extend(parse(&s.on_frame(&frame(i as f64 * 0.2, i, vec![car(100.0, 0.9)]), 0.5)));
        }
        assert_eq!(msgs.iter().filter(|m| m["type"] == "new").count(), 1);
        // A reconnect: the stream clock restarts at 0.
        let out = parse(&s.on_frame(&frame(0.0, 10, vec![car(100.0, 0.9)]), 0.5));
        assert_eq!(out.iter().filter(|m| m["type"] == "end").count(), 1, "{out:?}");
    }

    /// One frame: its time, then each detection's (class, score, x, y).
    type ArbFrame = (f64, Vec<(usize, f32, f32, f32)>);

    /// Frames of detections of up to 4 objects that drift, flicker, vanish for a while and come
    /// back, with time steps that include gaps and clock jumps back.
    fn arb_frames() -> impl Strategy<Value = Vec<ArbFrame>> {
        let objects = prop::collection::vec(
            (prop_oneof![Just(0usize), Just(2usize)], 0f32..800.0, 0f32..500.0, -60f32..60.0, -30f32..30.0),
            0..4,
        );
        let steps = prop::collection::vec(
            (
                prop_oneof![8 => Just(0.2), 1 => Just(0.04), 1 => Just(2.5), 1 => Just(-3.0)],
                prop::collection::vec((prop::bool::weighted(0.8), 0.3f32..1.0), 4),
            ),
            1..150,
        );
        (objects, steps).prop_map(|(objects, steps)| {
            let mut t: f64 = 0.0;
            steps
                .into_iter()
                .map(|(dt, seen)| {
                    t = (t + dt).max(0.0);
                    let dets = objects
                        .iter()
                        .zip(&seen)
                        .filter(|(_, (present, _))| *present)
                        .map(|(&(c, x, y, vx, vy), &(_, score))| (c, score, x + vx * t as f32, y + vy * t as f32))
                        .collect();
                    (t, dets)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        /// Every object that gets a `new` gets exactly one `end`, after it, whatever the
        /// detections, gaps, clock jumps and stationary flips; event ids never repeat.
        #[test]
        fn every_new_has_exactly_one_end(frames in arb_frames(), stationary_seconds in prop_oneof![Just(0.5), Just(2.0), Just(10.0)]) {
            let mut spec = ObjectsSpec::default();
            spec.rules.stationary.stationary_seconds = stationary_seconds;
            spec.lifecycle.parked_seconds = 2.0;
            let mut s = stage(spec);
            let mut msgs = Vec::new();
            for (i, (t, dets)) in frames.iter().enumerate() {
                let dets = dets.iter().map(|&(c, score, x, y)| Detection {
                    class: c, label: crate::detect::labels::COCO[c], score, bbox: [x, y, x + 120.0, y + 140.0],
                }).collect();
                msgs.extend(parse(&s.on_frame(&frame(*t, i as u64, dets), 0.5)));
            }
            msgs.extend(parse(&s.finish(frame(1000.0, frames.len() as u64, vec![]).meta)));
            let mut life: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut event_ids = std::collections::BTreeSet::new();
            for m in &msgs {
                if let Some(id) = m["id"].as_str() {
                    prop_assert!(event_ids.insert(id.to_string()));
                }
                let kind = m["type"].as_str().unwrap_or("");
                if ["new", "update", "end"].contains(&kind) {
                    life.entry(m["object_id"].as_str().unwrap_or("").to_string()).or_default().push(kind.to_string());
                }
            }
            for (oid, kinds) in &life {
                prop_assert_eq!(kinds.first().map(String::as_str), Some("new"), "{}: {:?}", oid, kinds);
                prop_assert_eq!(kinds.last().map(String::as_str), Some("end"), "{}: {:?}", oid, kinds);
                prop_assert_eq!(kinds.iter().filter(|k| *k == "new").count(), 1);
                prop_assert_eq!(kinds.iter().filter(|k| *k == "end").count(), 1);
            }
            prop_assert_eq!(s.lifecycle.reported_count(), 0);
        }
    }
}
