//! Assembly for `lookout run`: sources, detect workers and the publisher as named threads
//! joined by bounded links.
//!
//! ```text
//! src-<camera> [rate gate, motion gate] ──frames (drop_oldest, per camera)──▶ detect-<n>
//!     ──detections (block, per camera)──▶ objects-<camera> (tracker, rules, lifecycle)
//!     ──events (block)──▶ publish ◀── stats
//! ```
//!
//! Shutdown cascades: sources stop (EOS or the signal) and close their frame links; workers
//! drain and exit when all their links are closed; each objects stage drains, ends its
//! objects and exits; the publisher drains the event link, then flushes to the broker. So a
//! file run ends with every frame accounted for and every object ended. A stop by signal is
//! bounded by `shutdown_timeout_seconds`: past it, what reached the publisher is spooled and
//! the daemon exits without waiting for a stuck stage.
//!
//! Each camera has its own stop flag, its own frame and detections links, and its own objects
//! thread, and detect workers take cameras on and off through a control link, so a reload
//! ([`crate::reload`]) restarts, adds or removes one camera without touching the others, and
//! swaps the detectors without dropping a camera.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Select};

use crate::batch::{self, BatchCounts};
use crate::config::{CameraSpec, InferenceSpec, Spec};
use crate::detect::letterbox::Geometry;
use crate::detect::{DetectError, Detection, Detector, DetectorOptions, ScaledFrame, Timings};
use crate::metrics::{self, Metrics};
use crate::link::{self, LinkSender};
use crate::objects::snapshot::FrameImage;
use crate::objects::{CameraObjects, DetectedFrame};
use crate::publish::mqtt::DetectSwitches;
use crate::publish::{DeliveryReport, Outgoing, Sink, Topic, discovery, mqtt::MqttSink, payload};
use std::sync::atomic::AtomicBool;
use crate::shutdown::Shutdown;
use crate::{notify, reload};
use crate::source::{self, Frame, Outcome, StateChange};
use crate::stats::{CameraCounters, CameraSummary, DropReason, PublishCounters};
use crate::supervisor::{Beat, Health, IDLE_BEAT, recv_beating};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("could not start thread {0}: {1}")]
    Thread(String, std::io::Error),
    #[error("camera {0}: {1}")]
    Rules(String, Box<crate::rules::RulesError>),
    #[error("camera {0}: no detector runs its model {1}")]
    NoDetector(String, String),
}

pub use crate::link::DETECTIONS_LINK_CAPACITY;

/// Knobs for tests and benchmarks only, never in the config: they make a run behave like one
/// on a slower machine so that overload can be produced on purpose.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestHooks {
    /// Added to every inference, as if the detector were this much slower.
    pub extra_inference_delay: Duration,
}

/// How one camera's run ended, and its books.
#[derive(Debug, Clone)]
pub struct CameraReport {
    pub name: String,
    pub outcome: Outcome,
    pub summary: CameraSummary,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub cameras: Vec<CameraReport>,
    pub delivery: DeliveryReport,
    /// Frames inferred per second while the cameras ran: the wait for the broker at the end
    /// is not counted.
    pub frames_per_second: f64,
    pub elapsed: Duration,
    /// Of `elapsed`, the time after the stages finished: the publisher waiting for the
    /// broker's acknowledgements (`mqtt.flush_timeout_seconds`, bounded on a stop).
    pub flushing: Duration,
}

/// Run every camera of `spec` until all have finished or `shutdown` is triggered.
pub fn run(spec: &Spec, shutdown: &Shutdown) -> Result<RunReport, PipelineError> {
    run_with_sink(spec, shutdown, None)
}

/// As [`run`], with the sink chosen by the caller (benchmarks discard) instead of the config.
pub fn run_with_sink(spec: &Spec, shutdown: &Shutdown, sink: Option<Sink>) -> Result<RunReport, PipelineError> {
    run_supervised(spec, shutdown, sink, &Health::default())
}

/// As [`run_with_sink`], telling `health` (see [`crate::supervisor`]) each stage thread's
/// heartbeat, each camera's state, and when every thread has started.
pub fn run_supervised(spec: &Spec, shutdown: &Shutdown, sink: Option<Sink>, health: &Health) -> Result<RunReport, PipelineError> {
    run_with_hooks(spec, shutdown, sink, health, TestHooks::default())
}

/// As [`run_supervised`], with [`TestHooks`]: for tests and benchmarks.
pub fn run_with_hooks(spec: &Spec, shutdown: &Shutdown, sink: Option<Sink>, health: &Health, hooks: TestHooks) -> Result<RunReport, PipelineError> {
    run_reloadable(spec, shutdown, sink, health, None, hooks)
}

