//! Profiles and remote config over MQTT, against a real broker (docs/mqtt.md, "Profiles" and
//! "Remote config"): a profile switches the gateway, restarts only the cameras it changes and
//! does what its overlay says; an unknown or invalid profile is refused with its reasons and
//! changes nothing; the profile survives a restart. A camera file sent over MQTT is checked,
//! saved with a backup and applied, or refused with its problems and the file untouched.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::schema::assert_valid;

/// Everything received so far, as (topic, payload).
struct Seen {
    sub: Subscriber,
    all: Vec<(String, Vec<u8>)>,
}

impl Seen {
    fn new(port: u16, filter: &str) -> Seen {
        Seen { sub: Subscriber::new(port, filter), all: Vec::new() }
    }

    fn len(&mut self) -> usize {
        self.all.extend(self.sub.rx.try_iter().map(|(t, p, _)| (t, p)));
        self.all.len()
    }

    /// Wait for a JSON message on `topic` from index `from` on for which `pred` holds; its index
    /// and payload.
    fn wait_json(&mut self, from: usize, topic: &str, what: &str, pred: impl Fn(&Value) -> bool) -> (usize, Value) {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(90), || {
            self.len();
            found = self.all.iter().enumerate().skip(from).find_map(|(i, (t, p))| {
                let v: Value = serde_json::from_slice(p).ok()?;
                (t == topic && pred(&v)).then_some((i, v))
            });
            found.is_some()
        });
        assert!(ok, "{what}: never came; {} messages", self.all.len());
        let (i, v) = found.unwrap();
        assert_valid(&v);
        (i + 1, v)
    }

    fn events(&self, from: usize, camera: &str, kind: &str) -> usize {
        let topic = format!("lookout/rm/{camera}/events");
        self.all[from..]
            .iter()
            .filter(|(t, p)| *t == topic && serde_json::from_slice::<Value>(p).is_ok_and(|v| v["type"] == kind))
            .count()
    }
}

/// The demo's middle line on the sample clip, looped in real time; `extra` appended.
fn camera(extra: &str) -> String {
    format!(
        "uri = {:?}\nloop = true\n[detect]\nfps = 5\nlabels = [\"person\", \"bicycle\", \"car\"]\nmin_score = 0.5\n\
         [[lines]]\nname = \"middle\"\npoints = [[0.5, 1.0], [0.5, 0.0]]\n{extra}",
        media("bikes.mp4").display().to_string()
    )
}

const NIGHT: &str =
    "\n[profiles.night]\ndetect = { min_score = 0.6 }\n[[profiles.night.lines]]\nname = \"middle\"\nenabled = false\n";

fn names(v: &Value, key: &str) -> Vec<String> {
    v["changes"][key].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()
}

