//! Which detectors each model needs, and loading them: a reload builds new ones only when a
//! model's [`DetectorKey`] changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{CameraSpec, InferenceSpec, Spec};
use crate::detect::{DetectError, Detector, DetectorOptions};

/// What selects one model's detectors: a reload builds new ones only when this changes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct DetectorKey {
    /// `[inference]`, with `model` set to this pool's model.
    inference: InferenceSpec,
    score_threshold: Option<f32>,
    workers: usize,
    /// The model file's size and modification time: a model replaced in place is reloaded.
    model_stamp: Option<(u64, Option<SystemTime>)>,
}

/// One key per model the cameras of `spec` run (`detect.model`, else `inference.model`).
pub(super) fn detector_keys(spec: &Spec) -> BTreeMap<PathBuf, DetectorKey> {
    let mut groups: BTreeMap<PathBuf, Vec<&CameraSpec>> = BTreeMap::new();
    for cam in &spec.cameras {
        groups.entry(cam.detect.model.clone()).or_default().push(cam);
    }
    if groups.is_empty() {
        groups.insert(spec.inference.model.clone(), Vec::new());
    }
    groups.into_iter().map(|(model, cams)| (model.clone(), detector_key(&spec.inference, &model, &cams))).collect()
}

fn detector_key(inference: &InferenceSpec, model: &Path, cams: &[&CameraSpec]) -> DetectorKey {
    // The tracker extends tracks with low-score detections (ByteTrack), so the detector keeps
    // everything down to the lowest `track.low_score` of its cameras.
    let lowest = cams.iter().map(|c| c.objects.tracker.low_score.min(c.detect.min_score)).fold(f32::INFINITY, f32::min);
    // None: the model manifest's default.
    let score_threshold = lowest.is_finite().then(|| lowest.max(0.01));
    let model_stamp = std::fs::metadata(model).ok().map(|m| (m.len(), m.modified().ok()));
    // The gateway model's labels are the cameras' business (checked with the config), not the
    // detectors': leaving them out keeps a change of the gateway model from reloading others.
    let inference = InferenceSpec { model: model.to_path_buf(), labels: Default::default(), ..inference.clone() };
    // `inference.workers` per model, but no more than its cameras can keep busy: one each, or
    // `detect.workers` for a camera spread over several (at least one).
    let wanted: usize = cams.iter().map(|c| c.detect.workers).sum();
    let workers = inference.workers.min(wanted.max(1));
    DetectorKey { inference, score_threshold, workers, model_stamp }
}

/// Load one detector per worker for `key`. `reload`: a refused model variant is an error (the
/// running detectors stay), where at start its fp32 source runs instead if `inference.fallback`.
pub(super) fn load_detectors(key: &DetectorKey, reload: bool) -> Result<Vec<Detector>, DetectError> {
    let base = key.inference.detector_options();
    let opts = DetectorOptions {
        score_threshold: key.score_threshold.or(base.score_threshold),
        variant_fallback: base.fallback && !reload,
        ..base
    };
    let mut detectors = Vec::with_capacity(key.workers);
    if key.workers > 0 {
        let first = Detector::load(&opts)?;
        // The other workers take the provider the first one got, alone, so that all of them run
        // on the same one: a GPU that refuses a second session (say, for want of memory) is an
        // error to report, not a quiet move of one worker to the CPU.
        // They load the model the first one runs (a checked variant, or the source that replaced
        // a refused one) without checking it again.
        let same = DetectorOptions {
            model: first.model().origin().to_path_buf(),
            providers: vec![first.provider_spec().clone()],
            fallback: false,
            check_variant: false,
            ..opts.clone()
        };
        let m = first.model();
        tracing::info!(model = %m.name, family = m.family.name(), precision = m.precision.as_str(), file = %m.file.display(), provider = first.provider(), workers = key.workers, max_batch = first.max_batch(), "detector ready");
        detectors.push(first);
        for _ in 1..key.workers {
            detectors.push(Detector::load(&same)?);
        }
    }
    Ok(detectors)
}
