//! The docs against the code, so the two cannot drift apart:
//! - every key in docs/configuration.md's tables, and every key of the reference configs
//!   (uncommented), is one the config parser accepts;
//! - every key the parser accepts is in docs/configuration.md, exactly once;
//! - the defaults written there (and on the reference configs' default lines) equal the code's;
//! - docs/models.md's manifest table names every key a model manifest accepts, once and no
//!   other, with the code's numeric defaults;
//! - docs/architecture.md's layout names the modules of src/lib.rs, no more and no fewer;
//! - every relative link in README.md, docs/*.md and models/README.md resolves, anchors included;
//! - the README's commands table names every subcommand and every `lookout bench` subcommand.
//!
//! The accepted keys are not listed by hand: each table is probed with an unknown key, and
//! serde's own "expected one of" list is read back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use lookout::config::raw::{RawCamera, RawGlobal};
use serde::de::DeserializeOwned;

use crate::common::repo;

const CONFIGURATION: &str = "docs/configuration.md";
const GLOBAL_REF: &str = "docs/lookout.reference.toml";
const CAMERA_REF: &str = "docs/pipeline.reference.toml";
const MODELS: &str = "docs/models.md";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The keys `T` accepts in the table the probe puts `zzz_probe` in.
fn accepted<T: DeserializeOwned>(probe: &str) -> BTreeSet<String> {
    let err = match toml::from_str::<T>(probe) {
        Ok(_) => panic!("the probe key was accepted:\n{probe}"),
        Err(e) => e.to_string(),
    };
    let line = err
        .lines()
        .find(|l| l.contains("unknown field `zzz_probe`"))
        .unwrap_or_else(|| panic!("no unknown-field error for:\n{probe}\n{err}"));
    // "unknown field `zzz_probe`, expected one of `a`, `b`" (or "expected `a`" for one field).
    let list = line.split_once("expected").map(|(_, r)| r).unwrap_or("");
    list.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// Every key the parser accepts, as a dotted path: `mqtt.tls.ca_file`, `zones.name`,
/// `filters.*.min_area`, `inference.providers.device_id`. Tables count as keys too (`mqtt`).
fn parser_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    let join = |table: &str, key: &str| if table.is_empty() { key.to_string() } else { format!("{table}.{key}") };
    let mut global = BTreeSet::new();
    let global_tables: [(&str, String); 17] = [
        ("", "zzz_probe = 1\n".into()),
        ("mqtt", "[mqtt]\nzzz_probe = 1\n".into()),
        ("mqtt.tls", "[mqtt.tls]\nzzz_probe = 1\n".into()),
        ("spool", "[spool]\nzzz_probe = 1\n".into()),
        ("inference", "[inference]\nzzz_probe = 1\n".into()),
        ("inference.providers", "[inference]\nproviders = [{ type = \"cpu\", zzz_probe = 1 }]\n".into()),
        ("detect", "[detect]\nzzz_probe = 1\n".into()),
        ("stats", "[stats]\nzzz_probe = 1\n".into()),
        ("track", "[track]\nzzz_probe = 1\n".into()),
        ("metrics", "[metrics]\nzzz_probe = 1\n".into()),
        ("snapshots", "[snapshots]\nzzz_probe = 1\n".into()),
        ("links", "[links]\nzzz_probe = 1\n".into()),
        ("links.frames", "[links.frames]\nzzz_probe = 1\n".into()),
        ("links.detections", "[links.detections]\nzzz_probe = 1\n".into()),
        ("links.events", "[links.events]\nzzz_probe = 1\n".into()),
        ("motion", "[motion]\nzzz_probe = 1\n".into()),
        ("web", "[web]\nzzz_probe = 1\n".into()),
    ];
    for (table, probe) in &global_tables {
        for key in accepted::<RawGlobal>(probe) {
            global.insert(join(table, &key));
        }
    }
    let uri = "uri = \"test://ball\"\n";
    let mut camera = BTreeSet::new();
    let camera_tables: [(&str, &str); 13] = [
        ("", "zzz_probe = 1\n"),
        ("detect", "[detect]\nzzz_probe = 1\n"),
        ("track", "[track]\nzzz_probe = 1\n"),
        ("filters.*", "[filters.person]\nzzz_probe = 1\n"),
        ("zones", "[[zones]]\nname = \"z\"\npolygon = []\nzzz_probe = 1\n"),
        ("lines", "[[lines]]\nname = \"l\"\npoints = []\nzzz_probe = 1\n"),
        ("stationary", "[stationary]\nzzz_probe = 1\n"),
        ("events", "[events]\nzzz_probe = 1\n"),
        ("snapshots", "[snapshots]\nzzz_probe = 1\n"),
        ("links", "[links]\nzzz_probe = 1\n"),
        ("links.frames", "[links.frames]\nzzz_probe = 1\n"),
        ("links.detections", "[links.detections]\nzzz_probe = 1\n"),
        ("motion", "[motion]\nzzz_probe = 1\n"),
    ];
    for (table, probe) in camera_tables {
        for key in accepted::<RawCamera>(&format!("{uri}{probe}")) {
            camera.insert(join(table, &key));
        }
    }
    (global, camera)
}

