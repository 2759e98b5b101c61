//! Prometheus metrics and the health check, for scrapers and load balancers: what
//! `GET /metrics` (text exposition, prometheus-client) and `GET /healthz` (JSON) answer. The web
//! server (`crate::web`) serves them, on `[web] listen` and on `[metrics] listen` if set:
//!
//! ```toml
//! [metrics]
//! listen = "127.0.0.1:9464"   # absent: only on [web] listen
//! ```
//!
//! The per-camera counters already live in [`CameraCounters`] (the stages bump them); a
//! collector reads them at scrape time rather than keeping a second copy that could disagree
//! with the stats topic. Latencies are histograms the stages observe directly. The same camera
//! list, with each camera's state and why, is what the console shows ([`CameraStates::snapshot`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::batch::BatchCounts;
use crate::stats::{CameraCounters, PublishCounters};

type CameraLabel = [(&'static str, String); 1];

/// What the stages share with the endpoint.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Inference latency per camera, seconds.
    pub inference_seconds: Family<CameraLabel, Histogram>,
    /// Capture time to hand-over to the MQTT client (or stdout), per camera, seconds.
    pub frame_age_seconds: Family<CameraLabel, Histogram>,
    cameras: Arc<CameraStates>,
}

/// Each camera's counters and last reported state, for the collector and /healthz. The set of
/// cameras changes on a config reload ([`CameraStates::set_cameras`]).
#[derive(Debug)]
pub struct CameraStates {
    cameras: Mutex<Vec<CameraEntry>>,
    started: Instant,
    provider: &'static str,
    /// Inference runs per batch size, shared with the detect workers.
    batches: Arc<BatchCounts>,
}

/// One camera as /metrics, /healthz and the console see it.
#[derive(Debug, Clone)]
pub struct CameraEntry {
    pub name: String,
    pub counters: Arc<CameraCounters>,
    pub state: &'static str,
    /// Why it is in that state (a reconnect's or a failure's reason), if there is one.
    pub reason: Option<String>,
    /// The decoder its stream runs on, once streaming.
    pub decoder: Option<String>,
}

impl CameraEntry {
    fn new(name: String, counters: Arc<CameraCounters>, state: &'static str) -> CameraEntry {
        CameraEntry { name, counters, state, reason: None, decoder: None }
    }
}

impl CameraStates {
    /// Record a camera's state (connecting, streaming, reconnecting, ended, stopped, failed).
    pub fn set(&self, camera: &str, state: &'static str) {
        if let Ok(mut s) = self.cameras.lock()
            && let Some(entry) = s.iter_mut().find(|e| e.name == camera)
        {
            entry.state = state;
        }
    }

    /// As [`CameraStates::set`], with the reason for the state and, once streaming, the decoder
    /// (kept until the next one is known).
    pub fn set_detail(&self, camera: &str, state: &'static str, reason: Option<String>, decoder: Option<String>) {
        if let Ok(mut s) = self.cameras.lock()
            && let Some(entry) = s.iter_mut().find(|e| e.name == camera)
        {
            entry.state = state;
            entry.reason = reason;
            if decoder.is_some() {
                entry.decoder = decoder;
            }
        }
    }

    /// The cameras now configured, after a reload. A camera that stays keeps its state (and its
    /// counters, which are the same `Arc`); a new one starts as connecting.
    pub fn set_cameras(&self, names: &[String], counters: &[Arc<CameraCounters>]) {
        if let Ok(mut s) = self.cameras.lock() {
            let old = std::mem::take(&mut *s);
            *s = names
                .iter()
                .zip(counters)
                .map(|(n, c)| match old.iter().find(|e| &e.name == n) {
                    Some(e) => CameraEntry { counters: c.clone(), ..e.clone() },
                    None => CameraEntry::new(n.clone(), c.clone(), "connecting"),
                })
                .collect();
        }
    }

    /// Every camera now, in config order.
    pub fn snapshot(&self) -> Vec<CameraEntry> {
        self.cameras.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The states a camera can be in, each a 0/1 gauge so alerts can say `state="failed"`.
const STATES: [&str; 6] = ["connecting", "streaming", "reconnecting", "ended", "stopped", "failed"];

impl Collector for CameraStates {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Read = fn(&CameraCounters) -> u64;
        let counters: [(&str, &str, Read); 9] = [
            ("lookout_frames_decoded", "Frames out of the decoder", |c| c.decoded.load(Ordering::Relaxed)),
            ("lookout_frames_skipped_by_rate", "Frames dropped by the detect-rate gate before scaling", |c| {
                c.skipped_by_rate.load(Ordering::Relaxed)
            }),
            ("lookout_frames_skipped_by_motion", "Frames the motion gate skipped: still scene, nothing tracked", |c| {
                c.skipped_by_motion.load(Ordering::Relaxed)
            }),
            ("lookout_frames_inferred", "Frames the detector ran on", |c| c.inferred.load(Ordering::Relaxed)),
            (
                "lookout_frames_dropped_link_full",
                "Frames replaced by newer ones on a full frame link (latest frame wins)",
                |c| c.dropped_link_full.load(Ordering::Relaxed),
            ),
            ("lookout_frames_dropped_inference_error", "Frames the detector failed on", |c| {
                c.dropped_inference_error.load(Ordering::Relaxed)
            }),
            ("lookout_frames_dropped_detect_off", "Frames not detected on: detection switched off over MQTT", |c| {
                c.dropped_detect_off.load(Ordering::Relaxed)
            }),
            ("lookout_detections", "Detections at or above detect.min_score", |c| c.detections.load(Ordering::Relaxed)),
            ("lookout_inference_microseconds", "Time spent in inference", |c| {
                c.infer_micros_total.load(Ordering::Relaxed)
            }),
        ];
        let cameras = self.snapshot();
        for (name, help, read) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            for e in &cameras {
                let labels: CameraLabel = [("camera", e.name.clone())];
                ConstCounter::new(read(&e.counters)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "lookout_detections_filtered",
            "Detections at or above detect.min_score rejected by the camera's filters and masks, by reason",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for e in &cameras {
            let (n, c) = (&e.name, &e.counters);
            for (reason, count) in crate::stats::Rejected::ALL.iter().zip(&c.filtered) {
                let labels = [("camera", n.clone()), ("reason", reason.as_str().to_string())];
                ConstCounter::new(count.load(Ordering::Relaxed)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "lookout_camera_state",
            "1 for the camera's current state",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for e in &cameras {
            for s in STATES {
                let labels = [("camera", e.name.clone()), ("state", s.to_string())];
                ConstGauge::new(i64::from(e.state == s)).encode(family.encode_family(&labels)?)?;
            }
        }
        // Which model and provider each camera's frames go through: with one model per camera
        // (`detect.model`) the gateway-wide `lookout_execution_provider` can't say it alone.
        let mut family = encoder.encode_descriptor(
            "lookout_camera_model",
            "1 for the model each camera runs and the execution provider that runs it",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for e in &cameras {
            let (model, provider) = e.counters.model();
            // Before its pool is assigned (a camera just added) there is nothing true to say.
            if model.is_empty() {
                continue;
            }
            let labels = [("camera", e.name.clone()), ("model", model), ("provider", provider)];
            ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
        }
        // A variant (INT8, fp16, a smaller input) checked against its fp32 source at load: the
        // recall it reached, and whether it runs (0: refused, its source runs in its place).
        let checks: Vec<(String, crate::stats::VariantCheck)> =
            cameras.iter().filter_map(|e| e.counters.variant_check().map(|c| (e.name.clone(), c))).collect();
        let labels = |camera: &str, c: &crate::stats::VariantCheck| {
            [
                ("camera", camera.to_string()),
                ("variant", c.variant.clone()),
                ("source", c.source.clone()),
                ("provider", c.provider.clone()),
            ]
        };
        let mut family = encoder.encode_descriptor(
            "lookout_variant_recall",
            "Share of the fp32 source's detections a model variant found on the check images when it was loaded",
            None,
            ConstGauge::new(0.0f64).metric_type(),
        )?;
        for (camera, c) in &checks {
            ConstGauge::new(c.recall).encode(family.encode_family(&labels(camera, c))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "lookout_variant_accepted",
            "1 when the model variant passed its check and runs, 0 when it was refused and its fp32 source runs",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        for (camera, c) in &checks {
            ConstGauge::new(i64::from(c.accepted)).encode(family.encode_family(&labels(camera, c))?)?;
        }
        let uptime = encoder.encode_descriptor(
            "lookout_uptime_seconds",
            "Seconds since the pipelines started",
            None,
            ConstGauge::new(0.0f64).metric_type(),
        )?;
        ConstGauge::new(self.started.elapsed().as_secs_f64()).encode(uptime)?;
        let mut info = encoder.encode_descriptor(
            "lookout_execution_provider",
            "The ONNX Runtime execution provider in use",
            None,
            ConstGauge::new(0i64).metric_type(),
        )?;
        ConstGauge::new(1i64).encode(info.encode_family(&[("provider", self.provider)])?)?;
        let mut runs = encoder.encode_descriptor(
            "lookout_inference_batches",
            "Inference runs by batch size (frames from several cameras in one run, on a GPU or NPU provider)",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (size, n) in self.batches.snapshot() {
            ConstCounter::new(n).encode(runs.encode_family(&[("size", size.to_string())])?)?;
        }
        Ok(())
    }
}

/// The MQTT publisher's counters, read at scrape time like the cameras'.
#[derive(Debug)]
struct PublishCollector(Arc<PublishCounters>);

impl Collector for PublishCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.0;
        let plain: [(&str, &str, &std::sync::atomic::AtomicU64); 3] = [
            ("lookout_mqtt_messages_delivered", "Messages the MQTT broker acknowledged", &c.delivered),
            (
                "lookout_mqtt_messages_spooled",
                "Messages written to the on-disk spool (broker away or in-flight window full)",
                &c.spooled,
            ),
            ("lookout_mqtt_messages_replayed", "Spooled messages later acknowledged by the broker", &c.replayed),
        ];
        for (name, help, v) in plain {
            let m = encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
            ConstCounter::new(v.load(Ordering::Relaxed)).encode(m)?;
        }
        let mut family = encoder.encode_descriptor(
            "lookout_mqtt_messages_dropped",
            "MQTT messages dropped: spool_full (oldest dropped to stay within spool.max_bytes) or not_spooled (no usable spool)",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (reason, v) in [("spool_full", &c.dropped_spool_full), ("not_spooled", &c.dropped_not_spooled)] {
            ConstCounter::new(v.load(Ordering::Relaxed)).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        Ok(())
    }
}

impl Metrics {
    pub fn new(names: Vec<String>, counters: Vec<Arc<CameraCounters>>, provider: &'static str) -> Arc<Metrics> {
        Metrics::with_publish(names, counters, provider, None)
    }

    /// As [`Metrics::new`], also exposing the MQTT publisher's counters.
    pub fn with_publish(
        names: Vec<String>,
        counters: Vec<Arc<CameraCounters>>,
        provider: &'static str,
        publish: Option<Arc<PublishCounters>>,
    ) -> Arc<Metrics> {
        Metrics::with_batches(names, counters, provider, publish, Arc::default())
    }

    /// As [`Metrics::with_publish`], with the detect workers' batch-size counts.
    pub fn with_batches(
        names: Vec<String>,
        counters: Vec<Arc<CameraCounters>>,
        provider: &'static str,
        publish: Option<Arc<PublishCounters>>,
        batches: Arc<BatchCounts>,
    ) -> Arc<Metrics> {
        let mut registry = Registry::default();
        // 1 ms .. ~4 s: CPU inference is 10-100 ms, a GPU's ~1 ms.
        let inference_seconds = Family::<CameraLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 13))
        });
        // 10 ms .. ~80 s: events normally leave well under a second after capture; the top
        // buckets show a backlog.
        let frame_age_seconds = Family::<CameraLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        registry.register("lookout_inference_seconds", "Inference latency per frame", inference_seconds.clone());
        registry.register(
            "lookout_frame_age_at_publish_seconds",
            "From a frame's capture to its events leaving for the broker",
            frame_age_seconds.clone(),
        );
        let entries = names
            .into_iter()
            .zip(counters)
            .map(|(name, counters)| CameraEntry::new(name, counters, "connecting"))
            .collect();
        let cameras =
            Arc::new(CameraStates { cameras: Mutex::new(entries), started: Instant::now(), provider, batches });
        registry.register_collector(Box::new(cameras.clone()));
        if let Some(p) = publish {
            registry.register_collector(Box::new(PublishCollector(p)));
        }
        Arc::new(Metrics { registry, inference_seconds, frame_age_seconds, cameras })
    }

    pub fn provider(&self) -> &'static str {
        self.cameras.provider
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.cameras.started.elapsed()
    }

    pub fn cameras(&self) -> &CameraStates {
        &self.cameras
    }

    pub fn camera_label(camera: &str) -> CameraLabel {
        [("camera", camera.to_string())]
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// `/healthz`: 200 while no camera has failed, else 503; the body says why.
    pub fn health(&self) -> (u16, String) {
        let entries = self.cameras.snapshot();
        let failed: Vec<&str> = entries.iter().filter(|e| e.state == "failed").map(|e| e.name.as_str()).collect();
        let cameras: serde_json::Map<String, serde_json::Value> =
            entries.iter().map(|e| (e.name.clone(), serde_json::Value::from(e.state))).collect();
        let status = if failed.is_empty() { "ok" } else { "failed" };
        let body = serde_json::json!({ "status": status, "failed": failed, "cameras": cameras }).to_string();
        (if failed.is_empty() { 200 } else { 503 }, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_states_and_histograms_per_camera() {
        let c = Arc::new(CameraCounters::default());
        c.set_model("nanodet_m_320", "openvino", None);
        c.decoded.store(250, Ordering::Relaxed);
        c.dropped_link_full.store(7, Ordering::Relaxed);
        c.skipped_by_motion.store(40, Ordering::Relaxed);
        c.add_filtered(&[0, 0, 3, 0, 0]);
        let batches = Arc::new(BatchCounts::new(8));
        batches.record(8);
        batches.record(3);
        batches.record(8);
        let m = Metrics::with_batches(vec!["front".into()], vec![c], "cpu", None, batches);
        m.cameras().set("front", "streaming");
        m.inference_seconds.get_or_create(&Metrics::camera_label("front")).observe(0.015);
        let text = m.render();
        for want in [
            "lookout_frames_decoded_total{camera=\"front\"} 250",
            "lookout_frames_dropped_link_full_total{camera=\"front\"} 7",
            "lookout_frames_skipped_by_motion_total{camera=\"front\"} 40",
            "lookout_detections_filtered_total{camera=\"front\",reason=\"area\"} 3",
            "lookout_detections_filtered_total{camera=\"front\",reason=\"mask\"} 0",
            "lookout_camera_state{camera=\"front\",state=\"streaming\"} 1",
            "lookout_camera_state{camera=\"front\",state=\"failed\"} 0",
            "lookout_inference_seconds_count{camera=\"front\"} 1",
            "lookout_execution_provider{provider=\"cpu\"} 1",
            "lookout_camera_model{camera=\"front\",model=\"nanodet_m_320\",provider=\"openvino\"} 1",
            "lookout_inference_batches_total{size=\"8\"} 2",
            "lookout_inference_batches_total{size=\"3\"} 1",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn renders_the_variant_check_of_a_camera_whose_model_is_a_variant() {
        let (plain, variant) = (Arc::new(CameraCounters::default()), Arc::new(CameraCounters::default()));
        plain.set_model("yolox_nano", "cpu", None);
        let check = crate::stats::VariantCheck {
            variant: "yolox_nano_int8_nncf".into(),
            source: "yolox_nano".into(),
            provider: "openvino:CPU".into(),
            images: 4,
            source_detections: 10,
            found: 1,
            recall: 0.1,
            min_recall: 0.9,
            accepted: false,
        };
        // Refused: the source runs in its place.
        variant.set_model("yolox_nano", "openvino", Some(check));
        let m = Metrics::new(vec!["plain".into(), "door".into()], vec![plain, variant], "cpu");
        let text = m.render();
        let labels = "camera=\"door\",variant=\"yolox_nano_int8_nncf\",source=\"yolox_nano\",provider=\"openvino:CPU\"";
        for want in
            [format!("lookout_variant_recall{{{labels}}} 0.1"), format!("lookout_variant_accepted{{{labels}}} 0")]
        {
            assert!(text.contains(&want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("lookout_variant_recall{camera=\"plain\""), "{text}");
    }

    #[test]
    fn renders_the_publisher_counters_when_there_is_one() {
        let p = Arc::new(PublishCounters::default());
        p.spooled.store(12, Ordering::Relaxed);
        p.replayed.store(10, Ordering::Relaxed);
        p.dropped_spool_full.store(2, Ordering::Relaxed);
        let m = Metrics::with_publish(vec!["front".into()], vec![Arc::default()], "cpu", Some(p));
        let text = m.render();
        for want in [
            "lookout_mqtt_messages_spooled_total 12",
            "lookout_mqtt_messages_replayed_total 10",
            "lookout_mqtt_messages_dropped_total{reason=\"spool_full\"} 2",
            "lookout_mqtt_messages_dropped_total{reason=\"not_spooled\"} 0",
            "lookout_mqtt_messages_delivered_total 0",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!Metrics::new(vec!["front".into()], vec![Arc::default()], "cpu").render().contains("lookout_mqtt_"));
    }

    #[test]
    fn health_is_503_once_a_camera_fails() {
        let m = Metrics::new(vec!["a".into(), "b".into()], vec![Arc::default(), Arc::default()], "cpu");
        m.cameras().set("a", "streaming");
        assert_eq!(m.health().0, 200);
        m.cameras().set("b", "failed");
        let (code, body) = m.health();
        assert_eq!(code, 503);
        assert!(body.contains("\"failed\":[\"b\"]"), "{body}");
        // A reload drops `b` and adds `c`; `a` keeps its state.
        m.cameras().set_cameras(&["a".into(), "c".into()], &[Arc::default(), Arc::default()]);
        let (code, body) = m.health();
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains("\"a\":\"streaming\"") && body.contains("\"c\":\"connecting\"") && !body.contains("\"b\""),
            "{body}"
        );
    }
}
