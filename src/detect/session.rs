//! One ONNX Runtime session running a model as its manifest describes it. A worker thread owns one of these:
//! `Session::run` takes `&mut self`, and one session per thread beat a shared one (FINDINGS.md).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fast_image_resize as fir;
use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use super::letterbox::{Geometry, Letterbox, fill_planar};
use super::manifest::{self, Io, ModelSpec};
use super::nms::nms_per_class;
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
}

impl DetectorOptions {
    pub fn new(model: PathBuf, ort_library: PathBuf) -> DetectorOptions {
        DetectorOptions { model, ort_library, intra_threads: 1, score_threshold: None, nms_iou: None }
    }
}

/// Where the time of one detection went.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub pre: Duration,
    pub infer: Duration,
    pub post: Duration,
}

/// The library path actually used: ORT_DYLIB_PATH wins over the config.
pub fn effective_library(configured: &Path) -> PathBuf {
    match std::env::var_os(ORT_DYLIB_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => configured.to_path_buf(),
    }
}

// ORT allows one library and one environment per process. The first successful load wins;
// a failed load is remembered so every caller gets the same clear error instead of a panic.
static RUNTIME: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

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
            .and_then(|b| b.with_name("lookout").build().map_err(|e| e.to_string()))
    });
    match result {
        Ok(env) => Ok(env),
        Err(reason) => Err(DetectError::LibraryLoad { path, reason: reason.clone() }),
    }
}

/// Runs a detector (any manifest family) on frames. Owns its input buffer so the hot path
/// allocates nothing per frame.
pub struct Detector {
    session: Session,
    model: ModelSpec,
    input_name: String,
    geometry: Geometry,
    output_names: Vec<String>,
    input: Vec<f32>,
    resizer: fir::Resizer,
    score_threshold: f32,
    nms_iou: f32,
}

/// The execution provider sessions run on. Only CPU in this build; the fp16 variant choice
/// already asks it.
const PROVIDER: &str = "cpu";

impl Detector {
    /// Load the runtime (once), the model's manifest and the model, and check the model's real
    /// inputs and outputs against the manifest. Every failure is an error, never an exit, so a
    /// caller (a reload) can keep what it runs.
    pub fn load(opts: &DetectorOptions) -> Result<Detector, DetectError> {
        let env = init_runtime(&opts.ort_library)?;
        let mut model = ModelSpec::load(&opts.model)?;
        if let Some(variant) = model.variant_for(PROVIDER).map(Path::to_path_buf) {
            match ModelSpec::load(&variant) {
                Ok(v) => model = v,
                Err(e) => tracing::warn!(model = %model.name, error = %e, "fp16 variant not usable; running fp32"),
            }
        }
        let path = model.file.clone();
        if !path.exists() {
            return Err(DetectError::ModelMissing { path });
        }
        let load_err = |e: &dyn std::fmt::Display| DetectError::ModelLoad { path: path.clone(), reason: e.to_string() };
        let session = Session::builder(env)
            .map_err(|e| load_err(&e))?
            .with_intra_threads(opts.intra_threads.max(1))
            .map_err(|e| load_err(&e))?
            .with_inter_threads(1)
            .map_err(|e| load_err(&e))?
            // ORT warns once per weight that an old exporter also listed as a graph input
            // (NanoDet: about 200 lines, harmless, see PROVENANCE.md); errors still show.
            .with_log_level(ort::logging::LogLevel::Error)
            .map_err(|e| load_err(&e))?
            .commit_from_file(&path)
            .map_err(|e| load_err(&e))?;
        let (inputs, outputs) = session_io(&session);
        let origin = model.origin().to_path_buf();
        let shape_err = |reason: String| DetectError::ModelShape { path: origin.clone(), reason };
        manifest::resolve_plain(&mut model, &inputs, &outputs).map_err(shape_err)?;
        manifest::check_io(&model, &inputs, &outputs).map_err(shape_err)?;
        let (Some(input_name), Some(geometry)) = (model.input_name.clone(), model.geometry) else {
            return Err(shape_err("the model's input is not known".into()));
        };
        let output_names = model.family.output_names().iter().map(|s| s.to_string()).collect();
        Ok(Detector {
            session,
            input_name,
            geometry,
            output_names,
            input: vec![0.0; 3 * (geometry.width * geometry.height) as usize],
            resizer: fir::Resizer::new(),
            score_threshold: opts.score_threshold.unwrap_or(model.score_threshold),
            nms_iou: opts.nms_iou.unwrap_or(model.nms_iou),
            model,
        })
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

    /// The execution provider that runs this session. Only CPU so far.
    pub fn provider(&self) -> &'static str {
        PROVIDER
    }

