//! Bounded links between stages. Each link states its capacity and what it does when full,
//! and counts every item it drops: memory stays bounded and nothing vanishes unseen.
//!
//! | link       | default capacity              | default when full | allowed when full |
//! |------------|-------------------------------|-------------------|-------------------|
//! | frames     | [`FRAME_LINK_CAPACITY`]       | drop_oldest (latest frame wins) | drop_oldest, drop_newest; block for files only |
//! | detections | [`DETECTIONS_LINK_CAPACITY`]  | block | block |
//! | events     | [`EVENT_LINK_CAPACITY`]       | block | block |
//!
//! ```toml
//! # lookout.toml (every camera), or a camera file (that camera; frames and detections only)
//! [links.frames]
//! capacity = 2
//! when_full = "drop_oldest"
//! ```
//!
//! Which policies a link may have is decided by [`check`] (pure): results and events must
//! never be dropped, and a live camera's frames must never block its decoder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Frames waiting per camera for a detector. Small on purpose: a frame that waits is a frame
/// whose events arrive late; a newer one is worth more.
pub const FRAME_LINK_CAPACITY: usize = 2;
/// Capacity of each camera's link from the detect workers to its objects stage. Results are
/// never dropped (the tracker needs every inferred frame); the objects stage costs
/// microseconds a frame, so this link only ever holds a few.
pub const DETECTIONS_LINK_CAPACITY: usize = 8;
/// The most frames a frame link may hold: each holds a decoded, scaled frame (about 0.5 MB at
/// 416x416), and a frame that waits longer than a few inference times is stale anyway.
pub const MAX_FRAME_LINK_CAPACITY: usize = 64;
pub const MAX_DETECTIONS_LINK_CAPACITY: usize = 1024;
pub const MAX_EVENT_LINK_CAPACITY: usize = 65_536;
/// Messages waiting for the publisher. The publisher itself never waits on the network, so
/// this only fills if the process is starved of CPU.
pub const EVENT_LINK_CAPACITY: usize = 256;

/// What a link does with a new item when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Discard the oldest queued item to make room: the newest always gets in.
    DropOldest,
    /// Discard the new item.
    DropNewest,
    /// Wait for room: backpressure reaches the sender.
    Block,
}

impl WhenFull {
    /// The config spelling: `drop_oldest`, `drop_newest` or `block`.
    pub fn from_key(key: &str) -> Option<WhenFull> {
        match key {
            "drop_oldest" => Some(WhenFull::DropOldest),
            "drop_newest" => Some(WhenFull::DropNewest),
            "block" => Some(WhenFull::Block),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WhenFull::DropOldest => "drop_oldest",
            WhenFull::DropNewest => "drop_newest",
            WhenFull::Block => "block",
        }
    }
}

/// The links of a pipeline, each with its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Source → detect workers, one per camera.
    Frames,
    /// Detect workers → the camera's objects stage (tracker, rules), one per camera.
    Detections,
    /// Objects stages, status and stats → the publisher, one for the gateway.
    Events,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Frames => "frames",
            LinkKind::Detections => "detections",
            LinkKind::Events => "events",
        }
    }

    /// The documented default.
    pub fn default_spec(self) -> LinkSpec {
        match self {
            LinkKind::Frames => LinkSpec { capacity: FRAME_LINK_CAPACITY, when_full: WhenFull::DropOldest },
            LinkKind::Detections => LinkSpec { capacity: DETECTIONS_LINK_CAPACITY, when_full: WhenFull::Block },
            LinkKind::Events => LinkSpec { capacity: EVENT_LINK_CAPACITY, when_full: WhenFull::Block },
        }
    }

    fn max_capacity(self) -> usize {
        match self {
            LinkKind::Frames => MAX_FRAME_LINK_CAPACITY,
            LinkKind::Detections => MAX_DETECTIONS_LINK_CAPACITY,
            LinkKind::Events => MAX_EVENT_LINK_CAPACITY,
        }
    }
}

