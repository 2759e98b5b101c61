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
//! file run ends with every frame accounted for and every object ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Select};

use crate::config::{CameraSpec, Spec};
use crate::detect::letterbox::Geometry;
use crate::detect::{DetectError, Detector, DetectorOptions};
use crate::metrics::{self, Metrics};
use crate::link::{self, LinkSender};
use crate::objects::snapshot::FrameImage;
use crate::objects::{CameraObjects, DetectedFrame};
use crate::publish::mqtt::DetectSwitches;
use crate::publish::{DeliveryReport, Outgoing, Sink, Topic, discovery, mqtt::MqttSink, payload};
use std::sync::atomic::AtomicBool;
use crate::shutdown::Shutdown;
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
    pub frames_per_second: f64,
    pub elapsed: Duration,
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
    source::apply_decoder_preferences(&spec.cameras)?;
    // Load every detector before any camera starts: a missing model or runtime is reported
    // once, clearly, instead of as a failing camera.
    // The tracker extends tracks with low-score detections (ByteTrack), so the detector
    // keeps everything down to the lowest `track.low_score` of any camera.
    let score_threshold = spec.cameras.iter().map(|c| c.objects.tracker.low_score.min(c.detect.min_score)).fold(f32::INFINITY, f32::min);
    let base = DetectorOptions::new(spec.inference.model.clone(), spec.inference.ort_library.clone());
    let opts = DetectorOptions {
        intra_threads: spec.inference.intra_threads,
        score_threshold: if score_threshold.is_finite() { Some(score_threshold.max(0.01)) } else { base.score_threshold },
        ..base
    };
    // Rules were validated with the config; building them again can't fail, but say so if it does.
    let stages: Vec<CameraObjects> = spec
        .cameras
        .iter()
        .map(|c| CameraObjects::new(&spec.gateway_id, c).map_err(|e| PipelineError::Rules(c.name.clone(), Box::new(e))))
        .collect::<Result<_, _>>()?;
    let workers = spec.inference.workers.min(spec.cameras.len().max(1));
    let detectors: Vec<Detector> = (0..workers).map(|_| Detector::load(&opts)).collect::<Result<_, _>>()?;
    let geometry = detectors.first().map(|d| d.geometry()).unwrap_or(Geometry::square(416));
    let provider = detectors.first().map(|d| d.provider()).unwrap_or("cpu");
    if let Some(d) = detectors.first() {
        let m = d.model();
        tracing::info!(model = %m.name, family = m.family.name(), precision = m.precision.as_str(), file = %m.file.display(), provider, workers, "detector ready");
    }

    let started = Instant::now();
    // Detection on/off per camera, flipped by `<camera>/detect/set` over MQTT.
    let switches: DetectSwitches = Arc::new(spec.cameras.iter().map(|c| (c.name.clone(), Arc::new(AtomicBool::new(true)))).collect());
    let sink = match (sink, &spec.mqtt) {
        (Some(s), _) => s,
        (None, Some(m)) => Sink::Mqtt(MqttSink::connect_with(m, switches.clone())),
        (None, None) => Sink::stdout(),
    };
    let counters: Vec<Arc<CameraCounters>> = spec.cameras.iter().map(|_| Arc::new(CameraCounters::default())).collect();
    let publish_counters = sink.counters();
    let metrics = Metrics::with_publish(spec.cameras.iter().map(|c| c.name.clone()).collect(), counters.clone(), provider, publish_counters.clone());
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
    let m = metrics.clone();
    let store = SnapshotStore::new(spec.snapshot_dir.clone(), spec.snapshot_retain, spec.cameras.iter().any(|c| c.objects.snapshots.enabled));
    let beat = health.heartbeat("publish");
    let publisher = spawn("publish", move || publish_loop(events_rx, sink, flush_timeout, &m, store, beat))?;
    if let Some(m) = &spec.mqtt
        && let Some(discovery_prefix) = &m.discovery_prefix
    {
        for (topic, payload) in discovery::messages(spec, &m.topic_prefix, discovery_prefix) {
            let _ = events_tx.send(Outgoing::new(Topic::Discovery(topic), payload));
        }
    }

    // Cameras are sharded over workers so that each camera's frames are detected, and its
    // events published, in capture order.
    let mut shards: Vec<Vec<Receiver<Frame>>> = (0..workers).map(|_| Vec::new()).collect();
    let mut sources = Vec::new();
    for (i, cam) in spec.cameras.iter().enumerate() {
        // drop_oldest and drop_newest both count as link_full: a frame found the link full
        // and one frame was discarded; they differ only in which one.
        let (tx, rx) = link::bounded::<Frame>(cam.links.frames.capacity, cam.links.frames.when_full, counters[i].dropped_link_full.clone());
        shards[i % workers].push(rx);
        let (cam, c, ev, sd, gw, m, hl) =
            (cam.clone(), counters[i].clone(), events_tx.clone(), shutdown.clone(), spec.gateway_id.clone(), metrics.clone(), health.clone());
        let name = format!("src-{}", cam.name);
        sources.push(spawn(&name, move || {
            tracing::info!(camera = %cam.name, uri = %cam.uri_redacted, fps = cam.detect.fps, "camera starting");
            source::run_camera(i, &cam, geometry, tx, c, &sd, |change| {
                m.cameras().set(i, state_name(&change));
                hl.camera_state(i, &change);
                report_state(&gw, &cam, &ev, change)
            })
        })?);
    }

    // One objects stage per camera, fed by whichever worker detects for it.
    let mut detected_txs = Vec::new();
    let mut stage_handles = Vec::new();
    for ((cam, stage), ctr) in spec.cameras.iter().zip(stages).zip(&counters) {
        let (tx, rx) = link::bounded::<DetectedFrame>(cam.links.detections.capacity, cam.links.detections.when_full, Default::default());
        detected_txs.push(tx);
        let (ev, min_score, name, ctr) = (events_tx.clone(), cam.detect.min_score, format!("objects-{}", cam.name), ctr.clone());
        let beat = health.heartbeat(&name);
        stage_handles.push(spawn(&name, move || objects_loop(stage, rx, &ev, min_score, &ctr, beat))?);
    }

    let mut worker_handles = Vec::new();
    for (n, (detector, rxs)) in detectors.into_iter().zip(shards).enumerate() {
        let (ctr, dtx, m) = (counters.clone(), detected_txs.clone(), metrics.clone());
        let on: Vec<Arc<AtomicBool>> = spec.cameras.iter().map(|c| switches.get(&c.name).cloned().unwrap_or_default()).collect();
        let min_scores: Vec<f32> = spec.cameras.iter().map(|c| c.detect.min_score).collect();
        let snapshots: Vec<bool> = spec.cameras.iter().map(|c| c.objects.snapshots.enabled).collect();
        let names: Vec<String> = spec.cameras.iter().map(|c| c.name.clone()).collect();
        let beat = health.heartbeat(&format!("detect-{n}"));
        let delay = hooks.extra_inference_delay;
        worker_handles.push(spawn(&format!("detect-{n}"), move || detect_loop(detector, rxs, &names, &min_scores, &snapshots, &on, &ctr, &dtx, &m, beat, delay))?);
    }
    // The workers hold the only senders now: the stages end when the workers do.
    drop(detected_txs);
    health.started(&spec.cameras.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), &counters);

    // Periodic stats until every camera has finished.
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let stats_thread = {
        let pc = publish_counters.clone();
        let (names, ctr, ev, gw, every) = (
            spec.cameras.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
            counters.clone(),
            events_tx.clone(),
            spec.gateway_id.clone(),
            spec.stats_interval,
        );
        spawn("stats", move || {
            let tick = crossbeam_channel::tick(every);
            loop {
                crossbeam_channel::select! {
                    recv(tick) -> _ => { let _ = ev.send(stats_message(&gw, &names, &ctr, pc.as_deref(), started, provider, false)); }
                    recv(done_rx) -> _ => break,
                }
            }
        })?
    };

    let outcomes: Vec<Outcome> = sources
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| Outcome::Failed("camera thread panicked".into())))
        .collect();
    for h in worker_handles {
        let _ = h.join();
    }
    for h in stage_handles {
        let _ = h.join();
    }
    drop(done_tx);
    let _ = stats_thread.join();

    let names: Vec<String> = spec.cameras.iter().map(|c| c.name.clone()).collect();
    let _ = events_tx.send(stats_message(&spec.gateway_id, &names, &counters, publish_counters.as_deref(), started, provider, true));
    drop(events_tx);
    let delivery = publisher.join().unwrap_or_default();
    metrics_stop.trigger();
    if let Some(h) = metrics_server {
        let _ = h.join();
    }
    let elapsed = started.elapsed();

    let cameras: Vec<CameraReport> = spec
        .cameras
        .iter()
        .zip(outcomes)
        .zip(&counters)
        .map(|((cam, outcome), c)| CameraReport { name: cam.name.clone(), outcome, summary: c.snapshot() })
        .collect();
    let inferred: u64 = cameras.iter().map(|c| c.summary.inferred).sum();
    Ok(RunReport { cameras, delivery, frames_per_second: inferred as f64 / elapsed.as_secs_f64().max(1e-9), elapsed })
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
        StateChange::Finished(Outcome::Ended) => "ended",
        StateChange::Finished(Outcome::Stopped) => "stopped",
        StateChange::Finished(Outcome::Failed(_)) => "failed",
    }
}

