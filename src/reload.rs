//! Hot reload (SIGHUP, `systemctl reload lookout`): what a new config changes, decided purely
//! from the running [`Spec`] and the new one. [`crate::pipeline`] applies the answer.
//!
//! ```text
//! SIGHUP → RELOADING=1 → re-read and validate the whole config directory
//!   invalid → every error logged with its file and key; the running config stays → READY=1
//!   valid   → [inference] differs? load the new detectors first; on failure keep the old ones
//!           → cameras: changed restart, unchanged keep running (and counting), new start,
//!             removed stop → READY=1
//! ```
//!
//! A camera is compared by its whole resolved [`CameraSpec`] (after `[detect]`/`[track]`
//! defaults from lookout.toml are applied, so editing a default restarts the cameras it
//! reaches). Gateway-level settings that live in long-lived connections (`gateway_id`,
//! `[mqtt]`, `[spool]`, `[metrics]`, `[stats]`, `[snapshots]`) are not applied live: the reload
//! names them in a warning and they take effect at the next restart.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config::{CameraSpec, Spec};

/// What a reload does to the cameras, by name, each list in config order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CameraDiff {
    /// In the new config only: started.
    pub added: Vec<String>,
    /// In the running config only: stopped.
    pub removed: Vec<String>,
    /// In both, with a different spec: restarted with the new one.
    pub changed: Vec<String>,
    /// In both, the same: left running, counters and all.
    pub unchanged: Vec<String>,
}

impl CameraDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compare cameras by name and resolved spec.
pub fn diff_cameras(running: &[CameraSpec], new: &[CameraSpec]) -> CameraDiff {
    let mut d = CameraDiff::default();
    for cam in new {
        match running.iter().find(|r| r.name == cam.name) {
            None => d.added.push(cam.name.clone()),
            Some(r) if r != cam => d.changed.push(cam.name.clone()),
            Some(_) => d.unchanged.push(cam.name.clone()),
        }
    }
    d.removed = running.iter().filter(|r| !new.iter().any(|c| c.name == r.name)).map(|r| r.name.clone()).collect();
    d
}

/// A camera a reload could not bring up to date, because the model its new config names
/// failed to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldBack {
    /// It runs on with its current config.
    KeptAsIs(String),
    /// It is new, and waits for a reload that brings a model that loads.
    NotStarted(String),
}

/// What a reload does to the cameras, once the models it needs have been loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The cameras that run after the reload, in the new config's order.
    pub wanted: Vec<CameraSpec>,
    pub diff: CameraDiff,
    pub held_back: Vec<HeldBack>,
}

/// Decide a reload: `running` cameras, the `new` config's, the models whose new detectors
/// `failed` to load, and those whose input size changed (`resized`: their cameras' sources
/// scale to it, so an unchanged camera on such a model restarts too).
pub fn plan(
    running: &[CameraSpec],
    new: &[CameraSpec],
    failed: &BTreeSet<PathBuf>,
    resized: &BTreeSet<PathBuf>,
) -> Plan {
    let mut held_back = Vec::new();
    let wanted: Vec<CameraSpec> = new
        .iter()
        .filter_map(|c| {
            if !failed.contains(&c.detect.model) {
                return Some(c.clone());
            }
            match running.iter().find(|o| o.name == c.name) {
                Some(old) => {
                    if old != c {
                        held_back.push(HeldBack::KeptAsIs(c.name.clone()));
                    }
                    Some(old.clone())
                }
                None => {
                    held_back.push(HeldBack::NotStarted(c.name.clone()));
                    None
                }
            }
        })
        .collect();
    let mut diff = diff_cameras(running, &wanted);
    let (resize, keep): (Vec<String>, Vec<String>) = diff
        .unchanged
        .drain(..)
        .partition(|n| wanted.iter().any(|c| c.name == *n && resized.contains(&c.detect.model)));
    diff.unchanged = keep;
    diff.changed.extend(resize);
    Plan { wanted, diff, held_back }
}

