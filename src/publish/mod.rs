//! Publishing: every message leaves through one publisher thread, to MQTT or to stdout.
//!
//! ```toml
//! # lookout.toml
//! [mqtt]                          # absent: JSON lines on stdout
//! host = "127.0.0.1"
//! port = 1883
//! topic_prefix = "lookout/gw-01"  # default: lookout/<gateway_id>
//! ```
//!
//! Topics, under the prefix: `status` (retained online/offline, last will offline),
//! `<camera>/status` (retained JSON), `<camera>/events` (JSON, QoS 1), `<camera>/<zone>/<label>`
//! and `<camera>/<line>/<label>` (retained counts) and `stats` (JSON).
//! The publisher never waits on the network: see [`mqtt`]. While the broker is away, messages
//! wait on disk in a bounded [`spool`] (`[spool]` in lookout.toml), and a restarted daemon
//! sends what the last run could not.

pub mod mqtt;
pub mod payload;
pub mod report;
pub mod settings;
pub mod spool;
pub mod stage;
pub mod tls;

use std::io::Write;
use std::time::Duration;

/// Where a message goes, relative to the topic prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Topic {
    /// `<prefix>/<camera>/events`
    Events(String),
    /// `<prefix>/<camera>/status`
    CameraStatus(String),
    /// `<prefix>/stats`
    Stats,
    /// `<prefix>/<camera>/<zone>/<label>`, retained occupancy count.
    Occupancy { camera: String, zone: String, label: String },
    /// `<prefix>/<camera>/<line>/<label>`, retained cumulative line counts.
    LineCount { camera: String, line: String, label: String },
    /// `<prefix>/<camera>/snapshot`, retained JPEG of an object's best frame; also saved as
    /// `<snapshot dir>/<camera>/<object_id>.jpg`.
    Snapshot { camera: String, object_id: String },
    /// A Home Assistant discovery config: an absolute topic (not under the prefix), retained.
    Discovery(String),
    /// `<prefix>/profile/state`, retained: the profile in force and the last request's outcome.
    ProfileState,
    /// `<prefix>/config/<camera>/result`: how a camera file sent over MQTT ended.
    ConfigResult(String),
}

impl Topic {
    pub fn full(&self, prefix: &str) -> String {
        match self {
            Topic::Events(c) => format!("{prefix}/{c}/events"),
            Topic::CameraStatus(c) => format!("{prefix}/{c}/status"),
            Topic::Stats => format!("{prefix}/stats"),
            Topic::Occupancy { camera, zone, label } => format!("{prefix}/{camera}/{zone}/{label}"),
            Topic::LineCount { camera, line, label } => format!("{prefix}/{camera}/{line}/{label}"),
            Topic::Snapshot { camera, .. } => format!("{prefix}/{camera}/snapshot"),
            Topic::Discovery(topic) => topic.clone(),
            Topic::ProfileState => format!("{prefix}/profile/state"),
            Topic::ConfigResult(c) => format!("{prefix}/config/{c}/result"),
        }
    }

    /// The camera a topic belongs to, if any.
    pub fn camera(&self) -> Option<&str> {
        match self {
            Topic::Events(c) | Topic::CameraStatus(c) => Some(c),
            Topic::Occupancy { camera, .. } | Topic::LineCount { camera, .. } | Topic::Snapshot { camera, .. } => {
                Some(camera)
            }
            Topic::Stats | Topic::Discovery(_) | Topic::ProfileState | Topic::ConfigResult(_) => None,
        }
    }

    /// Retained topics hold state a new subscriber needs at once.
    pub fn retained(&self) -> bool {
        matches!(
            self,
            Topic::CameraStatus(_)
                | Topic::Occupancy { .. }
                | Topic::LineCount { .. }
                | Topic::Snapshot { .. }
                | Topic::Discovery(_)
                | Topic::ProfileState
        )
    }
}

/// One message on its way out.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub topic: Topic,
    pub payload: Vec<u8>,
    /// Capture time of the frame the message is about, to measure its age at publish.
    pub captured_at: Option<std::time::SystemTime>,
}

