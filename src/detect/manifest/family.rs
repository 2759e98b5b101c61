//! The model families: which decoder reads the outputs, what it needs to know about them, the
//! `[output]` keys each family takes, and the shapes it expects of its outputs. The decoders
//! themselves are [`crate::detect::yolox`], [`crate::detect::nanodet`] and
//! [`crate::detect::yolo_anchor_free`].

use super::raw::RawOutput;
use super::{DEFAULT_REG_MAX, DEFAULT_STRIDES, Problem};
use crate::detect::yolo_anchor_free::{BoxFormat, Layout};
use crate::detect::{Candidate, nanodet, yolo_anchor_free, yolox};

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

    /// The family named by `family`, from the `[output]` keys; each problem (a key of another
    /// family, a required key missing, a value out of range) is added to `p`.
    pub(super) fn from_output(family: &str, o: RawOutput, p: &mut Vec<Problem>) -> Family {
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
}
