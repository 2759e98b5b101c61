//! Home Assistant MQTT discovery against a real broker.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn home_assistant_discovery_describes_topics_that_really_carry_data() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "#");
    let global = format!(
        "gateway_id = \"ha\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\ndiscovery = true\n[snapshots]\ndir = {:?}\n{}",
        broker.port,
        std::env::temp_dir().join(format!("lookout-test-ha-{}", free_port())).display().to_string(),
        inference_toml()
    );
    let camera = format!(
        "uri = {:?}\nmasks = [[[0.0, 0.0], [0.05, 0.0], [0.05, 0.05]]]\n[detect]\nlabels = [\"person\", \"car\"]\n\
         [snapshots]\nenabled = true\n[profiles.night]\ndetect = {{ min_score = 0.7 }}\n\
         [[zones]]\nname = \"street\"\npolygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\n\
         [[lines]]\nname = \"middle\"\npoints = [[0.5, 1.0], [0.5, 0.0]]\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("ha", &global, &[("front", &camera)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(90));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut msgs: Vec<(String, Vec<u8>, bool)> = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        msgs.extend(sub.rx.try_iter());
        msgs.iter().any(|(t, p, _)| t == "lookout/ha/status" && p == b"offline")
    }));
    let configs: BTreeMap<&str, Value> = msgs
        .iter()
        .filter(|(t, _, _)| t.starts_with("homeassistant/"))
        .map(|(t, p, _)| (t.as_str(), serde_json::from_slice(p).expect("discovery config is JSON")))
        .collect();
    let data_topics: std::collections::BTreeSet<&str> = msgs.iter().map(|(t, _, _)| t.as_str()).collect();
    for want in [
        "homeassistant/binary_sensor/lookout_ha/front_streaming/config",
        "homeassistant/sensor/lookout_ha/front_street_person_count/config",
        "homeassistant/sensor/lookout_ha/front_street_all_count/config",
        "homeassistant/sensor/lookout_ha/front_middle_person_left_to_right/config",
        "homeassistant/camera/lookout_ha/front_snapshot/config",
        "homeassistant/switch/lookout_ha/front_zone_street/config",
        "homeassistant/switch/lookout_ha/front_line_middle/config",
        "homeassistant/switch/lookout_ha/front_mask_1/config",
        "homeassistant/switch/lookout_ha/front_snapshots/config",
        "homeassistant/select/lookout_ha/profile/config",
    ] {
        assert!(configs.contains_key(want), "missing {want}; got {:?}", configs.keys());
    }
    let mut ids = std::collections::BTreeSet::new();
    for (topic, c) in &configs {
        assert!(ids.insert(c["unique_id"].as_str().unwrap().to_string()), "unique ids: {topic}");
        assert_eq!(c["availability"][0]["topic"], "lookout/ha/status");
        let state = c["state_topic"].as_str().or(c["topic"].as_str()).unwrap();
        assert!(state.starts_with("lookout/ha/front/") || state == "lookout/ha/profile/state", "{topic}: {state}");
    }
    // The clip's objects fill the zone and cross the line, so these entities had data.
    for t in [
        "lookout/ha/front/status",
        "lookout/ha/front/street/all",
        "lookout/ha/front/street/person",
        "lookout/ha/front/snapshot",
        "lookout/ha/front/zone/street/state",
        "lookout/ha/front/line/middle/state",
        "lookout/ha/front/mask/1/state",
        "lookout/ha/front/snapshots/state",
        "lookout/ha/profile/state",
    ] {
        assert!(data_topics.contains(t), "{t} carried nothing; topics: {data_topics:?}");
    }
    // Retained: Home Assistant restarting later still discovers everything.
    let late = Subscriber::new(broker.port, "homeassistant/#");
    let mut got = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            got.extend(late.rx.try_iter());
            got.len() >= configs.len()
        }),
        "{} of {} configs retained",
        got.len(),
        configs.len()
    );
    assert!(got.iter().all(|(_, _, r)| *r));
    // Each switch commands the topic the daemon obeys.
    let zone = &configs["homeassistant/switch/lookout_ha/front_zone_street/config"];
    assert_eq!(zone["command_topic"], "lookout/ha/front/zone/street/set");
    assert_eq!(zone["state_topic"], "lookout/ha/front/zone/street/state");
    let select = &configs["homeassistant/select/lookout_ha/profile/config"];
    assert_eq!(select["command_topic"], "lookout/ha/profile/set");
    assert_eq!(select["options"], serde_json::json!(["default", "night"]));
}
