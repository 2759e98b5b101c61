//! Zones: polygons a track enters, dwells in and exits, with per-label occupancy. Pure.
//!
//! A track is in a zone when its reference point (bottom centre of the box) is inside the
//! polygon. Entering takes `inertia` consecutive updates inside, exiting `inertia` consecutive
//! updates outside (as Frigate does), so a box jittering across an edge changes nothing.
//! Tracks absent from a frame keep their state: a short detection gap is not an exit.
//! The state of a track lasts until [`Zones::remove`]: call it for every track that ends.

use std::collections::{BTreeMap, HashMap};

use super::geometry::{self, Point};
use super::{FrameSize, Problems, RulesError, TrackedObject};

/// Updates in (or out) before an enter (or exit), as Frigate's default.
pub const DEFAULT_INERTIA: u32 = 3;

/// One zone, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    /// Unique per camera; a level of the occupancy topic.
    pub name: String,
    /// Normalised x, y points; closes from the last back to the first.
    pub polygon: Vec<Point>,
    /// Only these labels count in the zone; `None` counts every label.
    pub labels: Option<Vec<String>>,
    /// Consecutive updates inside to enter, and outside to exit; at least 1.
    pub inertia: u32,
    /// After dwelling this long, a track gets one [`ZoneEvent::Loitering`] per visit.
    pub loitering_seconds: Option<f64>,
    /// false: the zone is off whatever its switch says (`enabled = false` in the file or a
    /// profile).
    pub enabled: bool,
}

impl ZoneConfig {
    /// A zone with the documented defaults: every label, inertia 3, no loitering.
    pub fn new(name: impl Into<String>, polygon: Vec<Point>) -> ZoneConfig {
        ZoneConfig {
            name: name.into(),
            polygon,
            labels: None,
            inertia: DEFAULT_INERTIA,
            loitering_seconds: None,
            enabled: true,
        }
    }

    /// This zone's own problems (its name's uniqueness is the zones' to check).
    pub(crate) fn check(&self) -> Result<(), RulesError> {
        let mut problems = Problems::default();
        self.validate(&mut problems);
        problems.finish()
    }

    fn validate(&self, problems: &mut Problems) {
        let owner = format!("zone `{}`", self.name);
        problems.check(geometry::validate_polygon(&owner, &self.polygon));
        problems.labels(&owner, &self.labels);
        problems.range(self.inertia >= 1, &owner, "inertia", self.inertia, "at least 1 update");
        if let Some(s) = self.loitering_seconds {
            let ok = s.is_finite() && s > 0.0;
            problems.range(ok, &owner, "loitering_seconds", s, "a finite number of seconds above 0");
        }
    }
}

/// What happened in the zones of one camera.
#[derive(Debug, Clone, PartialEq)]
pub enum ZoneEvent {
    /// The track has been inside for `inertia` updates; `t` is the update that confirmed it.
    Entered { zone: String, id: u64, label: String, t: f64 },
    /// The track has been outside for `inertia` updates, or it ended ([`Zones::remove`]).
    /// `dwell_seconds` runs from the `Entered` event's `t` to this one's.
    Exited { zone: String, id: u64, label: String, t: f64, dwell_seconds: f64 },
    /// The track has been in the zone for `loitering_seconds`: once per visit.
    Loitering { zone: String, id: u64, label: String, t: f64, dwell_seconds: f64 },
    /// The number of tracks of `label` in `zone` changed (back to 0 included). Emitted once per
    /// update per (zone, label) whose count differs from before the update.
    Occupancy { zone: String, label: String, count: u32 },
}

/// One stay of a track in a zone.
#[derive(Debug, Clone)]
struct Visit {
    entered_t: f64,
    /// The label at entry: occupancy and the exit count it under the label it entered with,
    /// so the counts stay balanced if the tracker relabels the object mid-visit.
    label: String,
    loitered: bool,
}

/// A track's state in one zone.
#[derive(Debug, Clone, Default)]
struct Presence {
    /// `Some` while inside.
    visit: Option<Visit>,
    /// Consecutive updates that disagreed with the current state.
    streak: u32,
}

#[derive(Debug, Clone)]
struct Track {
    /// One per zone, in config order.
    zones: Vec<Presence>,
    /// Zone indices in order of first entry.
    entered: Vec<usize>,
    /// When the track was last in a frame: the exit time when it ends.
    last_seen: f64,
}

