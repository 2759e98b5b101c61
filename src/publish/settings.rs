//! The publisher's settings (`[mqtt]`, `[mqtt.tls]`, `[spool]`), validated, with their defaults.
//! `config` reads and checks the files and builds these.

use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::Credentials;

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
    /// Whether `<prefix>/config/<camera>/set` is obeyed (`mqtt.remote_config`).
    pub remote_config: bool,
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
