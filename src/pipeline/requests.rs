//! Profile and camera-file requests from MQTT ([`crate::remote`]), and every reload, applied
//! under the profile in force: each loads the config directory as SIGHUP does, so a request is
//! checked exactly as a reload, and restarts only the cameras whose resolved settings changed.

use std::path::Path;

use super::running::Running;
use crate::config::profiles::DEFAULT_PROFILE;
use crate::config::replace::{self, Problem};
use crate::config::{ConfigErrors, PIPELINES_DIR, Spec};
use crate::publish::{Outgoing, Topic};
use crate::remote::{self, Changes, ConfigOutcome, Request};

/// The profile the last run left in force, `default` when there is none.
pub(super) fn saved_profile(file: &Path) -> String {
    std::fs::read_to_string(file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_PROFILE.to_string())
}

/// The config to start with: `spec` under the saved profile, or its own settings when that
/// profile is gone (said in the log).
pub(super) fn starting_spec(spec: &Spec) -> (Spec, String) {
    let saved = saved_profile(&spec.profile_file);
    match spec.with_profile(&saved) {
        Ok(s) => {
            if saved != DEFAULT_PROFILE {
                tracing::info!(profile = %saved, "starting with the profile the last run left in force");
            }
            (s, saved)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the saved profile is gone; starting with each camera's own settings");
            (spec.clone(), DEFAULT_PROFILE.to_string())
        }
    }
}

fn problems(errors: &ConfigErrors) -> Vec<Problem> {
    errors.0.iter().map(Problem::from).collect()
}

impl Running {
    /// A config loaded from disk (SIGHUP, the console, a request), applied under the profile
    /// in force; a profile the new config no longer has gives way to `default`.
    pub(super) fn reload(&mut self, loaded: Spec) -> Changes {
        match loaded.with_profile(&self.profile) {
            Ok(resolved) => self.apply(resolved),
            Err(e) => {
                tracing::warn!(error = %e, "reload: the profile in force is gone from the config; every camera runs its own settings");
                self.set_active(DEFAULT_PROFILE);
                let changes = self.apply(loaded);
                // The retained state still names the profile that is gone.
                self.publish_profile(None, &Ok(changes.clone()));
                changes
            }
        }
    }

    /// A message on one of the requests' topics: carried out if it is a request, and answered.
    pub(super) fn incoming(&mut self, msg: crate::publish::mqtt::Incoming) {
        let prefix = self.spec.mqtt.as_ref().map(|m| m.topic_prefix.clone()).unwrap_or_default();
        if let Some(request) = remote::parse(&prefix, &msg.topic, &msg.payload, msg.retained) {
            self.request(request);
        }
    }

    /// Carry out a request from MQTT, and answer it.
    fn request(&mut self, request: Request) {
        match request {
            Request::Profile { name } => {
                let outcome = self.switch_profile(&name);
                if let Err(p) = &outcome {
                    let reasons: Vec<String> = p.iter().map(|p| p.message.clone()).collect();
                    tracing::warn!(profile = %name, reasons = %reasons.join("; "), "profile refused; nothing changed");
                }
                self.publish_profile(Some(&name), &outcome);
            }
            Request::Config { camera, payload, sender, retained } => {
                let outcome = self.replace_file(&camera, &payload, sender.as_deref(), retained);
                let payload = remote::config_result(
                    &self.spec.gateway_id,
                    &camera,
                    sender.as_deref(),
                    &outcome,
                    std::time::SystemTime::now(),
                );
                let _ = self.events.send(Outgoing::new(Topic::ConfigResult(camera), payload));
            }
        }
    }

    fn switch_profile(&mut self, name: &str) -> Result<Changes, Vec<Problem>> {
        if name == self.profile {
            return Ok(Changes::default());
        }
        let loaded = crate::config::load(&self.spec.config_dir).map_err(|e| problems(&e))?;
        let resolved = loaded.with_profile(name).map_err(|e| vec![remote::problem(e.to_string())])?;
        let from = std::mem::replace(&mut self.profile, name.to_string());
        let changes = self.apply(resolved);
        self.set_active(name);
        tracing::info!(from = %from, to = %name, restarted = %changes.restarted.join(", "), "profile applied");
        Ok(changes)
    }

