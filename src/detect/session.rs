//! One ONNX Runtime session running the YOLOX recipe. A worker thread owns one of these:
//! `Session::run` takes `&mut self`, and one session per thread beat a shared one (FINDINGS.md).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fast_image_resize as fir;
use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;

use super::letterbox::{Letterbox, fill_bgr_planar};
use super::nms::nms_per_class;
use super::yolox::{anchor_count, decode};
use super::{DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD, DetectError, Detection, labels};

/// The environment variable that overrides `inference.ort_library`, as `ort` itself documents.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// What a detector needs to start.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    pub model: PathBuf,
    pub ort_library: PathBuf,
    pub intra_threads: usize,
    pub score_threshold: f32,
    pub nms_iou: f32,
}

impl DetectorOptions {
    pub fn new(model: PathBuf, ort_library: PathBuf) -> DetectorOptions {
        DetectorOptions {
            model,
            ort_library,
            intra_threads: 1,
            score_threshold: DEFAULT_SCORE_THRESHOLD,
            nms_iou: DEFAULT_NMS_IOU,
        }
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

/// Runs YOLOX on frames. Owns its input buffer so the hot path allocates nothing per frame.
pub struct Detector {
    session: Session,
    input_name: String,
    size: u32,
    row_len: usize,
    input: Vec<f32>,
    resizer: fir::Resizer,
    score_threshold: f32,
    nms_iou: f32,
}

impl Detector {
    /// Load the runtime (once) and the model, and check the model has YOLOX's shapes.
    pub fn load(opts: &DetectorOptions) -> Result<Detector, DetectError> {
        let env = init_runtime(&opts.ort_library)?;
        let path = opts.model.clone();
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
            .commit_from_file(&path)
            .map_err(|e| load_err(&e))?;
        let (input_name, size, row_len) = check_shapes(&session, &path)?;
        Ok(Detector {
            session,
            input_name,
            size,
            row_len,
            input: vec![0.0; 3 * (size * size) as usize],
            resizer: fir::Resizer::new(),
            score_threshold: opts.score_threshold,
            nms_iou: opts.nms_iou,
        })
    }

    /// The square input size the model expects (416 for YOLOX-Nano).
    pub fn input_size(&self) -> u32 {
        self.size
    }

    /// The execution provider that runs this session. Only CPU so far.
    pub fn provider(&self) -> &'static str {
        "cpu"
    }

    /// Detect on a full-size image: resize it (bilinear, as the reference does) then detect.
    pub fn detect_image(&mut self, img: &RgbImage) -> Result<(Vec<Detection>, Timings), DetectError> {
        let t0 = Instant::now();
        let lb = Letterbox::fit(img.width(), img.height(), self.size);
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
        let lb = Letterbox::fit(src_w, src_h, self.size);
        if rgb.len() < stride * (h as usize).saturating_sub(1) + 3 * w as usize {
            return Err(DetectError::Run(format!("frame buffer too small for {w}x{h}")));
        }
        fill_bgr_planar(rgb, w, h, stride, self.size, &mut self.input);
        let t1 = Instant::now();

        let s = self.size as usize;
        let tensor = TensorRef::from_array_view(([1usize, 3, s, s], &self.input[..]))
            .map_err(|e| DetectError::Run(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| DetectError::Run(e.to_string()))?;
        let (_, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| DetectError::Run(e.to_string()))?;
        let t2 = Instant::now();

        let cands = decode(data, self.row_len, self.size, self.score_threshold);
        let dets = nms_per_class(cands, self.nms_iou)
            .into_iter()
            .map(|c| Detection {
                class: c.class,
                label: labels::COCO.get(c.class).copied().unwrap_or("unknown"),
                score: c.score,
                bbox: lb.unmap(c.bbox, src_w, src_h),
            })
            .collect();
        let t3 = Instant::now();
        Ok((dets, Timings { pre: t1 - t0, infer: t2 - t1, post: t3 - t2 }))
    }

    /// Run the session alone on the current input buffer: the baseline `lookout bench` compares to.
    pub fn run_bare(&mut self) -> Result<(), DetectError> {
        let s = self.size as usize;
        let tensor = TensorRef::from_array_view(([1usize, 3, s, s], &self.input[..]))
            .map_err(|e| DetectError::Run(e.to_string()))?;
        self.session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(|e| DetectError::Run(e.to_string()))?;
        Ok(())
    }
}

/// YOLOX: one f32 input [1,3,S,S] with S a multiple of 32, one output [1, anchors(S), 5+C].
fn check_shapes(session: &Session, path: &Path) -> Result<(String, u32, usize), DetectError> {
    let bad = |reason: String| DetectError::ModelShape { path: path.to_path_buf(), reason };
    let input = session.inputs().first().ok_or_else(|| bad("it has no inputs".into()))?;
    let in_shape = shape_of(input).ok_or_else(|| bad(format!("input `{}` is not a tensor", input.name())))?;
    let size = match in_shape.as_slice() {
        [1, 3, h, w] if h == w && *h > 0 && h % 32 == 0 => *h as u32,
        _ => {
            return Err(bad(format!(
                "input `{}` has shape {:?}; expected [1, 3, S, S] with S a multiple of 32 (YOLOX-Nano: [1, 3, 416, 416])",
                input.name(),
                in_shape
            )));
        }
    };
    let output = session.outputs().first().ok_or_else(|| bad("it has no outputs".into()))?;
    let out_shape = shape_of(output).ok_or_else(|| bad(format!("output `{}` is not a tensor", output.name())))?;
    let anchors = anchor_count(size) as i64;
    let row_len = match out_shape.as_slice() {
        [1, n, c] if *n == anchors && *c >= 6 => *c as usize,
        _ => {
            return Err(bad(format!(
                "output `{}` has shape {:?}; expected [1, {anchors}, 5 + classes] for a {size}x{size} input",
                output.name(),
                out_shape
            )));
        }
    };
    Ok((input.name().to_string(), size, row_len))
}

/// A tensor outlet's shape, with -1 for dynamic dimensions; `None` if it is not a tensor.
fn shape_of(outlet: &ort::value::Outlet) -> Option<Vec<i64>> {
    outlet.dtype().tensor_shape().map(|s| s.iter().copied().collect())
}
