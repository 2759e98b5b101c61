//! Payload encoding: what consumers parse. Pure, and versioned: every JSON payload carries
//! `v` (the schema version) and `type`, and every event a unique `id` and the capture time of
//! its frame, so fan-in and de-duplication downstream are trivial.

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
pub struct DetectionEvent<'a> {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub gateway_id: &'a str,
    pub camera: &'a str,
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

/// The facts about one frame an event needs.
#[derive(Debug, Clone, Copy)]
pub struct FrameMeta {
    pub captured_at: SystemTime,
    pub capture_clock: &'static str,
    pub pts_ms: Option<u64>,
    pub seq: u64,
    pub width: u32,
    pub height: u32,
}

pub fn detection_event(gateway_id: &str, camera: &str, frame: FrameMeta, dets: &[Detection]) -> Vec<u8> {
    let ev = DetectionEvent {
        v: SCHEMA_VERSION,
        kind: "detection",
        id: uuid::Uuid::now_v7().to_string(),
        gateway_id,
        camera,
        captured_at: timestamp(frame.captured_at),
        capture_clock: frame.capture_clock,
        pts_ms: frame.pts_ms,
        frame_seq: frame.seq,
        width: frame.width,
        height: frame.height,
        detections: dets.iter().map(DetectionOut::from).collect(),
    };
    to_bytes(&ev)
}

/// `<prefix>/<camera>/status`, retained.
#[derive(Debug, Serialize)]
pub struct CameraStatus<'a> {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub gateway_id: &'a str,
    pub camera: &'a str,
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
    to_bytes(&CameraStatus {
        v: SCHEMA_VERSION,
        kind: "camera_status",
        gateway_id,
        camera,
        state,
        reason,
        decoder,
        retry_in_seconds: retry_in_seconds.map(|s| (s * 10.0).round() / 10.0),
        uri: uri_redacted,
        time: timestamp(now),
    })
}

/// `<prefix>/stats`: periodic, and once more with `final: true` when the daemon stops.
#[derive(Debug, Serialize)]
pub struct Stats<'a> {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub gateway_id: &'a str,
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
    to_bytes(&Stats {
        v: SCHEMA_VERSION,
        kind: "stats",
        gateway_id,
        time: timestamp(now),
        uptime_seconds: (uptime_seconds * 10.0).round() / 10.0,
        provider: inference.provider,
        provider_skipped: inference.skipped.iter().map(|(p, r)| SkippedProvider { provider: p, reason: r }).collect(),
        batches: inference.batches.map(|b| b.iter().map(|(n, c)| (n.to_string(), *c)).collect()).unwrap_or_default(),
        is_final,
        cameras,
        publish,
    })
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
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub gateway_id: &'a str,
    pub camera: &'a str,
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
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub gateway_id: &'a str,
    pub camera: &'a str,
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
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub gateway_id: &'a str,
    pub camera: &'a str,
    pub zone: &'a str,
    pub label: &'a str,
    pub count: u32,
    pub time: String,
}

/// `<prefix>/<camera>/<line>/<label>`, retained: cumulative crossings since the daemon started.
#[derive(Debug, Serialize)]
pub struct LineCount<'a> {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub gateway_id: &'a str,
    pub camera: &'a str,
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

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    to_bytes(v)
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
}
