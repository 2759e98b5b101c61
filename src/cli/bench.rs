//! `lookout bench <sub>`: the flags turned into [`crate::bench`]'s arguments (`--model` and
//! `--ort-library` resolved as `lookout detect` resolves them), and its outcome into the exit
//! status. What each benchmark measures and prints is in `crate::bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::detect::detector_options;
use crate::bench::{self, BenchError};
use crate::detect::ProviderSpec;

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

/// `lookout bench infer`'s flags.
pub struct InferArgs {
    /// Empty: the default model.
    pub models: Vec<PathBuf>,
    pub io_binding: BindingChoice,
    pub workers: usize,
    pub ort_library: Option<PathBuf>,
    pub providers: Vec<ProviderSpec>,
    pub batch: usize,
    pub iterations: usize,
    pub reference: Option<ProviderSpec>,
    pub json: bool,
    pub images: Vec<PathBuf>,
}

pub fn bench_infer(args: InferArgs) -> ExitCode {
    let models = if args.models.is_empty() { vec![None] } else { args.models.into_iter().map(Some).collect() };
    let models = models.into_iter().map(|m| detector_options(m, args.ort_library.clone())).collect();
    let outcome = bench::infer(bench::InferArgs {
        models,
        io_binding: args.io_binding,
        workers: args.workers,
        providers: args.providers,
        batch: args.batch,
        iterations: args.iterations,
        reference: args.reference,
        json: args.json,
        images: args.images,
    });
    exit("lookout bench infer", outcome)
}

/// `lookout bench models`' flags.
pub struct ModelsArgs {
    pub models: Vec<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub providers: Vec<ProviderSpec>,
    pub clip: Option<PathBuf>,
    pub frame_step: usize,
    pub runs: usize,
    pub images: Vec<PathBuf>,
}

pub fn bench_models(args: ModelsArgs) -> ExitCode {
    let models = args.models.into_iter().map(|m| detector_options(Some(m), args.ort_library.clone())).collect();
    let outcome = bench::models(bench::ModelsArgs {
        models,
        providers: args.providers,
        clip: args.clip,
        frame_step: args.frame_step,
        runs: args.runs,
        images: args.images,
    });
    exit("lookout bench models", outcome)
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

pub fn viewer(config_dir: Option<PathBuf>, seconds: f64) -> ExitCode {
    exit("lookout bench", bench::viewer(config_dir, seconds))
}
