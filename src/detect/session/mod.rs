//! One ONNX Runtime session running a model as its manifest describes it. A worker thread owns one of these:
//! `Session::run` takes `&mut self`, and one session per thread beat a shared one (docs/platform-notes.md).
//!
//! The session runs on the first execution provider of `inference.providers` that builds (see
//! [`super::provider`]); with a model whose batch dimension is dynamic it runs several frames
//! at once ([`Detector::detect_batch`]).
//!
//! The input buffer is allocated once, for the largest batch, and reused: f32 NCHW for a float
//! model, u8 NHWC for a uint8 model (`input.dtype = "uint8"`: the letterbox copies pixels and
//! the graph casts and normalises, so a GPU gets a quarter of the bytes). On cuda and tensorrt
//! it lives in pinned (page-locked) host memory and is bound with ORT's IoBinding together with
//! the outputs ([`InputBinding`]), so the upload is one DMA copy and the bindings persist.
//!
//! This file is the detector: loading (the provider fallback, the manifest check, the batch size
//! and binding chosen) and the detect calls. Its parts, in the order a frame meets them:
//!
//! - `runtime`: the ONNX Runtime library, loaded once per process, and its log;
//! - `builder`: one ORT session built on one provider, and the model's declared inputs and outputs;
//! - `input`: the input buffer the letterbox fills, how it is bound, and the run;
//! - `output`: the output tensors split per frame, decoded by the family, NMS'd, mapped back.

mod builder;
mod input;
mod output;
mod runtime;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::RgbImage;
use ort::logging::LogLevel;
use ort::session::{RunOptions, Session};

use self::builder::{build_session, session_io};
use self::input::{Bound, HostInput, bound_input, run_session};
use self::output::{Decoding, batch_outputs};
pub use self::runtime::{ORT_DYLIB_ENV, effective_library, init_runtime, runtime_info};
use super::letterbox::{Geometry, Letterbox};
use super::manifest::{self, InputType, Io, ModelSpec};
use super::provider::{ProviderKind, ProviderSpec, Selection, placement_text};
use super::variant::{self, Refusal};
use super::{DetectError, Detection};
use crate::resize::resize_linear;
use crate::stats::VariantCheck;

/// What a detector needs to start.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    /// A model manifest (`.toml`) or a plain YOLOX `.onnx`.
    pub model: PathBuf,
    pub ort_library: PathBuf,
    pub intra_threads: usize,
    /// `None`: the manifest's `score_threshold`.
    pub score_threshold: Option<f32>,
    /// `None`: the manifest's `nms_iou`.
    pub nms_iou: Option<f32>,
    /// Tried in order; the first that builds wins. Default: cpu alone.
    pub providers: Vec<ProviderSpec>,
    /// false: only the first provider is tried, and its failure is the detector's.
    pub fallback: bool,
    /// The most frames one run may take (needs a model with a dynamic batch dimension).
    pub max_batch: usize,
    /// Batch on the CPU provider too. No gain there (docs/platform-notes.md); for tests and measurement.
    pub batch_on_cpu: bool,
    /// Whether the input sits in ORT-allocated memory bound with IoBinding. Default: on cuda
    /// and tensorrt only.
    pub io_binding: InputBinding,
    /// Check a model variant against its fp32 source before it runs ([`super::variant`]).
    /// Default on; off only where the comparison is the point (`lookout bench models`).
    pub check_variant: bool,
    /// What a refused variant leads to: true, the fp32 source runs instead, with a warning (at
    /// start, `inference.fallback`); false, an error (a reload, which keeps what runs).
    pub variant_fallback: bool,
}

/// How the input reaches the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputBinding {
    /// A tensor view over our own buffer, passed to each run (today's path everywhere).
    Off,
    /// On cuda and tensorrt: the buffer is pinned host memory from the provider's allocator,
    /// bound with IoBinding with the outputs kept bound across runs. Other providers: `Off`
    /// (on the CPU IoBinding gave nothing, docs/platform-notes.md).
    Gpu,
    /// Bound on every provider; off the GPU the memory is ORT's CPU allocator's. For tests and
    /// measurement: it runs the bound path where no GPU is.
    Always,
}

