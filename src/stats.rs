//! Counters shared by the stages of one camera, and the summary they reconcile to.
//!
//! The books balance per camera:
//! `decoded = skipped_by_rate + skipped_by_motion + inferred + dropped(all reasons)`
//! once a file source has reached EOS and the stages have drained.
//!
//! Detections are counted apart from frames: `detections` (at or above `detect.min_score`)
//! of which `filtered` (by reason) were rejected by the camera's filters and masks before
//! tracking.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// Why the objects stage's filters dropped a detection. When several checks fail, the first in
/// this order is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejected {
    /// Its label is not among the labels to track.
    Label,
    /// Its score is below `min_score`.
    Score,
    /// Its box area is outside `min_area..=max_area`.
    Area,
    /// Its box's width/height is outside `min_ratio..=max_ratio`.
    Ratio,
    /// Its reference point is inside a mask.
    Mask,
}

impl Rejected {
    pub const ALL: [Rejected; 5] = [Rejected::Label, Rejected::Score, Rejected::Area, Rejected::Ratio, Rejected::Mask];

    /// Position in [`Rejected::ALL`], for counters kept in an array.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason as a counter label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Label => "label",
            Rejected::Score => "score",
            Rejected::Area => "area",
            Rejected::Ratio => "ratio",
            Rejected::Mask => "mask",
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
    /// Frames the motion gate discarded: still scene, nothing tracked, detected recently.
    pub skipped_by_motion: AtomicU64,
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
    /// Time spent pre-processing (letterbox into the input tensor), for benchmarks' CPU shares.
    pub pre_micros_total: AtomicU64,
    /// Detections at or above `detect.min_score` that the camera's filters rejected, by
    /// reason, indexed as [`Rejected::ALL`].
    pub filtered: [AtomicU64; 5],
    /// Set by the objects stage while it tracks anything; the motion gate keeps detecting
    /// meanwhile (see `source::motion`).
    pub tracking: AtomicBool,
    /// The name of the model the camera runs (its manifest's file stem) and the execution
    /// provider that runs it (each model's workers pick theirs when loaded); a reload may
    /// change both, together. Empty until the camera is given a pool.
    model: std::sync::Mutex<(String, String, Option<VariantCheck>)>,
    /// The console's view of this camera: its latest frame while someone watches, and its
    /// recent events (see [`crate::view`]).
    pub view: crate::view::ViewerTap,
}

impl CameraCounters {
    /// `check`: how the model's variant compared with its fp32 source when it was loaded, if it
    /// is (or was to be) a variant.
    pub fn set_model(&self, name: &str, provider: &str, check: Option<VariantCheck>) {
        *self.model.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            (name.to_string(), provider.to_string(), check);
    }

    /// The camera's (model, provider), as [`CameraCounters::set_model`] last set them.
    pub fn model(&self) -> (String, String) {
        let m = self.model.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (m.0.clone(), m.1.clone())
    }

    /// The variant check of the camera's model, as [`CameraCounters::set_model`] last set it.
    pub fn variant_check(&self) -> Option<VariantCheck> {
        self.model.lock().unwrap_or_else(std::sync::PoisonError::into_inner).2.clone()
    }

    pub fn dropped(&self, reason: DropReason) {
        match reason {
            DropReason::LinkFull => self.dropped_link_full.fetch_add(1, Ordering::Relaxed),
            DropReason::InferenceError => self.dropped_inference_error.fetch_add(1, Ordering::Relaxed),
            DropReason::DetectOff => self.dropped_detect_off.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Count detections the filters rejected, as [`Rejected::ALL`] orders them.
    pub fn add_filtered(&self, by_reason: &[u64; 5]) {
        for (c, n) in self.filtered.iter().zip(by_reason) {
            if *n > 0 {
                c.fetch_add(*n, Ordering::Relaxed);
            }
        }
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
        let (model, provider) = self.model();
        CameraSummary {
            model,
            provider,
            variant_check: self.variant_check(),
            decoded,
            skipped_by_rate: self.skipped_by_rate.load(Ordering::Relaxed),
            skipped_by_motion: self.skipped_by_motion.load(Ordering::Relaxed),
            inferred,
            filtered: Rejected::ALL
                .iter()
                .zip(&self.filtered)
                .map(|(r, c)| (r.as_str(), c.load(Ordering::Relaxed)))
                .collect(),
            detections: self.detections.load(Ordering::Relaxed),
            dropped,
            inference_ms_mean: if inferred == 0 {
                0.0
            } else {
                (infer_total as f64 / inferred as f64 / 10.0).round() / 100.0
            },
        }
    }
}

/// How a model variant compared with its fp32 source when it was loaded: its detections on the
/// check images, on its provider, against the source's on the CPU provider. Filled by
/// `detect::variant`; kept here so the stats and /metrics can report it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VariantCheck {
    /// The variant's name (its manifest's file stem).
    pub variant: String,
    /// The fp32 source's name.
    pub source: String,
    /// The provider the variant was checked on, as the config names it.
    pub provider: String,
    /// Check images read.
    pub images: usize,
    /// The source's detections on them.
    pub source_detections: usize,
    /// How many of those the variant found (same label, IoU >= 0.5).
    pub found: usize,
    pub recall: f64,
    pub min_recall: f64,
    /// Whether the variant runs. When false it was refused, and the source runs in its place
    /// (at start) or the running detector stays (on reload).
    pub accepted: bool,
}

/// A point-in-time copy of one camera's counters, as published on `<prefix>/stats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraSummary {
    /// The model the camera runs.
    pub model: String,
    /// The execution provider its model runs on.
    pub provider: String,
    /// Present when the camera's model is a variant (INT8, fp16, a smaller input) checked
    /// against its fp32 source at load: the figures, and whether it was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_check: Option<VariantCheck>,
    pub decoded: u64,
    pub skipped_by_rate: u64,
    pub skipped_by_motion: u64,
    pub inferred: u64,
    pub detections: u64,
    /// Detections rejected by the filters and masks, by reason (label, score, area, ratio, mask).
    pub filtered: BTreeMap<&'static str, u64>,
    pub dropped: BTreeMap<&'static str, u64>,
    pub inference_ms_mean: f64,
}

impl CameraSummary {
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }

    /// Frames not yet accounted for: zero once the camera has drained.
    pub fn unaccounted(&self) -> i64 {
        self.decoded as i64
            - (self.skipped_by_rate + self.skipped_by_motion + self.inferred + self.dropped_total()) as i64
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
        c.skipped_by_rate.store(5, Ordering::Relaxed);
        c.skipped_by_motion.store(1, Ordering::Relaxed);
        c.inferred.store(2, Ordering::Relaxed);
        c.dropped(DropReason::LinkFull);
        c.dropped(DropReason::InferenceError);
        let s = c.snapshot();
        assert_eq!(s.skipped_by_rate, 5);
        assert_eq!(s.dropped_total(), 2);
        assert_eq!(s.unaccounted(), 0);
        c.decoded.fetch_add(1, Ordering::Relaxed);
        assert_eq!(c.snapshot().unaccounted(), 1, "a frame with no fate shows");
    }

    #[test]
    fn filtered_detections_are_summed_by_reason() {
        let c = CameraCounters::default();
        c.add_filtered(&[0, 1, 2, 0, 3]);
        c.add_filtered(&[0, 0, 1, 0, 0]);
        let s = c.snapshot();
        assert_eq!(s.filtered.get("area"), Some(&3));
        assert_eq!(s.filtered.get("mask"), Some(&3));
        assert_eq!(s.filtered.get("label"), Some(&0), "every reason is listed, zero or not");
    }
}