/// As [`run_supervised`], applying each validated config that arrives on `reloads` (see
/// [`crate::reload`]) while running. READY=1 is sent after each one is applied.
pub fn run_reloadable(
    spec: &Spec,
    shutdown: &Shutdown,
    sink: Option<Sink>,
    health: &Health,
    reloads: Option<&Receiver<Spec>>,
    hooks: TestHooks,
) -> Result<RunReport, PipelineError> {
    source::apply_decoder_preferences(&spec.cameras)?;
    // Load every model's detectors before any camera starts: a missing model or runtime is
    // reported once, clearly, instead of as a failing camera.
    let mut loaded = Vec::new();
    for (model, key) in detector_keys(spec) {
        let detectors = load_detectors(&key)?;
        loaded.push((model, key, detectors));
    }
    // The gateway's model speaks for the provider in the stats (every model gets the same list).
    let main = loaded.iter().find(|(m, _, _)| *m == spec.inference.model).or(loaded.first()).and_then(|(_, _, d)| d.first());
    let provider = main.map(|d| d.provider()).unwrap_or("cpu");
    let skipped: Arc<Vec<(String, String)>> = Arc::new(main.map(|d| d.selection().skipped.clone()).unwrap_or_default());
    // Sized for any batch a reload may bring, not just this detector's.
    let batches = Arc::new(BatchCounts::new(crate::config::spec::MAX_BATCH_LIMIT));

    let started = Instant::now();
    // Detection on/off per camera, flipped by `<camera>/detect/set` over MQTT. Filled before the
    // sink connects: on connect it subscribes and announces each camera's state, and it
    // announces a camera a reload adds as soon as it appears here.
    let switches: DetectSwitches =
        Arc::new(Mutex::new(spec.cameras.iter().map(|c| (c.name.clone(), Arc::new(AtomicBool::new(true)))).collect()));
    let sink = match (sink, &spec.mqtt) {
        (Some(s), _) => s,
        (None, Some(m)) => Sink::Mqtt(MqttSink::connect_with(m, switches.clone())),
        (None, None) => Sink::stdout(),
    };
    let publish_counters = sink.counters();
    let metrics = Metrics::with_batches(Vec::new(), Vec::new(), provider, publish_counters.clone(), batches.clone());
    // Its own stop flag: a file run ends without the daemon's shutdown being triggered.
    let metrics_stop = Shutdown::new();
    let metrics_server = match spec.metrics_listen {
        None => None,
        Some(addr) => match metrics::serve(addr, metrics.clone(), metrics_stop.clone()) {
            Ok(h) => Some(h),
            // Metrics are for watching the cameras; they are no reason to stop them.
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        },
    };

    let (events_tx, events_rx) = link::bounded::<Outgoing>(spec.events_link.capacity, spec.events_link.when_full, Default::default());
    let flush_timeout = spec.mqtt.as_ref().map(|m| m.flush_timeout).unwrap_or_default();
    let closing = PublisherClose::default();
    let publisher = {
        let (m, beat, closing) = (metrics.clone(), health.heartbeat("publish"), closing.clone());
        // Saving is cheap to leave on: only cameras with snapshots enabled send any, and a
        // reload may enable them.
        let store = SnapshotStore::new(spec.snapshot_dir.clone(), spec.snapshot_retain, true);
        spawn("publish", move || publish_loop(events_rx, sink, flush_timeout, &m, store, beat, &closing))?
    };
    send_discovery(spec, &events_tx);

    let registry: Registry = Arc::default();
    let mut p = Running {
        spec: spec.clone(),
        cameras: Vec::new(),
        books: Vec::new(),
        pools: BTreeMap::new(),
        next_worker: 0,
        next_instance: 0,
        batches: batches.clone(),
        hooks,
        events: events_tx,
        metrics: metrics.clone(),
        health: health.clone(),
        switches,
        registry: registry.clone(),
    };
    for (model, key, detectors) in loaded {
        p.start_pool(model, key, detectors, spec.inference.max_batch_wait)?;
    }
    for cam in spec.cameras.clone() {
        p.start_camera(cam)?;
    }
    p.publish_camera_set();
    p.report_broken();

    // Periodic stats until every camera has finished.
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let stats_thread = {
        let pc = publish_counters.clone();
        let (reg, ev, gw, every, sk, runs) = (registry.clone(), p.events.clone(), spec.gateway_id.clone(), spec.stats_interval, skipped.clone(), batches.clone());
        spawn("stats", move || {
            let tick = crossbeam_channel::tick(every);
            loop {
                crossbeam_channel::select! {
                    recv(tick) -> _ => { let _ = ev.send(stats_message(&gw, &registry_now(&reg), pc.as_deref(), started, (provider, &sk, &runs), false)); }
                    recv(done_rx) -> _ => break,
                }
            }
        })?
    };

    // The run loop: watch for the stop signal, reloads, and every camera having finished.
    let never = crossbeam_channel::never();
    let mut reloads = reloads.unwrap_or(&never);
    let mut stop_deadline: Option<Instant> = None;
    loop {
        if stop_deadline.is_none() && shutdown.is_triggered() {
            let timeout = p.spec.shutdown_timeout;
            stop_deadline = Some(Instant::now() + timeout);
            closing.deadline(Instant::now() + timeout);
            tracing::info!(shutdown_timeout_s = timeout.as_secs_f64(), "stopping: sources stop, frames in flight finish, events are flushed");
            for cam in &p.cameras {
                cam.stop("shutdown");
            }
        }
        // With no camera configured there is nothing to finish: stay up until a reload adds one
        // or a signal stops us (a service with an empty pipelines/ must not exit).
        if !p.cameras.is_empty() && p.cameras.iter().all(|c| c.source.as_ref().is_none_or(|h| h.is_finished())) {
            break;
        }
        if stop_deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        crossbeam_channel::select! {
            recv(reloads) -> msg => match msg {
                Ok(new) if stop_deadline.is_none() => {
                    p.apply(new);
                    notify::ready();
                }
                Ok(_) => tracing::warn!("reload ignored: the daemon is stopping"),
                // The reload thread is gone (the daemon is stopping): no more reloads.
                Err(_) => reloads = &never,
            },
            default(Duration::from_millis(100)) => {}
        }
    }

    // Wind down in stage order, each join bounded by the stop deadline if there is one.
    let deadline = stop_deadline;
    for cam in &mut p.cameras {
        cam.join_source(deadline);
    }
    let workers: Vec<WorkerRun> = std::mem::take(&mut p.pools).into_values().flat_map(|pool| pool.workers).collect();
    // Workers exit once their control link closes and their cameras' frame links are drained.
    let worker_handles: Vec<_> = workers.into_iter().map(|w| w.handle).collect();
    for h in worker_handles {
        join_until(h, deadline);
    }
    for cam in &mut p.cameras {
        cam.join_objects(deadline);
    }
    let late: Vec<&str> = p.cameras.iter().filter(|c| c.source.is_some() || c.objects.is_some()).map(|c| c.spec.name.as_str()).collect();
    if !late.is_empty() {
        tracing::warn!(cameras = %late.join(", "), "shutdown_timeout_seconds passed with these cameras' stages still busy; what they produced so far is flushed or spooled, the rest is abandoned");
    }
    drop(done_tx);
    join_until(stats_thread, deadline);
    let processed = started.elapsed();

    let _ = p.events.send(stats_message(&p.spec.gateway_id, &registry_now(&registry), publish_counters.as_deref(), started, (provider, &skipped, &batches), true));
    closing.close();
    let Running { events, cameras, books, .. } = p;
    drop(events);
    let delivery = publisher.join().unwrap_or_default();
    metrics_stop.trigger();
    if let Some(h) = metrics_server {
        let _ = h.join();
    }
    let elapsed = started.elapsed();

    // Every camera that ran, in order of first start, with its latest outcome and its books
    // over the whole run (a camera restarted by a reload keeps counting).
    let reports: Vec<CameraReport> = books
        .into_iter()
        .map(|(name, c, outcome)| {
            let outcome = cameras.iter().find(|r| r.spec.name == name).and_then(|r| r.outcome.clone()).or(outcome).unwrap_or(Outcome::Stopped);
            CameraReport { name, outcome, summary: c.snapshot() }
        })
        .collect();
    let inferred: u64 = reports.iter().map(|c| c.summary.inferred).sum();
    let frames_per_second = inferred as f64 / processed.as_secs_f64().max(1e-9);
    Ok(RunReport { cameras: reports, delivery, frames_per_second, elapsed, flushing: elapsed.saturating_sub(processed) })
}

