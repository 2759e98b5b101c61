//! `lookout bench infer [--model M]... [--provider P] [--batch N] [--io-binding off|on|both]
//! [--workers W]`: the workers' batched path (pre-processing, one run for N frames, decoding)
//! in images per second, against a bare `session.run` loop at the same batch on the same
//! input, and its detections against a batch-1 reference provider (cpu) in the same process.
//! Several models (an f32 and a uint8-input variant, say), each with and without IoBinding,
//! take turns in one run and are compared with the first.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::agreement::Agreement;
use super::{BenchError, median, ms, read_image, round3, some_images};
use crate::detect::session::InputBinding;
use crate::detect::{Detection, Detector, DetectorOptions, ProviderSpec, ScaledFrame, ScaledImage, Timings};

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
    /// `ratio_to_first`. Each model's options as `lookout detect` would load it; the
    /// benchmark sets the providers, batch and input binding.
    pub models: Vec<DetectorOptions>,
    pub io_binding: BindingChoice,
    /// Detectors running batches at once, each on its own thread (overlap of copy and compute).
    pub workers: usize,
    /// Tried in order, as in the config; empty: each model's (cpu).
    pub providers: Vec<ProviderSpec>,
    pub batch: usize,
    pub iterations: usize,
    /// The provider batch-1 detections are checked against; `None`: no check.
    pub reference: Option<ProviderSpec>,
    pub json: bool,
    pub images: Vec<PathBuf>,
}

#[derive(serde::Serialize)]
struct InferReport<'a> {
    model: String,
    input_dtype: &'static str,
    io_binding: bool,
    workers: usize,
    provider: &'a str,
    placement: &'a BTreeMap<String, usize>,
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
    /// The model's options as given, before the benchmark's batch and binding: the reference
    /// detector is built from them.
    base: DetectorOptions,
    /// One detector per worker; the first also runs the bare loop and the checks.
    workers: Vec<Detector>,
    scaled: Vec<ScaledImage>,
    /// Wall time of each timed round, and the batches it ran (workers x batches each).
    rounds: Vec<(Duration, usize)>,
    bare: Vec<Duration>,
    timings: Vec<Timings>,
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
) -> Result<Vec<Timings>, BenchError> {
    let run = |det: &mut Detector| -> Result<Vec<Timings>, BenchError> {
        let frames = batch_frames(scaled, batch);
        (0..batches).map(|_| det.detect_batch(&frames).map(|(_, t)| t).map_err(BenchError::from)).collect()
    };
    let Some((first, rest)) = workers.split_first_mut() else { return Ok(Vec::new()) };
    std::thread::scope(|s| {
        let others: Vec<_> = rest.iter_mut().map(|det| s.spawn(move || run(det))).collect();
        let mut all = run(first)?;
        for h in others {
            all.extend(h.join().map_err(|_| BenchError::Thread("a bench worker thread panicked"))??);
        }
        Ok(all)
    })
}

/// Load a variant: `workers` detectors of one model fed one way, and the images scaled to it.
fn variant(
    base: &DetectorOptions,
    args: &InferArgs,
    io_binding: InputBinding,
    images: &[image::RgbImage],
) -> Result<Variant, BenchError> {
    let batch = args.batch.max(1);
    // The batch asked for, on whatever provider: measuring is the point, gain or not.
    let opts = DetectorOptions {
        providers: if args.providers.is_empty() { base.providers.clone() } else { args.providers.clone() },
        max_batch: batch,
        batch_on_cpu: true,
        io_binding,
        ..base.clone()
    };
    let workers = (0..args.workers.max(1)).map(|_| Detector::load(&opts)).collect::<Result<Vec<_>, _>>()?;
    let first = &workers[0];
    if first.max_batch() < batch {
        return Err(BenchError::FixedBatch { model: opts.model.clone(), batch });
    }
    if io_binding == InputBinding::Always && !first.io_binding() {
        return Err(BenchError::NotBound { provider: first.provider() });
    }
    let mut v = Variant {
        base: base.clone(),
        workers,
        scaled: Vec::new(),
        rounds: Vec::new(),
        bare: Vec::new(),
        timings: Vec::new(),
    };
    for img in images {
        let s = v.workers[0].scale_image(img)?;
        v.scaled.push(s);
    }
    Ok(v)
}

