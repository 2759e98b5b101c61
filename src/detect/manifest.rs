//! Model manifests: `models/<name>.toml` says everything Lookout needs to run an ONNX detector
//! without code changes: the file and its sha256, the family (which output decoder), the input
//! (name, size, channel order, normalisation, letterbox style), the labels and the default
//! thresholds. docs/models.md ("Model manifests") documents every key.
//!
//! ```toml
//! # models/nanodet_m_320.toml
//! file = "nanodet_m_320.onnx"
//! sha256 = "88e9fb97a54bb0030127ad323a10f88b4531b6aa82617e7ef79e35ffcc9bb3e1"
//! family = "nanodet"
//! labels = "coco80"
//! score_threshold = 0.35
//! nms_iou = 0.6
//!
//! [input]
//! name = "input.1"
//! width = 320
//! height = 320
//! channel_order = "bgr"
//! mean = [103.53, 116.28, 123.675]
//! std = [57.375, 57.12, 58.395]
//! resize = "stretch"
//!
//! [output]
//! scores = ["cls_pred_stride_8", "cls_pred_stride_16", "cls_pred_stride_32"]
//! boxes = ["dis_pred_stride_8", "dis_pred_stride_16", "dis_pred_stride_32"]
//! ```
//!
//! A plain `.onnx` path still works: it is read as YOLOX with the recipe's defaults, its input
//! size taken from the model. Parsing and checking against the model's real shapes
//! ([`check_io`]) are pure; [`ModelSpec::load`] adds the file reads and the sha256.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::labels::{COCO, LabelTable};
use super::letterbox::{Geometry, Normalize, PAD_VALUE, Placement};
use super::yolo_anchor_free::{BoxFormat, Layout};
use super::{Candidate, DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD, nanodet, yolo_anchor_free, yolox};

/// Where bare model names (`model = "nanodet_m_320"`) are looked up, under the config directory.
pub const MODELS_DIR: &str = "models";
/// The strides YOLOX and NanoDet predict at, when the manifest does not say.
pub const DEFAULT_STRIDES: [u32; 3] = [8, 16, 32];
/// NanoDet's box distribution has `reg_max + 1` bins per side.
pub const DEFAULT_REG_MAX: usize = 7;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    file: String,
    sha256: String,
    family: String,
    precision: Option<String>,
    fp16_variant: Option<String>,
    labels: RawLabels,
    score_threshold: Option<f32>,
    nms_iou: Option<f32>,
    input: RawInput,
    #[serde(default)]
    output: RawOutput,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLabels {
    Named(String),
    List(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    name: String,
    width: u32,
    height: u32,
    channel_order: String,
    scale: Option<f32>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    resize: String,
    pad_value: Option<f32>,
    dtype: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    name: Option<String>,
    strides: Option<Vec<u32>>,
    scores: Option<Vec<String>>,
    boxes: Option<Vec<String>>,
    reg_max: Option<usize>,
    transposed: Option<bool>,
    box_format: Option<String>,
    objectness: Option<bool>,
}

/// Which decoder reads the outputs, with what it needs to know about them.
#[derive(Debug, Clone, PartialEq)]
pub enum Family {
    /// `[1, anchors, 5 + C]`: raw box offsets, objectness and class scores per anchor point.
    /// `output: None` is a plain `.onnx` path: the model's first output.
    Yolox { output: Option<String>, strides: Vec<u32> },
    /// Per stride, class scores `[1, N, C]` and box distance bins `[1, N, 4 * (reg_max + 1)]`.
    NanoDet { scores: Vec<String>, boxes: Vec<String>, strides: Vec<u32>, reg_max: usize },
    /// One output `[1, 4 (+1) + C, N]` (transposed) or `[1, N, 4 (+1) + C]`, boxes in pixels.
    YoloAnchorFree { output: String, transposed: bool, box_format: BoxFormat, objectness: bool },
}

impl Family {
    pub fn name(&self) -> &'static str {
        match self {
            Family::Yolox { .. } => "yolox",
            Family::NanoDet { .. } => "nanodet",
            Family::YoloAnchorFree { .. } => "yolo_anchor_free",
        }
    }

    /// The outputs the decoder reads, in the order [`Family::decode`] takes them.
    pub fn output_names(&self) -> Vec<&str> {
        match self {
            Family::Yolox { output, .. } => output.iter().map(String::as_str).collect(),
            Family::NanoDet { scores, boxes, .. } => scores.iter().chain(boxes).map(String::as_str).collect(),
            Family::YoloAnchorFree { output, .. } => vec![output.as_str()],
        }
    }

    /// Decode the outputs (in [`Family::output_names`] order) of a `w` x `h` input into
    /// candidates above `threshold`, in input pixels.
    pub fn decode(&self, outs: &[&[f32]], w: u32, h: u32, classes: usize, threshold: f32) -> Vec<Candidate> {
        match self {
            Family::Yolox { strides, .. } => match outs.first() {
                Some(data) => yolox::decode_wh(data, 5 + classes, w, h, strides, threshold),
                None => Vec::new(),
            },
            Family::NanoDet { strides, reg_max, .. } => {
                let mut out = Vec::new();
                let levels = strides.len();
                for (i, &s) in strides.iter().enumerate() {
                    if let (Some(sc), Some(bx)) = (outs.get(i), outs.get(levels + i)) {
                        nanodet::decode_level(sc, bx, w, h, s, classes, *reg_max, threshold, &mut out);
                    }
                }
                out
            }
            Family::YoloAnchorFree { transposed, box_format, objectness, .. } => {
                let layout =
                    Layout { transposed: *transposed, box_format: *box_format, objectness: *objectness, classes };
                outs.first().map(|d| yolo_anchor_free::decode(d, &layout, threshold)).unwrap_or_default()
            }
        }
    }

    /// The shape each output must have (aligned with [`Family::output_names`]); `None` where any
    /// size is fine.
    pub fn expected_outputs(&self, w: u32, h: u32, classes: usize) -> Vec<Vec<Option<i64>>> {
        match self {
            Family::Yolox { strides, .. } => {
                vec![vec![Some(1), Some(yolox::anchor_count_wh(w, h, strides) as i64), Some(5 + classes as i64)]]
            }
            Family::NanoDet { strides, reg_max, .. } => {
                let n = |s: u32| Some(nanodet::level_anchors(w, h, s) as i64);
                let scores = strides.iter().map(|&s| vec![Some(1), n(s), Some(classes as i64)]);
                let boxes = strides.iter().map(|&s| vec![Some(1), n(s), Some(4 * (*reg_max as i64 + 1))]);
                scores.chain(boxes).collect()
            }
            Family::YoloAnchorFree { transposed, objectness, .. } => {
                let k = Some(4 + i64::from(*objectness) + classes as i64);
                if *transposed { vec![vec![Some(1), k, None]] } else { vec![vec![Some(1), None, k]] }
            }
        }
    }
}

