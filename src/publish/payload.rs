//! Payload encoding: what consumers parse. Pure, and versioned: every JSON payload is an
//! [`Envelope`] (`v`, the schema version; `type`; for events a unique `id`; `gateway_id`; and,
//! for all but stats, `camera`) around a body of its own, and every event carries the capture
//! time of its frame, so fan-in and de-duplication downstream are trivial.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::detect::Detection;
use crate::stats::{CameraSummary, PublishSummary};

/// Version of the payload schema. Bump on any change a consumer could notice.
pub const SCHEMA_VERSION: u32 = 2;

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-28T18:15:00.123Z`.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Round for the wire: scores to 4 places, pixels to 1. Keeps payloads small and stable.
fn round(x: f32, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x as f64 * m).round() / m
}

/// What every JSON payload opens with, in this order, followed by the body's own fields.
#[derive(Debug, Serialize)]
pub struct Envelope<'a, B> {
    /// [`SCHEMA_VERSION`].
    pub v: u32,
    /// What the body is: consumers dispatch on it (`<camera>/events` mixes several).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Events only: unique per event (UUIDv7), to de-duplicate at-least-once delivery on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub gateway_id: &'a str,
    /// Every payload but stats is about one camera.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<&'a str>,
    #[serde(flatten)]
    pub body: B,
}

impl<'a, B: Serialize> Envelope<'a, B> {
    /// An event on `<camera>/events`, with a fresh `id`.
    pub fn event(gateway_id: &'a str, camera: &'a str, kind: &'static str, body: B) -> Envelope<'a, B> {
        let id = Some(uuid::Uuid::now_v7().to_string());
        Envelope { v: SCHEMA_VERSION, kind, id, gateway_id, camera: Some(camera), body }
    }

    /// A camera's current state on a retained topic (status, occupancy, line counts): no `id`,
    /// the topic holds only the latest.
    pub fn state(gateway_id: &'a str, camera: &'a str, kind: &'static str, body: B) -> Envelope<'a, B> {
        Envelope { v: SCHEMA_VERSION, kind, id: None, gateway_id, camera: Some(camera), body }
    }

    /// About the gateway as a whole (stats): no `camera`.
    pub fn gateway(gateway_id: &'a str, kind: &'static str, body: B) -> Envelope<'a, B> {
        Envelope { v: SCHEMA_VERSION, kind, id: None, gateway_id, camera: None, body }
    }

    /// The JSON bytes, as published.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes(self)
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct DetectionOut {
    pub label: &'static str,
    pub score: f64,
    /// x1, y1, x2, y2 in source pixels.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
}

impl From<&Detection> for DetectionOut {
    /// The one wire form of a detection, shared by events and `lookout detect`.
    fn from(d: &Detection) -> DetectionOut {
        DetectionOut { label: d.label, score: round(d.score, 4), bbox: d.bbox.map(|v| round(v, 1)) }
    }
}

/// `<prefix>/<camera>/events`, type `detection`: what one frame's detector saw.
#[derive(Debug, Serialize)]
pub struct DetectionEvent {
    /// Capture time of the frame (RFC 3339, UTC).
    pub captured_at: String,
    /// Where the capture time came from: "rtcp" (the camera's clock) or "arrival".
    pub capture_clock: &'static str,
    /// The stream's own timestamp, in milliseconds.
    pub pts_ms: Option<u64>,
    pub frame_seq: u64,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionOut>,
}

pub use crate::source::FrameMeta;

pub fn detection_event(gateway_id: &str, camera: &str, frame: FrameMeta, dets: &[Detection]) -> Vec<u8> {
    let ev = DetectionEvent {
        captured_at: timestamp(frame.captured_at),
        capture_clock: frame.capture_clock,
        pts_ms: frame.pts_ms,
        frame_seq: frame.seq,
        width: frame.width,
        height: frame.height,
        detections: dets.iter().map(DetectionOut::from).collect(),
    };
    Envelope::event(gateway_id, camera, "detection", ev).to_bytes()
}

/// `<prefix>/<camera>/status`, retained.
#[derive(Debug, Serialize)]
pub struct CameraStatus<'a> {
    /// connecting, streaming, reconnecting, ended, stopped or failed.
    pub state: &'a str,
    pub reason: Option<&'a str>,
    pub decoder: Option<&'a str>,
    /// When reconnecting: seconds until the next attempt.
    pub retry_in_seconds: Option<f64>,
    pub uri: &'a str,
    pub time: String,
}

pub fn camera_status(
    gateway_id: &str,
    camera: &str,
    state: &str,
    reason: Option<&str>,
    decoder: Option<&str>,
    retry_in_seconds: Option<f64>,
    uri_redacted: &str,
    now: SystemTime,
) -> Vec<u8> {
    let status = CameraStatus {
        state,
        reason,
        decoder,
        retry_in_seconds: retry_in_seconds.map(|s| (s * 10.0).round() / 10.0),
        uri: uri_redacted,
        time: timestamp(now),
    };
    Envelope::state(gateway_id, camera, "camera_status", status).to_bytes()
}

/// `<prefix>/stats`: periodic, and once more with `final: true` when the daemon stops.
#[derive(Debug, Serialize)]
pub struct Stats<'a> {
    pub time: String,
    pub uptime_seconds: f64,
    pub provider: &'a str,
    /// The providers listed before the active one, and why each did not build.
    pub provider_skipped: Vec<SkippedProvider<'a>>,
    /// Inference runs per batch size ("1", "8", ...), all workers together.
    pub batches: BTreeMap<String, u64>,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub cameras: BTreeMap<&'a str, CameraSummary>,
    /// The MQTT publisher's books; absent without `[mqtt]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishSummary>,
}

