//! The payload contract: every JSON payload the other tests see is checked against the JSON
//! Schemas in `schemas/`, picked by the payload's `type`. The tests here check the schemas
//! themselves: each is a valid draft 2020-12 schema, accepts a known-good payload of each of
//! its types, and rejects an extra field, a wrong enum value and each missing required field.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::common::repo;

/// Which schema file describes each payload `type`.
const TYPES: [(&str, &str); 14] = [
    ("detection", "detection.json"),
    ("camera_status", "camera_status.json"),
    ("stats", "stats.json"),
    ("new", "object_event.json"),
    ("update", "object_event.json"),
    ("end", "object_event.json"),
    ("zone_enter", "rule_event.json"),
    ("zone_exit", "rule_event.json"),
    ("loitering", "rule_event.json"),
    ("line_cross", "rule_event.json"),
    ("occupancy", "occupancy.json"),
    ("line_count", "line_count.json"),
    ("profile_state", "profile_state.json"),
    ("config_result", "config_result.json"),
];

fn schema_file(kind: &str) -> Option<&'static str> {
    TYPES.iter().find(|(t, _)| *t == kind).map(|(_, f)| *f)
}

fn load(file: &str) -> Value {
    let path = repo().join("schemas").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// Each schema file compiled once, with `format` (date-time) asserted, not just annotated.
fn validators() -> &'static BTreeMap<&'static str, jsonschema::Validator> {
    static VALIDATORS: OnceLock<BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        TYPES
            .iter()
            .map(|(_, file)| {
                let validator = jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&load(file))
                    .unwrap_or_else(|e| panic!("schemas/{file} does not compile: {e}"));
                (*file, validator)
            })
            .collect()
    })
}

/// Every way `payload` breaks its schema, one line each; empty when it is valid.
fn errors(file: &str, payload: &Value) -> Vec<String> {
    validators()[file]
        .iter_errors(payload)
        .map(|e| format!("at `{}`: {e} (schema {})", e.instance_path(), e.schema_path()))
        .collect()
}

/// Panics unless `payload` matches the schema for its `type`, naming every violation.
pub fn assert_valid(payload: &Value) {
    let kind = payload["type"].as_str().unwrap_or_else(|| panic!("payload has no string `type`: {payload}"));
    let file =
        schema_file(kind).unwrap_or_else(|| panic!("no schema in schemas/ for payload type `{kind}`: {payload}"));
    let errors = errors(file, payload);
    assert!(
        errors.is_empty(),
        "`{kind}` payload breaks schemas/{file}:\n  {}\npayload: {payload}",
        errors.join("\n  ")
    );
}

/// [`assert_valid`] on every stdout line that is JSON.
pub fn assert_valid_lines<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) {
    for line in lines {
        if let Ok(v) = serde_json::from_str::<Value>(line.as_ref()) {
            assert_valid(&v);
        }
    }
}

/// [`assert_valid`] on every MQTT message (topic, payload, retained) except the ones that
/// are not JSON by contract: the availability topic (`online` / `offline`), the switches'
/// states (`detect/state`, `zone/<name>/state`, `motion/state`, …: `ON` / `OFF`; the
/// gateway's `profile/state` is JSON) and `snapshot` (JPEG).
pub fn assert_valid_messages(msgs: &[(String, Vec<u8>, bool)], availability_topic: &str) {
    let not_json = |t: &str| {
        t == availability_topic || (t.ends_with("/state") && !t.ends_with("/profile/state")) || t.ends_with("/snapshot")
    };
    for (topic, payload, _) in msgs.iter().filter(|(t, _, _)| !not_json(t)) {
        let v: Value = serde_json::from_slice(payload)
            .unwrap_or_else(|e| panic!("{topic}: not JSON ({e}): {}", String::from_utf8_lossy(payload)));
        assert_valid(&v);
    }
}

const ID: &str = "019ad3a1-6337-75a3-8f1e-0b4f0c2a9d11";
const OBJECT_ID: &str = "019ad3a1-619d-770f-9a3b-5d2e7c1f0a42";
const AT: &str = "2026-11-28T19:29:34.490Z";

fn frame() -> Value {
    json!({"captured_at": AT, "capture_clock": "arrival", "frame_seq": 8, "width": 640, "height": 272})
}

fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn object(kind: &str) -> Value {
    with(
        json!({"v": 2, "type": kind, "id": ID, "gateway_id": "demo", "camera": "bikes", "object_id": OBJECT_ID, "track_id": 1,
               "label": "person", "score": 0.9214, "top_score": 0.9336, "box": [344.0, 0.4, 572.7, 268.8],
               "box_normalized": [0.5375, 0.0016, 0.8948, 0.9881], "first_seen": "2026-11-28T19:29:34.090Z", "last_seen": AT,
               "current_zones": ["road"], "entered_zones": ["road"], "stationary": false, "direction_degrees": 0.1,
               "speed_px_per_second": 472.8}),
        frame(),
    )
}

fn rule(kind: &str, fields: Value) -> Value {
    let base = json!({"v": 2, "type": kind, "id": ID, "gateway_id": "demo", "camera": "bikes", "object_id": OBJECT_ID,
                      "track_id": 1, "label": "traffic light"});
    with(with(base, fields), frame())
}

/// A known-good payload of each type, and a field of it to set to a value outside its enum.
fn samples() -> Vec<(Value, &'static str, Value)> {
    vec![
        (
            json!({"v": 2, "type": "detection", "id": ID, "gateway_id": "demo", "camera": "bikes", "captured_at": AT,
                   "capture_clock": "rtcp", "pts_ms": 480, "frame_seq": 2, "width": 640, "height": 272,
                   "detections": [{"label": "person", "score": 0.8765, "box": [10.0, 20.1, 30.0, 40.0]}]}),
            "capture_clock",
            json!("ntp"),
        ),
        (
            json!({"v": 2, "type": "camera_status", "gateway_id": "demo", "camera": "gate", "state": "reconnecting",
                   "reason": "connection refused", "decoder": null, "retry_in_seconds": 4.0,
                   "uri": "rtsp://viewer:***@10.0.0.5/stream", "time": AT}),
            "state",
            json!("sleeping"),
        ),
        (
            json!({"v": 2, "type": "stats", "gateway_id": "demo", "time": AT, "uptime_seconds": 12.3, "provider": "cpu",
                   "provider_skipped": [{"provider": "openvino:NPU", "reason": "Device NPU is not available"}], "batches": {"1": 49}, "final": true,
                   "cameras": {"bikes": {"model": "yolox_nano", "provider": "openvino", "decoded": 250, "skipped_by_rate": 200, "skipped_by_motion": 0, "inferred": 49, "detections": 120,
                                         "filtered": {"label": 3, "score": 0, "area": 1, "ratio": 0, "mask": 0},
                                         "dropped": {"link_full": 1, "inference_error": 0}, "inference_ms_mean": 21.5}}}),
            "final",
            json!("yes"),
        ),
        (object("new"), "capture_clock", json!("gps")),
        (with(object("update"), json!({"reasons": ["zones", "heartbeat"]})), "reasons", json!(["moved"])),
        (object("end"), "type", json!("gone")),
        (rule("zone_enter", json!({"zone": "road"})), "type", json!("zone_entered")),
        (
            rule("zone_exit", json!({"zone": "road", "dwell_seconds": 3.2, "object_id": null})),
            "capture_clock",
            json!("ntp"),
        ),
        (rule("loitering", json!({"zone": "road", "dwell_seconds": 30.0})), "capture_clock", json!("ntp")),
        (
            rule(
                "line_cross",
                json!({"line": "middle", "direction": "left_to_right", "counts": {"left_to_right": 3, "right_to_left": 1}}),
            ),
            "direction",
            json!("both"),
        ),
        (
            json!({"v": 2, "type": "occupancy", "gateway_id": "demo", "camera": "bikes", "zone": "road", "label": "all", "count": 0, "time": AT}),
            "count",
            json!(-1),
        ),
        (
            json!({"v": 2, "type": "line_count", "gateway_id": "demo", "camera": "bikes", "line": "middle", "label": "car",
                   "left_to_right": 3, "right_to_left": 1, "time": AT}),
            "label",
            json!(""),
        ),
        (profile_sample(), "ok", json!("yes")),
        (config_sample(), "saved", json!(1)),
    ]
}

