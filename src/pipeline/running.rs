//! What runs: each camera's threads, the detect worker pools, and starting and stopping them
//! one camera at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::detectors::DetectorKey;
use super::{PipelineError, TestHooks};
use crate::batch::BatchCounts;
use crate::config::{CameraSpec, Spec};
use crate::detect::Detector;
use crate::detect::letterbox::Geometry;
use crate::detect::worker::{Batching, WorkerCamera, WorkerCtl, detect_loop};
use crate::link::{self, LinkSender};
use crate::metrics::Metrics;
use crate::objects::stage::objects_loop;
use crate::objects::{CameraObjects, DetectedFrame};
use crate::publish::mqtt::DetectSwitches;
use crate::publish::report::Registry;
use crate::publish::{Outgoing, Topic, payload};
use crate::shutdown::Shutdown;
use crate::source::{self, Frame, Outcome, StateChange};
use crate::stats::CameraCounters;
use crate::supervisor::Health;
use crate::toggles::{Kind, Toggles};

/// One camera's threads, and how to stop them.
pub(super) struct CameraRun {
    pub(super) spec: CameraSpec,
    /// This camera's own stop: a reload stops one camera, a shutdown all of them.
    pub(super) stop: Shutdown,
    /// Why it was stopped, for its last status message.
    pub(super) stop_reason: Arc<Mutex<&'static str>>,
    pub(super) source: Option<std::thread::JoinHandle<Outcome>>,
    pub(super) objects: Option<std::thread::JoinHandle<()>>,
    pub(super) outcome: Option<Outcome>,
    /// Its workers in the pool of its model (`spec.detect.model`): `spec.detect.workers` of them.
    pub(super) workers: Vec<usize>,
}

impl CameraRun {
    pub(super) fn stop(&self, reason: &'static str) {
        *self.stop_reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
        self.stop.trigger();
    }

    pub(super) fn join_source(&mut self, deadline: Option<Instant>) {
        if let Some(h) = self.source.take() {
            match join_until(h, deadline) {
                Joined::Done(o) => self.outcome = Some(o),
                Joined::Panicked => self.outcome = Some(Outcome::Failed("camera thread panicked".into())),
                Joined::Late(h) => self.source = Some(h),
            }
        }
    }

    pub(super) fn join_objects(&mut self, deadline: Option<Instant>) {
        if let Some(h) = self.objects.take()
            && let Joined::Late(h) = join_until(h, deadline)
        {
            self.objects = Some(h);
        }
    }
}

pub(super) enum Joined<T> {
    Done(T),
    Panicked,
    /// Still running at the deadline.
    Late(std::thread::JoinHandle<T>),
}

/// Join `h`, waiting no later than `deadline` (forever without one).
pub(super) fn join_until<T>(h: std::thread::JoinHandle<T>, deadline: Option<Instant>) -> Joined<T> {
    if let Some(d) = deadline {
        while !h.is_finished() && Instant::now() < d {
            std::thread::park_timeout(Duration::from_millis(10));
        }
        if !h.is_finished() {
            return Joined::Late(h);
        }
    }
    match h.join() {
        Ok(v) => Joined::Done(v),
        Err(_) => Joined::Panicked,
    }
}

/// A detect worker thread and its control link.
pub(super) struct WorkerRun {
    pub(super) ctl: crossbeam_channel::Sender<WorkerCtl>,
    pub(super) handle: std::thread::JoinHandle<()>,
}

/// The detect workers of one model, and what they were loaded from.
pub(super) struct Pool {
    pub(super) key: DetectorKey,
    /// The model's input size: its cameras' sources scale frames to it.
    pub(super) geometry: Geometry,
    /// The model's name (its manifest's file stem) and the provider its workers run on, for the stats.
    pub(super) name: String,
    pub(super) provider: &'static str,
    /// How the model's variant compared with its fp32 source at load, if it is one.
    pub(super) variant: Option<crate::stats::VariantCheck>,
    pub(super) workers: Vec<WorkerRun>,
}

