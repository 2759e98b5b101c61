//! Bounded links between stages. Each link states its capacity and what it does when full,
//! and counts every item it drops: memory stays bounded and nothing vanishes unseen.
//!
//! | link   | capacity                 | when full                     |
//! |--------|--------------------------|-------------------------------|
//! | frames | [`FRAME_LINK_CAPACITY`]  | drop_oldest (latest frame wins) |
//! | events | [`EVENT_LINK_CAPACITY`]  | block (events are never dropped here) |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Frames waiting per camera for a detector. Small on purpose: a frame that waits is a frame
/// whose events arrive late; a newer one is worth more.
pub const FRAME_LINK_CAPACITY: usize = 2;
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
        LinkSender { tx: self.tx.clone(), rx: self.rx.clone(), when_full: self.when_full, dropped: self.dropped.clone() }
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