/// `profile_state` as the daemon writes it, refused with a problem on a line.
fn profile_sample() -> Value {
    use lookout::config::replace::Problem;
    let problem = Problem {
        file: "pipelines/bikes.toml".into(),
        line: Some(31),
        key: "profiles.night.detect.min_score".into(),
        message: "with profile `night`: 1.5 must be between 0 and 1".into(),
    };
    let names = vec!["default".to_string(), "night".to_string()];
    let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_764_358_174_490);
    serde_json::from_slice(&lookout::remote::profile_state(
        "demo",
        "default",
        &names,
        Some("night"),
        &Err(vec![problem]),
        at,
    ))
    .unwrap()
}

/// `config_result` as the daemon writes it, saved and applied.
fn config_sample() -> Value {
    use lookout::remote::{Changes, ConfigOutcome};
    let outcome = ConfigOutcome::Saved {
        backup: "bikes.toml.bak".into(),
        applied: true,
        changes: Changes { restarted: vec!["bikes".into()], ..Changes::default() },
        note: None,
    };
    let at = std::time::SystemTime::UNIX_EPOCH;
    serde_json::from_slice(&lookout::remote::config_result("demo", "bikes", Some("ops"), &outcome, at)).unwrap()
}

#[test]
fn every_schema_is_valid_and_used() {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let schema = load(&name);
            assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
            if let Err(e) = jsonschema::meta::validate(&schema) {
                panic!("schemas/{name} is not a valid JSON Schema: {e}");
            }
            assert_eq!(schema["properties"]["v"]["const"], 2, "{name} pins v");
            assert_eq!(schema["additionalProperties"], false, "{name}");
            for key in ["v", "type"] {
                assert!(schema["required"].as_array().unwrap().contains(&json!(key)), "{name} requires {key}");
            }
            files.insert(name, schema);
        }
    }
    let used: std::collections::BTreeSet<&str> = TYPES.iter().map(|(_, f)| *f).collect();
    assert_eq!(
        files.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(),
        used,
        "one schema file per payload type"
    );
    let _ = validators();
}