/// The numeric precision of a model's weights, for choosing a variant per provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }
}

/// The element type of the model's image input, and with it who converts the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// `[N, 3, height, width]` f32: the host letterboxes, orders the planes and normalises.
    Float32,
    /// `[N, height, width, 3]` u8, as the letterbox writes it: the host only copies the pixels
    /// (and pads), and the graph casts, transposes and normalises (scripts/uint8_input.py), so
    /// a GPU provider uploads a quarter of the bytes and converts on the device.
    Uint8,
}

impl InputType {
    /// As the manifest writes it, and as [`Io::dtype`] names ONNX element types.
    pub fn as_str(&self) -> &'static str {
        match self {
            InputType::Float32 => "float32",
            InputType::Uint8 => "uint8",
        }
    }
}

/// A validated model description: from a manifest, or the YOLOX defaults for a plain `.onnx`.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The manifest it came from; `None` for a plain `.onnx` path.
    pub manifest: Option<PathBuf>,
    /// What logs, `lookout detect` and the stats call it: the manifest's (or model's) file stem.
    pub name: String,
    /// The ONNX file.
    pub file: PathBuf,
    pub sha256: Option<String>,
    pub family: Family,
    pub precision: Precision,
    /// A manifest of the same network in fp16, for providers that gain from it.
    pub fp16_variant: Option<PathBuf>,
    /// `None` for a plain `.onnx`: the model's first input, and its size, once loaded.
    pub input_name: Option<String>,
    pub geometry: Option<Geometry>,
    pub normalize: Normalize,
    /// The input's element type (and so its layout): `input.dtype`.
    pub input_type: InputType,
    pub labels: LabelTable,
    pub score_threshold: f32,
    pub nms_iou: f32,
}

/// One problem in a manifest, by key.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// Everything that can be wrong with a manifest. Each message names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "model manifest {path} not found: create it (see docs/models.md, 'Model manifests'), or name a model in models/"
    )]
    Missing { path: PathBuf },
    #[error("cannot read model manifest {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{}", list_problems(path, problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

fn list_problems(path: &Path, problems: &[Problem]) -> String {
    let all: Vec<String> = problems
        .iter()
        .map(|p| {
            if p.key.is_empty() {
                format!("{}: {}", path.display(), p.message)
            } else {
                format!("{}: {}: {}", path.display(), p.key, p.message)
            }
        })
        .collect();
    all.join("; ")
}

/// `inference.model` or `--model` as written → the file it means: a bare name (no extension,
/// no slash) is `<dir>/models/<name>.toml`; other relative paths are relative to `dir`.
pub fn resolve_model(dir: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.extension().is_none() && p.components().count() == 1 && !value.is_empty() {
        return dir.join(MODELS_DIR).join(format!("{value}.toml"));
    }
    if p.is_absolute() { p.to_path_buf() } else { dir.join(p) }
}

/// True when `path` names a manifest rather than an ONNX file.
pub fn is_manifest(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
}

/// Providers whose kernels run fp16 faster than fp32. CPU kernels mostly do not (they convert
/// back to fp32), so CPU keeps the fp32 model.
pub fn provider_gains_from_fp16(provider: &str) -> bool {
    matches!(provider, "cuda" | "tensorrt")
}

