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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fast_image_resize as fir;
use image::RgbImage;
use ort::ep::{self, ExecutionProvider, ExecutionProviderDispatch};
use ort::logging::{LogLevel, LoggerFunction};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, RunOptions, Session, SessionOutputs};
use ort::value::{Shape, Tensor, TensorElementType, TensorRef, TensorRefMut};

use super::letterbox::{Geometry, Letterbox, fill_packed_u8, fill_planar};
use super::manifest::{self, InputType, Io, ModelSpec};
use super::nms::nms_per_class;
use super::provider::{
    DEFAULT_QNN_BACKEND, ProviderKind, ProviderSpec, Selection, parse_placement, placement_problem, placement_text,
};
use super::{DetectError, Detection};

/// The environment variable that overrides `inference.ort_library`, as `ort` itself documents.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

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

/// The library path actually used: ORT_DYLIB_PATH wins over the config.
pub fn effective_library(configured: &Path) -> PathBuf {
    match std::env::var_os(ORT_DYLIB_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => configured.to_path_buf(),
    }
}

// ORT allows one library and one environment per process (`ort` with load-dynamic loads the
// library once, globally): a second inference config naming another library cannot be
// honoured in the same process. The first successful load wins; a failed load is remembered
// so every caller gets the same clear error instead of a panic.
static RUNTIME: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> = OnceLock::new();

/// Load the ONNX Runtime shared library once per process, and return its environment.
pub fn init_runtime(library: &Path) -> Result<&'static ort::environment::Environment, DetectError> {
    let path = effective_library(library);
    if !path.exists() {
        return Err(DetectError::LibraryMissing { path });
    }
    let path = path.canonicalize().unwrap_or(path);
    let result = RUNTIME.get_or_init(|| {
        ort::init_from(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_name("lookout").with_logger(ort_logger(None)).build().map_err(|e| e.to_string()))
            .map(|env| (path.clone(), env))
    });
    match result {
        Ok((loaded, _)) if *loaded != path => Err(DetectError::LibraryLoad {
            path,
            reason: format!(
                "this process already loaded {}, and ONNX Runtime can only be loaded once per process",
                loaded.display()
            ),
        }),
        Ok((_, env)) => Ok(env),
        Err(reason) => Err(DetectError::LibraryLoad { path, reason: reason.clone() }),
    }
}

