//! `lookout bench`: performance measured, never asserted. Every figure is printed next to a
//! baseline measured in the same run, as a ratio, because these machines are shared and noisy.
//!
//! - `lookout bench detect [IMAGE...]`: per image, `lookout detect`'s pre-processing, inference
//!   and post-processing, against a bare `session.run` loop on the same input.
//! - `lookout bench pipeline [--clip FILE]`: `lookout run` on a clip as fast as it decodes,
//!   every frame offered to detection, against the bare inference rate.
//! - `lookout bench infer [--model M]... [--provider P] [--batch N] [--io-binding off|on|both]
//!   [--workers W]`: the workers' batched path (pre-processing, one run for N frames, decoding)
//!   in images per second, against a bare `session.run` loop at the same batch on the same
//!   input, and its detections against a batch-1 reference provider (cpu) in the same process.
//!   Several models (an f32 and a uint8-input variant, say), each with and without IoBinding,
//!   take turns in one run and are compared with the first.
//! - `lookout bench models --model A --model B… [--provider P]… [--ort-library L]`: models
//!   against the first (speed ratio, agreement with its detections) in one process, on one
//!   provider or on one provider per model, so that an INT8 variant is compared with fp32 where
//!   it runs (the CPU provider, OpenVINO…).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::{self, Spec};
use crate::detect::session::InputBinding;
use crate::detect::{Detection, Detector, DetectorOptions, ProviderSpec, ScaledFrame, ScaledImage};
use crate::link::LinkKind;
use crate::pipeline;
use crate::publish::Sink;
use crate::shutdown::Shutdown;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Time `iterations` bare session runs: the baseline both benchmarks divide by.
fn bare_median(det: &mut Detector, iterations: usize) -> Result<Duration, String> {
    let mut t = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let s = Instant::now();
        det.run_bare(1).map_err(|e| e.to_string())?;
        t.push(s.elapsed());
    }
    Ok(median(t))
}

pub fn bench_detect(
    model: Option<PathBuf>,
    ort_library: Option<PathBuf>,
    iterations: usize,
    images: Vec<PathBuf>,
) -> ExitCode {
    let opts = super::detect::detector_options(model, ort_library);
    let mut det = match Detector::load(&opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lookout bench: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    let images = if images.is_empty() { default_images() } else { images };
    if images.is_empty() {
        eprintln!("lookout bench: no images given and none found in media/; run scripts/setup or pass paths");
        return ExitCode::from(super::EXIT_FAILURE);
    }
    println!(
        "lookout bench detect: {} iterations per image, provider {}, model {}",
        iterations,
        det.provider(),
        opts.model.display()
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7}",
        "image", "pre ms", "infer ms", "post ms", "total ms", "bare ms", "ratio"
    );
    for path in &images {
        let img = match image::open(path) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                eprintln!("lookout bench: cannot read {}: {e}", path.display());
                return ExitCode::from(super::EXIT_FAILURE);
            }
        };
        // Warm up, then interleave the two loops so both see the same machine load.
        for _ in 0..3 {
            let _ = det.detect_image(&img);
        }
        let (mut pre, mut inf, mut post, mut total, mut bare) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..iterations {
            let s = Instant::now();
            let Ok((_, t)) = det.detect_image(&img) else {
                eprintln!("lookout bench: inference failed on {}", path.display());
                return ExitCode::from(super::EXIT_FAILURE);
            };
            total.push(s.elapsed());
            pre.push(t.pre);
            inf.push(t.infer);
            post.push(t.post);
            match bare_median(&mut det, 1) {
                Ok(b) => bare.push(b),
                Err(e) => {
                    eprintln!("lookout bench: {e}");
                    return ExitCode::from(super::EXIT_FAILURE);
                }
            }
        }
        let (total, bare) = (median(total), median(bare));
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        println!(
            "{:<20} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>6.2}x",
            name,
            ms(median(pre)),
            ms(median(inf)),
            ms(median(post)),
            ms(total),
            ms(bare),
            total.as_secs_f64() / bare.as_secs_f64().max(1e-9)
        );
    }
    println!("ratio = lookout detect total / bare session.run on the same input (1.00x = no overhead)");
    ExitCode::SUCCESS
}

fn default_images() -> Vec<PathBuf> {
    let dir = config::default_dir().join("media");
    ["dog.jpg", "person.jpg", "astronaut.png", "grace_hopper.jpg"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.exists())
        .collect()
}

