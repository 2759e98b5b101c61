//! The MQTT publisher's bookkeeping, free of I/O: what waits where, what is in flight, and
//! the books. [`super::MqttSink`] and its connection thread feed it events (a message to
//! publish, a CONNACK, a PUBACK, a lost connection, the stop) and perform what it answers:
//! the records [`State::pump`] returns go to rumqttc's `try_publish`, in order. The spool is
//! reached through [`Store`], so the tests here run on a store in memory, without a broker.
//!
//! Order of age, oldest first: `inflight`, `resend`, `mem`, then the spool from `next_send`.
//! Messages held only in memory exist only while the spool is empty, so an outage or a
//! stopping daemon can move them onto it and keep the order.
//!
//! - A message goes to memory only while the broker is connected, the spool is empty and
//!   fewer than `window` messages are busy (in flight or waiting in memory); otherwise onto the
//!   spool, after the memory-only ones. Without a spool, up to `mem_capacity` wait in memory
//!   and the rest are lost, and counted.
//! - At most `window` publishes are handed to rumqttc and not yet acknowledged, our own status
//!   messages included (see "Packet ids" in [`super`]).
//! - Each PUBACK retires the oldest message in flight (QoS 1 acks come in order); a spooled
//!   message leaves the spool only then, so delivery is at least once.
//! - A new session that did not resume the old one (a restarted broker) gets what was in
//!   flight again, first; a resumed one is resent by rumqttc itself.
//! - Closing: nothing new goes out, only `offline`, once per session, and the stop waits for
//!   its PUBACK.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{OFFLINE, ONLINE};
use crate::publish::DeliveryReport;
use crate::publish::spool::{Record, Spool, SpoolError};
use crate::source::backoff::Backoff;
use crate::stats::PublishCounters;

/// Spool progress is written to disk after this many acknowledged spooled messages (and
/// whenever the connection is idle): a crash replays at most this many.
pub const HEAD_SYNC_EVERY: u64 = 64;
/// The first wait before another attempt to reach a lost broker; the waits double from here
/// up to `mqtt.reconnect_max_seconds`, each jittered down by up to 25 % (see
/// [`crate::source::backoff`]).
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);

/// Where messages wait while they cannot go straight out: the on-disk [`Spool`], or in the
/// tests a queue in memory. Sequence numbers grow by one per push.
pub trait Store {
    /// Append a record; its sequence number.
    fn push(&mut self, rec: &Record) -> Result<u64, SpoolError>;
    /// Up to `n` records from `from_seq` on (from the oldest, if `from_seq` is gone).
    fn read(&mut self, from_seq: u64, n: usize) -> Result<Vec<(u64, Record)>, SpoolError>;
    /// Everything up to and including `seq` was delivered.
    fn commit_through(&mut self, seq: u64);
    /// Persist how far delivery got.
    fn sync_head(&mut self);
    /// Records not yet delivered.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes of the records not yet delivered.
    fn bytes(&self) -> u64;
    /// Records dropped to stay within the bound (or found corrupt).
    fn dropped_oldest(&self) -> u64;
    /// Sequence number of the oldest record not yet delivered.
    fn first_seq(&self) -> u64;
    /// Sequence number the next push gets.
    fn next_seq(&self) -> u64;
}

impl Store for Spool {
    fn push(&mut self, rec: &Record) -> Result<u64, SpoolError> {
        Spool::push(self, rec)
    }
    fn read(&mut self, from_seq: u64, n: usize) -> Result<Vec<(u64, Record)>, SpoolError> {
        Spool::read(self, from_seq, n)
    }
    fn commit_through(&mut self, seq: u64) {
        Spool::commit_through(self, seq)
    }
    fn sync_head(&mut self) {
        Spool::sync_head(self)
    }
    fn len(&self) -> u64 {
        Spool::len(self)
    }
    fn bytes(&self) -> u64 {
        Spool::bytes(self)
    }
    fn dropped_oldest(&self) -> u64 {
        Spool::dropped_oldest(self)
    }
    fn first_seq(&self) -> u64 {
        Spool::first_seq(self)
    }
    fn next_seq(&self) -> u64 {
        Spool::next_seq(self)
    }
}

/// Where a message in flight was taken from, so that one rumqttc refused goes back there.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    /// Our availability and detect-state messages: never spooled, never resent.
    Control,
    /// The offline status of a closing session.
    Offline,
    Resend,
    Mem,
    Spool,
}

/// A message handed to rumqttc and not yet acknowledged.
#[derive(Debug, Clone)]
struct Sent {
    rec: Record,
    /// Its place in the spool; `None` while it lives in memory only.
    seq: Option<u64>,
    from: Origin,
}

