//! Tracker behaviour on synthetic trajectories, plus property tests on random input.

use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const PERSON: usize = 0;
const BICYCLE: usize = 1;

/// A 40×80 box centred on (x, y).
fn obs(class: usize, score: f32, x: f64, y: f64) -> Observation {
    let b = [x - 20.0, y - 40.0, x + 20.0, y + 40.0].map(|v| v as f32);
    Observation { class, score, bbox: b }
}

/// Everything one run produced, for assertions.
#[derive(Default)]
struct Log {
    outputs: Vec<(f64, TrackerOutput)>,
    finished: Vec<Track>,
}

impl Log {
    /// Ids of Confirmed tracks matched to observation `index` across the run, in order of
    /// first appearance.
    fn ids_of(&self, index: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        for (_, out) in &self.outputs {
            for t in &out.tracks {
                if t.state == TrackState::Confirmed && t.detection == Some(index) && !ids.contains(&t.id) {
                    ids.push(t.id);
                }
            }
        }
        ids
    }

    /// How many times each id was reported removed (updates plus `finish`).
    fn removals(&self) -> HashMap<u64, usize> {
        let mut n = HashMap::new();
        for t in self.outputs.iter().flat_map(|(_, o)| &o.removed).chain(&self.finished) {
            *n.entry(t.id).or_insert(0) += 1;
        }
        n
    }

    fn ever_confirmed(&self) -> HashSet<u64> {
        self.outputs
            .iter()
            .flat_map(|(_, o)| &o.tracks)
            .filter(|t| t.state == TrackState::Confirmed)
            .map(|t| t.id)
            .collect()
    }
}

fn run(config: TrackerConfig, frames: impl IntoIterator<Item = (f64, Vec<Observation>)>) -> Log {
    let mut tracker = Tracker::new(config);
    let mut log = Log::default();
    for (t, dets) in frames {
        let out = tracker.update(t, &dets);
        log.outputs.push((t, out));
    }
    log.finished = tracker.finish();
    log
}

/// Frames at `fps` for `seconds`, each built by `at(t)`.
fn frames(fps: f64, seconds: f64, mut at: impl FnMut(f64) -> Vec<Observation>) -> Vec<(f64, Vec<Observation>)> {
    let n = (seconds * fps).round() as usize;
    (0..=n).map(|i| i as f64 / fps).map(|t| (t, at(t))).collect()
}

#[test]
fn crossing_paths_keep_their_ids() {
    for occlude in [false, true] {
        let log = run(
            TrackerConfig::default(),
            frames(10.0, 4.0, |t| {
                let (xa, xb) = (100.0 + 150.0 * t, 700.0 - 150.0 * t);
                let mut d = vec![obs(PERSON, 0.9, xa, 200.0), obs(PERSON, 0.85, xb, 215.0)];
                // The object behind is not detected while the two overlap.
                if occlude && (xa - xb).abs() < 40.0 {
                    d.pop();
                }
                d
            }),
        );
        let (a, b) = (log.ids_of(0), log.ids_of(1));
        assert_eq!(a.len(), 1, "occlude={occlude}: A had ids {a:?}");
        assert_eq!(b.len(), 1, "occlude={occlude}: B had ids {b:?}");
        assert_ne!(a, b);
    }
}

const CAR: usize = 2;
const TRUCK: usize = 7;

/// A car driving at 100 px/s, seen as a truck (as confident) in 1.0 s ≤ t < 1.5 s, and in
/// every frame also as the other class, in a weaker box nearly on top, when `double` is set
/// (per-class NMS keeps both).
fn flickering_car(groups: Vec<Vec<usize>>, double: bool) -> Log {
    run(
        TrackerConfig { label_groups: groups, ..TrackerConfig::default() },
        frames(10.0, 4.0, |t| {
            let x = 100.0 + 100.0 * t;
            let class = if (1.0..1.5).contains(&t) { TRUCK } else { CAR };
            let mut d = vec![obs(class, 0.85, x, 300.0)];
            if double {
                d.push(obs(if class == CAR { TRUCK } else { CAR }, 0.7, x + 3.0, 302.0));
            }
            d
        }),
    )
}