impl DetectorOptions {
    pub fn new(model: PathBuf, ort_library: PathBuf) -> DetectorOptions {
        DetectorOptions {
            model,
            ort_library,
            intra_threads: 1,
            score_threshold: None,
            nms_iou: None,
            providers: vec![ProviderSpec::cpu()],
            fallback: true,
            max_batch: 1,
            batch_on_cpu: false,
            io_binding: InputBinding::Gpu,
            check_variant: true,
            variant_fallback: true,
        }
    }
}

/// Where the time of one detection (or one batch) went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub pre: Duration,
    pub infer: Duration,
    pub post: Duration,
}

/// One frame already scaled to its letterbox size, as the camera pipeline delivers it.
#[derive(Debug, Clone, Copy)]
pub struct ScaledFrame<'a> {
    pub rgb: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub src_width: u32,
    pub src_height: u32,
}

/// Runs a detector (any manifest family) on frames. Owns its input buffer, sized for its
/// largest batch, so the hot path allocates no input per frame.
pub struct Detector {
    session: Session,
    run_options: RunOptions,
    kind: ProviderKind,
    spec: ProviderSpec,
    selection: Selection,
    model: ModelSpec,
    input_name: String,
    geometry: Geometry,
    output_names: Vec<String>,
    max_batch: usize,
    /// Set when the input is bound ([`InputBinding`]); the outputs stay bound to CPU memory.
    /// Before `input`: it may hold a view of that buffer, so it must be dropped first.
    binding: Option<Bound>,
    input: HostInput,
    score_threshold: f32,
    nms_iou: f32,
    /// How this model, or the variant it replaced, compared with its fp32 source at load.
    variant_check: Option<VariantCheck>,
}

impl Detector {
    /// Load the runtime (once), the model's manifest, and the model on the first provider that
    /// builds (with the manifest's fp16 variant where that provider gains from it), and check
    /// the model's real inputs and outputs against the manifest. Every failure is an error,
    /// never an exit, so a caller (a reload) can keep what it runs.
    pub fn load(opts: &DetectorOptions) -> Result<Detector, DetectError> {
        let env = init_runtime(&opts.ort_library)?;
        let base = ModelSpec::load(&opts.model)?;
        if !base.file.exists() {
            return Err(DetectError::ModelMissing { path: base.file.clone() });
        }
        let providers = if opts.providers.is_empty() { vec![ProviderSpec::cpu()] } else { opts.providers.clone() };
        let tried = if opts.fallback { &providers[..] } else { &providers[..1] };
        let mut selection = Selection::default();
        for p in tried {
            let mut model = base.clone();
            // The fp32 manifest a variant is checked against, if this is one.
            let mut source = base.variant_of.clone();
            if let Some(variant) = base.variant_for(p.kind.name()).map(Path::to_path_buf) {
                match ModelSpec::load(&variant) {
                    Ok(v) if v.file.exists() => {
                        source = base.manifest.clone();
                        model = v;
                    }
                    Ok(v) => {
                        tracing::warn!(model = %base.name, missing = %v.file.display(), "fp16 variant not usable; running fp32")
                    }
                    Err(e) => tracing::warn!(model = %base.name, error = %e, "fp16 variant not usable; running fp32"),
                }
            }
            let path = model.file.clone();
            match build_session(env, opts, &path, p) {
                Ok((session, placement)) => {
                    selection.placement = placement;
                    let detector = Detector::with_session(session, p.clone(), selection, opts, model)?;
                    return match source {
                        Some(source) if opts.check_variant => Detector::checked(detector, &source, p, opts),
                        _ => Ok(detector),
                    };
                }
                // The CPU provider always exists: its failure is the model's.
                Err(failure) if p.kind == ProviderKind::Cpu => {
                    return Err(DetectError::ModelLoad { path, reason: failure.to_string() });
                }
                Err(failure) => {
                    let reason = failure.to_string();
                    if opts.fallback {
                        tracing::warn!(provider = %p.label(), reason = %reason, "execution provider did not build; trying the next one");
                    }
                    selection.skipped.push((p.label(), reason));
                }
            }
        }
        Err(DetectError::NoProvider { fallback: opts.fallback, tried: selection.skipped_text() })
    }

