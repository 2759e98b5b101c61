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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Connection, Event, LastWill, MqttOptions, Outgoing as MqttOut, Packet, QoS};

use super::spool::{Record, Spool};
use super::{DeliveryReport, Outgoing};
use crate::config::MqttSpec;
use crate::source::backoff::Backoff;
use crate::stats::PublishCounters;

pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";
/// The first wait before another attempt to reach a lost broker; the waits double from here
/// up to `mqtt.reconnect_max_seconds`, each jittered down by up to 25 % (see
/// [`crate::source::backoff`]).
const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Packet ids rumqttc may use beyond our window of publishes: a SUBSCRIBE takes a packet id
/// from the same counter without holding a publish slot, so without this margin the ids of a
/// full window wrap onto an unacknowledged publish (see "Packet ids" above).
const PKID_MARGIN: u16 = 8;
/// How often the connected connection thread looks for messages to send: the most a message
/// waits in memory before it goes to rumqttc.
const PUMP_INTERVAL: Duration = Duration::from_millis(20);
/// Spool progress is written to disk after this many acknowledged spooled messages (and
/// whenever the connection is idle): a crash replays at most this many.
const HEAD_SYNC_EVERY: u64 = 64;

/// A message handed to rumqttc and not yet acknowledged.
#[derive(Debug, Clone)]
struct Sent {
    rec: Record,
    /// Its place in the spool; `None` while it lives in memory only.
    seq: Option<u64>,
    /// Our own availability message: never spooled, never resent.
    control: bool,
}

/// Everything the publisher and the connection thread share, under one lock.
///
/// Order of age, oldest first: `inflight`, `resend`, `mem`, then the spool from `next_send`.
/// Messages held only in memory exist only while the spool is empty, so a stopping daemon can
/// append them to it and keep the order.
#[derive(Debug, Default)]
struct State {
    connected: bool,
    spool: Option<Spool>,
    /// Handed to rumqttc in send order, each waiting for its PUBACK.
    inflight: VecDeque<Sent>,
    /// In flight when a connection was lost and the new session did not resume it: sent again first.
    resend: VecDeque<Sent>,
    /// Accepted while connected with an empty spool; sent next.
    mem: VecDeque<Record>,
    /// The oldest spooled message not yet handed to rumqttc.
    next_send: u64,
    /// Our availability and detect-state messages, waiting for room in the window: they count
    /// against it like any publish, so that rumqttc never holds more than the window.
    control: VecDeque<Record>,
    /// Set by `finish`: send nothing new, only the offline status.
    closing: bool,
    /// The offline status was handed to rumqttc on this session: it goes once, and again
    /// only if a new session lost it.
    offline_sent: bool,
    offline_acked: bool,
    /// The last attempt to reach the broker failed, and none has succeeded since: a stopping
    /// daemon need not wait for acknowledgements that cannot come.
    unreachable: bool,
    /// Messages an earlier run left in the spool, found at start: with `published`, what this
    /// run had to deliver.
    from_earlier_run: u64,
    /// Acknowledged by the broker (not counting our availability messages).
    delivered: u64,
    /// Could neither be sent nor spooled (spool unusable, or a message bigger than it).
    lost: u64,
    /// Spooled messages acknowledged since the head file was last written.
    unsynced: u64,
    /// The same books, readable by the stats topic and /metrics while we run.
    counters: Arc<PublishCounters>,
}

impl State {
    /// Messages accepted and not yet acknowledged.
    fn backlog(&self) -> u64 {
        let spooled = self.spool.as_ref().map_or(0, |s| s.len());
        let mem_only = self.inflight.iter().chain(&self.resend).filter(|s| s.seq.is_none() && !s.control).count();
        spooled + (mem_only + self.mem.len()) as u64
    }

