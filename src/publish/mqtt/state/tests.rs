//! The books driven by hand: events in, records to hand over out, on a store in memory.

use std::collections::VecDeque;

use super::*;

/// A spool in memory, bounded in records: past `max` the oldest go, counted.
#[derive(Debug, Default)]
struct MemStore {
    recs: VecDeque<(u64, Record)>,
    next: u64,
    max: usize,
    dropped: u64,
    /// Fail every push while set: a full disk.
    broken: bool,
    commits: u64,
}

impl MemStore {
    fn new(max: usize) -> MemStore {
        MemStore { max, ..MemStore::default() }
    }

    /// A store an earlier run left `n` records in.
    fn holding(n: usize) -> MemStore {
        let mut s = MemStore::new(1000);
        for i in 0..n {
            s.push(&rec(&format!("old{i}"))).unwrap();
        }
        s
    }

    fn topics(&self) -> Vec<String> {
        self.recs.iter().map(|(_, r)| r.topic.clone()).collect()
    }
}

impl Store for MemStore {
    fn push(&mut self, rec: &Record) -> Result<u64, SpoolError> {
        if self.broken {
            return Err(SpoolError::TooLarge { bytes: rec.payload.len() as u64, max: 0 });
        }
        let seq = self.next;
        self.next += 1;
        self.recs.push_back((seq, rec.clone()));
        while self.recs.len() > self.max {
            self.recs.pop_front();
            self.dropped += 1;
        }
        Ok(seq)
    }
    fn read(&mut self, from_seq: u64, n: usize) -> Result<Vec<(u64, Record)>, SpoolError> {
        Ok(self.recs.iter().filter(|(s, _)| *s >= from_seq).take(n).cloned().collect())
    }
    fn commit_through(&mut self, seq: u64) {
        while self.recs.front().is_some_and(|(s, _)| *s <= seq) {
            self.recs.pop_front();
        }
        self.commits += 1;
    }
    fn sync_head(&mut self) {}
    fn len(&self) -> u64 {
        self.recs.len() as u64
    }
    fn bytes(&self) -> u64 {
        self.recs.iter().map(|(_, r)| r.payload.len() as u64).sum()
    }
    fn dropped_oldest(&self) -> u64 {
        self.dropped
    }
    fn first_seq(&self) -> u64 {
        self.recs.front().map_or(self.next, |(s, _)| *s)
    }
    fn next_seq(&self) -> u64 {
        self.next
    }
}

const STATUS: &str = "p/status";

fn rec(topic: &str) -> Record {
    Record { topic: topic.to_string(), retain: false, payload: topic.as_bytes().to_vec() }
}

fn books(store: Option<MemStore>, window: usize) -> State<MemStore> {
    State::new(store, window, 10, STATUS.to_string())
}

fn topics(recs: &[Record]) -> Vec<String> {
    recs.iter().map(|r| r.topic.clone()).collect()
}

/// Pump, and acknowledge the `online` a fresh connection sends first.
fn connect(st: &mut State<MemStore>, session_present: bool) -> Vec<String> {
    st.connected(session_present);
    let sent = topics(&st.pump());
    assert_eq!(sent.first().map(String::as_str), Some(STATUS), "online goes first: {sent:?}");
    st.puback();
    sent[1..].to_vec()
}

fn ack(st: &mut State<MemStore>, n: usize) {
    for _ in 0..n {
        st.puback();
    }
}

/// from_earlier_run + published = delivered + lost + unacknowledged + dropped_oldest + spooled.
fn assert_books_balance(r: &DeliveryReport) {
    assert_eq!(
        r.from_earlier_run + r.published,
        r.delivered + r.dropped_queue_full + r.unacknowledged + r.dropped_oldest + r.spooled,
        "{r:?}"
    );
}

#[test]
fn the_window_is_never_exceeded_status_messages_included() {
    let mut st = books(Some(MemStore::new(1000)), 4);
    st.connected(true);
    for i in 0..3 {
        st.queue_control(rec(&format!("p/cam{i}/detect/state")));
    }
    for i in 0..20 {
        st.publish(rec(&format!("m{i}")));
    }
    let mut in_flight = 0;
    let mut sent = Vec::new();
    for round in 0..40 {
        let batch = st.pump();
        in_flight += batch.len();
        assert!(in_flight <= 4, "round {round}: {in_flight} in flight");
        sent.extend(topics(&batch));
        // Acknowledge one now and then, so the window fills and drains.
        if round % 2 == 0 && in_flight > 0 {
            st.puback();
            in_flight -= 1;
        }
    }
    ack(&mut st, in_flight);
    let messages: Vec<String> = sent.iter().filter(|t| t.starts_with('m')).cloned().collect();
    assert_eq!(messages, (0..20).map(|i| format!("m{i}")).collect::<Vec<_>>(), "each once, in order");
    assert_eq!(sent.len(), 1 + 3 + 20, "online, three detect states, the messages: {sent:?}");
    assert_eq!(&sent[..4], &[STATUS, "p/cam0/detect/state", "p/cam1/detect/state", "p/cam2/detect/state"]);
    assert!(st.settled());
}