    /// Run the variant check on a freshly loaded variant: accepted, it runs; refused, its fp32
    /// source runs on the same provider in its place (with a warning), or the load fails.
    fn checked(
        mut detector: Detector,
        source: &Path,
        provider: &ProviderSpec,
        opts: &DetectorOptions,
    ) -> Result<Detector, DetectError> {
        let (check, why) = match variant::check(&mut detector, source, opts) {
            Ok(check) => {
                tracing::info!(check = %variant::describe(&check), "model variant checked against its fp32 source");
                detector.variant_check = Some(check);
                return Ok(detector);
            }
            Err(Refusal::Disagrees(check)) => {
                let why = variant::describe(&check);
                (Some(check), why)
            }
            Err(Refusal::Unchecked(why)) => (None, format!("{} could not be checked: {why}", detector.model.name)),
        };
        let variant = detector.model.origin().to_path_buf();
        drop(detector);
        if !opts.variant_fallback {
            return Err(DetectError::VariantRefused { variant, fp32: source.to_path_buf(), why });
        }
        tracing::warn!(variant = %variant.display(), source = %source.display(), reason = %why, "model variant refused: running its fp32 source instead (set `inference.fallback = false` to fail instead)");
        let fp32 = DetectorOptions {
            model: source.to_path_buf(),
            providers: vec![provider.clone()],
            fallback: false,
            check_variant: false,
            ..opts.clone()
        };
        let mut detector = Detector::load(&fp32)?;
        detector.variant_check = check;
        Ok(detector)
    }

    fn with_session(
        session: Session,
        spec: ProviderSpec,
        selection: Selection,
        opts: &DetectorOptions,
        mut model: ModelSpec,
    ) -> Result<Detector, DetectError> {
        let kind = spec.kind;
        let (inputs, outputs) = session_io(&session);
        let origin = model.origin().to_path_buf();
        let shape_err = |reason: String| DetectError::ModelShape { path: origin.clone(), reason };
        manifest::resolve_plain(&mut model, &inputs, &outputs).map_err(|e| shape_err(e.to_string()))?;
        manifest::check_io(&model, &inputs, &outputs).map_err(|e| shape_err(e.to_string()))?;
        let (Some(input_name), Some(geometry)) = (model.input_name.clone(), model.geometry) else {
            return Err(shape_err("the model's input is not known".into()));
        };
        let output_names: Vec<String> = model.family.output_names().iter().map(|s| s.to_string()).collect();
        // Batching needs a dynamic first dimension on the input and on every output we read.
        let dynamic =
            |io: &[Io], name: &str| io.iter().find(|i| i.name == name).is_some_and(|i| i.shape.first() == Some(&-1));
        let dynamic_batch = dynamic(&inputs, &input_name) && output_names.iter().all(|n| dynamic(&outputs, n));
        let max_batch = match (dynamic_batch, kind.gains_from_batching() || opts.batch_on_cpu) {
            (true, true) => opts.max_batch.max(1),
            _ => 1,
        };
        if opts.max_batch > 1 && !dynamic_batch {
            tracing::info!(model = %model.origin().display(), "the model's batch dimension is fixed at 1: frames are detected one at a time (use a model with a dynamic batch, such as yolox_nano_dynbatch.onnx, to batch)");
        }
        let mut run_options = RunOptions::new().map_err(|e| DetectError::Run(e.to_string()))?;
        run_options.set_log_level(LogLevel::Warning).map_err(|e| DetectError::Run(e.to_string()))?;
        let skipped = selection.skipped_text();
        tracing::info!(
            provider = kind.name(),
            placement = %placement_text(&selection.placement),
            max_batch,
            skipped = if skipped.is_empty() { "none" } else { skipped.as_str() },
            "execution provider chosen"
        );
        let frame_len = 3 * (geometry.width * geometry.height) as usize;
        let bind = match opts.io_binding {
            InputBinding::Off => false,
            InputBinding::Gpu => matches!(kind, ProviderKind::Cuda | ProviderKind::TensorRt),
            InputBinding::Always => true,
        };
        let (input, binding) = if bind {
            match bound_input(&session, &spec, model.input_type, max_batch, geometry, &output_names) {
                Ok((input, binding)) => (input, Some(binding)),
                // Binding is only a faster way to the same run: the plain path still works.
                Err(e) => {
                    tracing::warn!(provider = kind.name(), reason = %e, "input binding not set up; the input is passed to each run instead");
                    (HostInput::plain(model.input_type, max_batch * frame_len), None)
                }
            }
        } else {
            (HostInput::plain(model.input_type, max_batch * frame_len), None)
        };
        let mut detector = Detector {
            session,
            run_options,
            kind,
            spec,
            selection,
            input_name,
            geometry,
            output_names,
            max_batch,
            binding,
            input,
            score_threshold: opts.score_threshold.unwrap_or(model.score_threshold),
            nms_iou: opts.nms_iou.unwrap_or(model.nms_iou),
            model,
            variant_check: None,
        };
        // One run through the binding now (on the zeroed buffer), so that a provider that
        // cannot run bound inputs costs a warning at start instead of every frame's detection.
        if detector.binding.is_some()
            && let Err(e) = detector.run_bare(1)
        {
            tracing::warn!(provider = kind.name(), error = %e, "a run through IoBinding failed; the input is passed to each run instead");
            detector.binding = None;
        }
        tracing::info!(
            input = detector.model.input_type.as_str(),
            io_binding = detector.binding.is_some(),
            "detector input"
        );
        Ok(detector)
    }