pub fn bench_pipeline(config_dir: Option<PathBuf>, clip: Option<PathBuf>, fps: f64, rounds: usize) -> ExitCode {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    let clip = clip.unwrap_or_else(|| dir.join("media/bikes.mp4"));
    let spec = match bench_spec(&dir, &clip, fps) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lookout bench: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    let opts = spec.inference.detector_options();
    let bare = match Detector::load(&opts).map_err(|e| e.to_string()).and_then(|mut d| {
        bare_median(&mut d, 5)?;
        bare_median(&mut d, 30)
    }) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("lookout bench: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    // Several rounds, median reported: one 10 s clip unpaced is over in well under a second.
    let mut reports = Vec::new();
    for _ in 0..rounds.max(1) {
        let shutdown = Shutdown::new();
        match pipeline::run(&spec, pipeline::Edges { sink: Some(Sink::Discard(0)), ..pipeline::Edges::new(&shutdown) })
        {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("lookout bench: {e}");
                return ExitCode::from(super::EXIT_FAILURE);
            }
        }
    }
    reports.sort_by(|a, b| a.frames_per_second.total_cmp(&b.frames_per_second));
    let report = &reports[reports.len() / 2];
    let bare_fps = 1.0 / bare.as_secs_f64().max(1e-9);
    println!(
        "lookout bench pipeline: {} unpaced, detect.fps {fps}, {} worker(s), median of {} rounds",
        clip.display(),
        spec.inference.workers,
        reports.len()
    );
    for c in &report.cameras {
        let s = &c.summary;
        println!(
            "  decoded {} frames: skipped_by_rate {}, inferred {}, dropped {} (link_full: newer frames replaced them)",
            s.decoded,
            s.skipped_by_rate,
            s.inferred,
            s.dropped_total()
        );
    }
    println!(
        "  pipeline: {:.1} frames/s inferred (rounds: {})",
        report.frames_per_second,
        reports.iter().map(|r| format!("{:.1}", r.frames_per_second)).collect::<Vec<_>>().join(", ")
    );
    println!("  baseline: bare session.run {:.2} ms = {:.1} frames/s", ms(bare), bare_fps);
    println!("  ratio pipeline / bare inference rate: {:.2}x", report.frames_per_second / bare_fps);
    ExitCode::SUCCESS
}

/// The config dir's inference settings, with one camera: the clip, unpaced.
fn bench_spec(dir: &std::path::Path, clip: &std::path::Path, fps: f64) -> Result<Spec, String> {
    let mut spec = config::load(dir).map_err(|e| e.to_string())?;
    let mut cam = super::bench_daemon::camera(
        &spec.inference,
        "bench",
        clip,
        fps,
        false,
        false,
        LinkKind::Frames.default_spec(),
    )?;
    cam.detect.min_score = 0.3;
    spec.cameras = vec![cam];
    spec.mqtt = None;
    Ok(spec)
}

/// Which input paths `lookout bench infer --io-binding` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingChoice {
    /// The input passed to each run (the CPU path).
    Off,
    /// Bound with IoBinding, pinned on cuda/tensorrt ([`InputBinding::Always`]).
    On,
    /// Each model both ways.
    Both,
}

/// What `lookout bench infer` is asked to measure.
pub struct InferArgs {
    /// Each a variant, measured in turns in the same run; the first is the baseline of
    /// `ratio_to_first`. Empty: the default model.
    pub models: Vec<PathBuf>,
    pub io_binding: BindingChoice,
    /// Detectors running batches at once, each on its own thread (overlap of copy and compute).
    pub workers: usize,
    pub ort_library: Option<PathBuf>,
    /// Tried in order, as in the config; empty: cpu.
    pub providers: Vec<ProviderSpec>,
    pub batch: usize,
    pub iterations: usize,
    /// The provider batch-1 detections are checked against; `None`: no check.
    pub reference: Option<ProviderSpec>,
    pub json: bool,
    pub images: Vec<PathBuf>,
}

/// How far two detection lists are apart.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Agreement {
    /// Detections compared (those clearly above the threshold on either side).
    pub compared: usize,
    /// Of those, found on the other side with the same label.
    pub matched: usize,
    pub max_score_diff: f32,
    pub min_iou: f32,
}

impl Agreement {
    /// Same objects, boxes within IoU 0.9 and scores within 0.02: what the golden test holds
    /// `lookout detect` to against the Python reference. GPUs differ from the CPU by about 0.004
    /// (docs/platform-notes.md).
    pub fn holds(&self) -> bool {
        self.compared > 0 && self.matched == self.compared && self.min_iou >= 0.9 && self.max_score_diff <= 0.02
    }
}