#[test]
fn known_good_payloads_pass_and_broken_ones_fail() {
    let samples = samples();
    let kinds: std::collections::BTreeSet<&str> = samples.iter().map(|(s, _, _)| s["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), TYPES.len(), "a sample of every type");
    for (good, field, bad_value) in samples {
        assert_valid(&good);
        let kind = good["type"].as_str().unwrap();
        let file = schema_file(kind).unwrap();

        let extra = with(good.clone(), json!({"undocumented": 1}));
        assert!(!errors(file, &extra).is_empty(), "{kind}: an extra field passes");

        let newer = with(good.clone(), json!({"v": 3}));
        assert!(!errors(file, &newer).is_empty(), "{kind}: v 3 passes");

        let wrong = with(good.clone(), json!({ field: bad_value }));
        assert!(!errors(file, &wrong).is_empty(), "{kind}: {field} = {bad_value} passes");

        // Every field a payload has is always there (nullable, never optional), so each is
        // required, if only for its type (`reasons` for `update`, `zone` for zone events...).
        for key in good.as_object().unwrap().keys() {
            let mut missing = good.clone();
            missing.as_object_mut().unwrap().remove(key);
            assert!(!errors(file, &missing).is_empty(), "{kind}: passes without {key}");
        }
    }
}

#[test]
fn the_finer_rules_hold() {
    let bad = [
        ("timestamp not UTC millis", with(object("new"), json!({"captured_at": "2026-11-28T19:29:34+01:00"}))),
        ("timestamp not a date", with(object("new"), json!({"last_seen": "2026-13-45T19:29:34.490Z"}))),
        ("id not a UUIDv7", with(object("new"), json!({"id": "019AD3A1-6337-75A3-8F1E-0B4F0C2A9D11"}))),
        ("score above 1", with(object("new"), json!({"score": 1.2}))),
        ("box_normalized above 1", with(object("new"), json!({"box_normalized": [0.1, 0.1, 1.01, 0.5]}))),
        ("a box of 3", with(object("new"), json!({"box": [1.0, 2.0, 3.0]}))),
        ("reasons on a new", with(object("new"), json!({"reasons": ["zones"]}))),
        ("an update without reasons", object("update")),
        ("a line field on a zone event", rule("zone_enter", json!({"zone": "road", "line": "middle"}))),
        ("a zone_exit without dwell", rule("zone_exit", json!({"zone": "road"}))),
        ("null object_id on an object event", with(object("end"), json!({"object_id": null}))),
    ];
    for (what, payload) in bad {
        let file = schema_file(payload["type"].as_str().unwrap()).unwrap();
        assert!(!errors(file, &payload).is_empty(), "{what} passes: {payload}");
    }
    let status = |state: &str, reason: Value, decoder: Value, retry: Value| {
        json!({"v": 2, "type": "camera_status", "gateway_id": "demo", "camera": "gate", "state": state, "reason": reason,
               "decoder": decoder, "retry_in_seconds": retry, "uri": "file:///x.mp4", "time": AT})
    };
    for (ok, payload) in [
        (true, status("connecting", Value::Null, Value::Null, Value::Null)),
        (true, status("streaming", Value::Null, json!("avdec_h264"), Value::Null)),
        (true, status("streaming", json!("warning: clock skew"), Value::Null, Value::Null)),
        (true, status("failed", json!("not a video"), Value::Null, Value::Null)),
        (false, status("reconnecting", json!("refused"), Value::Null, Value::Null)),
        (false, status("ended", Value::Null, Value::Null, Value::Null)),
        (false, status("connecting", Value::Null, json!("avdec_h264"), Value::Null)),
        (false, status("streaming", Value::Null, Value::Null, json!(2.0))),
    ] {
        assert_eq!(errors("camera_status.json", &payload).is_empty(), ok, "{payload}");
    }
}

/// The encoders themselves, without a daemon: what `src/publish/payload.rs` writes matches.
#[test]
fn the_encoders_write_valid_payloads() {
    use lookout::publish::payload;
    use std::time::{Duration, SystemTime};
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
    let parse = |b: Vec<u8>| serde_json::from_slice::<Value>(&b).unwrap();
    for pts_ms in [Some(480), None] {
        let frame =
            payload::FrameMeta { captured_at: at, capture_clock: "rtcp", pts_ms, seq: 2, width: 640, height: 272 };
        let det = lookout::detect::Detection { class: 0, label: "person", score: 0.87, bbox: [10.0, 20.0, 30.0, 40.0] };
        assert_valid(&parse(payload::detection_event("gw-01", "bikes", frame, &[det])));
    }
    for (state, reason, decoder, retry) in [
        ("connecting", None, None, None),
        ("streaming", None, Some("avdec_h264"), None),
        ("reconnecting", Some("refused"), None, Some(3.97)),
        ("ended", Some("end of stream"), None, None),
        ("stopped", Some("shutdown"), None, None),
        ("failed", Some("not a video"), None, None),
    ] {
        assert_valid(&parse(payload::camera_status(
            "gw-01",
            "gate",
            state,
            reason,
            decoder,
            retry,
            "rtsp://u:***@h/s",
            at,
        )));
    }
    let counters = lookout::stats::CameraCounters::default();
    counters.set_model("yolox_nano", "cpu", None);
    let summary = counters.snapshot();
    assert_valid(&parse(payload::stats(
        "gw-01",
        at,
        1.25,
        "cpu",
        true,
        [("bikes", summary.clone())].into_iter().collect(),
        None,
    )));
    let skipped = vec![("cuda:0".to_string(), "libcublasLt.so.13: cannot open shared object file".to_string())];
    let batches = std::collections::BTreeMap::from([(1usize, 40u64), (8, 12)]);
    let inference = payload::InferenceStats { provider: "openvino", skipped: &skipped, batches: Some(&batches) };
    assert_valid(&parse(payload::stats_with(
        "gw-01",
        at,
        1.25,
        inference,
        false,
        [("bikes", summary.clone())].into_iter().collect(),
        None,
    )));
    let publish = lookout::stats::PublishCounters::default();
    publish.spooled.store(3, std::sync::atomic::Ordering::Relaxed);
    assert_valid(&parse(payload::stats_with(
        "gw-01",
        at,
        1.25,
        inference,
        false,
        [("bikes", summary)].into_iter().collect(),
        Some(publish.snapshot()),
    )));
}

#[test]
#[should_panic(expected = "no schema in schemas/ for payload type `snapshot`")]
fn an_unknown_type_is_named() {
    assert_valid(&json!({"v": 2, "type": "snapshot"}));
}