/// A documented key as the parser spells it: `[mqtt.tls]` → `mqtt.tls`, `zones[].name` →
/// `zones.name`, `filters.<label>.min_area` → `filters.*.min_area`.
fn normalise(key: &str) -> String {
    key.trim_matches(|c| c == '[' || c == ']').replace("[]", "").replace("<label>", "*")
}

/// One row of a key table in configuration.md.
#[derive(Debug, Clone)]
struct Row {
    key: String,
    default: String,
    line: usize,
}

/// The key tables of configuration.md: (lookout.toml rows, camera file rows). A row's first
/// cell may name several keys, each in backticks.
fn documented() -> (Vec<Row>, Vec<Row>) {
    let text = read(CONFIGURATION);
    let (mut global, mut camera) = (Vec::new(), Vec::new());
    let mut scope = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(h) = line.strip_prefix("## ") {
            scope = match h.trim() {
                "lookout.toml" => Some(true),
                "Camera files" => Some(false),
                _ => None,
            };
            continue;
        }
        let Some(is_global) = scope else { continue };
        let cells: Vec<String> = line
            .trim()
            .trim_matches('|')
            .replace("\\|", "\u{1}")
            .split('|')
            .map(|c| c.trim().replace('\u{1}', "|"))
            .collect();
        if !line.starts_with("| `") || cells.len() < 4 {
            continue;
        }
        let default = cells[1].to_string();
        for key in cells[0].split('`').skip(1).step_by(2) {
            let row = Row { key: normalise(key), default: default.clone(), line: i + 1 };
            if is_global { global.push(row) } else { camera.push(row) }
        }
    }
    (global, camera)
}

