//! Zone and line switches over MQTT, against a real broker (docs/mqtt.md, "Switches"): a line
//! switched OFF counts nothing and a zone switched OFF says nothing while the clip keeps
//! making objects; the switch survives a restart (kept in the state directory), and ON brings
//! the events back. Commands for a zone that doesn't exist, and payloads other than ON/OFF,
//! change nothing and are logged.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// Everything received so far, as (topic, payload).
struct Seen {
    sub: Subscriber,
    all: Vec<(String, Vec<u8>)>,
}

impl Seen {
    fn pump(&mut self) {
        self.all.extend(self.sub.rx.try_iter().map(|(t, p, _)| (t, p)));
    }

    /// Wait until `pred` holds for the messages from index `from` on.
    fn wait(&mut self, from: usize, what: &str, pred: impl Fn(&[(String, Vec<u8>)]) -> bool) -> usize {
        let ok = wait_until(Duration::from_secs(60), || {
            self.pump();
            pred(&self.all[from.min(self.all.len())..])
        });
        assert!(ok, "{what}: never happened; {} messages", self.all.len());
        self.all.len()
    }

    fn events(msgs: &[(String, Vec<u8>)], kind: &str) -> usize {
        msgs.iter().filter(|(_, p)| serde_json::from_slice::<Value>(p).is_ok_and(|v| v["type"] == kind)).count()
    }
}

fn state_is(msgs: &[(String, Vec<u8>)], topic: &str, value: &[u8]) -> bool {
    msgs.iter().any(|(t, p)| t == topic && p == value)
}

#[test]
fn a_switched_off_line_and_zone_make_no_events_and_the_switch_survives_a_restart() {
    let broker = Broker::start();
    let state = std::env::temp_dir().join(format!("lookout-toggles-state-{}", free_port()));
    std::fs::create_dir_all(&state).unwrap();
    let global =
        format!("gateway_id = \"tg\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}", broker.port, inference_toml());
    // The demo's street zone and middle line, on the sample clip looped in real time.
    let camera = format!(
        "uri = {:?}\nloop = true\n[detect]\nfps = 5\nlabels = [\"person\", \"bicycle\", \"car\"]\nmin_score = 0.5\n\
         [[zones]]\nname = \"street\"\npolygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\n\
         [[lines]]\nname = \"middle\"\npoints = [[0.5, 1.0], [0.5, 0.0]]\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("toggles", &global, &[("street", &camera)]);
    let env = [("STATE_DIRECTORY", state.to_str().unwrap())];
    let mut seen = Seen { sub: Subscriber::new(broker.port, "lookout/tg/#"), all: Vec::new() };
    let line_state = "lookout/tg/street/line/middle/state";
    let zone_state = "lookout/tg/street/zone/street/state";
    let mut d = Daemon::start_with_env(&dir.path, &env);
    seen.wait(0, "both switches announced ON", |m| state_is(m, line_state, b"ON") && state_is(m, zone_state, b"ON"));
    // With both on, a loop of the clip crosses the line.
    seen.wait(0, "a line crossing", |m| Seen::events(m, "line_cross") > 0);

    // Bad commands change nothing.
    publish_acked(broker.port, "lookout/tg/street/zone/nope/set", b"OFF");
    publish_acked(broker.port, "lookout/tg/street/line/middle/set", b"maybe");

    // Line and zone OFF; once both say so, two more loops of the clip bring new objects but no
    // crossing and no zone event. (Events already in flight when the switch flipped are
    // counted from the first new object on.)
    publish_acked(broker.port, "lookout/tg/street/line/middle/set", b"OFF");
    publish_acked(broker.port, "lookout/tg/street/zone/street/set", b"OFF");
    let off = seen.wait(0, "both switches OFF", |m| state_is(m, line_state, b"OFF") && state_is(m, zone_state, b"OFF"));
    let first_new = seen.wait(off, "a new object", |m| Seen::events(m, "new") >= 1);
    let end = seen.wait(first_new, "two loops of new objects", |m| Seen::events(m, "new") >= 16);
    let window = &seen.all[first_new..end];
    for kind in ["line_cross", "zone_enter", "zone_exit", "line_count"] {
        assert_eq!(Seen::events(window, kind), 0, "{kind} while switched off");
    }
    let saved = std::fs::read_to_string(state.join("toggles.json")).expect("the switches are saved");
    assert!(
        saved.contains("\"street/line/middle\": false") && saved.contains("\"street/zone/street\": false"),
        "{saved}"
    );

    // A restart keeps them: the retained states are cleared first, so an OFF now is the new
    // daemon's own announcement.
    let out = d.terminate();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("camera `street` has no zone named `nope`"), "{stderr}");
    assert!(stderr.contains("a switch takes ON or OFF; ignored"), "{stderr}");
    for t in [line_state, zone_state] {
        publish_retained_acked(broker.port, t, b"");
    }
    let mark = {
        seen.pump();
        seen.all.len()
    };
    let mut d = Daemon::start_with_env(&dir.path, &env);
    seen.wait(mark, "the saved OFF announced again", |m| {
        state_is(m, line_state, b"OFF") && state_is(m, zone_state, b"OFF")
    });

    // ON brings the counting back.
    publish_acked(broker.port, "lookout/tg/street/line/middle/set", b"ON");
    let on = seen.wait(mark, "line ON", |m| state_is(m, line_state, b"ON"));
    seen.wait(on, "a crossing after ON", |m| Seen::events(m, "line_cross") > 0);
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&state);
}