/// Compare both ways: every detection scoring `margin` above `threshold` on one side must
/// have a same-label partner on the other. Ones near the threshold may fall either side of it.
pub fn agreement(got: &[Detection], want: &[Detection], threshold: f32, margin: f32) -> Agreement {
    let mut a = Agreement { min_iou: 1.0, ..Default::default() };
    for (xs, ys) in [(want, got), (got, want)] {
        for x in xs.iter().filter(|d| d.score >= threshold + margin) {
            a.compared += 1;
            let best = ys
                .iter()
                .filter(|y| y.label == x.label)
                .map(|y| (crate::detect::nms::iou(x.bbox, y.bbox), y.score))
                .max_by(|p, q| p.0.total_cmp(&q.0));
            if let Some((overlap, score)) = best
                && overlap > 0.5
            {
                a.matched += 1;
                a.min_iou = a.min_iou.min(overlap);
                a.max_score_diff = a.max_score_diff.max((score - x.score).abs());
            }
        }
    }
    a
}

#[derive(serde::Serialize)]
struct InferReport<'a> {
    model: String,
    input_dtype: &'static str,
    io_binding: bool,
    workers: usize,
    provider: &'a str,
    placement: &'a std::collections::BTreeMap<String, usize>,
    batch: usize,
    iterations: usize,
    images_per_second: f64,
    bare_images_per_second: f64,
    ratio: f64,
    /// images/s over the first variant's (1.0 for the first).
    ratio_to_first: f64,
    pre_ms: f64,
    infer_ms: f64,
    post_ms: f64,
    reference: Option<String>,
    agreement: Option<Agreement>,
    detections_match: Option<bool>,
    /// This variant's detections against the first variant's, same batch; `None` for the first.
    agreement_with_first: Option<Agreement>,
}

/// One model with one way of feeding it, and what it measured.
struct Variant {
    model: PathBuf,
    /// One detector per worker; the first also runs the bare loop and the checks.
    workers: Vec<Detector>,
    scaled: Vec<ScaledImage>,
    /// Wall time of each timed round, and the batches it ran (workers x batches each).
    rounds: Vec<(Duration, usize)>,
    bare: Vec<Duration>,
    timings: Vec<crate::detect::Timings>,
}

/// The batch of `batch` frames a variant runs: the images in turn, as several cameras fill it.
fn batch_frames(scaled: &[ScaledImage], batch: usize) -> Vec<ScaledFrame<'_>> {
    (0..batch).map(|i| scaled[i % scaled.len()].frame()).collect()
}

/// `batches` batched-path runs on each worker at once, each worker on its own thread (the
/// caller's for the first): while one worker's input is uploaded another's can compute.
fn run_workers(
    workers: &mut [Detector],
    scaled: &[ScaledImage],
    batch: usize,
    batches: usize,
) -> Result<Vec<crate::detect::Timings>, String> {
    let run = |det: &mut Detector| -> Result<Vec<crate::detect::Timings>, String> {
        let frames = batch_frames(scaled, batch);
        (0..batches).map(|_| det.detect_batch(&frames).map(|(_, t)| t).map_err(|e| e.to_string())).collect()
    };
    let Some((first, rest)) = workers.split_first_mut() else { return Ok(Vec::new()) };
    std::thread::scope(|s| {
        let others: Vec<_> = rest.iter_mut().map(|det| s.spawn(move || run(det))).collect();
        let mut all = run(first)?;
        for h in others {
            all.extend(h.join().map_err(|_| "a bench worker thread panicked".to_string())??);
        }
        Ok(all)
    })
}

