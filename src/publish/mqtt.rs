//! The MQTT sink: rumqttc with QoS 1, a retained availability topic with a last will, a
//! connection thread that reconnects with backoff for as long as the daemon runs, and an
//! on-disk [`Spool`] so that nothing is lost while the broker is away.
//!
//! ```toml
//! [mqtt]
//! max_inflight = 100      # sent and not yet acknowledged; the rest wait
//! reconnect_max_seconds = 1.5 # longest wait between attempts to reach a lost broker
//! [mqtt.tls]              # optional: TLS through rustls, see [`super::tls`]
//! ca_file = "ca.pem"
//! [spool]
//! max_bytes = 104857600   # past this the oldest waiting messages are dropped, and counted
//! ```
//!
//! The books (what waits in memory or on the spool, what is in flight, what a PUBACK retires,
//! what a new session resends, the close) are kept by [`state::State`], free of I/O; this file
//! feeds it rumqttc's events and performs what it answers.
//!
//! The publisher never waits on the network. [`MqttSink::publish`] hands a message over under a
//! short lock: into a small in-memory queue while the broker is connected, the spool is empty
//! and fewer than `max_inflight` messages are in flight; otherwise onto the spool (after
//! moving any in-memory ones there first, so the spool stays in order).
//!
//! Only the connection thread calls rumqttc's `try_publish`, between its polls of the event
//! loop. That is what makes the books exact: when the connection drops, rumqttc has every
//! unacknowledged publish in its own pending list, and nothing slips into its request queue
//! behind our back. Each PUBACK retires the oldest message in flight (QoS 1 acks come in
//! order), and a spooled message is deleted from disk only then: delivery is at least once.
//! After a reconnect, if the broker resumed the session rumqttc resends what was in flight
//! itself; if not (a restarted broker), we resend it. A stopping daemon leaves whatever is not
//! acknowledged within `flush_timeout_seconds` in the spool, and the next run sends it first;
//! when the broker is unreachable (the last attempt failed) it does not wait at all.
//!
//! Reconnecting: a lost broker is tried again after 0.5 s, then after waits that double up to
//! `mqtt.reconnect_max_seconds` (default 1.5 s), each jittered down by up to 25 % and seeded by
//! the client id, so that gateways that lost the same broker spread out. Live delivery
//! resumes at most about that cap after the broker returns, plus one connect.
//!
//! Our status messages (`online`, `offline`, each camera's detect state) wait in a queue of
//! their own and take their turn in the window like any message. `offline` goes exactly once
//! per session, and `finish` waits for its PUBACK.
//!
//! Packet ids: rumqttc logs `Collision on packet id = N` when the id it would give a publish
//! is still held by an unacknowledged one (its ids run 1..=inflight, cyclically, and a
//! SUBSCRIBE takes one from the same counter). Read from rumqttc 0.25.1 (`state.rs`,
//! `eventloop.rs`): the colliding publish is parked and sent when the PUBACK for that id
//! arrives, so one collision delays one message by about one round trip and duplicates
//! nothing. Two rarer paths are worse. Only one publish can be parked: when rumqttc replays
//! its pending list after a reconnect with the session present, pending requests bypass the
//! collision gate, and a second collision overwrites the first, which is never sent (lost,
//! and our PUBACK count is off by one). And the parked publish survives a disconnect (its
//! `clean()` leaves it): after a reconnect without the session, no PUBACK for its id can
//! come, every new request waits behind it, and after two keepalives rumqttc drops the
//! connection, again and again: nothing is delivered until a restart. All of it needed more
//! publishes handed over than rumqttc has ids: our status messages used to go straight to
//! rumqttc on top of a full window, and the SUBSCRIBE of each connection took an id besides
//! (that was the collision logged at a reconnect with a spool backlog). Now every publish,
//! status messages included, stays within the window, and rumqttc gets [`PKID_MARGIN`] more
//! ids than the window, so its ids never wrap onto an unacknowledged publish and no
//! collision can happen (`spool::live_delivery_resumes_within_seconds_of_the_broker_returning`
//! checks the log).

pub mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Outgoing as MqttOut, Packet, QoS};

use self::state::{Reconnects, State};
use super::spool::{Record, Spool};
use super::{DeliveryReport, Outgoing};
use crate::publish::settings::MqttSpec;
use crate::stats::PublishCounters;
use crate::toggles::{self, Key, Toggles};

pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// Packet ids rumqttc may use beyond our window of publishes: a SUBSCRIBE takes a packet id
/// from the same counter without holding a publish slot, so without this margin the ids of a
/// full window wrap onto an unacknowledged publish (see "Packet ids" above).
const PKID_MARGIN: u16 = 8;
/// How often the connected connection thread looks for messages to send: the most a message
/// waits in memory before it goes to rumqttc.
const PUMP_INTERVAL: Duration = Duration::from_millis(20);

/// What the publisher and the connection thread share: the books, under one lock.
struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock must not silence the publisher.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct MqttSink {
    client: Client,
    prefix: String,
    shared: Arc<Shared>,
    conn: Option<JoinHandle<()>>,
    /// Where the spool lives, to say so when messages are left in it.
    spool_dir: std::path::PathBuf,
    counters: Arc<PublishCounters>,
}

impl MqttSink {
    /// Open the spool and start connecting. Never fails: an unreachable broker is retried in
    /// the background, and an unusable spool leaves a bounded in-memory queue.
    pub fn connect(spec: &MqttSpec) -> MqttSink {
        MqttSink::connect_with(spec, Commands::default())
    }

    /// As [`MqttSink::connect`], obeying the `commands`: `<prefix>/<camera>/detect/set` (ON /
    /// OFF), reported on `<prefix>/<camera>/detect/state` (retained); the other switches
    /// (`toggles`), reported the same way; and the profile and camera-file requests
    /// (`crate::remote`), handed to the run loop.
    pub fn connect_with(spec: &MqttSpec, commands: Commands) -> MqttSink {
        let status_topic = format!("{}/status", spec.topic_prefix);
        let mut opts = MqttOptions::new(&spec.client_id, &spec.host, spec.port);
        opts.set_keep_alive(spec.keepalive);
        // rumqttc refuses packets over 10 kB by default; a snapshot JPEG is bigger. Incoming
        // packets stay small (acks only).
        // Incoming: commands, and camera files up to `remote::MAX_CONFIG_BYTES` (a bigger one
        // is answered as refused); a packet over this limit would cost the connection.
        opts.set_max_packet_size(1024 * 1024, 8 * 1024 * 1024);
        if let Some(c) = &spec.credentials {
            opts.set_credentials(c.username.clone(), c.password.clone());
        }
        if let Some(tls) = &spec.tls {
            // The config built and checked the client config; rumqttc only connects with it.
            opts.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(tls.client_config.clone())));
        }
        opts.set_last_will(LastWill::new(&status_topic, OFFLINE, QoS::AtLeastOnce, true));
        // A stable client id and a kept session: after a short network break the broker
        // resumes, and rumqttc resends what was in flight.
        opts.set_clean_session(false);
        // We hand rumqttc at most `window` publishes at a time, our status messages included;
        // its packet ids get a margin on top (see "Packet ids" above).
        let window = spec.max_inflight.min(u16::MAX - PKID_MARGIN);
        opts.set_inflight(window + PKID_MARGIN);
        let window = window as usize;
        // The window, plus a SUBSCRIBE and a DISCONNECT.
        let (client, connection) = Client::new(opts, window + 4);
        let spool = match Spool::open(&spec.spool.dir, spec.spool.max_bytes) {
            Ok(s) => {
                if !s.is_empty() {
                    tracing::info!(dir = %spec.spool.dir.display(), messages = s.len(), bytes = s.bytes(),
                        "spool holds messages from an earlier run; they are sent first");
                }
                Some(s)
            }
            Err(e) => {
                tracing::error!(error = %e, capacity = spec.queue_capacity,
                    "cannot open the MQTT spool; messages wait in memory instead, and are lost on a long outage or a restart");
                None
            }
        };
        let state = State::new(spool, window, spec.queue_capacity, status_topic);
        let counters = state.counters();
        let shared = Arc::new(Shared { state: Mutex::new(state), stop: AtomicBool::new(false) });
        let conn = {
            let (client, shared, spec) = (client.clone(), shared.clone(), spec.clone());
            std::thread::Builder::new()
                .name("mqtt-conn".into())
                .spawn(move || connection_loop(connection, client, shared, spec, commands))
                .ok()
        };
        MqttSink {
            client,
            prefix: spec.topic_prefix.clone(),
            shared,
            conn,
            spool_dir: spec.spool.dir.clone(),
            counters,
        }
    }

    /// Spooled, replayed, delivered and dropped messages, live.
    pub fn counters(&self) -> Arc<PublishCounters> {
        self.counters.clone()
    }

    /// Accept a message for delivery. Never blocks on the network.
    pub fn publish(&mut self, msg: Outgoing) {
        let rec = Record { topic: msg.topic.full(&self.prefix), retain: msg.topic.retained(), payload: msg.payload };
        self.shared.lock().publish(rec);
    }

    /// Wait up to `timeout` for the broker to acknowledge everything, mark the gateway
    /// offline, disconnect, and leave what was not acknowledged in the spool for the next run.
    ///
    /// A broker found unreachable (the last attempt failed) ends the wait at once: nothing can
    /// be acknowledged, and below everything goes to the spool. A broker that is connected but
    /// silent is waited for until `timeout`.
    pub fn finish(mut self, timeout: Duration) -> DeliveryReport {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && !self.shared.lock().settled() {
            std::thread::park_timeout(Duration::from_millis(10));
        }
        let connected = self.shared.lock().close();
        // The offline status goes last; give it a moment even when the deadline has passed.
        if connected {
            let until = deadline.max(Instant::now() + Duration::from_millis(500));
            while Instant::now() < until && !self.shared.lock().offline_acked() {
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
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
        let report = self.shared.lock().finish();
        if report.spooled > 0 {
            tracing::warn!(messages = report.spooled, bytes = report.spooled_bytes, dir = %self.spool_dir.display(),
                "MQTT messages not acknowledged in time are left in the spool for the next run");
        }
        report
    }
}

/// Hand rumqttc what the books have room for, in order; what it refuses goes back to wait.
/// Called on the connection thread only, between polls.
fn pump(st: &mut State, client: &Client) {
    let batch = st.pump();
    let total = batch.len();
    for (i, rec) in batch.into_iter().enumerate() {
        if client.try_publish(rec.topic, QoS::AtLeastOnce, rec.retain, rec.payload).is_err() {
            st.refused(total - i);
            return;
        }
    }
}

/// What the connection obeys besides publishing.
#[derive(Clone, Default)]
pub struct Commands {
    /// `<camera>/detect/set`.
    pub detect: DetectSwitches,
    /// The zone, line, mask, motion and snapshot switches.
    pub toggles: Toggles,
    /// Where other messages on `subscriptions` go (the run loop, which reads profile and
    /// camera-file requests from them: `crate::remote`).
    pub requests: Option<crossbeam_channel::Sender<Incoming>>,
    pub subscriptions: Vec<String>,
}

/// A message received on one of [`Commands::subscriptions`].
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Handed over as the broker's retained copy (at a (re)subscription), not sent live.
    pub retained: bool,
}

