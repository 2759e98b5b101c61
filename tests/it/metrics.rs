//! `/metrics` and `/healthz` from a running daemon, and the books under real backpressure.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::*;

/// A plain HTTP GET: (status code, body).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    // Connection: close, so the body ends where the stream does (the server keeps HTTP/1.1
    // connections open otherwise).
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n")?.1.to_string()))
}

/// The value of one sample line, e.g. `lookout_frames_decoded_total{camera="ball"}`.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn metrics_and_health_of_a_running_daemon() {
    let port = free_port();
    let global = format!("gateway_id = \"m\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n{}", inference_toml());
    let dir = ConfigDir::new(
        "metrics",
        &global,
        &[
            ("ball", "uri = \"test://ball\"\n[detect]\nfps = 5\n"),
            ("dead", "uri = \"rtsp://127.0.0.1:9/x\"\non_error = \"fail\"\n"),
        ],
    );
    let mut d = Daemon::start(&dir.path);
    assert!(d.wait_for(0, Duration::from_secs(30), |v| is_status(v, "ball", "streaming")).is_some());
    // Counters move while the daemon runs: wait for two scrapes with inference in between.
    let inferred = |b: &str| sample(b, "lookout_frames_inferred_total{camera=\"ball\"}").unwrap_or(0.0);
    let mut first = None;
    let mut last = String::new();
    let moved = wait_until(Duration::from_secs(30), || {
        let Some((200, body)) = get(port, "/metrics") else { return false };
        let n = inferred(&body);
        last = body;
        match first {
            None => {
                first = Some(n);
                false
            }
            Some(f) => n > f && n > 0.0,
        }
    });
    assert!(moved, "inferred frames counted:\n{last}");
    for want in [
        "lookout_camera_state{camera=\"ball\",state=\"streaming\"} 1",
        "lookout_execution_provider{provider=\"cpu\"} 1",
        "lookout_camera_model{camera=\"ball\",model=\"yolox_nano\",provider=\"cpu\"} 1",
        "lookout_inference_seconds_bucket{le=",
        "lookout_frames_dropped_link_full_total{camera=\"ball\"}",
    ] {
        assert!(
            last.contains(want) || last.replace("camera=\"ball\",", "").contains(want),
            "missing {want:?} in\n{last}"
        );
    }
    assert!(sample(&last, "lookout_inference_seconds_count{camera=\"ball\"}").unwrap_or(0.0) > 0.0, "{last}");
    // A camera that can never connect and is set to fail makes the gateway unhealthy.
    let failed = wait_until(Duration::from_secs(30), || get(port, "/healthz").is_some_and(|(code, _)| code == 503));
    let (code, body) = get(port, "/healthz").unwrap();
    assert!(failed, "healthz {code}: {body}");
    assert!(body.contains("\"failed\":[\"dead\"]") && body.contains("\"ball\":\"streaming\""), "{body}");
    assert_eq!(get(port, "/nope").map(|r| r.0), Some(404));
    let out = d.terminate();
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn a_busy_detector_drops_frames_and_the_books_still_balance() {
    // Unpaced decoding at a detect rate of 25 fps: the decoder outruns the detector, so the
    // frame link (latest frame wins) must drop, and every frame must still be accounted for.
    let global = format!("gateway_id = \"busy\"\n{}", inference_toml());
    let cam = format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 25\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("busy", &global, &[("street", &cam)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(120));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stats: serde_json::Value = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "stats" && v["final"] == true)
        .expect("final stats");
    let c = &stats["cameras"]["street"];
    let n = |k: &str| c[k].as_u64().unwrap();
    let link_full = c["dropped"]["link_full"].as_u64().unwrap();
    eprintln!(
        "decoded {} = skipped {} + inferred {} + link_full {}",
        n("decoded"),
        n("skipped_by_rate"),
        n("inferred"),
        link_full
    );
    assert_eq!(n("decoded"), 250);
    assert_eq!(n("skipped_by_rate"), 0, "25 of 25 fps: the rate gate passes everything");
    assert!(link_full > 0, "the detector kept up with unpaced decoding? {c}");
    assert_eq!(n("decoded"), n("inferred") + link_full + c["dropped"]["inference_error"].as_u64().unwrap(), "{c}");
}

/// `listen = "127.0.0.1:0"`: the kernel picks the port, and the log says which.
#[test]
fn a_port_of_zero_logs_the_port_that_was_bound() {
    let global = format!("gateway_id = \"m0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n{}", inference_toml());
    let dir = ConfigDir::new("metrics0", &global, &[("ball", "uri = \"test://ball\"\n[detect]\nfps = 1\n")]);
    let mut d = Daemon::start(&dir.path);
    assert!(d.wait_for(0, Duration::from_secs(30), |v| is_status(v, "ball", "streaming")).is_some());
    let out = d.terminate();
    let stderr = text(&out.stderr);
    let port: u16 = stderr
        .split("metrics on http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in the log:\n{stderr}"));
    assert_ne!(port, 0, "{stderr}");
}