thread_local! {
    // ORT's errors while this thread tries a provider. A provider that fails to register says
    // why only in ORT's log ("Device NPU is not available"), and returns a bare "Failed to
    // load provider"; the log lines make the reason the operator sees.
    static ORT_ERRORS: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Forward ORT's log to `tracing` (target `ort`), keep this thread's errors while a provider is
/// being tried, and pass node-placement lines to `placement`.
fn ort_logger(placement: Option<Arc<Mutex<BTreeMap<String, usize>>>>) -> LoggerFunction {
    Arc::new(move |level: LogLevel, _category: &str, _id: &str, _location: &str, message: &str| {
        if let Some((ep, n)) = parse_placement(message) {
            if let Some(Ok(mut m)) = placement.as_ref().map(|p| p.lock()) {
                *m.entry(ep).or_default() += n;
            }
            return;
        }
        match level {
            // ORT warns once per weight that an old exporter also listed as a graph input
            // (NanoDet: about 200 lines, harmless, see models/README.md).
            LogLevel::Warning if message.contains("graph input") => tracing::debug!(target: "ort", "{message}"),
            LogLevel::Warning => tracing::warn!(target: "ort", "{message}"),
            LogLevel::Error | LogLevel::Fatal => {
                tracing::error!(target: "ort", "{message}");
                ORT_ERRORS.with(|e| {
                    if let Some(v) = e.borrow_mut().as_mut() {
                        // "/onnxruntime/.../factory.cc:141 std::string ...() [ERROR] [OpenVINO] Device NPU is not available"
                        let short = message.rsplit_once("[ERROR] ").map(|(_, m)| m).unwrap_or(message);
                        v.push(short.trim().to_string());
                    }
                });
            }
            LogLevel::Info => tracing::debug!(target: "ort", "{message}"),
            LogLevel::Verbose => {}
        }
    })
}

/// What the loaded ONNX Runtime library says about itself: its build line (with the version)
/// and, per provider, whether it was compiled in. Compiled in is not usable: only building a
/// session tells that ([`Detector::load`]).
pub fn runtime_info(library: &Path) -> Result<(String, Vec<(ProviderKind, bool)>), DetectError> {
    init_runtime(library)?;
    let compiled = ProviderKind::ALL.iter().map(|k| (*k, compiled_in(*k))).collect();
    Ok((ort::info().to_string(), compiled))
}

fn compiled_in(kind: ProviderKind) -> bool {
    let r = match kind {
        ProviderKind::TensorRt => ep::TensorRT::is_available(),
        ProviderKind::Cuda => ep::CUDA::is_available(),
        ProviderKind::OpenVino => ep::OpenVINO::is_available(),
        ProviderKind::Qnn => ep::QNN::is_available(),
        ProviderKind::Cpu => Ok(true),
    };
    r.unwrap_or(false)
}

/// The ort registration of one provider with its options, failing loudly: the default
/// (`build()` alone) logs and falls back to CPU, which would hide the failure.
fn dispatch(p: &ProviderSpec) -> ExecutionProviderDispatch {
    let d = match p.kind {
        ProviderKind::TensorRt => {
            let mut e = ep::TensorRT::default();
            if let Some(id) = p.device_id {
                e = e.with_device_id(id);
            }
            if let Some(f) = p.fp16 {
                e = e.with_fp16(f);
            }
            if let Some(dir) = &p.engine_cache_dir {
                e = e.with_engine_cache(true).with_engine_cache_path(dir.display());
            }
            e.build()
        }
        ProviderKind::Cuda => {
            let mut e = ep::CUDA::default();
            if let Some(id) = p.device_id {
                e = e.with_device_id(id);
            }
            if let Some(limit) = p.memory_limit_bytes {
                e = e.with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            e.build()
        }
        ProviderKind::OpenVino => {
            let mut e = ep::OpenVINO::default();
            if let Some(d) = &p.device_type {
                e = e.with_device_type(d);
            }
            e.build()
        }
        ProviderKind::Qnn => {
            let mut e = ep::QNN::default().with_backend_path(p.backend_path.as_deref().unwrap_or(DEFAULT_QNN_BACKEND));
            if let Some(id) = p.device_id {
                e = e.with_device_id(id);
            }
            e.build()
        }
        ProviderKind::Cpu => ep::CPU::default().build(),
    };
    d.error_on_failure()
}

/// Build a session on `p` alone, and learn where ORT put the nodes: the session logs at
/// VERBOSE while it is built, into a logger of ours that keeps the placement lines and hands
/// warnings and errors on to `tracing`. Runs log at WARNING (see [`Detector`]'s run options).
fn build_session(
    env: &ort::environment::Environment,
    opts: &DetectorOptions,
    model: &Path,
    p: &ProviderSpec,
) -> Result<(Session, BTreeMap<String, usize>), String> {
    let placement: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let logger = ort_logger(Some(placement.clone()));
    ORT_ERRORS.with(|e| *e.borrow_mut() = Some(Vec::new()));
    let built = build_logged(env, opts, model, p, logger);
    let logged = ORT_ERRORS.with(|e| e.borrow_mut().take()).unwrap_or_default();
    let session = built.map_err(|reason| {
        // ORT's own words first when it logged any; its returned error is often generic.
        let extra: Vec<&String> = logged.iter().filter(|l| !reason.contains(l.as_str())).collect();
        if extra.is_empty() {
            reason
        } else {
            format!("{}: {reason}", extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("; "))
        }
    })?;
    let placement = placement.lock().map(|m| m.clone()).unwrap_or_default();
    if let Some(problem) = placement_problem(p.kind, &placement) {
        return Err(problem);
    }
    Ok((session, placement))
}

fn build_logged(
    env: &ort::environment::Environment,
    opts: &DetectorOptions,
    model: &Path,
    p: &ProviderSpec,
    logger: LoggerFunction,
) -> Result<Session, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    let mut b = Session::builder(env)
        .map_err(|e| text(&e))?
        .with_intra_threads(opts.intra_threads.max(1))
        .map_err(|e| text(&e))?
        .with_inter_threads(1)
        .map_err(|e| text(&e))?
        .with_logger(logger)
        .map_err(|e| text(&e))?
        .with_log_level(LogLevel::Verbose)
        .map_err(|e| text(&e))?;
    if p.kind != ProviderKind::Cpu {
        b = b.with_execution_providers([dispatch(p)]).map_err(|e| text(&e))?;
    }
    b.commit_from_file(model).map_err(|e| text(&e))
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
    resizer: fir::Resizer,
    score_threshold: f32,
    nms_iou: f32,
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
            if let Some(variant) = base.variant_for(p.kind.name()).map(Path::to_path_buf) {
                match ModelSpec::load(&variant) {
                    Ok(v) if v.file.exists() => model = v,
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
                    return Detector::with_session(session, p.clone(), selection, opts, model);
                }
                // The CPU provider always exists: its failure is the model's.
                Err(reason) if p.kind == ProviderKind::Cpu => return Err(DetectError::ModelLoad { path, reason }),
                Err(reason) => {
                    if opts.fallback {
                        tracing::warn!(provider = %p.label(), reason = %reason, "execution provider did not build; trying the next one");
                    }
                    selection.skipped.push((p.label(), reason));
                }
            }
        }
        Err(DetectError::NoProvider { fallback: opts.fallback, tried: selection.skipped_text() })
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
        manifest::resolve_plain(&mut model, &inputs, &outputs).map_err(shape_err)?;
        manifest::check_io(&model, &inputs, &outputs).map_err(shape_err)?;
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
                Err(reason) => {
                    tracing::warn!(provider = kind.name(), reason = %reason, "input binding not set up; the input is passed to each run instead");
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
            resizer: fir::Resizer::new(),
            score_threshold: opts.score_threshold.unwrap_or(model.score_threshold),
            nms_iou: opts.nms_iou.unwrap_or(model.nms_iou),
            model,
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
        // Bilinear with antialiasing (a triangle filter widened on downscale), as PIL's
        // BILINEAR in the reference does; fast_image_resize does it with SIMD.
        let src = fir::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fir::PixelType::U8x3)
            .map_err(|e| DetectError::Run(format!("image: {e}")))?;
        let mut resized = fir::images::Image::new(lb.scaled_w, lb.scaled_h, fir::PixelType::U8x3);
        self.resizer
            .resize(
                &src,
                &mut resized,
                &fir::ResizeOptions::new().resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear)),
            )
            .map_err(|e| DetectError::Run(format!("resize: {e}")))?;
        Ok(ScaledImage {
            rgb: resized.into_vec(),
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
        let plane = 3 * (self.geometry.width * self.geometry.height) as usize;
        for f in frames {
            if f.rgb.len() < f.stride * (f.height as usize).saturating_sub(1) + 3 * f.width as usize {
                return Err(DetectError::Run(format!("frame buffer too small for {}x{}", f.width, f.height)));
            }
        }
        let norm = self.model.normalize;
        match self.input.host_mut()? {
            HostSlice::F32(buf) => {
                for (f, slot) in frames.iter().zip(buf.chunks_exact_mut(plane)) {
                    let lb = Letterbox::place(f.src_width, f.src_height, self.geometry);
                    fill_planar(f.rgb, f.width, f.height, f.stride, &lb, &norm, slot);
                }
            }
            HostSlice::U8(buf) => {
                // A uint8 manifest has no host normalisation, so the normalised pad is the raw
                // one, a whole pixel value (checked when the manifest was read).
                let pad = norm.pad[0].round().clamp(0.0, 255.0) as u8;
                for (f, slot) in frames.iter().zip(buf.chunks_exact_mut(plane)) {
                    let lb = Letterbox::place(f.src_width, f.src_height, self.geometry);
                    fill_packed_u8(f.rgb, f.width, f.height, f.stride, &lb, norm.bgr, pad, slot);
                }
            }
        }
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
        // Each output's first dimension is the batch: frame i's part is the i-th of n equal chunks.
        let mut data: Vec<&[f32]> = Vec::with_capacity(self.output_names.len());
        for name in &self.output_names {
            let value = outputs
                .get(name.as_str())
                .ok_or_else(|| DetectError::Run(format!("the model gave no output `{name}`")))?;
            let (_, d) =
                value.try_extract_tensor::<f32>().map_err(|e| DetectError::Run(format!("output `{name}`: {e}")))?;
            if d.is_empty() || d.len() % n != 0 {
                return Err(DetectError::Run(format!(
                    "output `{name}` has {} values, not a multiple of the {n} frames run",
                    d.len()
                )));
            }
            data.push(d);
        }
        let t2 = Instant::now();

        let classes = self.model.labels.len();
        let mut all = Vec::with_capacity(n);
        for (i, f) in frames.iter().enumerate() {
            let per_frame: Vec<&[f32]> = data
                .iter()
                .map(|d| {
                    let len = d.len() / n;
                    &d[i * len..(i + 1) * len]
                })
                .collect();
            let lb = Letterbox::place(f.src_width, f.src_height, self.geometry);
            let cands = self.model.family.decode(
                &per_frame,
                self.geometry.width,
                self.geometry.height,
                classes,
                self.score_threshold,
            );
            let dets = nms_per_class(cands, self.nms_iou)
                .into_iter()
                .map(|c| Detection {
                    class: c.class,
                    label: self.model.labels.name(c.class),
                    score: c.score,
                    bbox: lb.unmap(c.bbox, f.src_width, f.src_height),
                })
                .collect();
            all.push(dets);
        }
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

/// The input buffer, sized for the largest batch and allocated once.
enum HostInput {
    F32(Vec<f32>),
    U8(Vec<u8>),
    /// Allocated by ORT for IoBinding: pinned on cuda/tensorrt, host-accessible either way.
    BoundF32(Tensor<f32>),
    BoundU8(Tensor<u8>),
}

/// The input buffer as the letterbox writes it.
enum HostSlice<'a> {
    F32(&'a mut [f32]),
    U8(&'a mut [u8]),
}

impl HostInput {
    fn plain(t: InputType, len: usize) -> HostInput {
        match t {
            InputType::Float32 => HostInput::F32(vec![0.0; len]),
            InputType::Uint8 => HostInput::U8(vec![0; len]),
        }
    }

    fn host_mut(&mut self) -> Result<HostSlice<'_>, DetectError> {
        let host = |e: ort::Error| DetectError::Run(format!("the bound input buffer is not host memory: {e}"));
        Ok(match self {
            HostInput::F32(v) => HostSlice::F32(v),
            HostInput::U8(v) => HostSlice::U8(v),
            HostInput::BoundF32(t) => HostSlice::F32(t.try_extract_tensor_mut::<f32>().map_err(host)?.1),
            HostInput::BoundU8(t) => HostSlice::U8(t.try_extract_tensor_mut::<u8>().map_err(host)?.1),
        })
    }
}

/// The ORT shape of `n` frames of input, NCHW for f32 and NHWC for u8.
fn input_shape(t: InputType, n: usize, g: Geometry) -> [usize; 4] {
    let (w, h) = (g.width as usize, g.height as usize);
    match t {
        InputType::Float32 => [n, 3, h, w],
        InputType::Uint8 => [n, h, w, 3],
    }
}

/// One run on the first `n` frames of `input`: through the binding when there is one (the
/// input re-bound at this batch's shape, which is when ORT copies it to the device), else as a
/// tensor view passed to the run. A free function so that the outputs borrow only the session
/// and the binding, not the whole detector.
fn run_session<'s>(
    session: &'s mut Session,
    input: &mut HostInput,
    binding: Option<&'s mut Bound>,
    input_name: &str,
    run_options: &'s RunOptions,
    n: usize,
    g: Geometry,
) -> Result<SessionOutputs<'s>, DetectError> {
    let run = |e: ort::Error| DetectError::Run(e.to_string());
    let t = match input {
        HostInput::F32(_) | HostInput::BoundF32(_) => InputType::Float32,
        HostInput::U8(_) | HostInput::BoundU8(_) => InputType::Uint8,
    };
    let shape = input_shape(t, n, g);
    let len: usize = shape.iter().product();
    // The unsafe view below relies on this; the plain path's slicing would panic without it.
    let capacity = match input {
        HostInput::F32(v) => v.len(),
        HostInput::U8(v) => v.len(),
        HostInput::BoundF32(t) => t.shape().iter().product::<i64>() as usize,
        HostInput::BoundU8(t) => t.shape().iter().product::<i64>() as usize,
    };
    if len > capacity {
        return Err(DetectError::Run(format!(
            "a batch of {n} frames does not fit the input buffer ({capacity} values)"
        )));
    }
    if let Some(bound) = binding {
        // ORT keeps the outputs it allocated for a bound output and refuses a run whose output
        // shape differs: bind them afresh when the batch size changes.
        if bound.batch != n {
            bound.binding.clear_outputs();
            for name in &bound.outputs {
                bound.binding.bind_output_to_device(name.as_str(), &bound.output_memory).map_err(run)?;
            }
            bound.batch = n;
        }
        let binding = &mut bound.binding;
        let view_shape = Shape::new(shape.iter().map(|&d| d as i64));
        // ort rc.15 copies a borrowed input that is already on the session's device before it
        // binds it, and that copy deadlocks (its identity session binds a borrowed input again
        // under the same lock). Pinned memory is another device than a CUDA session's, so it is
        // bound as a view; plain CPU memory (the `Always` path off the GPU) is copied into an
        // owned tensor here, the copy ort meant to make.
        let on_cpu = |info: &MemoryInfo| info.allocation_device() == AllocationDevice::CPU;
        match input {
            HostInput::BoundF32(tensor) if on_cpu(tensor.memory_info()) => {
                let owned =
                    Tensor::from_array((shape, tensor.try_extract_tensor::<f32>().map_err(run)?.1[..len].to_vec()))
                        .map_err(run)?;
                binding.bind_input(input_name, &owned).map_err(run)?;
            }
            HostInput::BoundU8(tensor) if on_cpu(tensor.memory_info()) => {
                let owned =
                    Tensor::from_array((shape, tensor.try_extract_tensor::<u8>().map_err(run)?.1[..len].to_vec()))
                        .map_err(run)?;
                binding.bind_input(input_name, &owned).map_err(run)?;
            }
            HostInput::BoundF32(tensor) => {
                let data = tensor.data_ptr_mut();
                let info = tensor.memory_info().clone();
                // SAFETY: the view covers the first `len` of the tensor's `max_batch` frames
                // (checked against its capacity above), in the memory the tensor owns and
                // describes with `info`. The binding may hold the view until the next bind; it
                // is declared before the buffer in `Detector`, so it is dropped first.
                let view = unsafe { TensorRefMut::<f32>::from_raw(info, data, view_shape) }.map_err(run)?;
                binding.bind_input(input_name, &view).map_err(run)?;
            }
            HostInput::BoundU8(tensor) => {
                let data = tensor.data_ptr_mut();
                let info = tensor.memory_info().clone();
                // SAFETY: as above.
                let view = unsafe { TensorRefMut::<u8>::from_raw(info, data, view_shape) }.map_err(run)?;
                binding.bind_input(input_name, &view).map_err(run)?;
            }
            HostInput::F32(_) | HostInput::U8(_) => {
                return Err(DetectError::Run("an input binding without a bound buffer".into()));
            }
        }
        return session.run_binding_with_options(&bound.binding, run_options).map_err(run);
    }
    match input.host_mut()? {
        HostSlice::F32(buf) => {
            let tensor = TensorRef::from_array_view((shape, &buf[..len])).map_err(run)?;
            session.run_with_options(ort::inputs![input_name => tensor], run_options).map_err(run)
        }
        HostSlice::U8(buf) => {
            let tensor = TensorRef::from_array_view((shape, &buf[..len])).map_err(run)?;
            session.run_with_options(ort::inputs![input_name => tensor], run_options).map_err(run)
        }
    }
}

