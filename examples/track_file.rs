//! Run the tracker over detections in a file, for benchmarks and offline checks.
//!
//! stdin, one JSON line per frame:
//!   {"t": 0.1, "detections": [{"class": 0, "score": 0.9, "bbox": [x1, y1, x2, y2]}, ...]}
//! stdout, one JSON line per frame, Confirmed tracks matched in that frame only:
//!   {"t": 0.1, "tracks": [{"id": 1, "bbox": [x1, y1, x2, y2]}, ...]}
//! stderr at the end: {"tracker_seconds": X, "frames": N}, the time spent inside
//! `Tracker::update` alone (no parsing, no printing).
//!
//! `cargo run --release --example track_file < detections.jsonl > tracks.jsonl`

use std::io::{BufRead, BufWriter, Write};
use std::time::{Duration, Instant};

use anyhow::Context;
use lookout::track::{Observation, TrackState, Tracker, TrackerConfig};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct FrameIn {
    t: f64,
    #[serde(default)]
    detections: Vec<DetIn>,
}

#[derive(Deserialize)]
struct DetIn {
    class: usize,
    score: f32,
    bbox: [f32; 4],
}

#[derive(Serialize)]
struct FrameOut {
    t: f64,
    tracks: Vec<TrackOut>,
}

#[derive(Serialize)]
struct TrackOut {
    id: u64,
    bbox: [f32; 4],
}

fn main() -> anyhow::Result<()> {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut spent = Duration::ZERO;
    let mut frames = 0u64;
    for (n, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let frame: FrameIn = serde_json::from_str(&line).with_context(|| format!("line {}: not a frame", n + 1))?;
        let obs: Vec<Observation> = frame
            .detections
            .into_iter()
            .map(|d| Observation { class: d.class, score: d.score, bbox: d.bbox })
            .collect();
        let start = Instant::now();
        let result = tracker.update(frame.t, &obs);
        spent += start.elapsed();
        frames += 1;
        let tracks = result
            .tracks
            .into_iter()
            .filter(|t| t.state == TrackState::Confirmed && t.detection.is_some())
            .map(|t| TrackOut { id: t.id, bbox: t.bbox })
            .collect();
        serde_json::to_writer(&mut out, &FrameOut { t: frame.t, tracks })?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!("{}", serde_json::json!({"tracker_seconds": spent.as_secs_f64(), "frames": frames}));
    Ok(())
}