/// The code's defaults, by dotted key, for the keys whose default is a number or a boolean.
fn code_defaults() -> BTreeMap<&'static str, f64> {
    use lookout::config::spec::*;
    use lookout::link::LinkKind;
    use lookout::objects::snapshot::SnapshotConfig;
    use lookout::rules::{LineConfig, Point, StationaryConfig, ZoneConfig};
    use lookout::source::motion::MotionConfig;
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    let motion = MotionConfig::default();
    let snap = SnapshotConfig::default();
    let stationary = StationaryConfig::default();
    let zone = ZoneConfig::new("z", Vec::new());
    let line = LineConfig::new("l", [Point::new(0.0, 0.0), Point::new(1.0, 1.0)]);
    BTreeMap::from([
        ("shutdown_timeout_seconds", DEFAULT_SHUTDOWN_TIMEOUT_SECONDS),
        ("mqtt.port", DEFAULT_MQTT_PORT as f64),
        ("mqtt.keepalive_seconds", DEFAULT_KEEPALIVE_SECONDS as f64),
        ("mqtt.max_inflight", DEFAULT_MQTT_MAX_INFLIGHT as f64),
        ("mqtt.queue_capacity_messages", DEFAULT_MQTT_QUEUE_MESSAGES as f64),
        ("mqtt.flush_timeout_seconds", DEFAULT_FLUSH_TIMEOUT_SECONDS as f64),
        ("mqtt.reconnect_max_seconds", DEFAULT_MQTT_RECONNECT_MAX_SECONDS),
        ("spool.max_bytes", DEFAULT_SPOOL_MAX_BYTES as f64),
        ("inference.fallback", b(DEFAULT_FALLBACK)),
        ("inference.workers", DEFAULT_WORKERS as f64),
        ("inference.intra_threads", DEFAULT_INTRA_THREADS as f64),
        ("inference.max_batch", DEFAULT_MAX_BATCH as f64),
        ("inference.max_batch_wait_ms", DEFAULT_MAX_BATCH_WAIT_MS as f64),
        ("stats.interval_seconds", DEFAULT_STATS_INTERVAL_SECONDS as f64),
        ("snapshots.retain_days", DEFAULT_SNAPSHOT_RETAIN_DAYS),
        ("links.frames.capacity", LinkKind::Frames.default_spec().capacity as f64),
        ("links.detections.capacity", LinkKind::Detections.default_spec().capacity as f64),
        ("links.events.capacity", LinkKind::Events.default_spec().capacity as f64),
        ("stall_timeout_seconds", DEFAULT_STALL_TIMEOUT_SECONDS),
        ("reconnect_max_seconds", DEFAULT_RECONNECT_MAX_SECONDS),
        ("decoder_threads", DEFAULT_DECODER_THREADS as f64),
        ("max_clock_skew_seconds", DEFAULT_MAX_CLOCK_SKEW_SECONDS),
        ("detect.fps", DEFAULT_DETECT_FPS),
        ("detect.min_score", DEFAULT_MIN_SCORE as f64),
        ("detect.workers", DEFAULT_DETECT_WORKERS as f64),
        ("track.low_score", DEFAULT_TRACK_LOW_SCORE as f64),
        ("track.min_hits", DEFAULT_TRACK_MIN_HITS as f64),
        ("track.max_lost_seconds", DEFAULT_MAX_LOST_SECONDS),
        ("track.threshold", DEFAULT_EVENT_THRESHOLD as f64),
        ("track.update_interval_seconds", DEFAULT_UPDATE_INTERVAL_SECONDS),
        ("track.parked_seconds", DEFAULT_PARKED_SECONDS),
        ("zones.inertia", zone.inertia as f64),
        ("lines.hysteresis", line.hysteresis as f64),
        ("stationary.threshold", stationary.threshold as f64),
        ("stationary.stationary_seconds", stationary.stationary_seconds),
        ("stationary.moving_updates", stationary.moving_updates as f64),
        ("snapshots.enabled", b(snap.enabled)),
        ("snapshots.crop", b(snap.crop)),
        ("snapshots.draw_box", b(snap.draw_box)),
        ("snapshots.max_size", snap.max_size as f64),
        ("snapshots.quality", snap.quality as f64),
        ("motion.enabled", b(motion.enabled)),
        ("motion.threshold", motion.threshold as f64),
        ("motion.min_area", motion.min_area as f64),
        ("motion.max_idle_detect_seconds", motion.max_idle_detect_seconds),
        ("motion.frame_height", motion.frame_height as f64),
    ])
}

/// A written default as a number: `10`, `1.5`, `true` (1), `false` (0). `None` for anything
/// else (a path, a name, "none").
fn number(word: &str) -> Option<f64> {
    match word.trim().trim_matches('"') {
        "true" => Some(1.0),
        "false" => Some(0.0),
        w => w.parse().ok(),
    }
}

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn docs_configuration_names_every_key_the_parser_accepts_once_and_no_other() {
    let (global_keys, camera_keys) = parser_keys();
    assert!(
        global_keys.len() + camera_keys.len() > 100,
        "the probes found too few keys: {global_keys:?} {camera_keys:?}"
    );
    let (global, camera) = documented();
    let mut problems = Vec::new();
    for (what, rows, accepted) in [("lookout.toml", &global, &global_keys), ("camera files", &camera, &camera_keys)] {
        // (a) every documented key exists, and (no contradictions) is documented once.
        let mut seen = BTreeMap::new();
        for r in rows.iter() {
            if !accepted.contains(&r.key) {
                problems
                    .push(format!("{CONFIGURATION}:{}: `{}` ({what}) is not a key the parser accepts", r.line, r.key));
            }
            if let Some(first) = seen.insert(r.key.clone(), r.line) {
                problems.push(format!(
                    "{CONFIGURATION}:{}: `{}` ({what}) is documented twice (first at line {first})",
                    r.line, r.key
                ));
            }
        }
    }
    // (b) every key the parser accepts is documented: by itself, through its sub-keys, or (for
    // lookout.toml's camera defaults such as [detect]) by the table row and the camera's key.
    let has = |rows: &[Row], key: &str| rows.iter().any(|r| r.key == key || r.key.starts_with(&format!("{key}.")));
    for key in &global_keys {
        let via_camera =
            key.split_once('.').is_some_and(|(table, _)| global.iter().any(|r| r.key == table) && has(&camera, key));
        if !has(&global, key) && !via_camera {
            problems.push(format!(
                "{CONFIGURATION}: lookout.toml key `{key}` is accepted by the parser but not documented"
            ));
        }
    }
    for key in &camera_keys {
        if !has(&camera, key) {
            problems.push(format!("{CONFIGURATION}: camera key `{key}` is accepted by the parser but not documented"));
        }
    }
    assert!(problems.is_empty(), "docs/configuration.md and the parser disagree:\n{}", problems.join("\n"));
}

