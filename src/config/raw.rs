//! Raw config as operators write it: serde structs that reject unknown keys. Every `Option`
//! here has a documented default applied in [`super::spec`], so old files stay valid forever.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `lookout.toml`: settings for the whole gateway.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    /// Names this gateway in topics and in every event. Default: the host name.
    pub gateway_id: Option<String>,
    /// How long a stop (SIGTERM) may take before what is left is spooled and the daemon exits.
    /// Default: 10.
    pub shutdown_timeout_seconds: Option<f64>,
    /// Absent: events go to stdout as JSON lines.
    pub mqtt: Option<RawMqtt>,
    #[serde(default)]
    pub inference: RawInference,
    /// Defaults for every camera's `[detect]` table.
    #[serde(default)]
    pub detect: RawDetect,
    #[serde(default)]
    pub stats: RawStats,
    /// Defaults for every camera's `[track]` table.
    #[serde(default)]
    pub track: RawTrack,
    #[serde(default)]
    pub metrics: RawMetrics,
    /// The operator console ([`super::web`]).
    #[serde(default)]
    pub web: super::web::RawWeb,
    #[serde(default)]
    pub snapshots: RawSnapshotStore,
    /// Where MQTT messages wait while the broker is away. Used only with `[mqtt]`.
    #[serde(default)]
    pub spool: RawSpool,
    /// Capacity and when_full policy of the links between stages; `frames` and `detections`
    /// are defaults for every camera.
    #[serde(default)]
    pub links: RawLinks,
    /// Defaults for every camera's `[motion]` table.
    #[serde(default)]
    pub motion: RawMotion,
}

/// `[links.*]` in lookout.toml.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLinks {
    /// Source → detect workers, per camera. Default: capacity 2, drop_oldest.
    #[serde(default)]
    pub frames: RawLink,
    /// Detect workers → the camera's tracker and rules. Default: capacity 8, block.
    #[serde(default)]
    pub detections: RawLink,
    /// Everything → the publisher. Default: capacity 256, block.
    #[serde(default)]
    pub events: RawLink,
}

/// `[links.*]` in a camera file: only the camera's own links.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCameraLinks {
    #[serde(default)]
    pub frames: RawLink,
    #[serde(default)]
    pub detections: RawLink,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    /// Items the link holds, at least 1.
    pub capacity: Option<usize>,
    /// "drop_oldest", "drop_newest" or "block".
    pub when_full: Option<String>,
}

impl RawLink {
    /// Key by key: `self` where set, else `defaults`.
    pub fn or(self, d: &RawLink) -> RawLink {
        RawLink { capacity: self.capacity.or(d.capacity), when_full: self.when_full.or_else(|| d.when_full.clone()) }
    }
}

/// Motion gating (see `source::motion`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMotion {
    /// Default: false.
    pub enabled: Option<bool>,
    /// Grey-level difference from the background (1-254) that counts a pixel as changed.
    /// Default: 25.
    pub threshold: Option<u8>,
    /// Fraction of the small grey frame's pixels (above 0, at most 1) that must change to be
    /// motion; not an area in pixels. Default: 0.002.
    pub min_area: Option<f32>,
    /// Detect at least this often (stream seconds, above 0, at most 86400) even without
    /// motion. Default: 10.
    pub max_idle_detect_seconds: Option<f64>,
    /// Height in pixels (8-720) of the small grey frame compared. Default: 100.
    pub frame_height: Option<u32>,
}

impl RawMotion {
    /// Key by key: `self` where set, else `defaults`.
    pub fn or(self, d: &RawMotion) -> RawMotion {
        RawMotion {
            enabled: self.enabled.or(d.enabled),
            threshold: self.threshold.or(d.threshold),
            min_area: self.min_area.or(d.min_area),
            max_idle_detect_seconds: self.max_idle_detect_seconds.or(d.max_idle_detect_seconds),
            frame_height: self.frame_height.or(d.frame_height),
        }
    }
}