type OccupancyKey = (String, String);

/// All zones of one camera, plus each track's state in them.
#[derive(Debug, Clone)]
pub struct Zones {
    zones: Vec<ZoneConfig>,
    tracks: HashMap<u64, Track>,
    /// Keys appear at the first entry and stay, at 0 when empty, so a retained count can be
    /// brought back to 0.
    occupancy: BTreeMap<OccupancyKey, u32>,
    /// Per zone, in config order: false while switched off (`toggles`): no events, and its
    /// occupancy stays as it was.
    enabled: Vec<bool>,
}

impl Zones {
    /// Validate every zone (names unique, polygons usable) and report every problem at once.
    pub fn new(zones: Vec<ZoneConfig>) -> Result<Zones, RulesError> {
        let mut problems = Problems::default();
        for z in &zones {
            z.validate(&mut problems);
        }
        super::check_names(&mut problems, "zone", zones.iter().map(|z| z.name.as_str()));
        problems.finish()?;
        let enabled = zones.iter().map(|z| z.enabled).collect();
        Ok(Zones { zones, tracks: HashMap::new(), occupancy: BTreeMap::new(), enabled })
    }

    pub fn configs(&self) -> &[ZoneConfig] {
        &self.zones
    }

    /// Switch the zone `name` on or off; false if there is no such zone. Off, the zone makes
    /// no events and its occupancy holds; back on, it takes up the objects' places from there.
    pub fn set_enabled(&mut self, name: &str, on: bool) -> bool {
        match self.zones.iter().position(|z| z.name == name) {
            Some(i) => {
                // A zone its config turns off stays off.
                self.enabled[i] = on && self.zones[i].enabled;
                true
            }
            None => false,
        }
    }

    /// One frame: `objects` are all the tracks seen in it, at capture time `t` seconds. Tracks
    /// not in the list keep their zone state until [`Zones::remove`]. Events come per object,
    /// per zone in config order, then the occupancy changes.
    pub fn update(&mut self, t: f64, frame: FrameSize, objects: &[TrackedObject]) -> Vec<ZoneEvent> {
        let mut events = Vec::new();
        let mut before = BTreeMap::new();
        let n = self.zones.len();
        for obj in objects {
            // An object no rule can place (a non-finite box) is treated as absent, not as
            // outside: one bad box must not start an exit.
            let Some(point) = geometry::reference_point(obj.bbox, frame) else {
                continue;
            };
            let track = self.tracks.entry(obj.id).or_insert_with(|| Track {
                zones: vec![Presence::default(); n],
                entered: Vec::new(),
                last_seen: t,
            });
            track.last_seen = t;
            for (zi, zone) in self.zones.iter().enumerate() {
                if !self.enabled[zi] {
                    continue;
                }
                // A label the zone does not count is outside it: a relabelled track leaves.
                let inside_now =
                    super::label_allowed(&zone.labels, &obj.label) && geometry::point_in_polygon(point, &zone.polygon);
                let presence = &mut track.zones[zi];
                if inside_now == presence.visit.is_some() {
                    presence.streak = 0;
                } else {
                    presence.streak += 1;
                }
                if presence.streak >= zone.inertia {
                    presence.streak = 0;
                    match presence.visit.take() {
                        Some(visit) => {
                            bump(&mut self.occupancy, &mut before, &zone.name, &visit.label, -1);
                            events.push(exited(&zone.name, obj.id, visit, t));
                        }
                        None => {
                            presence.visit = Some(Visit { entered_t: t, label: obj.label.clone(), loitered: false });
                            if !track.entered.contains(&zi) {
                                track.entered.push(zi);
                            }
                            bump(&mut self.occupancy, &mut before, &zone.name, &obj.label, 1);
                            events.push(ZoneEvent::Entered {
                                zone: zone.name.clone(),
                                id: obj.id,
                                label: obj.label.clone(),
                                t,
                            });
                        }
                    }
                }
                // Loitering needs the object seen inside now, so it never fires on the way out.
                if let (Some(visit), Some(limit), true) = (presence.visit.as_mut(), zone.loitering_seconds, inside_now)
                {
                    let dwell = t - visit.entered_t;
                    if !visit.loitered && dwell >= limit {
                        visit.loitered = true;
                        events.push(ZoneEvent::Loitering {
                            zone: zone.name.clone(),
                            id: obj.id,
                            label: visit.label.clone(),
                            t,
                            dwell_seconds: dwell,
                        });
                    }
                }
            }
        }
        occupancy_events(&self.occupancy, before, &mut events);
        events
    }