/// The cameras now configured, with their counters: what the stats topic reports.
type Registry = Arc<Mutex<Vec<(String, Arc<CameraCounters>)>>>;

fn registry_now(r: &Registry) -> Vec<(String, Arc<CameraCounters>)> {
    r.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Home Assistant discovery configs for every camera of `spec` (retained, so sending them
/// again after a reload is harmless and covers new cameras).
fn send_discovery(spec: &Spec, events: &LinkSender<Outgoing>) {
    if let Some(m) = &spec.mqtt
        && let Some(discovery_prefix) = &m.discovery_prefix
    {
        for (topic, payload) in discovery::messages(spec, &m.topic_prefix, discovery_prefix) {
            let _ = events.send(Outgoing::new(Topic::Discovery(topic), payload));
        }
    }
}

/// Empty retained configs for the discovery entries `old` announced and `new` no longer has
/// (a removed camera, zone or line): Home Assistant deletes an entity whose config is emptied,
/// so operators are not left with sensors that never update.
fn clear_stale_discovery(old: &Spec, new: &Spec, events: &LinkSender<Outgoing>) {
    if let Some(m) = &old.mqtt
        && let Some(discovery_prefix) = &m.discovery_prefix
    {
        let topics = |s: &Spec| discovery::messages(s, &m.topic_prefix, discovery_prefix).into_iter().map(|(t, _)| t).collect::<BTreeSet<String>>();
        let still = topics(new);
        for topic in topics(old).difference(&still) {
            let _ = events.send(Outgoing::new(Topic::Discovery(topic.clone()), Vec::new()));
        }
    }
}

/// What selects one model's detectors: a reload builds new ones only when this changes.
#[derive(Debug, Clone, PartialEq)]
struct DetectorKey {
    /// `[inference]`, with `model` set to this pool's model.
    inference: InferenceSpec,
    score_threshold: Option<f32>,
    workers: usize,
    /// The model file's size and modification time: a model replaced in place is reloaded.
    model_stamp: Option<(u64, Option<SystemTime>)>,
}

/// One key per model the cameras of `spec` run (`detect.model`, else `inference.model`).
fn detector_keys(spec: &Spec) -> BTreeMap<PathBuf, DetectorKey> {
    let mut groups: BTreeMap<PathBuf, Vec<&CameraSpec>> = BTreeMap::new();
    for cam in &spec.cameras {
        groups.entry(cam.detect.model.clone()).or_default().push(cam);
    }
    if groups.is_empty() {
        groups.insert(spec.inference.model.clone(), Vec::new());
    }
    groups.into_iter().map(|(model, cams)| (model.clone(), detector_key(&spec.inference, &model, &cams))).collect()
}

fn detector_key(inference: &InferenceSpec, model: &Path, cams: &[&CameraSpec]) -> DetectorKey {
    // The tracker extends tracks with low-score detections (ByteTrack), so the detector keeps
    // everything down to the lowest `track.low_score` of its cameras.
    let lowest = cams.iter().map(|c| c.objects.tracker.low_score.min(c.detect.min_score)).fold(f32::INFINITY, f32::min);
    // None: the model manifest's default.
    let score_threshold = lowest.is_finite().then(|| lowest.max(0.01));
    let model_stamp = std::fs::metadata(model).ok().map(|m| (m.len(), m.modified().ok()));
    // The gateway model's labels are the cameras' business (checked with the config), not the
    // detectors': leaving them out keeps a change of the gateway model from reloading others.
    let inference = InferenceSpec { model: model.to_path_buf(), labels: Default::default(), ..inference.clone() };
    // `inference.workers` per model, but no more than the cameras that use it (at least one).
    let workers = inference.workers.min(cams.len().max(1));
    DetectorKey { inference, score_threshold, workers, model_stamp }
}

/// Load one detector per worker for `key`.
fn load_detectors(key: &DetectorKey) -> Result<Vec<Detector>, DetectError> {
    let base = key.inference.detector_options();
    let opts = DetectorOptions { score_threshold: key.score_threshold.or(base.score_threshold), ..base };
    let mut detectors = Vec::with_capacity(key.workers);
    if key.workers > 0 {
        let first = Detector::load(&opts)?;
        // The other workers take the provider the first one got, alone, so that all of them run
        // on the same one: a GPU that refuses a second session (say, for want of memory) is an
        // error to report, not a quiet move of one worker to the CPU.
        let same = DetectorOptions { providers: vec![first.provider_spec().clone()], fallback: false, ..opts.clone() };
        let m = first.model();
        tracing::info!(model = %m.name, family = m.family.name(), precision = m.precision.as_str(), file = %m.file.display(), provider = first.provider(), workers = key.workers, max_batch = first.max_batch(), "detector ready");
        detectors.push(first);
        for _ in 1..key.workers {
            detectors.push(Detector::load(&same)?);
        }
    }
    Ok(detectors)
}

/// One camera's threads, and how to stop them.
struct CameraRun {
    spec: CameraSpec,
    /// This camera's own stop: a reload stops one camera, a shutdown all of them.
    stop: Shutdown,
    /// Why it was stopped, for its last status message.
    stop_reason: Arc<Mutex<&'static str>>,
    source: Option<std::thread::JoinHandle<Outcome>>,
    objects: Option<std::thread::JoinHandle<()>>,
    outcome: Option<Outcome>,
    /// Its worker in the pool of its model (`spec.detect.model`).
    worker: usize,
}

impl CameraRun {
    fn stop(&self, reason: &'static str) {
        *self.stop_reason.lock().unwrap_or_else(PoisonError::into_inner) = reason;
        self.stop.trigger();
    }

    fn join_source(&mut self, deadline: Option<Instant>) {
        if let Some(h) = self.source.take() {
            match join_until(h, deadline) {
                Joined::Done(o) => self.outcome = Some(o),
                Joined::Panicked => self.outcome = Some(Outcome::Failed("camera thread panicked".into())),
                Joined::Late(h) => self.source = Some(h),
            }
        }
    }

    fn join_objects(&mut self, deadline: Option<Instant>) {
        if let Some(h) = self.objects.take()
            && let Joined::Late(h) = join_until(h, deadline)
        {
            self.objects = Some(h);
        }
    }
}

enum Joined<T> {
    Done(T),
    Panicked,
    /// Still running at the deadline.
    Late(std::thread::JoinHandle<T>),
}

/// Join `h`, waiting no later than `deadline` (forever without one).
fn join_until<T>(h: std::thread::JoinHandle<T>, deadline: Option<Instant>) -> Joined<T> {
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
struct WorkerRun {
    ctl: crossbeam_channel::Sender<WorkerCtl>,
    handle: std::thread::JoinHandle<()>,
}

/// The detect workers of one model, and what they were loaded from.
struct Pool {
    key: DetectorKey,
    /// The model's input size: its cameras' sources scale frames to it.
    geometry: Geometry,
    /// The model's name (its manifest's file stem) and the provider its workers run on, for the stats.
    name: String,
    provider: &'static str,
    workers: Vec<WorkerRun>,
}

/// Everything that runs, and what it was started from.
struct Running {
    /// What runs now: the start-up spec, with each applied reload's cameras and inference.
    spec: Spec,
    cameras: Vec<CameraRun>,
    /// Every camera that ran, in order of first start, with its counters (kept across
    /// restarts) and the outcome of a removed camera.
    books: Vec<(String, Arc<CameraCounters>, Option<Outcome>)>,
    /// One pool of workers per model in use, by model path.
    pools: BTreeMap<PathBuf, Pool>,
    next_worker: usize,
    next_instance: usize,
    /// Inference runs per batch size, all workers together (stats and /metrics).
    batches: Arc<BatchCounts>,
    hooks: TestHooks,
    events: LinkSender<Outgoing>,
    metrics: Arc<Metrics>,
    health: Health,
    switches: DetectSwitches,
    registry: Registry,
}

/// How long a reload waits for a stopping camera's threads before leaving them behind.
const RELOAD_JOIN_TIMEOUT: Duration = Duration::from_secs(15);

impl Running {
    fn start_workers(&mut self, detectors: Vec<Detector>, max_wait: Duration) -> Result<Vec<WorkerRun>, PipelineError> {
        let mut workers = Vec::new();
        for detector in detectors {
            let n = self.next_worker;
            self.next_worker += 1;
            let (ctl, ctl_rx) = crossbeam_channel::unbounded::<WorkerCtl>();
            let (m, beat, delay) = (self.metrics.clone(), self.health.heartbeat(&format!("detect-{n}")), self.hooks.extra_inference_delay);
            let batching = Batching { max_wait, runs: self.batches.clone() };
            let handle = spawn(&format!("detect-{n}"), move || detect_loop(detector, ctl_rx, &m, &batching, beat, delay))?;
            workers.push(WorkerRun { ctl, handle });
        }
        Ok(workers)
    }

    /// Start the workers of a model that has none running yet.
    fn start_pool(&mut self, model: PathBuf, key: DetectorKey, detectors: Vec<Detector>, max_wait: Duration) -> Result<(), PipelineError> {
        let geometry = detectors.first().map(|d| d.geometry()).unwrap_or(Geometry::square(416));
        let name = detectors.first().map(|d| d.model().name.clone()).unwrap_or_else(|| model_stem(&model));
        let provider = detectors.first().map(|d| d.provider()).unwrap_or("cpu");
        let workers = self.start_workers(detectors, max_wait)?;
        self.pools.insert(model, Pool { key, geometry, name, provider, workers });
        Ok(())
    }

    /// The worker of `model`'s pool with the fewest cameras.
    fn least_loaded_worker(&self, model: &Path) -> usize {
        let n = self.pools.get(model).map(|p| p.workers.len()).unwrap_or(0);
        (0..n).min_by_key(|w| self.cameras.iter().filter(|c| c.source.is_some() && c.spec.detect.model == model && c.worker == *w).count()).unwrap_or(0)
    }

    fn counters_for(&mut self, name: &str) -> Arc<CameraCounters> {
        if let Some((_, c, outcome)) = self.books.iter_mut().find(|(n, _, _)| n == name) {
            *outcome = None;
            return c.clone();
        }
        let c = Arc::new(CameraCounters::default());
        self.books.push((name.to_string(), c.clone(), None));
        c
    }

    fn start_camera(&mut self, cam: CameraSpec) -> Result<(), PipelineError> {
        let counters = self.counters_for(&cam.name);
        let on = self.switches.lock().unwrap_or_else(PoisonError::into_inner).entry(cam.name.clone()).or_insert_with(|| Arc::new(AtomicBool::new(true))).clone();
        let instance = self.next_instance;
        self.next_instance += 1;
        // Rules were validated with the config; building them again can't fail, but say so if it does.
        let stage = CameraObjects::new(&self.spec.gateway_id, &cam).map_err(|e| PipelineError::Rules(cam.name.clone(), Box::new(e)))?;
        let (tx, rx) = link::bounded::<Frame>(cam.links.frames.capacity, cam.links.frames.when_full, counters.dropped_link_full.clone());
        let (dtx, drx) = link::bounded::<DetectedFrame>(cam.links.detections.capacity, cam.links.detections.when_full, Default::default());

        let name = format!("objects-{}", cam.name);
        let (ev, min_score, beat, freeze, ctr) = (self.events.clone(), cam.detect.min_score, self.health.heartbeat(&name), freeze_hook(&name), counters.clone());
        let objects = spawn(&name, move || objects_loop(stage, drx, &ev, min_score, &ctr, beat, freeze))?;

        let model = cam.detect.model.clone();
        let Some((geometry, model_name, provider)) = self.pools.get(&model).map(|p| (p.geometry, p.name.clone(), p.provider)) else {
            return Err(PipelineError::NoDetector(cam.name.clone(), model.display().to_string()));
        };
        counters.set_model(&model_name, provider);
        let worker = self.least_loaded_worker(&model);
        let attach = WorkerCamera {
            name: cam.name.clone(),
            rx,
            to_objects: dtx,
            counters: counters.clone(),
            on,
            min_score: cam.detect.min_score,
            snapshots: cam.objects.snapshots.enabled,
        };
        if let Some(w) = self.pools.get(&model).and_then(|p| p.workers.get(worker))
            && w.ctl.send(WorkerCtl::Attach(attach)).is_err()
        {
            tracing::error!(camera = %cam.name, worker, "detect worker gone; the camera's frames will be dropped (link_full)");
        }

        let stop = Shutdown::new();
        let stop_reason = Arc::new(Mutex::new("shutdown"));
        let (c, sd, gw, m, hl, ev, reason, geometry, spec) =
            (counters, stop.clone(), self.spec.gateway_id.clone(), self.metrics.clone(), self.health.clone(), self.events.clone(), stop_reason.clone(), geometry, cam.clone());
        let source = spawn(&format!("src-{}", cam.name), move || {
            tracing::info!(camera = %spec.name, uri = %spec.uri_redacted, fps = spec.detect.fps, "camera starting");
            source::run_camera(instance, &spec, geometry, tx, c, &sd, |change| {
                m.cameras().set(&spec.name, state_name(&change));
                hl.camera_state(&spec.name, &change);
                let why = *reason.lock().unwrap_or_else(PoisonError::into_inner);
                report_state(&gw, &spec, &ev, change, why)
            })
        })?;
        self.cameras.push(CameraRun { spec: cam, stop, stop_reason, source: Some(source), objects: Some(objects), outcome: None, worker });
        Ok(())
    }

    /// Stop the named cameras and wait for their threads (a bounded wait: a stuck stage is
    /// left behind rather than holding up the reload).
    fn stop_cameras(&mut self, names: &[String], reason: &'static str) {
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
    fn report_broken(&self) {
        for b in &self.spec.broken {
            let reason = b.reason();
            tracing::error!(camera = %b.name, reason = %reason, "camera not started: its file has errors");
            let change = StateChange::Finished(Outcome::Failed(reason.clone()));
            self.metrics.cameras().set(&b.name, state_name(&change));
            self.health.camera_state(&b.name, &change);
            let payload = payload::camera_status(&self.spec.gateway_id, &b.name, "failed", Some(&reason), None, None, "", SystemTime::now());
            let _ = self.events.send(Outgoing::new(Topic::CameraStatus(b.name.clone()), payload));
        }
    }

    /// Tell the stats topic, /metrics, /healthz and the supervisor which cameras there are.
    /// Those that could not start (`Spec::broken`) count for /metrics, /healthz and STATUS=,
    /// where their state shows; the stats topic has no books of theirs to report.
    fn publish_camera_set(&self) {
        let names: Vec<String> = self.cameras.iter().map(|c| c.spec.name.clone()).collect();
        let counters: Vec<Arc<CameraCounters>> =
            names.iter().map(|n| self.books.iter().find(|(b, _, _)| b == n).map(|(_, c, _)| c.clone()).unwrap_or_default()).collect();
        *self.registry.lock().unwrap_or_else(PoisonError::into_inner) = names.iter().cloned().zip(counters.iter().cloned()).collect();
        let (mut all, mut all_counters) = (names, counters);
        for b in &self.spec.broken {
            all.push(b.name.clone());
            all_counters.push(Arc::default());
        }
        self.metrics.cameras().set_cameras(&all, &all_counters);
        self.health.started(&all, &all_counters);
    }

    /// Apply a validated new config: see [`crate::reload`].
    fn apply(&mut self, new: Spec) {
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
            let detectors = match load_detectors(&key) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(model = %model.display(), error = %e, "reload: this model can't be loaded; the cameras that would run it keep what they run now");
                    failed.insert(model);
                    continue;
                }
            };
            let size = detectors.first().map(|d| d.geometry());
            let provider = detectors.first().map(|d| d.provider());
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
        let wanted: Vec<CameraSpec> = new
            .cameras
            .iter()
            .filter_map(|c| {
                if !failed.contains(&c.detect.model) {
                    return Some(c.clone());
                }
                match self.spec.cameras.iter().find(|o| o.name == c.name) {
                    Some(old) => {
                        if old != c {
                            tracing::error!(camera = %c.name, model = %c.detect.model.display(), "reload: camera not changed: its model failed to load; it keeps running its current config");
                        }
                        Some(old.clone())
                    }
                    None => {
                        tracing::error!(camera = %c.name, model = %c.detect.model.display(), "reload: camera not started: its model failed to load");
                        None
                    }
                }
            })
            .collect();
        let mut diff = reload::diff_cameras(&self.spec.cameras, &wanted);
        let (resize, keep): (Vec<String>, Vec<String>) =
            diff.unchanged.drain(..).partition(|n| wanted.iter().any(|c| c.name == *n && resized.contains(&c.detect.model)));
        diff.unchanged = keep;
        diff.changed.extend(resize);
        self.spec.shutdown_timeout = new.shutdown_timeout;
        if diff.is_empty() {
            tracing::info!(cameras = diff.unchanged.len(), "reload: no camera changed");
            return;
        }
        self.stop_cameras(&diff.removed, "removed from the config (reload)");
        self.stop_cameras(&diff.changed, "config changed (reload)");
        {
            let mut sw = self.switches.lock().unwrap_or_else(PoisonError::into_inner);
            for name in &diff.removed {
                sw.remove(name);
            }
        }
        let starting: Vec<CameraSpec> = new.cameras.iter().filter(|c| diff.changed.contains(&c.name) || diff.added.contains(&c.name)).cloned().collect();
        if let Err(e) = source::apply_decoder_preferences(&starting) {
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
            if let (Some(pool), Some((_, c, _))) = (self.pools.get(&cam.spec.detect.model), self.books.iter().find(|(n, _, _)| *n == cam.spec.name)) {
                c.set_model(&pool.name, pool.provider);
            }
        }
        self.publish_camera_set();
        let mut announce = self.spec.clone();
        announce.cameras.retain(|c| diff.added.contains(&c.name) || diff.changed.contains(&c.name));
        send_discovery(&announce, &self.events);
        tracing::info!(
            restarted = %diff.changed.join(", "),
            started = %diff.added.join(", "),
            stopped = %diff.removed.join(", "),
            unchanged = diff.unchanged.len(),
            "reload applied"
        );
    }

    /// Start workers on `detectors` for `model`, then move every camera over from its old
    /// workers: each old worker finishes the frame in hand, hands back its cameras (their frame
    /// links keep what was queued, so nothing is dropped) and exits. Other models' workers are
    /// not touched.
    fn swap_workers(&mut self, model: &Path, detectors: Vec<Detector>, max_wait: Duration) -> Result<(), PipelineError> {
        let fresh = self.start_workers(detectors, max_wait)?;
        let Some(pool) = self.pools.get_mut(model) else {
            // Nothing to swap with: the new workers exit when their control links close.
            return Ok(());
        };
        let old = std::mem::replace(&mut pool.workers, fresh);
        let handed = retire(old);
        // Their old worker numbers mean nothing in the new pool: unassigned until placed.
        for run in self.cameras.iter_mut().filter(|c| handed.iter().any(|h| h.name == c.spec.name)) {
            run.worker = usize::MAX;
        }
        for cam in handed {
            let worker = self.least_loaded_worker(model);
            if let Some(run) = self.cameras.iter_mut().find(|c| c.spec.name == cam.name) {
                run.worker = worker;
            }
            if let Some(w) = self.pools.get(model).and_then(|p| p.workers.get(worker)) {
                let _ = w.ctl.send(WorkerCtl::Attach(cam));
            }
        }
        Ok(())
    }

    /// Stop the workers of models no running camera uses any more.
    fn retire_idle_pools(&mut self) {
        let idle: Vec<PathBuf> = self.pools.keys().filter(|m| !self.cameras.iter().any(|c| c.spec.detect.model == **m)).cloned().collect();
        for model in idle {
            if let Some(pool) = self.pools.remove(&model) {
                tracing::info!(model = %pool.name, "reload: no camera runs this model any more; its detectors are unloaded");
                retire(pool.workers);
            }
        }
    }
}

/// Retire `workers`: each hands back its cameras and exits (bounded waits).
fn retire(workers: Vec<WorkerRun>) -> Vec<WorkerCamera> {
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

fn spawn<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<std::thread::JoinHandle<T>, PipelineError> {
    std::thread::Builder::new().name(name.to_string()).spawn(f).map_err(|e| PipelineError::Thread(name.to_string(), e))
}

/// The state a change leaves the camera in, as /metrics and /healthz name it.
fn state_name(change: &StateChange) -> &'static str {
    match change {
        StateChange::Connecting => "connecting",
        StateChange::Streaming { .. } | StateChange::ClockSkew { .. } => "streaming",
        StateChange::Reconnecting { .. } => "reconnecting",
        StateChange::Finished(Outcome::Ended | Outcome::Truncated(_)) => "ended",
        StateChange::Finished(Outcome::Stopped) => "stopped",
        StateChange::Finished(Outcome::Failed(_)) => "failed",
    }
}

/// `stopped_because` is the reason a stopped camera gives: `shutdown`, or a reload's.
fn report_state(gateway_id: &str, cam: &CameraSpec, events: &LinkSender<Outgoing>, change: StateChange, stopped_because: &str) {
    let now = SystemTime::now();
    let skew_text;
    let (state, reason, decoder, retry_in) = match &change {
        StateChange::Connecting => ("connecting", None, None, None),
        StateChange::Streaming { decoder } => ("streaming", None, decoder.as_deref(), None),
        StateChange::Reconnecting { reason, retry_in } => ("reconnecting", Some(reason.as_str()), None, Some(retry_in.as_secs_f64())),
        StateChange::ClockSkew { skew_seconds } => {
            skew_text = format!(
                "warning: the camera's clock is {:.1} s {} the gateway's (max_clock_skew_seconds {:.0}); check NTP on the camera",
                skew_seconds.abs(),
                if *skew_seconds > 0.0 { "ahead of" } else { "behind" },
                cam.max_clock_skew.as_secs_f64()
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
        StateChange::Finished(Outcome::Truncated(r)) => tracing::warn!(camera = %cam.name, uri = %cam.uri_redacted, reason = %r, "file ended early"),
        StateChange::ClockSkew { .. } => tracing::warn!(camera = %cam.name, "{}", reason.unwrap_or_default()),
        StateChange::Reconnecting { reason, retry_in } => {
            tracing::warn!(camera = %cam.name, uri = %cam.uri_redacted, reason = %reason, retry_in_s = format!("{:.1}", retry_in.as_secs_f64()), "camera reconnecting")
        }
        _ => tracing::info!(camera = %cam.name, state, decoder = decoder.unwrap_or("-"), "camera state"),
    }
    let payload = payload::camera_status(gateway_id, &cam.name, state, reason, decoder, retry_in, &cam.uri_redacted, now);
    let _ = events.send(Outgoing::new(Topic::CameraStatus(cam.name.clone()), payload));
}

/// What the run loop tells a detect worker.
enum WorkerCtl {
    /// Detect for one more camera.
    Attach(WorkerCamera),
    /// Hand back every camera (their links intact) and exit: a reload swapped the detectors.
    Retire(crossbeam_channel::Sender<Vec<WorkerCamera>>),
}

/// One camera as a detect worker sees it.
struct WorkerCamera {
    name: String,
    rx: Receiver<Frame>,
    to_objects: LinkSender<DetectedFrame>,
    counters: Arc<CameraCounters>,
    /// Detection switched on (`<camera>/detect/set`).
    on: Arc<AtomicBool>,
    min_score: f32,
    snapshots: bool,
}

/// How a worker batches: at most `max` frames a run (the detector's own limit), waiting up to
/// `max_wait` for the other cameras' next frames; each run's size is counted in `runs`.
struct Batching {
    max_wait: Duration,
    runs: Arc<BatchCounts>,
}

/// One worker: detect on frames from its cameras, fairly, and hand every inferred frame (with
/// or without detections: the tracker needs both) to the camera's objects stage. With a
/// detector that batches, frames from several cameras (at most one each) go through one run
/// (see [`crate::batch`]). A camera whose frame link closes (its source stopped) is dropped,
/// which closes its objects stage's link. The worker exits when its control link is closed and
/// it has no cameras left, or on Retire.
fn detect_loop(mut detector: Detector, ctl: Receiver<WorkerCtl>, metrics: &Metrics, batching: &Batching, beat: Beat, extra_delay: Duration) {
    let max_batch = detector.max_batch();
    let mut cams: Vec<WorkerCamera> = Vec::new();
    let mut ctl = Some(ctl);
    let mut batch: Vec<(usize, Frame)> = Vec::with_capacity(max_batch);
    loop {
        if ctl.is_none() && cams.is_empty() {
            return;
        }
        // Select picks fairly among the ready links, so a busy camera can't starve a quiet one.
        // The timeout keeps an idle worker beating.
        beat.beat();
        let mut sel = Select::new();
        for c in &cams {
            sel.recv(&c.rx);
        }
        if let Some(ctl) = &ctl {
            sel.recv(ctl);
        }
        let Ok(op) = sel.select_timeout(IDLE_BEAT) else { continue };
        let i = op.index();
        if i == cams.len() {
            let Some(rx) = &ctl else { continue };
            match op.recv(rx) {
                Ok(WorkerCtl::Attach(c)) => cams.push(c),
                Ok(WorkerCtl::Retire(reply)) => {
                    let _ = reply.send(cams);
                    return;
                }
                Err(_) => ctl = None,
            }
            continue;
        }
        match op.recv(&cams[i].rx) {
            Ok(f) => batch.push((i, f)),
            Err(_) => {
                cams.swap_remove(i);
                continue;
            }
        }
        // Cameras to drop once this batch is through: indices stay valid until then.
        let mut gone = vec![false; cams.len()];
        if max_batch > 1 {
            fill_batch(&mut batch, &cams, &mut gone, max_batch, batching.max_wait);
        }
        detect_batch(&mut detector, &mut batch, &cams, &mut gone, metrics, &batching.runs, extra_delay);
        if gone.iter().any(|g| *g) {
            let mut k = 0;
            cams.retain(|_| {
                let keep = !gone[k];
                k += 1;
                keep
            });
        }
    }
}

/// Add to `batch` what the other cameras have ready, then wait up to `max_wait` for more. A
/// camera whose link closed is marked in `gone`.
fn fill_batch(batch: &mut Vec<(usize, Frame)>, cams: &[WorkerCamera], gone: &mut [bool], max: usize, max_wait: Duration) {
    batch::gather(batch, cams.len(), max, |j| {
        if gone[j] {
            return None;
        }
        match cams[j].rx.try_recv() {
            Ok(f) => Some(f),
            Err(crossbeam_channel::TryRecvError::Empty) => None,
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                gone[j] = true;
                None
            }
        }
    });
    let deadline = Instant::now() + max_wait;
    while batch.len() < max {
        let waiting: Vec<usize> = (0..cams.len()).filter(|j| !gone[*j] && !batch.iter().any(|(k, _)| k == j)).collect();
        if waiting.is_empty() {
            return;
        }
        let mut sel = Select::new();
        for j in &waiting {
            sel.recv(&cams[*j].rx);
        }
        let Ok(op) = sel.select_deadline(deadline) else { return };
        let j = waiting[op.index()];
        match op.recv(&cams[j].rx) {
            Ok(f) => batch.push((j, f)),
            Err(_) => gone[j] = true,
        }
    }
}

/// Detect on the batch's frames in one run and hand each on; empties `batch`. A camera whose
/// objects stage is gone is marked in `gone`.
fn detect_batch(
    detector: &mut Detector,
    batch: &mut Vec<(usize, Frame)>,
    cams: &[WorkerCamera],
    gone: &mut [bool],
    metrics: &Metrics,
    runs: &BatchCounts,
    extra_delay: Duration,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut frames: Vec<(usize, Frame)> = Vec::with_capacity(batch.len());
    for (i, frame) in batch.drain(..) {
        let cam = &cams[i];
        if cam.on.load(Relaxed) {
            frames.push((i, frame));
            continue;
        }
        // Switched off: the frame is counted, and the objects stage sees an empty frame,
        // so tracked objects end as they would if the scene emptied.
        cam.counters.dropped(DropReason::DetectOff);
        let meta = frame_meta(&frame);
        if cam.to_objects.send(DetectedFrame { meta, pts: frame.pts, detections: Vec::new(), image: None }).is_err() {
            gone[i] = true;
        }
    }
    if frames.is_empty() {
        return;
    }
    let inputs: Vec<ScaledFrame<'_>> = frames
        .iter()
        .map(|(_, f)| ScaledFrame { rgb: &f.data, width: f.width, height: f.height, stride: f.stride, src_width: f.src_width, src_height: f.src_height })
        .collect();
    let result: Result<(Vec<Vec<Detection>>, Timings), DetectError> = detector.detect_batch(&inputs);
    drop(inputs);
    if !extra_delay.is_zero() {
        // TestHooks only: a slower detector, not a wait for anything.
        std::thread::sleep(extra_delay);
    }
    match result {
        Ok((per_frame, timings)) => {
            runs.record(frames.len());
            for ((i, frame), detections) in frames.iter().zip(per_frame) {
                let cam = &cams[*i];
                let ctr = &cam.counters;
                // Each frame's latency is its run's, whatever else rode along.
                ctr.inferred.fetch_add(1, Relaxed);
                ctr.infer_micros_total.fetch_add(timings.infer.as_micros() as u64, Relaxed);
                ctr.pre_micros_total.fetch_add(timings.pre.as_micros() as u64, Relaxed);
                metrics.inference_seconds.get_or_create(&Metrics::camera_label(&cam.name)).observe(timings.infer.as_secs_f64());
                let confident = detections.iter().filter(|d| d.score >= cam.min_score).count();
                ctr.detections.fetch_add(confident as u64, Relaxed);
                let meta = frame_meta(frame);
                // Snapshots need the pixels after the frame's buffer goes back to GStreamer.
                let image = cam.snapshots.then(|| frame_image(frame)).flatten();
                if cam.to_objects.send(DetectedFrame { meta, pts: frame.pts, detections, image }).is_err() {
                    tracing::error!(camera = %cam.name, "objects stage gone; no more detection for this camera");
                    gone[*i] = true;
                }
            }
        }
        Err(e) => {
            for (i, _) in &frames {
                cams[*i].counters.dropped(DropReason::InferenceError);
                tracing::warn!(camera = %cams[*i].name, error = %e, batch = frames.len(), "inference failed on a frame; frame dropped");
            }
        }
    }
}

/// What events need to know about a frame.
fn frame_meta(frame: &Frame) -> payload::FrameMeta {
    payload::FrameMeta {
        captured_at: frame.captured_at,
        capture_clock: frame.clock.as_str(),
        pts_ms: frame.pts.map(|p| p.as_millis() as u64),
        seq: frame.seq,
        width: frame.src_width,
        height: frame.src_height,
    }
}

/// A tightly packed copy of a frame's RGB pixels (the buffer rows may be padded).
fn frame_image(frame: &Frame) -> Option<Arc<FrameImage>> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        rgb.extend_from_slice(frame.data.get(row * frame.stride..row * frame.stride + w * 3)?);
    }
    let rgb = image::RgbImage::from_raw(frame.width, frame.height, rgb)?;
    let (sx, sy) = (frame.width as f32 / frame.src_width.max(1) as f32, frame.height as f32 / frame.src_height.max(1) as f32);
    Some(Arc::new(FrameImage { rgb, scale_x: sx, scale_y: sy }))
}

/// One camera's objects stage: tracker, rules and lifecycle, until its workers are done;
/// then every object still open ends.
fn objects_loop(
    mut stage: CameraObjects,
    rx: Receiver<DetectedFrame>,
    events: &LinkSender<Outgoing>,
    min_score: f32,
    counters: &CameraCounters,
    beat: Beat,
    freeze: Option<std::path::PathBuf>,
) {
    let mut last = None;
    while let Some(frame) = recv_beating(&rx, &beat) {
        if let Some(path) = &freeze
            && path.exists()
        {
            // The test hook: stuck for good, as a deadlocked stage would be.
            tracing::warn!(path = %path.display(), "LOOKOUT_TEST_FREEZE: this stage freezes now");
            loop {
                std::thread::park_timeout(Duration::from_secs(1));
            }
        }
        let out = stage.on_frame(&frame, min_score);
        counters.add_filtered(&stage.take_filtered());
        counters.tracking.store(stage.tracking(), std::sync::atomic::Ordering::Relaxed);
        for msg in out {
            if events.send(msg).is_err() {
                tracing::error!("publisher gone; stopping objects stage");
                return;
            }
        }
        last = Some(frame.meta);
    }
    if let Some(meta) = last {
        for msg in stage.finish(meta) {
            let _ = events.send(msg);
        }
    }
    counters.tracking.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Snapshots on disk: `<dir>/<camera>/<object_id>.jpg`, the latest (best) one per object,
/// deleted after the retention period.
struct SnapshotStore {
    dir: std::path::PathBuf,
    retain: Duration,
    enabled: bool,
    last_sweep: Option<Instant>,
    warned: bool,
}

impl SnapshotStore {
    fn new(dir: std::path::PathBuf, retain: Duration, enabled: bool) -> SnapshotStore {
        SnapshotStore { dir, retain, enabled, last_sweep: None, warned: false }
    }

    fn save(&mut self, camera: &str, object_id: &str, jpeg: &[u8]) {
        if !self.enabled {
            return;
        }
        let dir = self.dir.join(camera);
        let path = dir.join(format!("{object_id}.jpg"));
        // Write then rename, so a reader never sees half a JPEG.
        let tmp = dir.join(format!(".{object_id}.jpg.tmp"));
        let r = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&tmp, jpeg)).and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = r
            && !std::mem::replace(&mut self.warned, true)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot save snapshots (they are still published); check snapshots.dir and its permissions");
        }
        self.sweep();
    }

    /// Delete snapshots older than the retention period, at most once a minute.
    fn sweep(&mut self) {
        if self.last_sweep.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return;
        }
        self.last_sweep = Some(Instant::now());
        let Ok(cameras) = std::fs::read_dir(&self.dir) else { return };
        for cam in cameras.flatten() {
            let Ok(files) = std::fs::read_dir(cam.path()) else { continue };
            for f in files.flatten() {
                let old = f.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age > self.retain);
                if old && f.path().extension().is_some_and(|x| x == "jpg") {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
    }
}