/// Per camera: whether detection runs. Shared by the MQTT connection thread (which flips it on
/// command) and the detect workers (which obey it); a reload adds and removes cameras.
pub type DetectSwitches = Arc<Mutex<std::collections::BTreeMap<String, Arc<AtomicBool>>>>;

/// The switch of `camera`, if it has one.
fn switch_of(switches: &DetectSwitches, camera: &str) -> Option<Arc<AtomicBool>> {
    switches.lock().unwrap_or_else(|p| p.into_inner()).get(camera).cloned()
}

/// Queue a camera's detect state, retained, as a control message (not spooled: it is the
/// current state, re-sent on every connect).
fn send_detect_state(st: &mut State, prefix: &str, camera: &str, on: bool) {
    st.queue_control(Record {
        topic: format!("{prefix}/{camera}/detect/state"),
        retain: true,
        payload: if on { b"ON".to_vec() } else { b"OFF".to_vec() },
    });
}

/// `<prefix>/<camera>/<zone|line|mask>/<name>/set` or `…/<motion|snapshots>/set` with ON or OFF: flip the switch, save it and
/// report it. A switch this gateway doesn't have, or a payload other than ON or OFF, changes
/// nothing and is logged.
fn on_toggle(st: &mut State, prefix: &str, toggles: &Toggles, key: Key, topic: &str, payload: &[u8]) {
    let Some(on) = toggles::parse_switch(payload) else {
        tracing::warn!(topic, payload = %String::from_utf8_lossy(payload).chars().take(40).collect::<String>(), "a switch takes ON or OFF; ignored");
        return;
    };
    match toggles.set(&key, on) {
        Ok(()) => {
            tracing::info!(camera = %key.0, kind = key.1.as_str(), name = %key.2, state = if on { "ON" } else { "OFF" }, "switched by MQTT command");
            send_toggle_state(st, prefix, &key, on);
        }
        Err(e) => tracing::warn!(topic, error = %e, "switch command ignored"),
    }
}