    /// Move the memory-only messages onto the (empty) spool, oldest first, so that anything
    /// spooled after them comes after them. No-op without a spool.
    fn migrate_to_spool(&mut self) {
        let Some(spool) = self.spool.as_mut() else { return };
        let mut moved = false;
        for s in self.inflight.iter_mut().chain(self.resend.iter_mut()).filter(|s| s.seq.is_none() && !s.control) {
            // On failure it stays in memory, still in flight, and can still be acknowledged.
            if let Ok(seq) = spool.push(&s.rec) {
                s.seq = Some(seq);
                moved = true;
                self.counters.spooled.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Those are handed to rumqttc from their lists; reading the spool starts after them.
        if moved {
            self.next_send = spool.next_seq();
        }
        let mut first_unsent = None;
        for rec in self.mem.drain(..) {
            match spool.push(&rec) {
                Ok(seq) => {
                    first_unsent.get_or_insert(seq);
                    self.counters.spooled.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.lost += 1;
                    tracing::error!(topic = %rec.topic, error = %e, "could not spool an MQTT message; it is lost");
                }
            }
        }
        // Memory-only messages exist only while nothing in the spool waits to be sent, so the
        // first of them is where sending from the spool goes on.
        if let Some(seq) = first_unsent {
            self.next_send = seq;
        }
        self.sync_counters();
    }

    /// Copy the counts kept elsewhere (the spool's drops, our losses) to the shared counters.
    fn sync_counters(&self) {
        let c = &self.counters;
        c.dropped_not_spooled.store(self.lost, Ordering::Relaxed);
        c.delivered.store(self.delivered, Ordering::Relaxed);
        if let Some(spool) = &self.spool {
            c.dropped_spool_full.store(spool.dropped_oldest(), Ordering::Relaxed);
        }
    }
}

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
    window: usize,
    /// In-memory capacity when there is no spool.
    mem_capacity: usize,
    published: u64,
    spool_errors: u64,
    counters: Arc<PublishCounters>,
}

impl MqttSink {
    /// Open the spool and start connecting. Never fails: an unreachable broker is retried in
    /// the background, and an unusable spool leaves a bounded in-memory queue.
    pub fn connect(spec: &MqttSpec) -> MqttSink {
        MqttSink::connect_with(spec, DetectSwitches::default())
    }

