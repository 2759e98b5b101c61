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
//!
//! This file holds what a manifest becomes ([`ModelSpec`]) and its errors; the parts, in the
//! order a manifest meets them:
//!
//! - `raw`: the keys as written (serde structs, each key documented: meaning, unit, default);
//! - `parse`: the text → a [`ModelSpec`], every problem reported at once, key by key;
//! - `family`: [`Family`], the `[output]` keys of each family, and its decoder and shapes;
//! - `model_file`: the ONNX file present and matching its sha256;
//! - `check`: the manifest against the model's real inputs and outputs, once ORT has opened it
//!   (and a plain `.onnx` read as YOLOX).

mod check;
mod family;
mod model_file;
mod parse;
mod raw;

use std::path::{Path, PathBuf};

pub use self::check::{Io, IoMismatch, NotYolox, check_io, resolve_plain};
pub use self::family::Family;
pub use self::model_file::ModelFileError;
use self::model_file::verify_file;
pub use self::raw::{DEFAULT_INPUT_MEAN, DEFAULT_INPUT_SCALE, DEFAULT_INPUT_STD};
use super::labels::LabelTable;
use super::letterbox::{Geometry, Normalize};
use super::{DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD};

/// Where bare model names (`model = "nanodet_m_320"`) are looked up, under the config directory.
pub const MODELS_DIR: &str = "models";
/// The strides YOLOX and NanoDet predict at, when the manifest does not say.
pub const DEFAULT_STRIDES: [u32; 3] = [8, 16, 32];
/// NanoDet's box distribution has `reg_max + 1` bins per side.
pub const DEFAULT_REG_MAX: usize = 7;

/// The share of its fp32 source's detections a variant must find, when its manifest does not
/// say (`min_recall`).
pub const DEFAULT_MIN_RECALL: f64 = 0.9;
/// Where a variant's check images are, relative to its manifest (`check_images`).
pub const DEFAULT_CHECK_IMAGES: &str = "../media";

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
    /// The fp32 manifest this variant was made from; `None` when it is no variant.
    pub variant_of: Option<PathBuf>,
    /// The share of the source's detections this variant must find (`min_recall`).
    pub min_recall: f64,
    /// The folder of images a variant is checked on (`check_images`).
    pub check_images: PathBuf,
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
    #[error("cannot read model manifest {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
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
            variant_of: None,
            min_recall: DEFAULT_MIN_RECALL,
            check_images: file.parent().unwrap_or(Path::new(".")).join(DEFAULT_CHECK_IMAGES),
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
        let text =
            std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        let spec = ModelSpec::parse(&text, path)
            .map_err(|problems| ManifestError::Invalid { path: path.to_path_buf(), problems })?;
        if let Err(e) = verify_file(&spec.file, spec.sha256.as_deref()) {
            return Err(ManifestError::Invalid { path: path.to_path_buf(), problems: vec![e.into()] });
        }
        Ok(spec)
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
        let e = check_io(&m, &[io("images", &[1, 3, 320, 320])], &ok_out).unwrap_err().to_string();
        assert_eq!(
            e,
            "input size 416x416 but the ONNX input `images` is [1,3,320,320]; fix input.width and input.height (the model wants [1,3,height,width])"
        );
        let e = check_io(&m, &[io("x", &[1, 3, 416, 416])], &ok_out).unwrap_err().to_string();
        assert!(e.starts_with("input.name is `images` but the ONNX model has no such input"), "{e}");
        let e =
            check_io(&m, &[io("images", &[1, 3, 416, 416])], &[io("output", &[1, 3549, 6])]).unwrap_err().to_string();
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
        let e = check_io(&m, &[u8_in(&[-1, 3, 416, 416])], &out).unwrap_err().to_string();
        assert!(e.contains("is [?,3,416,416]") && e.contains("[1,height,width,3] for a uint8 input"), "{e}");
        // The manifest and the model disagree on the element type, either way round.
        let e = check_io(&m, &[io("images_uint8", &[-1, 416, 416, 3])], &out).unwrap_err().to_string();
        assert!(e.starts_with("input.dtype is uint8 but the ONNX input `images_uint8` is float32"), "{e}");
        let e =
            check_io(&parse(YOLOX).unwrap(), &[Io { dtype: "uint8".into(), ..io("images", &[1, 416, 416, 3]) }], &out)
                .unwrap_err()
                .to_string();
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
        let e = check_io(&m, &ins, &outs).unwrap_err().to_string();
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
        let e = resolve_plain(&mut m, &[io("images", &[1, 3, 100, 100])], &[]).unwrap_err().to_string();
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
}