/// Where snapshots are kept, for every camera.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshotStore {
    /// Default: `$STATE_DIRECTORY/snapshots` under systemd, else `.lookout/snapshots` in the
    /// config directory.
    pub dir: Option<String>,
    /// Snapshots older than this are deleted. Default: 7.
    pub retain_days: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    /// Directory of the on-disk spool. Default: `$STATE_DIRECTORY/spool` when systemd sets
    /// STATE_DIRECTORY, else `.lookout/spool`, relative to the config directory.
    pub dir: Option<String>,
    /// The spool's size limit; past it the oldest messages are dropped. Default: 104857600 (100 MiB).
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// Address for `/metrics` (Prometheus) and `/healthz`, e.g. "127.0.0.1:9464". Default: none.
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// Default: 127.0.0.1.
    pub host: Option<String>,
    /// Default: 1883, or 8883 with `[mqtt.tls]`.
    pub port: Option<u16>,
    /// Default: `lookout/<gateway_id>`.
    pub topic_prefix: Option<String>,
    /// Default: `lookout-<gateway_id>`.
    pub client_id: Option<String>,
    /// Default: 30.
    pub keepalive_seconds: Option<u64>,
    /// Messages held in memory when the spool cannot be opened (else unused: the spool holds
    /// what the broker has not taken). Default: 1000.
    pub queue_capacity_messages: Option<usize>,
    /// Messages sent and not yet acknowledged (PUBACK) at any time; the rest wait in the spool.
    /// Default: 100.
    pub max_inflight: Option<u16>,
    /// How long a stopping daemon waits for the broker to acknowledge what it sent. Default: 10.
    pub flush_timeout_seconds: Option<u64>,
    /// The longest wait between attempts to reach a lost broker: attempts back off from
    /// 0.5 s, doubling, jittered down by up to 25 %, up to this. Default: 1.5.
    pub reconnect_max_seconds: Option<f64>,
    /// Publish Home Assistant MQTT discovery configs. Default: false.
    pub discovery: Option<bool>,
    /// Default: "homeassistant".
    pub discovery_prefix: Option<String>,
    /// Broker login: the user, with the password from `password_env` (a variable's name) or
    /// `password_file` (`$CREDENTIALS_DIRECTORY/` expanded, for systemd `LoadCredential=`).
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    /// `[mqtt.tls]`: present, the connection uses TLS (rustls). Default: absent, plain TCP.
    pub tls: Option<RawMqttTls>,
    /// Accept a camera's whole file over MQTT (`<prefix>/config/<camera>/set`), checked, saved
    /// and applied as a reload. Set broker ACLs first (docs/mqtt.md). Default: false.
    pub remote_config: Option<bool>,
}

