//! The validated config the daemon runs from. Building it checks everything that can be
//! checked offline, and reports every problem at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{
    RawCamera, RawDetect, RawEvents, RawFilter, RawGlobal, RawLine, RawLink, RawLinks, RawMotion, RawProvider,
    RawProviderTable, RawSnapshots, RawStationary, RawTrack, RawZone,
};
use super::{ConfigError, redact_uri};
use crate::detect::labels::LabelTable;
use crate::detect::manifest::{self, ModelSpec};
use crate::detect::session::InputBinding;
use crate::detect::{DetectorOptions, ProviderKind, ProviderSpec};
use crate::link::{self, LinkKind, LinkPolicyError, LinkSpec, WhenFull};
use crate::objects::lifecycle::LifecycleConfig;
use crate::objects::snapshot::SnapshotConfig;
use crate::rules::{
    self, Directions, Filters, LabelFilter, LineConfig, Point, RulesConfig, StationaryConfig, ZoneConfig,
};
use crate::source::motion::MotionConfig;
use crate::track::TrackerConfig;

pub const DEFAULT_MQTT_HOST: &str = "127.0.0.1";
pub const DEFAULT_MQTT_PORT: u16 = 1883;
/// The IANA port of MQTT over TLS: the default with `[mqtt.tls]`.
pub const DEFAULT_MQTT_TLS_PORT: u16 = 8883;
pub const DEFAULT_KEEPALIVE_SECONDS: u64 = 30;
pub const DEFAULT_MQTT_QUEUE_MESSAGES: usize = 1000;
pub const DEFAULT_FLUSH_TIMEOUT_SECONDS: u64 = 10;
pub const DEFAULT_MQTT_MAX_INFLIGHT: u16 = 100;
/// The cap of the MQTT reconnect backoff. Short, so that live delivery resumes within 2 s of
/// a broker's return (this cap, plus a connect and the first message); the attempts are
/// jittered, so gateways that lost the same broker don't all knock at once.
pub const DEFAULT_MQTT_RECONNECT_MAX_SECONDS: f64 = 1.5;
pub const DEFAULT_SPOOL_DIR: &str = ".lookout/spool";
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 100 << 20;
/// Set by systemd for `StateDirectory=`; the default spool lives under it.
pub const STATE_DIRECTORY_ENV: &str = "STATE_DIRECTORY";
pub const DEFAULT_MODEL: &str = "models/yolox_nano.onnx";
pub const DEFAULT_ORT_LIBRARY: &str = ".lookout/ort/libonnxruntime.so.1.31.1";
pub const DEFAULT_WORKERS: usize = 1;
pub const DEFAULT_INTRA_THREADS: usize = 1;
pub const DEFAULT_STATS_INTERVAL_SECONDS: u64 = 10;
pub const DEFAULT_DETECT_FPS: f64 = 5.0;
pub const DEFAULT_MIN_SCORE: f32 = 0.5;
pub const DEFAULT_STALL_TIMEOUT_SECONDS: f64 = 10.0;
pub const DEFAULT_RECONNECT_MAX_SECONDS: f64 = 30.0;
pub const DEFAULT_DECODER_THREADS: u32 = 1;
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: f64 = 5.0;
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: f64 = 10.0;
/// URI schemes whose streams are live: their end of stream means a disconnect.
pub const LIVE_SCHEMES: [&str; 6] = ["rtsp", "rtsps", "http", "https", "v4l2", "test"];
pub const DEFAULT_FALLBACK: bool = true;
pub const DEFAULT_MAX_BATCH: usize = 8;
pub const DEFAULT_MAX_BATCH_WAIT_MS: u64 = 5;
/// Past this a batch only adds latency: the H200 gains under 10 % from 64 to 128 (docs/platform-notes.md).
pub const MAX_BATCH_LIMIT: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub config_dir: PathBuf,
    pub gateway_id: String,
    pub mqtt: Option<MqttSpec>,
    pub inference: InferenceSpec,
    pub stats_interval: Duration,
    /// Where `/metrics` and `/healthz` listen; `None`: no endpoint.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where snapshots are saved, and for how long.
    pub snapshot_dir: PathBuf,
    pub snapshot_retain: Duration,
    /// How long a stop (SIGTERM) may take: sources stop, in-flight frames finish, events are
    /// flushed to the broker; what is left then goes to the spool.
    pub shutdown_timeout: Duration,
    /// The link to the publisher (`[links.events]`).
    pub events_link: LinkSpec,
    pub cameras: Vec<CameraSpec>,
    /// Cameras whose files are invalid, left out of `cameras` by [`super::load_tolerant`]
    /// (`lookout run` at start): reported `failed`, with their errors. Always empty from
    /// [`super::load`], which refuses such a config whole.
    pub broken: Vec<super::BrokenCamera>,
}

/// One camera's own links (`[links.frames]`, `[links.detections]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraLinks {
    pub frames: LinkSpec,
    pub detections: LinkSpec,
}

impl Default for CameraLinks {
    fn default() -> CameraLinks {
        CameraLinks { frames: LinkKind::Frames.default_spec(), detections: LinkKind::Detections.default_spec() }
    }
}

/// What lookout.toml sets for every camera beyond `[detect]` and `[track]`: only values that
/// passed validation there, so a mistake is reported once, against lookout.toml.
#[derive(Debug, Default, Clone)]
pub struct CameraDefaults {
    pub links: RawLinks,
    pub motion: RawMotion,
}

