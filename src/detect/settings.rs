//! The detect stage's settings (`[inference]`, and each camera's `[detect]`), validated, with
//! their defaults. `config` reads and checks the files and builds these.

use std::path::PathBuf;
use std::time::Duration;

use crate::detect::labels::LabelTable;
use crate::detect::session::InputBinding;
use crate::detect::{DetectorOptions, ProviderSpec};

pub const DEFAULT_MODEL: &str = "models/yolox_nano.onnx";
pub const DEFAULT_ORT_LIBRARY: &str = ".lookout/ort/libonnxruntime.so.1.31.1";
pub const DEFAULT_WORKERS: usize = 1;
/// Workers one camera's frames are spread over (`detect.workers`).
pub const DEFAULT_DETECT_WORKERS: usize = 1;
pub const DEFAULT_INTRA_THREADS: usize = 1;
pub const DEFAULT_DETECT_FPS: f64 = 5.0;
pub const DEFAULT_MIN_SCORE: f32 = 0.5;
pub const DEFAULT_FALLBACK: bool = true;
pub const DEFAULT_MAX_BATCH: usize = 8;
pub const DEFAULT_MAX_BATCH_WAIT_MS: u64 = 5;
/// Past this a batch only adds latency: the H200 gains under 10 % from 64 to 128 (docs/platform-notes.md).
pub const MAX_BATCH_LIMIT: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct InferenceSpec {
    /// The model manifest (`.toml`) or plain YOLOX `.onnx` that `inference.model` names.
    pub model: PathBuf,
    /// The model's class names (COCO's 80 unless its manifest lists others); camera label
    /// settings are checked against these.
    pub labels: LabelTable,
    pub ort_library: PathBuf,
    pub providers: Vec<ProviderSpec>,
    pub fallback: bool,
    pub workers: usize,
    pub intra_threads: usize,
    pub max_batch: usize,
    pub max_batch_wait: Duration,
    pub batch_on_cpu: bool,
    /// IoBinding from pinned host memory on cuda/tensorrt (never used on other providers).
    pub io_binding: bool,
}

impl InferenceSpec {
    /// What each worker's detector is built from.
    pub fn detector_options(&self) -> DetectorOptions {
        DetectorOptions {
            intra_threads: self.intra_threads,
            providers: self.providers.clone(),
            fallback: self.fallback,
            variant_fallback: self.fallback,
            max_batch: self.max_batch,
            batch_on_cpu: self.batch_on_cpu,
            io_binding: if self.io_binding { InputBinding::Gpu } else { InputBinding::Off },
            ..DetectorOptions::new(self.model.clone(), self.ort_library.clone())
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectSpec {
    /// The model manifest (or plain YOLOX `.onnx`) this camera's frames go through: its own
    /// `detect.model`, else `inference.model`. Cameras on the same model share its workers.
    pub model: PathBuf,
    pub fps: f64,
    /// Class indices to report; `None` means all.
    pub labels: Option<Vec<usize>>,
    pub min_score: f32,
    /// Workers of the model's pool that take this camera's frames in turn.
    pub workers: usize,
}