pub fn bench_infer(args: InferArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("lookout bench infer: {msg}");
        ExitCode::from(super::EXIT_FAILURE)
    };
    let batch = args.batch.max(1);
    let workers = args.workers.max(1);
    let models = if args.models.is_empty() { vec![None] } else { args.models.iter().cloned().map(Some).collect() };
    let bindings: &[InputBinding] = match args.io_binding {
        BindingChoice::Off => &[InputBinding::Off],
        BindingChoice::On => &[InputBinding::Always],
        BindingChoice::Both => &[InputBinding::Off, InputBinding::Always],
    };
    let paths = if args.images.is_empty() { default_images() } else { args.images.clone() };
    if paths.is_empty() {
        return fail("no images given and none found in media/; run scripts/setup or pass paths".into());
    }
    let mut images = Vec::new();
    for p in &paths {
        match image::open(p) {
            Ok(i) => images.push(i.to_rgb8()),
            Err(e) => return fail(format!("cannot read {}: {e}", p.display())),
        }
    }
    let mut variants: Vec<Variant> = Vec::new();
    for model in &models {
        for &io_binding in bindings {
            let base = super::detect::detector_options(model.clone(), args.ort_library.clone());
            // The batch asked for, on whatever provider: measuring is the point, gain or not.
            let opts = DetectorOptions {
                providers: if args.providers.is_empty() { base.providers.clone() } else { args.providers.clone() },
                max_batch: batch,
                batch_on_cpu: true,
                io_binding,
                ..base
            };
            let mut dets = Vec::new();
            for _ in 0..workers {
                match Detector::load(&opts) {
                    Ok(d) => dets.push(d),
                    Err(e) => return fail(e.to_string()),
                }
            }
            if dets[0].max_batch() < batch {
                return fail(format!(
                    "{} has a fixed batch of 1; use a model with a dynamic batch (models/yolox_nano_dynbatch.onnx, placed by scripts/setup) for --batch {batch}",
                    opts.model.display()
                ));
            }
            if io_binding == InputBinding::Always && !dets[0].io_binding() {
                return fail(format!(
                    "--io-binding: the input could not be bound on {} (see the warning above)",
                    dets[0].provider()
                ));
            }
            let mut scaled = Vec::new();
            for img in &images {
                match dets[0].scale_image(img) {
                    Ok(s) => scaled.push(s),
                    Err(e) => return fail(e.to_string()),
                }
            }
            variants.push(Variant {
                model: opts.model.clone(),
                workers: dets,
                scaled,
                rounds: Vec::new(),
                bare: Vec::new(),
                timings: Vec::new(),
            });
        }
    }
    if !args.json {
        let d = &variants[0].workers[0];
        println!(
            "lookout bench infer: provider {} ({}), batch {batch}, {} iterations, {workers} worker(s), {} variant(s)",
            d.provider(),
            crate::detect::provider::placement_text(&d.selection().placement),
            args.iterations,
            variants.len()
        );
    }
    // Warm up every session (a GPU provider tunes its kernels on the first runs).
    for v in variants.iter_mut() {
        for det in v.workers.iter_mut() {
            let frames = batch_frames(&v.scaled, batch);
            for _ in 0..3 {
                if let Err(e) = det.detect_batch(&frames).and_then(|_| det.run_bare(batch)) {
                    return fail(e.to_string());
                }
            }
        }
    }
    // The variants take turns, round by round, so that all of them see the same machine. One
    // worker: a round is one batch, timed alone. Several: a round is a run of batches on every
    // worker at once, timed as a whole, three rounds per variant.
    let (rounds, per_round) = if workers == 1 { (args.iterations.max(1), 1) } else { (3, args.iterations.max(3) / 3) };
    for _ in 0..rounds {
        for v in variants.iter_mut() {
            let s = Instant::now();
            match run_workers(&mut v.workers, &v.scaled, batch, per_round) {
                Ok(t) => v.timings.extend(t),
                Err(e) => return fail(e),
            }
            v.rounds.push((s.elapsed(), workers * per_round));
            // The bare loop on the input the batched path just filled in.
            for _ in 0..per_round {
                let s = Instant::now();
                if let Err(e) = v.workers[0].run_bare(batch) {
                    return fail(e.to_string());
                }
                v.bare.push(s.elapsed());
            }
        }
    }

    // Each variant's detections: against batch-1 runs on the reference provider (same model),
    // and against the first variant's (the same network fed another way must find the same).
    let mut lasts: Vec<Vec<Vec<Detection>>> = Vec::new();
    for v in variants.iter_mut() {
        match v.workers[0].detect_batch(&batch_frames(&v.scaled, batch)) {
            Ok((d, _)) => lasts.push(d),
            Err(e) => return fail(e.to_string()),
        }
    }
    let mut failed = false;
    let first_ips = {
        let (wall, batches) = median_round(&variants[0].rounds);
        (batch * batches) as f64 / wall.as_secs_f64().max(1e-9)
    };
    for (k, v) in variants.iter().enumerate() {
        let det = &v.workers[0];
        let frames = batch_frames(&v.scaled, batch);
        let mut agreement_ref: Option<Agreement> = None;
        if let Some(r) = &args.reference {
            let ref_opts = DetectorOptions {
                providers: vec![r.clone()],
                fallback: false,
                max_batch: 1,
                io_binding: InputBinding::Off,
                ..super::detect::detector_options(Some(v.model.clone()), args.ort_library.clone())
            };
            let mut reference = match Detector::load(&ref_opts) {
                Ok(d) => d,
                Err(e) => return fail(format!("reference provider {}: {e}", r.label())),
            };
            let mut sum = Agreement { min_iou: 1.0, ..Default::default() };
            for (i, got) in lasts[k].iter().enumerate().take(v.scaled.len()) {
                let want = match reference.detect_batch(&[frames[i]]) {
                    Ok((mut d, _)) => d.pop().unwrap_or_default(),
                    Err(e) => return fail(e.to_string()),
                };
                merge(&mut sum, agreement(got, &want, reference.score_threshold(), 0.05));
            }
            agreement_ref = Some(sum);
        }
        let agreement_first = (k > 0).then(|| {
            let mut sum = Agreement { min_iou: 1.0, ..Default::default() };
            for (got, want) in lasts[k].iter().zip(&lasts[0]).take(v.scaled.len()) {
                merge(&mut sum, agreement(got, want, det.score_threshold(), 0.05));
            }
            sum
        });
        let matches = agreement_ref.map(|a| a.holds());
        failed |= matches == Some(false) || agreement_first.is_some_and(|a| !a.holds());
        let (wall, batches) = median_round(&v.rounds);
        let per_batch = wall / batches.max(1) as u32;
        let ips = (batch * batches) as f64 / wall.as_secs_f64().max(1e-9);
        let bare = median(v.bare.clone());
        let bare_ips = batch as f64 / bare.as_secs_f64().max(1e-9);
        let pick = |f: fn(&crate::detect::Timings) -> Duration| round3(ms(median(v.timings.iter().map(f).collect())));
        let report = InferReport {
            model: v.model.display().to_string(),
            input_dtype: det.input_type().as_str(),
            io_binding: det.io_binding(),
            workers,
            provider: det.provider(),
            placement: &det.selection().placement,
            batch,
            iterations: rounds * per_round,
            images_per_second: (ips * 10.0).round() / 10.0,
            bare_images_per_second: (bare_ips * 10.0).round() / 10.0,
            ratio: ((ips / bare_ips.max(1e-9)) * 1000.0).round() / 1000.0,
            ratio_to_first: ((ips / first_ips.max(1e-9)) * 1000.0).round() / 1000.0,
            pre_ms: pick(|t| t.pre),
            infer_ms: pick(|t| t.infer),
            post_ms: pick(|t| t.post),
            reference: args.reference.as_ref().map(|r| r.label()),
            agreement: agreement_ref,
            detections_match: matches,
            agreement_with_first: agreement_first,
        };
        if args.json {
            match serde_json::to_string(&report) {
                Ok(line) => println!("{line}"),
                Err(e) => return fail(e.to_string()),
            }
            continue;
        }
        println!(
            "  {} ({} input{}):",
            report.model,
            report.input_dtype,
            if report.io_binding { ", IoBinding" } else { "" }
        );
        println!(
            "    batched path: {ips:.1} images/s ({:.2} ms per batch of {batch}{}: pre {:.2}, infer {:.2}, post {:.2}); {:.2}x the first variant",
            ms(per_batch),
            if workers > 1 { format!(" per {workers} workers") } else { String::new() },
            report.pre_ms,
            report.infer_ms,
            report.post_ms,
            report.ratio_to_first
        );
        println!(
            "    baseline: bare session.run at batch {batch} on the same input: {bare_ips:.1} images/s; ratio batched path / bare: {:.2}x",
            report.ratio
        );
        for (what, a) in [
            (report.reference.clone().map(|r| format!("{r} at batch 1")), agreement_ref),
            (Some("the first variant".to_string()), agreement_first),
        ] {
            if let (Some(what), Some(a)) = (what, a) {
                println!(
                    "    detections vs {what}: {} of {} matched, min IoU {:.3}, max score diff {:.4}: {}",
                    a.matched,
                    a.compared,
                    a.min_iou,
                    a.max_score_diff,
                    if a.holds() { "MATCH" } else { "MISMATCH" }
                );
            }
        }
    }
    if failed { ExitCode::from(super::EXIT_FAILURE) } else { ExitCode::SUCCESS }
}