#[test]
fn profiles_switch_the_gateway_and_refuse_what_is_wrong() {
    let broker = Broker::start();
    let state = std::env::temp_dir().join(format!("lookout-profiles-state-{}", free_port()));
    std::fs::create_dir_all(&state).unwrap();
    let global =
        format!("gateway_id = \"rm\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}", broker.port, inference_toml());
    let dir = ConfigDir::new("profiles", &global, &[("street", &camera(NIGHT)), ("yard", &camera(""))]);
    let env = [("STATE_DIRECTORY", state.to_str().unwrap())];
    let mut seen = Seen::new(broker.port, "lookout/rm/#");
    let topic = "lookout/rm/profile/state";
    let mut d = Daemon::start_with_env(&dir.path, &env);
    let (at, start) = seen.wait_json(0, topic, "the profile at start", |v| v["requested"].is_null());
    assert_eq!((start["profile"].as_str(), start["ok"].as_bool()), (Some("default"), Some(true)));
    assert_eq!(start["profiles"], serde_json::json!(["default", "night"]));
    let crossing = |s: &Seen, from: usize| s.events(from, "street", "line_cross") > 0;
    let ok = wait_until(Duration::from_secs(60), || {
        seen.len();
        crossing(&seen, at)
    });
    assert!(ok, "street's line counts before the profile");

    // A profile nobody defines: refused, nothing changes.
    publish_acked(broker.port, "lookout/rm/profile/set", b"holiday");
    let (at, refused) = seen.wait_json(at, topic, "the unknown profile refused", |v| v["requested"] == "holiday");
    assert_eq!((refused["profile"].as_str(), refused["ok"].as_bool()), (Some("default"), Some(false)));
    let reason = refused["problems"][0]["message"].as_str().unwrap();
    assert!(reason.contains("no camera defines a profile `holiday`") && reason.contains("default, night"), "{reason}");

    // night: only street restarts, and its line stops counting while yard's goes on.
    publish_acked(broker.port, "lookout/rm/profile/set", b"night");
    let (at, night) = seen.wait_json(at, topic, "night applied", |v| v["requested"] == "night");
    assert_eq!((night["profile"].as_str(), night["ok"].as_bool()), (Some("night"), Some(true)));
    assert_eq!((names(&night, "restarted"), names(&night, "stopped")), (vec!["street".to_string()], vec![]));
    let before = seen.len();
    let ok = wait_until(Duration::from_secs(90), || {
        seen.len();
        seen.events(before, "yard", "line_cross") >= 2 && seen.events(before, "street", "new") >= 6
    });
    assert!(ok, "both cameras go on making objects");
    assert_eq!(seen.events(before, "street", "line_cross"), 0, "street's line is off under night");
    let yard_status = seen.all[before..].iter().filter(|(t, _)| t == "lookout/rm/yard/status").count();
    assert_eq!(yard_status, 0, "yard was not restarted");

    // An invalid profile on disk: the request is checked as a reload, refused on its line.
    let file = dir.path.join("pipelines/street.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\n[profiles.bad]\ndetect = {{ min_score = 1.5 }}\n")).unwrap();
    publish_acked(broker.port, "lookout/rm/profile/set", b"bad");
    let (at, bad) = seen.wait_json(at, topic, "the invalid profile refused", |v| v["requested"] == "bad");
    assert_eq!((bad["profile"].as_str(), bad["ok"].as_bool()), (Some("night"), Some(false)));
    let problem = &bad["problems"][0];
    assert_eq!(problem["key"], "profiles.bad.detect.min_score", "{bad}");
    assert!(
        problem["line"].as_u64().is_some() && problem["message"].as_str().unwrap().contains("profile `bad`"),
        "{bad}"
    );
    // `lookout check` says the same of the file.
    let check = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    let said = text(&check.stdout) + &text(&check.stderr);
    assert!(!check.status.success() && said.contains("profiles.bad.detect.min_score"), "{said}");
    std::fs::write(&file, &good).unwrap();

    // A restart comes back in night.
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("profile applied"), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(state.join("profile")).unwrap().trim(), "night");
    let mut d = Daemon::start_with_env(&dir.path, &env);
    let (at, again) = seen.wait_json(at, topic, "the profile after a restart", |v| v["requested"].is_null());
    assert_eq!(again["profile"], "night");
    // A reload whose files no longer define it: back to `default`, and the state says so.
    std::fs::write(&file, camera("")).unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
    let (_, gone) = seen.wait_json(at, topic, "the fallback to default", |v| v["profile"] == "default");
    assert_eq!((gone["ok"].as_bool(), gone["profiles"].clone()), (Some(true), serde_json::json!(["default"])));
    assert_eq!(names(&gone, "restarted"), ["street"]);
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_camera_file_over_mqtt_is_checked_saved_and_applied_or_refused_untouched() {
    let broker = Broker::start();
    let global = format!(
        "gateway_id = \"rm\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nremote_config = true\n{}",
        broker.port,
        inference_toml()
    );
    let original = camera("");
    let dir = ConfigDir::new("remote-config", &global, &[("street", &original)]);
    let file = dir.path.join("pipelines/street.toml");
    let mut seen = Seen::new(broker.port, "lookout/rm/#");
    let result = "lookout/rm/config/street/result";
    let mut d = Daemon::start(&dir.path);
    seen.wait_json(0, "lookout/rm/street/status", "street streaming", |v| v["state"] == "streaming");

    // A file with mistakes: refused, each problem on its line, the file untouched.
    let broken = original.replace("fps = 5", "fps = -1");
    publish_acked(broker.port, "lookout/rm/config/street/set/ops-laptop", broken.as_bytes());
    let (at, r) = seen.wait_json(0, result, "the broken file refused", |_| true);
    assert_eq!(
        (r["ok"].as_bool(), r["saved"].as_bool(), r["sender"].as_str()),
        (Some(false), Some(false), Some("ops-laptop"))
    );
    let p = &r["problems"][0];
    assert_eq!((p["key"].as_str(), p["line"].as_u64()), (Some("detect.fps"), Some(4)), "{r}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // Refused before any check: too big, a camera that isn't there.
    let big = format!("{original}\n# {}\n", "x".repeat(70_000));
    publish_acked(broker.port, "lookout/rm/config/street/set", big.as_bytes());
    let (at, r) = seen.wait_json(at, result, "an oversized file refused", |v| {
        v["problems"][0]["message"].as_str().is_some_and(|m| m.contains("65536-byte limit"))
    });
    assert_eq!(r["sender"], Value::Null);
    publish_acked(broker.port, "lookout/rm/config/nope/set", original.as_bytes());
    let (_, r) = seen.wait_json(0, "lookout/rm/config/nope/result", "an unknown camera refused", |_| true);
    assert!(r["problems"][0]["message"].as_str().unwrap().contains("no camera `nope`"), "{r}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);

    // A good file: saved with a backup, applied as a reload (street restarts at 4 fps).
    let better = original.replace("fps = 5", "fps = 4");
    let mark = seen.len();
    publish_acked(broker.port, "lookout/rm/config/street/set/ops-laptop", better.as_bytes());
    let (_, r) = seen.wait_json(at.max(mark), result, "the good file applied", |v| v["ok"] == true);
    assert_eq!(
        (r["saved"].as_bool(), r["applied"].as_bool(), r["backup"].as_str()),
        (Some(true), Some(true), Some("street.toml.bak")),
        "{r}"
    );
    assert_eq!(names(&r, "restarted"), ["street"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), better);
    assert_eq!(std::fs::read_to_string(dir.path.join("pipelines/street.toml.bak")).unwrap(), original);
    seen.wait_json(mark, "lookout/rm/street/status", "street streaming again", |v| v["state"] == "streaming");

    let out = d.terminate();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("camera file replaced over MQTT") && stderr.contains("sender=\"ops-laptop\""), "{stderr}");
    assert!(stderr.contains("camera file over MQTT refused"), "{stderr}");

    // A retained file published while the gateway is down: the gateway's kept session takes it
    // once, as a message sent while it was away (applied); the broker's retained copy, handed
    // over at every (re)subscription, is refused, so it never overrides a later change.
    let stale = original.replace("fps = 5", "fps = 3");
    publish_retained_acked(broker.port, "lookout/rm/config/street/set", stale.as_bytes());
    let retained_refused = |seen: &mut Seen, from: usize| {
        let (next, r) = seen.wait_json(from, result, "the retained copy refused", |v| v["ok"] == false);
        assert!(r["problems"][0]["message"].as_str().unwrap().contains("retained"), "{r}");
        next
    };
    let mark = seen.len();
    let mut d = Daemon::start(&dir.path);
    retained_refused(&mut seen, mark);
    let ok = wait_until(Duration::from_secs(30), || std::fs::read_to_string(&file).unwrap() == stale);
    assert!(ok, "the file sent while the gateway was away is applied once");
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // An edit on the gateway since: the retained copy, refused again, doesn't undo it.
    std::fs::write(&file, &better).unwrap();
    let mark = seen.len();
    let mut d = Daemon::start(&dir.path);
    retained_refused(&mut seen, mark);
    seen.wait_json(mark, "lookout/rm/street/status", "street streaming", |v| v["state"] == "streaming");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), better);
    publish_retained_acked(broker.port, "lookout/rm/config/street/set", b"");
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
}
