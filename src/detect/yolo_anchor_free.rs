//! Decoding the anchor-free YOLO layout (YOLOv8 and later exports) into candidate boxes. Pure.
//!
//! One output of N predictions, each `[box (4), objectness (optional), class scores (C)]`, with
//! the box already in input pixels and the scores already through a sigmoid. YOLOv8 writes it
//! channels-first, `[1, 4+C, N]` (`transposed = true` in the manifest); others write `[1, N, 4+C]`.

use super::Candidate;

/// How the four box values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxFormat {
    /// Centre x, centre y, width, height.
    CxCyWh,
    /// Corners x1, y1, x2, y2.
    XyXy,
}

/// How to read the output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub transposed: bool,
    pub box_format: BoxFormat,
    pub objectness: bool,
    pub classes: usize,
}

impl Layout {
    /// Values per prediction: box, objectness if any, classes.
    pub fn channels(&self) -> usize {
        4 + usize::from(self.objectness) + self.classes
    }
}

/// Decode every prediction whose score (`max(cls)`, times objectness when there is one) is
/// above `threshold`. `data` is the whole output; its length gives N.
pub fn decode(data: &[f32], layout: &Layout, threshold: f32) -> Vec<Candidate> {
    let k = layout.channels();
    let mut out = Vec::new();
    if layout.classes == 0 || data.len() < k {
        return out;
    }
    let n = data.len() / k;
    let at = |i: usize, c: usize| if layout.transposed { data[c * n + i] } else { data[i * k + c] };
    let first_class = 4 + usize::from(layout.objectness);
    for i in 0..n {
        let obj = if layout.objectness { at(i, 4) } else { 1.0 };
        if obj <= threshold {
            continue;
        }
        let (mut class, mut best) = (0usize, f32::MIN);
        for c in 0..layout.classes {
            let v = at(i, first_class + c);
            if v > best {
                (class, best) = (c, v);
            }
        }
        let score = obj * best;
        if score <= threshold {
            continue;
        }
        let (a, b, c, d) = (at(i, 0), at(i, 1), at(i, 2), at(i, 3));
        let bbox = match layout.box_format {
            BoxFormat::CxCyWh => [a - c / 2.0, b - d / 2.0, a + c / 2.0, b + d / 2.0],
            BoxFormat::XyXy => [a, b, c, d],
        };
        out.push(Candidate { class, score, bbox });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_cxcywh_without_objectness_like_yolov8() {
        // [1, 4+2, 3]: three predictions, channels first.
        let l = Layout { transposed: true, box_format: BoxFormat::CxCyWh, objectness: false, classes: 2 };
        #[rustfmt::skip]
        let data = [
            10.0, 50.0, 0.0,   // cx
            20.0, 60.0, 0.0,   // cy
            4.0,  10.0, 0.0,   // w
            8.0,  10.0, 0.0,   // h
            0.1,  0.2,  0.9,   // class 0
            0.9,  0.1,  0.0,   // class 1
        ];
        let c = decode(&data, &l, 0.25);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!((c[0].class, c[0].score), (1, 0.9));
        assert_eq!(c[0].bbox, [8.0, 16.0, 12.0, 24.0]);
        assert_eq!((c[1].class, c[1].score), (0, 0.9), "a high score on an empty box still counts");
    }

    #[test]
    fn row_major_xyxy_with_objectness() {
        let l = Layout { transposed: false, box_format: BoxFormat::XyXy, objectness: true, classes: 2 };
        let data = [1.0, 2.0, 3.0, 4.0, 0.5, 0.2, 0.8, /* second row */ 0.0, 0.0, 1.0, 1.0, 0.2, 1.0, 1.0];
        let c = decode(&data, &l, 0.3);
        assert_eq!(c.len(), 1, "the second row's objectness 0.2 keeps it out");
        assert_eq!(c[0].class, 1);
        assert!((c[0].score - 0.4).abs() < 1e-6);
        assert_eq!(c[0].bbox, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_short_tensor_decodes_nothing() {
        let l = Layout { transposed: true, box_format: BoxFormat::XyXy, objectness: false, classes: 80 };
        assert!(decode(&[1.0; 10], &l, 0.1).is_empty());
    }
}