impl Sent {
    fn control(&self) -> bool {
        matches!(self.from, Origin::Control | Origin::Offline)
    }

    fn memory_only(&self) -> bool {
        self.seq.is_none() && !self.control()
    }
}

/// What became of a message handed to [`State::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Waits in memory for the connection thread.
    Queued,
    /// Written to the spool.
    Spooled,
    /// Neither: counted in `dropped_not_spooled`.
    Lost,
}

/// A lost connection, as the books saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// It was connected (the connection dropped), rather than an attempt failing.
    pub was_connected: bool,
    /// Messages accepted and not yet acknowledged.
    pub waiting: u64,
}

/// The publisher's books. Shared by the publisher and the connection thread under one lock.
#[derive(Debug)]
pub struct State<S = Spool> {
    /// The most publishes handed to rumqttc and not yet acknowledged.
    window: usize,
    /// In-memory capacity when there is no spool.
    mem_capacity: usize,
    /// `<prefix>/status`: where `online` and `offline` go.
    status_topic: String,
    connected: bool,
    spool: Option<S>,
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
    /// Set by `close`: send nothing new, only the offline status.
    closing: bool,
    /// The offline status was handed to rumqttc on this session: it goes once, and again
    /// only if a new session lost it.
    offline_sent: bool,
    offline_acked: bool,
    /// The last attempt to reach the broker failed, and none has succeeded since: a stopping
    /// daemon need not wait for acknowledgements that cannot come.
    unreachable: bool,
    /// Messages accepted from the pipeline.
    published: u64,
    /// Messages an earlier run left in the spool, found at start: with `published`, what this
    /// run had to deliver.
    from_earlier_run: u64,
    /// Acknowledged by the broker (not counting our availability messages).
    delivered: u64,
    /// Could neither be sent nor spooled (spool unusable, or a message bigger than it).
    lost: u64,
    /// Failed spool writes, to log only every hundredth.
    spool_errors: u64,
    /// Spooled messages acknowledged since the head file was last written.
    unsynced: u64,
    /// The same books, readable by the stats topic and /metrics while we run.
    counters: Arc<PublishCounters>,
}

impl<S: Store> State<S> {
    /// The books of a run whose spool (if usable) holds what an earlier run left.
    pub fn new(spool: Option<S>, window: usize, mem_capacity: usize, status_topic: String) -> State<S> {
        let next_send = spool.as_ref().map_or(0, |s| s.first_seq());
        // Those dropped at once to fit a smaller spool.max_bytes were an earlier run's too.
        let from_earlier_run = spool.as_ref().map_or(0, |s| s.len() + s.dropped_oldest());
        State {
            window,
            mem_capacity,
            status_topic,
            connected: false,
            spool,
            inflight: VecDeque::new(),
            resend: VecDeque::new(),
            mem: VecDeque::new(),
            next_send,
            control: VecDeque::new(),
            closing: false,
            offline_sent: false,
            offline_acked: false,
            unreachable: false,
            published: 0,
            from_earlier_run,
            delivered: 0,
            lost: 0,
            spool_errors: 0,
            unsynced: 0,
            counters: Arc::new(PublishCounters::default()),
        }
    }