impl CameraDefaults {
    pub fn from_global(raw: &RawGlobal) -> CameraDefaults {
        // Each value alone, against the link's default for the other: what fails here was
        // reported by build_global.
        let valid_link = |kind: LinkKind, l: &RawLink| {
            let d = kind.default_spec();
            RawLink {
                capacity: l.capacity.filter(|&capacity| link::check(kind, LinkSpec { capacity, ..d }, false).is_ok()),
                when_full: l.when_full.clone().filter(|w| {
                    WhenFull::from_key(w)
                        .is_some_and(|when_full| link::check(kind, LinkSpec { when_full, ..d }, false).is_ok())
                }),
            }
        };
        let motion = valid_motion(&raw.motion);
        CameraDefaults {
            links: RawLinks {
                frames: valid_link(LinkKind::Frames, &raw.links.frames),
                detections: valid_link(LinkKind::Detections, &raw.links.detections),
                events: RawLink::default(),
            },
            motion,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttSpec {
    pub host: String,
    pub port: u16,
    pub topic_prefix: String,
    pub client_id: String,
    pub keepalive: Duration,
    pub queue_capacity: usize,
    pub max_inflight: u16,
    pub flush_timeout: Duration,
    /// The longest wait between attempts to reach a lost broker.
    pub reconnect_max: Duration,
    /// The Home Assistant discovery prefix, when discovery is on.
    pub discovery_prefix: Option<String>,
    /// The broker login, if it wants one.
    pub credentials: Option<Credentials>,
    pub spool: SpoolSpec,
    /// TLS, when `[mqtt.tls]` is on: the client config, built (files read and checked) here.
    pub tls: Option<TlsSpec>,
}

/// MQTT over TLS, ready to connect.
#[derive(Clone)]
pub struct TlsSpec {
    pub client_config: std::sync::Arc<rustls::ClientConfig>,
    /// Where the trusted CAs came from, for logs: a path or "system CA bundle".
    pub ca: String,
    /// Whether a client certificate is presented (mutual TLS).
    pub client_cert: bool,
}

/// Compared by where the CAs came from and whether a client certificate is sent (a reload
/// only needs to know that `[mqtt.tls]` changed, which applies at the next start anyway).
impl PartialEq for TlsSpec {
    fn eq(&self, other: &TlsSpec) -> bool {
        self.ca == other.ca && self.client_cert == other.client_cert
    }
}

impl std::fmt::Debug for TlsSpec {
    // The client config's own Debug is long and holds the key's handle; this is what matters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsSpec {{ ca: {:?}, client_cert: {} }}", self.ca, self.client_cert)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpoolSpec {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InferenceSpec {
    /// The model manifest (`.toml`) or plain YOLOX `.onnx` that `inference.model` names.
    pub model: PathBuf,
    /// The model's class names (COCO's 80 unless its manifest lists others); camera label
    /// settings are checked against these.
    pub labels: LabelTable,
    pub ort_library: PathBuf,
    pub providers: Vec<ProviderSpec>,
    pub fallback: bool,
    pub workers: usize,
    pub intra_threads: usize,
    pub max_batch: usize,
    pub max_batch_wait: Duration,
    pub batch_on_cpu: bool,
    /// IoBinding from pinned host memory on cuda/tensorrt (never used on other providers).
    pub io_binding: bool,
}

impl InferenceSpec {
    /// What each worker's detector is built from.
    pub fn detector_options(&self) -> DetectorOptions {
        DetectorOptions {
            intra_threads: self.intra_threads,
            providers: self.providers.clone(),
            fallback: self.fallback,
            max_batch: self.max_batch,
            batch_on_cpu: self.batch_on_cpu,
            io_binding: if self.io_binding { InputBinding::Gpu } else { InputBinding::Off },
            ..DetectorOptions::new(self.model.clone(), self.ort_library.clone())
        }
    }
}

/// `inference.providers` entries → specs; names and per-provider options are checked here, so
/// `lookout check` reports them without loading ONNX Runtime.
fn provider_specs(dir: &Path, raw: Vec<RawProvider>, e: &mut Errors) -> Vec<ProviderSpec> {
    let mut out = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let key = format!("inference.providers[{i}]");
        let (name, table) = match p {
            RawProvider::Name(n) => (n, RawProviderTable::default()),
            RawProvider::Table(t) => (t.kind.clone(), t),
        };
        let kind = match ProviderKind::parse(&name) {
            Ok(k) => k,
            Err(msg) => {
                e.push(&key, msg);
                continue;
            }
        };
        let spec = ProviderSpec {
            kind,
            device_id: table.device_id,
            device_type: table.device_type,
            fp16: table.fp16,
            engine_cache_dir: table.engine_cache_dir.map(|d| resolve(dir, &d)),
            memory_limit_bytes: table.memory_limit_bytes,
            backend_path: table.backend_path,
        };
        for (opt, msg) in spec.problems() {
            e.push(&format!("{key}.{opt}"), msg);
        }
        if out.contains(&spec) {
            e.push(&key, format!("{} is listed twice", spec.label()));
        }
        out.push(spec);
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraSpec {
    /// The file stem of `pipelines/<name>.toml`; used in topics.
    pub name: String,
    /// The file it came from, for messages.
    pub file: PathBuf,
    /// The URI GStreamer opens. May hold a password: log `uri_redacted` instead.
    pub uri: String,
    pub uri_redacted: String,
    pub realtime: bool,
    /// A live source (camera): end of stream is a disconnect, and errors reconnect by default.
    pub live: bool,
    pub loop_file: bool,
    pub stall_timeout: Duration,
    pub reconnect_max: Duration,
    pub on_error: OnError,
    pub decoder: Vec<String>,
    pub decoder_threads: u32,
    pub rtsp_transport: RtspTransport,
    pub max_clock_skew: Duration,
    /// User and password for the source, kept apart from the URI so they are never logged.
    pub credentials: Option<Credentials>,
    pub detect: DetectSpec,
    pub objects: ObjectsSpec,
    pub links: CameraLinks,
    pub motion: MotionConfig,
}

/// Tracking, rules and the event lifecycle of one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectsSpec {
    pub tracker: TrackerConfig,
    pub lifecycle: LifecycleConfig,
    /// Validated: `Rules::new` accepts it.
    pub rules: RulesConfig,
    /// Publish every frame's raw detections too.
    pub publish_detections: bool,
    pub snapshots: SnapshotConfig,
    /// The model's class names: what a detection's class index means.
    pub labels: LabelTable,
}

impl Default for ObjectsSpec {
    /// The defaults a camera file with no object tables gets.
    fn default() -> ObjectsSpec {
        ObjectsSpec {
            tracker: TrackerConfig {
                high_score: DEFAULT_MIN_SCORE,
                low_score: DEFAULT_TRACK_LOW_SCORE,
                new_track_score: DEFAULT_MIN_SCORE + 0.1,
                min_hits: DEFAULT_TRACK_MIN_HITS,
                max_lost_seconds: DEFAULT_MAX_LOST_SECONDS,
                ..TrackerConfig::default()
            },
            lifecycle: LifecycleConfig {
                threshold: DEFAULT_EVENT_THRESHOLD,
                update_interval_seconds: DEFAULT_UPDATE_INTERVAL_SECONDS,
                parked_seconds: DEFAULT_PARKED_SECONDS,
            },
            rules: RulesConfig::default(),
            publish_detections: false,
            snapshots: SnapshotConfig::default(),
            labels: LabelTable::default(),
        }
    }
}

/// Names a zone or line can't take: they would collide with other topics of the camera.
pub const RESERVED_TOPIC_NAMES: [&str; 5] = ["events", "status", "snapshot", "detect", "stats"];
pub const DEFAULT_TRACK_LOW_SCORE: f32 = 0.1;
pub const DEFAULT_TRACK_MIN_HITS: u32 = 3;
pub const DEFAULT_MAX_LOST_SECONDS: f64 = 1.5;
pub const DEFAULT_EVENT_THRESHOLD: f32 = 0.7;
pub const DEFAULT_UPDATE_INTERVAL_SECONDS: f64 = 10.0;
pub const DEFAULT_PARKED_SECONDS: f64 = 300.0;
pub const DEFAULT_SNAPSHOT_RETAIN_DAYS: f64 = 7.0;

/// A source's login. The password never appears in `Debug` output, logs, status or MQTT.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Where the password was read from, if from a file (`lookout check` audits its mode).
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: ***, password_file: {:?} }}",
            self.username, self.password_file
        )
    }
}

/// What a stream error does to a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Reconnect,
    Fail,
}

/// How RTSP cameras send their frames, when a camera file does not say.
///
/// TCP (RTP interleaved on the RTSP connection), because a camera that drops or refuses the
/// client is then seen at once: the connection closes. Over UDP rtspsrc says nothing when the
/// server ends the session, and only the stall watchdog notices, `stall_timeout_seconds` later.
/// Measured on loopback against tests/rtsp_server.py, client dropped by the server
/// (docs/operations.md, "Camera faults"): `tcp` reconnecting after 0.014 s, `auto` and `udp`
/// after 10.1 s, the stall timeout.
pub const DEFAULT_RTSP_TRANSPORT: RtspTransport = RtspTransport::Tcp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspTransport {
    Auto,
    Tcp,
    Udp,
}

