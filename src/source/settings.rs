//! The source stage's settings (a camera file's top-level keys and `[motion]`), validated, with
//! their defaults. `config` reads and checks the files and builds these.

use std::time::Duration;

use crate::credentials::Credentials;
use crate::source::motion::MotionConfig;

pub const DEFAULT_STALL_TIMEOUT_SECONDS: f64 = 10.0;
pub const DEFAULT_RECONNECT_MAX_SECONDS: f64 = 30.0;
pub const DEFAULT_DECODER_THREADS: u32 = 1;
pub const DEFAULT_MAX_CLOCK_SKEW_SECONDS: f64 = 5.0;
/// URI schemes whose streams are live: their end of stream means a disconnect.
pub const LIVE_SCHEMES: [&str; 6] = ["rtsp", "rtsps", "http", "https", "v4l2", "test"];

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

/// How one camera's frames are read: where from, what a fault does, and the motion gate.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSpec {
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
    /// Skip inference on frames without motion (`[motion]`).
    pub motion: MotionConfig,
}