/// Everything that runs, and what it was started from.
pub(super) struct Running {
    /// What runs now: the start-up spec, with each applied reload's cameras and inference.
    pub(super) spec: Spec,
    pub(super) cameras: Vec<CameraRun>,
    /// Every camera that ran, in order of first start, with its counters (kept across
    /// restarts) and the outcome of a removed camera.
    pub(super) books: Vec<(String, Arc<CameraCounters>, Option<Outcome>)>,
    /// One pool of workers per model in use, by model path.
    pub(super) pools: BTreeMap<PathBuf, Pool>,
    pub(super) next_worker: usize,
    pub(super) next_instance: usize,
    /// Inference runs per batch size, all workers together (stats and /metrics).
    pub(super) batches: Arc<BatchCounts>,
    pub(super) hooks: TestHooks,
    pub(super) events: LinkSender<Outgoing>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Health,
    pub(super) switches: DetectSwitches,
    /// Zone and line switches (`toggles`), kept across reloads and restarts.
    pub(super) toggles: Toggles,
    pub(super) registry: Registry,
    /// The profile in force (`crate::remote`), `default` for the files' own settings.
    pub(super) profile: String,
}

/// How long a reload waits for a stopping camera's threads before leaving them behind.
pub(super) const RELOAD_JOIN_TIMEOUT: Duration = Duration::from_secs(15);

impl Running {
    pub(super) fn start_workers(
        &mut self,
        detectors: Vec<Detector>,
        max_wait: Duration,
    ) -> Result<Vec<WorkerRun>, PipelineError> {
        let mut workers = Vec::new();
        for detector in detectors {
            let n = self.next_worker;
            self.next_worker += 1;
            let (ctl, ctl_rx) = crossbeam_channel::unbounded::<WorkerCtl>();
            let (m, beat, delay) =
                (self.metrics.clone(), self.health.heartbeat(&format!("detect-{n}")), self.hooks.extra_inference_delay);
            let batching = Batching { max_wait, runs: self.batches.clone() };
            let handle =
                spawn(&format!("detect-{n}"), move || detect_loop(detector, ctl_rx, &m, &batching, beat, delay))?;
            workers.push(WorkerRun { ctl, handle });
        }
        Ok(workers)
    }

    /// Start the workers of a model that has none running yet.
    pub(super) fn start_pool(
        &mut self,
        model: PathBuf,
        key: DetectorKey,
        detectors: Vec<Detector>,
        max_wait: Duration,
    ) -> Result<(), PipelineError> {
        let geometry = detectors.first().map(|d| d.geometry()).unwrap_or(Geometry::square(416));
        let name = detectors.first().map(|d| d.model().name.clone()).unwrap_or_else(|| model_stem(&model));
        let provider = detectors.first().map(|d| d.provider()).unwrap_or("cpu");
        let variant = detectors.first().and_then(|d| d.variant_check().cloned());
        let workers = self.start_workers(detectors, max_wait)?;
        self.pools.insert(model, Pool { key, geometry, name, provider, variant, workers });
        Ok(())
    }

    /// The `k` workers of `model`'s pool with the fewest cameras (all of them if it has fewer).
    pub(super) fn least_loaded_workers(&self, model: &Path, k: usize) -> Vec<usize> {
        let n = self.pools.get(model).map(|p| p.workers.len()).unwrap_or(0);
        let load = |w: usize| {
            self.cameras
                .iter()
                .filter(|c| c.source.is_some() && c.spec.detect.model == model && c.workers.contains(&w))
                .count()
        };
        let mut all: Vec<usize> = (0..n).collect();
        // Stable: the lowest-numbered of equally loaded workers first.
        all.sort_by_key(|&w| load(w));
        all.truncate(k.max(1));
        all
    }