/// The round of median wall time per batch, as (wall, batches).
fn median_round(rounds: &[(Duration, usize)]) -> (Duration, usize) {
    let mut r: Vec<(Duration, usize)> = rounds.to_vec();
    r.sort_by_key(|(d, n)| *d / (*n).max(1) as u32);
    r.get(r.len() / 2).copied().unwrap_or((Duration::ZERO, 1))
}

fn merge(sum: &mut Agreement, a: Agreement) {
    sum.compared += a.compared;
    sum.matched += a.matched;
    sum.max_score_diff = sum.max_score_diff.max(a.max_score_diff);
    sum.min_iou = sum.min_iou.min(a.min_iou);
}

/// What `lookout bench models` compares.
pub struct ModelsArgs {
    /// The first is the baseline.
    pub models: Vec<PathBuf>,
    pub ort_library: Option<PathBuf>,
    /// Without fallback: none (cpu), one for every model, or one per model in order.
    pub providers: Vec<ProviderSpec>,
    pub clip: Option<PathBuf>,
    /// Every Nth frame of the clip is scored.
    pub frame_step: usize,
    /// Timed runs per input and model.
    pub runs: usize,
    pub images: Vec<PathBuf>,
}

/// One model's results on every input, in input order.
struct ModelRun {
    name: String,
    precision: &'static str,
    infer: Vec<Duration>,
    detections: Vec<Vec<crate::detect::Detection>>,
}