impl ModelSpec {
    /// A plain `.onnx` path: YOLOX with the recipe's defaults (models/README.md), as before manifests.
    pub fn plain_yolox(file: &Path) -> ModelSpec {
        ModelSpec {
            manifest: None,
            name: file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "model".into()),
            file: file.to_path_buf(),
            sha256: None,
            family: Family::Yolox { output: None, strides: DEFAULT_STRIDES.to_vec() },
            precision: Precision::Fp32,
            fp16_variant: None,
            input_name: None,
            geometry: None,
            normalize: Normalize::yolox(),
            input_type: InputType::Float32,
            labels: LabelTable::default(),
            score_threshold: DEFAULT_SCORE_THRESHOLD,
            nms_iou: DEFAULT_NMS_IOU,
        }
    }

    /// Load `path`: a manifest (parsed, validated, its model file checked by sha256) or a
    /// plain `.onnx` (not read here: the session reports a missing file).
    pub fn load(path: &Path) -> Result<ModelSpec, ManifestError> {
        if !is_manifest(path) {
            return Ok(ModelSpec::plain_yolox(path));
        }
        if !path.exists() {
            return Err(ManifestError::Missing { path: path.to_path_buf() });
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ManifestError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
        let spec = ModelSpec::parse(&text, path)
            .map_err(|problems| ManifestError::Invalid { path: path.to_path_buf(), problems })?;
        if let Some(problem) = verify_file(&spec.file, spec.sha256.as_deref()) {
            return Err(ManifestError::Invalid { path: path.to_path_buf(), problems: vec![problem] });
        }
        Ok(spec)
    }

    /// Parse and validate a manifest's text; `path` is where it lives (files are relative to
    /// it). Pure: reports every problem at once.
    pub fn parse(text: &str, path: &Path) -> Result<ModelSpec, Vec<Problem>> {
        let problem = |key: &str, message: String| Problem { key: key.to_string(), message };
        if let Some((line, column, message)) = crate::config::locate::syntax_error(text) {
            return Err(vec![problem("", format!("not valid TOML at line {line}, column {column}: {message}"))]);
        }
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| vec![problem("", format!("not valid TOML: {}", e.message()))])?;
        // `message()`, not `to_string()`: the latter appends "in `input`" on a second line, and
        // the key path is reported on its own.
        let raw: RawManifest = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = e.path().to_string();
            vec![problem(if key == "." { "" } else { &key }, e.into_inner().message().to_string())]
        })?;
        let mut p = Vec::new();
        let base = path.parent().unwrap_or(Path::new("."));
        let file = base.join(&raw.file);
        let sha256 = raw.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            p.push(problem(
                "sha256",
                format!("`{}` is not a sha256 (64 hex digits); run `sha256sum {}`", raw.sha256, file.display()),
            ));
        }
        let precision = match raw.precision.as_deref().unwrap_or("fp32") {
            "fp32" => Precision::Fp32,
            "fp16" => Precision::Fp16,
            "int8" => Precision::Int8,
            other => {
                p.push(problem("precision", format!("`{other}` must be \"fp32\", \"fp16\" or \"int8\"")));
                Precision::Fp32
            }
        };
        let labels = match raw.labels {
            RawLabels::Named(n) if n == "coco80" => LabelTable::default(),
            RawLabels::Named(n) => {
                p.push(problem(
                    "labels",
                    format!("`{n}` is not a known label set; write \"coco80\" or a list of names"),
                ));
                LabelTable::default()
            }
            RawLabels::List(names) => {
                if names.is_empty() || names.iter().any(|n| n.trim().is_empty()) {
                    p.push(problem("labels", "must list at least one name, none of them empty".into()));
                }
                LabelTable::new(&names)
            }
        };
        let unit = |p: &mut Vec<Problem>, key: &str, v: f32| {
            if !(v > 0.0 && v < 1.0) {
                p.push(problem(key, format!("{v} must be above 0 and below 1")));
            }
            v
        };
        let score_threshold = unit(&mut p, "score_threshold", raw.score_threshold.unwrap_or(DEFAULT_SCORE_THRESHOLD));
        let nms_iou = unit(&mut p, "nms_iou", raw.nms_iou.unwrap_or(DEFAULT_NMS_IOU));

        let i = raw.input;
        if i.name.is_empty() {
            p.push(problem("input.name", "must name the model's image input".into()));
        }
        for (key, v) in [("input.width", i.width), ("input.height", i.height)] {
            if v == 0 || v > 4096 {
                p.push(problem(key, format!("{v} must be between 1 and 4096")));
            }
        }
        let bgr = match i.channel_order.as_str() {
            "bgr" => true,
            "rgb" => false,
            other => {
                p.push(problem("input.channel_order", format!("`{other}` must be \"rgb\" or \"bgr\"")));
                false
            }
        };
        let placement = match i.resize.as_str() {
            "letterbox_top_left" => Placement::TopLeft,
            "letterbox_center" => Placement::Center,
            "stretch" => Placement::Stretch,
            other => {
                p.push(problem(
                    "input.resize",
                    format!("`{other}` must be \"letterbox_top_left\", \"letterbox_center\" or \"stretch\""),
                ));
                Placement::TopLeft
            }
        };
        let scale = i.scale.unwrap_or(1.0);
        if !(scale.is_finite() && scale > 0.0) {
            p.push(problem(
                "input.scale",
                format!("{scale} must be above 0 (1 for raw 0..255, 0.00392156862745098 for 0..1)"),
            ));
        }
        let std = i.std.unwrap_or([1.0; 3]);
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            p.push(problem("input.std", format!("{std:?}: every value must be above 0")));
        }
        let mean = i.mean.unwrap_or([0.0; 3]);
        let pad_value = i.pad_value.unwrap_or(PAD_VALUE);
        if !(0.0..=255.0).contains(&pad_value) {
            p.push(problem("input.pad_value", format!("{pad_value} must be a pixel value, 0 to 255")));
        }
        let input_type = match i.dtype.as_deref().unwrap_or("float32") {
            "float32" => InputType::Float32,
            "uint8" => {
                // The graph normalises: a host-side scale, mean or std would be applied twice.
                for (key, set) in [
                    ("input.scale", i.scale.is_some()),
                    ("input.mean", i.mean.is_some()),
                    ("input.std", i.std.is_some()),
                ] {
                    if set {
                        p.push(problem(key, "does not apply to a uint8 input: the model normalises inside its graph (scripts/uint8_input.py puts it there); remove it".into()));
                    }
                }
                if pad_value.fract() != 0.0 {
                    p.push(problem(
                        "input.pad_value",
                        format!("{pad_value} must be a whole pixel value for a uint8 input"),
                    ));
                }
                InputType::Uint8
            }
            other => {
                p.push(problem("input.dtype", format!("`{other}` must be \"float32\" or \"uint8\"")));
                InputType::Float32
            }
        };
        let geometry = Geometry { width: i.width.max(1), height: i.height.max(1), placement };

        let family = build_family(&raw.family, raw.output, &mut p);
        let fp16_variant = raw.fp16_variant.map(|v| base.join(v));
        if !p.is_empty() {
            return Err(p);
        }
        Ok(ModelSpec {
            manifest: Some(path.to_path_buf()),
            name: path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
            file,
            sha256: Some(sha256),
            family,
            precision,
            fp16_variant,
            input_name: Some(i.name),
            geometry: Some(geometry),
            normalize: Normalize::new(bgr, scale, mean, std, pad_value),
            input_type,
            labels,
            score_threshold,
            nms_iou,
        })
    }

    /// Where errors about this model point: the manifest, else the ONNX file.
    pub fn origin(&self) -> &Path {
        self.manifest.as_deref().unwrap_or(&self.file)
    }

    /// The fp16 manifest to load instead of this one on `provider`, if the provider gains from
    /// fp16 and this manifest names a variant. On CPU: never.
    pub fn variant_for(&self, provider: &str) -> Option<&Path> {
        if self.precision == Precision::Fp32 && provider_gains_from_fp16(provider) {
            self.fp16_variant.as_deref()
        } else {
            None
        }
    }
}