#[test]
fn a_full_window_sends_the_rest_to_the_spool_and_a_puback_releases_one() {
    let mut st = books(Some(MemStore::new(1000)), 2);
    connect(&mut st, true);
    assert_eq!(st.publish(rec("a")), Accepted::Queued);
    assert_eq!(st.publish(rec("b")), Accepted::Queued);
    assert_eq!(st.publish(rec("c")), Accepted::Spooled, "two busy: the window is full");
    assert_eq!(st.spool.as_ref().map(|s| s.topics()), Some(vec!["a".into(), "b".into(), "c".into()]), "in order");
    assert_eq!(topics(&st.pump()), ["a", "b"]);
    assert!(st.pump().is_empty(), "nothing more until an ack");
    st.puback();
    assert_eq!(topics(&st.pump()), ["c"]);
    ack(&mut st, 2);
    let spool = st.spool.as_ref().map(|s| s.len());
    assert_eq!(spool, Some(0), "acknowledged: gone from the spool");
    let c = st.counters().snapshot();
    assert_eq!((c.delivered, c.spooled, c.replayed), (3, 3, 3), "{c:?}");
    assert_eq!(st.backlog(), 0);
}

#[test]
fn only_acknowledged_messages_leave_the_spool() {
    let mut st = books(Some(MemStore::holding(5)), 10);
    assert_eq!(connect(&mut st, true), ["old0", "old1", "old2", "old3", "old4"]);
    ack(&mut st, 2);
    assert_eq!(st.spool.as_ref().map(|s| s.topics()), Some(vec!["old2".into(), "old3".into(), "old4".into()]));
    assert_eq!(st.backlog(), 3);
    let r = st.finish();
    assert_eq!((r.from_earlier_run, r.delivered, r.replayed, r.spooled), (5, 2, 2, 3), "{r:?}");
    assert_books_balance(&r);
}

#[test]
fn an_outage_spools_everything_in_order_and_the_spool_goes_first_after_it() {
    let mut st = books(Some(MemStore::new(1000)), 10);
    connect(&mut st, true);
    st.publish(rec("a"));
    st.publish(rec("b"));
    assert_eq!(topics(&st.pump()), ["a", "b"]);
    st.publish(rec("c"));
    let lost = st.connection_failed();
    assert_eq!(lost, Dropped { was_connected: true, waiting: 3 });
    assert!(!st.settled(), "a connection that dropped is not an unreachable broker");
    assert!(st.pump().is_empty(), "nothing goes out while disconnected");
    assert_eq!(st.publish(rec("d")), Accepted::Spooled);
    assert_eq!(
        st.spool.as_ref().map(|s| s.topics()),
        Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        "the memory-only messages moved to the spool first, in flight ones included"
    );
    assert_eq!(st.connection_failed(), Dropped { was_connected: false, waiting: 4 });
    assert!(st.settled(), "unreachable: a stop need not wait");
    // The broker resumed the session: rumqttc resends a and b itself; we go on from c.
    assert_eq!(connect(&mut st, true), ["c", "d"]);
    ack(&mut st, 4);
    let r = st.finish();
    assert_eq!((r.published, r.delivered, r.spooled, r.spooled_in_run, r.replayed), (4, 4, 0, 4, 4), "{r:?}");
    assert_books_balance(&r);
}

#[test]
fn a_new_session_gets_what_was_in_flight_again_first_and_a_resumed_one_does_not() {
    for session_present in [false, true] {
        let mut st = books(Some(MemStore::new(1000)), 10);
        st.connected(true);
        st.queue_control(rec("p/cam/detect/state"));
        st.publish(rec("a"));
        st.publish(rec("b"));
        assert_eq!(topics(&st.pump()), [STATUS, "p/cam/detect/state", "a", "b"]);
        st.puback(); // online
        st.connection_failed();
        st.publish(rec("c"));
        st.connected(session_present);
        let sent = topics(&st.pump());
        if session_present {
            // rumqttc resends the detect state and a, b itself, and the acks still come in order.
            assert_eq!(sent, [STATUS, "c"]);
            ack(&mut st, 5);
        } else {
            // The old status messages are stale: only the new online goes, then a, b again.
            assert_eq!(sent, [STATUS, "a", "b", "c"]);
            ack(&mut st, 4);
        }
        let r = st.finish();
        assert_eq!((r.delivered, r.unacknowledged, r.spooled), (3, 0, 0), "session_present {session_present}: {r:?}");
        assert_books_balance(&r);
    }
}

