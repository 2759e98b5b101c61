//! The manifest against the model's real inputs and outputs, as ORT reads them from the ONNX
//! file: [`check_io`] names what the manifest says, what the model has, and the key to fix;
//! [`resolve_plain`] fills in a plain `.onnx` (no manifest) from the model, read as YOLOX. Pure:
//! the session hands in the [`Io`]s.

use std::fmt;

use super::{DEFAULT_STRIDES, Family, InputType, ModelSpec};
use crate::detect::labels::{COCO, LabelTable};
use crate::detect::letterbox::Geometry;
use crate::detect::yolox;

/// A tensor shape as the ONNX file declares it; -1 for a dynamic dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Io {
    pub name: String,
    pub shape: Vec<i64>,
    /// The element type as ONNX names it in lower case (`float32`, `uint8`, `float16`, ...);
    /// empty when not a tensor.
    pub dtype: String,
}

/// How a model's real inputs and outputs differ from what its manifest says. Each message says
/// both sides and which key to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IoMismatch {
    /// A plain `.onnx` that [`resolve_plain`] has not filled in.
    #[error("the model's input is not known yet")]
    InputUnknown,
    /// `inputs`: the first few the model has (old exporters list their weights as inputs too).
    #[error(
        "input.name is `{name}` but the ONNX model has no such input (its inputs: {}); fix input.name",
        inputs.join(", ")
    )]
    NoSuchInput { name: String, inputs: Vec<String> },
    #[error("input.dtype is {} but the ONNX input `{name}` is {found}; {}", want.as_str(), dtype_fix(*want))]
    InputDtype { want: InputType, name: String, found: String },
    /// `layout`: the shape the model must have, in words.
    #[error(
        "input size {width}x{height} but the ONNX input `{name}` is {}; fix input.width and input.height (the model wants {layout})",
        Dims(shape)
    )]
    InputSize { width: u32, height: u32, name: String, shape: Vec<i64>, layout: &'static str },
    #[error(
        "names output `{name}` but the ONNX model has no such output (its outputs: {}); fix [output]",
        outputs.join(", ")
    )]
    NoSuchOutput { name: String, outputs: Vec<String> },
    /// `expected`: the shape the family wants, and what it follows from.
    #[error("output `{name}` is {} in the ONNX model; {expected}", Dims(shape))]
    OutputShape { name: String, shape: Vec<i64>, expected: String },
}

/// How to make the manifest's `input.dtype` and the model agree, when the manifest says `want`.
fn dtype_fix(want: InputType) -> &'static str {
    match want {
        InputType::Float32 => {
            "a uint8 model needs input.dtype = \"uint8\" (scripts/uint8_input.py writes such a manifest)"
        }
        InputType::Uint8 => {
            "make the uint8 model with scripts/uint8_input.py, or remove input.dtype for a float32 model"
        }
    }
}

/// Why a plain `.onnx` (no manifest) is not read as YOLOX. For another model, write a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotYolox {
    #[error("does not look like a YOLOX detector: it has no inputs")]
    NoInputs,
    #[error(
        "does not look like a YOLOX detector: input `{name}` has shape {shape:?}; expected [1, 3, S, S] with S a multiple of 32 (YOLOX-Nano: [1, 3, 416, 416]); for another model, write a manifest (docs/models.md, 'Model manifests')"
    )]
    InputShape { name: String, shape: Vec<i64> },
    #[error("does not look like a YOLOX detector: it has no outputs")]
    NoOutputs,
    #[error(
        "does not look like a YOLOX detector: output `{name}` has shape {shape:?}; expected [1, {anchors}, 5 + classes] for a {size}x{size} input"
    )]
    OutputShape { name: String, shape: Vec<i64>, anchors: i64, size: u32 },
}

/// A shape as messages write it: `[1,3,416,416]`, `?` for a dynamic dimension.
struct Dims<'a>(&'a [i64]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d: Vec<String> = self.0.iter().map(|v| if *v < 0 { "?".to_string() } else { v.to_string() }).collect();
        write!(f, "[{}]", d.join(","))
    }
}

/// A plain `.onnx` (no manifest): take the input name, size and output from the model, as
/// before manifests, and refuse what is not YOLOX-shaped.
pub fn resolve_plain(spec: &mut ModelSpec, inputs: &[Io], outputs: &[Io]) -> Result<(), NotYolox> {
    if spec.manifest.is_some() {
        return Ok(());
    }
    let input = inputs.first().ok_or(NotYolox::NoInputs)?;
    let size = match input.shape.as_slice() {
        // A dynamic batch (-1) too: such a model can run several frames at once.
        [b, 3, h, w] if (*b == 1 || *b == -1) && h == w && *h > 0 && h % 32 == 0 => *h as u32,
        _ => return Err(NotYolox::InputShape { name: input.name.clone(), shape: input.shape.clone() }),
    };
    let output = outputs.first().ok_or(NotYolox::NoOutputs)?;
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
            return Err(NotYolox::OutputShape {
                name: output.name.clone(),
                shape: output.shape.clone(),
                anchors,
                size,
            });
        }
    }
    spec.input_name = Some(input.name.clone());
    spec.geometry = Some(Geometry::square(size));
    spec.family = Family::Yolox { output: Some(output.name.clone()), strides: DEFAULT_STRIDES.to_vec() };
    Ok(())
}

/// Compare a manifest with the model's real inputs and outputs. The error says what the
/// manifest says, what the model has, and where to fix it.
pub fn check_io(spec: &ModelSpec, inputs: &[Io], outputs: &[Io]) -> Result<(), IoMismatch> {
    let (Some(name), Some(g)) = (&spec.input_name, spec.geometry) else {
        return Err(IoMismatch::InputUnknown);
    };
    let Some(input) = inputs.iter().find(|i| &i.name == name) else {
        // Old exporters list weights as inputs too: name the first few real-looking ones.
        let inputs = inputs.iter().take(3).map(|i| i.name.clone()).collect();
        return Err(IoMismatch::NoSuchInput { name: name.clone(), inputs });
    };
    if input.dtype != spec.input_type.as_str() {
        return Err(IoMismatch::InputDtype { want: spec.input_type, name: name.clone(), found: input.dtype.clone() });
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
        return Err(IoMismatch::InputSize {
            width: g.width,
            height: g.height,
            name: name.clone(),
            shape: s.clone(),
            layout,
        });
    }
    let classes = spec.labels.len();
    let names = spec.family.output_names();
    let expected = spec.family.expected_outputs(g.width, g.height, classes);
    for (out_name, want) in names.iter().zip(expected) {
        let Some(o) = outputs.iter().find(|o| o.name == *out_name) else {
            let outputs = outputs.iter().map(|o| o.name.clone()).collect();
            return Err(IoMismatch::NoSuchOutput { name: out_name.to_string(), outputs });
        };
        let ok = o.shape.len() == want.len() && o.shape.iter().zip(&want).all(|(&d, w)| w.is_none_or(|w| fits(d, w)));
        if !ok {
            let want_s: Vec<String> =
                want.iter().map(|w| w.map(|v| v.to_string()).unwrap_or_else(|| "N".into())).collect();
            let expected = match &spec.family {
                Family::Yolox { strides, .. } => format!(
                    "expected [1, anchors, 5 + classes] = [{}] for a {}x{} input at strides {strides:?} and {classes} labels",
                    want_s.join(","),
                    g.width,
                    g.height,
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
            return Err(IoMismatch::OutputShape { name: out_name.to_string(), shape: o.shape.clone(), expected });
        }
    }
    Ok(())
}
