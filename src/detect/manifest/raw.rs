//! The manifest as written: serde structs, one field per key, unknown keys refused. Each field's
//! doc says what the key means, its unit and its default; docs/models.md has the same table for
//! operators, and `tests/it/docs.rs` checks that the two name the same keys with the same
//! defaults. Validation into a [`super::ModelSpec`] is in `parse`; the `[output]` keys, which
//! depend on the family, are checked in `family`.

use serde::Deserialize;

/// The default of `input.scale`: pixel values stay 0..255.
pub const DEFAULT_INPUT_SCALE: f32 = 1.0;
/// The default of `input.mean`: nothing subtracted.
pub const DEFAULT_INPUT_MEAN: [f32; 3] = [0.0; 3];
/// The default of `input.std`: nothing divided.
pub const DEFAULT_INPUT_STD: [f32; 3] = [1.0; 3];

/// `models/<name>.toml`, the top level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    /// The ONNX file, relative to the manifest's directory. Required.
    pub file: String,
    /// The file's sha256, 64 hex digits (`sha256sum`); a file with another digest is refused.
    /// Required.
    pub sha256: String,
    /// The output decoder: `yolox`, `nanodet` or `yolo_anchor_free`. Required.
    pub family: String,
    /// `fp32`, `fp16` or `int8`: informative, and only an fp32 manifest points to an
    /// `fp16_variant`. Default `fp32`.
    pub precision: Option<String>,
    /// A manifest of the same network in fp16, relative to this one, loaded instead on the
    /// providers that gain from fp16 (cuda, tensorrt) when it loads. Default: none.
    pub fp16_variant: Option<String>,
    /// The fp32 manifest this model was made from (quantized, converted or resized), relative
    /// to this one. A variant is checked against it before it runs: its detections on the
    /// check images, on its provider, must find `min_recall` of the source's on the CPU
    /// provider (`detect::variant`). Default: none (not a variant).
    pub variant_of: Option<String>,
    /// The share of the source's detections (same label, IoU >= 0.5) a variant must find on
    /// the check images to run; 0 to 1. Default [`super::DEFAULT_MIN_RECALL`] (0.9).
    pub min_recall: Option<f64>,
    /// The folder of check images (`.jpg`, `.png`) a variant is checked on, relative to this
    /// manifest. Default [`super::DEFAULT_CHECK_IMAGES`] (`../media`: the sample images, which
    /// the package installs beside the models).
    pub check_images: Option<String>,
    /// The class names, in the model's class order. Required.
    pub labels: RawLabels,
    /// The default minimum score of a detection, above 0 and below 1. Default
    /// [`crate::detect::DEFAULT_SCORE_THRESHOLD`] (0.3).
    pub score_threshold: Option<f32>,
    /// Per-class NMS: a box whose IoU with a better box of its class is above this is dropped;
    /// above 0 and below 1. Default [`crate::detect::DEFAULT_NMS_IOU`] (0.45).
    pub nms_iou: Option<f32>,
    /// `[input]`: the image input. Required.
    pub input: RawInput,
    /// `[output]`: the outputs the family's decoder reads. Which keys apply depends on `family`.
    #[serde(default)]
    pub output: RawOutput,
}

/// `labels`: a named label set or the names themselves.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawLabels {
    /// `"coco80"`: COCO's 80 names in the usual order (the only named set).
    Named(String),
    /// One name per class, none empty.
    List(Vec<String>),
}

/// `[input]`: which input takes the image, its size, and how pixels become input values.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInput {
    /// The image input's name (chosen by name: old exporters also list their weights as
    /// inputs). Required.
    pub name: String,
    /// The input's width in pixels, 1 to 4096. Required.
    pub width: u32,
    /// The input's height in pixels, 1 to 4096. Required.
    pub height: u32,
    /// `rgb` or `bgr`: the order of the input's planes (of its channels for uint8). Required.
    pub channel_order: String,
    /// Pixel values 0..255 are multiplied by this first (`0.00392156862745098` for 0..1); above
    /// 0. Default [`DEFAULT_INPUT_SCALE`] (1). Not for a uint8 input.
    pub scale: Option<f32>,
    /// Subtracted per plane, in `channel_order`, after `scale`. Default [`DEFAULT_INPUT_MEAN`]
    /// (0, 0, 0). Not for a uint8 input.
    pub mean: Option<[f32; 3]>,
    /// Divided per plane, in `channel_order`, after `mean`; each above 0. Default
    /// [`DEFAULT_INPUT_STD`] (1, 1, 1). Not for a uint8 input.
    pub std: Option<[f32; 3]>,
    /// How a frame is fitted to the input: `letterbox_top_left` (aspect kept, pasted top-left:
    /// YOLOX), `letterbox_center` (aspect kept, centred: Ultralytics) or `stretch` (NanoDet).
    /// Required.
    pub resize: String,
    /// The letterbox canvas's grey, as a 0..255 pixel value (normalised like the pixels; whole
    /// for a uint8 input). Default [`crate::detect::letterbox::PAD_VALUE`] (114).
    pub pad_value: Option<f32>,
    /// The input's element type: `float32` (f32 NCHW, the host normalises) or `uint8` (u8 NHWC,
    /// the graph normalises). Default `float32`.
    pub dtype: Option<String>,
}

/// `[output]`: the keys of every family together; `family` checks that only its own are set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    /// `yolox`, `yolo_anchor_free`: the output tensor's name. Required for those families.
    pub name: Option<String>,
    /// `yolox`, `nanodet`: the strides of the anchor grids in output order, in input pixels,
    /// each 1 to 512. Default [`super::DEFAULT_STRIDES`] (8, 16, 32).
    pub strides: Option<Vec<u32>>,
    /// `nanodet`: one class-score output per stride, `[1, N, C]`, sigmoided. Required there.
    pub scores: Option<Vec<String>>,
    /// `nanodet`: one box-distribution output per stride, `[1, N, 4 * (reg_max + 1)]`. Required
    /// there.
    pub boxes: Option<Vec<String>>,
    /// `nanodet`: bins per box side, less one; 1 to 64. Default [`super::DEFAULT_REG_MAX`] (7).
    pub reg_max: Option<usize>,
    /// `yolo_anchor_free`: `true` for `[1, 4+C, N]` (YOLOv8's export), `false` for
    /// `[1, N, 4+C]`. Required there.
    pub transposed: Option<bool>,
    /// `yolo_anchor_free`: `cxcywh` or `xyxy`, in input pixels. Required there.
    pub box_format: Option<String>,
    /// `yolo_anchor_free`: whether a column between the box and the class scores holds
    /// objectness (score = objectness × best class). Required there.
    pub objectness: Option<bool>,
}