    /// The track ended: it exits every zone it is in, at the time it was last seen, and its
    /// state is forgotten (read [`Zones::entered_zones`] first if needed).
    pub fn remove(&mut self, id: u64) -> Vec<ZoneEvent> {
        let mut events = Vec::new();
        let Some(track) = self.tracks.remove(&id) else {
            return events;
        };
        let mut before = BTreeMap::new();
        for ((zone, presence), on) in self.zones.iter().zip(track.zones).zip(&self.enabled) {
            if let Some(visit) = presence.visit {
                if *on {
                    bump(&mut self.occupancy, &mut before, &zone.name, &visit.label, -1);
                    events.push(exited(&zone.name, id, visit, track.last_seen));
                } else if let Some(n) = self.occupancy.get_mut(&(zone.name.clone(), visit.label.clone())) {
                    // A zone switched off says nothing, but a track that ended is gone: the
                    // count is right again when the zone is switched back on.
                    *n = n.saturating_sub(1);
                }
            }
        }
        occupancy_events(&self.occupancy, before, &mut events);
        events
    }

    /// The zones the track is in now, in config order.
    pub fn current_zones(&self, id: u64) -> Vec<String> {
        let Some(track) = self.tracks.get(&id) else {
            return Vec::new();
        };
        self.zones.iter().zip(&track.zones).filter(|(_, p)| p.visit.is_some()).map(|(z, _)| z.name.clone()).collect()
    }

    /// Every zone the track has entered since it began, in order of first entry.
    pub fn entered_zones(&self, id: u64) -> Vec<String> {
        let Some(track) = self.tracks.get(&id) else {
            return Vec::new();
        };
        track.entered.iter().filter_map(|&zi| self.zones.get(zi)).map(|z| z.name.clone()).collect()
    }

    /// Tracks per (zone, label) now. A pair appears at its first entry and stays, at 0 once
    /// empty.
    pub fn occupancy(&self) -> BTreeMap<(String, String), u32> {
        self.occupancy.clone()
    }
}

fn exited(zone: &str, id: u64, visit: Visit, t: f64) -> ZoneEvent {
    ZoneEvent::Exited {
        zone: zone.to_string(),
        id,
        label: visit.label,
        t,
        // Never negative, even if the caller's clock steps back.
        dwell_seconds: (t - visit.entered_t).max(0.0),
    }
}

/// Change one occupancy count, remembering its value before this update in `before`.
fn bump(
    occupancy: &mut BTreeMap<OccupancyKey, u32>,
    before: &mut BTreeMap<OccupancyKey, u32>,
    zone: &str,
    label: &str,
    delta: i32,
) {
    let key = (zone.to_string(), label.to_string());
    let count = occupancy.entry(key.clone()).or_insert(0);
    before.entry(key).or_insert(*count);
    *count = count.saturating_add_signed(delta);
}

