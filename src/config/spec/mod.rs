//! The validated config the daemon runs from. Building it checks everything that can be
//! checked offline, and reports every problem at once.

mod camera;
mod objects;
mod secrets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) use camera::build_camera;
use camera::*;
use objects::*;
use secrets::*;

use super::raw::{
    RawCamera, RawDetect, RawEvents, RawFilter, RawGlobal, RawLine, RawLink, RawLinks, RawMotion, RawProvider,
    RawProviderTable, RawSnapshots, RawStationary, RawTrack, RawZone,
};
use super::{ConfigError, redact_uri};
use crate::detect::labels::LabelTable;
use crate::detect::manifest::{self, ModelSpec};
use crate::detect::{ProviderKind, ProviderSpec};
use crate::link::{self, LinkKind, LinkPolicyError, LinkSpec, WhenFull};
use crate::objects::lifecycle::LifecycleConfig;
use crate::objects::snapshot::SnapshotConfig;
use crate::rules::{Directions, Filters, LabelFilter, LineConfig, Point, RulesConfig, StationaryConfig, ZoneConfig};
use crate::source::motion::MotionConfig;
use crate::track::TrackerConfig;

pub use crate::credentials::{Credentials, STATE_DIRECTORY_ENV};
use crate::credentials::{expand_credentials_dir, state_directory};
pub use crate::detect::settings::*;
pub use crate::objects::settings::*;
pub use crate::publish::settings::*;
pub use crate::source::settings::*;

pub const DEFAULT_STATS_INTERVAL_SECONDS: u64 = 10;
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS: f64 = 10.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub config_dir: PathBuf,
    pub gateway_id: String,
    pub mqtt: Option<MqttSpec>,
    pub inference: InferenceSpec,
    pub stats_interval: Duration,
    /// Where `/metrics` and `/healthz` listen; `None`: no endpoint.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The operator console (`[web]`), which also serves /metrics and /healthz.
    pub web: super::web::Settings,
    /// Where snapshots are saved, and for how long.
    pub snapshot_dir: PathBuf,
    pub snapshot_retain: Duration,
    /// The zone and line switches set over MQTT: `$STATE_DIRECTORY/toggles.json` under
    /// systemd, else `.lookout/toggles.json` in the config directory.
    pub toggles_file: PathBuf,
    /// The profile applied last (`<prefix>/profile/set`), kept for the next start:
    /// `$STATE_DIRECTORY/profile` under systemd, else `.lookout/profile` in the config directory.
    pub profile_file: PathBuf,
    /// Each profile's cameras (`[profiles.<name>]` in camera files), fully built and checked:
    /// profile → camera → its settings under that profile. A camera without the profile runs
    /// its own settings under it.
    pub profiles: BTreeMap<String, BTreeMap<String, CameraSpec>>,
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

/// A profile no camera defines.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("no camera defines a profile `{name}`; the profiles are: {known}")]
pub struct UnknownProfile {
    pub name: String,
    pub known: String,
}

impl CameraSpec {
    /// The switches the camera has (`crate::toggles`), by kind and name, in config order: what
    /// the MQTT topics, Home Assistant's switches and the stages all go by.
    pub fn switches(&self) -> Vec<(crate::toggles::Kind, String)> {
        use crate::toggles::Kind;
        let rules = &self.objects.rules;
        let mut out: Vec<(Kind, String)> = rules.zones.iter().map(|z| (Kind::Zone, z.name.clone())).collect();
        out.extend(rules.lines.iter().map(|l| (Kind::Line, l.name.clone())));
        out.extend((1..=rules.filters.masks.len()).map(|n| (Kind::Mask, n.to_string())));
        if self.source.motion.enabled {
            out.push((Kind::Motion, String::new()));
        }
        if self.objects.snapshots.enabled {
            out.push((Kind::Snapshots, String::new()));
        }
        out
    }
}

impl Spec {
    /// Every profile any camera defines, and `default` (the files' own settings) first.
    pub fn profile_names(&self) -> Vec<String> {
        std::iter::once(crate::config::profiles::DEFAULT_PROFILE.to_string())
            .chain(self.profiles.keys().cloned())
            .collect()
    }

    /// This config with `profile` applied: each camera that defines it runs it, the others their
    /// own settings. `default` is the config as it is.
    pub fn with_profile(&self, profile: &str) -> Result<Spec, UnknownProfile> {
        if profile == crate::config::profiles::DEFAULT_PROFILE {
            return Ok(self.clone());
        }
        let Some(variants) = self.profiles.get(profile) else {
            return Err(UnknownProfile { name: profile.to_string(), known: self.profile_names().join(", ") });
        };
        let mut out = self.clone();
        for cam in &mut out.cameras {
            if let Some(v) = variants.get(&cam.name) {
                *cam = v.clone();
            }
        }
        Ok(out)
    }
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

#[derive(Debug, Clone, PartialEq)]
pub struct CameraSpec {
    /// The file stem of `pipelines/<name>.toml`; used in topics.
    pub name: String,
    /// The file it came from, for messages.
    pub file: PathBuf,
    pub source: SourceSpec,
    pub detect: DetectSpec,
    pub objects: ObjectsSpec,
    pub links: CameraLinks,
}

impl CameraSpec {
    /// The camera as its source stage sees it.
    pub fn as_source(&self) -> crate::source::Camera<'_> {
        crate::source::Camera { name: &self.name, fps: self.detect.fps, source: &self.source, motion_switch: None }
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
            remote_config: m.remote_config.unwrap_or(false),
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
    let (web, problems) = super::web::validate(&raw.web, dir, expand_credentials_dir);
    for (key, message) in problems {
        e.push(&key, message);
    }
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
    // Not a setting: where the state is, as for the spool and the snapshots.
    let toggles_file = state_directory("toggles.json").unwrap_or_else(|| dir.join(".lookout/toggles.json"));
    let profile_file = state_directory("profile").unwrap_or_else(|| dir.join(".lookout/profile"));
    Spec {
        shutdown_timeout: Duration::from_secs_f64(shutdown_timeout.clamp(0.001, 3600.0)),
        config_dir: dir.to_path_buf(),
        toggles_file,
        profile_file,
        profiles: BTreeMap::new(),
        metrics_listen,
        web,
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
