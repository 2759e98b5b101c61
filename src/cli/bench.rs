//! `lookout bench <sub>`: the flags turned into [`crate::bench`]'s arguments (`--model` and
//! `--ort-library` resolved as `lookout detect` resolves them), and its outcome into the exit
//! status. What each benchmark measures and prints is in `crate::bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::detect::detector_options;
use crate::bench::{self, BenchError};
use crate::detect::DetectorOptions;

pub use crate::bench::BindingChoice;

/// The exit status of a benchmark, its error (if any) on stderr after `who`.
fn exit(who: &str, outcome: Result<(), BenchError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{who}: {e}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

pub fn bench_detect(
    model: Option<PathBuf>,
    ort_library: Option<PathBuf>,
    iterations: usize,
    images: Vec<PathBuf>,
) -> ExitCode {
    exit("lookout bench", bench::detect(&detector_options(model, ort_library), iterations, &images))
}

pub fn bench_pipeline(config_dir: Option<PathBuf>, clip: Option<PathBuf>, fps: f64, rounds: usize) -> ExitCode {
    exit("lookout bench", bench::pipeline(config_dir, clip, fps, rounds))
}

/// Each `--model` (`None`: the default) with `--ort-library`, resolved as `lookout detect`
/// resolves them.
pub fn model_options(models: Vec<Option<PathBuf>>, ort_library: Option<PathBuf>) -> Vec<DetectorOptions> {
    models.into_iter().map(|m| detector_options(m, ort_library.clone())).collect()
}

pub fn bench_infer(args: bench::InferArgs) -> ExitCode {
    exit("lookout bench infer", bench::infer(args))
}

pub fn bench_models(args: bench::ModelsArgs) -> ExitCode {
    exit("lookout bench models", bench::models(args))
}

pub fn efficiency(config_dir: Option<PathBuf>, streams: usize, workers: usize, seconds: f64) -> ExitCode {
    exit("lookout bench", bench::efficiency(config_dir, streams, workers, seconds))
}

pub fn overload(config_dir: Option<PathBuf>, seconds: f64, factor: f64) -> ExitCode {
    exit("lookout bench", bench::overload(config_dir, seconds, factor))
}

pub fn density(config_dir: Option<PathBuf>, max_streams: usize, seconds: f64, workers: usize) -> ExitCode {
    exit("lookout bench", bench::density(config_dir, max_streams, seconds, workers))
}

pub fn motion(config_dir: Option<PathBuf>, seconds: f64) -> ExitCode {
    exit("lookout bench", bench::motion(config_dir, seconds))
}

pub fn cores(config_dir: Option<PathBuf>, seconds: f64) -> ExitCode {
    exit("lookout bench", bench::cores(config_dir, seconds))
}

pub fn peer(args: bench::PeerArgs) -> ExitCode {
    exit("lookout bench", bench::peer(args))
}

pub fn viewer(config_dir: Option<PathBuf>, seconds: f64) -> ExitCode {
    exit("lookout bench", bench::viewer(config_dir, seconds))
}
