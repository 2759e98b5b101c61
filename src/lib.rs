//! Lookout: video analytics for edge camera gateways.
//!
//! # Layout
//!
//! Frames flow top to bottom; each stage is a module, and each module keeps its pure core
//! (maths, policies, encodings) apart from the thin thread or I/O wrapper around it.
//!
//! ```text
//! config/    lookout.toml + pipelines/*.toml + LOOKOUT__* env → validated `Spec`
//! source/    one GStreamer pipeline per camera, run by its thread → `Frame`s (uridecodebin → rate
//!            gate → scale → convert → appsink → motion gate: `source::motion`, pure)
//! link       bounded crossbeam links with a stated `when_full` policy, and which policies each
//!            link may have (pure); every drop counted
//! detect/    model manifests, letterbox, one decoder per family (YOLOX, NanoDet, anchor-free YOLO)
//!            and NMS (pure), execution providers, the ONNX Runtime session, and the worker
//!            thread (`detect::worker`) that batches frames across cameras
//! batch      frames from several cameras gathered into one run, for GPU/NPU providers (pure)
//! track/     ByteTrack-style tracker (pure): Kalman, Hungarian, two-stage association
//! rules/     filters, masks, zones, counting lines, stationary objects (pure)
//! objects/   per camera: detections → filters → tracker → lifecycle (new/update/end) + rules,
//!            and its thread (`objects::stage`)
//! publish/   event payloads and the stats message (pure), the publisher thread and snapshot
//!            store (`publish::stage`), and the sinks: MQTT (rumqttc, QoS 1, with an on-disk spool
//!            for broker outages and restarts) or JSON lines on stdout
//! pipeline/  assembles the stages for `lookout run` (one entry point, `pipeline::run`, given its
//!            edges: shutdown, sink, health, reloads, hooks), starts and stops cameras and detector
//!            pools (`running`), and applies reloads (`apply`)
//! reload     what a new config changes (SIGHUP): cameras added, removed, changed, held back (pure)
//! text       edit distance and the one "did you mean" rule (pure, imports nothing of ours)
//! logfmt     log records kept to one line: line breaks in fields escaped (pure)
//! annotate   boxes and labels drawn onto images for `lookout detect --annotate` and snapshots
//! metrics    Prometheus /metrics and /healthz over HTTP (prometheus-client)
//! shutdown   the stop flag every thread of ours watches
//! stats      per-camera counters shared by the stages, and the summary they reconcile to
//! notify     sd_notify over $NOTIFY_SOCKET (std only): READY, STATUS, WATCHDOG, STOPPING
//! supervisor stage-thread heartbeats → READY once up, STATUS lines, WATCHDOG only while all move
//! bench/     `lookout bench`: each benchmark against a baseline measured in the same run, the
//!            whole-daemon ones in `bench::daemon`; detections compared by `detect::compare`
//! cli/       one file per subcommand: run, check, detect, bench (flags → `bench`)
//! ```
//!
//! Threads and bounded channels only: no async runtime. GStreamer's streaming threads belong
//! to GStreamer; every other thread is ours, named, and exits on the shutdown signal.

pub mod annotate;
pub mod batch;
pub mod bench;
pub mod cli;
pub mod config;
pub mod detect;
pub mod link;
pub mod logfmt;
pub mod metrics;
pub mod notify;
pub mod objects;
pub mod pipeline;
pub mod publish;
pub mod reload;
pub mod rules;
pub mod shutdown;
pub mod source;
pub mod stats;
pub mod supervisor;
pub mod text;
pub mod track;
