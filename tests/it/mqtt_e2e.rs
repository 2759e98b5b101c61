//! `lookout run` on the real clip, publishing to a real mosquitto on a free loopback port.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn run_publishes_detections_of_the_street_clip_over_mqtt() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/e2e/#");
    let global = format!("gateway_id = \"e2e\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}", broker.port, inference_toml());
    let camera = format!("uri = {:?}\n[detect]\nfps = 5\nmin_score = 0.4\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("e2e", &global, &[("street", &camera)]);

    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(90));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");

    // The final stats message is the last thing the daemon publishes before going offline.
    let mut msgs: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let got_offline = wait_until(Duration::from_secs(10), || {
        msgs.extend(sub.rx.try_iter());
        msgs.iter().any(|(t, p, _)| t == "lookout/e2e/status" && p == b"offline")
    });
    assert!(got_offline, "no offline status; got topics {:?}", msgs.iter().map(|m| &m.0).collect::<BTreeSet<_>>());
    assert!(msgs.iter().any(|(t, p, r)| t == "lookout/e2e/status" && p == b"online" && !r), "online status");

    let events: Vec<Value> = msgs
        .iter()
        .filter(|(t, _, _)| t == "lookout/e2e/street/events")
        .map(|(_, p, _)| serde_json::from_slice(p).unwrap())
        .collect();
    assert!(!events.is_empty(), "no events");
    let mut labels = BTreeSet::new();
    let mut last_capture: Option<std::time::SystemTime> = None;
    let mut ids = BTreeSet::new();
    for ev in &events {
        assert_eq!(ev["v"], 1);
        assert_eq!(ev["type"], "detection");
        assert_eq!(ev["gateway_id"], "e2e");
        assert_eq!(ev["camera"], "street");
        assert!(ids.insert(ev["id"].as_str().unwrap().to_string()), "event ids are unique");
        let (w, h) = (ev["width"].as_f64().unwrap(), ev["height"].as_f64().unwrap());
        assert_eq!((w, h), (640.0, 272.0));
        let captured = humantime::parse_rfc3339(ev["captured_at"].as_str().unwrap()).unwrap();
        if let Some(prev) = last_capture {
            assert!(captured > prev, "capture times are monotonic per camera");
        }
        last_capture = Some(captured);
        for d in ev["detections"].as_array().unwrap() {
            labels.insert(d["label"].as_str().unwrap().to_string());
            assert!(d["score"].as_f64().unwrap() >= 0.4);
            let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= w && b[3] <= h && b[0] < b[2] && b[1] < b[3], "box {b:?} inside the frame");
        }
    }
    for want in ["person", "bicycle", "car"] {
        assert!(labels.contains(want), "no {want} in {labels:?}");
    }

    // The camera status is retained JSON; the last one says the file ended.
    let statuses: Vec<Value> = msgs
        .iter()
        .filter(|(t, _, _)| t == "lookout/e2e/street/status")
        .map(|(_, p, _)| serde_json::from_slice(p).unwrap())
        .collect();
    assert_eq!(statuses[0]["state"], "connecting");
    assert_eq!(statuses[1]["state"], "streaming");
    assert_eq!(statuses[1]["decoder"], "avdec_h264");
    assert_eq!(statuses.last().unwrap()["state"], "ended");

    // The books balance exactly: every decoded frame was skipped, inferred or dropped.
    let stats: Vec<Value> = msgs
        .iter()
        .filter(|(t, _, _)| t == "lookout/e2e/stats")
        .map(|(_, p, _)| serde_json::from_slice(p).unwrap())
        .collect();
    let fin = stats.iter().find(|s| s["final"] == true).expect("final stats");
    let c = &fin["cameras"]["street"];
    let n = |k: &str| c[k].as_u64().unwrap();
    let dropped: u64 = c["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(n("decoded"), 250, "bikes.mp4 has 250 frames");
    assert_eq!(n("decoded"), n("skipped_by_rate") + n("inferred") + dropped);
    // Detect rate 5 of 25 fps: the gate passes exactly one frame in five.
    assert_eq!(n("skipped_by_rate"), 200);
    let with_dets = events.len() as u64;
    assert!(with_dets <= n("inferred"));
    assert!(stderr.contains("decoded 250 = skipped_by_rate 200"), "summary on stderr: {stderr}");
}

#[test]
fn an_unreachable_broker_is_retried_and_reported_without_stopping_the_cameras() {
    let port = free_port(); // nothing listens here
    let global = format!(
        "gateway_id = \"nobroker\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nflush_timeout_seconds = 1\n{}",
        inference_toml()
    );
    let camera = format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 2\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("nobroker", &global, &[("street", &camera)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "the cameras ran to the end: {stderr}");
    assert!(stderr.contains("MQTT broker unreachable; retrying"), "{stderr}");
    assert!(stderr.contains("decoded 250"), "the clip was processed: {stderr}");
    assert!(stderr.contains("not acknowledged by the broker"), "undelivered messages are reported: {stderr}");
    assert!(!stderr.contains("panicked"));
}