/// How the run loop tells the publisher to finish: the stop deadline (SIGTERM plus
/// `shutdown_timeout_seconds`), and that nothing more will be sent that it must wait for.
#[derive(Debug, Clone, Default)]
struct PublisherClose(Arc<Mutex<(Option<Instant>, bool)>>);

impl PublisherClose {
    fn deadline(&self, at: Instant) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0 = Some(at);
    }

    /// The final stats are sent: take what is queued and finish, even if a stuck stage still
    /// holds the event link open.
    fn close(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
    }

    fn get(&self) -> (Option<Instant>, bool) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn publish_loop(rx: Receiver<Outgoing>, mut sink: Sink, flush_timeout: Duration, metrics: &Metrics, mut store: SnapshotStore, beat: Beat, closing: &PublisherClose) -> DeliveryReport {
    let mut handle = |msg: Outgoing, sink: &mut Sink| {
        if let Topic::Snapshot { camera, object_id } = &msg.topic {
            store.save(camera, object_id, &msg.payload);
        }
        if let (Some(at), Some(camera)) = (msg.captured_at, msg.topic.camera()) {
            // Age as the message leaves us for the broker's client queue (or stdout).
            let age = SystemTime::now().duration_since(at).unwrap_or_default();
            metrics.frame_age_seconds.get_or_create(&[("camera", camera.to_string())]).observe(age.as_secs_f64());
        }
        sink.publish(msg);
    };
    loop {
        beat.beat();
        match rx.recv_timeout(IDLE_BEAT) {
            Ok(msg) => handle(msg, &mut sink),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if closing.get().1 {
                    // Only a stuck stage still holds the link: take what is there and go.
                    for msg in rx.try_iter() {
                        handle(msg, &mut sink);
                    }
                    break;
                }
            }
        }
    }
    // A stop waits for the broker's acknowledgements no longer than its deadline allows; what
    // is not acknowledged by then stays in the spool for the next run.
    let timeout = match closing.get().0 {
        Some(deadline) => flush_timeout.min(deadline.saturating_duration_since(Instant::now())),
        None => flush_timeout,
    };
    sink.finish(timeout)
}

fn stats_message(
    gateway_id: &str,
    cameras: &[(String, Arc<CameraCounters>)],
    publish: Option<&PublishCounters>,
    started: Instant,
    (provider, skipped, batches): (&str, &[(String, String)], &BatchCounts),
    is_final: bool,
) -> Outgoing {
    let cams: BTreeMap<&str, CameraSummary> = cameras.iter().map(|(n, c)| (n.as_str(), c.snapshot())).collect();
    let runs = batches.snapshot();
    let inference = payload::InferenceStats { provider, skipped, batches: Some(&runs) };
    let payload = payload::stats_with(gateway_id, SystemTime::now(), started.elapsed().as_secs_f64(), inference, is_final, cams, publish.map(|p| p.snapshot()));
    Outgoing::new(Topic::Stats, payload)
}
