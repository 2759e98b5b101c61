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