/// One event per (zone, label) whose count ends the update different from how it began: an
/// entry and an exit of the same label in one frame cancel out.
fn occupancy_events(
    occupancy: &BTreeMap<OccupancyKey, u32>,
    before: BTreeMap<OccupancyKey, u32>,
    events: &mut Vec<ZoneEvent>,
) {
    for ((zone, label), was) in before {
        let count = occupancy.get(&(zone.clone(), label.clone())).copied().unwrap_or(0);
        if count != was {
            events.push(ZoneEvent::Occupancy { zone, label, count });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: FrameSize = FrameSize { width: 100, height: 100 };

    /// The bottom half of the frame, x in 0.2..0.8.
    fn yard() -> ZoneConfig {
        ZoneConfig::new(
            "yard",
            vec![Point::new(0.2, 0.5), Point::new(0.8, 0.5), Point::new(0.8, 1.0), Point::new(0.2, 1.0)],
        )
    }

    /// An object whose reference point (bottom centre) is at normalised (x, y).
    fn obj(id: u64, label: &str, x: f32, y: f32) -> TrackedObject {
        let (px, py) = (x * 100.0, y * 100.0);
        TrackedObject { id, label: label.into(), bbox: [px - 5.0, py - 20.0, px + 5.0, py], score: 0.9 }
    }

    fn entered(e: &ZoneEvent) -> bool {
        matches!(e, ZoneEvent::Entered { .. })
    }

    fn exited(e: &ZoneEvent) -> bool {
        matches!(e, ZoneEvent::Exited { .. })
    }

    /// Feed one object per frame at 1 s intervals from `t0`; return every event.
    fn run(zones: &mut Zones, t0: f64, frames: &[TrackedObject]) -> Vec<ZoneEvent> {
        frames
            .iter()
            .enumerate()
            .flat_map(|(i, o)| zones.update(t0 + i as f64, FRAME, std::slice::from_ref(o)))
            .collect()
    }

    #[test]
    fn a_zone_switched_off_says_nothing_and_holds_its_occupancy() {
        let mut zones = Zones::new(vec![yard()]).expect("valid");
        let inside = vec![obj(1, "person", 0.5, 0.7); 3];
        assert_eq!(run(&mut zones, 0.0, &inside).iter().filter(|e| entered(e)).count(), 1);
        assert!(zones.set_enabled("yard", false) && !zones.set_enabled("nope", false));
        // Off: another object walks in, the first walks out; nothing is said, nothing counted.
        let moves: Vec<TrackedObject> =
            (0..4).flat_map(|_| [obj(2, "person", 0.5, 0.7), obj(1, "person", 0.9, 0.2)]).collect();
        assert!(run(&mut zones, 10.0, &moves).is_empty());
        assert_eq!(zones.occupancy().get(&("yard".into(), "person".into())), Some(&1));
        // A track that ends while the zone is off leaves silently.
        assert!(zones.remove(1).is_empty());
        assert_eq!(zones.occupancy().get(&("yard".into(), "person".into())), Some(&0));
        // Back on: the zone takes up what it sees now.
        zones.set_enabled("yard", true);
        let back = run(
            &mut zones,
            20.0,
            &[obj(2, "person", 0.5, 0.7), obj(2, "person", 0.5, 0.7), obj(2, "person", 0.5, 0.7)],
        );
        assert_eq!(back.iter().filter(|e| entered(e)).count(), 1, "{back:?}");
    }

    #[test]
    fn enters_and_exits_after_inertia_updates() {
        let mut zones = Zones::new(vec![yard()]).expect("valid");
        // Two updates inside: not yet entered.
        assert!(zones.update(0.0, FRAME, &[obj(1, "person", 0.5, 0.7)]).is_empty());
        assert!(zones.update(1.0, FRAME, &[obj(1, "person", 0.5, 0.7)]).is_empty());
        assert!(zones.current_zones(1).is_empty());
        let ev = zones.update(2.0, FRAME, &[obj(1, "person", 0.5, 0.7)]);
        assert_eq!(
            ev,
            vec![
                ZoneEvent::Entered { zone: "yard".into(), id: 1, label: "person".into(), t: 2.0 },
                ZoneEvent::Occupancy { zone: "yard".into(), label: "person".into(), count: 1 },
            ]
        );
        assert_eq!(zones.current_zones(1), vec!["yard".to_string()]);
        // Out for two updates: still in.
        assert!(zones.update(3.0, FRAME, &[obj(1, "person", 0.5, 0.3)]).is_empty());
        assert!(zones.update(4.0, FRAME, &[obj(1, "person", 0.5, 0.3)]).is_empty());
        let ev = zones.update(5.0, FRAME, &[obj(1, "person", 0.5, 0.3)]);
        assert_eq!(
            ev,
            vec![
                ZoneEvent::Exited { zone: "yard".into(), id: 1, label: "person".into(), t: 5.0, dwell_seconds: 3.0 },
                ZoneEvent::Occupancy { zone: "yard".into(), label: "person".into(), count: 0 },
            ]
        );
        assert!(zones.current_zones(1).is_empty());
        assert_eq!(zones.entered_zones(1), vec!["yard".to_string()]);
    }

    #[test]
    fn a_streak_broken_by_one_outside_update_starts_over() {
        let mut zones = Zones::new(vec![yard()]).expect("valid");
        let (i, o) = (obj(1, "person", 0.5, 0.7), obj(1, "person", 0.5, 0.3));
        let ev = run(&mut zones, 0.0, &[i.clone(), i.clone(), o, i.clone(), i.clone()]);
        assert!(ev.is_empty());
        assert_eq!(run(&mut zones, 5.0, &[i]).iter().filter(|e| entered(e)).count(), 1);
    }

    #[test]
    fn jitter_at_the_edge_never_flaps() {
        let mut zones = Zones::new(vec![yard()]).expect("valid");
        // Alternating in and out every frame, before and after a real entry.
        let jitter: Vec<TrackedObject> =
            (0..40).map(|i| obj(1, "person", 0.5, if i % 2 == 0 { 0.51 } else { 0.49 })).collect();
        assert!(run(&mut zones, 0.0, &jitter).is_empty());
        let inside = vec![obj(1, "person", 0.5, 0.7); 3];
        assert_eq!(run(&mut zones, 40.0, &inside).iter().filter(|e| entered(e)).count(), 1);
        let ev = run(&mut zones, 43.0, &jitter);
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(zones.current_zones(1), vec!["yard".to_string()]);
    }

    #[test]
    fn absent_frames_keep_the_state() {
        let mut zones = Zones::new(vec![yard()]).expect("valid");
        let i = obj(1, "person", 0.5, 0.7);
        run(&mut zones, 0.0, &[i.clone(), i.clone(), i.clone()]);
        for t in 3..10 {
            assert!(zones.update(t as f64, FRAME, &[]).is_empty());
        }
        assert_eq!(zones.current_zones(1), vec!["yard".to_string()]);
    }

    #[test]
    fn an_unplaceable_box_is_absent_not_outside() {
        let mut zones = Zones::new(vec![ZoneConfig { inertia: 1, ..yard() }]).expect("valid");
        zones.update(0.0, FRAME, &[obj(1, "person", 0.5, 0.7)]);
        let bad = TrackedObject { bbox: [f32::NAN; 4], ..obj(1, "person", 0.5, 0.7) };
        assert!(zones.update(1.0, FRAME, &[bad]).is_empty());
        assert_eq!(zones.current_zones(1), vec!["yard".to_string()]);
    }

    #[test]
    fn inertia_one_is_immediate() {
        let mut zones = Zones::new(vec![ZoneConfig { inertia: 1, ..yard() }]).expect("valid");
        let ev = zones.update(0.0, FRAME, &[obj(1, "person", 0.5, 0.7)]);
        assert!(entered(&ev[0]));
        let ev = zones.update(1.0, FRAME, &[obj(1, "person", 0.5, 0.2)]);
        assert!(exited(&ev[0]));
    }

    #[test]
    fn loitering_fires_once_per_visit() {
        let zone = ZoneConfig { inertia: 1, loitering_seconds: Some(5.0), ..yard() };
        let mut zones = Zones::new(vec![zone]).expect("valid");
        let i = obj(1, "person", 0.5, 0.7);
        let o = obj(1, "person", 0.5, 0.2);
        let loiter = |ev: &[ZoneEvent]| -> Vec<f64> {
            ev.iter()
                .filter_map(|e| match e {
                    ZoneEvent::Loitering { t, dwell_seconds, .. } => Some(*t - *dwell_seconds),
                    _ => None,
                })
                .collect()
        };
        // Visit 1: in at t=0, 20 s inside, one loitering event after 5 s.
        let ev = run(&mut zones, 0.0, &vec![i.clone(); 21]);
        assert_eq!(ev.iter().filter(|e| matches!(e, ZoneEvent::Loitering { t: 5.0, .. })).count(), 1, "{ev:?}");
        assert_eq!(loiter(&ev), vec![0.0]);
        // Out, then visit 2: a new visit loiters again, once.
        run(&mut zones, 21.0, &[o]);
        let ev = run(&mut zones, 22.0, &vec![i.clone(); 10]);
        assert_eq!(loiter(&ev), vec![22.0]);
        // A short visit does not loiter.
        let mut zones =
            Zones::new(vec![ZoneConfig { inertia: 1, loitering_seconds: Some(5.0), ..yard() }]).expect("valid");
        let ev = run(&mut zones, 0.0, &[i.clone(), i.clone(), i, obj(1, "person", 0.5, 0.2)]);
        assert!(loiter(&ev).is_empty());
    }

    #[test]
    fn occupancy_counts_up_and_back_to_zero_on_exit_and_remove() {
        let mut zones = Zones::new(vec![ZoneConfig { inertia: 1, ..yard() }]).expect("valid");
        let occ = |ev: &[ZoneEvent]| -> Vec<u32> {
            ev.iter()
                .filter_map(|e| match e {
                    ZoneEvent::Occupancy { count, .. } => Some(*count),
                    _ => None,
                })
                .collect()
        };
        let key = ("yard".to_string(), "person".to_string());
        let ev = zones.update(0.0, FRAME, &[obj(1, "person", 0.4, 0.7), obj(2, "person", 0.6, 0.7)]);
        assert_eq!(occ(&ev), vec![2]); // one event per update, with the final count
        assert_eq!(zones.occupancy().get(&key), Some(&2));
        let ev = zones.update(1.0, FRAME, &[obj(1, "person", 0.4, 0.2), obj(2, "person", 0.6, 0.7)]);
        assert_eq!(occ(&ev), vec![1]);
        // Track 2 ends while inside: it exits, at its last-seen time, and the count drops to 0.
        let ev = zones.remove(2);
        assert_eq!(
            ev,
            vec![
                ZoneEvent::Exited { zone: "yard".into(), id: 2, label: "person".into(), t: 1.0, dwell_seconds: 1.0 },
                ZoneEvent::Occupancy { zone: "yard".into(), label: "person".into(), count: 0 },
            ]
        );
        assert_eq!(zones.occupancy().get(&key), Some(&0));
        assert!(zones.remove(2).is_empty());
        assert!(zones.remove(1).is_empty()); // already outside: nothing to exit
    }

    #[test]
    fn occupancy_is_per_label_and_a_swap_in_one_frame_is_no_change() {
        let mut zones = Zones::new(vec![ZoneConfig { inertia: 1, ..yard() }]).expect("valid");
        zones.update(0.0, FRAME, &[obj(1, "person", 0.4, 0.7), obj(2, "car", 0.6, 0.7)]);
        let occ = zones.occupancy();
        assert_eq!(occ.get(&("yard".into(), "person".into())), Some(&1));
        assert_eq!(occ.get(&("yard".into(), "car".into())), Some(&1));
        // One person leaves as another arrives: entries and exits, but no occupancy event.
        let ev = zones.update(1.0, FRAME, &[obj(1, "person", 0.4, 0.2), obj(3, "person", 0.5, 0.7)]);
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(ev.iter().all(|e| !matches!(e, ZoneEvent::Occupancy { .. })));
    }

    #[test]
    fn labels_restrict_the_zone() {
        let zone = ZoneConfig { inertia: 1, labels: Some(vec!["car".into()]), ..yard() };
        let mut zones = Zones::new(vec![zone]).expect("valid");
        assert!(zones.update(0.0, FRAME, &[obj(1, "person", 0.5, 0.7)]).is_empty());
        let ev = zones.update(1.0, FRAME, &[obj(2, "car", 0.5, 0.7)]);
        assert!(entered(&ev[0]));
        assert!(zones.occupancy().keys().all(|(_, label)| label == "car"));
    }

    #[test]
    fn zones_in_config_order_and_entries_in_first_entry_order() {
        let left = ZoneConfig {
            inertia: 1,
            ..ZoneConfig::new(
                "left",
                vec![Point::new(0.0, 0.0), Point::new(0.6, 0.0), Point::new(0.6, 1.0), Point::new(0.0, 1.0)],
            )
        };
        let right = ZoneConfig {
            inertia: 1,
            ..ZoneConfig::new(
                "right",
                vec![Point::new(0.4, 0.0), Point::new(1.0, 0.0), Point::new(1.0, 1.0), Point::new(0.4, 1.0)],
            )
        };
        let mut zones = Zones::new(vec![left, right]).expect("valid");
        zones.update(0.0, FRAME, &[obj(1, "person", 0.9, 0.5)]);
        zones.update(1.0, FRAME, &[obj(1, "person", 0.5, 0.5)]);
        assert_eq!(zones.current_zones(1), vec!["left".to_string(), "right".to_string()]);
        assert_eq!(zones.entered_zones(1), vec!["right".to_string(), "left".to_string()]);
        zones.update(2.0, FRAME, &[obj(1, "person", 0.1, 0.5)]);
        assert_eq!(zones.current_zones(1), vec!["left".to_string()]);
        assert_eq!(zones.entered_zones(1), vec!["right".to_string(), "left".to_string()]);
        zones.remove(1);
        assert!(zones.entered_zones(1).is_empty());
    }

    /// Property: whatever the trajectories, gaps and removals, each track alternates entered,
    /// exited per zone, and the occupancy (map and events) equals the tracks currently inside.
    #[test]
    fn property_events_alternate_and_occupancy_matches_state() {
        // A small deterministic LCG, as in detect::nms, so every run sees the same cases.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32) / ((1u64 << 31) as f32)
        };
        let half = ZoneConfig::new(
            "half",
            vec![Point::new(0.0, 0.5), Point::new(1.0, 0.5), Point::new(1.0, 1.0), Point::new(0.0, 1.0)],
        );
        let cars = ZoneConfig { labels: Some(vec!["car".into()]), inertia: 2, ..yard() };
        let mut zones = Zones::new(vec![half, cars]).expect("valid");
        let labels = ["person", "car"];
        let mut pos: Vec<(f32, f32)> = (0..6).map(|_| (next(), next())).collect();
        let mut inside: BTreeMap<(u64, String), bool> = BTreeMap::new();
        let mut announced: BTreeMap<(String, String), u32> = BTreeMap::new();
        let mut entries = 0;
        let mut check = |events: Vec<ZoneEvent>, zones: &Zones| {
            for e in events {
                match e {
                    ZoneEvent::Entered { zone, id, .. } => {
                        assert_ne!(inside.insert((id, zone), true), Some(true), "entered twice");
                        entries += 1;
                    }
                    ZoneEvent::Exited { zone, id, dwell_seconds, .. } => {
                        assert_eq!(inside.insert((id, zone), false), Some(true), "exit without entry");
                        assert!(dwell_seconds >= 0.0);
                    }
                    ZoneEvent::Occupancy { zone, label, count } => {
                        announced.insert((zone, label), count);
                    }
                    ZoneEvent::Loitering { .. } => {}
                }
            }
            assert_eq!(announced, zones.occupancy());
            let mut expected: BTreeMap<(String, String), u32> =
                zones.occupancy().keys().map(|k| (k.clone(), 0)).collect();
            for id in 0..6usize {
                for zone in zones.current_zones(id as u64) {
                    *expected.entry((zone, labels[id % 2].to_string())).or_default() += 1;
                }
            }
            assert_eq!(expected, zones.occupancy());
        };
        for step in 0..3000 {
            let mut objects = Vec::new();
            for (id, p) in pos.iter_mut().enumerate() {
                p.0 = (p.0 + (next() - 0.5) * 0.2).clamp(0.0, 1.0);
                p.1 = (p.1 + (next() - 0.5) * 0.2).clamp(0.0, 1.0);
                if next() < 0.8 {
                    objects.push(obj(id as u64, labels[id % 2], p.0, p.1));
                }
            }
            let events = zones.update(step as f64 * 0.2, FRAME, &objects);
            check(events, &zones);
            if next() < 0.02 {
                let id = (next() * 6.0) as u64 % 6;
                let events = zones.remove(id);
                check(events, &zones);
                assert!(zones.current_zones(id).is_empty());
            }
        }
        // The walk must actually exercise the zones: both, many times.
        assert!(entries > 100, "{entries}");
        assert!(zones.occupancy().keys().any(|(z, _)| z == "yard"));
    }

    #[test]
    fn validation() {
        let err = |z: ZoneConfig| Zones::new(vec![z]).err().map(|e| e.to_string());
        assert_eq!(
            err(ZoneConfig { inertia: 0, ..yard() }).as_deref(),
            Some("zone `yard`: inertia = 0 is out of range; expected at least 1 update")
        );
        assert_eq!(
            err(ZoneConfig { loitering_seconds: Some(-1.0), ..yard() }).as_deref(),
            Some("zone `yard`: loitering_seconds = -1 is out of range; expected a finite number of seconds above 0")
        );
        assert!(err(ZoneConfig { labels: Some(vec![]), ..yard() }).is_some());
        assert_eq!(
            err(ZoneConfig::new("", yard().polygon)).as_deref(),
            Some("a zone has an empty name; give every zone a name")
        );
        assert!(Zones::new(vec![yard(), yard()]).is_err());
    }
}
