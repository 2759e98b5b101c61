//! Detection on ONNX Runtime, for any model a manifest describes (`models/<name>.toml`, see
//! [`manifest`]): YOLOX, NanoDet, or the anchor-free YOLO layout.
//!
//! ```toml
//! [inference]
//! model = "yolox_nano"            # models/yolox_nano.toml; a plain .onnx path is read as YOLOX
//! ort_library = ".lookout/ort/libonnxruntime.so.1.31.1"
//! providers = ["cpu"]         # or tables with options; see `provider`
//! fallback = true
//! max_batch = 8                # frames per run, on a provider that gains from it
//! max_batch_wait_ms = 5
//! workers = 1
//! intra_threads = 1
//! ```
//!
//! The pure cores are [`letterbox`], [`manifest`] (parsing, and checking against the model's
//! real shapes), one output decoder per family ([`yolox`], [`nanodet`], [`yolo_anchor_free`])
//! and [`nms`]; [`session`] is the thin wrapper that owns one ORT session and runs frames
//! through them. [`compare`] holds detections to a reference (for `lookout bench` and the
//! tests), and [`variant`] holds a model variant to its fp32 source before it runs.

pub mod compare;
pub mod frame;
pub mod labels;
pub mod letterbox;
pub mod manifest;
pub mod nanodet;
pub mod nms;
pub mod provider;
pub mod session;
pub mod settings;
pub mod variant;
pub mod worker;
pub mod yolo_anchor_free;
pub mod yolox;

pub use provider::{ProviderKind, ProviderSpec, Selection};
pub use session::{Detector, DetectorOptions, ScaledFrame, ScaledImage, Timings};

use std::path::PathBuf;

/// A box before NMS, in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub class: usize,
    pub score: f32,
    /// x1, y1, x2, y2
    pub bbox: [f32; 4],
}

/// Default score threshold of the YOLOX recipe.
pub const DEFAULT_SCORE_THRESHOLD: f32 = 0.3;
/// Default per-class NMS IoU of the YOLOX recipe.
pub const DEFAULT_NMS_IOU: f32 = 0.45;

/// One detected object, in source-image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class: usize,
    pub label: &'static str,
    pub score: f32,
    /// x1, y1, x2, y2 in source pixels, clipped to the image.
    pub bbox: [f32; 4],
}

/// Everything that can go wrong loading or running a detector. Each message names the thing
/// and what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "ONNX Runtime library not found at {path}: run scripts/setup to place it, or set \
         inference.ort_library (or ORT_DYLIB_PATH) to libonnxruntime.so.1.31.1"
    )]
    LibraryMissing { path: PathBuf },
    #[error(
        "could not load the ONNX Runtime library {path}: {reason}. Point inference.ort_library \
         (or ORT_DYLIB_PATH) at libonnxruntime.so from the onnxruntime 1.24 or newer wheel"
    )]
    LibraryLoad { path: PathBuf, reason: String },
    #[error(
        "model not found at {path}: run scripts/setup to place it, or set inference.model \
         (see docs/models.md)"
    )]
    ModelMissing { path: PathBuf },
    #[error("could not load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    /// `path` is the manifest (or the plain `.onnx`); `reason` says what differs.
    #[error("{path}: {reason}")]
    ModelShape { path: PathBuf, reason: String },
    #[error(
        "no execution provider could run the model{}: {tried}. Run `lookout check --probe` to see what this \
         runtime offers; fix the provider's options or library, or list a provider that works (\"cpu\" always does)",
        if *fallback { "" } else { " (inference.fallback = false: only the first provider is tried)" }
    )]
    NoProvider { fallback: bool, tried: String },
    #[error("{0}")]
    Manifest(#[from] manifest::ManifestError),
    #[error("inference failed: {0}")]
    Run(String),
    #[error(
        "model variant {variant} refused: {why}. It does not agree with its fp32 source {fp32}: run that (or \
         another provider), or remake the variant; `lookout check --probe` repeats the check"
    )]
    VariantRefused { variant: PathBuf, fp32: PathBuf, why: String },
}
