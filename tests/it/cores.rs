//! One camera on several detect workers (`detect.workers`): both workers take its frames, and
//! the tracker still sees them in order.

use std::time::Duration;

use crate::common::*;

/// CPU seconds of each thread of `pid` whose name starts with `prefix`, by name.
fn thread_cpu(pid: u32, prefix: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        if name.starts_with(prefix) {
            out.push((name.to_string(), stat_cpu_seconds(&stat)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn two_workers_share_one_cameras_frames_and_the_tracker_sees_them_in_order() {
    let dir = ConfigDir::new(
        "cores",
        &format!("gateway_id = \"cores\"\n{}\nworkers = 2\n", inference_toml()),
        &[(
            "street",
            &format!(
                "uri = {:?}\nrealtime = false\nloop = true\n[detect]\nfps = 100\nworkers = 2\nmin_score = 0.3\n[events]\ndetections = true\n[links.frames]\nwhen_full = \"block\"\n",
                media("bikes.mp4").display().to_string()
            ),
        )],
    );
    let mut d = Daemon::start(&dir.path);
    let detections = |d: &Daemon| d.lines.iter().filter(|v| v["type"] == "detection").count();
    assert!(
        d.wait_for(0, Duration::from_secs(60), |v| v["type"] == "detection" && v["frame_seq"].as_u64() >= Some(300))
            .is_some(),
        "300 frames detected; {} detection messages",
        detections(&d)
    );
    // Both workers did a share of the work: each has spent CPU on it (250+ frames at ~20 ms a
    // frame is seconds of CPU for the two together).
    let workers = thread_cpu(d.pid(), "detect-");
    assert_eq!(workers.len(), 2, "{workers:?}");
    for (name, cpu) in &workers {
        assert!(*cpu > 0.5, "{name} took few of the frames: {workers:?}");
    }
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // In order: every detection message (one per inferred frame with a detection) follows the
    // one before it in the stream.
    let seqs: Vec<u64> =
        d.lines.iter().filter(|v| v["type"] == "detection").filter_map(|v| v["frame_seq"].as_u64()).collect();
    assert!(seqs.len() > 200, "{}", seqs.len());
    let backwards: Vec<(u64, u64)> = seqs.windows(2).filter(|w| w[1] <= w[0]).map(|w| (w[0], w[1])).collect();
    assert!(backwards.is_empty(), "frames out of order: {backwards:?}");
}