/// The camera's `skipped_by_motion` in a stats message, if it is one.
fn skipped_by_motion(payload: &[u8]) -> Option<u64> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v["cameras"]["yard"]["skipped_by_motion"].as_u64()
}

#[test]
fn mask_motion_and_snapshot_switches_do_what_they_say() {
    let broker = Broker::start();
    let state = std::env::temp_dir().join(format!("lookout-toggles-more-{}", free_port()));
    std::fs::create_dir_all(&state).unwrap();
    let global = format!(
        "gateway_id = \"tm\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n[stats]\ninterval_seconds = 1\n{}",
        broker.port,
        inference_toml()
    );
    // A mask over the whole frame drops every detection; a motion gate that sees no motion
    // (every pixel must change) skips every frame while nothing is tracked; snapshots on.
    let camera = format!(
        "uri = {:?}\nloop = true\nmasks = [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]\n\
         [detect]\nfps = 5\nlabels = [\"person\", \"bicycle\", \"car\"]\nmin_score = 0.5\n\
         [motion]\nenabled = true\nmin_area = 1.0\nthreshold = 254\nmax_idle_detect_seconds = 3600\n\
         [snapshots]\nenabled = true\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("toggles-more", &global, &[("yard", &camera)]);
    let env = [("STATE_DIRECTORY", state.to_str().unwrap())];
    let mut seen = Seen { sub: Subscriber::new(broker.port, "lookout/tm/#"), all: Vec::new() };
    let (mask, motion, snaps) =
        ("lookout/tm/yard/mask/1/state", "lookout/tm/yard/motion/state", "lookout/tm/yard/snapshots/state");
    let mut d = Daemon::start_with_env(&dir.path, &env);
    seen.wait(0, "the three switches announced ON", |m| {
        state_is(m, mask, b"ON") && state_is(m, motion, b"ON") && state_is(m, snaps, b"ON")
    });
    // Gated and masked: frames are skipped for want of motion, and no object appears.
    let gated = seen.wait(0, "frames skipped by the motion gate", |m| {
        m.iter().filter_map(|(t, p)| (t == "lookout/tm/stats").then(|| skipped_by_motion(p)).flatten()).any(|n| n > 10)
    });
    assert_eq!(Seen::events(&seen.all, "new"), 0, "the whole-frame mask lets nothing through");

    // Motion gating OFF: the gate lets every frame through, so the skip count stops growing.
    publish_acked(broker.port, "lookout/tm/yard/motion/set", b"OFF");
    let off = seen.wait(gated, "motion OFF", |m| state_is(m, motion, b"OFF"));
    let counts = |m: &[(String, Vec<u8>)]| -> Vec<u64> {
        m.iter().filter(|(t, _)| t == "lookout/tm/stats").filter_map(|(_, p)| skipped_by_motion(p)).collect()
    };
    let later = seen.wait(off, "three stats messages after OFF", |m| counts(m).len() >= 3);
    let after = counts(&seen.all[off..later]);
    // The first may hold frames skipped before the switch reached the source.
    assert_eq!(after[1], after[after.len() - 1], "no frame skipped by motion once gating is OFF: {after:?}");

    // Snapshots OFF, then the mask OFF: objects appear, without snapshots.
    publish_acked(broker.port, "lookout/tm/yard/snapshots/set", b"OFF");
    seen.wait(off, "snapshots OFF", |m| state_is(m, snaps, b"OFF"));
    publish_acked(broker.port, "lookout/tm/yard/mask/1/set", b"OFF");
    let unmasked = seen.wait(off, "mask OFF", |m| state_is(m, mask, b"OFF"));
    let end = seen.wait(unmasked, "objects once the mask is off", |m| Seen::events(m, "new") >= 4);
    let snapshots = |m: &[(String, Vec<u8>)]| m.iter().filter(|(t, _)| t == "lookout/tm/yard/snapshot").count();
    assert_eq!(snapshots(&seen.all[unmasked..end]), 0, "a snapshot while snapshots are OFF");

    // Snapshots ON: the next new objects come with their pictures.
    publish_acked(broker.port, "lookout/tm/yard/snapshots/set", b"ON");
    let on = seen.wait(end, "snapshots ON", |m| state_is(m, snaps, b"ON"));
    seen.wait(on, "a snapshot after ON", |m| snapshots(m) > 0);

    // A switch the camera doesn't have: a second mask, or motion on a camera without a gate.
    publish_acked(broker.port, "lookout/tm/yard/mask/2/set", b"OFF");
    let out = d.terminate();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("camera `yard` has no mask named `2`"), "{stderr}");
    let saved = std::fs::read_to_string(state.join("toggles.json")).expect("the switches are saved");
    assert!(saved.contains("\"yard/motion\": false") && saved.contains("\"yard/mask/1\": false"), "{saved}");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_switch_for_a_zone_a_reload_removed_changes_nothing_and_says_why() {
    let broker = Broker::start();
    let state = std::env::temp_dir().join(format!("lookout-toggles-reload-{}", free_port()));
    std::fs::create_dir_all(&state).unwrap();
    let global =
        format!("gateway_id = \"tr\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}", broker.port, inference_toml());
    let zone = |name: &str| {
        format!(
            "uri = {:?}\nloop = true\n[detect]\nfps = 5\n[[zones]]\nname = \"{name}\"\npolygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\n",
            media("bikes.mp4").display().to_string()
        )
    };
    let dir = ConfigDir::new("toggles-reload", &global, &[("cam", &zone("street"))]);
    let env = [("STATE_DIRECTORY", state.to_str().unwrap())];
    let mut seen = Seen { sub: Subscriber::new(broker.port, "lookout/tr/#"), all: Vec::new() };
    let mut d = Daemon::start_with_env(&dir.path, &env);
    seen.wait(0, "street's switch", |m| state_is(m, "lookout/tr/cam/zone/street/state", b"ON"));
    // The zone is renamed by a reload: the new one gets its switch, the old one's is gone.
    std::fs::write(dir.path.join("pipelines/cam.toml"), zone("road")).unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
    let mark = seen.wait(0, "road's switch", |m| state_is(m, "lookout/tr/cam/zone/road/state", b"ON"));
    publish_acked(broker.port, "lookout/tr/cam/zone/street/set", b"OFF");
    publish_acked(broker.port, "lookout/tr/cam/zone/road/set", b"OFF");
    let after = seen.wait(mark, "road OFF", |m| state_is(m, "lookout/tr/cam/zone/road/state", b"OFF"));
    assert!(
        !seen.all[mark..after].iter().any(|(t, _)| t == "lookout/tr/cam/zone/street/state"),
        "a state for the removed zone"
    );
    let out = d.terminate();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("camera `cam` has no zone named `street` (a reload may have removed it)"), "{stderr}");
    let _ = std::fs::remove_dir_all(&state);
}