/// The gateway-level settings that differ and need a restart to apply, as config keys.
pub fn needs_restart(running: &Spec, new: &Spec) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if running.gateway_id != new.gateway_id {
        keys.push("gateway_id");
    }
    if running.mqtt != new.mqtt {
        keys.push("[mqtt] / [spool]");
    }
    if running.metrics_listen != new.metrics_listen {
        keys.push("metrics.listen");
    }
    if running.web != new.web {
        keys.push("[web]");
    }
    if running.stats_interval != new.stats_interval {
        keys.push("stats.interval_seconds");
    }
    if running.snapshot_dir != new.snapshot_dir || running.snapshot_retain != new.snapshot_retain {
        keys.push("[snapshots] (lookout.toml)");
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(cams: &[(&str, f64)]) -> Spec {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut spec = crate::config::load(&dir).expect("the demo config loads");
        let template = spec.cameras[0].clone();
        spec.cameras = cams
            .iter()
            .map(|(name, fps)| {
                let mut c = template.clone();
                c.name = name.to_string();
                c.detect.fps = *fps;
                c
            })
            .collect();
        spec
    }

    #[test]
    fn cameras_are_added_removed_changed_or_left_alone() {
        let old = spec_with(&[("a", 5.0), ("b", 5.0), ("c", 5.0)]);
        let new = spec_with(&[("a", 5.0), ("b", 2.0), ("d", 5.0)]);
        let d = diff_cameras(&old.cameras, &new.cameras);
        assert_eq!(d.unchanged, ["a"]);
        assert_eq!(d.changed, ["b"]);
        assert_eq!(d.added, ["d"]);
        assert_eq!(d.removed, ["c"]);
        assert!(!d.is_empty());
        assert!(diff_cameras(&old.cameras, &old.cameras).is_empty());
    }

    #[test]
    fn a_changed_zone_or_password_changes_the_camera() {
        let old = spec_with(&[("a", 5.0)]);
        let mut new = old.clone();
        new.cameras[0].objects.rules.zones[0].inertia += 1;
        assert_eq!(diff_cameras(&old.cameras, &new.cameras).changed, ["a"]);
        let mut new = old.clone();
        new.cameras[0].source.credentials =
            Some(crate::config::spec::Credentials { username: "u".into(), password: "p".into(), password_file: None });
        let mut newer = new.clone();
        if let Some(c) = newer.cameras[0].source.credentials.as_mut() {
            c.password = "q".into();
        }
        // The password is hidden from Debug output, yet a new one still restarts the camera.
        assert_eq!(diff_cameras(&new.cameras, &newer.cameras).changed, ["a"]);
    }

    #[test]
    fn a_failed_model_holds_its_cameras_back_and_a_resized_one_restarts_them() {
        let old = spec_with(&[("a", 5.0), ("b", 5.0), ("c", 5.0)]);
        let mut new = spec_with(&[("a", 5.0), ("b", 2.0), ("c", 5.0), ("d", 5.0)]);
        let (m1, m2) = (PathBuf::from("/m/one.onnx"), PathBuf::from("/m/two.onnx"));
        for c in old.cameras.iter().chain(new.cameras.iter()).collect::<Vec<_>>() {
            assert_ne!(c.detect.model, m1);
        }
        // b and d move to a model that fails: b keeps what it runs, d waits.
        for c in new.cameras.iter_mut().filter(|c| c.name == "b" || c.name == "d") {
            c.detect.model = m1.clone();
        }
        let failed = BTreeSet::from([m1.clone()]);
        let p = plan(&old.cameras, &new.cameras, &failed, &BTreeSet::new());
        assert_eq!(p.held_back, [HeldBack::KeptAsIs("b".into()), HeldBack::NotStarted("d".into())]);
        assert_eq!(p.wanted.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(p.wanted[1], old.cameras[1], "b runs on unchanged");
        assert!(p.diff.is_empty(), "{:?}", p.diff);

        // c's model (unchanged in its config) now takes another input size: c restarts, a too.
        let mut same = old.clone();
        same.cameras[2].detect.model = m2.clone();
        let mut running = old.cameras.clone();
        running[2].detect.model = m2.clone();
        let p = plan(&running, &same.cameras, &BTreeSet::new(), &BTreeSet::from([m2]));
        assert_eq!(p.diff.changed, ["c"]);
        assert_eq!(p.diff.unchanged, ["a", "b"]);
        assert!(p.held_back.is_empty());
    }

    #[test]
    fn gateway_settings_that_need_a_restart_are_named() {
        let old = spec_with(&[("a", 5.0)]);
        assert!(needs_restart(&old, &old.clone()).is_empty());
        let mut new = old.clone();
        new.gateway_id = "other".into();
        new.stats_interval = std::time::Duration::from_secs(99);
        new.cameras.clear();
        assert_eq!(needs_restart(&old, &new), ["gateway_id", "stats.interval_seconds"]);
    }
}