    /// The longer side of the model input (416 for YOLOX-Nano).
    pub fn input_size(&self) -> u32 {
        self.geometry.width.max(self.geometry.height)
    }

    /// The model input's size and how frames are placed in it: what the camera pipeline
    /// scales to.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// How the model (or the variant it replaced) compared with its fp32 source at load; `None`
    /// when it is no variant.
    pub fn variant_check(&self) -> Option<&VariantCheck> {
        self.variant_check.as_ref()
    }

    /// The model this detector runs, as its manifest describes it.
    pub fn model(&self) -> &ModelSpec {
        &self.model
    }

    /// The score below which detections are dropped: the option, else the manifest's.
    pub fn score_threshold(&self) -> f32 {
        self.score_threshold
    }

    /// The execution provider that runs this session, as the config names it.
    pub fn provider(&self) -> &'static str {
        self.kind.name()
    }

    pub fn provider_kind(&self) -> ProviderKind {
        self.kind
    }

    /// The provider entry (with its options) that runs this session.
    pub fn provider_spec(&self) -> &ProviderSpec {
        &self.spec
    }

    /// The providers passed over and where ORT placed the nodes.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The input's element type: what the letterbox writes and the session is fed.
    pub fn input_type(&self) -> InputType {
        self.model.input_type
    }

    /// Whether the input is bound with IoBinding (pinned memory on cuda/tensorrt).
    pub fn io_binding(&self) -> bool {
        self.binding.is_some()
    }

    /// The most frames one [`Detector::detect_batch`] takes: 1 unless the model's batch is
    /// dynamic and the provider gains from batching (or `batch_on_cpu`).
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Detect on a full-size image: resize it (bilinear, as the reference does) then detect.
    pub fn detect_image(&mut self, img: &RgbImage) -> Result<(Vec<Detection>, Timings), DetectError> {
        let t0 = Instant::now();
        let resized = self.scale_image(img)?;
        let resize_time = t0.elapsed();
        let (mut dets, mut t) = self.detect_batch(&[resized.frame()])?;
        t.pre += resize_time;
        Ok((dets.pop().unwrap_or_default(), t))
    }

    /// Scale a full-size image to its letterbox size, as the camera pipeline would deliver it.
    pub fn scale_image(&mut self, img: &RgbImage) -> Result<ScaledImage, DetectError> {
        let lb = Letterbox::place(img.width(), img.height(), self.geometry);
        // cv2's INTER_LINEAR, bit for bit, as the reference recipes resize (`super::resize`).
        let mut resized = vec![0u8; 3 * (lb.scaled_w * lb.scaled_h) as usize];
        resize_linear(
            img.as_raw(),
            img.width() as usize,
            img.height() as usize,
            3 * img.width() as usize,
            3,
            lb.scaled_w as usize,
            lb.scaled_h as usize,
            &mut resized,
        );
        Ok(ScaledImage {
            rgb: resized,
            width: lb.scaled_w,
            height: lb.scaled_h,
            src_width: img.width(),
            src_height: img.height(),
        })
    }

    /// Detect on an image already scaled to the letterbox size of a `src_w` x `src_h` source
    /// (the camera pipeline scales in GStreamer, before colour conversion, because it is cheaper).
    pub fn detect_scaled(
        &mut self,
        rgb: &[u8],
        w: u32,
        h: u32,
        stride: usize,
        src_w: u32,
        src_h: u32,
    ) -> Result<(Vec<Detection>, Timings), DetectError> {
        let frame = ScaledFrame { rgb, width: w, height: h, stride, src_width: src_w, src_height: src_h };
        let (mut dets, t) = self.detect_batch(&[frame])?;
        Ok((dets.pop().unwrap_or_default(), t))
    }

    /// Detect on up to [`Detector::max_batch`] frames in one run; one list of detections per
    /// frame, in order. The timings are the batch's.
    pub fn detect_batch(&mut self, frames: &[ScaledFrame<'_>]) -> Result<(Vec<Vec<Detection>>, Timings), DetectError> {
        let n = frames.len();
        if n == 0 {
            return Ok((Vec::new(), Timings::default()));
        }
        if n > self.max_batch {
            return Err(DetectError::Run(format!(
                "batch of {n} frames is over this detector's max_batch {}",
                self.max_batch
            )));
        }
        let t0 = Instant::now();
        for f in frames {
            if f.rgb.len() < f.stride * (f.height as usize).saturating_sub(1) + 3 * f.width as usize {
                return Err(DetectError::Run(format!("frame buffer too small for {}x{}", f.width, f.height)));
            }
        }
        self.input.fill(frames, self.geometry, &self.model.normalize)?;
        let t1 = Instant::now();

        let outputs = run_session(
            &mut self.session,
            &mut self.input,
            self.binding.as_mut(),
            &self.input_name,
            &self.run_options,
            n,
            self.geometry,
        )?;
        let data = batch_outputs(&outputs, &self.output_names, n)?;
        let t2 = Instant::now();

        let decoding = Decoding {
            model: &self.model,
            geometry: self.geometry,
            score_threshold: self.score_threshold,
            nms_iou: self.nms_iou,
        };
        let all = decoding.detections(&data, frames);
        let t3 = Instant::now();
        Ok((all, Timings { pre: t1 - t0, infer: t2 - t1, post: t3 - t2 }))
    }

    /// Run the session alone on the first `batch` inputs of the current buffer: the baseline
    /// `lookout bench` compares to.
    pub fn run_bare(&mut self, batch: usize) -> Result<(), DetectError> {
        let n = batch.clamp(1, self.max_batch);
        run_session(
            &mut self.session,
            &mut self.input,
            self.binding.as_mut(),
            &self.input_name,
            &self.run_options,
            n,
            self.geometry,
        )?;
        Ok(())
    }
}

/// A frame scaled to its letterbox size, owned (for `lookout detect` and `lookout bench`).
#[derive(Debug, Clone)]
pub struct ScaledImage {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub src_width: u32,
    pub src_height: u32,
}

impl ScaledImage {
    pub fn frame(&self) -> ScaledFrame<'_> {
        ScaledFrame {
            rgb: &self.rgb,
            width: self.width,
            height: self.height,
            stride: 3 * self.width as usize,
            src_width: self.src_width,
            src_height: self.src_height,
        }
    }
}
