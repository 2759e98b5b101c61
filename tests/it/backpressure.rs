//! Backpressure and the books: link policies, slowed inference, filter counts and motion
//! gating, on the real clip with the real model. Every frame has exactly one fate.

use std::time::Duration;

use crate::common::*;
use lookout::pipeline::{self, TestHooks};
use lookout::publish::Sink;
use lookout::shutdown::Shutdown;
use lookout::stats::CameraSummary;

/// The books of one camera must balance exactly once its file has ended.
fn assert_balanced(name: &str, s: &CameraSummary) {
    assert_eq!(
        s.decoded,
        s.skipped_by_rate + s.skipped_by_motion + s.inferred + s.dropped_total(),
        "{name}: decoded = skipped_by_rate + skipped_by_motion + inferred + dropped: {s:?}"
    );
}

/// The final stats line of a `lookout run` with no broker (JSON lines on stdout).
fn final_stats(stdout: &str) -> serde_json::Value {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "stats" && v["final"] == true)
        .expect("final stats line")
}

fn events(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
}

#[test]
fn slowed_inference_drops_frames_under_each_policy_and_every_frame_is_accounted_for() {
    // Two cameras paced like real ones (25 fps, detect at 10), one worker whose inference is
    // slowed by 100 ms: it can take about 8 frames/s, 20 are offered. The frames links must
    // drop, by their own policy, and the books must still balance exactly at EOS.
    let global = format!("gateway_id = \"slow\"\n{}", inference_toml());
    let clip = media("bikes.mp4").display().to_string();
    let oldest = format!("uri = {clip:?}\n[detect]\nfps = 10\n");
    let newest =
        format!("uri = {clip:?}\n[detect]\nfps = 10\n[links.frames]\ncapacity = 1\nwhen_full = \"drop_newest\"\n");
    let dir = ConfigDir::new("slow", &global, &[("oldest", &oldest), ("newest", &newest)]);
    let spec = lookout::config::load(&dir.path).unwrap_or_else(|e| panic!("{e}"));
    let hooks = TestHooks { extra_inference_delay: Duration::from_millis(100) };
    let shutdown = Shutdown::new();
    let report = pipeline::run(
        &spec,
        pipeline::Edges { sink: Some(Sink::Discard(0)), hooks, ..pipeline::Edges::new(&shutdown) },
    )
    .expect("run");
    for c in &report.cameras {
        let s = &c.summary;
        eprintln!("{}: {s:?}", c.name);
        assert_eq!(s.decoded, 250, "{}: every frame of the clip decoded", c.name);
        assert!(s.skipped_by_rate >= 140, "{}: detect at 10 of 25 fps: {s:?}", c.name);
        assert!(
            s.dropped.get("link_full").is_some_and(|&n| n > 0),
            "{}: slowed inference must make the link drop: {s:?}",
            c.name
        );
        assert!(s.inferred > 0, "{}: {s:?}", c.name);
        assert_eq!(s.skipped_by_motion, 0, "{}: motion gating is off", c.name);
        assert_balanced(&c.name, s);
    }
}

#[test]
fn a_blocking_file_link_infers_every_admitted_frame_and_filter_rejections_are_counted() {
    // block is allowed on a file: decoding waits for the detector, nothing is dropped. Cars
    // need 100000 px² here (the clip is 640x272), so every confident car is filtered out by
    // area, and the count must show it in the stats and the summary.
    let global = format!("gateway_id = \"filt\"\n{}", inference_toml());
    let cam = format!(
        "uri = {:?}\nrealtime = false\n[detect]\nfps = 5\n[links.frames]\nwhen_full = \"block\"\n[filters.car]\nmin_area = 100000\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("filt", &global, &[("street", &cam)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(120));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let c = &final_stats(&stdout)["cameras"]["street"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}"));
    assert_eq!(n("decoded"), 250, "{c}");
    assert_eq!(n("skipped_by_rate"), 200, "{c}");
    assert_eq!(n("inferred"), 50, "block: every admitted frame is inferred: {c}");
    assert_eq!(c["dropped"]["link_full"], 0, "{c}");
    let area = c["filtered"]["area"].as_u64().unwrap();
    assert!(area > 0, "cars on the clip are rejected by min_area: {c}");
    assert!(n("detections") >= area, "{c}");
    assert_eq!(c["filtered"]["mask"], 0, "{c}");
    assert!(stderr.contains(&format!("filtered out: area {area}")), "{stderr}");
    assert!(!events(&stdout).iter().any(|e| e["type"] == "new" && e["label"] == "car"), "no car survives the filter");
}