    /// Hand `cam` to each of `workers` of `model`'s pool.
    fn attach(&self, model: &Path, workers: &[usize], cam: WorkerCamera) {
        for &w in workers {
            if let Some(run) = self.pools.get(model).and_then(|p| p.workers.get(w))
                && run.ctl.send(WorkerCtl::Attach(cam.clone())).is_err()
            {
                tracing::error!(camera = %cam.name, worker = w, "detect worker gone; the camera's frames will be dropped (link_full)");
            }
        }
    }

    pub(super) fn counters_for(&mut self, name: &str) -> Arc<CameraCounters> {
        if let Some((_, c, outcome)) = self.books.iter_mut().find(|(n, _, _)| n == name) {
            *outcome = None;
            return c.clone();
        }
        let c = Arc::new(CameraCounters::default());
        self.books.push((name.to_string(), c.clone(), None));
        c
    }

    pub(super) fn start_camera(&mut self, cam: CameraSpec) -> Result<(), PipelineError> {
        let counters = self.counters_for(&cam.name);
        let on = self
            .switches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(cam.name.clone())
            .or_insert_with(|| Arc::new(AtomicBool::new(true)))
            .clone();
        let instance = self.next_instance;
        self.next_instance += 1;
        // Rules were validated with the config; building them again can't fail, but say so if it does.
        let stage = CameraObjects::new(&self.spec.gateway_id, &cam.name, &cam.objects)
            .map_err(|e| PipelineError::Rules(cam.name.clone(), Box::new(e)))?;
        let (tx, rx) = link::bounded::<Frame>(
            cam.links.frames.capacity,
            cam.links.frames.when_full,
            counters.dropped_link_full.clone(),
        );
        let (dtx, drx) = link::bounded::<DetectedFrame>(
            cam.links.detections.capacity,
            cam.links.detections.when_full,
            Default::default(),
        );

        let name = format!("objects-{}", cam.name);
        // This camera's switches (zones, lines, masks, motion, snapshots): kept for those it still has.
        let mut switches = self.toggles.register_camera(&cam.name, &cam.switches());
        // Motion gating is the source's; the rest are the objects stage's.
        let motion_switch = switches.iter().find(|(k, _, _)| *k == Kind::Motion).map(|(_, _, s)| s.clone());
        switches.retain(|(k, _, _)| *k != Kind::Motion);
        let (ev, min_score, beat, freeze, ctr) = (
            self.events.clone(),
            cam.detect.min_score,
            self.health.heartbeat(&name),
            freeze_hook(&name),
            counters.clone(),
        );
        let objects = spawn(&name, move || objects_loop(stage, drx, &ev, min_score, &ctr, beat, freeze, switches))?;

        let model = cam.detect.model.clone();
        let Some((geometry, model_name, provider, variant)) =
            self.pools.get(&model).map(|p| (p.geometry, p.name.clone(), p.provider, p.variant.clone()))
        else {
            return Err(PipelineError::NoDetector(cam.name.clone(), model.display().to_string()));
        };
        counters.set_model(&model_name, provider, variant);
        let workers = self.least_loaded_workers(&model, cam.detect.workers);
        let attach = WorkerCamera {
            name: cam.name.clone(),
            rx,
            to_objects: dtx,
            counters: counters.clone(),
            on,
            min_score: cam.detect.min_score,
            snapshots: cam.objects.snapshots.enabled,
            tickets: Arc::new(Mutex::new(0)),
        };
        self.attach(&model, &workers, attach);

        let stop = Shutdown::new();
        let stop_reason = Arc::new(Mutex::new("shutdown"));
        let (c, sd, gw, m, hl, ev, reason, geometry, spec) = (
            counters,
            stop.clone(),
            self.spec.gateway_id.clone(),
            self.metrics.clone(),
            self.health.clone(),
            self.events.clone(),
            stop_reason.clone(),
            geometry,
            cam.clone(),
        );
        let source = spawn(&format!("src-{}", cam.name), move || {
            tracing::info!(camera = %spec.name, uri = %spec.source.uri_redacted, fps = spec.detect.fps, "camera starting");
            let camera = source::Camera { motion_switch: motion_switch.as_ref(), ..spec.as_source() };
            source::run_camera(instance, &camera, geometry, tx, c, &sd, |change| {
                let (why, decoder) = state_detail(&change);
                m.cameras().set_detail(&spec.name, state_name(&change), why, decoder);
                hl.camera_state(&spec.name, &change);
                let why = *reason.lock().unwrap_or_else(PoisonError::into_inner);
                report_state(&gw, &spec, &ev, change, why)
            })
        })?;
        self.cameras.push(CameraRun {
            spec: cam,
            stop,
            stop_reason,
            source: Some(source),
            objects: Some(objects),
            outcome: None,
            workers,
        });
        Ok(())
    }