/// Every id that was ever Confirmed, with the classes it was Confirmed under.
fn confirmed_classes(log: &Log) -> HashMap<u64, HashSet<usize>> {
    let mut out: HashMap<u64, HashSet<usize>> = HashMap::new();
    for t in log.outputs.iter().flat_map(|(_, o)| &o.tracks).filter(|t| t.state == TrackState::Confirmed) {
        out.entry(t.id).or_default().insert(t.class);
    }
    out
}

#[test]
fn a_car_seen_as_a_truck_for_a_moment_is_one_track_only_when_they_are_grouped() {
    // Class by class, the truck frames start a second track that gets confirmed.
    let apart = confirmed_classes(&flickering_car(Vec::new(), false));
    assert_eq!(apart.len(), 2, "{apart:?}");
    // Grouped: one track, and it stays a car (its summed score is mostly car).
    let grouped = confirmed_classes(&flickering_car(vec![vec![CAR, TRUCK]], false));
    assert_eq!(grouped, HashMap::from([(1, HashSet::from([CAR]))]));
    // A group that does not hold both classes changes nothing.
    let other = confirmed_classes(&flickering_car(vec![vec![CAR, PERSON]], false));
    assert_eq!(other.len(), 2, "{other:?}");
}

#[test]
fn a_second_box_of_a_grouped_class_on_the_same_object_starts_no_track() {
    let apart = confirmed_classes(&flickering_car(Vec::new(), true));
    assert!(apart.values().any(|c| c.contains(&TRUCK)) && apart.len() >= 2, "{apart:?}");
    let grouped = confirmed_classes(&flickering_car(vec![vec![CAR, TRUCK]], true));
    assert_eq!(grouped.len(), 1, "{grouped:?}");
}

#[test]
fn a_grouped_track_takes_the_class_with_the_highest_summed_score() {
    // Two weak truck frames first, then a strong car: the label follows the evidence.
    let log = run(
        TrackerConfig { label_groups: vec![vec![CAR, TRUCK]], ..TrackerConfig::default() },
        frames(10.0, 1.0, |t| {
            vec![obs(if t < 0.15 { TRUCK } else { CAR }, if t < 0.15 { 0.65 } else { 0.9 }, 300.0, 300.0)]
        }),
    );
    let classes: Vec<usize> = log.outputs.iter().map(|(_, o)| o.tracks[0].class).collect();
    // 0.65 + 0.65 truck against 0.9, then 1.8 car.
    assert_eq!(&classes[..4], &[TRUCK, TRUCK, TRUCK, CAR], "{classes:?}");
    assert!(classes.iter().skip(3).all(|&c| c == CAR), "{classes:?}");
    assert!(log.outputs.iter().all(|(_, o)| o.tracks.len() == 1 && o.tracks[0].id == 1));
    // Ties keep the first class.
    let log = run(
        TrackerConfig { label_groups: vec![vec![CAR, TRUCK]], ..TrackerConfig::default() },
        vec![(0.0, vec![obs(TRUCK, 0.8, 300.0, 300.0)]), (0.1, vec![obs(CAR, 0.8, 300.0, 300.0)])],
    );
    assert_eq!(log.outputs[1].1.tracks[0].class, TRUCK);
}

/// One object walking at 80 px/s, undetected in [gap_start, gap_start + gap).
fn walker_with_gap(fps: f64, gap: f64) -> Log {
    let gap_start = 2.0;
    run(
        TrackerConfig::default(),
        frames(fps, 6.0, |t| {
            if t >= gap_start - 1e-9 && t < gap_start + gap - 1e-9 {
                vec![]
            } else {
                vec![obs(PERSON, 0.9, 100.0 + 80.0 * t, 300.0 + 10.0 * t)]
            }
        }),
    )
}

#[test]
fn short_occlusion_keeps_the_id() {
    let log = walker_with_gap(10.0, 1.0);
    assert_eq!(log.ids_of(0), vec![1]);
    // While unseen the track is Lost and coasts on its velocity.
    let (_, mid) = &log.outputs[25];
    assert_eq!(mid.tracks.len(), 1);
    assert_eq!(mid.tracks[0].state, TrackState::Lost);
    assert!((mid.tracks[0].velocity[0] - 80.0).abs() < 5.0, "{:?}", mid.tracks[0].velocity);
    assert_eq!(log.removals(), HashMap::from([(1, 1)]));
}