/// A link's size and policy, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSpec {
    pub capacity: usize,
    pub when_full: WhenFull,
}

/// Why a link's configuration can't be honoured. Each message says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkPolicyError {
    #[error(
        "capacity 0: a link must hold at least 1 item (with 0 every item would wait for a receiver, or be dropped)"
    )]
    ZeroCapacity,
    #[error(
        "capacity {capacity} is above the limit of {max} for the {kind} link: a long queue only adds latency and memory"
    )]
    TooLarge { kind: &'static str, capacity: usize, max: usize },
    #[error(
        "when_full = \"{policy}\" would drop {what} silently; the {kind} link must never drop: only \"block\" is allowed (raise capacity to absorb bursts)"
    )]
    MustNotDrop { kind: &'static str, policy: &'static str, what: &'static str },
    #[error(
        "when_full = \"block\" on a live camera would stall its decoder: a camera can't be paused, so frames would back up in GStreamer's and the network's buffers (latency and memory grow without bound); use \"drop_oldest\" (latest frame wins) or \"drop_newest\". block is for files only"
    )]
    BlockLive,
}

/// Whether `spec` can be honoured on a link of `kind`; `live` says whether the camera feeding
/// a frames link is live (a file can wait for the detector, a camera can't).
pub fn check(kind: LinkKind, spec: LinkSpec, live: bool) -> Result<(), LinkPolicyError> {
    if spec.capacity == 0 {
        return Err(LinkPolicyError::ZeroCapacity);
    }
    if spec.capacity > kind.max_capacity() {
        return Err(LinkPolicyError::TooLarge {
            kind: kind.as_str(),
            capacity: spec.capacity,
            max: kind.max_capacity(),
        });
    }
    match (kind, spec.when_full) {
        (LinkKind::Detections, WhenFull::DropOldest | WhenFull::DropNewest) => Err(LinkPolicyError::MustNotDrop {
            kind: kind.as_str(),
            policy: spec.when_full.as_str(),
            what: "inferred frames (the tracker needs every one, or objects end and restart)",
        }),
        (LinkKind::Events, WhenFull::DropOldest | WhenFull::DropNewest) => Err(LinkPolicyError::MustNotDrop {
            kind: kind.as_str(),
            policy: spec.when_full.as_str(),
            what: "events (an end or a line crossing lost for good)",
        }),
        (LinkKind::Frames, WhenFull::Block) if live => Err(LinkPolicyError::BlockLive),
        _ => Ok(()),
    }
}

/// What happened to one `send`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// Queued, after dropping the oldest queued item.
    DroppedOldest,
    /// Not queued: dropped.
    DroppedNewest,
}

/// The receiving side has gone; the item is handed back. (A DropOldest sender keeps a
/// receiver of its own, so only Block and DropNewest links can report this.)
#[derive(Debug)]
pub struct Closed<T>(pub T);

/// The sending half of a link. The drop counter is shared with whoever reports stats.
pub struct LinkSender<T> {
    tx: Sender<T>,
    // Kept only to discard the oldest item under DropOldest.
    rx: Receiver<T>,
    when_full: WhenFull,
    dropped: Arc<AtomicU64>,
}

impl<T> Clone for LinkSender<T> {
    fn clone(&self) -> Self {
        LinkSender {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
            when_full: self.when_full,
            dropped: self.dropped.clone(),
        }
    }
}

/// A bounded link; `dropped` counts every item the policy discards.
pub fn bounded<T>(capacity: usize, when_full: WhenFull, dropped: Arc<AtomicU64>) -> (LinkSender<T>, Receiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    (LinkSender { tx, rx: rx.clone(), when_full, dropped }, rx)
}