fn build_family(family: &str, o: RawOutput, p: &mut Vec<Problem>) -> Family {
    let problem = |key: &str, message: String| Problem { key: key.to_string(), message };
    // Keys that belong to other families are mistakes, as unknown keys are.
    let present: [(&str, bool); 8] = [
        ("name", o.name.is_some()),
        ("strides", o.strides.is_some()),
        ("scores", o.scores.is_some()),
        ("boxes", o.boxes.is_some()),
        ("reg_max", o.reg_max.is_some()),
        ("transposed", o.transposed.is_some()),
        ("box_format", o.box_format.is_some()),
        ("objectness", o.objectness.is_some()),
    ];
    let allowed: &[&str] = match family {
        "yolox" => &["name", "strides"],
        "nanodet" => &["strides", "scores", "boxes", "reg_max"],
        "yolo_anchor_free" => &["name", "transposed", "box_format", "objectness"],
        other => {
            p.push(problem("family", format!("`{other}` must be \"yolox\", \"nanodet\" or \"yolo_anchor_free\"")));
            return Family::Yolox { output: None, strides: DEFAULT_STRIDES.to_vec() };
        }
    };
    for (key, is_set) in present {
        if is_set && !allowed.contains(&key) {
            p.push(problem(
                &format!("output.{key}"),
                format!("does not apply to family `{family}`; its output keys are {}", allowed.join(", ")),
            ));
        }
    }
    let mut required = |key: &str, v: Option<String>| {
        v.unwrap_or_else(|| {
            p.push(problem(&format!("output.{key}"), format!("is required for family `{family}`")));
            String::new()
        })
    };
    let strides = o.strides.clone().unwrap_or_else(|| DEFAULT_STRIDES.to_vec());
    let bad_strides = strides.is_empty() || strides.iter().any(|&s| s == 0 || s > 512);
    match family {
        "yolox" => {
            let output = required("name", o.name);
            if bad_strides {
                p.push(problem("output.strides", format!("{strides:?} must list strides between 1 and 512")));
            }
            Family::Yolox { output: Some(output), strides }
        }
        "nanodet" => {
            let (scores, boxes) = (o.scores.unwrap_or_default(), o.boxes.unwrap_or_default());
            if bad_strides {
                p.push(problem("output.strides", format!("{strides:?} must list strides between 1 and 512")));
            }
            for (key, names) in [("output.scores", &scores), ("output.boxes", &boxes)] {
                if names.len() != strides.len() {
                    p.push(problem(
                        key,
                        format!("must name one output per stride ({} strides: {strides:?})", strides.len()),
                    ));
                }
            }
            let reg_max = o.reg_max.unwrap_or(DEFAULT_REG_MAX);
            if reg_max == 0 || reg_max > 64 {
                p.push(problem("output.reg_max", format!("{reg_max} must be between 1 and 64")));
            }
            Family::NanoDet { scores, boxes, strides, reg_max }
        }
        _ => {
            let output = required("name", o.name);
            let box_format = match required("box_format", o.box_format).as_str() {
                "cxcywh" => BoxFormat::CxCyWh,
                "xyxy" => BoxFormat::XyXy,
                "" => BoxFormat::CxCyWh,
                other => {
                    p.push(problem("output.box_format", format!("`{other}` must be \"cxcywh\" or \"xyxy\"")));
                    BoxFormat::CxCyWh
                }
            };
            let transposed = o.transposed.unwrap_or_else(|| {
                p.push(problem(
                    "output.transposed",
                    "is required for family `yolo_anchor_free`: true for [1, 4+C, N] (YOLOv8), false for [1, N, 4+C]"
                        .into(),
                ));
                true
            });
            let objectness = o.objectness.unwrap_or_else(|| {
                p.push(problem(
                    "output.objectness",
                    "is required for family `yolo_anchor_free`: true when a column between the box and the class scores holds objectness"
                        .into(),
                ));
                false
            });
            Family::YoloAnchorFree { output, transposed, box_format, objectness }
        }
    }
}