/// MQTT over TLS. Relative paths are relative to the config directory; `$CREDENTIALS_DIRECTORY/`
/// at the start of a path is expanded, for systemd's `LoadCredential=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqttTls {
    /// Default: true (the table's presence turns TLS on); false turns it off, e.g. with
    /// `LOOKOUT__MQTT__TLS__ENABLED=false`.
    pub enabled: Option<bool>,
    /// PEM bundle of the CA(s) that signed the broker's certificate. Default: the system's CA
    /// bundle (/etc/ssl/certs, from the ca-certificates package).
    pub ca_file: Option<String>,
    /// PEM client certificate (chain), for brokers that require one (mutual TLS). Needs
    /// `client_key_file`. Default: none.
    pub client_cert_file: Option<String>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_file`. Default: none.
    pub client_key_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInference {
    /// Default: `models/yolox_nano.onnx`, relative to the config directory.
    pub model: Option<String>,
    /// Default: `.lookout/ort/libonnxruntime.so.1.31.1`, relative to the config directory.
    /// ORT_DYLIB_PATH overrides it.
    pub ort_library: Option<String>,
    /// Execution providers in order of preference, each a name (`"cuda"`) or a table with
    /// options (`{ type = "openvino", device_type = "NPU" }`). Default: `["cpu"]`.
    pub providers: Option<Vec<RawProvider>>,
    /// Try the next provider when one does not build. false: the first must build. Default: true.
    pub fallback: Option<bool>,
    /// Inference worker threads, each with its own session. Default: 1.
    pub workers: Option<usize>,
    /// ORT intra-op threads per worker. Default: 1.
    pub intra_threads: Option<usize>,
    /// The most frames (from different cameras) one run takes, on a provider that gains from
    /// batching and a model with a dynamic batch. Default: 8.
    pub max_batch: Option<usize>,
    /// How long a worker holding fewer than `max_batch` frames waits for more. Default: 5.
    pub max_batch_wait_ms: Option<u64>,
    /// Batch on the CPU provider too: no gain there, for tests and measurement. Default: false.
    pub batch_on_cpu: Option<bool>,
    /// On cuda and tensorrt, feed the input through IoBinding from pinned host memory.
    /// Default: true.
    pub io_binding: Option<bool>,
}

/// One entry of `inference.providers`: a name, or a table with `type` and options.
#[derive(Debug, Clone, PartialEq)]
pub enum RawProvider {
    Name(String),
    Table(RawProviderTable),
}

/// Options of one provider; which apply to which provider is checked in [`super::spec`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProviderTable {
    /// tensorrt, cuda, openvino, qnn or cpu.
    #[serde(rename = "type")]
    pub kind: String,
    /// tensorrt, cuda, qnn: the device's index. Default: 0.
    pub device_id: Option<i32>,
    /// openvino: CPU, GPU (GPU.1 for a second one) or NPU. Default: OpenVINO's (CPU).
    pub device_type: Option<String>,
    /// tensorrt: build FP16 engines. Default: false.
    pub fp16: Option<bool>,
    /// tensorrt: keep built engines here (they take minutes to build). Default: none.
    pub engine_cache_dir: Option<String>,
    /// cuda: the most device memory ORT's arena takes. Default: no limit.
    pub memory_limit_bytes: Option<u64>,
    /// qnn: the QNN backend library. Default: libQnnHtp.so (the NPU).
    pub backend_path: Option<String>,
}

// A string or a table. Written out rather than `#[serde(untagged)]`, which would replace the
// table's own error ("unknown field `fp61`, expected one of ...") with "did not match any variant".
impl<'de> Deserialize<'de> for RawProvider {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawProvider;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a provider name such as \"cuda\", or a table such as { type = \"openvino\", device_type = \"NPU\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawProvider, E> {
                Ok(RawProvider::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawProvider, A::Error> {
                RawProviderTable::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(RawProvider::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStats {
    /// How often `<prefix>/stats` is published. Default: 10.
    pub interval_seconds: Option<u64>,
}

/// `pipelines/<camera>.toml`: one camera, named by the file's stem.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCamera {
    /// Any GStreamer URI (`file:///…`, `rtsp://…`), or a plain path relative to the config directory.
    pub uri: String,
    /// Pace a file at its own frame rate, as a camera would deliver it. Default: true.
    /// Ignored for live sources, which are always real time.
    pub realtime: Option<bool>,
    /// Files only: start again at the end, for demos. Default: false.
    #[serde(rename = "loop")]
    pub loop_file: Option<bool>,
    /// No decoded frame for this long means the stream is dead: reconnect. Default: 10.
    pub stall_timeout_seconds: Option<f64>,
    /// The longest wait between reconnect attempts (they back off from 1 s). Default: 30.
    pub reconnect_max_seconds: Option<f64>,
    /// What a stream error does: "reconnect" or "fail". Default: reconnect for live sources,
    /// fail for files.
    pub on_error: Option<String>,
    /// Decoder element names in order of preference, e.g. ["vah264dec", "avdec_h264"].
    /// Applied through feature ranks. Default: GStreamer's own choice.
    pub decoder: Option<Vec<String>>,
    /// Threads per software decoder (avdec_*). Default: 1, best with many streams.
    pub decoder_threads: Option<u32>,
    /// RTSP transport: "tcp", "udp" or "auto". Default: tcp.
    pub rtsp_transport: Option<String>,
    /// Warn when the camera's clock (from RTCP sender reports) is this far from the gateway's.
    /// Default: 5.
    pub max_clock_skew_seconds: Option<f64>,
    /// RTSP/HTTP user name, sent with the password from `password_env` or `password_file`.
    /// Keeps secrets out of the URI and out of files that get shared. Default: none.
    pub username: Option<String>,
    /// Name of an environment variable holding the password (e.g. set by systemd's
    /// `Environment=` or an `EnvironmentFile=`).
    pub password_env: Option<String>,
    /// A file holding the password (trailing newline ignored). `$CREDENTIALS_DIRECTORY/` at
    /// its start is expanded, for systemd's `LoadCredential=`.
    pub password_file: Option<String>,
    #[serde(default)]
    pub detect: RawDetect,
    #[serde(default)]
    pub track: RawTrack,
    /// Per-label detection filters, applied before tracking: `[filters.person]`.
    #[serde(default)]
    pub filters: BTreeMap<String, RawFilter>,
    /// Polygons (normalised x, y) where detections are ignored, e.g. a tree that moves.
    #[serde(default)]
    pub masks: Vec<Vec<[f32; 2]>>,
    #[serde(default)]
    pub zones: Vec<RawZone>,
    #[serde(default)]
    pub lines: Vec<RawLine>,
    #[serde(default)]
    pub stationary: RawStationary,
    #[serde(default)]
    pub events: RawEvents,
    #[serde(default)]
    pub snapshots: RawSnapshots,
    /// This camera's frames and detections links, over `[links.*]` in lookout.toml.
    #[serde(default)]
    pub links: RawCameraLinks,
    /// Motion gating, over `[motion]` in lookout.toml.
    #[serde(default)]
    pub motion: RawMotion,
    /// Named overlays of this file's settings (`[profiles.night]`): split off and laid over
    /// the file by `config::profiles` before this struct is read; named here so the key is known.
    pub profiles: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
}

/// A JPEG of each object's best frame, on `<camera>/snapshot` and on disk.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSnapshots {
    /// Default: false.
    pub enabled: Option<bool>,
    /// Crop to the object instead of the whole frame. Default: false.
    pub crop: Option<bool>,
    /// Draw the object's box and label. Default: true.
    pub draw_box: Option<bool>,
    /// Longest side in pixels. Default: 640.
    pub max_size: Option<u32>,
    /// JPEG quality 1-100. Default: 80.
    pub quality: Option<u8>,
}

/// The tracker and the object event lifecycle. `detect.min_score` is the tracker's
/// "confident" score (ByteTrack's high threshold).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrack {
    /// Detections from this score up extend existing tracks (ByteTrack's second association).
    /// Default: 0.1.
    pub low_score: Option<f32>,
    /// An unmatched detection needs this score to start a track. Default: detect.min_score + 0.1.
    pub new_track_score: Option<f32>,
    /// Matches before a track is confirmed. Default: 3.
    pub min_hits: Option<u32>,
    /// An unmatched confirmed track is kept (predicted) this long. Default: 1.5.
    pub max_lost_seconds: Option<f64>,
    /// Median score an object needs before it is reported (`new`). Default: 0.7.
    pub threshold: Option<f32>,
    /// An `update` at least this often while the object is seen. Default: 10.
    pub update_interval_seconds: Option<f64>,
    /// How long a stationary object that vanished is kept to be re-identified. Default: 300.
    pub parked_seconds: Option<f64>,
    /// Labels the detector confuses, tracked as one object: `[["car", "truck", "bus"]]`.
    /// Default: none, every label is tracked on its own.
    pub label_groups: Option<Vec<Vec<String>>>,
}

impl RawTrack {
    /// Key by key: `self` where set, else `defaults`.
    pub fn or(self, d: &RawTrack) -> RawTrack {
        RawTrack {
            low_score: self.low_score.or(d.low_score),
            new_track_score: self.new_track_score.or(d.new_track_score),
            min_hits: self.min_hits.or(d.min_hits),
            max_lost_seconds: self.max_lost_seconds.or(d.max_lost_seconds),
            threshold: self.threshold.or(d.threshold),
            update_interval_seconds: self.update_interval_seconds.or(d.update_interval_seconds),
            parked_seconds: self.parked_seconds.or(d.parked_seconds),
            label_groups: self.label_groups.or_else(|| d.label_groups.clone()),
        }
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    pub min_score: Option<f32>,
    /// Box area (width × height) in source pixels², 0 or more; not a fraction of the frame.
    pub min_area: Option<f32>,
    pub max_area: Option<f32>,
    /// Box width / height.
    pub min_ratio: Option<f32>,
    pub max_ratio: Option<f32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub name: String,
    /// Normalised x, y points.
    pub polygon: Vec<[f32; 2]>,
    /// Only these labels count in the zone. Default: all.
    pub labels: Option<Vec<String>>,
    /// Consecutive frames inside (outside) before an object enters (exits). Default: 3.
    pub inertia: Option<u32>,
    /// One loitering event per visit after this long in the zone. Default: none.
    pub loitering_seconds: Option<f64>,
    /// false: the zone is kept (its topics, its Home Assistant entities) but makes no events,
    /// as if switched off; for a profile (`[[profiles.night.zones]]`). Default: true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLine {
    pub name: String,
    /// Two normalised x, y points.
    pub points: Vec<[f32; 2]>,
    /// "left_to_right", "right_to_left" or "both", as seen walking from the first point to
    /// the second. Default: both.
    pub direction: Option<String>,
    pub labels: Option<Vec<String>>,
    /// Normalised dead band around the line: jitter inside it never counts. Default: 0.02.
    pub hysteresis: Option<f32>,
    /// false: the line is kept but counts nothing, as if switched off. Default: true.
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStationary {
    /// Movement, as a fraction of the box's larger side, that still counts as still. Default: 0.1.
    pub threshold: Option<f32>,
    /// Still this long: stationary. Default: 10.
    pub stationary_seconds: Option<f64>,
    /// Consecutive moving frames before a stationary object counts as moving. Default: 3.
    pub moving_updates: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// Also publish every frame's raw detections (type `detection`). Default: false.
    pub detections: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetect {
    /// Frames per second to run detection on; the rest are dropped before scaling. Default: 5.
    pub fps: Option<f64>,
    /// Labels to report. Default: all the model knows.
    pub labels: Option<Vec<String>>,
    /// Minimum score to report. Default: 0.5.
    pub min_score: Option<f32>,
    /// The model this camera runs: a manifest name (`nanodet_m_320`), a manifest path or a
    /// YOLOX `.onnx`. Default: `inference.model`.
    pub model: Option<String>,
    /// Detect workers that take this camera's frames in turn, so that one busy camera uses
    /// several cores (its frames are put back in order before the tracker); at most
    /// `inference.workers`. Default: 1.
    pub workers: Option<usize>,
}

impl RawDetect {
    /// Key by key: `self` where set, else `defaults`.
    pub fn or(self, defaults: &RawDetect) -> RawDetect {
        RawDetect {
            model: self.model.or_else(|| defaults.model.clone()),
            fps: self.fps.or(defaults.fps),
            labels: self.labels.or_else(|| defaults.labels.clone()),
            min_score: self.min_score.or(defaults.min_score),
            workers: self.workers.or(defaults.workers),
        }
    }
}