impl RtspTransport {
    /// The value of rtspsrc's `protocols` property.
    pub fn protocols(self) -> &'static str {
        match self {
            RtspTransport::Auto => "tcp+udp-mcast+udp",
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectSpec {
    /// The model manifest (or plain YOLOX `.onnx`) this camera's frames go through: its own
    /// `detect.model`, else `inference.model`. Cameras on the same model share its workers.
    pub model: PathBuf,
    pub fps: f64,
    /// Class indices to report; `None` means all.
    pub labels: Option<Vec<usize>>,
    pub min_score: f32,
}

/// The key a rules problem is about, so its line can be found: `zones[1].polygon` for zone
/// `door`'s polygon. The rules name their zone, line or filter in `owner`; the zone and line
/// names give the index in the file (a duplicate name points at its first table).
fn rules_key(problem: &rules::RulesError, zone_names: &[String], line_names: &[String]) -> String {
    use rules::RulesError as R;
    let (owner, field): (&str, Option<&str>) = match problem {
        R::TooFewPoints { owner, .. }
        | R::NotFinite { owner, .. }
        | R::OutsideFrame { owner, .. }
        | R::ZeroArea { owner }
        | R::ZeroLength { owner } => (owner, Some(if owner.starts_with("line") { "points" } else { "polygon" })),
        R::OutOfRange { owner, key, .. } => (owner, Some(key)),
        R::MinAboveMax { owner, min_key, .. } => (owner, Some(min_key)),
        R::EmptyLabels { owner } => (owner, Some("labels")),
        R::EmptyName { kind } | R::DuplicateName { kind, .. } => return format!("{kind}s"),
        R::Several(_) => return "rules".into(),
    };
    let quoted = owner.split('`').nth(1).unwrap_or_default();
    let index = |names: &[String]| names.iter().position(|n| n == quoted);
    let table = if owner.starts_with("zone `") {
        index(zone_names).map(|i| format!("zones[{i}]")).unwrap_or_else(|| "zones".into())
    } else if owner.starts_with("line `") {
        index(line_names).map(|i| format!("lines[{i}]")).unwrap_or_else(|| "lines".into())
    } else if owner.starts_with("filters for `") {
        format!("filters.{quoted}")
    } else if let Some(n) = owner.strip_prefix("filters mask ") {
        // Masks are polygons themselves: the point lists are the values.
        return n
            .parse::<usize>()
            .map(|n| format!("masks[{}]", n.saturating_sub(1)))
            .unwrap_or_else(|_| "masks".into());
    } else if owner == "stationary" {
        "stationary".into()
    } else {
        return "filters".into();
    };
    match field {
        Some(f) => format!("{table}.{f}"),
        None => table,
    }
}

/// Collects errors for one file so that validation can go on after the first.
struct Errors<'a> {
    file: &'a str,
    list: &'a mut Vec<ConfigError>,
}

impl Errors<'_> {
    fn push(&mut self, key: &str, message: impl Into<String>) {
        self.list.push(ConfigError::new(self.file, key, message));
    }
}

/// A name that is safe inside an MQTT topic level and a file name.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn default_gateway_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host: String = host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect();
    if host.is_empty() { "lookout".to_string() } else { host }
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { dir.join(p) }
}