    /// Spooled, replayed, delivered and dropped messages, live.
    pub fn counters(&self) -> Arc<PublishCounters> {
        self.counters.clone()
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The offline status of a closing session was acknowledged.
    pub fn offline_acked(&self) -> bool {
        self.offline_acked
    }

    /// Nothing left that a stop should wait for: everything acknowledged, or the broker
    /// unreachable, so that no acknowledgement can come.
    pub fn settled(&self) -> bool {
        self.backlog() == 0 || self.unreachable
    }

    /// Messages accepted and not yet acknowledged.
    pub fn backlog(&self) -> u64 {
        let spooled = self.spool.as_ref().map_or(0, |s| s.len());
        let mem_only = self.inflight.iter().chain(&self.resend).filter(|s| s.memory_only()).count();
        spooled + (mem_only + self.mem.len()) as u64
    }

    /// The publisher accepts a message. Never waits: into memory while it can go out soon,
    /// else onto the spool.
    pub fn publish(&mut self, rec: Record) -> Accepted {
        self.published += 1;
        let spool_empty = self.spool.as_ref().is_none_or(|s| s.is_empty());
        let busy = self.inflight.len() + self.resend.len() + self.mem.len();
        if self.connected && spool_empty && busy < self.window {
            self.mem.push_back(rec);
            return Accepted::Queued;
        }
        if self.spool.is_none() {
            if busy < self.mem_capacity {
                self.mem.push_back(rec);
                return Accepted::Queued;
            }
            self.lost += 1;
            self.sync_counters();
            if self.lost % 100 == 1 {
                tracing::warn!(topic = %rec.topic, lost = self.lost, "MQTT broker away and no spool: message dropped");
            }
            return Accepted::Lost;
        }
        self.migrate_to_spool();
        // The spool is there: checked above.
        let Some(spool) = self.spool.as_mut() else { return Accepted::Lost };
        let accepted = match spool.push(&rec) {
            Ok(_) => {
                self.counters.spooled.fetch_add(1, Ordering::Relaxed);
                Accepted::Spooled
            }
            Err(e) => {
                self.lost += 1;
                self.spool_errors += 1;
                if self.spool_errors % 100 == 1 {
                    tracing::error!(topic = %rec.topic, error = %e, lost = self.lost, "could not spool an MQTT message; it is lost");
                }
                Accepted::Lost
            }
        };
        self.sync_counters();
        accepted
    }

    /// Queue one of our own status messages (retained state, never spooled): it takes its
    /// turn in the window ahead of the messages.
    pub fn queue_control(&mut self, rec: Record) {
        self.control.push_back(rec);
    }

    /// A CONNACK. Returns how many messages wait.
    pub fn connected(&mut self, session_present: bool) -> u64 {
        self.connected = true;
        self.unreachable = false;
        if !session_present {
            // rumqttc dropped its pending list with the old session: resend it ourselves.
            let lost: Vec<Sent> = self.inflight.drain(..).filter(|s| !s.control()).collect();
            for s in lost.into_iter().rev() {
                self.resend.push_front(s);
            }
            // An offline status it dropped unacknowledged goes again.
            self.offline_sent = self.offline_acked;
        }
        // The current states, first: what was queued for the old connection is stale.
        self.control.clear();
        self.control.push_back(Record {
            topic: self.status_topic.clone(),
            retain: true,
            payload: ONLINE.as_bytes().to_vec(),
        });
        self.backlog()
    }

    /// We sent a DISCONNECT.
    pub fn disconnected(&mut self) {
        self.connected = false;
    }

    /// The connection failed: it dropped, or an attempt to make it did.
    pub fn connection_failed(&mut self) -> Dropped {
        let was_connected = std::mem::replace(&mut self.connected, false);
        // Only a failed attempt says the broker is away: a connection that just dropped
        // is tried again after the shortest wait.
        self.unreachable = !was_connected;
        Dropped { was_connected, waiting: self.backlog() }
    }

    /// A PUBACK: the oldest message in flight was delivered.
    pub fn puback(&mut self) {
        let Some(s) = self.inflight.pop_front() else { return };
        if s.control() {
            if s.rec.payload == OFFLINE.as_bytes() {
                self.offline_acked = true;
            }
            return;
        }
        self.delivered += 1;
        self.counters.delivered.store(self.delivered, Ordering::Relaxed);
        if let (Some(seq), Some(spool)) = (s.seq, self.spool.as_mut()) {
            self.counters.replayed.fetch_add(1, Ordering::Relaxed);
            spool.commit_through(seq);
            self.unsynced += 1;
            if self.unsynced >= HEAD_SYNC_EVERY {
                spool.sync_head();
                self.unsynced = 0;
            }
        }
    }

    /// Nothing happened for a while: a good moment to write the spool's progress.
    pub fn idle(&mut self) {
        if self.unsynced > 0
            && let Some(spool) = self.spool.as_mut()
        {
            spool.sync_head();
            self.unsynced = 0;
        }
    }

    /// The stop: send nothing new, only the offline status. Returns whether connected, that
    /// is whether its acknowledgement can come.
    pub fn close(&mut self) -> bool {
        self.closing = true;
        self.connected
    }

    /// What rumqttc has room for, to hand over in order: our status messages, then the
    /// messages to resend, the in-memory ones, then the spool. They count as in flight from
    /// here; give back with [`State::refused`] what rumqttc does not take.
    pub fn pump(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        if !self.connected {
            return out;
        }
        if self.closing {
            // Once: the stop waits for its acknowledgement, and a retained status sent again
            // after each ack would flood every subscriber while it waits.
            if !self.offline_sent && self.inflight.len() < self.window {
                let rec =
                    Record { topic: self.status_topic.clone(), retain: true, payload: OFFLINE.as_bytes().to_vec() };
                self.hand_over(&mut out, Sent { rec, seq: None, from: Origin::Offline });
                self.offline_sent = true;
            }
            return out;
        }
        while self.inflight.len() < self.window
            && let Some(rec) = self.control.pop_front()
        {
            self.hand_over(&mut out, Sent { rec, seq: None, from: Origin::Control });
        }
        while self.inflight.len() < self.window {
            if let Some(s) = self.resend.pop_front() {
                self.hand_over(&mut out, Sent { from: Origin::Resend, ..s });
            } else if let Some(rec) = self.mem.pop_front() {
                self.hand_over(&mut out, Sent { rec, seq: None, from: Origin::Mem });
            } else if let Some(spool) = self.spool.as_mut() {
                let n = self.window - self.inflight.len();
                match spool.read(self.next_send, n) {
                    Ok(batch) if !batch.is_empty() => {
                        // A corrupt record found by the read counts with the dropped.
                        self.counters.dropped_spool_full.store(spool.dropped_oldest(), Ordering::Relaxed);
                        for (seq, rec) in batch {
                            self.next_send = seq + 1;
                            self.hand_over(&mut out, Sent { rec, seq: Some(seq), from: Origin::Spool });
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the MQTT spool; retrying");
                        break;
                    }
                }
            } else {
                break;
            }
        }
        out
    }

    fn hand_over(&mut self, out: &mut Vec<Record>, s: Sent) {
        out.push(s.rec.clone());
        self.inflight.push_back(s);
    }

    /// rumqttc refused the last `n` records [`State::pump`] returned: they go back where they
    /// came from, in order, to be handed over again at the next pump.
    pub fn refused(&mut self, n: usize) {
        for _ in 0..n {
            let Some(s) = self.inflight.pop_back() else { return };
            match s.from {
                Origin::Control => self.control.push_front(s.rec),
                Origin::Offline => self.offline_sent = false,
                Origin::Resend => self.resend.push_front(s),
                Origin::Mem => self.mem.push_front(s.rec),
                // Reading the spool again starts at the oldest one refused.
                Origin::Spool => self.next_send = s.seq.map_or(self.next_send, |seq| seq.min(self.next_send)),
            }
        }
    }

    /// The connection thread is gone: leave what was not acknowledged in the spool for the
    /// next run, and close the books.
    pub fn finish(&mut self) -> DeliveryReport {
        self.migrate_to_spool();
        let unsaved =
            self.inflight.iter().chain(&self.resend).filter(|s| s.memory_only()).count() as u64 + self.mem.len() as u64;
        self.sync_counters();
        let (spooled, spooled_bytes, dropped_oldest) = match self.spool.as_mut() {
            Some(s) => {
                s.sync_head();
                (s.len(), s.bytes(), s.dropped_oldest())
            }
            None => (0, 0, 0),
        };
        DeliveryReport {
            published: self.published,
            delivered: self.delivered,
            dropped_queue_full: self.lost,
            unacknowledged: unsaved,
            spooled,
            spooled_bytes,
            dropped_oldest,
            spooled_in_run: self.counters.spooled.load(Ordering::Relaxed),
            replayed: self.counters.replayed.load(Ordering::Relaxed),
            from_earlier_run: self.from_earlier_run,
        }
    }

    /// Move the memory-only messages onto the (empty) spool, oldest first, so that anything
    /// spooled after them comes after them. No-op without a spool.
    fn migrate_to_spool(&mut self) {
        let Some(spool) = self.spool.as_mut() else { return };
        let mut moved = false;
        for s in self.inflight.iter_mut().chain(self.resend.iter_mut()).filter(|s| s.memory_only()) {
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

/// The next attempt to reach a lost broker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// How long to wait first.
    pub delay: Duration,
    /// Failures in a row, this one included.
    pub attempts: u32,
}

impl Retry {
    /// An unreachable broker is logged at the first failure and every tenth after it, not
    /// every few seconds for as long as it is away.
    pub fn worth_logging(&self) -> bool {
        self.attempts == 1 || self.attempts.is_multiple_of(10)
    }
}

/// Reconnect backoff: waits from [`BACKOFF_MIN`] doubling up to the cap, jittered, and
/// reset by a connection that succeeds.
#[derive(Debug, Clone)]
pub struct Reconnects {
    backoff: Backoff,
    failures: u32,
}

impl Reconnects {
    /// Seeded by the client id, so that gateways losing the same broker spread their attempts.
    pub fn new(max: Duration, client_id: &str) -> Reconnects {
        let seed = client_id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        Reconnects { backoff: Backoff::new(BACKOFF_MIN.min(max), max, seed), failures: 0 }
    }

    /// A connection succeeded; returns the failures before it.
    pub fn connected(&mut self) -> u32 {
        self.backoff.reset();
        std::mem::take(&mut self.failures)
    }

    /// A connection failed or dropped: when to try again.
    pub fn failed(&mut self) -> Retry {
        self.failures += 1;
        Retry { delay: self.backoff.next_delay(), attempts: self.failures }
    }
}

#[cfg(test)]
mod tests;
