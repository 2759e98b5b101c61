//! Assembly for `lookout run`: sources, detect workers and the publisher as named threads
//! joined by bounded links.
//!
//! ```text
//! src-<camera> [rate gate, motion gate] ──frames (drop_oldest, per camera)──▶ detect-<n>
//!     ──detections (block, per camera)──▶ objects-<camera> (tracker, rules, lifecycle)
//!     ──events (block)──▶ publish ◀── stats
//! ```
//!
//! Each thread's loop lives with its stage: [`crate::source::run_camera`],
//! [`crate::detect::worker`], [`crate::objects::stage`], [`crate::publish::stage`]. This module
//! only wires them: [`run`] here, the cameras and detector pools in `running`, reloads in
//! `apply` (deciding with [`crate::reload::plan`]).
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

mod apply;
mod detectors;
mod requests;
mod running;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::batch::BatchCounts;
use crate::config::{CameraSpec, Spec};
use crate::detect::DetectError;
use crate::link::{self, LinkSender};
use crate::metrics::Metrics;
use crate::notify;
use crate::objects::discovery;
use crate::publish::mqtt::{Commands, DetectSwitches, MqttSink};
use crate::publish::report::{Registry, registry_now, run_reporter, stats_message};
use crate::publish::stage::{PublisherClose, SnapshotStore, publish_loop};
use crate::publish::{DeliveryReport, Outgoing, Sink, Topic};
use crate::shutdown::Shutdown;
use crate::source::{self, Outcome};
use crate::stats::CameraSummary;
use crate::supervisor::Health;
use crate::web;
use detectors::{detector_keys, load_detectors};
use running::{Running, WorkerRun, join_until, spawn};

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

/// How long the end of a run waits for the web thread: a browser holding a connection open
/// must not hold up the exit.
const WEB_STOP_TIMEOUT: Duration = Duration::from_secs(2);

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

/// What a run is connected to from outside, passed in (as mini-redis's server takes its
/// listener and shutdown signal) so that the daemon, the benchmarks and the tests each give
/// their own.
pub struct Edges<'a> {
    /// The stop signal: SIGTERM in the daemon.
    pub shutdown: &'a Shutdown,
    /// Where events go; `None`: as the config says (MQTT, else stdout). Benchmarks discard.
    pub sink: Option<Sink>,
    /// Told each stage thread's heartbeat, each camera's state and when every thread has
    /// started (see [`crate::supervisor`]).
    pub health: Health,
    /// Validated configs to apply while running (SIGHUP, see [`crate::reload`]); READY=1 is
    /// sent after each.
    pub reloads: Option<&'a Receiver<Spec>>,
    pub hooks: TestHooks,
    /// Serve the console (`[web]`, with /metrics and /healthz) as the daemon does; `false` for
    /// benchmarks and tests of the pipeline alone. `[metrics] listen` is served either way.
    pub console: bool,
}

impl<'a> Edges<'a> {
    /// Only a stop signal: the config's sink, no supervisor, no reloads, no hooks.
    pub fn new(shutdown: &'a Shutdown) -> Edges<'a> {
        Edges {
            shutdown,
            sink: None,
            health: Health::default(),
            reloads: None,
            hooks: TestHooks::default(),
            console: false,
        }
    }
}

/// Run every camera of `spec` until all have finished or `edges.shutdown` is triggered.
pub fn run(spec: &Spec, edges: Edges<'_>) -> Result<RunReport, PipelineError> {
    let Edges { shutdown, sink, health, reloads, hooks, console } = edges;
    // The profile the last run left in force applies from the start.
    let (spec, profile) = requests::starting_spec(spec);
    let spec = &spec;
    let health = &health;
    source::apply_decoder_preferences(spec.cameras.iter().map(CameraSpec::as_source))?;
    // Load every model's detectors before any camera starts: a missing model or runtime is
    // reported once, clearly, instead of as a failing camera.
    let mut loaded = Vec::new();
    for (model, key) in detector_keys(spec) {
        let detectors = load_detectors(&key, false)?;
        loaded.push((model, key, detectors));
    }
    // The gateway's model speaks for the provider in the stats (every model gets the same list).
    let main =
        loaded.iter().find(|(m, _, _)| *m == spec.inference.model).or(loaded.first()).and_then(|(_, _, d)| d.first());
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
    // Zone and line switches, as saved by the last run (docs/mqtt.md, "Switches").
    let toggles = crate::toggles::Toggles::load(&spec.toggles_file);
    // Profile and camera-file requests from MQTT (`crate::remote`), applied one at a time.
    let (requests_tx, requests_rx) = crossbeam_channel::bounded::<crate::publish::mqtt::Incoming>(8);
    let sink = match (sink, &spec.mqtt) {
        (Some(s), _) => s,
        (None, Some(m)) => Sink::Mqtt(MqttSink::connect_with(
            m,
            Commands {
                detect: switches.clone(),
                toggles: toggles.clone(),
                requests: Some(requests_tx.clone()),
                subscriptions: crate::remote::subscriptions(&m.topic_prefix, m.remote_config),
            },
        )),
        (None, None) => Sink::stdout(),
    };
    let publish_counters = sink.counters();
    let metrics = Metrics::with_batches(Vec::new(), Vec::new(), provider, publish_counters.clone(), batches.clone());
    // A saved camera file from the console comes back here, validated, and is applied as a
    // SIGHUP's config is.
    let (console_tx, console_rx) = crossbeam_channel::bounded::<Spec>(1);
    let mut web_spec = spec.clone();
    web_spec.web.enabled &= console;
    let console = web::Console::new(&web_spec, metrics.clone(), console_tx);
    // Stopped on its own when the run ends: a file run ends without the daemon's shutdown.
    let web_server = web::serve(console.clone(), spec.metrics_listen);

    let (events_tx, events_rx) =
        link::bounded::<Outgoing>(spec.events_link.capacity, spec.events_link.when_full, Default::default());
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
        toggles,
        registry: registry.clone(),
        profile,
    };
    for (model, key, detectors) in loaded {
        p.start_pool(model, key, detectors, spec.inference.max_batch_wait)?;
    }
    for cam in spec.cameras.clone() {
        p.start_camera(cam)?;
    }
    p.publish_camera_set();
    p.report_broken();
    p.publish_profile(None, &Ok(Default::default()));