/// `None` when `file` exists and matches `sha256`; else the problem, naming the fix.
fn verify_file(file: &Path, sha256: Option<&str>) -> Option<Problem> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            return Some(Problem {
                key: "file".into(),
                message: format!(
                    "{}: {e}; run scripts/setup (or scripts/quantize for the INT8 model) to place it",
                    file.display()
                ),
            });
        }
    };
    let want = sha256?;
    let got = hex(&Sha256::digest(&bytes));
    (got != want).then(|| Problem {
        key: "sha256".into(),
        message: format!(
            "{} has sha256 {got} but the manifest says {want}: this is not the file the manifest describes; place the right file or, if the file is right, update sha256",
            file.display()
        ),
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A tensor shape as the ONNX file declares it; -1 for a dynamic dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Io {
    pub name: String,
    pub shape: Vec<i64>,
    /// The element type as ONNX names it in lower case (`float32`, `uint8`, `float16`, ...);
    /// empty when not a tensor.
    pub dtype: String,
}

struct Dims<'a>(&'a [i64]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d: Vec<String> = self.0.iter().map(|v| if *v < 0 { "?".to_string() } else { v.to_string() }).collect();
        write!(f, "[{}]", d.join(","))
    }
}

/// A plain `.onnx` (no manifest): take the input name, size and output from the model, as
/// before manifests, and refuse what is not YOLOX-shaped.
pub fn resolve_plain(spec: &mut ModelSpec, inputs: &[Io], outputs: &[Io]) -> Result<(), String> {
    if spec.manifest.is_some() {
        return Ok(());
    }
    let input = inputs.first().ok_or("does not look like a YOLOX detector: it has no inputs")?;
    let size = match input.shape.as_slice() {
        // A dynamic batch (-1) too: such a model can run several frames at once.
        [b, 3, h, w] if (*b == 1 || *b == -1) && h == w && *h > 0 && h % 32 == 0 => *h as u32,
        _ => {
            return Err(format!(
                "does not look like a YOLOX detector: input `{}` has shape {:?}; expected [1, 3, S, S] with S a multiple of 32 (YOLOX-Nano: [1, 3, 416, 416]); for another model, write a manifest (docs/models.md, 'Model manifests')",
                input.name, input.shape
            ));
        }
    };
    let output = outputs.first().ok_or("does not look like a YOLOX detector: it has no outputs")?;
    let anchors = yolox::anchor_count(size) as i64;
    match output.shape.as_slice() {
        // Any class count: the labels past COCO's 80 read "unknown".
        [b, n, c] if (*b == 1 || *b == -1) && *n == anchors && *c >= 6 => {
            if *c as usize - 5 != COCO.len() {
                let names: Vec<String> = (0..*c as usize - 5)
                    .map(|i| COCO.get(i).map(|s| s.to_string()).unwrap_or_else(|| format!("class{i}")))
                    .collect();
                spec.labels = LabelTable::new(&names);
            }
        }
        _ => {
            return Err(format!(
                "does not look like a YOLOX detector: output `{}` has shape {:?}; expected [1, {anchors}, 5 + classes] for a {size}x{size} input",
                output.name, output.shape
            ));
        }
    }
    spec.input_name = Some(input.name.clone());
    spec.geometry = Some(Geometry::square(size));
    spec.family = Family::Yolox { output: Some(output.name.clone()), strides: DEFAULT_STRIDES.to_vec() };
    Ok(())
}

