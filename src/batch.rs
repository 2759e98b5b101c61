//! Batching frames across cameras, for execution providers that gain from it (GPUs, NPUs).
//!
//! ```toml
//! [inference]
//! max_batch = 8            # frames per run; needs a model with a dynamic batch dimension
//! max_batch_wait_ms = 5    # how long a worker with fewer waits for more
//! ```
//!
//! A worker that has received one frame takes whatever its other cameras have ready, at most
//! one frame per camera (so each camera's frames stay in capture order and no camera fills a
//! batch alone), then waits up to `max_batch_wait_ms` for the rest. On the CPU provider the
//! batch is always 1: batching gave no per-image gain there (docs/platform-notes.md), and every frame
//! would wait for the batch's last. This file is the pure part; the waiting is in
//! [`crate::pipeline`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Add to `batch` the frames `try_take` has ready, one per link at most, scanning the links
/// round-robin from the one after the batch's first, until `max` frames. `try_take(i)` must
/// not block. Links already in the batch are skipped.
pub fn gather<T>(batch: &mut Vec<(usize, T)>, links: usize, max: usize, mut try_take: impl FnMut(usize) -> Option<T>) {
    let Some(start) = batch.first().map(|(i, _)| *i) else { return };
    for k in 1..links {
        if batch.len() >= max {
            return;
        }
        let i = (start + k) % links;
        if batch.iter().any(|(j, _)| *j == i) {
            continue;
        }
        if let Some(frame) = try_take(i) {
            batch.push((i, frame));
        }
    }
}

/// How many runs took each batch size, for stats and /metrics.
#[derive(Debug)]
pub struct BatchCounts {
    runs: Vec<AtomicU64>,
}

impl BatchCounts {
    pub fn new(max_batch: usize) -> BatchCounts {
        BatchCounts { runs: (0..=max_batch.max(1)).map(|_| AtomicU64::new(0)).collect() }
    }

    pub fn record(&self, size: usize) {
        if let Some(c) = self.runs.get(size) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs per batch size, sizes that never ran left out.
    pub fn snapshot(&self) -> BTreeMap<usize, u64> {
        self.runs.iter().enumerate().map(|(n, c)| (n, c.load(Ordering::Relaxed))).filter(|(_, c)| *c > 0).collect()
    }
}

impl Default for BatchCounts {
    fn default() -> BatchCounts {
        BatchCounts::new(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn take(links: &mut [VecDeque<u32>]) -> impl FnMut(usize) -> Option<u32> + '_ {
        move |i| links[i].pop_front()
    }

    #[test]
    fn one_frame_per_camera_round_robin_from_the_first() {
        let mut links: Vec<VecDeque<u32>> = vec![[10, 11].into(), [20].into(), [].into(), [40, 41].into()];
        let first = links[1].pop_front().unwrap();
        let mut batch = vec![(1, first)];
        gather(&mut batch, 4, 8, take(&mut links));
        // Link 2 is empty; link 0 comes after 3 because the scan starts after link 1.
        assert_eq!(batch, vec![(1, 20), (3, 40), (0, 10)]);
        // The second frames stay queued for the next batch, in order.
        assert_eq!(links[0], VecDeque::from([11]));
        assert_eq!(links[3], VecDeque::from([41]));
    }

    #[test]
    fn stops_at_max_and_leaves_the_rest() {
        let mut links: Vec<VecDeque<u32>> = (0..6).map(|i| VecDeque::from([i])).collect();
        let first = links[4].pop_front().unwrap();
        let mut batch = vec![(4, first)];
        gather(&mut batch, 6, 3, take(&mut links));
        assert_eq!(batch, vec![(4, 4), (5, 5), (0, 0)]);
        assert_eq!(links.iter().map(|l| l.len()).sum::<usize>(), 3);
    }

    #[test]
    fn max_one_takes_nothing_more_and_an_empty_batch_stays_empty() {
        let mut links: Vec<VecDeque<u32>> = vec![[1].into(), [2].into()];
        let mut batch = vec![(0, 0)];
        gather(&mut batch, 2, 1, take(&mut links));
        assert_eq!(batch.len(), 1);
        let mut empty: Vec<(usize, u32)> = Vec::new();
        gather(&mut empty, 2, 8, take(&mut links));
        assert!(empty.is_empty());
    }

    #[test]
    fn counts_runs_per_size() {
        let c = BatchCounts::new(8);
        c.record(1);
        c.record(8);
        c.record(8);
        c.record(9); // over the maximum: not a size this worker can run; ignored
        assert_eq!(c.snapshot(), BTreeMap::from([(1, 1), (8, 2)]));
    }
}