/// Queue a switch's state, retained, as a control message.
fn send_toggle_state(st: &mut State, prefix: &str, key: &Key, on: bool) {
    st.queue_control(Record {
        topic: toggles::state_topic(prefix, key),
        retain: true,
        payload: if on { b"ON".to_vec() } else { b"OFF".to_vec() },
    });
}

/// `<prefix>/<camera>/detect/set` with ON or OFF: flip the camera's switch and report it.
fn on_command(st: &mut State, prefix: &str, switches: &DetectSwitches, topic: &str, payload: &[u8]) {
    let Some(camera) =
        topic.strip_prefix(prefix).and_then(|t| t.strip_prefix('/')).and_then(|t| t.strip_suffix("/detect/set"))
    else {
        return;
    };
    let Some(switch) = switch_of(switches, camera) else {
        tracing::warn!(topic, "detect/set for a camera this gateway doesn't have; ignored");
        return;
    };
    let on = match String::from_utf8_lossy(payload).trim().to_ascii_uppercase().as_str() {
        "ON" => true,
        "OFF" => false,
        other => {
            tracing::warn!(topic, payload = other, "detect/set takes ON or OFF; ignored");
            return;
        }
    };
    switch.store(on, Ordering::Relaxed);
    tracing::info!(camera, detect = if on { "ON" } else { "OFF" }, "detection switched by MQTT command");
    send_detect_state(st, prefix, camera, on);
}

fn connection_loop(
    mut connection: Connection,
    client: Client,
    shared: Arc<Shared>,
    spec: MqttSpec,
    commands: Commands,
) {
    let Commands { detect: switches, toggles, requests, subscriptions } = commands;
    let mut reconnects = Reconnects::new(spec.reconnect_max, &spec.client_id);
    // Cameras whose detect state this connection has announced, and whether it subscribed to
    // detect/set: a camera a reload adds is announced as soon as it appears, not at the next
    // reconnect.
    let mut announced: std::collections::BTreeSet<String> = Default::default();
    let mut subscribed = false;
    // The same for the zone and line switches.
    let mut toggles_announced: std::collections::BTreeSet<Key> = Default::default();
    let mut toggles_subscribed = false;
    let mut requests_subscribed = false;
    while !shared.stop.load(Ordering::SeqCst) {
        // While connected, wake up often to send what the publisher handed over and to notice
        // `stop`. While connecting, let rumqttc's own connect timeout run: cutting a connect
        // attempt short would restart it forever.
        let connected = shared.lock().is_connected();
        let event = if connected {
            match connection.recv_timeout(PUMP_INTERVAL) {
                Ok(ev) => Some(ev),
                Err(rumqttc::RecvTimeoutError::Timeout) => None,
                Err(rumqttc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match connection.recv() {
                Ok(ev) => Some(ev),
                Err(_) => break,
            }
        };
        let mut st = shared.lock();
        match event {
            None => st.idle(),
            Some(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                let waiting = st.connected(ack.session_present);
                let session_present = ack.session_present;
                if reconnects.connected() > 0 {
                    tracing::info!(host = %spec.host, port = spec.port, waiting, session_present, "MQTT broker reachable again; sending what waited");
                } else {
                    let tls = spec.tls.as_ref().map_or("off".to_string(), |t| {
                        if t.client_cert { format!("{} + client cert", t.ca) } else { t.ca.clone() }
                    });
                    tracing::info!(host = %spec.host, port = spec.port, waiting, session_present, tls = %tls, "connected to MQTT broker");
                }
                // A new connection announces every camera again (below).
                announced.clear();
                subscribed = false;
                toggles_announced.clear();
                toggles_subscribed = false;
                requests_subscribed = false;
            }
            Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                if let Some(key) = toggles::parse_command(&spec.topic_prefix, &p.topic) {
                    on_toggle(&mut st, &spec.topic_prefix, &toggles, key, &p.topic, &p.payload)
                } else if p.topic.ends_with("/detect/set") {
                    on_command(&mut st, &spec.topic_prefix, &switches, &p.topic, &p.payload)
                } else if let Some(tx) = &requests {
                    let topic = p.topic.clone();
                    let incoming = Incoming { topic: p.topic, payload: p.payload.to_vec(), retained: p.retain };
                    if let Err(e) = tx.try_send(incoming) {
                        // Requests are carried out one at a time; a flood waits for no one.
                        tracing::warn!(topic, error = %e, "request not taken: the gateway is still carrying out earlier ones; send it again");
                    }
                }
            }
            Some(Ok(Event::Incoming(Packet::PubAck(_)))) => st.puback(),
            Some(Ok(Event::Outgoing(MqttOut::Disconnect))) => st.disconnected(),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let lost = st.connection_failed();
                drop(st);
                let retry = reconnects.failed();
                let (waiting, attempts) = (lost.waiting, retry.attempts);
                let retry_in_s = format!("{:.1}", retry.delay.as_secs_f64());
                if lost.was_connected {
                    tracing::warn!(host = %spec.host, port = spec.port, error = %e, waiting,
                        "lost the MQTT broker; reconnecting, messages wait in the spool meanwhile");
                } else if retry.worth_logging() {
                    if let Some(fix) = spec.tls.as_ref().and_then(|_| super::tls::advice(&e, &spec.host)) {
                        tracing::error!(host = %spec.host, port = spec.port, error = %e, retry_in_s, attempts, waiting,
                            "MQTT TLS handshake failed: {fix}; retrying, messages wait in the spool meanwhile");
                    } else if let rumqttc::ConnectionError::ConnectionRefused(code) = &e {
                        tracing::error!(host = %spec.host, port = spec.port, code = ?code, retry_in_s, attempts, waiting,
                            "the MQTT broker refused the connection; check mqtt.username and mqtt.password_env / password_file (and the broker's ACL)");
                    } else {
                        tracing::warn!(host = %spec.host, port = spec.port, error = %e, retry_in_s, attempts, waiting,
                            "MQTT broker unreachable; retrying. Check mqtt.host and mqtt.port, and that the broker runs");
                    }
                }
                sleep_unless_stopped(retry.delay, &shared.stop);
                continue;
            }
        }
        if st.is_connected() && requests.is_some() && !requests_subscribed {
            requests_subscribed = subscriptions.iter().all(|t| client.try_subscribe(t, QoS::AtLeastOnce).is_ok());
        }
        if st.is_connected() {
            announce_cameras(&mut st, &client, &spec.topic_prefix, &switches, &mut announced, &mut subscribed);
            announce_toggles(
                &mut st,
                &client,
                &spec.topic_prefix,
                &toggles,
                &mut toggles_announced,
                &mut toggles_subscribed,
            );
        }
        pump(&mut st, &client);
    }
}

