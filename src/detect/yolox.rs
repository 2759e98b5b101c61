//! Decoding YOLOX's raw output tensor into candidate boxes. Pure.
//!
//! The output is `[N, 5 + C]` rows for anchor points of strides 8, 16 and 32, row-major
//! (y, then x) within each level: `[tx, ty, tw, th, obj, cls0..clsC]`, with obj and cls already
//! through a sigmoid (see models/README.md, "The recipes the code follows").

/// The strides YOLOX-Nano predicts at, in output order.
pub const STRIDES: [u32; 3] = [8, 16, 32];

pub use super::Candidate;

/// How many anchor rows a square input of `size` produces.
pub fn anchor_count(size: u32) -> usize {
    anchor_count_wh(size, size, &STRIDES)
}

/// How many anchor rows a `w` x `h` input produces at `strides`.
pub fn anchor_count_wh(w: u32, h: u32, strides: &[u32]) -> usize {
    strides.iter().map(|&s| ((w / s.max(1)) * (h / s.max(1))) as usize).sum()
}

/// Decode every anchor whose `obj * max(cls)` exceeds `threshold`.
///
/// `data` holds `anchor_count(size)` rows of `row_len` floats. Returns an empty list rather than
/// panicking if the tensor is shorter than the size implies (the caller validates shapes once).
pub fn decode(data: &[f32], row_len: usize, size: u32, threshold: f32) -> Vec<Candidate> {
    decode_wh(data, row_len, size, size, &STRIDES, threshold)
}

/// [`decode`] for a `w` x `h` input and the given strides (a manifest's `output.strides`).
pub fn decode_wh(data: &[f32], row_len: usize, w: u32, h: u32, strides: &[u32], threshold: f32) -> Vec<Candidate> {
    let mut out = Vec::new();
    if row_len < 6 || data.len() < anchor_count_wh(w, h, strides) * row_len {
        return out;
    }
    let mut row_index = 0usize;
    for &stride in strides {
        let (nx, ny) = (w / stride.max(1), h / stride.max(1));
        let s = stride as f32;
        for gy in 0..ny {
            for gx in 0..nx {
                let row = &data[row_index * row_len..(row_index + 1) * row_len];
                row_index += 1;
                let obj = row[4];
                // Cheap early exit: the class score can't raise obj above the threshold.
                if obj <= threshold {
                    continue;
                }
                let (class, cls) = argmax(&row[5..]);
                let score = obj * cls;
                if score <= threshold {
                    continue;
                }
                let cx = (row[0] + gx as f32) * s;
                let cy = (row[1] + gy as f32) * s;
                let w = row[2].exp() * s;
                let h = row[3].exp() * s;
                out.push(Candidate { class, score, bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0] });
            }
        }
    }
    out
}

/// Index and value of the largest element; the first wins ties, as numpy's argmax does.
pub(crate) fn argmax(v: &[f32]) -> (usize, f32) {
    let mut best = (0, f32::MIN);
    for (i, &x) in v.iter().enumerate() {
        if x > best.1 {
            best = (i, x);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u32 = 64; // 8x8 + 4x4 + 2x2 = 84 anchors
    const ROW: usize = 5 + 3;

    fn blank() -> Vec<f32> {
        vec![0.0; anchor_count(SIZE) * ROW]
    }

    #[test]
    fn anchor_count_matches_yolox_nano() {
        assert_eq!(anchor_count(416), 3549);
        assert_eq!(anchor_count(SIZE), 84);
    }

    #[test]
    fn decodes_grid_offsets_and_exp_sizes() {
        let mut d = blank();
        // Stride-16 level starts after the 64 stride-8 anchors; pick grid (x=2, y=1).
        let i = 64 + 4 + 2;
        let row = &mut d[i * ROW..(i + 1) * ROW];
        row.copy_from_slice(&[0.5, 0.25, 0.0, (2.0f32).ln(), 0.9, 0.1, 0.8, 0.2]);
        let c = decode(&d, ROW, SIZE, 0.3);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class, 1);
        assert!((c[0].score - 0.72).abs() < 1e-6);
        // cx = (0.5 + 2) * 16 = 40, cy = (0.25 + 1) * 16 = 20, w = 16, h = 32.
        let b = c[0].bbox;
        for (got, want) in b.iter().zip([32.0, 4.0, 48.0, 36.0]) {
            assert!((got - want).abs() < 1e-4, "{b:?}");
        }
    }

    #[test]
    fn threshold_is_strict_on_the_product() {
        let mut d = blank();
        d[4] = 0.6;
        d[5] = 0.5; // score 0.3: not above 0.3
        assert!(decode(&d, ROW, SIZE, 0.3).is_empty());
        d[5] = 0.51;
        assert_eq!(decode(&d, ROW, SIZE, 0.3).len(), 1);
    }

    #[test]
    fn a_wide_input_walks_its_grid_row_major() {
        // 64x32 at strides 16 and 32: 4x2 + 2x1 = 10 anchors; the last one is (x=1, y=0) at 32.
        let strides = [16, 32];
        assert_eq!(anchor_count_wh(64, 32, &strides), 10);
        let mut d = vec![0.0; 10 * ROW];
        d[9 * ROW..10 * ROW].copy_from_slice(&[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.9]);
        let c = decode_wh(&d, ROW, 64, 32, &strides, 0.3);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].class, 2);
        assert_eq!(c[0].bbox, [16.0, -16.0, 48.0, 16.0]);
    }

    #[test]
    fn short_tensor_decodes_nothing() {
        assert!(decode(&[1.0; 10], ROW, SIZE, 0.1).is_empty());
    }
}