#[test]
fn long_occlusion_gives_a_new_id_and_removes_the_old_once() {
    let log = walker_with_gap(10.0, 2.0);
    let ids = log.ids_of(0);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let removals = log.removals();
    assert_eq!(removals.get(&ids[0]), Some(&1));
    assert_eq!(removals.get(&ids[1]), Some(&1));
    // The old id is removed during the gap, 1.5 s after it was last seen, not at the end.
    let during: Vec<u64> = log.outputs.iter().flat_map(|(_, o)| &o.removed).map(|t| t.id).collect();
    assert_eq!(during, vec![ids[0]]);
}

#[test]
fn timing_is_in_seconds_not_frames() {
    for (gap, expect_ids) in [(1.0, 1), (2.0, 2)] {
        for fps in [5.0, 15.0] {
            let log = walker_with_gap(fps, gap);
            assert_eq!(log.ids_of(0).len(), expect_ids, "fps {fps}, gap {gap}");
            assert_eq!(log.removals().len(), expect_ids, "fps {fps}, gap {gap}");
        }
    }
    // Frames missing altogether (no updates during the gap) behave the same as empty frames.
    for (gap, expect_ids) in [(1.0, 1), (2.0, 2)] {
        let log = run(
            TrackerConfig::default(),
            frames(10.0, 6.0, |t| vec![obs(PERSON, 0.9, 100.0 + 80.0 * t, 300.0)])
                .into_iter()
                .filter(|(t, _)| !(*t >= 2.0 - 1e-9 && *t < 2.0 + gap - 1e-9)),
        );
        assert_eq!(log.ids_of(0).len(), expect_ids, "no frames, gap {gap}");
    }
}

#[test]
fn low_score_detections_keep_a_track_alive_but_never_start_one() {
    // Confident for 1 s, then only 0.3-score detections for 3 s (longer than max_lost_seconds).
    let log = run(
        TrackerConfig::default(),
        frames(10.0, 4.0, |t| vec![obs(PERSON, if t < 1.0 { 0.9 } else { 0.3 }, 100.0 + 50.0 * t, 200.0)]),
    );
    assert_eq!(log.ids_of(0), vec![1]);
    let (_, last) = log.outputs.last().unwrap();
    assert_eq!(last.tracks.len(), 1);
    assert_eq!(last.tracks[0].state, TrackState::Confirmed);
    assert_eq!(last.tracks[0].detection, Some(0));
    assert!((last.tracks[0].score - 0.3).abs() < 1e-6);

    let log = run(TrackerConfig::default(), frames(10.0, 3.0, |t| vec![obs(PERSON, 0.3, 100.0 + 50.0 * t, 200.0)]));
    assert!(log.outputs.iter().all(|(_, o)| o.tracks.is_empty() && o.removed.is_empty()));
    // Nor can a weak detection revive a Lost track (ByteTrack's second stage is for tracked
    // tracks only).
    let log = run(
        TrackerConfig::default(),
        frames(10.0, 3.0, |t| match t {
            t if t < 1.0 => vec![obs(PERSON, 0.9, 100.0, 200.0)],
            t if t < 1.45 => vec![],
            _ => vec![obs(PERSON, 0.3, 100.0, 200.0)],
        }),
    );
    assert!(log.outputs.iter().skip(15).all(|(_, o)| o.tracks.iter().all(|t| t.state != TrackState::Confirmed)));
}

#[test]
fn a_one_frame_false_positive_is_never_confirmed() {
    let log = run(
        TrackerConfig::default(),
        frames(10.0, 3.0, |t| {
            let mut d = vec![obs(PERSON, 0.9, 100.0 + 30.0 * t, 200.0)];
            if (t - 1.0).abs() < 1e-9 {
                d.push(obs(PERSON, 0.95, 600.0, 400.0));
            }
            d
        }),
    );
    assert_eq!(log.ever_confirmed(), HashSet::from([1]));
    // The false positive got an id as a Tentative track and was removed once, 0.5 s later.
    assert_eq!(log.removals().get(&2), Some(&1));
    let (t_removed, _) = log.outputs.iter().find(|(_, o)| o.removed.iter().any(|t| t.id == 2)).unwrap();
    assert!((t_removed - 1.6).abs() < 1e-9, "removed at {t_removed}");
}