    /// Detect on a full-size image: resize it (bilinear, as the reference does) then detect.
    pub fn detect_image(&mut self, img: &RgbImage) -> Result<(Vec<Detection>, Timings), DetectError> {
        let t0 = Instant::now();
        let lb = Letterbox::place(img.width(), img.height(), self.geometry);
        // Bilinear with antialiasing (a triangle filter widened on downscale), as PIL's
        // BILINEAR in the reference does; fast_image_resize does it with SIMD.
        let src = fir::images::ImageRef::new(img.width(), img.height(), img.as_raw(), fir::PixelType::U8x3)
            .map_err(|e| DetectError::Run(format!("image: {e}")))?;
        let mut resized = fir::images::Image::new(lb.scaled_w, lb.scaled_h, fir::PixelType::U8x3);
        self.resizer
            .resize(&src, &mut resized, &fir::ResizeOptions::new().resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Bilinear)))
            .map_err(|e| DetectError::Run(format!("resize: {e}")))?;
        let resize_time = t0.elapsed();
        let (dets, mut t) = self.detect_scaled(
            resized.buffer(),
            lb.scaled_w,
            lb.scaled_h,
            3 * lb.scaled_w as usize,
            img.width(),
            img.height(),
        )?;
        t.pre += resize_time;
        Ok((dets, t))
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
        let t0 = Instant::now();
        let lb = Letterbox::place(src_w, src_h, self.geometry);
        if rgb.len() < stride * (h as usize).saturating_sub(1) + 3 * w as usize {
            return Err(DetectError::Run(format!("frame buffer too small for {w}x{h}")));
        }
        fill_planar(rgb, w, h, stride, &lb, &self.model.normalize, &mut self.input);
        let t1 = Instant::now();

        let (gw, gh) = (self.geometry.width as usize, self.geometry.height as usize);
        let tensor = TensorRef::from_array_view(([1usize, 3, gh, gw], &self.input[..]))
            .map_err(|e| DetectError::Run(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| DetectError::Run(e.to_string()))?;
        let mut data: Vec<&[f32]> = Vec::with_capacity(self.output_names.len());
        for name in &self.output_names {
            let value = outputs.get(name.as_str()).ok_or_else(|| DetectError::Run(format!("the model gave no output `{name}`")))?;
            let (_, d) = value.try_extract_tensor::<f32>().map_err(|e| DetectError::Run(format!("output `{name}`: {e}")))?;
            data.push(d);
        }
        let t2 = Instant::now();

        let classes = self.model.labels.len();
        let cands = self.model.family.decode(&data, self.geometry.width, self.geometry.height, classes, self.score_threshold);
        let dets = nms_per_class(cands, self.nms_iou)
            .into_iter()
            .map(|c| Detection {
                class: c.class,
                label: self.model.labels.name(c.class),
                score: c.score,
                bbox: lb.unmap(c.bbox, src_w, src_h),
            })
            .collect();
        let t3 = Instant::now();
        Ok((dets, Timings { pre: t1 - t0, infer: t2 - t1, post: t3 - t2 }))
    }

    /// Run the session alone on the current input buffer: the baseline `lookout bench` compares to.
    pub fn run_bare(&mut self) -> Result<(), DetectError> {
        let (gw, gh) = (self.geometry.width as usize, self.geometry.height as usize);
        let tensor = TensorRef::from_array_view(([1usize, 3, gh, gw], &self.input[..]))
            .map_err(|e| DetectError::Run(e.to_string()))?;
        self.session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| DetectError::Run(e.to_string()))?;
        Ok(())
    }
}

/// The model's declared inputs and outputs, -1 for dynamic dimensions (empty for non-tensors).
fn session_io(session: &Session) -> (Vec<Io>, Vec<Io>) {
    let io = |o: &ort::value::Outlet| Io { name: o.name().to_string(), shape: shape_of(o).unwrap_or_default() };
    (session.inputs().iter().map(io).collect(), session.outputs().iter().map(io).collect())
}

/// A tensor outlet's shape, with -1 for dynamic dimensions; `None` if it is not a tensor.
fn shape_of(outlet: &ort::value::Outlet) -> Option<Vec<i64>> {
    outlet.dtype().tensor_shape().map(|s| s.iter().copied().collect())
}