pub(super) fn build_global(dir: &Path, raw: RawGlobal, errors: &mut Vec<ConfigError>) -> Spec {
    let mut e = Errors { file: "lookout.toml", list: errors };
    let gateway_id = raw.gateway_id.unwrap_or_else(default_gateway_id);
    if !valid_name(&gateway_id) {
        e.push(
            "gateway_id",
            format!("`{gateway_id}` may only hold letters, digits, '-', '_' and '.', since it is part of MQTT topics"),
        );
    }

    let mqtt = raw.mqtt.map(|m| {
        let host = m.host.unwrap_or_else(|| DEFAULT_MQTT_HOST.to_string());
        if host.trim().is_empty() {
            e.push("mqtt.host", "must not be empty");
        }
        let tls_on = m.tls.as_ref().is_some_and(|t| t.enabled.unwrap_or(true));
        let tls = m.tls.filter(|_| tls_on).and_then(|t| build_tls(dir, t, &mut e));
        let port = m.port.unwrap_or(if tls_on { DEFAULT_MQTT_TLS_PORT } else { DEFAULT_MQTT_PORT });
        if port == 0 {
            e.push("mqtt.port", "must be between 1 and 65535");
        }
        let topic_prefix = m.topic_prefix.unwrap_or_else(|| format!("lookout/{gateway_id}"));
        if topic_prefix.is_empty() || topic_prefix.contains(['+', '#']) || topic_prefix.ends_with('/') {
            e.push(
                "mqtt.topic_prefix",
                format!("`{topic_prefix}` must be non-empty, hold no '+' or '#', and not end in '/'"),
            );
        }
        let queue_capacity = m.queue_capacity_messages.unwrap_or(DEFAULT_MQTT_QUEUE_MESSAGES);
        if queue_capacity == 0 {
            e.push("mqtt.queue_capacity_messages", "must be at least 1");
        }
        let keepalive = m.keepalive_seconds.unwrap_or(DEFAULT_KEEPALIVE_SECONDS);
        if keepalive < 5 {
            e.push("mqtt.keepalive_seconds", "must be at least 5 (rumqttc's minimum)");
        }
        let discovery_prefix = m.discovery_prefix.unwrap_or_else(|| "homeassistant".to_string());
        if discovery_prefix.is_empty() || discovery_prefix.contains(['+', '#']) || discovery_prefix.ends_with('/') {
            e.push(
                "mqtt.discovery_prefix",
                format!("`{discovery_prefix}` must be non-empty, hold no '+' or '#', and not end in '/'"),
            );
        }
        let credentials = match (m.username, (&m.password_env, &m.password_file)) {
            (Some(username), source) => read_password("mqtt.", source, &mut e)
                .map(|(password, password_file)| Credentials { username, password, password_file }),
            (None, (None, None)) => None,
            (None, _) => {
                e.push("mqtt.username", "is needed with password_env or password_file");
                None
            }
        };
        let max_inflight = m.max_inflight.unwrap_or(DEFAULT_MQTT_MAX_INFLIGHT);
        if max_inflight == 0 || max_inflight == u16::MAX {
            e.push("mqtt.max_inflight", "must be between 1 and 65534");
        }
        let mut reconnect_max = m.reconnect_max_seconds.unwrap_or(DEFAULT_MQTT_RECONNECT_MAX_SECONDS);
        if !(0.1..=3600.0).contains(&reconnect_max) {
            e.push("mqtt.reconnect_max_seconds", format!("{reconnect_max} must be between 0.1 and 3600"));
            // NaN included: the spec is discarded with the error, but must still build.
            reconnect_max = DEFAULT_MQTT_RECONNECT_MAX_SECONDS;
        }
        let spool_dir = match &raw.spool.dir {
            Some(d) => resolve(dir, d),
            None => state_directory("spool").unwrap_or_else(|| dir.join(DEFAULT_SPOOL_DIR)),
        };
        let max_bytes = raw.spool.max_bytes.unwrap_or(DEFAULT_SPOOL_MAX_BYTES);
        if max_bytes < 4096 {
            e.push("spool.max_bytes", "must be at least 4096");
        }
        MqttSpec {
            tls,
            credentials,
            discovery_prefix: m.discovery.unwrap_or(false).then_some(discovery_prefix),
            host,
            port,
            max_inflight,
            spool: SpoolSpec { dir: spool_dir, max_bytes },
            client_id: m.client_id.unwrap_or_else(|| format!("lookout-{gateway_id}")),
            topic_prefix,
            keepalive: Duration::from_secs(keepalive),
            queue_capacity,
            flush_timeout: Duration::from_secs(m.flush_timeout_seconds.unwrap_or(DEFAULT_FLUSH_TIMEOUT_SECONDS)),
            reconnect_max: Duration::from_secs_f64(reconnect_max),
        }
    });

    let inf = raw.inference;
    let (model, model_labels) =
        model_and_labels(dir, inf.model.as_deref().unwrap_or(DEFAULT_MODEL), "inference.model", &mut e);
    let ort_library = resolve(dir, inf.ort_library.as_deref().unwrap_or(DEFAULT_ORT_LIBRARY));
    let ort_override = std::env::var_os(crate::detect::session::ORT_DYLIB_ENV).filter(|v| !v.is_empty());
    match &ort_override {
        None if !ort_library.exists() => e.push(
            "inference.ort_library",
            format!(
                "{} does not exist; run scripts/setup (LOOKOUT_OPENVINO=1 scripts/setup for the OpenVINO runtime in .lookout/ort-openvino/), or point this at the libonnxruntime.so of the ONNX Runtime build whose providers you list",
                ort_library.display()
            ),
        ),
        Some(o) if !Path::new(o).exists() => e.push(
            "inference.ort_library",
            format!("{} (from ORT_DYLIB_PATH, which overrides this key) does not exist; fix or unset ORT_DYLIB_PATH", Path::new(o).display()),
        ),
        _ => {}
    }
    let raw_providers = inf.providers.unwrap_or_else(|| vec![RawProvider::Name("cpu".to_string())]);
    if raw_providers.is_empty() {
        e.push("inference.providers", "must name at least one provider, such as [\"cpu\"]");
    }
    let providers = provider_specs(dir, raw_providers, &mut e);
    let fallback = inf.fallback.unwrap_or(DEFAULT_FALLBACK);
    let max_batch = inf.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
    if max_batch == 0 || max_batch > MAX_BATCH_LIMIT {
        e.push("inference.max_batch", format!("{max_batch} must be between 1 and {MAX_BATCH_LIMIT}"));
    }
    let max_batch_wait_ms = inf.max_batch_wait_ms.unwrap_or(DEFAULT_MAX_BATCH_WAIT_MS);
    if max_batch_wait_ms > 1000 {
        e.push(
            "inference.max_batch_wait_ms",
            format!("{max_batch_wait_ms} is over 1000; a wait that long delays every event"),
        );
    }
    let workers = inf.workers.unwrap_or(DEFAULT_WORKERS);
    if workers == 0 || workers > 64 {
        e.push("inference.workers", "must be between 1 and 64");
    }
    let intra_threads = inf.intra_threads.unwrap_or(DEFAULT_INTRA_THREADS);
    if intra_threads == 0 || intra_threads > 64 {
        e.push("inference.intra_threads", "must be between 1 and 64");
    }
    let stats_interval = raw.stats.interval_seconds.unwrap_or(DEFAULT_STATS_INTERVAL_SECONDS);
    if stats_interval == 0 {
        e.push("stats.interval_seconds", "must be at least 1");
    }

    let events_link = build_link(&mut e, "links.events", LinkKind::Events, raw.links.events.clone(), false, None);
    // Checked here for what can be checked without a camera; each camera checks the result
    // again against its own source (block is for files only).
    build_link(&mut e, "links.frames", LinkKind::Frames, raw.links.frames.clone(), false, None);
    build_link(&mut e, "links.detections", LinkKind::Detections, raw.links.detections.clone(), false, None);
    check_motion(&mut e, "motion.", &raw.motion);

    let metrics_listen = raw.metrics.listen.as_deref().and_then(|l| match l.parse::<std::net::SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            e.push("metrics.listen", format!("`{l}` is not an address and port such as \"127.0.0.1:9464\""));
            None
        }
    });
    let snapshot_dir = match &raw.snapshots.dir {
        Some(d) => resolve(dir, d),
        None => state_directory("snapshots").unwrap_or_else(|| dir.join(".lookout/snapshots")),
    };
    let retain_days = raw.snapshots.retain_days.unwrap_or(DEFAULT_SNAPSHOT_RETAIN_DAYS);
    if !(retain_days.is_finite() && retain_days > 0.0 && retain_days <= 3650.0) {
        e.push("snapshots.retain_days", format!("{retain_days} must be above 0 and at most 3650"));
    }
    let shutdown_timeout = raw.shutdown_timeout_seconds.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_SECONDS);
    if !(shutdown_timeout.is_finite() && shutdown_timeout > 0.0 && shutdown_timeout <= 3600.0) {
        e.push(
            "shutdown_timeout_seconds",
            format!("{shutdown_timeout} must be above 0 and at most 3600 (keep it below the unit's TimeoutStopSec=)"),
        );
    }
    Spec {
        shutdown_timeout: Duration::from_secs_f64(shutdown_timeout.clamp(0.001, 3600.0)),
        config_dir: dir.to_path_buf(),
        metrics_listen,
        snapshot_dir,
        snapshot_retain: Duration::from_secs_f64(retain_days.clamp(0.001, 3650.0) * 86_400.0),
        gateway_id,
        mqtt,
        inference: InferenceSpec {
            model,
            labels: model_labels,
            ort_library,
            providers,
            fallback,
            workers,
            intra_threads,
            max_batch: max_batch.clamp(1, MAX_BATCH_LIMIT),
            max_batch_wait: Duration::from_millis(max_batch_wait_ms.min(1000)),
            batch_on_cpu: inf.batch_on_cpu.unwrap_or(false),
            io_binding: inf.io_binding.unwrap_or(true),
        },
        stats_interval: Duration::from_secs(stats_interval.max(1)),
        events_link,
        cameras: Vec::new(),
        broken: Vec::new(),
    }
}

