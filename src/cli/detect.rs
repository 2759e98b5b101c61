//! `lookout detect [--model M] [--annotate OUT.jpg] IMAGE...`: one-shot detection, printing
//! one JSON object per image (a line each).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::annotate;
use crate::config::{self, spec};
use crate::detect::{Detector, DetectorOptions, ProviderSpec, manifest};

#[derive(Serialize)]
struct ImageOut<'a> {
    image: String,
    /// The model's name (its manifest's file stem) and family, so outputs of two models can't be confused.
    model: &'a str,
    family: &'a str,
    width: u32,
    height: u32,
    provider: &'a str,
    /// Nodes per ORT execution provider, as ORT placed them.
    placement: &'a std::collections::BTreeMap<String, usize>,
    /// Providers given before the active one, and why each did not build.
    provider_skipped: Vec<Skipped<'a>>,
    /// How a variant compared with its fp32 source at load (absent for a model that is none).
    #[serde(skip_serializing_if = "Option::is_none")]
    variant_check: Option<&'a crate::stats::VariantCheck>,
    timing_ms: Timing,
    detections: Vec<crate::publish::payload::DetectionOut>,
}

#[derive(Serialize)]
struct Skipped<'a> {
    provider: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
struct Timing {
    pre: f64,
    infer: f64,
    post: f64,
}

pub struct DetectArgs {
    pub model: Option<PathBuf>,
    pub ort_library: Option<PathBuf>,
    /// `None`: the model manifest's `score_threshold`.
    pub score_threshold: Option<f32>,
    /// In order; empty: cpu.
    pub providers: Vec<ProviderSpec>,
    pub fallback: bool,
    pub annotate: Option<PathBuf>,
    pub images: Vec<PathBuf>,
}

/// The detector options `detect` and `bench` use: flags, else the defaults of the config dir.
/// `--model` is a manifest (`.toml`), a plain YOLOX `.onnx`, or a bare name looked up as
/// `models/<name>.toml` (in the current directory, else the config dir).
pub fn detector_options(model: Option<PathBuf>, ort_library: Option<PathBuf>) -> DetectorOptions {
    let dir = config::default_dir();
    let model = match model {
        Some(m) if m.exists() => m,
        Some(m) => {
            let here = manifest::resolve_model(Path::new("."), &m.to_string_lossy());
            if here.exists() { here } else { manifest::resolve_model(&dir, &m.to_string_lossy()) }
        }
        None => dir.join(spec::DEFAULT_MODEL),
    };
    let lib = ort_library.map(|l| super::resolve_in(&dir, &l)).unwrap_or_else(|| dir.join(spec::DEFAULT_ORT_LIBRARY));
    DetectorOptions::new(model, lib)
}

pub fn detect(args: DetectArgs) -> ExitCode {
    let mut opts = detector_options(args.model, args.ort_library);
    opts.score_threshold = args.score_threshold;
    if let Some(s) = args.score_threshold
        && !(0.0..=1.0).contains(&s)
    {
        eprintln!("lookout detect: --score-threshold {s} must be between 0 and 1");
        return ExitCode::from(super::EXIT_FAILURE);
    }
    if !args.providers.is_empty() {
        opts.providers = args.providers;
    }
    opts.fallback = args.fallback;
    opts.variant_fallback = args.fallback;
    let mut detector = match Detector::load(&opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lookout detect: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    let mut failed = false;
    let many = args.images.len() > 1;
    for path in &args.images {
        let img = match image::open(path) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                eprintln!("lookout detect: cannot read image {}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let (dets, t) = match detector.detect_image(&img) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("lookout detect: {}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e5).round() / 100.0;
        let out = ImageOut {
            image: path.display().to_string(),
            model: &detector.model().name,
            family: detector.model().family.name(),
            width: img.width(),
            height: img.height(),
            provider: detector.provider(),
            placement: &detector.selection().placement,
            provider_skipped: detector
                .selection()
                .skipped
                .iter()
                .map(|(p, r)| Skipped { provider: p, reason: r })
                .collect(),
            variant_check: detector.variant_check(),
            timing_ms: Timing { pre: ms(t.pre), infer: ms(t.infer), post: ms(t.post) },
            detections: dets.iter().map(crate::publish::payload::DetectionOut::from).collect(),
        };
        match serde_json::to_string(&out) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("lookout detect: {e}");
                failed = true;
            }
        }
        if let Some(target) = &args.annotate {
            let target = if many { per_image_path(target, path) } else { target.clone() };
            let mut canvas = img;
            annotate::draw_detections(&mut canvas, &dets);
            if let Err(e) = canvas.save_with_format(&target, image::ImageFormat::Jpeg) {
                eprintln!("lookout detect: cannot write {}: {e}", target.display());
                failed = true;
            }
        }
    }
    if failed { ExitCode::from(super::EXIT_FAILURE) } else { ExitCode::SUCCESS }
}

/// `out.jpg` + `dog.jpg` → `out-dog.jpg`, so several images never overwrite one another.
fn per_image_path(target: &Path, image: &Path) -> PathBuf {
    let stem = target.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "annotated".into());
    let img = image.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    target.with_file_name(format!("{stem}-{img}.jpg"))
}