/// Compare a manifest with the model's real inputs and outputs. The message says what the
/// manifest says, what the model has, and where to fix it.
pub fn check_io(spec: &ModelSpec, inputs: &[Io], outputs: &[Io]) -> Result<(), String> {
    let (Some(name), Some(g)) = (&spec.input_name, spec.geometry) else {
        return Err("the model's input is not known yet".into());
    };
    let Some(input) = inputs.iter().find(|i| &i.name == name) else {
        // Old exporters list weights as inputs too: name the first few real-looking ones.
        let names: Vec<&str> = inputs.iter().take(3).map(|i| i.name.as_str()).collect();
        return Err(format!(
            "input.name is `{name}` but the ONNX model has no such input (its inputs: {}); fix input.name",
            names.join(", ")
        ));
    };
    let want_type = spec.input_type.as_str();
    if input.dtype != want_type {
        let fix = match spec.input_type {
            InputType::Float32 => {
                "a uint8 model needs input.dtype = \"uint8\" (scripts/uint8_input.py writes such a manifest)"
            }
            InputType::Uint8 => {
                "make the uint8 model with scripts/uint8_input.py, or remove input.dtype for a float32 model"
            }
        };
        return Err(format!("input.dtype is {want_type} but the ONNX input `{name}` is {}; {fix}", input.dtype));
    }
    let fits = |d: i64, want: i64| d < 0 || d == want;
    let s = &input.shape;
    let (h, w) = (g.height as i64, g.width as i64);
    let (size_ok, layout) = match spec.input_type {
        InputType::Float32 => {
            (s.len() == 4 && fits(s[0], 1) && fits(s[1], 3) && fits(s[2], h) && fits(s[3], w), "[1,3,height,width]")
        }
        InputType::Uint8 => (
            s.len() == 4 && fits(s[0], 1) && fits(s[1], h) && fits(s[2], w) && fits(s[3], 3),
            "[1,height,width,3] for a uint8 input",
        ),
    };
    if !size_ok {
        return Err(format!(
            "input size {}x{} but the ONNX input `{name}` is {}; fix input.width and input.height (the model wants {layout})",
            g.width,
            g.height,
            Dims(s)
        ));
    }
    let classes = spec.labels.len();
    let names = spec.family.output_names();
    let expected = spec.family.expected_outputs(g.width, g.height, classes);
    for (out_name, want) in names.iter().zip(expected) {
        let Some(o) = outputs.iter().find(|o| o.name == *out_name) else {
            let have: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
            return Err(format!(
                "names output `{out_name}` but the ONNX model has no such output (its outputs: {}); fix [output]",
                have.join(", ")
            ));
        };
        let ok = o.shape.len() == want.len() && o.shape.iter().zip(&want).all(|(&d, w)| w.is_none_or(|w| fits(d, w)));
        if !ok {
            let want_s: Vec<String> =
                want.iter().map(|w| w.map(|v| v.to_string()).unwrap_or_else(|| "N".into())).collect();
            let hint = match &spec.family {
                Family::Yolox { .. } => format!(
                    "expected [1, anchors, 5 + classes] = [{}] for a {}x{} input at strides {:?} and {classes} labels",
                    want_s.join(","),
                    g.width,
                    g.height,
                    strides_of(&spec.family)
                ),
                Family::NanoDet { .. } => format!(
                    "expected [{}] for a {}x{} input with {classes} labels",
                    want_s.join(","),
                    g.width,
                    g.height
                ),
                Family::YoloAnchorFree { .. } => format!(
                    "expected [{}] (4 box values, objectness if set, {classes} labels); check output.transposed, output.objectness and labels",
                    want_s.join(",")
                ),
            };
            return Err(format!("output `{out_name}` is {} in the ONNX model; {hint}", Dims(&o.shape)));
        }
    }
    Ok(())
}