#[test]
fn classes_never_match_each_other() {
    // A person riding a bicycle: nearly identical boxes, listed in alternating order.
    let log = run(
        TrackerConfig::default(),
        frames(10.0, 3.0, |t| {
            let x = 100.0 + 120.0 * t;
            let (p, b) = (obs(PERSON, 0.9, x, 200.0), obs(BICYCLE, 0.8, x + 3.0, 215.0));
            if (t * 10.0).round() as i64 % 2 == 0 { vec![p, b] } else { vec![b, p] }
        }),
    );
    let mut class_of: HashMap<u64, usize> = HashMap::new();
    for (t, out) in &log.outputs {
        for tr in &out.tracks {
            assert_eq!(*class_of.entry(tr.id).or_insert(tr.class), tr.class);
            if let Some(d) = tr.detection {
                let i = (t * 10.0).round() as i64 % 2;
                let det_class = if (d as i64) == 1 - i { BICYCLE } else { PERSON };
                assert_eq!(tr.class, det_class, "t={t} track {} matched det {d}", tr.id);
            }
        }
    }
    assert_eq!(log.ever_confirmed().len(), 2);

    // A detection of another class exactly on a track's box does not continue it.
    let log = run(
        TrackerConfig::default(),
        frames(10.0, 2.0, |t| vec![obs(if t < 1.0 { PERSON } else { BICYCLE }, 0.9, 100.0, 200.0)]),
    );
    let (_, last) = log.outputs.last().unwrap();
    let person = last.tracks.iter().find(|t| t.id == 1).unwrap();
    assert_eq!((person.class, person.state, person.detection), (PERSON, TrackState::Lost, None));
    assert!(last.tracks.iter().any(|t| t.class == BICYCLE && t.detection == Some(0)));
}

#[test]
fn time_going_backwards_is_treated_as_no_time() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    for t in [0.0, 0.1, 0.2, 0.3] {
        tracker.update(t, &[obs(PERSON, 0.9, 100.0 + 100.0 * t, 200.0)]);
    }
    let before = tracker.update(0.4, &[obs(PERSON, 0.9, 140.0, 200.0)]);
    // A step back and a NaN: same time as before, no prediction, no expiry.
    let back = tracker.update(-5.0, &[]);
    let nan = tracker.update(f64::NAN, &[]);
    assert_eq!(back.tracks[0].bbox, before.tracks[0].bbox);
    assert_eq!(nan.tracks[0].last_seen, 0.4);
    assert!(back.removed.is_empty() && nan.removed.is_empty());
}

#[test]
fn finish_removes_everything_once() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    for i in 0..5 {
        tracker.update(f64::from(i) * 0.1, &[obs(PERSON, 0.9, 100.0, 200.0), obs(BICYCLE, 0.7, 400.0, 200.0)]);
    }
    let done = tracker.finish();
    assert_eq!(done.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2]);
    assert!(done.iter().all(|t| t.state == TrackState::Removed));
    assert!(tracker.finish().is_empty());
    // Ids keep increasing after a finish.
    let out = tracker.update(10.0, &[obs(PERSON, 0.9, 100.0, 200.0)]);
    assert_eq!(out.tracks[0].id, 3);
}

#[test]
fn degenerate_observations_are_ignored() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let bad = [
        Observation { class: 0, score: 0.9, bbox: [10.0, 10.0, 10.0, 50.0] },
        Observation { class: 0, score: 0.9, bbox: [f32::NAN, 10.0, 20.0, 50.0] },
        Observation { class: 0, score: f32::NAN, bbox: [10.0, 10.0, 20.0, 50.0] },
        Observation { class: 0, score: 0.9, bbox: [30.0, 50.0, 10.0, 10.0] },
    ];
    for i in 0..5 {
        let out = tracker.update(f64::from(i) * 0.1, &bad);
        assert!(out.tracks.is_empty());
    }
}

// ---- properties -------------------------------------------------------------------------