/// An IoBinding with its outputs bound to host memory, for runs of `batch` frames.
struct Bound {
    binding: IoBinding,
    outputs: Vec<String>,
    output_memory: MemoryInfo<'static>,
    batch: usize,
}

/// The input buffer for IoBinding, allocated once for `max_batch` frames (pinned host memory on
/// cuda/tensorrt, so the copy to the device is one DMA transfer; ORT's CPU allocator elsewhere),
/// and a binding whose outputs go to CPU memory, kept across runs of the same batch size. The
/// input is bound per run, since a batch's size sets its shape.
fn bound_input(
    session: &Session,
    spec: &ProviderSpec,
    t: InputType,
    max_batch: usize,
    g: Geometry,
    outputs: &[String],
) -> Result<(HostInput, Bound), String> {
    let text = |e: ort::Error| e.to_string();
    let allocator = match spec.kind {
        ProviderKind::Cuda | ProviderKind::TensorRt => {
            let info = MemoryInfo::new(
                AllocationDevice::CUDA_PINNED,
                spec.device_id.unwrap_or(0),
                AllocatorType::Device,
                MemoryType::CPUInput,
            )
            .map_err(text)?;
            Allocator::new(session, info)
                .map_err(|e| format!("no pinned (CudaPinned) allocator for this session: {e}"))?
        }
        _ => Allocator::default(),
    };
    let shape = input_shape(t, max_batch, g);
    let elements: usize = shape.iter().product();
    // ORT hands the memory over uninitialised: zero it before anything reads it.
    let input = match t {
        InputType::Float32 => {
            let mut tensor = Tensor::<f32>::new(&allocator, shape).map_err(text)?;
            // SAFETY: the tensor owns `elements` f32s of host-accessible memory (CPU or pinned)
            // at this pointer; all-zero bytes are 0.0.
            unsafe { std::ptr::write_bytes(tensor.data_ptr_mut().cast::<f32>(), 0, elements) };
            HostInput::BoundF32(tensor)
        }
        InputType::Uint8 => {
            let mut tensor = Tensor::<u8>::new(&allocator, shape).map_err(text)?;
            // SAFETY: as above, `elements` bytes.
            unsafe { std::ptr::write_bytes(tensor.data_ptr_mut().cast::<u8>(), 0, elements) };
            HostInput::BoundU8(tensor)
        }
    };
    let binding = session.create_binding().map_err(text)?;
    let output_memory =
        MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput).map_err(text)?;
    // Batch 0: the outputs are bound before the first run, at its size.
    Ok((input, Bound { binding, outputs: outputs.to_vec(), output_memory, batch: 0 }))
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

/// The model's declared inputs and outputs, -1 for dynamic dimensions (empty for non-tensors).
fn session_io(session: &Session) -> (Vec<Io>, Vec<Io>) {
    let io = |o: &ort::value::Outlet| Io {
        name: o.name().to_string(),
        shape: shape_of(o).unwrap_or_default(),
        dtype: dtype_of(o),
    };
    (session.inputs().iter().map(io).collect(), session.outputs().iter().map(io).collect())
}

/// A tensor outlet's shape, with -1 for dynamic dimensions; `None` if it is not a tensor.
fn shape_of(outlet: &ort::value::Outlet) -> Option<Vec<i64>> {
    outlet.dtype().tensor_shape().map(|s| s.iter().copied().collect())
}

/// A tensor outlet's element type as ONNX names it in lower case; empty if not a tensor.
fn dtype_of(outlet: &ort::value::Outlet) -> String {
    match outlet.dtype() {
        ort::value::ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float32 => "float32".into(),
            TensorElementType::Uint8 => "uint8".into(),
            TensorElementType::Float16 => "float16".into(),
            other => format!("{other:?}").to_lowercase(),
        },
        _ => String::new(),
    }
}