fn report_state(gateway_id: &str, cam: &CameraSpec, events: &LinkSender<Outgoing>, change: StateChange) {
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
        StateChange::Finished(Outcome::Stopped) => ("stopped", Some("shutdown"), None, None),
        StateChange::Finished(Outcome::Failed(r)) => ("failed", Some(r.as_str()), None, None),
    };
    match &change {
        StateChange::Finished(Outcome::Failed(r)) => tracing::error!(camera = %cam.name, reason = %r, "camera failed"),
        StateChange::ClockSkew { .. } => tracing::warn!(camera = %cam.name, "{}", reason.unwrap_or_default()),
        StateChange::Reconnecting { reason, retry_in } => {
            tracing::warn!(camera = %cam.name, uri = %cam.uri_redacted, reason = %reason, retry_in_s = format!("{:.1}", retry_in.as_secs_f64()), "camera reconnecting")
        }
        _ => tracing::info!(camera = %cam.name, state, decoder = decoder.unwrap_or("-"), "camera state"),
    }
    let payload = payload::camera_status(gateway_id, &cam.name, state, reason, decoder, retry_in, &cam.uri_redacted, now);
    let _ = events.send(Outgoing::new(Topic::CameraStatus(cam.name.clone()), payload));
}

/// One worker: detect on frames from its cameras, fairly, until all their links close, and
/// hand every inferred frame (with or without detections: the tracker needs both) to the
/// camera's objects stage.
fn detect_loop(
    mut detector: Detector,
    rxs: Vec<Receiver<Frame>>,
    names: &[String],
    min_scores: &[f32],
    snapshots: &[bool],
    detect_on: &[Arc<AtomicBool>],
    counters: &[Arc<CameraCounters>],
    stages: &[LinkSender<DetectedFrame>],
    metrics: &Metrics,
    beat: Beat,
    extra_delay: Duration,
) {
    let mut sel = Select::new();
    for rx in &rxs {
        sel.recv(rx);
    }
    let mut open = rxs.len();
    while open > 0 {
        // Select picks fairly among the ready links, so a busy camera can't starve a quiet one.
        // The timeout keeps an idle worker beating.
        beat.beat();
        let Ok(op) = sel.select_timeout(IDLE_BEAT) else { continue };
        let i = op.index();
        let frame = match op.recv(&rxs[i]) {
            Ok(f) => f,
            Err(_) => {
                sel.remove(i);
                open -= 1;
                continue;
            }
        };
        let ctr = &counters[frame.camera];
        if !detect_on[frame.camera].load(std::sync::atomic::Ordering::Relaxed) {
            // Switched off: the frame is counted, and the objects stage sees an empty frame,
            // so tracked objects end as they would if the scene emptied.
            ctr.dropped(DropReason::DetectOff);
            let meta = frame_meta(&frame);
            if stages[frame.camera].send(DetectedFrame { meta, pts: frame.pts, detections: Vec::new(), image: None }).is_err() {
                return;
            }
            continue;
        }
        let result = detector.detect_scaled(&frame.data, frame.width, frame.height, frame.stride, frame.src_width, frame.src_height);
        if !extra_delay.is_zero() {
            // TestHooks only: a slower detector, not a wait for anything.
            std::thread::sleep(extra_delay);
        }
        match result {
            Ok((detections, timings)) => {
                ctr.inferred.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ctr.infer_micros_total.fetch_add(timings.infer.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
                ctr.pre_micros_total.fetch_add(timings.pre.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
                metrics.inference_seconds.get_or_create(&metrics.camera_label(frame.camera)).observe(timings.infer.as_secs_f64());
                let confident = detections.iter().filter(|d| d.score >= min_scores[frame.camera]).count();
                ctr.detections.fetch_add(confident as u64, std::sync::atomic::Ordering::Relaxed);
                let meta = frame_meta(&frame);
                // Snapshots need the pixels after the frame's buffer goes back to GStreamer.
                let image = snapshots[frame.camera].then(|| frame_image(&frame)).flatten();
                let detected = DetectedFrame { meta, pts: frame.pts, detections, image };
                if stages[frame.camera].send(detected).is_err() {
                    tracing::error!(camera = %names[frame.camera], "objects stage gone; stopping detect worker");
                    return;
                }
            }
            Err(e) => {
                ctr.dropped(DropReason::InferenceError);
                tracing::warn!(camera = %names[frame.camera], error = %e, "inference failed on a frame; frame dropped");
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
fn objects_loop(mut stage: CameraObjects, rx: Receiver<DetectedFrame>, events: &LinkSender<Outgoing>, min_score: f32, counters: &CameraCounters, beat: Beat) {
    let mut last = None;
    while let Some(frame) = recv_beating(&rx, &beat) {
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

fn publish_loop(rx: Receiver<Outgoing>, mut sink: Sink, flush_timeout: Duration, metrics: &Metrics, mut store: SnapshotStore, beat: Beat) -> DeliveryReport {
    while let Some(msg) = recv_beating(&rx, &beat) {
        if let Topic::Snapshot { camera, object_id } = &msg.topic {
            store.save(camera, object_id, &msg.payload);
        }
        if let (Some(at), Some(camera)) = (msg.captured_at, msg.topic.camera()) {
            // Age as the message leaves us for the broker's client queue (or stdout).
            let age = SystemTime::now().duration_since(at).unwrap_or_default();
            metrics.frame_age_seconds.get_or_create(&[("camera", camera.to_string())]).observe(age.as_secs_f64());
        }
        sink.publish(msg);
    }
    sink.finish(flush_timeout)
}

fn stats_message(
    gateway_id: &str,
    names: &[String],
    counters: &[Arc<CameraCounters>],
    publish: Option<&PublishCounters>,
    started: Instant,
    provider: &str,
    is_final: bool,
) -> Outgoing {
    let cams: BTreeMap<&str, CameraSummary> = names.iter().map(|n| n.as_str()).zip(counters.iter().map(|c| c.snapshot())).collect();
    let payload = payload::stats(gateway_id, SystemTime::now(), started.elapsed().as_secs_f64(), provider, is_final, cams, publish.map(|p| p.snapshot()));
    Outgoing::new(Topic::Stats, payload)
}
