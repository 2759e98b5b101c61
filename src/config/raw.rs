//! Raw config as operators write it: serde structs that reject unknown keys. Every `Option`
//! here has a documented default applied in [`super::spec`], so old files stay valid forever.

use serde::Deserialize;

/// `lookout.toml`: settings for the whole gateway.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    /// Names this gateway in topics and in every event. Default: the host name.
    pub gateway_id: Option<String>,
    /// Absent: events go to stdout as JSON lines.
    pub mqtt: Option<RawMqtt>,
    #[serde(default)]
    pub inference: RawInference,
    /// Defaults for every camera's `[detect]` table.
    #[serde(default)]
    pub detect: RawDetect,
    #[serde(default)]
    pub stats: RawStats,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMqtt {
    /// Default: 127.0.0.1.
    pub host: Option<String>,
    /// Default: 1883.
    pub port: Option<u16>,
    /// Default: `lookout/<gateway_id>`.
    pub topic_prefix: Option<String>,
    /// Default: `lookout-<gateway_id>`.
    pub client_id: Option<String>,
    /// Default: 30.
    pub keepalive_seconds: Option<u64>,
    /// Capacity of the client's outgoing queue, in messages. Default: 1000.
    pub queue_capacity_messages: Option<usize>,
    /// How long a stopping daemon waits for the broker to acknowledge what it sent. Default: 10.
    pub flush_timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInference {
    /// Default: `models/yolox_nano.onnx`, relative to the config directory.
    pub model: Option<String>,
    /// Default: `.lookout/ort/libonnxruntime.so.1.31.1`, relative to the config directory.
    /// ORT_DYLIB_PATH overrides it.
    pub ort_library: Option<String>,
    /// In order of preference. Default: `["cpu"]`.
    pub providers: Option<Vec<String>>,
    /// Inference worker threads, each with its own session. Default: 1.
    pub workers: Option<usize>,
    /// ORT intra-op threads per worker. Default: 1.
    pub intra_threads: Option<usize>,
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
    /// RTSP transport: "tcp", "udp" or "auto". Default: auto.
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
}

impl RawDetect {
    /// Key by key: `self` where set, else `defaults`.
    pub fn or(self, defaults: &RawDetect) -> RawDetect {
        RawDetect {
            fps: self.fps.or(defaults.fps),
            labels: self.labels.or_else(|| defaults.labels.clone()),
            min_score: self.min_score.or(defaults.min_score),
        }
    }
}