    // Periodic stats until every camera has finished.
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let stats_thread = {
        let pc = publish_counters.clone();
        let (reg, ev, gw, every, sk, runs) = (
            registry.clone(),
            p.events.clone(),
            spec.gateway_id.clone(),
            spec.stats_interval,
            skipped.clone(),
            batches.clone(),
        );
        spawn("stats", move || {
            run_reporter(every, &done_rx, &ev, || {
                stats_message(&gw, &registry_now(&reg), pc.as_deref(), started, (provider, &sk, &runs), false)
            })
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
            tracing::info!(
                shutdown_timeout_s = timeout.as_secs_f64(),
                "stopping: sources stop, frames in flight finish, events are flushed"
            );
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
                    p.reload(new);
                    console.set_spec(&p.spec);
                    notify::ready();
                }
                Ok(_) => tracing::warn!("reload ignored: the daemon is stopping"),
                // The reload thread is gone (the daemon is stopping): no more reloads.
                Err(_) => reloads = &never,
            },
            recv(console_rx) -> msg => match msg {
                Ok(new) if stop_deadline.is_none() => {
                    tracing::info!("reloading: a camera file saved from the console");
                    notify::reloading();
                    p.reload(new);
                    console.set_spec(&p.spec);
                    notify::ready();
                }
                _ => tracing::warn!("console reload ignored: the daemon is stopping"),
            },
            recv(requests_rx) -> msg => match msg {
                Ok(incoming) if stop_deadline.is_none() => {
                    p.incoming(incoming);
                    console.set_spec(&p.spec);
                    notify::ready();
                }
                _ => {}
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
    let late: Vec<&str> =
        p.cameras.iter().filter(|c| c.source.is_some() || c.objects.is_some()).map(|c| c.spec.name.as_str()).collect();
    if !late.is_empty() {
        tracing::warn!(cameras = %late.join(", "), "shutdown_timeout_seconds passed with these cameras' stages still busy; what they produced so far is flushed or spooled, the rest is abandoned");
    }
    drop(done_tx);
    join_until(stats_thread, deadline);
    let processed = started.elapsed();

    let _ = p.events.send(stats_message(
        &p.spec.gateway_id,
        &registry_now(&registry),
        publish_counters.as_deref(),
        started,
        (provider, &skipped, &batches),
        true,
    ));
    closing.close();
    let Running { events, cameras, books, .. } = p;
    drop(events);
    let delivery = publisher.join().unwrap_or_default();
    if let Some(server) = web_server {
        server.stop(WEB_STOP_TIMEOUT);
    }
    let elapsed = started.elapsed();

    // Every camera that ran, in order of first start, with its latest outcome and its books
    // over the whole run (a camera restarted by a reload keeps counting).
    let reports: Vec<CameraReport> = books
        .into_iter()
        .map(|(name, c, outcome)| {
            let outcome = cameras
                .iter()
                .find(|r| r.spec.name == name)
                .and_then(|r| r.outcome.clone())
                .or(outcome)
                .unwrap_or(Outcome::Stopped);
            CameraReport { name, outcome, summary: c.snapshot() }
        })
        .collect();
    let inferred: u64 = reports.iter().map(|c| c.summary.inferred).sum();
    let frames_per_second = inferred as f64 / processed.as_secs_f64().max(1e-9);
    Ok(RunReport {
        cameras: reports,
        delivery,
        frames_per_second,
        elapsed,
        flushing: elapsed.saturating_sub(processed),
    })
}

/// What Home Assistant discovery needs of each camera of `spec`.
fn discovery_cameras(spec: &Spec) -> Vec<discovery::Camera<'_>> {
    spec.cameras
        .iter()
        .map(|c| discovery::Camera {
            name: &c.name,
            labels: c.detect.labels.as_deref(),
            objects: &c.objects,
            switches: c.switches(),
        })
        .collect()
}

/// Every discovery message of `spec`: each camera's entities, and the gateway's profile select
/// when some camera defines a profile.
fn discovery_messages(spec: &Spec, topic_prefix: &str, discovery_prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = discovery::messages(&spec.gateway_id, &discovery_cameras(spec), topic_prefix, discovery_prefix);
    if !spec.profiles.is_empty() {
        out.push(discovery::profile_select(&spec.gateway_id, &spec.profile_names(), topic_prefix, discovery_prefix));
    }
    out
}

/// Home Assistant discovery configs for every camera of `spec` (retained, so sending them
/// again after a reload is harmless and covers new cameras).
fn send_discovery(spec: &Spec, events: &LinkSender<Outgoing>) {
    if let Some(m) = &spec.mqtt
        && let Some(discovery_prefix) = &m.discovery_prefix
    {
        for (topic, payload) in discovery_messages(spec, &m.topic_prefix, discovery_prefix) {
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
        let topics = |s: &Spec| {
            discovery_messages(s, &m.topic_prefix, discovery_prefix)
                .into_iter()
                .map(|(t, _)| t)
                .collect::<BTreeSet<String>>()
        };
        let still = topics(new);
        for topic in topics(old).difference(&still) {
            let _ = events.send(Outgoing::new(Topic::Discovery(topic.clone()), Vec::new()));
        }
    }
}