fn strides_of(f: &Family) -> Vec<u32> {
    match f {
        Family::Yolox { strides, .. } | Family::NanoDet { strides, .. } => strides.clone(),
        Family::YoloAnchorFree { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YOLOX: &str = r#"
file = "yolox_nano.onnx"
sha256 = "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14"
family = "yolox"
labels = "coco80"
score_threshold = 0.3
nms_iou = 0.45
fp16_variant = "yolox_nano_fp16.toml"

[input]
name = "images"
width = 416
height = 416
channel_order = "bgr"
resize = "letterbox_top_left"
pad_value = 114

[output]
name = "output"
"#;

    fn parse(text: &str) -> Result<ModelSpec, Vec<Problem>> {
        ModelSpec::parse(text, Path::new("/m/models/x.toml"))
    }

    fn io(name: &str, shape: &[i64]) -> Io {
        Io { name: name.into(), shape: shape.to_vec(), dtype: "float32".into() }
    }

    #[test]
    fn a_yolox_manifest_parses_with_its_defaults() {
        let m = parse(YOLOX).unwrap();
        assert_eq!(m.file, Path::new("/m/models/yolox_nano.onnx"));
        assert_eq!(m.name, "x");
        assert_eq!(m.family, Family::Yolox { output: Some("output".into()), strides: vec![8, 16, 32] });
        assert_eq!(m.geometry, Some(Geometry::square(416)));
        assert_eq!(m.normalize, Normalize::yolox());
        assert_eq!(m.labels.len(), 80);
        assert_eq!(m.precision, Precision::Fp32);
        assert_eq!(m.fp16_variant.as_deref(), Some(Path::new("/m/models/yolox_nano_fp16.toml")));
    }

    #[test]
    fn the_committed_manifests_parse() {
        for f in ["yolox_nano.toml", "nanodet_m_320.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(f);
            let text = std::fs::read_to_string(&path).unwrap();
            let m = ModelSpec::parse(&text, &path).unwrap_or_else(|p| panic!("{f}: {p:?}"));
            assert_eq!(m.labels.len(), 80, "{f}");
        }
    }

    #[test]
    fn an_int8_manifest_loads_with_its_precision() {
        let text = YOLOX
            .replace("family = \"yolox\"", "family = \"yolox\"\nprecision = \"int8\"")
            .replace("yolox_nano.onnx", "yolox_nano_int8.onnx");
        let m = parse(&text).unwrap();
        assert_eq!(m.precision, Precision::Int8);
        assert_eq!(m.file, Path::new("/m/models/yolox_nano_int8.onnx"));
        assert_eq!(m.variant_for("cuda"), None, "only an fp32 manifest points to a variant");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_each_reported() {
        let e = parse(&YOLOX.replace("pad_value = 114", "pad_value = 114\npadding = 3")).unwrap_err();
        assert_eq!(e[0].key, "input.padding", "{e:?}");
        assert!(e[0].message.contains("unknown field"), "{e:?}");
        let bad = YOLOX
            .replace("\"bgr\"", "\"bgra\"")
            .replace("letterbox_top_left", "crop")
            .replace("sha256 = \"695e", "sha256 = \"zz5e");
        let e = parse(&bad).unwrap_err();
        let keys: Vec<&str> = e.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["sha256", "input.channel_order", "input.resize"], "{e:?}");
    }

    #[test]
    fn output_keys_of_another_family_are_refused() {
        let e = parse(&YOLOX.replace("name = \"output\"", "name = \"output\"\nreg_max = 7")).unwrap_err();
        assert_eq!(e[0].key, "output.reg_max");
        assert!(e[0].message.contains("does not apply to family `yolox`"), "{e:?}");
    }

    #[test]
    fn anchor_free_needs_its_layout_spelled_out() {
        let text = YOLOX.replace("family = \"yolox\"", "family = \"yolo_anchor_free\"");
        let e = parse(&text).unwrap_err();
        let keys: Vec<&str> = e.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["output.box_format", "output.transposed", "output.objectness"]);
        let ok = text.replace(
            "name = \"output\"",
            "name = \"output0\"\ntransposed = true\nbox_format = \"cxcywh\"\nobjectness = false",
        );
        let m = parse(&ok).unwrap();
        assert_eq!(m.family.expected_outputs(416, 416, 80), vec![vec![Some(1), Some(84), None]]);
    }

    #[test]
    fn custom_labels_and_normalisation() {
        let text = YOLOX.replace("labels = \"coco80\"", "labels = [\"forklift\", \"pallet\"]").replace(
            "channel_order = \"bgr\"",
            "channel_order = \"rgb\"\nscale = 0.00392156862745098\nmean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]",
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.labels.names(), ["forklift", "pallet"]);
        assert!(!m.normalize.bgr);
        assert!((255.0 * m.normalize.mul[0] + m.normalize.add[0] - (1.0 - 0.485) / 0.229).abs() < 1e-4);
        let e = parse(&YOLOX.replace("\"coco80\"", "\"coco91\"")).unwrap_err();
        assert_eq!(e[0].key, "labels");
    }

    #[test]
    fn check_io_names_the_size_mismatch() {
        let m = parse(YOLOX).unwrap();
        let ok_out = [io("output", &[1, 3549, 85])];
        assert_eq!(check_io(&m, &[io("images", &[1, 3, 416, 416])], &ok_out), Ok(()));
        assert_eq!(
            check_io(&m, &[io("images", &[-1, 3, 416, 416])], &[io("output", &[-1, 3549, 85])]),
            Ok(()),
            "a dynamic batch is fine"
        );
        let e = check_io(&m, &[io("images", &[1, 3, 320, 320])], &ok_out).unwrap_err();
        assert_eq!(
            e,
            "input size 416x416 but the ONNX input `images` is [1,3,320,320]; fix input.width and input.height (the model wants [1,3,height,width])"
        );
        let e = check_io(&m, &[io("x", &[1, 3, 416, 416])], &ok_out).unwrap_err();
        assert!(e.starts_with("input.name is `images` but the ONNX model has no such input"), "{e}");
        let e = check_io(&m, &[io("images", &[1, 3, 416, 416])], &[io("output", &[1, 3549, 6])]).unwrap_err();
        assert!(e.contains("output `output` is [1,3549,6]") && e.contains("[1,3549,85]"), "{e}");
    }

    #[test]
    fn a_uint8_input_is_nhwc_and_leaves_normalisation_to_the_graph() {
        let text = YOLOX.replace("name = \"images\"", "name = \"images_uint8\"\ndtype = \"uint8\"");
        let m = parse(&text).unwrap();
        assert_eq!(m.input_type, InputType::Uint8);
        assert_eq!(parse(YOLOX).unwrap().input_type, InputType::Float32, "float32 is the default");
        let u8_in = |shape: &[i64]| Io { dtype: "uint8".into(), ..io("images_uint8", shape) };
        let out = [io("output", &[-1, 3549, 85])];
        assert_eq!(check_io(&m, &[u8_in(&[-1, 416, 416, 3])], &out), Ok(()));
        let e = check_io(&m, &[u8_in(&[-1, 3, 416, 416])], &out).unwrap_err();
        assert!(e.contains("is [?,3,416,416]") && e.contains("[1,height,width,3] for a uint8 input"), "{e}");
        // The manifest and the model disagree on the element type, either way round.
        let e = check_io(&m, &[io("images_uint8", &[-1, 416, 416, 3])], &out).unwrap_err();
        assert!(e.starts_with("input.dtype is uint8 but the ONNX input `images_uint8` is float32"), "{e}");
        let e =
            check_io(&parse(YOLOX).unwrap(), &[Io { dtype: "uint8".into(), ..io("images", &[1, 416, 416, 3]) }], &out)
                .unwrap_err();
        assert!(
            e.starts_with("input.dtype is float32 but the ONNX input `images` is uint8")
                && e.contains("needs input.dtype = \"uint8\""),
            "{e}"
        );
    }

    #[test]
    fn a_uint8_input_refuses_host_normalisation_and_unknown_types() {
        let text = YOLOX
            .replace("pad_value = 114", "pad_value = 114.5\ndtype = \"uint8\"\nscale = 0.5\nstd = [1.0, 2.0, 3.0]");
        let e = parse(&text).unwrap_err();
        let keys: Vec<&str> = e.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["input.scale", "input.std", "input.pad_value"], "{e:?}");
        assert!(e[0].message.contains("the model normalises inside its graph"), "{e:?}");
        let e = parse(&YOLOX.replace("pad_value = 114", "pad_value = 114\ndtype = \"int8\"")).unwrap_err();
        assert_eq!(
            (e[0].key.as_str(), e[0].message.as_str()),
            ("input.dtype", "`int8` must be \"float32\" or \"uint8\"")
        );
    }

    #[test]
    fn check_io_for_nanodet_checks_every_level() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/nanodet_m_320.toml");
        let m = ModelSpec::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        let ins = [io("input.1", &[1, 3, 320, 320]), io("weights", &[16])];
        let mut outs: Vec<Io> =
            [8, 16, 32].iter().map(|s| io(&format!("cls_pred_stride_{s}"), &[1, (320 / s) * (320 / s), 80])).collect();
        outs.extend([8, 16, 32].iter().map(|s| io(&format!("dis_pred_stride_{s}"), &[1, (320 / s) * (320 / s), 32])));
        assert_eq!(check_io(&m, &ins, &outs), Ok(()));
        outs[4].shape = vec![1, 400, 40];
        let e = check_io(&m, &ins, &outs).unwrap_err();
        assert!(e.starts_with("output `dis_pred_stride_16` is [1,400,40]"), "{e}");
    }

    #[test]
    fn a_plain_onnx_takes_its_size_from_the_model() {
        let mut m = ModelSpec::plain_yolox(Path::new("models/yolox_nano.onnx"));
        assert_eq!(m.name, "yolox_nano");
        resolve_plain(&mut m, &[io("images", &[1, 3, 640, 640])], &[io("out", &[1, 8400, 85])]).unwrap();
        assert_eq!(m.geometry, Some(Geometry::square(640)));
        assert_eq!(m.family.output_names(), ["out"]);
        let mut m = ModelSpec::plain_yolox(Path::new("x.onnx"));
        let e = resolve_plain(&mut m, &[io("images", &[1, 3, 100, 100])], &[]).unwrap_err();
        assert!(e.contains("does not look like a YOLOX detector") && e.contains("[1, 3, 100, 100]"), "{e}");
    }

    #[test]
    fn fp16_only_where_the_provider_gains() {
        let m = parse(YOLOX).unwrap();
        assert_eq!(m.variant_for("cpu"), None);
        assert_eq!(m.variant_for("openvino"), None);
        assert_eq!(m.variant_for("cuda"), Some(Path::new("/m/models/yolox_nano_fp16.toml")));
        assert_eq!(m.variant_for("tensorrt"), Some(Path::new("/m/models/yolox_nano_fp16.toml")));
    }

    #[test]
    fn bare_names_are_looked_up_in_models() {
        let d = Path::new("/etc/lookout");
        assert_eq!(resolve_model(d, "nanodet_m_320"), Path::new("/etc/lookout/models/nanodet_m_320.toml"));
        assert_eq!(resolve_model(d, "models/x.toml"), Path::new("/etc/lookout/models/x.toml"));
        assert_eq!(resolve_model(d, "/opt/m.onnx"), Path::new("/opt/m.onnx"));
    }

    #[test]
    fn a_file_with_another_sha256_is_named() {
        let f = std::env::temp_dir().join(format!("lookout-sha-{}.onnx", std::process::id()));
        std::fs::write(&f, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(verify_file(&f, Some(abc)), None);
        let p = verify_file(&f, Some(&"0".repeat(64))).unwrap();
        assert_eq!(p.key, "sha256");
        assert!(p.message.contains(&format!("has sha256 {abc} but the manifest says 000")), "{}", p.message);
        let _ = std::fs::remove_file(&f);
        assert_eq!(verify_file(&f, Some(abc)).map(|p| p.key), Some("file".to_string()));
    }
}
