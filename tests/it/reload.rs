//! Hot reload on SIGHUP against a real daemon, real clips played live and a real broker: only
//! the changed camera restarts, the other keeps running and counting, an invalid config keeps
//! the old one running, and cameras are added and removed.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::systemd::NotifySocket;

type Msg = (String, Vec<u8>, bool);

fn clip_camera(fps: u32) -> String {
    format!("uri = {:?}\nloop = true\n[detect]\nfps = {fps}\n", media("bikes.mp4").display().to_string())
}

/// The camera statuses seen so far: (camera, state, reason), in arrival order.
fn statuses(msgs: &[Msg]) -> Vec<(String, String, String)> {
    msgs.iter()
        .filter(|(t, _, _)| t.ends_with("/status") && t.matches('/').count() == 3)
        .filter_map(|(_, p, _)| serde_json::from_slice::<Value>(p).ok())
        .filter(|v| v["type"] == "camera_status")
        .map(|v| {
            (
                v["camera"].as_str().unwrap().to_string(),
                v["state"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// `decoded` of `camera` in each stats message, in order.
fn decoded(msgs: &[Msg], camera: &str) -> Vec<u64> {
    msgs.iter()
        .filter(|(t, _, _)| t.ends_with("/stats"))
        .filter_map(|(_, p, _)| serde_json::from_slice::<Value>(p).ok())
        .filter_map(|v| v["cameras"][camera]["decoded"].as_u64())
        .collect()
}

struct Reloading {
    d: Daemon,
    sock: NotifySocket,
    sub: Subscriber,
    msgs: Vec<Msg>,
}

impl Reloading {
    fn pump(&mut self) {
        self.msgs.extend(self.sub.rx.try_iter());
    }

    /// SIGHUP, then wait for the READY=1 that ends the reload (applied or refused).
    fn reload(&mut self) {
        let ready = NotifySocket::count(&self.sock.got, "READY=1");
        let _ = Command::new("kill").args(["-HUP", &self.d.pid().to_string()]).status();
        assert!(
            self.sock.wait_for(Duration::from_secs(30), |g| NotifySocket::count(g, "READY=1") > ready),
            "no READY=1 after the reload: {:?}",
            self.sock.got
        );
        let reloading = self.sock.got.iter().rposition(|m| m == "RELOADING=1");
        let last_ready = self.sock.got.iter().rposition(|m| m == "READY=1");
        assert!(reloading.is_some() && reloading < last_ready, "RELOADING=1 comes before READY=1: {:?}", self.sock.got);
    }

    fn wait(&mut self, what: &str, timeout: Duration, cond: impl Fn(&[Msg]) -> bool) {
        let ok = wait_until(timeout, || {
            self.msgs.extend(self.sub.rx.try_iter());
            cond(&self.msgs)
        });
        assert!(ok, "{what}; statuses: {:?}", statuses(&self.msgs));
    }
}

#[test]
fn sighup_restarts_only_the_changed_camera_keeps_a_bad_config_out_and_adds_and_removes_cameras() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/reload/#");
    let ha = Subscriber::new(broker.port, "homeassistant/#");
    let global = format!(
        "gateway_id = \"reload\"\n[mqtt]\nport = {}\ndiscovery = true\n[stats]\ninterval_seconds = 1\n{}",
        broker.port,
        inference_toml()
    );
    let dir = ConfigDir::new("reload", &global, &[("a", &clip_camera(5)), ("b", &clip_camera(5))]);
    let sock = NotifySocket::bind(&dir.path);
    let d = Daemon::start_with_env(&dir.path, &[("NOTIFY_SOCKET", sock.path.to_str().unwrap())]);
    let mut r = Reloading { d, sock, sub, msgs: Vec::new() };
    let streaming =
        |cam: &'static str| move |m: &[Msg]| statuses(m).iter().any(|(c, s, _)| c == cam && s == "streaming");
    r.wait("both cameras stream", Duration::from_secs(60), |m| streaming("a")(m) && streaming("b")(m));
    assert!(
        r.sock.wait_for(Duration::from_secs(30), |g| g.iter().any(|m| m == "READY=1")),
        "no READY=1: {:?}",
        r.sock.got
    );

    // 1. Change b only.
    r.pump();
    let mark = statuses(&r.msgs).len();
    let a_before = decoded(&r.msgs, "a").last().copied().unwrap_or(0);
    std::fs::write(dir.path.join("pipelines/b.toml"), clip_camera(2)).unwrap();
    r.reload();
    r.wait("b restarts and streams again", Duration::from_secs(60), |m| {
        statuses(m)[mark..].iter().any(|(c, s, _)| c == "b" && s == "streaming")
    });
    // a keeps counting through b's restart.
    r.wait("a keeps decoding", Duration::from_secs(30), |m| {
        decoded(m, "a").last().is_some_and(|&n| n >= a_before + 50)
    });
    let after: Vec<(String, String, String)> = statuses(&r.msgs)[mark..].to_vec();
    let b: Vec<(&str, &str)> =
        after.iter().filter(|(c, _, _)| c == "b").map(|(_, s, r)| (s.as_str(), r.as_str())).collect();
    assert_eq!(b[0], ("stopped", "config changed (reload)"), "{after:?}");
    assert_eq!(b[1].0, "connecting", "{after:?}");
    assert!(after.iter().all(|(c, _, _)| c == "b"), "only b's status changed: {after:?}");

    // 2. An invalid file: refused, and everything runs on.
    r.pump();
    let mark = statuses(&r.msgs).len();
    let a_before = decoded(&r.msgs, "a").last().copied().unwrap_or(0);
    let b_before = decoded(&r.msgs, "b").last().copied().unwrap_or(0);
    std::fs::write(dir.path.join("pipelines/a.toml"), format!("{}fsp = 3\n", clip_camera(5))).unwrap(); // in [detect]
    r.reload();
    r.wait("both keep decoding after a refused reload", Duration::from_secs(30), |m| {
        decoded(m, "a").last().is_some_and(|&n| n >= a_before + 50)
            && decoded(m, "b").last().is_some_and(|&n| n >= b_before + 50)
    });
    assert!(statuses(&r.msgs)[mark..].is_empty(), "no camera restarted: {:?}", &statuses(&r.msgs)[mark..]);

    // 3. A third camera, with a's file fixed as it was (so a stays untouched).
    std::fs::write(dir.path.join("pipelines/a.toml"), clip_camera(5)).unwrap();
    std::fs::write(dir.path.join("pipelines/c.toml"), "uri = \"test://ball\"\n[detect]\nfps = 2\n").unwrap();
    r.pump();
    let mark = statuses(&r.msgs).len();
    r.reload();
    r.wait("c starts", Duration::from_secs(60), |m| {
        statuses(m)[mark..].iter().any(|(c, s, _)| c == "c" && s == "streaming")
    });
    r.wait("c is in the stats", Duration::from_secs(30), |m| decoded(m, "c").last().is_some_and(|&n| n > 0));
    // Its detect switch is announced at once, not at the next reconnect.
    r.wait("c's detect state is announced", Duration::from_secs(30), |m| {
        m.iter().any(|(t, p, retained)| t == "lookout/reload/c/detect/state" && p == b"ON" && !retained)
    });

    // 4. ... and removed again.
    std::fs::remove_file(dir.path.join("pipelines/c.toml")).unwrap();
    r.reload();
    r.wait("c stops", Duration::from_secs(30), |m| {
        statuses(m)[mark..]
            .iter()
            .any(|(c, s, why)| c == "c" && s == "stopped" && why == "removed from the config (reload)")
    });
    let after = statuses(&r.msgs)[mark..].to_vec();
    assert!(after.iter().all(|(c, _, _)| c == "c"), "only c's status changed: {after:?}");
    // c's Home Assistant entity was announced, then emptied (deleted); a's and b's stay.
    let c_entity = |t: &str| t.ends_with("/c_streaming/config");
    let mut seen: Vec<Msg> = Vec::new();
    let cleared = wait_until(Duration::from_secs(30), || {
        seen.extend(ha.rx.try_iter());
        seen.iter().any(|(t, p, _)| c_entity(t) && !p.is_empty())
            && seen.iter().any(|(t, p, _)| c_entity(t) && p.is_empty())
    });
    assert!(
        cleared,
        "c's discovery config announced then emptied: {:?}",
        seen.iter().map(|(t, p, _)| (t.clone(), p.len())).collect::<Vec<_>>()
    );
    assert!(!seen.iter().any(|(t, p, _)| p.is_empty() && !c_entity(t)), "only c's entity is removed");

    // Counters never went backwards, restarts included.
    r.pump();
    for cam in ["a", "b"] {
        let n = decoded(&r.msgs, cam);
        assert!(n.windows(2).all(|w| w[1] >= w[0]), "{cam}'s decoded count went back: {n:?}");
    }
    let out = r.d.terminate();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(
        stderr.contains("pipelines/a.toml:5: detect.fsp: unknown field `fsp`"),
        "the refused reload names file and key: {stderr}"
    );
    assert!(stderr.contains("reload applied"), "{stderr}");
    // The summary covers every camera that ran, c included.
    for cam in ["a", "b", "c"] {
        assert!(stderr.contains(&format!("camera {cam}: stopped")), "{stderr}");
    }
    drop(broker);
}

#[test]
fn a_model_that_fails_to_load_on_reload_keeps_the_running_detectors_and_a_good_one_is_swapped_in() {
    let bad_model = std::env::temp_dir().join(format!("lookout-test-bad-model-{}.onnx", std::process::id()));
    std::fs::write(&bad_model, crate::onnx::identity_model(&[1, 3, 100, 100])).unwrap();
    let global = |inference: &str| {
        format!("gateway_id = \"swap\"\n[stats]\ninterval_seconds = 1\n{}{inference}", inference_toml())
    };
    let dir = ConfigDir::new("swap", &global(""), &[("ball", "uri = \"test://ball\"\n[detect]\nfps = 5\n")]);
    let mut sock = NotifySocket::bind(&dir.path);
    let mut d = Daemon::start_with_env(&dir.path, &[("NOTIFY_SOCKET", sock.path.to_str().unwrap())]);
    d.wait_for(0, Duration::from_secs(60), |v| is_status(v, "ball", "streaming")).expect("streaming");
    assert!(sock.wait_for(Duration::from_secs(30), |g| g.iter().any(|m| m == "READY=1")), "{:?}", sock.got);
    let inferred_after = |d: &mut Daemon, from: usize, n: u64| {
        d.wait_for(from, Duration::from_secs(30), |v| {
            v["type"] == "stats" && v["cameras"]["ball"]["inferred"].as_u64().unwrap_or(0) >= n
        })
    };
    let reload = |d: &mut Daemon, sock: &mut NotifySocket| {
        let ready = NotifySocket::count(&sock.got, "READY=1");
        let _ = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
        assert!(
            sock.wait_for(Duration::from_secs(30), |g| NotifySocket::count(g, "READY=1") > ready),
            "{:?}",
            sock.got
        );
    };

    // A model that passes `lookout check` (the file exists) but is no detector.
    let (model, lib) = (bad_model.display().to_string(), ort_library().display().to_string());
    let bad = format!(
        "gateway_id = \"swap\"\n[stats]\ninterval_seconds = 1\n[inference]\nmodel = {model:?}\nort_library = {lib:?}\n"
    );
    std::fs::write(dir.path.join("lookout.toml"), &bad).unwrap();
    let mark = d.mark();
    reload(&mut d, &mut sock);
    let (i, s) = inferred_after(&mut d, mark, 0).expect("stats after the reload");
    let n = s["cameras"]["ball"]["inferred"].as_u64().unwrap();
    inferred_after(&mut d, i + 1, n + 10).expect("the running detector keeps detecting");

    // A good change: two workers.
    std::fs::write(dir.path.join("lookout.toml"), global("workers = 2\n")).unwrap();
    let mark = d.mark();
    reload(&mut d, &mut sock);
    let (i, s) = inferred_after(&mut d, mark, 0).expect("stats after the swap");
    let n = s["cameras"]["ball"]["inferred"].as_u64().unwrap();
    inferred_after(&mut d, i + 1, n + 10).expect("the new detectors detect");
    let statuses_since: Vec<Value> = d.lines.iter().filter(|v| v["type"] == "camera_status").cloned().collect();
    let out = d.terminate();
    let _ = std::fs::remove_file(&bad_model);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("this model can't be loaded; the cameras that would run it keep what they run now"),
        "{stderr}"
    );
    assert!(stderr.contains("does not look like a YOLOX detector"), "the reason is given: {stderr}");
    assert!(stderr.contains("new detectors loaded; swapping them in"), "{stderr}");
    // The camera never restarted: connecting and streaming once, then stopped at the end.
    let states: Vec<&str> = statuses_since.iter().map(|v| v["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["connecting", "streaming"], "{states:?}");
}

/// One camera's model changes on reload: only it restarts, on the new model, while the other
/// keeps its detectors and its counters; a model that fails to load leaves the camera on the
/// one it runs; a model no camera runs any more is unloaded.
#[test]
fn changing_one_cameras_model_on_reload_restarts_only_that_camera() {
    let bad_model = std::env::temp_dir().join(format!("lookout-test-bad-cam-model-{}.onnx", std::process::id()));
    std::fs::write(&bad_model, crate::onnx::identity_model(&[1, 3, 100, 100])).unwrap();
    let global = format!("gateway_id = \"models\"\n[stats]\ninterval_seconds = 1\n{}", inference_toml());
    let cam = |model: Option<&str>| match model {
        None => "uri = \"test://ball\"\n[detect]\nfps = 5\n".to_string(),
        Some(m) => format!("uri = \"test://ball\"\n[detect]\nfps = 5\nmodel = {m:?}\n"),
    };
    let dir = ConfigDir::new("cam-model", &global, &[("a", &cam(None)), ("b", &cam(None))]);
    let mut sock = NotifySocket::bind(&dir.path);
    let mut d = Daemon::start_with_env(&dir.path, &[("NOTIFY_SOCKET", sock.path.to_str().unwrap())]);
    for c in ["a", "b"] {
        d.wait_for(0, Duration::from_secs(60), |v| is_status(v, c, "streaming")).expect("streaming");
    }
    assert!(sock.wait_for(Duration::from_secs(30), |g| g.iter().any(|m| m == "READY=1")), "{:?}", sock.got);
    let reload = |d: &mut Daemon, sock: &mut NotifySocket| {
        let ready = NotifySocket::count(&sock.got, "READY=1");
        let _ = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
        assert!(
            sock.wait_for(Duration::from_secs(60), |g| NotifySocket::count(g, "READY=1") > ready),
            "{:?}",
            sock.got
        );
    };
    // A stats message, at or after `from`, in which `pred` holds for both cameras.
    let stats_where = |d: &mut Daemon, from: usize, what: &str, pred: &dyn Fn(&Value, &Value) -> bool| {
        d.wait_for(from, Duration::from_secs(60), |v| {
            v["type"] == "stats" && pred(&v["cameras"]["a"], &v["cameras"]["b"])
        })
        .unwrap_or_else(|| panic!("no stats where {what}"))
    };
    let count = |c: &Value, k: &str| c[k].as_u64().unwrap_or(0);
    let (_, s) = stats_where(&mut d, 0, "both run yolox_nano", &|a, b| {
        a["model"] == "yolox_nano" && b["model"] == "yolox_nano" && count(b, "inferred") > 0
    });
    let a_decoded = count(&s["cameras"]["a"], "decoded");

    // b moves to NanoDet.
    let nanodet = repo().join("models/nanodet_m_320.toml").display().to_string();
    std::fs::write(dir.path.join("pipelines/b.toml"), cam(Some(&nanodet))).unwrap();
    let mark = d.mark();
    reload(&mut d, &mut sock);
    let (i, s) = stats_where(&mut d, mark, "b runs nanodet", &|a, b| {
        a["model"] == "yolox_nano" && b["model"] == "nanodet_m_320"
    });
    let b_inferred = count(&s["cameras"]["b"], "inferred");
    let (_, s) = stats_where(&mut d, i + 1, "b infers on nanodet", &|_, b| count(b, "inferred") >= b_inferred + 10);
    // a kept counting through the reload: its books were never reset.
    assert!(count(&s["cameras"]["a"], "decoded") > a_decoded, "{s}");

    // b asks for a model that can't load: b keeps running NanoDet, unrestarted.
    std::fs::write(dir.path.join("pipelines/b.toml"), cam(Some(&bad_model.display().to_string()))).unwrap();
    let mark = d.mark();
    reload(&mut d, &mut sock);
    let (i, s) = stats_where(&mut d, mark, "stats after the bad reload", &|_, _| true);
    assert_eq!(s["cameras"]["b"]["model"], "nanodet_m_320", "{s}");
    let b_inferred = count(&s["cameras"]["b"], "inferred");
    stats_where(&mut d, i + 1, "b still infers on nanodet", &|_, b| {
        b["model"] == "nanodet_m_320" && count(b, "inferred") >= b_inferred + 10
    });

    // b back on the gateway's model: NanoDet is no longer used and is unloaded.
    std::fs::write(dir.path.join("pipelines/b.toml"), cam(None)).unwrap();
    let mark = d.mark();
    reload(&mut d, &mut sock);
    let (i, s) = stats_where(&mut d, mark, "b back on yolox", &|_, b| b["model"] == "yolox_nano");
    let b_inferred = count(&s["cameras"]["b"], "inferred");
    stats_where(&mut d, i + 1, "b infers on yolox", &|_, b| count(b, "inferred") >= b_inferred + 10);

    let statuses: Vec<(String, String, String)> = d
        .lines
        .iter()
        .filter(|v| v["type"] == "camera_status")
        .map(|v| {
            (
                v["camera"].as_str().unwrap().to_string(),
                v["state"].as_str().unwrap().to_string(),
                v["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let out = d.terminate();
    let _ = std::fs::remove_file(&bad_model);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // a: connecting and streaming once, stopped at the end; never restarted by b's reloads.
    let a: Vec<&str> = statuses.iter().filter(|(c, _, _)| c == "a").map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(a, ["connecting", "streaming"], "{statuses:?}");
    // b: restarted twice (to NanoDet and back), not by the failed reload.
    let b_restarts =
        statuses.iter().filter(|(c, s, r)| c == "b" && s == "stopped" && r == "config changed (reload)").count();
    assert_eq!(b_restarts, 2, "{statuses:?}");
    assert!(
        stderr.contains("this model can't be loaded; the cameras that would run it keep what they run now"),
        "{stderr}"
    );
    assert!(
        stderr.contains("camera not changed: its model failed to load; it keeps running its current config"),
        "{stderr}"
    );
    assert!(stderr.contains("does not look like a YOLOX detector"), "the reason is given: {stderr}");
    assert!(stderr.contains("no camera runs this model any more; its detectors are unloaded"), "{stderr}");
}