#[derive(Debug, Serialize)]
pub struct SkippedProvider<'a> {
    pub provider: &'a str,
    pub reason: &'a str,
}

/// What the stats say about inference as a whole.
#[derive(Debug, Clone, Copy, Default)]
pub struct InferenceStats<'a> {
    pub provider: &'a str,
    pub skipped: &'a [(String, String)],
    pub batches: Option<&'a BTreeMap<usize, u64>>,
}

pub fn stats(
    gateway_id: &str,
    now: SystemTime,
    uptime_seconds: f64,
    provider: &str,
    is_final: bool,
    cameras: BTreeMap<&str, CameraSummary>,
    publish: Option<PublishSummary>,
) -> Vec<u8> {
    stats_with(
        gateway_id,
        now,
        uptime_seconds,
        InferenceStats { provider, ..Default::default() },
        is_final,
        cameras,
        publish,
    )
}

pub fn stats_with(
    gateway_id: &str,
    now: SystemTime,
    uptime_seconds: f64,
    inference: InferenceStats<'_>,
    is_final: bool,
    cameras: BTreeMap<&str, CameraSummary>,
    publish: Option<PublishSummary>,
) -> Vec<u8> {
    let stats = Stats {
        time: timestamp(now),
        uptime_seconds: (uptime_seconds * 10.0).round() / 10.0,
        provider: inference.provider,
        provider_skipped: inference.skipped.iter().map(|(p, r)| SkippedProvider { provider: p, reason: r }).collect(),
        batches: inference.batches.map(|b| b.iter().map(|(n, c)| (n.to_string(), *c)).collect()).unwrap_or_default(),
        is_final,
        cameras,
        publish,
    };
    Envelope::gateway(gateway_id, "stats", stats).to_bytes()
}

/// Where and when an object event's frame was taken.
#[derive(Debug, Serialize)]
pub struct FrameRef {
    pub captured_at: String,
    pub capture_clock: &'static str,
    pub frame_seq: u64,
    pub width: u32,
    pub height: u32,
}

impl From<FrameMeta> for FrameRef {
    fn from(f: FrameMeta) -> FrameRef {
        FrameRef {
            captured_at: timestamp(f.captured_at),
            capture_clock: f.capture_clock,
            frame_seq: f.seq,
            width: f.width,
            height: f.height,
        }
    }
}

/// `<prefix>/<camera>/events`, type `new`, `update` or `end`: one tracked object.
#[derive(Debug, Serialize)]
pub struct ObjectEvent<'a> {
    /// Stable for the object's life: what consumers key on.
    pub object_id: &'a str,
    /// The tracker's id of the object's current track (per run).
    pub track_id: u64,
    pub label: &'static str,
    pub score: f64,
    pub top_score: f64,
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// The box divided by the frame size: x1, y1, x2, y2 in 0..1.
    pub box_normalized: [f64; 4],
    pub first_seen: String,
    pub last_seen: String,
    pub current_zones: &'a [String],
    pub entered_zones: &'a [String],
    pub stationary: bool,
    /// Direction of travel in degrees, image coordinates: 0 = right, 90 = down.
    pub direction_degrees: f64,
    pub speed_px_per_second: f64,
    /// For `update`: what changed (zones, stationary, top_score, heartbeat).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub reasons: Vec<&'static str>,
    #[serde(flatten)]
    pub frame: FrameRef,
}