    /// Stop the named cameras and wait for their threads (a bounded wait: a stuck stage is
    /// left behind rather than holding up the reload).
    pub(super) fn stop_cameras(&mut self, names: &[String], reason: &'static str) {
        for cam in self.cameras.iter().filter(|c| names.contains(&c.spec.name)) {
            cam.stop(reason);
        }
        let deadline = Some(Instant::now() + RELOAD_JOIN_TIMEOUT);
        let mut kept = Vec::new();
        for mut cam in std::mem::take(&mut self.cameras) {
            if !names.contains(&cam.spec.name) {
                kept.push(cam);
                continue;
            }
            cam.join_source(deadline);
            cam.join_objects(deadline);
            if cam.source.is_some() || cam.objects.is_some() {
                tracing::error!(camera = %cam.spec.name, "camera threads did not stop within {} s; left behind", RELOAD_JOIN_TIMEOUT.as_secs());
            }
            if let Some((_, _, outcome)) = self.books.iter_mut().find(|(n, _, _)| *n == cam.spec.name) {
                *outcome = cam.outcome.clone();
            }
        }
        self.cameras = kept;
    }

    /// Report each camera whose file is invalid (`Spec::broken`) as failed, with its errors,
    /// wherever camera states are seen: the status topic, the log, /metrics, /healthz and
    /// systemd's STATUS=. A reload that fixes the file starts it like a new camera.
    pub(super) fn report_broken(&self) {
        for b in &self.spec.broken {
            let reason = b.reason();
            tracing::error!(camera = %b.name, reason = %reason, "camera not started: its file has errors");
            let change = StateChange::Finished(Outcome::Failed(reason.clone()));
            self.metrics.cameras().set_detail(&b.name, state_name(&change), Some(reason.clone()), None);
            self.health.camera_state(&b.name, &change);
            let payload = payload::camera_status(
                &self.spec.gateway_id,
                &b.name,
                "failed",
                Some(&reason),
                None,
                None,
                "",
                SystemTime::now(),
            );
            let _ = self.events.send(Outgoing::new(Topic::CameraStatus(b.name.clone()), payload));
        }
    }

    /// Tell the stats topic, /metrics, /healthz and the supervisor which cameras there are.
    /// Those that could not start (`Spec::broken`) count for /metrics, /healthz and STATUS=,
    /// where their state shows; the stats topic has no books of theirs to report.
    pub(super) fn publish_camera_set(&self) {
        let names: Vec<String> = self.cameras.iter().map(|c| c.spec.name.clone()).collect();
        let counters: Vec<Arc<CameraCounters>> = names
            .iter()
            .map(|n| self.books.iter().find(|(b, _, _)| b == n).map(|(_, c, _)| c.clone()).unwrap_or_default())
            .collect();
        *self.registry.lock().unwrap_or_else(PoisonError::into_inner) =
            names.iter().cloned().zip(counters.iter().cloned()).collect();
        let (mut all, mut all_counters) = (names, counters);
        for b in &self.spec.broken {
            all.push(b.name.clone());
            all_counters.push(Arc::default());
        }
        self.metrics.cameras().set_cameras(&all, &all_counters);
        self.health.started(&all, &all_counters);
    }