fn observation() -> impl Strategy<Value = Observation> {
    // A coarse grid of overlapping boxes, so random frames often continue earlier tracks,
    // plus a few broken boxes.
    (0usize..2, 0.0f32..1.0, 0u8..4, 0u8..4, 2u8..5, 2u8..5, 0u8..30).prop_map(|(class, score, gx, gy, gw, gh, odd)| {
        let (x, y) = (f32::from(gx) * 15.0, f32::from(gy) * 15.0);
        let bbox = match odd {
            0 => [f32::NAN, y, x + 10.0, y + 10.0],
            1 => [x, y, x, y],
            2 => [-3e38, -3e38, 3e38, 3e38],
            _ => [x, y, x + f32::from(gw) * 15.0, y + f32::from(gh) * 15.0],
        };
        Observation { class, score, bbox }
    })
}

fn time_step() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => Just(0.0),
        10 => 0.01f64..0.3,
        3 => 0.3f64..3.0,
        1 => -1.0f64..0.0,
    ]
}

fn config() -> impl Strategy<Value = TrackerConfig> {
    (1u32..5, 0.2f64..2.0, 0.0f64..1.0).prop_map(|(min_hits, max_lost_seconds, max_tentative_gap_seconds)| {
        TrackerConfig { min_hits, max_lost_seconds, max_tentative_gap_seconds, ..TrackerConfig::default() }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn property_ids_and_lifecycle(
        config in config(),
        steps in prop::collection::vec((time_step(), prop::collection::vec(observation(), 0..10)), 1..80),
    ) {
        let mut tracker = Tracker::new(config);
        let mut t = 0.0;
        let mut max_seen = 0u64;
        let mut removed_ids: HashSet<u64> = HashSet::new();
        let mut confirmed: HashSet<u64> = HashSet::new();
        let mut created: HashSet<u64> = HashSet::new();
        let mut removal_count: HashMap<u64, usize> = HashMap::new();
        for (dt, dets) in &steps {
            t += dt;
            let out = tracker.update(t, dets);
            let ids: Vec<u64> = out.tracks.iter().map(|t| t.id).collect();
            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "tracks not sorted/unique: {ids:?}");
            let mut used_dets = HashSet::new();
            for tr in &out.tracks {
                prop_assert!(tr.state != TrackState::Removed);
                prop_assert!(!removed_ids.contains(&tr.id), "id {} came back", tr.id);
                if created.insert(tr.id) {
                    prop_assert!(tr.id > max_seen, "id {} reused or out of order", tr.id);
                    max_seen = tr.id;
                }
                if tr.state == TrackState::Confirmed {
                    confirmed.insert(tr.id);
                }
                prop_assert!(tr.bbox.iter().chain(&tr.velocity).all(|v| v.is_finite()), "{tr:?}");
                if let Some(d) = tr.detection {
                    prop_assert!(d < dets.len() && dets[d].class == tr.class);
                    prop_assert!(used_dets.insert(d), "detection {d} matched twice");
                }
            }
            for tr in &out.removed {
                prop_assert_eq!(tr.state, TrackState::Removed);
                prop_assert!(tr.bbox.iter().all(|v| v.is_finite()));
                prop_assert!(created.contains(&tr.id), "removed an unknown id {}", tr.id);
                prop_assert!(!ids.contains(&tr.id));
                removed_ids.insert(tr.id);
                *removal_count.entry(tr.id).or_insert(0) += 1;
            }
        }
        for tr in tracker.finish() {
            prop_assert_eq!(tr.state, TrackState::Removed);
            *removal_count.entry(tr.id).or_insert(0) += 1;
        }
        // Every track ever created, Confirmed or not, is reported removed exactly once.
        for id in &created {
            prop_assert_eq!(removal_count.get(id), Some(&1), "id {}", id);
        }
        prop_assert!(confirmed.is_subset(&created));
        prop_assert_eq!(removal_count.len(), created.len());
    }
}

/// The property test's generator does exercise confirmation (not only Tentative churn).
#[test]
fn random_grid_input_does_confirm_tracks() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f32) / ((1u64 << 31) as f32)
    };
    let mut confirmed = 0;
    for i in 0..100 {
        let dets: Vec<Observation> = (0..6)
            .map(|_| {
                let (x, y) = ((next() * 4.0).floor() * 15.0, (next() * 4.0).floor() * 15.0);
                Observation { class: 0, score: next(), bbox: [x, y, x + 45.0, y + 45.0] }
            })
            .collect();
        let out = tracker.update(f64::from(i) * 0.1, &dets);
        confirmed += out.tracks.iter().filter(|t| t.state == TrackState::Confirmed).count();
    }
    assert!(confirmed > 0);
}