/// `<prefix>/<camera>/events`, types `zone_enter`, `zone_exit`, `loitering` and `line_cross`.
#[derive(Debug, Serialize)]
pub struct RuleEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<&'a str>,
    pub object_id: Option<&'a str>,
    pub track_id: u64,
    pub label: &'a str,
    /// Zones: seconds since the object entered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dwell_seconds: Option<f64>,
    /// Lines: `left_to_right` or `right_to_left`, as seen walking from the line's first point.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<&'static str>,
    /// Lines: the line's counts for this label, this crossing included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<LineCountsOut>,
    #[serde(flatten)]
    pub frame: FrameRef,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LineCountsOut {
    pub left_to_right: u64,
    pub right_to_left: u64,
}

/// `<prefix>/<camera>/<zone>/<label>`, retained: how many objects of `label` are in the zone
/// now (`label` = `all` for every label).
#[derive(Debug, Serialize)]
pub struct Occupancy<'a> {
    pub zone: &'a str,
    pub label: &'a str,
    pub count: u32,
    pub time: String,
}

/// `<prefix>/<camera>/<line>/<label>`, retained: cumulative crossings since the daemon started.
#[derive(Debug, Serialize)]
pub struct LineCount<'a> {
    pub line: &'a str,
    pub label: &'a str,
    #[serde(flatten)]
    pub counts: LineCountsOut,
    pub time: String,
}

/// Round a box for the wire, and its normalised form. Clipped to the frame: a tracked box is
/// the Kalman filter's estimate, which can reach past the edge an object is leaving by.
pub fn boxes(b: [f32; 4], width: u32, height: u32) -> ([f64; 4], [f64; 4]) {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    let b = [b[0].clamp(0.0, w), b[1].clamp(0.0, h), b[2].clamp(0.0, w), b[3].clamp(0.0, h)];
    (b.map(|v| round(v, 1)), [round(b[0] / w, 4), round(b[1] / h, 4), round(b[2] / w, 4), round(b[3] / h, 4)])
}

/// Direction (degrees, 0 = right, 90 = down) and speed (px/s) of a velocity.
pub fn heading(v: [f32; 2]) -> (f64, f64) {
    let speed = (v[0] as f64).hypot(v[1] as f64);
    let deg = (v[1] as f64).atan2(v[0] as f64).to_degrees();
    // Round first, then wrap: 359.97 must read 0.0, not 360.0.
    (((deg * 10.0).round() / 10.0).rem_euclid(360.0), (speed * 10.0).round() / 10.0)
}

pub fn score(s: f32) -> f64 {
    round(s, 4)
}