/// A still 640x360 H.264 clip, 10 s at 25 fps: one grey picture, nothing to detect.
fn still_clip() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("lookout-test-still-{}-{}.mp4", std::process::id(), free_port()));
    let status = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=250", "pattern=solid-color", "foreground-color=0xff707070", "!"])
        .args([
            "video/x-raw,width=640,height=360,framerate=25/1",
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "!",
            "mp4mux",
            "!",
        ])
        .arg("filesink")
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0: run scripts/setup");
    assert!(status.success() && path.exists(), "could not make the still clip");
    path
}

#[test]
fn motion_gating_skips_a_still_scene_but_looks_every_max_idle_seconds() {
    let clip = still_clip();
    let global = format!("gateway_id = \"still\"\n{}", inference_toml());
    let cam = format!(
        "uri = {:?}\nrealtime = false\n[detect]\nfps = 5\n[links.frames]\nwhen_full = \"block\"\n[motion]\nenabled = true\nmax_idle_detect_seconds = 2\n",
        clip.display().to_string()
    );
    let dir = ConfigDir::new("still", &global, &[("still", &cam)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(120));
    let _ = std::fs::remove_file(&clip);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let c = &final_stats(&stdout)["cameras"]["still"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}"));
    eprintln!("{c}");
    assert_eq!(n("decoded"), 250, "{c}");
    assert_eq!(n("skipped_by_rate"), 200, "{c}");
    // 50 frames at 5 fps over 10 s of stream time, one look every 2 s: at t = 0, 2, 4, 6, 8
    // (a frame or so later where the 0.2 s steps round past the mark).
    assert!((4..=6).contains(&n("inferred")), "idle looks every 2 s: {c}");
    assert_eq!(n("skipped_by_motion"), 50 - n("inferred"), "{c}");
    assert_eq!(n("decoded"), n("skipped_by_rate") + n("skipped_by_motion") + n("inferred"), "{c}");
}

#[test]
fn motion_gating_on_a_busy_street_finds_the_same_objects() {
    // The clip has a cyclist riding past parked cars: motion or tracked objects nearly all
    // the time, so gating must not cost detections. Both runs infer deterministically (block
    // link, file), so the objects reported can be compared.
    let global = format!("gateway_id = \"busy\"\n{}", inference_toml());
    let clip = media("bikes.mp4").display().to_string();
    let run = |motion: bool| {
        let cam = format!(
            "uri = {clip:?}\nrealtime = false\n[detect]\nfps = 5\n[links.frames]\nwhen_full = \"block\"\n[motion]\nenabled = {motion}\n"
        );
        let dir = ConfigDir::new(if motion { "gated" } else { "ungated" }, &global, &[("street", &cam)]);
        let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(120));
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let mut labels: Vec<String> = events(&stdout)
            .iter()
            .filter(|e| e["type"] == "new")
            .map(|e| e["label"].as_str().unwrap_or_default().to_string())
            .collect();
        labels.sort();
        (labels, final_stats(&stdout)["cameras"]["street"].clone())
    };
    let (plain, plain_stats) = run(false);
    let (gated, gated_stats) = run(true);
    eprintln!("without gating: {plain:?} {plain_stats}\nwith gating: {gated:?} {gated_stats}");
    assert!(!plain.is_empty(), "the clip has objects");
    assert_eq!(gated, plain, "the same objects with motion gating");
    let n = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap();
    assert_eq!(
        n(&gated_stats, "decoded"),
        n(&gated_stats, "skipped_by_rate") + n(&gated_stats, "skipped_by_motion") + n(&gated_stats, "inferred")
    );
    assert_eq!(n(&plain_stats, "skipped_by_motion"), 0);
}
