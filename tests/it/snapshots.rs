//! Snapshots of tracked objects: JPEGs on `<camera>/snapshot` (retained) and on disk.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn every_reported_object_gets_a_snapshot_on_mqtt_and_on_disk() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/snap/#");
    let snaps = std::env::temp_dir().join(format!("lookout-test-snaps-{}", free_port()));
    let global = format!(
        "gateway_id = \"snap\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n[snapshots]\ndir = {:?}\n{}",
        broker.port,
        snaps.display().to_string(),
        inference_toml()
    );
    let camera = format!(
        "uri = {:?}\n[detect]\nlabels = [\"person\", \"bicycle\", \"car\"]\n[snapshots]\nenabled = true\ncrop = true\nmax_size = 200\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("snap", &global, &[("street", &camera)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(90));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut msgs: Vec<(String, Vec<u8>, bool)> = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        msgs.extend(sub.rx.try_iter());
        msgs.iter().any(|(t, p, _)| t == "lookout/snap/status" && p == b"offline")
    }));
    let objects: BTreeSet<String> = msgs
        .iter()
        .filter(|(t, _, _)| t == "lookout/snap/street/events")
        .filter_map(|(_, p, _)| serde_json::from_slice::<Value>(p).ok())
        .filter(|v| v["type"] == "new")
        .map(|v| v["object_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!objects.is_empty());
    let jpegs: Vec<&Vec<u8>> =
        msgs.iter().filter(|(t, _, _)| t == "lookout/snap/street/snapshot").map(|(_, p, _)| p).collect();
    assert!(
        jpegs.len() >= objects.len(),
        "one snapshot per new object at least: {} for {}",
        jpegs.len(),
        objects.len()
    );
    for j in &jpegs {
        let img = image::load_from_memory(j).expect("a JPEG");
        assert!(img.width().max(img.height()) <= 200, "max_size: {}x{}", img.width(), img.height());
    }
    let saved: BTreeSet<String> = std::fs::read_dir(snaps.join("street"))
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().to_string()))
        .collect();
    let _ = std::fs::remove_dir_all(&snaps);
    assert_eq!(saved, objects, "one file per object, named by its object_id");
    // The latest snapshot is retained for consumers that connect later.
    let late = Subscriber::new(broker.port, "lookout/snap/street/snapshot");
    let mut got = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        got.extend(late.rx.try_iter());
        got.iter().any(|(_, p, r)| *r && image::load_from_memory(p).is_ok())
    }));
}
