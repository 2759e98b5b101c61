//! `lookout bench`: performance measured, never asserted. Every figure is printed next to a
//! baseline measured in the same run, as a ratio, because these machines are shared and noisy.
//! `cli::bench` only turns the flags into the arguments here (models resolved into
//! [`DetectorOptions`]); what runs, and what it prints, is this module's.
//!
//! - [`detect`]: per image, `lookout detect`'s pre-processing, inference and post-processing,
//!   against a bare `session.run` loop on the same input.
//! - [`pipeline`]: `lookout run` on a clip as fast as it decodes, every frame offered to
//!   detection, against the bare inference rate.
//! - [`infer`]: the workers' batched path (pre-processing, one run for N frames, decoding) in
//!   images per second, against a bare `session.run` loop at the same batch on the same input,
//!   and its detections against a batch-1 reference provider (cpu) in the same process.
//!   Several models (an f32 and a uint8-input variant, say), each with and without IoBinding,
//!   take turns in one run and are compared with the first.
//! - [`models`]: models against the first (speed ratio, agreement with its detections) in one
//!   process, on one provider or on one provider per model, so that an INT8 variant is
//!   compared with fp32 where it runs (the CPU provider, OpenVINO…).
//! - [`daemon`]: the whole daemon in-process on real clips, sampled from /proc ([`proc`]):
//!   `efficiency`, `overload`, `density`, `motion`.
//!
//! Detections are compared by [`crate::detect::compare`], as the tests compare them;
//! [`agreement`] is how `bench infer` and `bench models` report the comparison.

pub mod agreement;
pub mod cores;
pub mod daemon;
pub mod detect;
pub mod infer;
pub mod models;
pub mod peer;
pub mod pipeline;
pub mod proc;
pub mod viewer;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{self, ConfigErrors};
use crate::detect::{DetectError, Detector, DetectorOptions};
use crate::pipeline::PipelineError;

pub use cores::cores;
pub use daemon::{density, efficiency, motion, overload};
pub use detect::detect;
pub use infer::{BindingChoice, InferArgs, infer};
pub use models::{ModelsArgs, models};
pub use peer::{PeerArgs, peer};
pub use pipeline::pipeline;
pub use viewer::viewer;

/// Why a benchmark could not run (or, for `bench infer`, found other detections than its
/// reference). Each says what to do where there is something to do.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("no images given and none found in media/; run scripts/setup or pass paths")]
    NoImages,
    #[error("cannot read {path}: {source}")]
    Image { path: PathBuf, source: image::ImageError },
    #[error("inference failed on {path}: {source}")]
    Inference { path: PathBuf, source: DetectError },
    #[error(
        "{model} has a fixed batch of 1; use a model with a dynamic batch (models/yolox_nano_dynbatch.onnx, \
         placed by scripts/setup) for --batch {batch}"
    )]
    FixedBatch { model: PathBuf, batch: usize },
    #[error("--io-binding: the input could not be bound on {provider} (see the warning above)")]
    NotBound { provider: &'static str },
    #[error("reference provider {provider}: {source}")]
    Reference { provider: String, source: DetectError },
    #[error("{variants} variant(s) found other detections than their reference: see MISMATCH above")]
    Mismatch { variants: usize },
    #[error("give at least two models (--model BASELINE --model OTHER); the first is the baseline")]
    TooFewModels,
    #[error(
        "{given} --provider flags for {models} models: give one for every model, or one per --model in the \
         same order"
    )]
    ProviderCount { given: usize, models: usize },
    /// A model that would not load on the provider it was given, named by its path.
    #[error("{model}: {source}")]
    Model { model: PathBuf, source: DetectError },
    /// A clip that could not be used: `reason` says why.
    #[error("{path}: {reason}")]
    Clip { path: PathBuf, reason: String },
    #[error("gst-launch-1.0: {0}; run scripts/setup")]
    GstLaunch(std::io::Error),
    #[error("could not make {path}: gst-launch-1.0 {pipeline} failed (x264enc is in gstreamer1.0-plugins-ugly)")]
    MakeClip { path: PathBuf, pipeline: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    /// One of the benchmark's own threads, or the daemon it runs, went wrong: `0` says which.
    #[error("{0}")]
    Thread(&'static str),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// The p-th percentile (0..100) of `v`, by nearest rank; NaN when empty.
fn percentile(v: &mut [f32], p: f64) -> f32 {
    if v.is_empty() {
        return f32::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Time `iterations` bare session runs: the baseline `bench detect` and `bench pipeline`
/// divide by.
fn bare_median(det: &mut Detector, iterations: usize) -> Result<Duration, DetectError> {
    let mut t = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let s = Instant::now();
        det.run_bare(1)?;
        t.push(s.elapsed());
    }
    Ok(median(t))
}

/// The images given, else the four sample images of the config dir's media/ that exist.
fn given_or_default(images: &[PathBuf]) -> Vec<PathBuf> {
    if !images.is_empty() {
        return images.to_vec();
    }
    let dir = config::default_dir().join("media");
    ["dog.jpg", "person.jpg", "astronaut.png", "grace_hopper.jpg"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
}

/// [`given_or_default`], where a benchmark needs at least one image.
fn some_images(images: &[PathBuf]) -> Result<Vec<PathBuf>, BenchError> {
    let paths = given_or_default(images);
    if paths.is_empty() { Err(BenchError::NoImages) } else { Ok(paths) }
}

fn read_image(path: &Path) -> Result<image::RgbImage, BenchError> {
    image::open(path).map(|i| i.to_rgb8()).map_err(|source| BenchError::Image { path: path.to_path_buf(), source })
}

/// The detector options of a model in a spec the config loaded (paths already resolved), with
/// the defaults of `lookout detect`: the bare loops the daemon benchmarks compare with.
fn bare_options(spec: &config::Spec) -> DetectorOptions {
    DetectorOptions::new(spec.inference.model.clone(), spec.inference.ort_library.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_and_median_pick_the_nearest_rank() {
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0, 4.0], 50.0), 3.0);
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0, 4.0], 100.0), 4.0);
        assert!(percentile(&mut [], 99.0).is_nan());
        let d = Duration::from_millis;
        assert_eq!(median(vec![d(3), d(1), d(2)]), d(2));
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }
}