/// A link's spec from its raw table, checked for `kind` (see [`link::check`]). `inherited`
/// names where values not set here came from, for the message. On error: the default.
fn build_link(
    e: &mut Errors,
    key: &str,
    kind: LinkKind,
    raw: RawLink,
    live: bool,
    inherited: Option<&str>,
) -> LinkSpec {
    let d = kind.default_spec();
    let mut ok = true;
    let when_full = match raw.when_full.as_deref() {
        None => d.when_full,
        Some(k) => WhenFull::from_key(k).unwrap_or_else(|| {
            e.push(&format!("{key}.when_full"), format!("`{k}` must be \"drop_oldest\", \"drop_newest\" or \"block\""));
            ok = false;
            // Checked with the default, so a capacity mistake is reported too.
            d.when_full
        }),
    };
    let spec = LinkSpec { capacity: raw.capacity.unwrap_or(d.capacity), when_full };
    match link::check(kind, spec, live) {
        Ok(()) if ok => spec,
        Ok(()) => d,
        Err(err) => {
            let field = match err {
                LinkPolicyError::ZeroCapacity | LinkPolicyError::TooLarge { .. } => "capacity",
                _ => "when_full",
            };
            let from = inherited.map(|f| format!(" (set in {f})")).unwrap_or_default();
            e.push(&format!("{key}.{field}"), format!("{err}{from}"));
            d
        }
    }
}

fn motion_threshold_ok(t: &u8) -> bool {
    (1..=254).contains(t)
}
fn motion_min_area_ok(a: &f32) -> bool {
    a.is_finite() && *a > 0.0 && *a <= 1.0
}
fn motion_idle_ok(s: &f64) -> bool {
    s.is_finite() && *s > 0.0 && *s <= 86_400.0
}
fn motion_height_ok(h: &u32) -> bool {
    (8..=720).contains(h)
}

/// Only the motion values that pass validation.
fn valid_motion(m: &RawMotion) -> RawMotion {
    RawMotion {
        enabled: m.enabled,
        threshold: m.threshold.filter(motion_threshold_ok),
        min_area: m.min_area.filter(motion_min_area_ok),
        max_idle_detect_seconds: m.max_idle_detect_seconds.filter(motion_idle_ok),
        frame_height: m.frame_height.filter(motion_height_ok),
    }
}

/// Report motion keys that are set and wrong; `prefix` is "motion." for the key path.
fn check_motion(e: &mut Errors, prefix: &str, m: &RawMotion) {
    if let Some(t) = m.threshold
        && !motion_threshold_ok(&t)
    {
        e.push(&format!("{prefix}threshold"), format!("{t} must be between 1 and 254 (a grey-level difference)"));
    }
    if let Some(a) = m.min_area
        && !motion_min_area_ok(&a)
    {
        e.push(
            &format!("{prefix}min_area"),
            format!("{a} must be a fraction of the frame above 0 and at most 1, e.g. 0.002"),
        );
    }
    if let Some(s) = m.max_idle_detect_seconds
        && !motion_idle_ok(&s)
    {
        e.push(&format!("{prefix}max_idle_detect_seconds"), format!("{s} must be above 0 and at most 86400"));
    }
    if let Some(h) = m.frame_height
        && !motion_height_ok(&h)
    {
        e.push(&format!("{prefix}frame_height"), format!("{h} must be between 8 and 720 pixels"));
    }
}

/// Resolve a model value (`inference.model` or a camera's `detect.model`) and read its labels.
/// A missing file is reported against `key`; a manifest's own problems against the manifest,
/// key by key.
fn model_and_labels(dir: &Path, value: &str, key: &str, e: &mut Errors) -> (PathBuf, LabelTable) {
    let model = manifest::resolve_model(dir, value);
    let mut labels = LabelTable::default();
    if !model.exists() {
        e.push(key, format!("{} does not exist; run scripts/setup, or name a model manifest (models/<name>.toml, or a bare <name>) or a YOLOX .onnx file", model.display()));
    } else if manifest::is_manifest(&model) {
        let shown = model.strip_prefix(dir).unwrap_or(&model).display().to_string();
        match ModelSpec::load(&model) {
            Ok(m) => labels = m.labels,
            Err(manifest::ManifestError::Invalid { problems, .. }) => {
                for p in problems {
                    e.list.push(ConfigError::new(shown.clone(), p.key, p.message));
                }
            }
            Err(other) => e.push(key, other.to_string()),
        }
    }
    (model, labels)
}

