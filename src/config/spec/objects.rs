//! A camera file's object tables (`[track]`, `[filters]`, zones, lines, `[stationary]`,
//! `[events]`, `[snapshots]`): read, checked against the model's labels, and built into an
//! [`ObjectsSpec`]; the rules are checked by the rules stage's own `validate()`.

use super::*;

/// The object-related tables of a camera file.
pub(super) struct ObjectParts {
    pub(super) track: RawTrack,
    pub(super) filters: std::collections::BTreeMap<String, RawFilter>,
    pub(super) masks: Vec<Vec<[f32; 2]>>,
    pub(super) zones: Vec<RawZone>,
    pub(super) lines: Vec<RawLine>,
    pub(super) stationary: RawStationary,
    pub(super) events: RawEvents,
    pub(super) snapshots: RawSnapshots,
}

pub(super) fn points(p: &[[f32; 2]]) -> Vec<Point> {
    p.iter().map(|[x, y]| Point::new(*x, *y)).collect()
}

/// Tracker, lifecycle and rules settings, checked the way `Rules::new` will check them, so
/// `lookout check` reports every problem with its key.
/// "`unicorn` is not a label of the model; …", naming some labels it has.
/// Resolve `track.label_groups` to class indices; every label must be one of the model's, in
/// one group only.
pub(super) fn label_groups(groups: &[Vec<String>], model_labels: &LabelTable, e: &mut Errors) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let mut classes = Vec::new();
        for (j, name) in group.iter().enumerate() {
            let key = format!("track.label_groups[{i}][{j}]");
            match model_labels.index_of(name) {
                None => e.push(&key, not_a_label(name, model_labels)),
                Some(c) if classes.contains(&c) => e.push(&key, format!("`{name}` is listed twice in this group")),
                Some(c) => match out.iter().position(|g| g.contains(&c)) {
                    Some(other) => {
                        e.push(&key, format!("`{name}` is already in group {other}; a label can be in one group only"))
                    }
                    None => classes.push(c),
                },
            }
        }
        if group.len() < 2 {
            e.push(
                &format!("track.label_groups[{i}]"),
                "a group needs at least 2 labels; a label always matches its own tracks",
            );
        }
        out.push(classes);
    }
    out
}

/// A typo (`persn`) or a plural (`cars`) gets the label it was meant to be, as unknown keys do.
pub(super) fn not_a_label(l: &str, model_labels: &LabelTable) -> String {
    let examples = format!(
        "names such as {} (the model's manifest lists them; a plain .onnx has COCO's 80)",
        model_labels.examples()
    );
    match crate::text::closest(l, model_labels.names().iter().copied()) {
        Some(name) => format!("`{l}` is not a label of the model: did you mean `{name}`? Its labels are {examples}"),
        None => format!("`{l}` is not a label of the model; its labels are {examples}"),
    }
}