    /// Make `name` the profile in force, kept for the next start.
    fn set_active(&mut self, name: &str) {
        self.profile = name.to_string();
        let file = &self.spec.profile_file;
        let saved = file.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
            let tmp = file.with_extension("tmp");
            std::fs::write(&tmp, format!("{name}\n"))?;
            std::fs::rename(&tmp, file)
        });
        if let Err(e) = saved {
            tracing::warn!(file = %file.display(), error = %e, "the profile could not be saved: a restart will start with the one saved before");
        }
    }

    /// Home Assistant's profile select, when the profiles there are changed from `had`: sent
    /// with the new options, or emptied (which deletes the entity) when no camera defines one.
    pub(super) fn announce_profiles(&self, had: &[String]) {
        if had == self.spec.profile_names().as_slice() {
            return;
        }
        let Some(m) = &self.spec.mqtt else { return };
        let Some(discovery_prefix) = &m.discovery_prefix else { return };
        let (topic, payload) = crate::objects::discovery::profile_select(
            &self.spec.gateway_id,
            &self.spec.profile_names(),
            &m.topic_prefix,
            discovery_prefix,
        );
        let payload = if self.spec.profiles.is_empty() { Vec::new() } else { payload };
        let _ = self.events.send(Outgoing::new(Topic::Discovery(topic), payload));
    }

    /// `<prefix>/profile/state`, retained; nothing without `[mqtt]`.
    pub(super) fn publish_profile(&self, requested: Option<&str>, outcome: &Result<Changes, Vec<Problem>>) {
        // An MQTT topic: without [mqtt] there is no one to tell, and no request comes.
        if self.spec.mqtt.is_none() {
            return;
        }
        let payload = remote::profile_state(
            &self.spec.gateway_id,
            &self.profile,
            &self.spec.profile_names(),
            requested,
            outcome,
            std::time::SystemTime::now(),
        );
        let _ = self.events.send(Outgoing::new(Topic::ProfileState, payload));
    }

    fn replace_file(&mut self, camera: &str, payload: &[u8], sender: Option<&str>, retained: bool) -> ConfigOutcome {
        let who = sender.unwrap_or("unnamed");
        let refused = |problems: Vec<Problem>| {
            let reasons: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
            tracing::warn!(camera, sender = who, bytes = payload.len(), reasons = %reasons.join("; "), "camera file over MQTT refused; the file is untouched");
            ConfigOutcome::Refused(problems)
        };
        let text = match remote::config_text(payload, retained) {
            Ok(t) => t,
            Err(m) => return refused(vec![remote::problem(m)]),
        };
        let dir = self.spec.config_dir.clone();
        if !crate::config::spec::valid_name(camera) || !dir.join(PIPELINES_DIR).join(format!("{camera}.toml")).is_file()
        {
            return refused(vec![remote::problem(format!(
                "this gateway has no camera `{camera}` ({PIPELINES_DIR}/{camera}.toml); remote config replaces an existing camera's file"
            ))]);
        }
        let replaced = match replace::replace_camera_file(&dir, camera, &text) {
            Ok(r) => r,
            Err(replace::Refused::Problems(p)) => return refused(p),
            Err(replace::Refused::Write(e)) => return refused(vec![remote::problem(e)]),
        };
        let backup = replaced.backup.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        tracing::info!(camera, sender = who, bytes = payload.len(), file = %replaced.file.display(), backup = %backup, "camera file replaced over MQTT; applying it as a reload");
        match replaced.loaded {
            Ok(spec) => {
                crate::notify::reloading();
                let changes = self.reload(spec);
                ConfigOutcome::Saved { backup, applied: true, changes, note: None }
            }
            Err(errors) => {
                tracing::error!(%errors, "the saved camera file is good, but the config directory has errors elsewhere; not applied");
                let note = format!("saved, not applied: the config directory has errors elsewhere: {errors}");
                ConfigOutcome::Saved { backup, applied: false, changes: Changes::default(), note: Some(note) }
            }
        }
    }
}
