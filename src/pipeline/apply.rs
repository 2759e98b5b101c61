//! Applying a reload to what runs: load the models that changed, then restart, start and stop
//! cameras as [`crate::reload`] decides.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::PoisonError;

use super::detectors::{detector_keys, load_detectors};
use super::running::Running;
use super::{clear_stale_discovery, send_discovery};
use crate::config::{CameraSpec, Spec};
use crate::reload;
use crate::remote::Changes;
use crate::source;

impl Running {
    /// Apply a validated new config (its profile already applied): see [`crate::reload`].
    pub(super) fn apply(&mut self, new: Spec) -> Changes {
        let restart_keys = reload::needs_restart(&self.spec, &new);
        if !restart_keys.is_empty() {
            tracing::warn!(keys = %restart_keys.join(", "), "reload: these settings changed and apply only at the next start: `systemctl restart lookout`");
        }
        // Models first, so that a model that fails to load changes nothing else about it.
        let mut failed: BTreeSet<PathBuf> = BTreeSet::new();
        let mut resized: BTreeSet<PathBuf> = BTreeSet::new();
        for (model, key) in detector_keys(&new) {
            if self.pools.get(&model).is_some_and(|p| p.key == key) {
                continue;
            }
            let detectors = match load_detectors(&key, true) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(model = %model.display(), error = %e, "reload: this model can't be loaded; the cameras that would run it keep what they run now");
                    failed.insert(model);
                    continue;
                }
            };
            let size = detectors.first().map(|d| d.geometry());
            let provider = detectors.first().map(|d| d.provider());
            let variant = detectors.first().and_then(|d| d.variant_check().cloned());
            tracing::info!(model = %model.display(), workers = detectors.len(), "reload: new detectors loaded; swapping them in");
            let started = if self.pools.contains_key(&model) {
                self.swap_workers(&model, detectors, new.inference.max_batch_wait)
            } else {
                self.start_pool(model.clone(), key.clone(), detectors, new.inference.max_batch_wait)
            };
            match started {
                Err(e) => {
                    tracing::error!(model = %model.display(), error = %e, "reload: could not start the new detect workers");
                    failed.insert(model);
                }
                Ok(()) => {
                    if let Some(pool) = self.pools.get_mut(&model) {
                        pool.key = key;
                        pool.variant = variant;
                        if let Some(p) = provider {
                            pool.provider = p;
                        }
                        // Sources scale frames to the model's input: a new size restarts its cameras.
                        if let Some(size) = size
                            && size != pool.geometry
                        {
                            pool.geometry = size;
                            resized.insert(model);
                        }
                    }
                }
            }
        }
        if failed.is_empty() {
            self.spec.inference = new.inference.clone();
        }
        // A camera whose model failed keeps running as it is; a new one waits for a reload
        // that brings a model that loads.
        let reload::Plan { wanted, diff, held_back } =
            reload::plan(&self.spec.cameras, &new.cameras, &failed, &resized);
        for held in &held_back {
            match held {
                reload::HeldBack::KeptAsIs(name) => {
                    tracing::error!(camera = %name, "reload: camera not changed: its model failed to load; it keeps running its current config")
                }
                reload::HeldBack::NotStarted(name) => {
                    tracing::error!(camera = %name, "reload: camera not started: its model failed to load")
                }
            }
        }
        self.spec.shutdown_timeout = new.shutdown_timeout;
        let had_profiles = self.spec.profile_names();
        self.spec.profiles = new.profiles.clone();
        let mut changes = Changes {
            held_back: held_back
                .iter()
                .map(|h| match h {
                    reload::HeldBack::KeptAsIs(n) | reload::HeldBack::NotStarted(n) => n.clone(),
                })
                .collect(),
            ..Changes::default()
        };
        if diff.is_empty() {
            tracing::info!(cameras = diff.unchanged.len(), "reload: no camera changed");
            self.announce_profiles(&had_profiles);
            return changes;
        }
        self.stop_cameras(&diff.removed, "removed from the config (reload)");
        self.stop_cameras(&diff.changed, "config changed (reload)");
        {
            let mut sw = self.switches.lock().unwrap_or_else(PoisonError::into_inner);
            for name in &diff.removed {
                sw.remove(name);
                self.toggles.forget_camera(name);
            }
        }
        let starting: Vec<CameraSpec> = new
            .cameras
            .iter()
            .filter(|c| diff.changed.contains(&c.name) || diff.added.contains(&c.name))
            .cloned()
            .collect();
        if let Err(e) = source::apply_decoder_preferences(starting.iter().map(CameraSpec::as_source)) {
            tracing::error!(error = %e, "reload: decoder preferences not applied");
        }
        for cam in starting {
            let name = cam.name.clone();
            if let Err(e) = self.start_camera(cam) {
                tracing::error!(camera = %name, error = %e, "reload: could not start the camera");
            }
        }
        let mut now = self.spec.clone();
        now.cameras = wanted.clone();
        clear_stale_discovery(&self.spec, &now, &self.events);
        // Config order, as at start.
        self.cameras.sort_by_key(|c| wanted.iter().position(|n| n.name == c.spec.name).unwrap_or(usize::MAX));
        self.spec.cameras = wanted;
        self.retire_idle_pools();
        // A swapped pool may run on another provider now: the stats say so for its cameras.
        for cam in &self.cameras {
            if let (Some(pool), Some((_, c, _))) =
                (self.pools.get(&cam.spec.detect.model), self.books.iter().find(|(n, _, _)| *n == cam.spec.name))
            {
                c.set_model(&pool.name, pool.provider, pool.variant.clone());
            }
        }
        self.publish_camera_set();
        let mut announce = self.spec.clone();
        announce.cameras.retain(|c| diff.added.contains(&c.name) || diff.changed.contains(&c.name));
        send_discovery(&announce, &self.events);
        self.announce_profiles(&had_profiles);
        tracing::info!(
            restarted = %diff.changed.join(", "),
            started = %diff.added.join(", "),
            stopped = %diff.removed.join(", "),
            unchanged = diff.unchanged.len(),
            "reload applied"
        );
        changes.restarted = diff.changed;
        changes.started = diff.added;
        changes.stopped = diff.removed;
        changes
    }
}