/// `lookout bench models --model A --model B…`: mean inference time of each against the first
/// (the baseline), and how well each agrees with the baseline's detections, on the media
/// images and on frames of a clip, all in one run with the models interleaved per input so
/// they see the same machine load.
pub fn bench_models(args: ModelsArgs) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("lookout bench models: {msg}");
        ExitCode::from(super::EXIT_FAILURE)
    };
    if args.models.len() < 2 {
        return fail("give at least two models (--model BASELINE --model OTHER); the first is the baseline".into());
    }
    let providers = match model_providers(&args.providers, args.models.len()) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let mut detectors = Vec::new();
    for (m, p) in args.models.iter().zip(&providers) {
        let mut opts = super::detect::detector_options(Some(m.clone()), args.ort_library.clone());
        // Each model on the provider asked for, or the run fails: a silent fallback would
        // compare two providers where the table says one.
        opts.providers = vec![p.clone()];
        opts.fallback = false;
        match Detector::load(&opts) {
            Ok(d) => detectors.push(d),
            Err(e) => return fail(format!("{}: {e}", m.display())),
        }
    }
    let images = if args.images.is_empty() { default_images() } else { args.images.clone() };
    let mut inputs: Vec<(bool, image::RgbImage)> = Vec::new();
    for p in &images {
        match image::open(p) {
            Ok(i) => inputs.push((false, i.to_rgb8())),
            Err(e) => return fail(format!("cannot read {}: {e}", p.display())),
        }
    }
    let clip = args.clip.clone().unwrap_or_else(|| config::default_dir().join("media/bikes.mp4"));
    let frames = match clip_frames(&clip, args.frame_step.max(1)) {
        Ok(f) => f,
        Err(e) => return fail(format!("{}: {e}", clip.display())),
    };
    let n_frames = frames.len();
    inputs.extend(frames.into_iter().map(|f| (true, f)));

    let mut runs: Vec<ModelRun> = detectors
        .iter()
        .zip(&providers)
        .map(|(d, p)| ModelRun {
            // One provider per model: the same model may appear twice, so the row names both.
            name: if args.providers.len() > 1 {
                format!("{}@{}", d.model().name, p.label())
            } else {
                d.model().name.clone()
            },
            precision: d.model().precision.as_str(),
            infer: Vec::new(),
            detections: Vec::new(),
        })
        .collect();
    // Warm up each session (first runs allocate) before anything is timed.
    if let Some((_, first)) = inputs.first() {
        for d in detectors.iter_mut() {
            for _ in 0..3 {
                let _ = d.detect_image(first);
            }
        }
    }
    for (_, img) in &inputs {
        for round in 0..args.runs.max(1) {
            for (d, r) in detectors.iter_mut().zip(runs.iter_mut()) {
                match d.detect_image(img) {
                    Ok((dets, t)) => {
                        r.infer.push(t.infer);
                        if round == 0 {
                            r.detections.push(dets);
                        }
                    }
                    Err(e) => return fail(e.to_string()),
                }
            }
        }
    }

    let mut labels: Vec<String> = providers.iter().map(|p| p.label()).collect();
    labels.dedup();
    println!(
        "lookout bench models: {} images + {} frames of {} (every {}), {} runs each, 1 ORT thread, provider {}",
        images.len(),
        n_frames,
        clip.display(),
        args.frame_step.max(1),
        args.runs.max(1),
        labels.join(", ")
    );
    let mean = |v: &[Duration]| v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len().max(1) as f64;
    let base_ms = mean(&runs[0].infer) * 1e3;
    let w = runs.iter().map(|r| r.name.len() + " (base)".len()).max().unwrap_or(0).max(24);
    println!(
        "{:<w$} {:<9} {:>15} {:>14}  nodes per ORT provider",
        "model", "precision", "infer ms (mean)", "speed vs base"
    );
    for (i, (r, d)) in runs.iter().zip(&detectors).enumerate() {
        let ms = mean(&r.infer) * 1e3;
        let tag = if i == 0 { " (base)" } else { "" };
        let placement = crate::detect::provider::placement_text(&d.selection().placement);
        println!(
            "{:<w$} {:<9} {:>15.2} {:>13.2}x  {placement}",
            format!("{}{tag}", r.name),
            r.precision,
            ms,
            base_ms / ms.max(1e-9)
        );
    }
    println!(
        "agreement with {}'s detections (each model at its manifest's score_threshold; a match is the same label at IoU >= 0.5):",
        runs[0].name
    );
    println!(
        "{:<w$} {:<7} {:>10} {:>8} {:>14} {:>7}",
        "model", "inputs", "base dets", "recall", "mean |dscore|", "extra"
    );
    for r in &runs[1..] {
        for (label, from_clip) in [("images", false), ("clip", true)] {
            let (mut total, mut matched, mut drift, mut extra) = (0usize, 0usize, 0.0f64, 0usize);
            for (k, (is_clip, _)) in inputs.iter().enumerate() {
                if *is_clip != from_clip {
                    continue;
                }
                let a = model_agreement(&runs[0].detections[k], &r.detections[k]);
                total += a.base;
                matched += a.matched;
                drift += a.drift_sum;
                extra += a.extra;
            }
            println!(
                "{:<w$} {:<7} {:>10} {:>8.3} {:>14.4} {:>7}",
                r.name,
                label,
                total,
                if total == 0 { 1.0 } else { matched as f64 / total as f64 },
                if matched == 0 { 0.0 } else { drift / matched as f64 },
                extra
            );
        }
    }
    println!(
        "speed = base mean infer ms / model mean infer ms; recall = base detections matched / base detections; extra = model detections matching none"
    );
    ExitCode::SUCCESS
}

