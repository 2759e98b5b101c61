//! A manifest's text → a [`ModelSpec`]: TOML, then the raw keys, then each value checked, every
//! problem reported at once with its key path (`input.resize`). Pure: the model file is read
//! later ([`ModelSpec::load`]).

use std::path::Path;

use super::raw::{DEFAULT_INPUT_MEAN, DEFAULT_INPUT_SCALE, DEFAULT_INPUT_STD, RawLabels, RawManifest};
use super::{DEFAULT_CHECK_IMAGES, DEFAULT_MIN_RECALL, Family, InputType, ModelSpec, Precision, Problem};
use crate::detect::labels::LabelTable;
use crate::detect::letterbox::{Geometry, Normalize, PAD_VALUE, Placement};
use crate::detect::{DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD};

impl ModelSpec {
    /// Parse and validate a manifest's text; `path` is where it lives (files are relative to
    /// it). Pure: reports every problem at once.
    pub fn parse(text: &str, path: &Path) -> Result<ModelSpec, Vec<Problem>> {
        let problem = |key: &str, message: String| Problem { key: key.to_string(), message };
        if let Some((line, column, message)) = crate::text::locate::syntax_error(text) {
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
        let scale = i.scale.unwrap_or(DEFAULT_INPUT_SCALE);
        if !(scale.is_finite() && scale > 0.0) {
            p.push(problem(
                "input.scale",
                format!("{scale} must be above 0 (1 for raw 0..255, 0.00392156862745098 for 0..1)"),
            ));
        }
        let std = i.std.unwrap_or(DEFAULT_INPUT_STD);
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            p.push(problem("input.std", format!("{std:?}: every value must be above 0")));
        }
        let mean = i.mean.unwrap_or(DEFAULT_INPUT_MEAN);
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

        let family = Family::from_output(&raw.family, raw.output, &mut p);
        let fp16_variant = raw.fp16_variant.map(|v| base.join(v));
        let variant_of = raw.variant_of.map(|v| base.join(v));
        let min_recall = raw.min_recall.unwrap_or(DEFAULT_MIN_RECALL);
        if !(0.0..=1.0).contains(&min_recall) {
            p.push(problem("min_recall", format!("{min_recall} must be between 0 and 1 (0.9: nine in ten)")));
        }
        if raw.min_recall.is_some() && variant_of.is_none() {
            p.push(problem(
                "min_recall",
                "applies to a variant only: set `variant_of` to the fp32 manifest this model was made from".into(),
            ));
        }
        let check_images = base.join(raw.check_images.as_deref().unwrap_or(DEFAULT_CHECK_IMAGES));
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
            variant_of,
            min_recall,
            check_images,
            input_name: Some(i.name),
            geometry: Some(geometry),
            normalize: Normalize::new(bgr, scale, mean, std, pad_value),
            input_type,
            labels,
            score_threshold,
            nms_iou,
        })
    }
}