impl Outgoing {
    /// A message about no frame in particular (status, stats).
    pub fn new(topic: Topic, payload: Vec<u8>) -> Outgoing {
        Outgoing { topic, payload, captured_at: None }
    }

    /// A message about a frame captured at `at`.
    pub fn about_frame(topic: Topic, payload: Vec<u8>, at: std::time::SystemTime) -> Outgoing {
        Outgoing { topic, payload, captured_at: Some(at) }
    }
}

/// What a sink delivered, and what it could not, when it finished.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeliveryReport {
    /// Messages accepted from the pipeline.
    pub published: u64,
    /// Acknowledged by the broker (MQTT only; includes what an earlier run left in the spool).
    pub delivered: u64,
    /// Lost: neither sent nor spooled (no usable spool and the memory queue full, or a spool
    /// write failed).
    pub dropped_queue_full: u64,
    /// Not acknowledged by the flush deadline and not saved to the spool either: lost.
    pub unacknowledged: u64,
    /// Left in the spool on disk for the next run.
    pub spooled: u64,
    pub spooled_bytes: u64,
    /// Dropped from the spool, oldest first, to stay within `spool.max_bytes`.
    pub dropped_oldest: u64,
    /// Written to the spool during this run (the broker away or the window full).
    pub spooled_in_run: u64,
    /// Spooled messages the broker acknowledged during this run (an earlier run's included).
    pub replayed: u64,
    /// Messages an earlier run left in the spool, found at start. The books:
    /// `from_earlier_run + published = delivered + dropped_queue_full + unacknowledged +
    /// dropped_oldest + spooled`.
    pub from_earlier_run: u64,
}

/// The configured destination.
pub enum Sink {
    Stdout(std::io::Stdout, u64),
    Mqtt(mqtt::MqttSink),
    /// Counts and discards: for benchmarks, where printing would be measured too.
    Discard(u64),
    /// Discards, keeping each frame message's age (capture to now, seconds) in the shared
    /// list: for benchmarks that report the frame age at publish exactly.
    Probe(std::sync::Arc<std::sync::Mutex<Vec<f32>>>, u64),
}

impl Sink {
    pub fn stdout() -> Sink {
        Sink::Stdout(std::io::stdout(), 0)
    }

    pub fn publish(&mut self, msg: Outgoing) {
        match self {
            // JPEG bytes would break the JSON lines; the file on disk is there to look at.
            Sink::Stdout(_, _) if matches!(msg.topic, Topic::Snapshot { .. }) => {}
            Sink::Stdout(out, n) => {
                let mut lock = out.lock();
                // stdout closed (a pipe reader went away) is not worth stopping cameras for.
                let _ = lock.write_all(&msg.payload).and_then(|_| lock.write_all(b"\n")).and_then(|_| lock.flush());
                *n += 1;
            }
            Sink::Mqtt(m) => m.publish(msg),
            Sink::Discard(n) => *n += 1,
            Sink::Probe(ages, n) => {
                if let Some(at) = msg.captured_at {
                    let age = std::time::SystemTime::now().duration_since(at).unwrap_or_default().as_secs_f32();
                    if let Ok(mut a) = ages.lock() {
                        a.push(age);
                    }
                }
                *n += 1;
            }
        }
    }

    /// The MQTT publisher's live counters; `None` for stdout and discard.
    pub fn counters(&self) -> Option<std::sync::Arc<crate::stats::PublishCounters>> {
        match self {
            Sink::Mqtt(m) => Some(m.counters()),
            Sink::Stdout(..) | Sink::Discard(_) | Sink::Probe(..) => None,
        }
    }

    /// Flush what can be flushed within `timeout` and say what could not.
    pub fn finish(self, timeout: Duration) -> DeliveryReport {
        match self {
            Sink::Stdout(_, n) | Sink::Discard(n) | Sink::Probe(_, n) => {
                DeliveryReport { published: n, ..Default::default() }
            }
            Sink::Mqtt(m) => m.finish(timeout),
        }
    }
}