/// The provider of each of `models` models: cpu for all, the one given for all, or one each.
pub fn model_providers(given: &[ProviderSpec], models: usize) -> Result<Vec<ProviderSpec>, String> {
    match given.len() {
        0 => Ok(vec![ProviderSpec::cpu(); models]),
        1 => Ok(vec![given[0].clone(); models]),
        n if n == models => Ok(given.to_vec()),
        n => Err(format!(
            "{n} --provider flags for {models} models: give one for every model, or one per --model in the same order"
        )),
    }
}

/// How one model's detections on an image agree with the baseline's.
#[derive(Debug, Default, PartialEq)]
pub struct ModelAgreement {
    pub base: usize,
    pub matched: usize,
    /// Sum of |score difference| over matched pairs.
    pub drift_sum: f64,
    /// The other model's detections that matched nothing.
    pub extra: usize,
}

/// Greedy matching, baseline detections by descending score, each to the unused same-label
/// detection of the other model with the highest IoU, if that IoU is at least 0.5. Pure.
pub fn model_agreement(base: &[crate::detect::Detection], other: &[crate::detect::Detection]) -> ModelAgreement {
    let mut order: Vec<&crate::detect::Detection> = base.iter().collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut used = vec![false; other.len()];
    let mut a = ModelAgreement { base: base.len(), ..ModelAgreement::default() };
    for b in order {
        let best = other
            .iter()
            .enumerate()
            .filter(|(i, o)| !used[*i] && o.label == b.label)
            .map(|(i, o)| (i, crate::detect::nms::iou(b.bbox, o.bbox), o.score))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        if let Some((i, iou, s)) = best
            && iou >= 0.5
        {
            used[i] = true;
            a.matched += 1;
            a.drift_sum += (b.score - s).abs() as f64;
        }
    }
    a.extra = used.iter().filter(|u| !**u).count();
    a
}