#[test]
fn docs_defaults_equal_the_codes() {
    let code = code_defaults();
    let (global, camera) = documented();
    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    // A camera key that lookout.toml also documents (links.frames.capacity) inherits its default
    // from there: checked once, on lookout.toml's row.
    let camera_only = camera.iter().filter(|r| !global.iter().any(|g| g.key == r.key));
    for r in global.iter().chain(camera_only) {
        let Some(&want) = code.get(r.key.as_str()) else { continue };
        // The default is the first word in backticks: "`1883`; `8883` with `[mqtt.tls]`".
        let written = r.default.split('`').nth(1).and_then(number);
        match written {
            Some(v) if same(v, want) => {}
            Some(v) => {
                problems.push(format!("{CONFIGURATION}:{}: `{}` default {v}, but the code's is {want}", r.line, r.key))
            }
            None => problems.push(format!(
                "{CONFIGURATION}:{}: `{}` default `{}` is not the code's {want}",
                r.line, r.key, r.default
            )),
        }
        checked.insert(r.key.clone());
    }
    for key in code.keys() {
        if !checked.contains(*key) {
            problems.push(format!("{CONFIGURATION}: `{key}` has a default in the code ({}) but no row", code[key]));
        }
    }
    // The reference configs: a commented `key = value` line shows the default, unless its
    // comment says otherwise ("# default: …").
    for path in [GLOBAL_REF, CAMERA_REF] {
        let mut table = String::new();
        for (i, line) in read(path).lines().enumerate() {
            let l = line.trim_start_matches('#').trim();
            if let Some(name) = l.strip_prefix('[').map(|r| r.trim_start_matches('[')).and_then(|r| r.split(']').next())
            {
                table = normalise(&name.replace(' ', ""));
                if table.starts_with("filters.") {
                    table = "filters.*".into();
                }
                continue;
            }
            let Some((key, value)) = l.split_once('=') else { continue };
            let key = key.trim();
            if key.is_empty()
                || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                || value.to_ascii_lowercase().contains("default")
            {
                continue;
            }
            let full = if table.is_empty() { key.to_string() } else { format!("{table}.{key}") };
            let Some(&want) = code.get(full.as_str()) else { continue };
            let value = value.split('#').next().unwrap_or("").trim();
            match number(value) {
                Some(v) if same(v, want) => {}
                _ => problems.push(format!(
                    "{path}:{}: `{full} = {value}` is shown as the default, but the code's is {want}",
                    i + 1
                )),
            }
        }
    }
    assert!(problems.is_empty(), "documented defaults differ from the code's:\n{}", problems.join("\n"));
}

/// Every key a model manifest accepts, as a dotted path (`input.pad_value`), tables included:
/// each table is probed with an unknown key and the manifest parser's own "expected one of"
/// list is read back, as for the config.
fn manifest_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for table in ["", "input", "output"] {
        let probe =
            if table.is_empty() { "zzz_probe = 1\n".to_string() } else { format!("[{table}]\nzzz_probe = 1\n") };
        let problems = match lookout::detect::manifest::ModelSpec::parse(&probe, Path::new("models/probe.toml")) {
            Ok(_) => panic!("the probe key was accepted:\n{probe}"),
            Err(p) => p,
        };
        let message = problems
            .iter()
            .map(|p| p.message.as_str())
            .find(|m| m.contains("unknown field `zzz_probe`"))
            .unwrap_or_else(|| panic!("no unknown-field problem for:\n{probe}\n{problems:?}"));
        let list = message.split_once("expected").map(|(_, r)| r).unwrap_or("");
        for key in list.split('`').skip(1).step_by(2) {
            keys.insert(if table.is_empty() { key.to_string() } else { format!("{table}.{key}") });
        }
    }
    keys
}