fn to_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail; an empty object is a safe, visible fallback.
    serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn detection_event_golden_shape() {
        let frame = FrameMeta {
            captured_at: UNIX_EPOCH + Duration::from_millis(1_795_000_000_123),
            capture_clock: "arrival",
            pts_ms: Some(480),
            seq: 2,
            width: 640,
            height: 272,
        };
        let det = Detection { class: 0, label: "person", score: 0.876543, bbox: [10.04, 20.06, 30.0, 40.0] };
        let bytes = detection_event("gw-01", "bikes", frame, &[det]);
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 36);
        v["id"] = "ID".into();
        assert_eq!(
            v,
            serde_json::json!({
                "v": 2, "type": "detection", "id": "ID", "gateway_id": "gw-01", "camera": "bikes",
                "captured_at": "2026-11-18T11:06:40.123Z", "capture_clock": "arrival", "pts_ms": 480, "frame_seq": 2,
                "width": 640, "height": 272,
                "detections": [{"label": "person", "score": 0.8765, "box": [10.0, 20.1, 30.0, 40.0]}]
            })
        );
    }

    #[test]
    fn event_ids_are_unique() {
        let frame = FrameMeta {
            captured_at: SystemTime::now(),
            capture_clock: "arrival",
            pts_ms: None,
            seq: 0,
            width: 1,
            height: 1,
        };
        let a: serde_json::Value = serde_json::from_slice(&detection_event("g", "c", frame, &[])).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&detection_event("g", "c", frame, &[])).unwrap();
        assert_ne!(a["id"], b["id"]);
    }

    /// Replace the 36-character UUID after `"id":"` with `ID`, so fresh ids compare.
    fn fixed_id(bytes: Vec<u8>) -> String {
        let mut s = String::from_utf8(bytes).unwrap();
        let at = s.find(r#""id":""#).unwrap() + 6;
        assert_eq!(s.as_bytes()[at + 36], b'"', "{s}");
        s.replace_range(at..at + 36, "ID");
        s
    }

    /// The exact bytes on the wire, key order included, of every payload type: each captured
    /// from the encoder before the envelope was factored out, so they prove it changed nothing.
    #[test]
    fn every_payload_keeps_its_bytes_on_the_wire() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let frame = FrameMeta { captured_at: at, capture_clock: "rtcp", pts_ms: None, seq: 7, width: 640, height: 272 };
        let det = Detection { class: 0, label: "person", score: 0.5, bbox: [1.0, 2.0, 3.0, 4.0] };
        assert_eq!(
            fixed_id(detection_event("gw", "cam", frame, &[det])),
            r#"{"v":2,"type":"detection","id":"ID","gateway_id":"gw","camera":"cam","captured_at":"2026-11-18T11:06:40.123Z","capture_clock":"rtcp","pts_ms":null,"frame_seq":7,"width":640,"height":272,"detections":[{"label":"person","score":0.5,"box":[1.0,2.0,3.0,4.0]}]}"#
        );
        assert_eq!(
            String::from_utf8(camera_status(
                "gw",
                "cam",
                "reconnecting",
                Some("eos"),
                None,
                Some(1.26),
                "rtsp://x",
                at
            ))
            .unwrap(),
            r#"{"v":2,"type":"camera_status","gateway_id":"gw","camera":"cam","state":"reconnecting","reason":"eos","decoder":null,"retry_in_seconds":1.3,"uri":"rtsp://x","time":"2026-11-18T11:06:40.123Z"}"#
        );
        let cams: BTreeMap<&str, CameraSummary> =
            [("cam", crate::stats::CameraCounters::default().snapshot())].into_iter().collect();
        let skipped = vec![("cuda:0".to_string(), "no GPU".to_string())];
        let batches: BTreeMap<usize, u64> = [(1, 5), (8, 2)].into_iter().collect();
        let inference = InferenceStats { provider: "cpu", skipped: &skipped, batches: Some(&batches) };
        let publish = Some(crate::stats::PublishCounters::default().snapshot());
        assert_eq!(
            String::from_utf8(stats_with("gw", at, 12.34, inference, true, cams, publish)).unwrap(),
            r#"{"v":2,"type":"stats","gateway_id":"gw","time":"2026-11-18T11:06:40.123Z","uptime_seconds":12.3,"provider":"cpu","provider_skipped":[{"provider":"cuda:0","reason":"no GPU"}],"batches":{"1":5,"8":2},"final":true,"cameras":{"cam":{"model":"","provider":"","decoded":0,"skipped_by_rate":0,"skipped_by_motion":0,"inferred":0,"detections":0,"filtered":{"area":0,"label":0,"mask":0,"ratio":0,"score":0},"dropped":{"inference_error":0,"link_full":0},"inference_ms_mean":0.0}},"publish":{"delivered":0,"spooled":0,"replayed":0,"dropped":{"not_spooled":0,"spool_full":0}}}"#
        );
        assert_eq!(
            String::from_utf8(stats("gw", at, 1.0, "cpu", false, BTreeMap::new(), None)).unwrap(),
            r#"{"v":2,"type":"stats","gateway_id":"gw","time":"2026-11-18T11:06:40.123Z","uptime_seconds":1.0,"provider":"cpu","provider_skipped":[],"batches":{},"final":false,"cameras":{}}"#
        );
        let zones = vec!["a".to_string()];
        let (bbox, box_normalized) = boxes([1.0, 2.0, 30.0, 40.0], 640, 272);
        let object = |reasons| ObjectEvent {
            object_id: "OID",
            track_id: 3,
            label: "car",
            score: 0.5,
            top_score: 0.75,
            bbox,
            box_normalized,
            first_seen: timestamp(at),
            last_seen: timestamp(at),
            current_zones: &zones,
            entered_zones: &[],
            stationary: true,
            direction_degrees: 90.0,
            speed_px_per_second: 1.5,
            reasons,
            frame: FrameRef::from(frame),
        };
        assert_eq!(
            fixed_id(Envelope::event("gw", "cam", "update", object(vec![])).to_bytes()),
            r#"{"v":2,"type":"update","id":"ID","gateway_id":"gw","camera":"cam","object_id":"OID","track_id":3,"label":"car","score":0.5,"top_score":0.75,"box":[1.0,2.0,30.0,40.0],"box_normalized":[0.0016,0.0074,0.0469,0.1471],"first_seen":"2026-11-18T11:06:40.123Z","last_seen":"2026-11-18T11:06:40.123Z","current_zones":["a"],"entered_zones":[],"stationary":true,"direction_degrees":90.0,"speed_px_per_second":1.5,"captured_at":"2026-11-18T11:06:40.123Z","capture_clock":"rtcp","frame_seq":7,"width":640,"height":272}"#
        );
        assert_eq!(
            fixed_id(Envelope::event("gw", "cam", "update", object(vec!["zones", "heartbeat"])).to_bytes()),
            r#"{"v":2,"type":"update","id":"ID","gateway_id":"gw","camera":"cam","object_id":"OID","track_id":3,"label":"car","score":0.5,"top_score":0.75,"box":[1.0,2.0,30.0,40.0],"box_normalized":[0.0016,0.0074,0.0469,0.1471],"first_seen":"2026-11-18T11:06:40.123Z","last_seen":"2026-11-18T11:06:40.123Z","current_zones":["a"],"entered_zones":[],"stationary":true,"direction_degrees":90.0,"speed_px_per_second":1.5,"reasons":["zones","heartbeat"],"captured_at":"2026-11-18T11:06:40.123Z","capture_clock":"rtcp","frame_seq":7,"width":640,"height":272}"#
        );
        let zone_exit = RuleEvent {
            zone: Some("z"),
            line: None,
            object_id: Some("OID"),
            track_id: 3,
            label: "car",
            dwell_seconds: Some(2.5),
            direction: None,
            counts: None,
            frame: FrameRef::from(frame),
        };
        assert_eq!(
            fixed_id(Envelope::event("gw", "cam", "zone_exit", zone_exit).to_bytes()),
            r#"{"v":2,"type":"zone_exit","id":"ID","gateway_id":"gw","camera":"cam","zone":"z","object_id":"OID","track_id":3,"label":"car","dwell_seconds":2.5,"captured_at":"2026-11-18T11:06:40.123Z","capture_clock":"rtcp","frame_seq":7,"width":640,"height":272}"#
        );
        let counts = LineCountsOut { left_to_right: 2, right_to_left: 1 };
        let line_cross = RuleEvent {
            zone: None,
            line: Some("l"),
            object_id: None,
            track_id: 3,
            label: "car",
            dwell_seconds: None,
            direction: Some("left_to_right"),
            counts: Some(counts),
            frame: FrameRef::from(frame),
        };
        assert_eq!(
            fixed_id(Envelope::event("gw", "cam", "line_cross", line_cross).to_bytes()),
            r#"{"v":2,"type":"line_cross","id":"ID","gateway_id":"gw","camera":"cam","line":"l","object_id":null,"track_id":3,"label":"car","direction":"left_to_right","counts":{"left_to_right":2,"right_to_left":1},"captured_at":"2026-11-18T11:06:40.123Z","capture_clock":"rtcp","frame_seq":7,"width":640,"height":272}"#
        );
        let occupancy = Occupancy { zone: "z", label: "all", count: 4, time: timestamp(at) };
        assert_eq!(
            String::from_utf8(Envelope::state("gw", "cam", "occupancy", occupancy).to_bytes()).unwrap(),
            r#"{"v":2,"type":"occupancy","gateway_id":"gw","camera":"cam","zone":"z","label":"all","count":4,"time":"2026-11-18T11:06:40.123Z"}"#
        );
        let line_count = LineCount { line: "l", label: "car", counts, time: timestamp(at) };
        assert_eq!(
            String::from_utf8(Envelope::state("gw", "cam", "line_count", line_count).to_bytes()).unwrap(),
            r#"{"v":2,"type":"line_count","gateway_id":"gw","camera":"cam","line":"l","label":"car","left_to_right":2,"right_to_left":1,"time":"2026-11-18T11:06:40.123Z"}"#
        );
    }
}