impl<T> LinkSender<T> {
    pub fn send(&self, item: T) -> Result<Sent, Closed<T>> {
        match self.when_full {
            WhenFull::Block => self.tx.send(item).map(|_| Sent::Queued).map_err(|e| Closed(e.0)),
            WhenFull::DropNewest => match self.tx.try_send(item) {
                Ok(()) => Ok(Sent::Queued),
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    Ok(Sent::DroppedNewest)
                }
                Err(TrySendError::Disconnected(item)) => Err(Closed(item)),
            },
            WhenFull::DropOldest => {
                let mut item = item;
                let mut outcome = Sent::Queued;
                loop {
                    match self.tx.try_send(item) {
                        Ok(()) => return Ok(outcome),
                        Err(TrySendError::Full(back)) => {
                            item = back;
                            // A consumer may empty the link between the two calls; then nothing
                            // is dropped and the retry simply succeeds.
                            if self.rx.try_recv().is_ok() {
                                self.dropped.fetch_add(1, Ordering::Relaxed);
                                outcome = Sent::DroppedOldest;
                            }
                        }
                        Err(TrySendError::Disconnected(item)) => return Err(Closed(item)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(0))
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts_exactly() {
        let dropped = counter();
        let (tx, rx) = bounded(2, WhenFull::DropOldest, dropped.clone());
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![3, 4]);
    }

    #[test]
    fn drop_newest_keeps_the_first_and_counts_exactly() {
        let dropped = counter();
        let (tx, rx) = bounded(2, WhenFull::DropNewest, dropped.clone());
        let outcomes: Vec<Sent> = (0..4).map(|i| tx.send(i).unwrap()).collect();
        assert_eq!(outcomes, vec![Sent::Queued, Sent::Queued, Sent::DroppedNewest, Sent::DroppedNewest]);
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn policies_that_cannot_be_honoured_are_refused() {
        let spec = |capacity, when_full| LinkSpec { capacity, when_full };
        for kind in [LinkKind::Frames, LinkKind::Detections, LinkKind::Events] {
            assert_eq!(check(kind, kind.default_spec(), true), Ok(()), "{kind:?} default");
            assert_eq!(check(kind, spec(0, kind.default_spec().when_full), false), Err(LinkPolicyError::ZeroCapacity));
            assert!(matches!(
                check(kind, spec(kind.max_capacity() + 1, WhenFull::Block), false),
                Err(LinkPolicyError::TooLarge { .. })
            ));
            assert_eq!(check(kind, spec(kind.max_capacity(), kind.default_spec().when_full), true), Ok(()));
        }
        for when_full in [WhenFull::DropOldest, WhenFull::DropNewest] {
            for kind in [LinkKind::Detections, LinkKind::Events] {
                let e = check(kind, spec(8, when_full), false).unwrap_err();
                assert!(matches!(e, LinkPolicyError::MustNotDrop { .. }), "{e}");
                assert!(e.to_string().contains("only \"block\""), "{e}");
            }
            assert_eq!(check(LinkKind::Frames, spec(2, when_full), true), Ok(()));
        }
        assert_eq!(check(LinkKind::Frames, spec(2, WhenFull::Block), true), Err(LinkPolicyError::BlockLive));
        assert_eq!(
            check(LinkKind::Frames, spec(2, WhenFull::Block), false),
            Ok(()),
            "a file may wait for the detector"
        );
    }

    #[test]
    fn when_full_keys_round_trip() {
        for w in [WhenFull::DropOldest, WhenFull::DropNewest, WhenFull::Block] {
            assert_eq!(WhenFull::from_key(w.as_str()), Some(w));
        }
        assert_eq!(WhenFull::from_key("drop"), None);
    }

    #[test]
    fn block_waits_for_room_and_drops_nothing() {
        let dropped = counter();
        let (tx, rx) = bounded(1, WhenFull::Block, dropped.clone());
        let producer = std::thread::spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<i32> = rx.iter().collect();
        producer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(dropped.load(Ordering::Relaxed), 0);
    }
}