    /// Start workers on `detectors` for `model`, then move every camera over from its old
    /// workers: each old worker finishes the frame in hand, hands back its cameras (their frame
    /// links keep what was queued, so nothing is dropped) and exits. Other models' workers are
    /// not touched.
    pub(super) fn swap_workers(
        &mut self,
        model: &Path,
        detectors: Vec<Detector>,
        max_wait: Duration,
    ) -> Result<(), PipelineError> {
        let fresh = self.start_workers(detectors, max_wait)?;
        let Some(pool) = self.pools.get_mut(model) else {
            // Nothing to swap with: the new workers exit when their control links close.
            return Ok(());
        };
        let old = std::mem::replace(&mut pool.workers, fresh);
        let mut handed = retire(old);
        // A camera served by several workers comes back once from each: one copy is enough.
        handed.sort_by(|a, b| a.name.cmp(&b.name));
        handed.dedup_by(|a, b| a.name == b.name);
        // Their old worker numbers mean nothing in the new pool: unassigned until placed.
        for run in self.cameras.iter_mut().filter(|c| handed.iter().any(|h| h.name == c.spec.name)) {
            run.workers.clear();
        }
        for cam in handed {
            let k = self.cameras.iter().find(|c| c.spec.name == cam.name).map_or(1, |c| c.spec.detect.workers);
            let workers = self.least_loaded_workers(model, k);
            let name = cam.name.clone();
            self.attach(model, &workers, cam);
            if let Some(run) = self.cameras.iter_mut().find(|c| c.spec.name == name) {
                run.workers = workers;
            }
        }
        Ok(())
    }

    /// Stop the workers of models no running camera uses any more.
    pub(super) fn retire_idle_pools(&mut self) {
        let idle: Vec<PathBuf> =
            self.pools.keys().filter(|m| !self.cameras.iter().any(|c| c.spec.detect.model == **m)).cloned().collect();
        for model in idle {
            if let Some(pool) = self.pools.remove(&model) {
                tracing::info!(model = %pool.name, "reload: no camera runs this model any more; its detectors are unloaded");
                retire(pool.workers);
            }
        }
    }
}

/// Retire `workers`: each hands back its cameras and exits (bounded waits).
pub(super) fn retire(workers: Vec<WorkerRun>) -> Vec<WorkerCamera> {
    let mut handed = Vec::new();
    for w in workers {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if w.ctl.send(WorkerCtl::Retire(tx)).is_ok()
            && let Ok(cams) = rx.recv_timeout(RELOAD_JOIN_TIMEOUT)
        {
            handed.extend(cams);
        }
        drop(w.ctl);
        join_until(w.handle, Some(Instant::now() + RELOAD_JOIN_TIMEOUT));
    }
    handed
}

/// A model's name before it is loaded: its file stem.
fn model_stem(model: &Path) -> String {
    model.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default()
}

/// The freeze test hook (`fault-injection` feature, on in test builds only):
/// `LOOKOUT_TEST_FREEZE=<thread>:<path>` freezes that stage thread once `<path>` exists, so a
/// test can watch the supervisor withhold the watchdog.
#[cfg(feature = "fault-injection")]
fn freeze_hook(thread: &str) -> Option<std::path::PathBuf> {
    let v = std::env::var("LOOKOUT_TEST_FREEZE").ok()?;
    let (name, path) = v.split_once(':')?;
    (name == thread).then(|| std::path::PathBuf::from(path))
}

#[cfg(not(feature = "fault-injection"))]
fn freeze_hook(_thread: &str) -> Option<std::path::PathBuf> {
    None
}

pub(super) fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, PipelineError> {
    std::thread::Builder::new().name(name.to_string()).spawn(f).map_err(|e| PipelineError::Thread(name.to_string(), e))
}