/// Subscribe to `<prefix>/+/detect/set` once there is a camera, and publish the detect state
/// of each camera not yet announced on this connection; forget removed cameras, so that one
/// added back is announced again.
fn announce_cameras(
    st: &mut State,
    client: &Client,
    prefix: &str,
    switches: &DetectSwitches,
    announced: &mut std::collections::BTreeSet<String>,
    subscribed: &mut bool,
) {
    // Called on every wake-up of the connection loop: copy out only the cameras still to
    // announce (usually none), and publish after the lock is released.
    let fresh: Vec<(String, bool)> = {
        let all = switches.lock().unwrap_or_else(|p| p.into_inner());
        announced.retain(|c| all.contains_key(c));
        if all.is_empty() {
            return;
        }
        all.iter()
            .filter(|(k, _)| !announced.contains(*k))
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    };
    if !*subscribed {
        *subscribed = client.try_subscribe(format!("{prefix}/+/detect/set"), QoS::AtLeastOnce).is_ok();
    }
    for (camera, on) in fresh {
        send_detect_state(st, prefix, &camera, on);
        announced.insert(camera);
    }
}

/// Subscribe to the switches' `set` topics once there is a switch, and publish the state
/// of each switch not yet announced on this connection (a camera a reload adds or changes is
/// announced as soon as its switches are registered).
fn announce_toggles(
    st: &mut State,
    client: &Client,
    prefix: &str,
    toggles: &Toggles,
    announced: &mut std::collections::BTreeSet<Key>,
    subscribed: &mut bool,
) {
    let all = toggles.all();
    announced.retain(|k| all.iter().any(|(a, _)| a == k));
    if all.is_empty() {
        return;
    }
    if !*subscribed {
        *subscribed = toggles::Kind::ALL.iter().all(|k| {
            let filter = if k.per_camera() {
                format!("{prefix}/+/{}/set", k.as_str())
            } else {
                format!("{prefix}/+/{}/+/set", k.as_str())
            };
            client.try_subscribe(filter, QoS::AtLeastOnce).is_ok()
        });
    }
    for (key, on) in all {
        if announced.insert(key.clone()) {
            send_toggle_state(st, prefix, &key, on);
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