pub(super) fn build_objects(
    p: ObjectParts,
    min_score: f32,
    labels: Option<Vec<String>>,
    model_labels: &LabelTable,
    e: &mut Errors,
) -> ObjectsSpec {
    let t = p.track;
    let low_score = t.low_score.unwrap_or(DEFAULT_TRACK_LOW_SCORE);
    if !(0.0..=1.0).contains(&low_score) || low_score > min_score {
        e.push("track.low_score", format!("{low_score} must be between 0 and detect.min_score ({min_score})"));
    }
    let new_track_score = t.new_track_score.unwrap_or((min_score + 0.1).min(1.0));
    if !(0.0..=1.0).contains(&new_track_score) {
        e.push("track.new_track_score", format!("{new_track_score} must be between 0 and 1"));
    }
    let min_hits = t.min_hits.unwrap_or(DEFAULT_TRACK_MIN_HITS);
    if min_hits == 0 || min_hits > 100 {
        e.push("track.min_hits", format!("{min_hits} must be between 1 and 100"));
    }
    let mut seconds = |key: &str, v: Option<f64>, default: f64, zero_ok: bool| {
        let v = v.unwrap_or(default);
        if !(v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) && v <= 86_400.0) {
            e.push(key, format!("{v} must be {} and at most 86400", if zero_ok { "0 or more" } else { "above 0" }));
        }
        v
    };
    let max_lost_seconds = seconds("track.max_lost_seconds", t.max_lost_seconds, DEFAULT_MAX_LOST_SECONDS, false);
    let update_interval_seconds =
        seconds("track.update_interval_seconds", t.update_interval_seconds, DEFAULT_UPDATE_INTERVAL_SECONDS, false);
    let parked_seconds = seconds("track.parked_seconds", t.parked_seconds, DEFAULT_PARKED_SECONDS, true);
    let threshold = t.threshold.unwrap_or(DEFAULT_EVENT_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        e.push("track.threshold", format!("{threshold} must be between 0 and 1"));
    }
    let label_groups = label_groups(t.label_groups.as_deref().unwrap_or_default(), model_labels, e);
    let tracker = TrackerConfig {
        high_score: min_score,
        low_score,
        new_track_score,
        min_hits,
        max_lost_seconds,
        label_groups,
        ..TrackerConfig::default()
    };
    let lifecycle = LifecycleConfig { threshold, update_interval_seconds, parked_seconds };

    let check_labels = |e: &mut Errors, key: &str, names: &Option<Vec<String>>| {
        for (i, l) in names.iter().flatten().enumerate() {
            if model_labels.index_of(l).is_none() {
                e.push(&format!("{key}[{i}]"), not_a_label(l, model_labels));
            }
        }
    };
    let mut per_label = std::collections::BTreeMap::new();
    for (label, f) in p.filters {
        if model_labels.index_of(&label).is_none() {
            e.push(&format!("filters.{label}"), not_a_label(&label, model_labels));
        }
        per_label.insert(
            label,
            LabelFilter {
                min_score: f.min_score,
                min_area: f.min_area,
                max_area: f.max_area,
                min_ratio: f.min_ratio,
                max_ratio: f.max_ratio,
            },
        );
    }
    let filters = Filters {
        labels,
        default: LabelFilter::default(),
        per_label,
        masks: p.masks.iter().map(|m| points(m)).collect(),
        masks_off: Default::default(),
    };

    let mut names = std::collections::BTreeSet::new();
    let mut name_ok = |e: &mut Errors, key: String, name: &str| {
        if !valid_name(name) || RESERVED_TOPIC_NAMES.contains(&name) {
            e.push(&key, format!("`{name}` must be made of letters, digits, '-', '_' and '.', and not one of {} (it is part of MQTT topics)", RESERVED_TOPIC_NAMES.join(", ")));
        } else if !names.insert(name.to_string()) {
            e.push(&key, format!("`{name}` is used by another zone or line; zones and lines share the camera's topics, so each needs its own name"));
        }
    };
    let mut zones = Vec::new();
    for (i, z) in p.zones.into_iter().enumerate() {
        name_ok(e, format!("zones[{i}].name"), &z.name);
        check_labels(e, &format!("zones[{i}].labels"), &z.labels);
        let mut zone = ZoneConfig::new(z.name, points(&z.polygon));
        zone.labels = z.labels;
        zone.inertia = z.inertia.unwrap_or(zone.inertia);
        zone.loitering_seconds = z.loitering_seconds;
        zone.enabled = z.enabled.unwrap_or(true);
        zones.push(zone);
    }
    let mut lines = Vec::new();
    for (i, l) in p.lines.into_iter().enumerate() {
        name_ok(e, format!("lines[{i}].name"), &l.name);
        check_labels(e, &format!("lines[{i}].labels"), &l.labels);
        let [a, b] = match l.points.as_slice() {
            [a, b] => [Point::new(a[0], a[1]), Point::new(b[0], b[1])],
            other => {
                e.push(
                    &format!("lines[{i}].points"),
                    format!("a counting line has exactly 2 points, got {}", other.len()),
                );
                continue;
            }
        };
        let mut line = LineConfig::new(l.name, [a, b]);
        line.labels = l.labels;
        line.hysteresis = l.hysteresis.unwrap_or(line.hysteresis);
        line.enabled = l.enabled.unwrap_or(true);
        match l.direction.as_deref().map(Directions::from_key) {
            None => {}
            Some(Some(d)) => line.direction = d,
            Some(None) => e.push(
                &format!("lines[{i}].direction"),
                format!(
                    "`{}` must be \"left_to_right\", \"right_to_left\" or \"both\"",
                    l.direction.unwrap_or_default()
                ),
            ),
        }
        lines.push(line);
    }
    let mut stationary = StationaryConfig::default();
    stationary.threshold = p.stationary.threshold.unwrap_or(stationary.threshold);
    stationary.stationary_seconds = p.stationary.stationary_seconds.unwrap_or(stationary.stationary_seconds);
    stationary.moving_updates = p.stationary.moving_updates.unwrap_or(stationary.moving_updates);

    let rules = RulesConfig { filters, zones, lines, stationary };
    for problem in rules.validate() {
        e.push(&problem.key, problem.message);
    }
    let d = SnapshotConfig::default();
    let snapshots = SnapshotConfig {
        enabled: p.snapshots.enabled.unwrap_or(d.enabled),
        crop: p.snapshots.crop.unwrap_or(d.crop),
        draw_box: p.snapshots.draw_box.unwrap_or(d.draw_box),
        max_size: p.snapshots.max_size.unwrap_or(d.max_size),
        quality: p.snapshots.quality.unwrap_or(d.quality),
    };
    if !(16..=8192).contains(&snapshots.max_size) {
        e.push("snapshots.max_size", format!("{} must be between 16 and 8192 pixels", snapshots.max_size));
    }
    if !(1..=100).contains(&snapshots.quality) {
        e.push("snapshots.quality", format!("{} must be between 1 and 100", snapshots.quality));
    }
    ObjectsSpec {
        tracker,
        lifecycle,
        rules,
        publish_detections: p.events.detections.unwrap_or(false),
        snapshots,
        labels: model_labels.clone(),
    }
}