#[test]
fn messages_left_unacknowledged_at_the_stop_stay_in_the_spool() {
    let mut st = books(Some(MemStore::new(1000)), 10);
    connect(&mut st, true);
    for t in ["a", "b", "c"] {
        st.publish(rec(t));
    }
    assert_eq!(topics(&st.pump()), ["a", "b", "c"]);
    st.puback();
    st.publish(rec("d"));
    assert!(st.close());
    let r = st.finish();
    assert_eq!(st.spool.as_ref().map(|s| s.topics()), Some(vec!["b".into(), "c".into(), "d".into()]));
    assert_eq!((r.delivered, r.spooled, r.unacknowledged), (1, 3, 0), "{r:?}");
    assert_books_balance(&r);
}

#[test]
fn closing_sends_offline_exactly_once_and_waits_for_its_ack() {
    let mut st = books(Some(MemStore::new(1000)), 10);
    connect(&mut st, true);
    st.publish(rec("a"));
    assert!(st.close(), "connected: the ack can come");
    let sent = st.pump();
    assert_eq!(topics(&sent), [STATUS], "closing: nothing new, only offline");
    assert_eq!(sent[0].payload, OFFLINE.as_bytes());
    assert!(sent[0].retain);
    for _ in 0..5 {
        assert!(st.pump().is_empty(), "offline goes once");
    }
    assert!(!st.offline_acked(), "not before its PUBACK");
    st.puback();
    assert!(st.offline_acked());
    assert!(st.pump().is_empty(), "not again after its ack either");
    let r = st.finish();
    assert_eq!((r.delivered, r.spooled), (0, 1), "the offline status is not a delivered message: {r:?}");
    assert_books_balance(&r);
}

#[test]
fn an_offline_lost_with_its_session_goes_once_more_and_one_acknowledged_does_not() {
    let mut st = books(Some(MemStore::new(1000)), 10);
    connect(&mut st, true);
    st.close();
    assert_eq!(topics(&st.pump()), [STATUS]);
    st.connection_failed();
    st.connected(false);
    assert_eq!(topics(&st.pump()), [STATUS], "the broker lost it: sent again");
    assert!(st.pump().is_empty());
    st.puback();
    assert!(st.offline_acked());
    st.connection_failed();
    st.connected(false);
    assert!(st.pump().is_empty(), "acknowledged: never again");
}

#[test]
fn offline_waits_for_room_in_the_window() {
    let mut st = books(Some(MemStore::new(1000)), 2);
    connect(&mut st, true);
    st.publish(rec("a"));
    st.publish(rec("b"));
    assert_eq!(topics(&st.pump()), ["a", "b"]);
    st.close();
    assert!(st.pump().is_empty(), "the window is full");
    st.puback();
    assert_eq!(topics(&st.pump()), [STATUS]);
}

#[test]
fn what_rumqttc_refuses_goes_back_in_order() {
    let mut st = books(Some(MemStore::holding(3)), 10);
    st.connected(false);
    st.queue_control(rec("p/cam/detect/state"));
    let batch = st.pump();
    assert_eq!(topics(&batch), [STATUS, "p/cam/detect/state", "old0", "old1", "old2"]);
    // The second and everything after it refused.
    st.refused(batch.len() - 1);
    assert_eq!(topics(&st.pump()), ["p/cam/detect/state", "old0", "old1", "old2"], "the same, in order");
    ack(&mut st, 5);
    // Resend and memory entries go back too.
    st.publish(rec("m"));
    assert_eq!(topics(&st.pump()), ["m"]);
    st.connection_failed();
    st.connected(false);
    st.publish(rec("n"));
    let batch = st.pump();
    assert_eq!(topics(&batch), [STATUS, "m", "n"]);
    st.refused(2);
    assert_eq!(topics(&st.pump()), ["m", "n"]);
    st.close();
    assert_eq!(topics(&st.pump()), [STATUS]);
    st.refused(1);
    assert_eq!(topics(&st.pump()), [STATUS], "a refused offline is tried again");
}