/// The state a change leaves the camera in, as /metrics and /healthz name it.
pub(super) fn state_name(change: &StateChange) -> &'static str {
    match change {
        StateChange::Connecting => "connecting",
        StateChange::Streaming { .. } | StateChange::ClockSkew { .. } => "streaming",
        StateChange::Reconnecting { .. } => "reconnecting",
        StateChange::Finished(Outcome::Ended | Outcome::Truncated(_)) => "ended",
        StateChange::Finished(Outcome::Stopped) => "stopped",
        StateChange::Finished(Outcome::Failed(_)) => "failed",
    }
}

/// Why a change leaves the camera where it is, and the decoder it streams on, for the console.
fn state_detail(change: &StateChange) -> (Option<String>, Option<String>) {
    match change {
        StateChange::Streaming { decoder } => (None, decoder.clone()),
        StateChange::Reconnecting { reason, .. } => (Some(reason.clone()), None),
        StateChange::Finished(Outcome::Failed(r) | Outcome::Truncated(r)) => (Some(r.clone()), None),
        StateChange::Finished(Outcome::Ended) => (Some("end of stream".into()), None),
        _ => (None, None),
    }
}

/// `stopped_because` is the reason a stopped camera gives: `shutdown`, or a reload's.
pub(super) fn report_state(
    gateway_id: &str,
    cam: &CameraSpec,
    events: &LinkSender<Outgoing>,
    change: StateChange,
    stopped_because: &str,
) {
    let now = SystemTime::now();
    let skew_text;
    let (state, reason, decoder, retry_in) = match &change {
        StateChange::Connecting => ("connecting", None, None, None),
        StateChange::Streaming { decoder } => ("streaming", None, decoder.as_deref(), None),
        StateChange::Reconnecting { reason, retry_in } => {
            ("reconnecting", Some(reason.as_str()), None, Some(retry_in.as_secs_f64()))
        }
        StateChange::ClockSkew { skew_seconds } => {
            skew_text = format!(
                "warning: the camera's clock is {:.1} s {} the gateway's (max_clock_skew_seconds {:.0}); check NTP on the camera",
                skew_seconds.abs(),
                if *skew_seconds > 0.0 { "ahead of" } else { "behind" },
                cam.source.max_clock_skew.as_secs_f64()
            );
            ("streaming", Some(skew_text.as_str()), None, None)
        }
        StateChange::Finished(Outcome::Ended) => ("ended", Some("end of stream"), None, None),
        StateChange::Finished(Outcome::Truncated(r)) => ("ended", Some(r.as_str()), None, None),
        StateChange::Finished(Outcome::Stopped) => ("stopped", Some(stopped_because), None, None),
        StateChange::Finished(Outcome::Failed(r)) => ("failed", Some(r.as_str()), None, None),
    };
    match &change {
        StateChange::Finished(Outcome::Failed(r)) => tracing::error!(camera = %cam.name, reason = %r, "camera failed"),
        StateChange::Finished(Outcome::Truncated(r)) => {
            tracing::warn!(camera = %cam.name, uri = %cam.source.uri_redacted, reason = %r, "file ended early")
        }
        StateChange::ClockSkew { .. } => tracing::warn!(camera = %cam.name, "{}", reason.unwrap_or_default()),
        StateChange::Reconnecting { reason, retry_in } => {
            tracing::warn!(camera = %cam.name, uri = %cam.source.uri_redacted, reason = %reason, retry_in_s = format!("{:.1}", retry_in.as_secs_f64()), "camera reconnecting")
        }
        _ => tracing::info!(camera = %cam.name, state, decoder = decoder.unwrap_or("-"), "camera state"),
    }
    let payload =
        payload::camera_status(gateway_id, &cam.name, state, reason, decoder, retry_in, &cam.source.uri_redacted, now);
    let _ = events.send(Outgoing::new(Topic::CameraStatus(cam.name.clone()), payload));
}