pub fn infer(args: InferArgs) -> Result<(), BenchError> {
    let batch = args.batch.max(1);
    let workers = args.workers.max(1);
    let bindings: &[InputBinding] = match args.io_binding {
        BindingChoice::Off => &[InputBinding::Off],
        BindingChoice::On => &[InputBinding::Always],
        BindingChoice::Both => &[InputBinding::Off, InputBinding::Always],
    };
    let images = some_images(&args.images)?.iter().map(|p| read_image(p)).collect::<Result<Vec<_>, _>>()?;
    let mut variants: Vec<Variant> = Vec::new();
    for model in &args.models {
        for &io_binding in bindings {
            variants.push(variant(model, &args, io_binding, &images)?);
        }
    }
    let Some(d) = variants.first().map(|v| &v.workers[0]) else { return Ok(()) };
    if !args.json {
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
                det.detect_batch(&frames).and_then(|_| det.run_bare(batch))?;
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
            v.timings.extend(run_workers(&mut v.workers, &v.scaled, batch, per_round)?);
            v.rounds.push((s.elapsed(), workers * per_round));
            // The bare loop on the input the batched path just filled in.
            for _ in 0..per_round {
                let s = Instant::now();
                v.workers[0].run_bare(batch)?;
                v.bare.push(s.elapsed());
            }
        }
    }

    // Each variant's detections: against batch-1 runs on the reference provider (same model),
    // and against the first variant's (the same network fed another way must find the same).
    let mut lasts: Vec<Vec<Vec<Detection>>> = Vec::new();
    for v in variants.iter_mut() {
        lasts.push(v.workers[0].detect_batch(&batch_frames(&v.scaled, batch))?.0);
    }
    let mut mismatched = 0;
    let first_ips = {
        let (wall, batches) = median_round(&variants[0].rounds);
        (batch * batches) as f64 / wall.as_secs_f64().max(1e-9)
    };
    for (k, v) in variants.iter().enumerate() {
        let det = &v.workers[0];
        let agreement_ref = match &args.reference {
            Some(r) => Some(against_reference(v, r, &lasts[k], batch)?),
            None => None,
        };
        let agreement_first = (k > 0).then(|| {
            let mut sum = Agreement::default();
            for (got, want) in lasts[k].iter().zip(&lasts[0]).take(v.scaled.len()) {
                sum.merge(Agreement::of(got, want, det.score_threshold(), 0.05));
            }
            sum
        });
        let matches = agreement_ref.map(|a| a.holds());
        if matches == Some(false) || agreement_first.is_some_and(|a| !a.holds()) {
            mismatched += 1;
        }
        let (wall, batches) = median_round(&v.rounds);
        let per_batch = wall / batches.max(1) as u32;
        let ips = (batch * batches) as f64 / wall.as_secs_f64().max(1e-9);
        let bare = median(v.bare.clone());
        let bare_ips = batch as f64 / bare.as_secs_f64().max(1e-9);
        let pick = |f: fn(&Timings) -> Duration| round3(ms(median(v.timings.iter().map(f).collect())));
        let report = InferReport {
            model: v.base.model.display().to_string(),
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
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print_report(&report, ips, bare_ips, ms(per_batch));
        }
    }
    if mismatched > 0 { Err(BenchError::Mismatch { variants: mismatched }) } else { Ok(()) }
}

/// A variant's last batch against batch-1 runs of the same images on the reference provider.
fn against_reference(
    v: &Variant,
    provider: &ProviderSpec,
    last: &[Vec<Detection>],
    batch: usize,
) -> Result<Agreement, BenchError> {
    let ref_opts = DetectorOptions {
        providers: vec![provider.clone()],
        fallback: false,
        max_batch: 1,
        io_binding: InputBinding::Off,
        ..v.base.clone()
    };
    let mut reference =
        Detector::load(&ref_opts).map_err(|source| BenchError::Reference { provider: provider.label(), source })?;
    let frames = batch_frames(&v.scaled, batch);
    let mut sum = Agreement::default();
    for (i, got) in last.iter().enumerate().take(v.scaled.len()) {
        let want = reference.detect_batch(&[frames[i]])?.0.pop().unwrap_or_default();
        sum.merge(Agreement::of(got, &want, reference.score_threshold(), 0.05));
    }
    Ok(sum)
}

fn print_report(report: &InferReport<'_>, ips: f64, bare_ips: f64, per_batch_ms: f64) {
    let (batch, workers) = (report.batch, report.workers);
    println!(
        "  {} ({} input{}):",
        report.model,
        report.input_dtype,
        if report.io_binding { ", IoBinding" } else { "" }
    );
    println!(
        "    batched path: {ips:.1} images/s ({per_batch_ms:.2} ms per batch of {batch}{}: pre {:.2}, infer {:.2}, post {:.2}); {:.2}x the first variant",
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
        (report.reference.clone().map(|r| format!("{r} at batch 1")), report.agreement),
        (Some("the first variant".to_string()), report.agreement_with_first),
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

/// The round of median wall time per batch, as (wall, batches).
fn median_round(rounds: &[(Duration, usize)]) -> (Duration, usize) {
    let mut r: Vec<(Duration, usize)> = rounds.to_vec();
    r.sort_by_key(|(d, n)| *d / (*n).max(1) as u32);
    r.get(r.len() / 2).copied().unwrap_or((Duration::ZERO, 1))
}