pub(super) fn build_camera(
    dir: &Path,
    file: &Path,
    file_label: &str,
    name: &str,
    mut raw: RawCamera,
    detect_defaults: &RawDetect,
    track_defaults: &RawTrack,
    defaults: &CameraDefaults,
    gateway_model: &(PathBuf, LabelTable),
    errors: &mut Vec<ConfigError>,
) -> CameraSpec {
    let mut e = Errors { file: file_label, list: errors };
    if !valid_name(name) {
        e.push("(file name)", format!("camera name `{name}` may only hold letters, digits, '-', '_' and '.', since it is part of MQTT topics; rename the file"));
    }
    let uri = resolve_uri(dir, &raw.uri, &mut e);
    let detect = raw.detect.or(detect_defaults);
    // Labels, filters and zones are checked against the model this camera runs.
    let (model, model_labels) = match detect.model.as_deref() {
        Some(v) => model_and_labels(dir, v, "detect.model", &mut e),
        None => gateway_model.clone(),
    };
    let model_labels = &model_labels;
    let fps = detect.fps.unwrap_or(DEFAULT_DETECT_FPS);
    if !(fps > 0.0 && fps <= 120.0) {
        e.push("detect.fps", format!("{fps} must be above 0 and at most 120"));
    }
    let min_score = detect.min_score.unwrap_or(DEFAULT_MIN_SCORE);
    if !(0.0..=1.0).contains(&min_score) {
        e.push("detect.min_score", format!("{min_score} must be between 0 and 1"));
    }
    let label_names = detect.labels.clone();
    let labels = detect.labels.map(|names| {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let idx = model_labels.index_of(l);
                if idx.is_none() {
                    e.push(&format!("detect.labels[{i}]"), not_a_label(l, model_labels));
                }
                idx
            })
            .collect()
    });
    let scheme = uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
    let live = LIVE_SCHEMES.contains(&scheme.as_str());
    let positive = |e: &mut Errors, key: &str, v: f64| {
        if !(v > 0.0 && v <= 86_400.0) {
            e.push(key, format!("{v} must be above 0 and at most 86400"));
        }
        Duration::from_secs_f64(v.clamp(0.001, 86_400.0))
    };
    let stall_timeout =
        positive(&mut e, "stall_timeout_seconds", raw.stall_timeout_seconds.unwrap_or(DEFAULT_STALL_TIMEOUT_SECONDS));
    let reconnect_max =
        positive(&mut e, "reconnect_max_seconds", raw.reconnect_max_seconds.unwrap_or(DEFAULT_RECONNECT_MAX_SECONDS));
    let on_error = match raw.on_error.as_deref() {
        None => {
            if live {
                OnError::Reconnect
            } else {
                OnError::Fail
            }
        }
        Some("reconnect") => OnError::Reconnect,
        Some("fail") => OnError::Fail,
        Some(other) => {
            e.push("on_error", format!("`{other}` must be \"reconnect\" or \"fail\""));
            OnError::Fail
        }
    };
    let rtsp_transport = match raw.rtsp_transport.as_deref() {
        None => DEFAULT_RTSP_TRANSPORT,
        Some("auto") => RtspTransport::Auto,
        Some("tcp") => RtspTransport::Tcp,
        Some("udp") => RtspTransport::Udp,
        Some(other) => {
            e.push("rtsp_transport", format!("`{other}` must be \"tcp\", \"udp\" or \"auto\""));
            RtspTransport::Auto
        }
    };
    let decoder_threads = raw.decoder_threads.unwrap_or(DEFAULT_DECODER_THREADS);
    if decoder_threads == 0 || decoder_threads > 64 {
        e.push("decoder_threads", "must be between 1 and 64");
    }
    let login = (raw.username.take(), raw.password_env.take(), raw.password_file.take());
    let credentials = build_credentials(login, &uri, &scheme, &mut e);
    let parts = ObjectParts {
        track: std::mem::take(&mut raw.track).or(track_defaults),
        filters: std::mem::take(&mut raw.filters),
        masks: std::mem::take(&mut raw.masks),
        zones: std::mem::take(&mut raw.zones),
        lines: std::mem::take(&mut raw.lines),
        stationary: std::mem::take(&mut raw.stationary),
        events: std::mem::take(&mut raw.events),
        snapshots: std::mem::take(&mut raw.snapshots),
    };
    let objects = build_objects(parts, min_score, label_names, model_labels, &mut e);
    let decoder = raw.decoder.unwrap_or_default();
    for (i, d) in decoder.iter().enumerate() {
        if d.is_empty() || !d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            e.push(&format!("decoder[{i}]"), format!("`{d}` is not a GStreamer element name"));
        }
    }
    let max_clock_skew = positive(
        &mut e,
        "max_clock_skew_seconds",
        raw.max_clock_skew_seconds.unwrap_or(DEFAULT_MAX_CLOCK_SKEW_SECONDS),
    );
    let loop_file = raw.loop_file.unwrap_or(false);
    if loop_file && live {
        e.push("loop", "only applies to file sources");
    }
    let own_links = std::mem::take(&mut raw.links);
    let inherited = |own: &RawLink, global: &RawLink| {
        (own.when_full.is_none() && global.when_full.is_some()).then_some("lookout.toml [links]")
    };
    let links = CameraLinks {
        frames: build_link(
            &mut e,
            "links.frames",
            LinkKind::Frames,
            own_links.frames.clone().or(&defaults.links.frames),
            live,
            inherited(&own_links.frames, &defaults.links.frames),
        ),
        detections: build_link(
            &mut e,
            "links.detections",
            LinkKind::Detections,
            own_links.detections.clone().or(&defaults.links.detections),
            live,
            inherited(&own_links.detections, &defaults.links.detections),
        ),
    };
    let own_motion = std::mem::take(&mut raw.motion);
    check_motion(&mut e, "motion.", &own_motion);
    let m = valid_motion(&own_motion.or(&defaults.motion));
    let d = MotionConfig::default();
    let motion = MotionConfig {
        enabled: m.enabled.unwrap_or(d.enabled),
        threshold: m.threshold.unwrap_or(d.threshold),
        min_area: m.min_area.unwrap_or(d.min_area),
        max_idle_detect_seconds: m.max_idle_detect_seconds.unwrap_or(d.max_idle_detect_seconds),
        frame_height: m.frame_height.unwrap_or(d.frame_height),
    };
    CameraSpec {
        name: name.to_string(),
        file: file.to_path_buf(),
        uri_redacted: redact_uri(&uri),
        uri,
        realtime: raw.realtime.unwrap_or(true),
        live,
        loop_file,
        stall_timeout,
        reconnect_max,
        on_error,
        decoder,
        decoder_threads,
        rtsp_transport,
        max_clock_skew,
        credentials,
        detect: DetectSpec { model, fps, labels, min_score },
        objects,
        links,
        motion,
    }
}

/// The object-related tables of a camera file.
struct ObjectParts {
    track: RawTrack,
    filters: std::collections::BTreeMap<String, RawFilter>,
    masks: Vec<Vec<[f32; 2]>>,
    zones: Vec<RawZone>,
    lines: Vec<RawLine>,
    stationary: RawStationary,
    events: RawEvents,
    snapshots: RawSnapshots,
}

fn points(p: &[[f32; 2]]) -> Vec<Point> {
    p.iter().map(|[x, y]| Point::new(*x, *y)).collect()
}

/// Tracker, lifecycle and rules settings, checked the way `Rules::new` will check them, so
/// `lookout check` reports every problem with its key.
/// "`unicorn` is not a label of the model; …", naming some labels it has.
/// Resolve `track.label_groups` to class indices; every label must be one of the model's, in
/// one group only.
fn label_groups(groups: &[Vec<String>], model_labels: &LabelTable, e: &mut Errors) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let mut classes = Vec::new();
        for (j, name) in group.iter().enumerate() {
            let key = format!("track.label_groups[{i}][{j}]");
            match model_labels.index_of(name) {
                None => e.push(&key, not_a_label(name, model_labels)),
                Some(c) if classes.contains(&c) => e.push(&key, format!("`{name}` is listed twice in this group")),
                Some(c) => match out.iter().position(|g| g.contains(&c)) {
                    Some(other) => {
                        e.push(&key, format!("`{name}` is already in group {other}; a label can be in one group only"))
                    }
                    None => classes.push(c),
                },
            }
        }
        if group.len() < 2 {
            e.push(
                &format!("track.label_groups[{i}]"),
                "a group needs at least 2 labels; a label always matches its own tracks",
            );
        }
        out.push(classes);
    }
    out
}

/// A typo (`persn`) or a plural (`cars`) gets the label it was meant to be, as unknown keys do.
fn not_a_label(l: &str, model_labels: &LabelTable) -> String {
    let examples = format!(
        "names such as {} (the model's manifest lists them; a plain .onnx has COCO's 80)",
        model_labels.examples()
    );
    match crate::text::closest(l, model_labels.names().iter().copied()) {
        Some(name) => format!("`{l}` is not a label of the model: did you mean `{name}`? Its labels are {examples}"),
        None => format!("`{l}` is not a label of the model; its labels are {examples}"),
    }
}