#[test]
fn without_a_spool_a_bounded_memory_queue_and_the_rest_counted_as_lost() {
    let mut st = books(None, 4);
    for i in 0..12 {
        let expected = if i < 10 { Accepted::Queued } else { Accepted::Lost };
        assert_eq!(st.publish(rec(&format!("m{i}"))), expected, "m{i}");
    }
    assert_eq!(st.counters().snapshot().dropped["not_spooled"], 2);
    let mut sent = connect(&mut st, false);
    ack(&mut st, sent.len());
    loop {
        let batch = st.pump();
        if batch.is_empty() {
            break;
        }
        sent.extend(topics(&batch));
        ack(&mut st, batch.len());
    }
    assert_eq!(sent, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    st.publish(rec("x"));
    st.close();
    let r = st.finish();
    assert_eq!((r.published, r.delivered, r.dropped_queue_full, r.unacknowledged), (13, 10, 2, 1), "{r:?}");
    assert_books_balance(&r);
}

#[test]
fn a_failing_spool_counts_what_it_loses() {
    let mut store = MemStore::new(1000);
    store.broken = true;
    let mut st = books(Some(store), 4);
    assert_eq!(st.publish(rec("a")), Accepted::Lost);
    let c = st.counters().snapshot();
    assert_eq!((c.spooled, c.dropped["not_spooled"]), (0, 1));
    let r = st.finish();
    assert_eq!((r.published, r.dropped_queue_full), (1, 1));
    assert_books_balance(&r);
}

#[test]
fn a_full_spool_drops_the_oldest_and_the_books_still_balance() {
    let mut st = books(Some(MemStore::new(3)), 4);
    for i in 0..5 {
        st.publish(rec(&format!("m{i}")));
    }
    assert_eq!(st.spool.as_ref().map(|s| s.topics()), Some(vec!["m2".into(), "m3".into(), "m4".into()]));
    assert_eq!(connect(&mut st, true), ["m2", "m3", "m4"]);
    st.puback();
    let c = st.counters().snapshot();
    assert_eq!((c.delivered, c.dropped["spool_full"]), (1, 2), "{c:?}");
    st.close();
    let r = st.finish();
    assert_eq!((r.delivered, r.dropped_oldest, r.spooled), (1, 2, 2), "{r:?}");
    assert_books_balance(&r);
}

#[test]
fn the_books_balance_through_outages_refusals_and_a_stop() {
    let mut st = books(Some(MemStore::holding(7)), 3);
    let mut seed = 0x2545_f491_u64;
    let mut roll = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut in_flight = 0usize;
    for i in 0..500 {
        match roll(10) {
            0..=3 => {
                st.publish(rec(&format!("m{i}")));
            }
            4 | 5 => {
                let batch = st.pump();
                let refuse = if roll(8) == 0 { batch.len() / 2 } else { 0 };
                st.refused(refuse);
                in_flight += batch.len() - refuse;
            }
            6 | 7 if in_flight > 0 => {
                st.puback();
                in_flight -= 1;
            }
            8 if st.is_connected() => {
                st.connection_failed();
            }
            8 | 9 if !st.is_connected() => {
                let resumed = roll(2) == 0;
                st.connected(resumed);
                if !resumed {
                    // rumqttc forgot the old session's publishes: no ack for them can come.
                    in_flight = 0;
                }
            }
            _ => st.idle(),
        }
        assert!(in_flight <= 3, "step {i}: {in_flight} in flight");
        let dropped = st.spool.as_ref().map_or(0, |s| s.dropped_oldest());
        assert_eq!(
            st.from_earlier_run + st.published,
            st.delivered + st.lost + dropped + st.backlog(),
            "step {i}: every message delivered, lost, dropped or waiting"
        );
    }
    st.close();
    let r = st.finish();
    assert!(r.delivered > 0 && r.published > 100, "{r:?}");
    assert_books_balance(&r);
}

#[test]
fn reconnect_waits_grow_to_the_cap_and_reset_on_a_connection() {
    let cap = Duration::from_millis(1500);
    let mut r = Reconnects::new(cap, "gw-01");
    let waits: Vec<Retry> = (0..12).map(|_| r.failed()).collect();
    assert!(waits[0].delay <= BACKOFF_MIN && waits[0].delay >= BACKOFF_MIN.mul_f64(0.75), "{waits:?}");
    assert!(waits.iter().all(|w| w.delay <= cap), "{waits:?}");
    assert_eq!(waits.iter().map(|w| w.attempts).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    let logged: Vec<u32> = waits.iter().filter(|w| w.worth_logging()).map(|w| w.attempts).collect();
    assert_eq!(logged, [1, 10]);
    assert_eq!(r.connected(), 12);
    let again = r.failed();
    assert_eq!(again.attempts, 1);
    assert!(again.delay <= BACKOFF_MIN, "a connection resets the backoff: {again:?}");
    // Another gateway's jitter differs, so that they spread out.
    let mut other = Reconnects::new(cap, "gw-02");
    let theirs: Vec<Duration> = (0..6).map(|_| other.failed().delay).collect();
    let mut ours = Reconnects::new(cap, "gw-01");
    let mine: Vec<Duration> = (0..6).map(|_| ours.failed().delay).collect();
    assert_ne!(theirs, mine);
}
