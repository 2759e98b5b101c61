//! `lookout bench models --model A --model B… [--provider P]… [--ort-library L]`: models
//! against the first (speed ratio, agreement with its detections) in one process, on one
//! provider or on one provider per model, so that an INT8 variant is compared with fp32 where
//! it runs (the CPU provider, OpenVINO…).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::agreement::MATCH_IOU;
use super::{BenchError, given_or_default, read_image};
use crate::config;
use crate::detect::compare::compare;
use crate::detect::{Detection, Detector, DetectorOptions, ProviderSpec};

/// What `lookout bench models` compares.
pub struct ModelsArgs {
    /// Each model's options as `lookout detect` would load it; the first is the baseline.
    pub models: Vec<DetectorOptions>,
    /// Without fallback: none (cpu), one for every model, or one per model in order.
    pub providers: Vec<ProviderSpec>,
    /// Default: media/bikes.mp4 in the config dir.
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
    detections: Vec<Vec<Detection>>,
}

/// `lookout bench models --model A --model B…`: mean inference time of each against the first
/// (the baseline), and how well each agrees with the baseline's detections, on the media
/// images and on frames of a clip, all in one run with the models interleaved per input so
/// they see the same machine load.
pub fn models(args: ModelsArgs) -> Result<(), BenchError> {
    if args.models.len() < 2 {
        return Err(BenchError::TooFewModels);
    }
    let providers = model_providers(&args.providers, args.models.len())?;
    let mut detectors = Vec::new();
    for (m, p) in args.models.iter().zip(&providers) {
        // Each model on the provider asked for, or the run fails: a silent fallback would
        // compare two providers where the table says one.
        // No variant check either: measuring the agreement is this benchmark's job.
        let opts = DetectorOptions { providers: vec![p.clone()], fallback: false, check_variant: false, ..m.clone() };
        detectors.push(Detector::load(&opts).map_err(|source| BenchError::Model { model: m.model.clone(), source })?);
    }
    let images = given_or_default(&args.images);
    // (from the clip, the image)
    let mut inputs: Vec<(bool, image::RgbImage)> = Vec::new();
    for p in &images {
        inputs.push((false, read_image(p)?));
    }
    let clip = args.clip.clone().unwrap_or_else(|| config::default_dir().join("media/bikes.mp4"));
    let frames = clip_frames(&clip, args.frame_step.max(1))?;
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
                let (dets, t) = d.detect_image(img)?;
                r.infer.push(t.infer);
                if round == 0 {
                    r.detections.push(dets);
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
                let base = &runs[0].detections[k];
                let c = compare(base, &r.detections[k], MATCH_IOU);
                total += base.len();
                matched += c.matched();
                drift += c.score_diff_sum();
                extra += c.extra.len();
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
    Ok(())
}

/// The provider of each of `models` models: cpu for all, the one given for all, or one each.
pub fn model_providers(given: &[ProviderSpec], models: usize) -> Result<Vec<ProviderSpec>, BenchError> {
    match given.len() {
        0 => Ok(vec![ProviderSpec::cpu(); models]),
        1 => Ok(vec![given[0].clone(); models]),
        n if n == models => Ok(given.to_vec()),
        n => Err(BenchError::ProviderCount { given: n, models }),
    }
}

/// Every `step`th frame of a clip as RGB, decoded by GStreamer.
fn clip_frames(path: &Path, step: usize) -> Result<Vec<image::RgbImage>, BenchError> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    let fail =
        |reason: &dyn std::fmt::Display| BenchError::Clip { path: path.to_path_buf(), reason: reason.to_string() };
    gst::init().map_err(|e| fail(&e))?;
    if !path.is_file() {
        return Err(fail(&"no such file; run scripts/setup or pass --clip"));
    }
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
    )
    .map_err(|e| fail(&e))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| fail(&"not a pipeline"))?;
    let src = pipeline.by_name("src").ok_or_else(|| fail(&"no filesrc"))?;
    src.set_property("location", path.to_string_lossy().to_string());
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gstreamer_app::AppSink>().ok())
        .ok_or_else(|| fail(&"no appsink"))?;
    pipeline.set_state(gst::State::Playing).map_err(|e| fail(&e))?;
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
        let info = gstreamer_video::VideoInfo::from_caps(caps).map_err(|e| fail(&e))?;
        let map = buffer.map_readable().map_err(|e| fail(&e))?;
        let (w, h, stride) = (info.width() as usize, info.height() as usize, info.stride()[0] as usize);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            rgb.extend_from_slice(map.get(row * stride..row * stride + w * 3).ok_or_else(|| fail(&"short frame"))?);
        }
        frames.push(image::RgbImage::from_raw(w as u32, h as u32, rgb).ok_or_else(|| fail(&"bad frame size"))?);
    }
    let error = pipeline.bus().and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
    let _ = pipeline.set_state(gst::State::Null);
    if let Some(msg) = error
        && let gst::MessageView::Error(e) = msg.view()
    {
        return Err(fail(&format!("cannot decode: {}", e.error())));
    }
    if frames.is_empty() {
        return Err(fail(&"no video frames decoded"));
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = model_providers(&[ProviderSpec::cpu(), ov], 3).unwrap_err().to_string();
        assert!(e.contains("2 --provider flags for 3 models"), "{e}");
    }
}
