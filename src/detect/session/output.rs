//! The output side of a run: the session's output tensors split into each frame's part (each
//! output's first dimension is the batch), decoded by the model's family, NMS'd per class, and
//! mapped back to source pixels. Everything after [`batch_outputs`] is pure.

use ort::session::SessionOutputs;

use super::ScaledFrame;
use crate::detect::letterbox::{Geometry, Letterbox};
use crate::detect::manifest::ModelSpec;
use crate::detect::nms::nms_per_class;
use crate::detect::{DetectError, Detection};

/// The outputs the family reads (`names`, in [`crate::detect::manifest::Family::output_names`]
/// order), as f32 for the whole batch, each checked to split evenly into `n` frames.
pub(super) fn batch_outputs<'o>(
    outputs: &'o SessionOutputs<'_>,
    names: &[String],
    n: usize,
) -> Result<Vec<&'o [f32]>, DetectError> {
    let mut data = Vec::with_capacity(names.len());
    for name in names {
        let value =
            outputs.get(name.as_str()).ok_or_else(|| DetectError::Run(format!("the model gave no output `{name}`")))?;
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
    Ok(data)
}

/// How a run's outputs become detections: the model (its family and labels), the input it was
/// given, and the thresholds in force.
pub(super) struct Decoding<'a> {
    pub model: &'a ModelSpec,
    pub geometry: Geometry,
    pub score_threshold: f32,
    pub nms_iou: f32,
}

impl Decoding<'_> {
    /// One list of detections per frame, in order. `data` holds each output for the whole batch
    /// of `frames.len()` frames: frame i's part is the i-th of that many equal chunks.
    pub(super) fn detections(&self, data: &[&[f32]], frames: &[ScaledFrame<'_>]) -> Vec<Vec<Detection>> {
        let n = frames.len();
        let classes = self.model.labels.len();
        let (w, h) = (self.geometry.width, self.geometry.height);
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let per_frame: Vec<&[f32]> = data
                    .iter()
                    .map(|d| {
                        let len = d.len() / n;
                        &d[i * len..(i + 1) * len]
                    })
                    .collect();
                let lb = Letterbox::place(f.src_width, f.src_height, self.geometry);
                let cands = self.model.family.decode(&per_frame, w, h, classes, self.score_threshold);
                nms_per_class(cands, self.nms_iou)
                    .into_iter()
                    .map(|c| Detection {
                        class: c.class,
                        label: self.model.labels.name(c.class),
                        score: c.score,
                        bbox: lb.unmap(c.bbox, f.src_width, f.src_height),
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::detect::manifest::Family;
    use crate::detect::yolox;

    /// A 32x32 YOLOX with 2 classes: anchors at strides 8, 16, 32 (16 + 4 + 1 rows of 7).
    fn model() -> ModelSpec {
        let mut m = ModelSpec::plain_yolox(Path::new("x.onnx"));
        m.family = Family::Yolox { output: Some("output".into()), strides: yolox::STRIDES.to_vec() };
        m.labels = crate::detect::labels::LabelTable::new(&["a".to_string(), "b".to_string()]);
        m
    }

    /// One frame's output with a single confident box of `class` on anchor `row`.
    fn frame_output(row: usize, class: usize) -> Vec<f32> {
        let mut d = vec![0.0; 21 * 7];
        // tx, ty = 0.5, tw = th = ln 2: a 16x16 box around the anchor's cell centre.
        d[row * 7..row * 7 + 5].copy_from_slice(&[0.5, 0.5, 2f32.ln(), 2f32.ln(), 0.9]);
        d[row * 7 + 5 + class] = 0.9;
        d
    }

    #[test]
    fn each_frame_gets_its_own_part_of_the_batch() {
        let m = model();
        let decoding = Decoding { model: &m, geometry: Geometry::square(32), score_threshold: 0.3, nms_iou: 0.45 };
        // Frame 0: class b at the first stride-8 anchor; frame 1: class a at the last one.
        let data: Vec<f32> = [frame_output(0, 1), frame_output(15, 0)].concat();
        let rgb = [0u8; 32 * 32 * 3];
        let frame = ScaledFrame { rgb: &rgb, width: 32, height: 32, stride: 96, src_width: 32, src_height: 32 };
        let dets = decoding.detections(&[&data], &[frame, frame]);
        assert_eq!(dets.len(), 2);
        assert_eq!(dets[0].len(), 1, "{dets:?}");
        assert_eq!((dets[0][0].label, dets[0][0].bbox), ("b", [0.0, 0.0, 12.0, 12.0]));
        assert_eq!(dets[1].len(), 1, "{dets:?}");
        assert_eq!((dets[1][0].label, dets[1][0].bbox), ("a", [20.0, 20.0, 32.0, 32.0]));
        assert!((dets[1][0].score - 0.81).abs() < 1e-6);
    }
}
