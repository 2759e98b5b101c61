//! The MQTT sink: rumqttc with QoS 1, a retained availability topic with a last will, and a
//! connection thread that reconnects with backoff for as long as the daemon runs.
//!
//! The publisher never blocks: `try_publish` puts a message on the client's bounded queue
//! (`mqtt.queue_capacity_messages`); while the broker is away the queue fills, and once full
//! further messages are counted as dropped and logged. (An on-disk spool comes later.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Outgoing as MqttOut, Packet, QoS};

use super::{DeliveryReport, Outgoing};
use crate::config::MqttSpec;

pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Shared between the publisher and the connection thread.
#[derive(Debug, Default)]
struct Counters {
    connected: AtomicBool,
    stop: AtomicBool,
    /// QoS 1 publishes accepted by the client queue, and PUBACKs received for them.
    enqueued: AtomicU64,
    acked: AtomicU64,
}

pub struct MqttSink {
    client: Client,
    prefix: String,
    counters: Arc<Counters>,
    conn: Option<JoinHandle<()>>,
    dropped_queue_full: u64,
    published: u64,
}

impl MqttSink {
    /// Start connecting. Never fails: an unreachable broker is retried in the background.
    pub fn connect(spec: &MqttSpec) -> MqttSink {
        let status_topic = format!("{}/status", spec.topic_prefix);
        let mut opts = MqttOptions::new(&spec.client_id, &spec.host, spec.port);
        opts.set_keep_alive(spec.keepalive);
        // rumqttc refuses packets over 10 kB by default; a snapshot JPEG is bigger. Incoming
        // packets stay small (acks only).
        opts.set_max_packet_size(64 * 1024, 8 * 1024 * 1024);
        if let Some(c) = &spec.credentials {
            opts.set_credentials(c.username.clone(), c.password.clone());
        }
        opts.set_last_will(LastWill::new(&status_topic, OFFLINE, QoS::AtLeastOnce, true));
        let (client, connection) = Client::new(opts, spec.queue_capacity);
        let counters = Arc::new(Counters::default());
        let conn = {
            let (client, counters, spec) = (client.clone(), counters.clone(), spec.clone());
            std::thread::Builder::new()
                .name("mqtt-conn".into())
                .spawn(move || connection_loop(connection, client, counters, spec, status_topic))
                .ok()
        };
        MqttSink { client, prefix: spec.topic_prefix.clone(), counters, conn, dropped_queue_full: 0, published: 0 }
    }

    pub fn publish(&mut self, msg: Outgoing) {
        let topic = msg.topic.full(&self.prefix);
        match self.client.try_publish(topic.as_str(), QoS::AtLeastOnce, msg.topic.retained(), msg.payload) {
            Ok(()) => {
                self.published += 1;
                self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.dropped_queue_full += 1;
                // Log the first and then every 100th, so an outage can't flood the journal.
                if self.dropped_queue_full % 100 == 1 {
                    tracing::warn!(topic = %topic, dropped = self.dropped_queue_full, error = %e,
                        "MQTT queue full while the broker is away: message dropped");
                }
            }
        }
    }

    /// Mark the gateway offline, wait up to `timeout` for the broker to acknowledge what was
    /// sent, then disconnect.
    pub fn finish(mut self, timeout: Duration) -> DeliveryReport {
        let deadline = Instant::now() + timeout;
        let status_topic = format!("{}/status", self.prefix);
        if self.client.try_publish(status_topic, QoS::AtLeastOnce, true, OFFLINE).is_ok() {
            self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        }
        while Instant::now() < deadline && self.counters.acked.load(Ordering::Relaxed) < self.counters.enqueued.load(Ordering::Relaxed) {
            std::thread::park_timeout(Duration::from_millis(20));
        }
        let unacknowledged = self
            .counters
            .enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(self.counters.acked.load(Ordering::Relaxed));
        let _ = self.client.try_disconnect();
        self.counters.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.conn.take() {
            // The thread notices `stop` within a poll; if it is stuck in a connect attempt to an
            // unreachable host we don't wait for it, since the process is exiting anyway.
            let waited = Instant::now();
            while !h.is_finished() && waited.elapsed() < Duration::from_secs(2) {
                std::thread::park_timeout(Duration::from_millis(20));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        DeliveryReport { published: self.published, dropped_queue_full: self.dropped_queue_full, unacknowledged }
    }
}

fn connection_loop(mut connection: Connection, client: Client, counters: Arc<Counters>, spec: MqttSpec, status_topic: String) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u32;
    while !counters.stop.load(Ordering::SeqCst) {
        // While connected, wake up regularly to notice `stop`. While connecting, let rumqttc's
        // own connect timeout run: cutting a connect attempt short would restart it forever.
        let event = if counters.connected.load(Ordering::Relaxed) {
            match connection.recv_timeout(Duration::from_millis(250)) {
                Ok(ev) => ev,
                Err(rumqttc::RecvTimeoutError::Timeout) => continue,
                Err(rumqttc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match connection.recv() {
                Ok(ev) => ev,
                Err(_) => break,
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                counters.connected.store(true, Ordering::Relaxed);
                backoff = BACKOFF_MIN;
                if failures > 0 {
                    tracing::info!(host = %spec.host, port = spec.port, "MQTT broker reachable again");
                } else {
                    tracing::info!(host = %spec.host, port = spec.port, "connected to MQTT broker");
                }
                failures = 0;
                if client.try_publish(status_topic.as_str(), QoS::AtLeastOnce, true, ONLINE).is_ok() {
                    counters.enqueued.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(MqttOut::Disconnect)) => {
                counters.connected.store(false, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                if counters.stop.load(Ordering::SeqCst) {
                    break;
                }
                let was_connected = counters.connected.swap(false, Ordering::Relaxed);
                failures += 1;
                if was_connected {
                    tracing::warn!(host = %spec.host, port = spec.port, error = %e,
                        "lost the MQTT broker; reconnecting, messages queue meanwhile");
                } else if failures == 1 || failures.is_multiple_of(10) {
                    if let rumqttc::ConnectionError::ConnectionRefused(code) = &e {
                        tracing::error!(host = %spec.host, port = spec.port, code = ?code, retry_in_s = backoff.as_secs(), attempts = failures,
                            "the MQTT broker refused the connection; check mqtt.username and mqtt.password_env / password_file (and the broker's ACL)");
                    } else {
                        tracing::warn!(host = %spec.host, port = spec.port, error = %e, retry_in_s = backoff.as_secs(), attempts = failures,
                            "MQTT broker unreachable; retrying. Check mqtt.host and mqtt.port, and that the broker runs");
                    }
                }
                sleep_unless_stopped(backoff, &counters.stop);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Sleep for a retry backoff, waking early on stop.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::park_timeout(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
    }
}