fn build_objects(
    p: ObjectParts,
    min_score: f32,
    labels: Option<Vec<String>>,
    model_labels: &LabelTable,
    e: &mut Errors,
) -> ObjectsSpec {
    let t = p.track;
    let low_score = t.low_score.unwrap_or(DEFAULT_TRACK_LOW_SCORE);
    if !(0.0..=1.0).contains(&low_score) || low_score > min_score {
        e.push("track.low_score", format!("{low_score} must be between 0 and detect.min_score ({min_score})"));
    }
    let new_track_score = t.new_track_score.unwrap_or((min_score + 0.1).min(1.0));
    if !(0.0..=1.0).contains(&new_track_score) {
        e.push("track.new_track_score", format!("{new_track_score} must be between 0 and 1"));
    }
    let min_hits = t.min_hits.unwrap_or(DEFAULT_TRACK_MIN_HITS);
    if min_hits == 0 || min_hits > 100 {
        e.push("track.min_hits", format!("{min_hits} must be between 1 and 100"));
    }
    let mut seconds = |key: &str, v: Option<f64>, default: f64, zero_ok: bool| {
        let v = v.unwrap_or(default);
        if !(v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0)) && v <= 86_400.0) {
            e.push(key, format!("{v} must be {} and at most 86400", if zero_ok { "0 or more" } else { "above 0" }));
        }
        v
    };
    let max_lost_seconds = seconds("track.max_lost_seconds", t.max_lost_seconds, DEFAULT_MAX_LOST_SECONDS, false);
    let update_interval_seconds =
        seconds("track.update_interval_seconds", t.update_interval_seconds, DEFAULT_UPDATE_INTERVAL_SECONDS, false);
    let parked_seconds = seconds("track.parked_seconds", t.parked_seconds, DEFAULT_PARKED_SECONDS, true);
    let threshold = t.threshold.unwrap_or(DEFAULT_EVENT_THRESHOLD);
    if !(0.0..=1.0).contains(&threshold) {
        e.push("track.threshold", format!("{threshold} must be between 0 and 1"));
    }
    let label_groups = label_groups(t.label_groups.as_deref().unwrap_or_default(), model_labels, e);
    let tracker = TrackerConfig {
        high_score: min_score,
        low_score,
        new_track_score,
        min_hits,
        max_lost_seconds,
        label_groups,
        ..TrackerConfig::default()
    };
    let lifecycle = LifecycleConfig { threshold, update_interval_seconds, parked_seconds };

    let check_labels = |e: &mut Errors, key: &str, names: &Option<Vec<String>>| {
        for (i, l) in names.iter().flatten().enumerate() {
            if model_labels.index_of(l).is_none() {
                e.push(&format!("{key}[{i}]"), not_a_label(l, model_labels));
            }
        }
    };
    let mut per_label = std::collections::BTreeMap::new();
    for (label, f) in p.filters {
        if model_labels.index_of(&label).is_none() {
            e.push(&format!("filters.{label}"), not_a_label(&label, model_labels));
        }
        per_label.insert(
            label,
            LabelFilter {
                min_score: f.min_score,
                min_area: f.min_area,
                max_area: f.max_area,
                min_ratio: f.min_ratio,
                max_ratio: f.max_ratio,
            },
        );
    }
    let filters = Filters {
        labels,
        default: LabelFilter::default(),
        per_label,
        masks: p.masks.iter().map(|m| points(m)).collect(),
    };

    let mut names = std::collections::BTreeSet::new();
    let mut name_ok = |e: &mut Errors, key: String, name: &str| {
        if !valid_name(name) || RESERVED_TOPIC_NAMES.contains(&name) {
            e.push(&key, format!("`{name}` must be made of letters, digits, '-', '_' and '.', and not one of {} (it is part of MQTT topics)", RESERVED_TOPIC_NAMES.join(", ")));
        } else if !names.insert(name.to_string()) {
            e.push(&key, format!("`{name}` is used by another zone or line; zones and lines share the camera's topics, so each needs its own name"));
        }
    };
    let zone_names: Vec<String> = p.zones.iter().map(|z| z.name.clone()).collect();
    let line_names: Vec<String> = p.lines.iter().map(|l| l.name.clone()).collect();
    let mut zones = Vec::new();
    for (i, z) in p.zones.into_iter().enumerate() {
        name_ok(e, format!("zones[{i}].name"), &z.name);
        check_labels(e, &format!("zones[{i}].labels"), &z.labels);
        let mut zone = ZoneConfig::new(z.name, points(&z.polygon));
        zone.labels = z.labels;
        zone.inertia = z.inertia.unwrap_or(zone.inertia);
        zone.loitering_seconds = z.loitering_seconds;
        zones.push(zone);
    }
    let mut lines = Vec::new();
    for (i, l) in p.lines.into_iter().enumerate() {
        name_ok(e, format!("lines[{i}].name"), &l.name);
        check_labels(e, &format!("lines[{i}].labels"), &l.labels);
        let [a, b] = match l.points.as_slice() {
            [a, b] => [Point::new(a[0], a[1]), Point::new(b[0], b[1])],
            other => {
                e.push(
                    &format!("lines[{i}].points"),
                    format!("a counting line has exactly 2 points, got {}", other.len()),
                );
                continue;
            }
        };
        let mut line = LineConfig::new(l.name, [a, b]);
        line.labels = l.labels;
        line.hysteresis = l.hysteresis.unwrap_or(line.hysteresis);
        match l.direction.as_deref().map(Directions::from_key) {
            None => {}
            Some(Some(d)) => line.direction = d,
            Some(None) => e.push(
                &format!("lines[{i}].direction"),
                format!(
                    "`{}` must be \"left_to_right\", \"right_to_left\" or \"both\"",
                    l.direction.unwrap_or_default()
                ),
            ),
        }
        lines.push(line);
    }
    let mut stationary = StationaryConfig::default();
    stationary.threshold = p.stationary.threshold.unwrap_or(stationary.threshold);
    stationary.stationary_seconds = p.stationary.stationary_seconds.unwrap_or(stationary.stationary_seconds);
    stationary.moving_updates = p.stationary.moving_updates.unwrap_or(stationary.moving_updates);

    let rules = RulesConfig { filters, zones, lines, stationary };
    if let Err(err) = rules::Rules::new(rules.clone()) {
        for problem in err.into_list() {
            e.push(&rules_key(&problem, &zone_names, &line_names), problem.to_string());
        }
    }
    let d = SnapshotConfig::default();
    let snapshots = SnapshotConfig {
        enabled: p.snapshots.enabled.unwrap_or(d.enabled),
        crop: p.snapshots.crop.unwrap_or(d.crop),
        draw_box: p.snapshots.draw_box.unwrap_or(d.draw_box),
        max_size: p.snapshots.max_size.unwrap_or(d.max_size),
        quality: p.snapshots.quality.unwrap_or(d.quality),
    };
    if !(16..=8192).contains(&snapshots.max_size) {
        e.push("snapshots.max_size", format!("{} must be between 16 and 8192 pixels", snapshots.max_size));
    }
    if !(1..=100).contains(&snapshots.quality) {
        e.push("snapshots.quality", format!("{} must be between 1 and 100", snapshots.quality));
    }
    ObjectsSpec {
        tracker,
        lifecycle,
        rules,
        publish_detections: p.events.detections.unwrap_or(false),
        snapshots,
        labels: model_labels.clone(),
    }
}

/// `username` with `password_env` or `password_file`. Resolved here, so `lookout check`
/// (which systemd runs before start) catches a missing variable or unreadable file.
fn build_credentials(
    (username, password_env, password_file): (Option<String>, Option<String>, Option<String>),
    uri: &str,
    scheme: &str,
    e: &mut Errors,
) -> Option<Credentials> {
    let (Some(username), source) = (username, (&password_env, &password_file)) else {
        if password_env.is_some() || password_file.is_some() {
            e.push("username", "is needed with password_env or password_file");
        }
        return None;
    };
    if !matches!(scheme, "rtsp" | "rtsps" | "http" | "https") {
        e.push("username", format!("only applies to rtsp:// and http(s):// sources, not `{scheme}://`"));
        return None;
    }
    if uri.split_once("://").and_then(|(_, rest)| rest.split('/').next()).is_some_and(|auth| auth.contains('@')) {
        e.push(
            "username",
            "the uri already holds a user name; give credentials in one place only (preferably here, not in the uri)",
        );
        return None;
    }
    let (password, password_file) = read_password("", source, e)?;
    Some(Credentials { username, password, password_file })
}

