//! `lookout run` on the real clip, publishing to a real mosquitto on a free loopback port.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn run_publishes_detections_of_the_street_clip_over_mqtt() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/e2e/#");
    let global =
        format!("gateway_id = \"e2e\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}", broker.port, inference_toml());
    let camera = format!(
        "uri = {:?}\n[detect]\nfps = 5\nmin_score = 0.4\n[events]\ndetections = true\n",
        media("bikes.mp4").display().to_string()
    );
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
    crate::schema::assert_valid_messages(&msgs, "lookout/e2e/status");

    let events: Vec<Value> = msgs
        .iter()
        .filter(|(t, _, _)| t == "lookout/e2e/street/events")
        .map(|(_, p, _)| serde_json::from_slice::<Value>(p).unwrap())
        .filter(|v| v["type"] == "detection")
        .collect();
    assert!(!events.is_empty(), "no detection events");
    let mut labels = BTreeSet::new();
    let mut last_capture: Option<std::time::SystemTime> = None;
    let mut ids = BTreeSet::new();
    for ev in &events {
        assert_eq!(ev["v"], 2);
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
            assert!(
                b[0] >= 0.0 && b[1] >= 0.0 && b[2] <= w && b[3] <= h && b[0] < b[2] && b[1] < b[3],
                "box {b:?} inside the frame"
            );
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

/// Tracked objects, zones and a counting line on the street clip, over MQTT.
///
/// What the clip shows, from its per-frame detections at 5 fps: the camera pans along a street;
/// about three people pass (one of them with a bicycle) and four or five parked cars slide
/// through the frame. A tracker that lost its objects at every frame would report one object
/// per detection: 19 people and 32 cars at min_score 0.5. The bounds below allow for a few honest splits
/// (objects leaving and re-entering at the frame edge) and nothing more.
#[test]
fn tracked_objects_zones_and_lines_reach_mqtt() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/objs/#");
    let global =
        format!("gateway_id = \"objs\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}", broker.port, inference_toml());
    let camera = format!(
        "uri = {:?}\n[detect]\nfps = 5\nlabels = [\"person\", \"bicycle\", \"car\"]\n\
         [[zones]]\nname = \"road\"\npolygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\ninertia = 1\n\
         [[lines]]\nname = \"middle\"\npoints = [[0.5, 0.0], [0.5, 1.0]]\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("objs", &global, &[("street", &camera)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(90));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let mut msgs: Vec<(String, Vec<u8>, bool)> = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        msgs.extend(sub.rx.try_iter());
        msgs.iter().any(|(t, p, _)| t == "lookout/objs/status" && p == b"offline")
    }));
    crate::schema::assert_valid_messages(&msgs, "lookout/objs/status");
    let events: Vec<Value> = msgs
        .iter()
        .filter(|(t, _, _)| t == "lookout/objs/street/events")
        .map(|(_, p, _)| serde_json::from_slice(p).unwrap())
        .collect();
    let dump = events.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");

    // Lifecycle: every object has exactly one `new`, first, and exactly one `end`, last.
    let mut life: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut labels: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    let mut ids = BTreeSet::new();
    for ev in &events {
        assert_eq!(ev["v"], 2);
        assert!(ids.insert(ev["id"].as_str().unwrap().to_string()), "event ids are unique");
        let kind = ev["type"].as_str().unwrap().to_string();
        if ["new", "update", "end"].contains(&kind.as_str()) {
            let oid = ev["object_id"].as_str().unwrap().to_string();
            labels.entry(ev["label"].as_str().unwrap().to_string()).or_default().insert(oid.clone());
            life.entry(oid).or_default().push(kind);
            let b: Vec<f64> = ev["box_normalized"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(
                b.iter().all(|v| (0.0..=1.0).contains(v)) && b[0] <= b[2] && b[1] <= b[3],
                "box inside the frame: {ev}"
            );
            assert!(ev["top_score"].as_f64() >= ev["score"].as_f64(), "{ev}");
            assert!(ev["first_seen"].as_str() <= ev["last_seen"].as_str(), "{ev}");
        }
    }
    for (oid, kinds) in &life {
        assert_eq!(kinds.first().map(String::as_str), Some("new"), "{oid}: {kinds:?}");
        assert_eq!(kinds.last().map(String::as_str), Some("end"), "{oid}: {kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "new").count(), 1, "{oid}: {kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "end").count(), 1, "{oid}: {kinds:?}");
    }
    let count = |l: &str| labels.get(l).map_or(0, |s| s.len());
    eprintln!("objects per label: {:?}", labels.iter().map(|(l, s)| (l, s.len())).collect::<Vec<_>>());
    assert!((1..=5).contains(&count("person")), "people: {}\n{dump}", count("person"));
    assert!((1..=6).contains(&count("car")), "cars: {}\n{dump}", count("car"));
    assert!(count("bicycle") <= 3, "bicycles: {}\n{dump}", count("bicycle"));

    // Zones: objects entered the road, the zone events name reported objects, and once the
    // clip ended every object left: the retained occupancy is back to 0.
    let enters: Vec<&Value> = events.iter().filter(|v| v["type"] == "zone_enter").collect();
    assert!(!enters.is_empty(), "nobody entered the road:\n{dump}");
    for z in &enters {
        assert!(life.contains_key(z["object_id"].as_str().unwrap_or("")), "zone event of an unreported object: {z}");
    }
    assert_eq!(enters.len(), events.iter().filter(|v| v["type"] == "zone_exit").count(), "every enter has an exit");
    let last = |topic: &str| {
        msgs.iter().rev().find(|(t, _, _)| t == topic).map(|(_, p, _)| serde_json::from_slice::<Value>(p).unwrap())
    };
    let all = last("lookout/objs/street/road/all").expect("occupancy published");
    assert_eq!(all["count"], 0, "{all}");
    // Line: the panning camera carries objects across the middle; counts add up per label.
    let crossings: Vec<&Value> = events.iter().filter(|v| v["type"] == "line_cross").collect();
    assert!(!crossings.is_empty(), "nothing crossed the middle line:\n{dump}");
    for label in ["person", "car", "bicycle"] {
        let n = crossings.iter().filter(|c| c["label"] == label).count() as u64;
        if let Some(c) = last(&format!("lookout/objs/street/middle/{label}")) {
            assert_eq!(c["left_to_right"].as_u64().unwrap() + c["right_to_left"].as_u64().unwrap(), n, "{c}");
        } else {
            assert_eq!(n, 0);
        }
    }

    // Retained: a consumer that connects after the run still gets the counts.
    let late = Subscriber::new(broker.port, "lookout/objs/street/road/+");
    let mut retained = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            retained.extend(late.rx.try_iter());
            retained.iter().any(|(t, _, r)| t == "lookout/objs/street/road/all" && *r)
        }),
        "retained occupancy: {retained:?}"
    );
    crate::schema::assert_valid_messages(&retained, "lookout/objs/status");
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
    assert!(
        stderr.contains("messages left in the spool for the next run"),
        "undelivered messages are reported: {stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

/// A stop publishes the retained `offline` status once, and waits for its acknowledgement:
/// a subscriber sees exactly one. The marker the test publishes after the daemon has exited
/// reaches the subscriber after everything the daemon sent, so counting stops there.
#[test]
fn a_stop_publishes_the_offline_status_exactly_once() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/once/#");
    let global =
        format!("gateway_id = \"once\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}", broker.port, inference_toml());
    let camera = format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 2\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("once", &global, &[("street", &camera)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    publish_acked(broker.port, "lookout/once/marker", b"end");
    let mut msgs: Vec<(String, Vec<u8>, bool)> = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            msgs.extend(sub.rx.try_iter());
            msgs.iter().any(|(t, _, _)| t == "lookout/once/marker")
        }),
        "the marker did not arrive"
    );
    let statuses: Vec<String> =
        msgs.iter().filter(|(t, _, _)| t == "lookout/once/status").map(|(_, p, _)| text(p)).collect();
    let offline = statuses.iter().filter(|p| *p == "offline").count();
    eprintln!("status messages a subscriber saw: {statuses:?}");
    assert_eq!(offline, 1, "offline published exactly once: {statuses:?}");
    assert_eq!(statuses.last().map(String::as_str), Some("offline"), "offline is the last status: {statuses:?}");
    // The broker retains it: a subscriber that comes later sees the gateway offline.
    let late = Subscriber::new(broker.port, "lookout/once/status");
    let mut retained = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        retained.extend(late.rx.try_iter());
        !retained.is_empty()
    }));
    assert_eq!(retained[0], ("lookout/once/status".to_string(), b"offline".to_vec(), true));
}