/// The rows of docs/models.md's manifest key table (under "## Model manifests"), one per key: a
/// row naming several keys (`input.mean`, `input.std`) gives each its own default when the
/// default cell has as many values in backticks, else the whole cell.
fn documented_manifest_keys() -> Vec<Row> {
    let text = read(MODELS);
    let mut rows = Vec::new();
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        if let Some(h) = line.strip_prefix("## ") {
            in_section = h.trim() == "Model manifests";
            continue;
        }
        if !in_section || !line.starts_with("| `") {
            continue;
        }
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 {
            continue;
        }
        let keys: Vec<&str> = cells[0].split('`').skip(1).step_by(2).collect();
        let defaults: Vec<&str> = cells[1].split('`').skip(1).step_by(2).collect();
        for (n, key) in keys.iter().enumerate() {
            let default = if defaults.len() == keys.len() { defaults[n].to_string() } else { cells[1].to_string() };
            rows.push(Row { key: key.to_string(), default, line: i + 1 });
        }
    }
    rows
}

/// A written default as numbers: `0.45` → [0.45], `[8, 16, 32]` → [8, 16, 32]. `None` for
/// anything else ("required", a name).
fn numbers(written: &str) -> Option<Vec<f64>> {
    let w = written.trim().trim_matches('`');
    let inner = w.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(w);
    inner.split(',').map(|v| v.trim().parse().ok()).collect()
}

#[test]
fn docs_models_names_every_manifest_key_once_with_the_codes_defaults() {
    use lookout::detect::letterbox::PAD_VALUE;
    use lookout::detect::manifest::*;
    use lookout::detect::{DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD};
    let accepted = manifest_keys();
    assert!(accepted.len() > 20, "the probes found too few keys: {accepted:?}");
    let rows = documented_manifest_keys();
    let mut problems = Vec::new();
    let mut seen = BTreeMap::new();
    for r in &rows {
        if !accepted.contains(&r.key) {
            problems.push(format!("{MODELS}:{}: `{}` is not a key a model manifest accepts", r.line, r.key));
        }
        if let Some(first) = seen.insert(r.key.clone(), r.line) {
            problems.push(format!("{MODELS}:{}: `{}` is documented twice (first at line {first})", r.line, r.key));
        }
    }
    // A table (`input`) is documented through its keys.
    for key in &accepted {
        if !rows.iter().any(|r| r.key == *key || r.key.starts_with(&format!("{key}."))) {
            problems.push(format!("{MODELS}: manifest key `{key}` is accepted by the parser but not documented"));
        }
    }
    let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let code: BTreeMap<&str, Vec<f64>> = BTreeMap::from([
        ("score_threshold", f(&[DEFAULT_SCORE_THRESHOLD])),
        ("nms_iou", f(&[DEFAULT_NMS_IOU])),
        ("input.scale", f(&[DEFAULT_INPUT_SCALE])),
        ("input.mean", f(&DEFAULT_INPUT_MEAN)),
        ("input.std", f(&DEFAULT_INPUT_STD)),
        ("input.pad_value", f(&[PAD_VALUE])),
        ("output.strides", DEFAULT_STRIDES.iter().map(|&s| f64::from(s)).collect()),
        ("output.reg_max", vec![DEFAULT_REG_MAX as f64]),
    ]);
    for (key, want) in &code {
        let Some(r) = rows.iter().find(|r| r.key == *key) else { continue };
        match numbers(&r.default) {
            Some(v) if v.len() == want.len() && v.iter().zip(want).all(|(a, b)| same(*a, *b)) => {}
            _ => problems
                .push(format!("{MODELS}:{}: `{key}` default `{}`, but the code's is {want:?}", r.line, r.default)),
        }
    }
    assert!(problems.is_empty(), "docs/models.md and the manifest parser disagree:\n{}", problems.join("\n"));
}

/// A reference config with every commented key line uncommented (a key set twice, as in
/// alternative examples, keeps its first value).
fn uncommented(text: &str) -> String {
    let mut out = String::new();
    let mut table = String::new();
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let l = line.trim();
        let rest = if l.starts_with('#') { l.trim_start_matches('#').trim_start() } else { l };
        let word_end = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(rest.len());
        let is_key = word_end > 0 && rest[word_end..].trim_start().starts_with('=');
        if rest.starts_with('[') && rest.chars().nth(1).is_some_and(|c| c == '[' || c.is_ascii_lowercase()) {
            table = rest.split('#').next().unwrap_or("").trim().to_string();
            out.push_str(&table);
        } else if is_key && seen.insert((table.clone(), rest[..word_end].to_string())) {
            out.push_str(rest);
        }
        out.push('\n');
    }
    out
}