/// Every `step`th frame of a clip as RGB, decoded by GStreamer.
fn clip_frames(path: &std::path::Path, step: usize) -> Result<Vec<image::RgbImage>, String> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().map_err(|e| e.to_string())?;
    if !path.is_file() {
        return Err("no such file; run scripts/setup or pass --clip".into());
    }
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
    )
    .map_err(|e| e.to_string())?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline".to_string())?;
    let src = pipeline.by_name("src").ok_or("no filesrc")?;
    src.set_property("location", path.to_string_lossy().to_string());
    let sink =
        pipeline.by_name("sink").and_then(|s| s.downcast::<gstreamer_app::AppSink>().ok()).ok_or("no appsink")?;
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let mut frames = Vec::new();
    let mut index = 0usize;
    // pull_sample returns an error at end of stream (or on a pipeline error, reported below).
    while let Ok(sample) = sink.pull_sample() {
        let keep = index.is_multiple_of(step);
        index += 1;
        if !keep {
            continue;
        }
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else { continue };
        let info = gstreamer_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
        let map = buffer.map_readable().map_err(|e| e.to_string())?;
        let (w, h, stride) = (info.width() as usize, info.height() as usize, info.stride()[0] as usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            rgb.extend_from_slice(map.get(row * stride..row * stride + w * 3).ok_or("short frame")?);
        }
        frames.push(image::RgbImage::from_raw(w as u32, h as u32, rgb).ok_or("bad frame size")?);
    }
    let error = pipeline.bus().and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(msg) = error
        && let gst::MessageView::Error(e) = msg.view()
    {
        return Err(format!("cannot decode: {}", e.error()));
    }
    if frames.is_empty() {
        return Err("no video frames decoded".into());
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &'static str, score: f32, x: f32) -> Detection {
        Detection { class: 0, label, score, bbox: [x, 10.0, x + 50.0, 90.0] }
    }

    #[test]
    fn agreement_needs_every_clear_detection_matched_both_ways() {
        let want = vec![det("dog", 0.9, 0.0), det("car", 0.31, 200.0)];
        let got = vec![det("dog", 0.895, 1.0)];
        let a = agreement(&got, &want, 0.3, 0.05);
        // The car is near the threshold: not compared. The dog is, both ways.
        assert_eq!((a.compared, a.matched), (2, 2));
        assert!(a.holds(), "{a:?}");
        assert!(a.max_score_diff > 0.004 && a.max_score_diff < 0.006);

        let missing = agreement(&[], &want, 0.3, 0.05);
        assert!(!missing.holds());
        let extra = agreement(&[det("dog", 0.9, 0.0), det("cat", 0.8, 300.0)], &want[..1], 0.3, 0.05);
        assert_eq!((extra.compared, extra.matched), (3, 2));
        assert!(!extra.holds());
        assert!(!agreement(&[], &[], 0.3, 0.05).holds(), "nothing compared proves nothing");
    }

    #[test]
    fn model_providers_one_for_all_or_one_each() {
        let ov = crate::detect::provider::parse_flag("openvino:CPU").unwrap();
        let labels = |v: Vec<ProviderSpec>| v.iter().map(|p| p.label()).collect::<Vec<_>>();
        assert_eq!(labels(model_providers(&[], 2).unwrap()), ["cpu", "cpu"]);
        assert_eq!(labels(model_providers(std::slice::from_ref(&ov), 3).unwrap()), ["openvino:CPU"; 3]);
        assert_eq!(
            labels(model_providers(&[ProviderSpec::cpu(), ov.clone(), ov.clone()], 3).unwrap()),
            ["cpu", "openvino:CPU", "openvino:CPU"]
        );
        let e = model_providers(&[ProviderSpec::cpu(), ov], 3).unwrap_err();
        assert!(e.contains("2 --provider flags for 3 models"), "{e}");
    }

    fn small(label: &'static str, score: f32, x: f32) -> Detection {
        Detection { class: 0, label, score, bbox: [x, 0.0, x + 10.0, 10.0] }
    }

    #[test]
    fn model_agreement_matches_by_label_and_iou_once_each() {
        let base = [small("car", 0.9, 0.0), small("car", 0.8, 100.0), small("person", 0.7, 200.0)];
        // The first car found (shifted by 1 px: IoU 0.82), the second missed, the person found
        // as a dog only (wrong label), and one extra box.
        let other = [small("car", 0.85, 1.0), small("dog", 0.7, 200.0), small("car", 0.5, 300.0)];
        let a = model_agreement(&base, &other);
        assert_eq!((a.base, a.matched, a.extra), (3, 1, 2));
        assert!((a.drift_sum - 0.05).abs() < 1e-6);
        // Two base boxes over one other box: only one can match it.
        let a = model_agreement(&[small("car", 0.9, 0.0), small("car", 0.8, 0.0)], &[small("car", 0.9, 0.0)]);
        assert_eq!((a.matched, a.extra), (1, 0));
    }
}
