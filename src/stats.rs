//! Counters shared by the stages of one camera, and the summary they reconcile to.
//!
//! The books balance per camera: `decoded = skipped_by_rate + inferred + dropped(all reasons)`
//! once a file source has reached EOS and the stages have drained.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Why a frame was dropped. Each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The frame link was full and a newer frame replaced it (latest frame wins).
    LinkFull,
    /// The detector failed on this frame.
    InferenceError,
    /// Detection was switched off for the camera (`<camera>/detect/set OFF`).
    DetectOff,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::LinkFull => "link_full",
            DropReason::InferenceError => "inference_error",
            DropReason::DetectOff => "detect_off",
        }
    }
}

/// Live counters for one camera. Written by GStreamer's streaming thread and our workers.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames out of the decoder, before the detect-rate gate.
    pub decoded: AtomicU64,
    /// Frames the detect-rate gate discarded before scaling and colour conversion.
    pub skipped_by_rate: AtomicU64,
    /// Frames that reached the frame link.
    pub delivered: AtomicU64,
    /// Frames the detector ran on.
    pub inferred: AtomicU64,
    /// Detections reported after the camera's filters.
    pub detections: AtomicU64,
    /// Dropped by the frame link's drop_oldest policy. Shared with the link itself.
    pub dropped_link_full: Arc<AtomicU64>,
    pub dropped_inference_error: AtomicU64,
    pub dropped_detect_off: AtomicU64,
    /// Sum and count of inference latency, for the mean.
    pub infer_micros_total: AtomicU64,
}

impl CameraCounters {
    pub fn dropped(&self, reason: DropReason) {
        match reason {
            DropReason::LinkFull => self.dropped_link_full.fetch_add(1, Ordering::Relaxed),
            DropReason::InferenceError => self.dropped_inference_error.fetch_add(1, Ordering::Relaxed),
            DropReason::DetectOff => self.dropped_detect_off.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn snapshot(&self) -> CameraSummary {
        let decoded = self.decoded.load(Ordering::Relaxed);
        let inferred = self.inferred.load(Ordering::Relaxed);
        let mut dropped = BTreeMap::new();
        dropped.insert(DropReason::LinkFull.as_str(), self.dropped_link_full.load(Ordering::Relaxed));
        dropped.insert(DropReason::InferenceError.as_str(), self.dropped_inference_error.load(Ordering::Relaxed));
        // Only once it happens: most gateways never switch detection off.
        let off = self.dropped_detect_off.load(Ordering::Relaxed);
        if off > 0 {
            dropped.insert(DropReason::DetectOff.as_str(), off);
        }
        let infer_total = self.infer_micros_total.load(Ordering::Relaxed);
        CameraSummary {
            decoded,
            skipped_by_rate: self.skipped_by_rate.load(Ordering::Relaxed),
            inferred,
            detections: self.detections.load(Ordering::Relaxed),
            dropped,
            inference_ms_mean: if inferred == 0 { 0.0 } else { (infer_total as f64 / inferred as f64 / 10.0).round() / 100.0 },
        }
    }
}

/// A point-in-time copy of one camera's counters, as published on `<prefix>/stats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraSummary {
    pub decoded: u64,
    pub skipped_by_rate: u64,
    pub inferred: u64,
    pub detections: u64,
    pub dropped: BTreeMap<&'static str, u64>,
    pub inference_ms_mean: f64,
}

impl CameraSummary {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Frames not yet accounted for: zero once the camera has drained.
    pub fn unaccounted(&self) -> i64 {
        self.decoded as i64 - (self.skipped_by_rate + self.inferred + self.dropped_total()) as i64
    }
}

/// What became of the messages handed to the MQTT publisher. Written by the publisher and its
/// connection thread, read by the stats topic and `/metrics`.
#[derive(Debug, Default)]
pub struct PublishCounters {
    /// Acknowledged by the broker (not counting the gateway's own status messages).
    pub delivered: AtomicU64,
    /// Written to the on-disk spool: the broker was away, or the in-flight window full.
    pub spooled: AtomicU64,
    /// Spooled messages later acknowledged by the broker. Includes an earlier run's, sent first.
    pub replayed: AtomicU64,
    /// Dropped from the spool, oldest first, to stay within `spool.max_bytes` (or found
    /// corrupt on disk). Intentional: the bound is the operator's choice.
    pub dropped_spool_full: AtomicU64,
    /// Neither sent nor spooled: no usable spool and the memory queue full, a spool write
    /// failed, or a message larger than the whole spool. Not intentional.
    pub dropped_not_spooled: AtomicU64,
}

impl PublishCounters {
    pub fn snapshot(&self) -> PublishSummary {
        let mut dropped = BTreeMap::new();
        dropped.insert("spool_full", self.dropped_spool_full.load(Ordering::Relaxed));
        dropped.insert("not_spooled", self.dropped_not_spooled.load(Ordering::Relaxed));
        PublishSummary {
            delivered: self.delivered.load(Ordering::Relaxed),
            spooled: self.spooled.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            dropped,
        }
    }
}

/// A point-in-time copy of the publisher's counters, as published on `<prefix>/stats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PublishSummary {
    pub delivered: u64,
    pub spooled: u64,
    pub replayed: u64,
    pub dropped: BTreeMap<&'static str, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_balance_when_every_frame_has_a_fate() {
        let c = CameraCounters::default();
        c.decoded.store(10, Ordering::Relaxed);
        c.skipped_by_rate.store(6, Ordering::Relaxed);
        c.inferred.store(2, Ordering::Relaxed);
        c.dropped(DropReason::LinkFull);
        c.dropped(DropReason::InferenceError);
        let s = c.snapshot();
        assert_eq!(s.skipped_by_rate, 6);
        assert_eq!(s.dropped_total(), 2);
        assert_eq!(s.unaccounted(), 0);
    }
}