#[test]
fn docs_reference_configs_uncommented_hold_only_keys_the_parser_accepts() {
    let global = uncommented(&read(GLOBAL_REF));
    let camera = uncommented(&read(CAMERA_REF));
    assert!(global.lines().filter(|l| l.contains('=')).count() > 50, "{global}");
    if let Err(e) = toml::from_str::<RawGlobal>(&global) {
        panic!("{GLOBAL_REF}, uncommented, is refused: {e}\n{global}");
    }
    if let Err(e) = toml::from_str::<RawCamera>(&camera) {
        panic!("{CAMERA_REF}, uncommented, is refused: {e}\n{camera}");
    }
}

#[test]
fn docs_architecture_layout_names_the_modules_of_lib_rs() {
    let lib: BTreeSet<String> = read("src/lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ").and_then(|r| r.strip_suffix(';')))
        .map(str::to_string)
        .collect();
    let arch = read("docs/architecture.md");
    let layout = arch
        .split("## Layout")
        .nth(1)
        .and_then(|r| r.split("```text").nth(1))
        .and_then(|r| r.split("```").next())
        .expect("a ```text block under ## Layout");
    let documented: BTreeSet<String> = layout
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .map(|w| w.trim_end_matches('/').to_string())
        .collect();
    assert!(lib.len() > 10, "{lib:?}");
    assert_eq!(documented, lib, "docs/architecture.md's layout (left) and src/lib.rs's modules (right) differ");
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as '-'.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The lines outside fenced code blocks, with their numbers (from 1).
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .map(|(i, l)| (i + 1, l))
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, l) in prose(text) {
        let Some(h) = l.strip_prefix('#') else { continue };
        let s = slug(h.trim_start_matches('#'));
        let n = count.entry(s.clone()).or_insert(0);
        out.insert(if *n == 0 { s.clone() } else { format!("{s}-{n}") });
        *n += 1;
    }
    out
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[test]
fn docs_links_resolve() {
    let root = repo();
    let mut files = vec!["README.md".to_string(), "models/README.md".to_string()];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut problems = Vec::new();
    let mut links = 0;
    for file in &files {
        let text = read(file);
        let dir = Path::new(file).parent().unwrap_or(Path::new(""));
        for (n, line) in prose(&text) {
            for part in line.split("](").skip(1) {
                let Some(target) = part.split(')').next() else { continue };
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                links += 1;
                let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
                let rel = if path.is_empty() { PathBuf::from(file) } else { lexical(&dir.join(path)) };
                let at = format!("{file}:{n}: ({target})");
                if rel.starts_with("..") || rel.is_absolute() {
                    problems.push(format!("{at} points outside the repository"));
                    continue;
                }
                if !root.join(&rel).exists() {
                    problems.push(format!("{at}: {} does not exist", rel.display()));
                    continue;
                }
                if !anchor.is_empty() {
                    let target_text = std::fs::read_to_string(root.join(&rel)).unwrap_or_default();
                    if !anchors(&target_text).contains(anchor) {
                        problems.push(format!("{at}: no heading `#{anchor}` in {}", rel.display()));
                    }
                }
            }
        }
    }
    assert!(links > 50, "only {links} links found");
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

/// The subcommands `lookout <args> --help` lists, less `help`.
fn subcommands(args: &[&str]) -> Vec<String> {
    let out = crate::common::run_lookout(&[args, &["--help"]].concat(), &[], std::time::Duration::from_secs(30));
    let help = crate::common::text(&out.stdout);
    let commands = help
        .split("Commands:")
        .nth(1)
        .and_then(|r| r.split("\n\n").next())
        .unwrap_or_else(|| panic!("no Commands: in\n{help}"));
    commands.lines().filter_map(|l| l.split_whitespace().next()).filter(|c| *c != "help").map(str::to_string).collect()
}

#[test]
fn docs_readme_commands_table_lists_every_subcommand() {
    let readme = read("README.md");
    let table = readme.split("## Commands").nth(1).and_then(|r| r.split("\n## ").next()).expect("a Commands section");
    let mut missing = Vec::new();
    let top = subcommands(&[]);
    let bench = subcommands(&["bench"]);
    assert!(top.len() >= 4 && bench.len() >= 8, "{top:?} {bench:?}");
    for c in top.iter().filter(|c| *c != "bench") {
        if !table.contains(&format!("| `lookout {c}")) {
            missing.push(format!("lookout {c}"));
        }
    }
    for c in &bench {
        if !table.contains(&format!("| `lookout bench {c}")) {
            missing.push(format!("lookout bench {c}"));
        }
    }
    assert!(missing.is_empty(), "README.md's commands table lacks: {}", missing.join(", "));
}