    /// As [`MqttSink::connect`], obeying `<prefix>/<camera>/detect/set` (ON / OFF) for the
    /// cameras in `switches`, and reporting each on `<prefix>/<camera>/detect/state` (retained).
    pub fn connect_with(spec: &MqttSpec, switches: DetectSwitches) -> MqttSink {
        let status_topic = format!("{}/status", spec.topic_prefix);
        let mut opts = MqttOptions::new(&spec.client_id, &spec.host, spec.port);
        opts.set_keep_alive(spec.keepalive);
        // rumqttc refuses packets over 10 kB by default; a snapshot JPEG is bigger. Incoming
        // packets stay small (acks only).
        opts.set_max_packet_size(64 * 1024, 8 * 1024 * 1024);
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
        let next_send = spool.as_ref().map_or(0, |s| s.first_seq());
        // Those dropped at once to fit a smaller spool.max_bytes were an earlier run's too.
        let from_earlier_run = spool.as_ref().map_or(0, |s| s.len() + s.dropped_oldest());
        let counters = Arc::new(PublishCounters::default());
        let state = State { spool, next_send, from_earlier_run, counters: counters.clone(), ..Default::default() };
        let shared = Arc::new(Shared { state: Mutex::new(state), stop: AtomicBool::new(false) });
        let conn = {
            let (client, shared, spec) = (client.clone(), shared.clone(), spec.clone());
            std::thread::Builder::new()
                .name("mqtt-conn".into())
                .spawn(move || connection_loop(connection, client, shared, spec, status_topic, window, switches))
                .ok()
        };
        MqttSink {
            client,
            prefix: spec.topic_prefix.clone(),
            shared,
            conn,
            window,
            mem_capacity: spec.queue_capacity,
            published: 0,
            spool_errors: 0,
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
        self.published += 1;
        let mut st = self.shared.lock();
        let spool_empty = st.spool.as_ref().is_none_or(|s| s.is_empty());
        let busy = st.inflight.len() + st.resend.len() + st.mem.len();
        if st.connected && spool_empty && busy < self.window {
            st.mem.push_back(rec);
            return;
        }
        if st.spool.is_none() {
            if busy < self.mem_capacity {
                st.mem.push_back(rec);
            } else {
                st.lost += 1;
                st.sync_counters();
                if st.lost % 100 == 1 {
                    tracing::warn!(topic = %rec.topic, lost = st.lost, "MQTT broker away and no spool: message dropped");
                }
            }
            return;
        }
        st.migrate_to_spool();
        let Some(spool) = st.spool.as_mut() else { return };
        match spool.push(&rec) {
            Ok(_) => {
                st.counters.spooled.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                st.lost += 1;
                self.spool_errors += 1;
                if self.spool_errors % 100 == 1 {
                    tracing::error!(topic = %rec.topic, error = %e, lost = st.lost, "could not spool an MQTT message; it is lost");
                }
            }
        }
        st.sync_counters();
    }

    /// Wait up to `timeout` for the broker to acknowledge everything, mark the gateway
    /// offline, disconnect, and leave what was not acknowledged in the spool for the next run.
    ///
    /// A broker found unreachable (the last attempt failed) ends the wait at once: nothing can
    /// be acknowledged, and below everything goes to the spool. A broker that is connected but
    /// silent is waited for until `timeout`.
    pub fn finish(mut self, timeout: Duration) -> DeliveryReport {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let st = self.shared.lock();
            if st.backlog() == 0 || st.unreachable {
                break;
            }
            drop(st);
            std::thread::park_timeout(Duration::from_millis(10));
        }
        let connected = {
            let mut st = self.shared.lock();
            st.closing = true;
            st.connected
        };
        // The offline status goes last; give it a moment even when the deadline has passed.
        if connected {
            let until = deadline.max(Instant::now() + Duration::from_millis(500));
            while Instant::now() < until && !self.shared.lock().offline_acked {
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
        let mut st = self.shared.lock();
        st.migrate_to_spool();
        let unsaved = st.inflight.iter().chain(&st.resend).filter(|s| s.seq.is_none() && !s.control).count() as u64
            + st.mem.len() as u64;
        st.sync_counters();
        let (spooled, spooled_bytes, dropped_oldest) = match st.spool.as_mut() {
            Some(s) => {
                s.sync_head();
                (s.len(), s.bytes(), s.dropped_oldest())
            }
            None => (0, 0, 0),
        };
        if spooled > 0 {
            let dir = st.spool.as_ref().map(|s| s.dir().display().to_string()).unwrap_or_default();
            tracing::warn!(messages = spooled, bytes = spooled_bytes, dir = %dir, "MQTT messages not acknowledged in time are left in the spool for the next run");
        }
        DeliveryReport {
            published: self.published,
            delivered: st.delivered,
            dropped_queue_full: st.lost,
            unacknowledged: unsaved,
            spooled,
            spooled_bytes,
            dropped_oldest,
            spooled_in_run: st.counters.spooled.load(Ordering::Relaxed),
            replayed: st.counters.replayed.load(Ordering::Relaxed),
            from_earlier_run: st.from_earlier_run,
        }
    }
}

/// Hand rumqttc what it has room for: first the messages to resend, then the in-memory ones,
/// then the spool. Called on the connection thread only, between polls.
fn pump(st: &mut State, client: &Client, window: usize, status_topic: &str) {
    if !st.connected {
        return;
    }
    if st.closing {
        // Once: `finish` waits for its acknowledgement, and a retained status sent again
        // after each ack would flood every subscriber while it waits.
        if !st.offline_sent && st.inflight.len() < window {
            let rec = Record { topic: status_topic.to_string(), retain: true, payload: OFFLINE.as_bytes().to_vec() };
            if client.try_publish(rec.topic.as_str(), QoS::AtLeastOnce, true, rec.payload.clone()).is_ok() {
                st.inflight.push_back(Sent { rec, seq: None, control: true });
                st.offline_sent = true;
            }
        }
        return;
    }
    // Our status messages first, within the window like the rest.
    while st.inflight.len() < window
        && let Some(rec) = st.control.pop_front()
    {
        if client.try_publish(rec.topic.as_str(), QoS::AtLeastOnce, rec.retain, rec.payload.clone()).is_err() {
            st.control.push_front(rec);
            return;
        }
        st.inflight.push_back(Sent { rec, seq: None, control: true });
    }
    while st.inflight.len() < window {
        let (sent, from) = if let Some(s) = st.resend.pop_front() {
            (s, Source::Resend)
        } else if let Some(rec) = st.mem.pop_front() {
            (Sent { rec, seq: None, control: false }, Source::Mem)
        } else if let Some(spool) = st.spool.as_mut() {
            let n = window - st.inflight.len();
            match spool.read(st.next_send, n) {
                Ok(batch) if !batch.is_empty() => {
                    // A corrupt record found by the read counts with the dropped.
                    st.counters.dropped_spool_full.store(spool.dropped_oldest(), Ordering::Relaxed);
                    let mut sent_all = true;
                    for (seq, rec) in batch {
                        if client
                            .try_publish(rec.topic.as_str(), QoS::AtLeastOnce, rec.retain, rec.payload.clone())
                            .is_err()
                        {
                            sent_all = false;
                            break;
                        }
                        st.next_send = seq + 1;
                        st.inflight.push_back(Sent { rec, seq: Some(seq), control: false });
                    }
                    if sent_all {
                        continue;
                    }
                    return;
                }
                Ok(_) => return,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the MQTT spool; retrying");
                    return;
                }
            }
        } else {
            return;
        };
        if client
            .try_publish(sent.rec.topic.as_str(), QoS::AtLeastOnce, sent.rec.retain, sent.rec.payload.clone())
            .is_err()
        {
            match from {
                Source::Resend => st.resend.push_front(sent),
                Source::Mem => st.mem.push_front(sent.rec),
            }
            return;
        }
        st.inflight.push_back(sent);
    }
}

enum Source {
    Resend,
    Mem,
}

/// A PUBACK: the oldest message in flight was delivered.
fn acked(st: &mut State) {
    let Some(s) = st.inflight.pop_front() else { return };
    if s.control {
        if s.rec.payload == OFFLINE.as_bytes() {
            st.offline_acked = true;
        }
        return;
    }
    st.delivered += 1;
    st.counters.delivered.store(st.delivered, Ordering::Relaxed);
    if let (Some(seq), Some(spool)) = (s.seq, st.spool.as_mut()) {
        st.counters.replayed.fetch_add(1, Ordering::Relaxed);
        spool.commit_through(seq);
        st.unsynced += 1;
        if st.unsynced >= HEAD_SYNC_EVERY {
            spool.sync_head();
            st.unsynced = 0;
        }
    }
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
    let rec = Record {
        topic: format!("{prefix}/{camera}/detect/state"),
        retain: true,
        payload: if on { b"ON".to_vec() } else { b"OFF".to_vec() },
    };
    st.control.push_back(rec);
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
    status_topic: String,
    window: usize,
    switches: DetectSwitches,
) {
    // Seeded by the client id, so that gateways losing the same broker spread their attempts.
    let seed = spec.client_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut backoff = Backoff::new(BACKOFF_MIN.min(spec.reconnect_max), spec.reconnect_max, seed);
    let mut failures = 0u32;
    // Cameras whose detect state this connection has announced, and whether it subscribed to
    // detect/set: a camera a reload adds is announced as soon as it appears, not at the next
    // reconnect.
    let mut announced: std::collections::BTreeSet<String> = Default::default();
    let mut subscribed = false;
    while !shared.stop.load(Ordering::SeqCst) {
        // While connected, wake up often to send what the publisher handed over and to notice
        // `stop`. While connecting, let rumqttc's own connect timeout run: cutting a connect
        // attempt short would restart it forever.
        let connected = shared.lock().connected;
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
            None => {
                if st.unsynced > 0
                    && let Some(spool) = st.spool.as_mut()
                {
                    spool.sync_head();
                    st.unsynced = 0;
                }
            }
            Some(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                st.connected = true;
                st.unreachable = false;
                backoff.reset();
                if !ack.session_present {
                    // rumqttc dropped its pending list with the old session: resend it ourselves.
                    let lost: Vec<Sent> = st.inflight.drain(..).filter(|s| !s.control).collect();
                    for s in lost.into_iter().rev() {
                        st.resend.push_front(s);
                    }
                    // An offline status it dropped unacknowledged goes again.
                    st.offline_sent = st.offline_acked;
                }
                let (waiting, session_present) = (st.backlog(), ack.session_present);
                if failures > 0 {
                    tracing::info!(host = %spec.host, port = spec.port, waiting, session_present, "MQTT broker reachable again; sending what waited");
                } else {
                    let tls = spec.tls.as_ref().map_or("off".to_string(), |t| {
                        if t.client_cert { format!("{} + client cert", t.ca) } else { t.ca.clone() }
                    });
                    tracing::info!(host = %spec.host, port = spec.port, waiting, session_present, tls = %tls, "connected to MQTT broker");
                }
                failures = 0;
                // The current states, first: what was queued for the old connection is stale.
                st.control.clear();
                st.control.push_back(Record {
                    topic: status_topic.clone(),
                    retain: true,
                    payload: ONLINE.as_bytes().to_vec(),
                });
                // A new connection announces every camera again (below).
                announced.clear();
                subscribed = false;
            }
            Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                on_command(&mut st, &spec.topic_prefix, &switches, &p.topic, &p.payload)
            }
            Some(Ok(Event::Incoming(Packet::PubAck(_)))) => acked(&mut st),
            Some(Ok(Event::Outgoing(MqttOut::Disconnect))) => {
                st.connected = false;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let was_connected = std::mem::replace(&mut st.connected, false);
                // Only a failed attempt says the broker is away: a connection that just dropped
                // is tried again after the shortest wait.
                st.unreachable = !was_connected;
                let waiting = st.backlog();
                drop(st);
                failures += 1;
                let delay = backoff.next_delay();
                let retry_in_s = format!("{:.1}", delay.as_secs_f64());
                if was_connected {
                    tracing::warn!(host = %spec.host, port = spec.port, error = %e, waiting,
                        "lost the MQTT broker; reconnecting, messages wait in the spool meanwhile");
                } else if failures == 1 || failures.is_multiple_of(10) {
                    if let Some(fix) = spec.tls.as_ref().and_then(|_| super::tls::advice(&e, &spec.host)) {
                        tracing::error!(host = %spec.host, port = spec.port, error = %e, retry_in_s, attempts = failures, waiting,
                            "MQTT TLS handshake failed: {fix}; retrying, messages wait in the spool meanwhile");
                    } else if let rumqttc::ConnectionError::ConnectionRefused(code) = &e {
                        tracing::error!(host = %spec.host, port = spec.port, code = ?code, retry_in_s, attempts = failures, waiting,
                            "the MQTT broker refused the connection; check mqtt.username and mqtt.password_env / password_file (and the broker's ACL)");
                    } else {
                        tracing::warn!(host = %spec.host, port = spec.port, error = %e, retry_in_s, attempts = failures, waiting,
                            "MQTT broker unreachable; retrying. Check mqtt.host and mqtt.port, and that the broker runs");
                    }
                }
                sleep_unless_stopped(delay, &shared.stop);
                continue;
            }
        }
        if st.connected {
            announce_cameras(&mut st, &client, &spec.topic_prefix, &switches, &mut announced, &mut subscribed);
        }
        pump(&mut st, &client, window, &status_topic);
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

/// Sleep for a retry backoff, waking early on stop.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::park_timeout(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
    }
}