/// `[mqtt.tls]`: read and parse every file now, so `lookout check` reports a missing or bad
/// one by its key, and the daemon never meets it at connect time.
fn build_tls(dir: &Path, t: super::raw::RawMqttTls, e: &mut Errors) -> Option<TlsSpec> {
    use crate::publish::tls;
    let path = |p: &str| resolve(dir, &expand_credentials_dir(p).to_string_lossy());
    let roots = match &t.ca_file {
        Some(f) => {
            let p = path(f);
            tls::read(&p).and_then(|pem| tls::roots_from_pem(&pem, &p)).map(|r| (r, p.display().to_string()))
        }
        None => tls::system_roots().map(|r| (r, "system CA bundle".to_string())),
    }
    .map_err(|err| e.push("mqtt.tls.ca_file", err.to_string()))
    .ok();
    let identity = match (&t.client_cert_file, &t.client_key_file) {
        (None, None) => Some(None),
        (Some(_), None) => {
            e.push(
                "mqtt.tls.client_key_file",
                "is needed with client_cert_file: give the PEM private key of the client certificate",
            );
            None
        }
        (None, Some(_)) => {
            e.push("mqtt.tls.client_cert_file", "is needed with client_key_file: give the PEM client certificate");
            None
        }
        (Some(c), Some(k)) => {
            let (cp, kp) = (path(c), path(k));
            let chain = tls::read(&cp)
                .and_then(|pem| tls::certs_from_pem(&pem, &cp))
                .map_err(|err| e.push("mqtt.tls.client_cert_file", err.to_string()));
            let key = tls::read(&kp)
                .and_then(|pem| tls::key_from_pem(&pem, &kp))
                .map_err(|err| e.push("mqtt.tls.client_key_file", err.to_string()));
            match (chain, key) {
                (Ok(c), Ok(k)) => Some(Some((c, k))),
                _ => None,
            }
        }
    };
    let ((roots, ca), identity) = (roots?, identity?);
    let client_cert = identity.is_some();
    match tls::client_config(roots, identity) {
        Ok(client_config) => Some(TlsSpec { client_config, ca, client_cert }),
        Err(err) => {
            e.push(if client_cert { "mqtt.tls.client_key_file" } else { "mqtt.tls" }, err.to_string());
            None
        }
    }
}

/// `<systemd's state directory>/<sub>` when systemd set STATE_DIRECTORY (`StateDirectory=`),
/// else `None`. systemd passes a colon-separated list when the unit names several; the first is
/// ours.
fn state_directory(sub: &str) -> Option<PathBuf> {
    let state = std::env::var_os(STATE_DIRECTORY_ENV)?;
    let first = state.to_string_lossy().split(':').next().unwrap_or_default().to_string();
    (!first.is_empty()).then(|| PathBuf::from(first).join(sub))
}

/// `$CREDENTIALS_DIRECTORY/x` → `<that directory>/x` when systemd set it; else as written.
fn expand_credentials_dir(path: &str) -> PathBuf {
    match (path.strip_prefix("$CREDENTIALS_DIRECTORY/"), std::env::var_os("CREDENTIALS_DIRECTORY")) {
        (Some(rest), Some(dir)) => PathBuf::from(dir).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The password from `<prefix>password_env` or `<prefix>password_file` (exactly one), and the
/// file it came from.
fn read_password(
    prefix: &str,
    source: (&Option<String>, &Option<String>),
    e: &mut Errors,
) -> Option<(String, Option<PathBuf>)> {
    match source {
        (Some(_), Some(_)) => {
            e.push(&format!("{prefix}password_env"), "give password_env or password_file, not both");
            None
        }
        (None, None) => {
            e.push(
                &format!("{prefix}username"),
                "needs a password: set password_env (an environment variable's name) or password_file",
            );
            None
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some((v, None)),
            _ => {
                e.push(&format!("{prefix}password_env"), format!("environment variable `{var}` is not set or empty; set it for the service (systemd Environment= or EnvironmentFile=)"));
                None
            }
        },
        (None, Some(path)) => {
            let expanded = expand_credentials_dir(path);
            match std::fs::read_to_string(&expanded) {
                Ok(v) if !v.trim_end_matches(['\r', '\n']).is_empty() => {
                    Some((v.trim_end_matches(['\r', '\n']).to_string(), Some(expanded)))
                }
                Ok(_) => {
                    e.push(&format!("{prefix}password_file"), format!("{} is empty", expanded.display()));
                    None
                }
                Err(err) => {
                    e.push(
                        &format!("{prefix}password_file"),
                        format!(
                            "can't read {}: {err}; check the path and that the lookout user may read it",
                            expanded.display()
                        ),
                    );
                    None
                }
            }
        }
    }
}

/// A URI as written, or a plain path made into a file:// URI. Files must exist: a typo in a
/// path is better caught by `lookout check` than by a camera that fails at 3 a.m.
fn resolve_uri(dir: &Path, uri: &str, e: &mut Errors) -> String {
    use gstreamer::glib;
    if uri.trim().is_empty() {
        e.push("uri", "must not be empty; use file:///path, rtsp://host/path or a path");
        return String::new();
    }
    let (is_file, path, uri) = match uri.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("file") => match glib::filename_from_uri(uri) {
            Ok((p, _)) => (true, p, uri.to_string()),
            Err(err) => {
                e.push("uri", format!("`{uri}` is not a valid file URI: {err}"));
                return uri.to_string();
            }
        },
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("test") => {
            if crate::source::test_pattern(rest).is_none() {
                e.push(
                    "uri",
                    format!(
                        "`{uri}`: unknown test pattern; use test://ball, test://smpte, test://snow or test://black"
                    ),
                );
            }
            (false, PathBuf::new(), uri.to_string())
        }
        Some((scheme, rest)) => {
            if !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
                e.push("uri", format!("`{}` has an invalid scheme", redact_uri(uri)));
            } else if crate::source::supports_uri_scheme(scheme) == Some(false) {
                e.push(
                    "uri",
                    format!(
                        "`{scheme}://` is not supported: no installed GStreamer source handles it; use file://, rtsp://, http(s):// (MJPEG), v4l2:// or test://, or install the GStreamer plugin for {scheme}"
                    ),
                );
            } else if matches!(scheme.to_ascii_lowercase().as_str(), "rtsp" | "rtsps" | "rtspt" | "http" | "https")
                && rest
                    .split('/')
                    .next()
                    .and_then(|auth| auth.rsplit('@').next())
                    .is_none_or(|host| host.is_empty() || host.starts_with(':'))
            {
                e.push("uri", format!("`{}` has no host; write {scheme}://host[:port]/path", redact_uri(uri)));
            }
            (false, PathBuf::new(), uri.to_string())
        }
        None => {
            let p = resolve(dir, uri);
            match glib::filename_to_uri(&p, None) {
                Ok(u) => (true, p, u.to_string()),
                Err(err) => {
                    e.push("uri", format!("path `{uri}` can't be made a URI: {err}"));
                    return uri.to_string();
                }
            }
        }
    };
    if is_file && !path.is_file() {
        e.push(
            "uri",
            format!(
                "{} does not exist or is not a file; fix the path (scripts/setup places the demo clip in media/)",
                path.display()
            ),
        );
    }
    uri
}
