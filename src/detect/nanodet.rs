//! Decoding NanoDet's outputs into candidate boxes. Pure.
//!
//! Per stride s there are two outputs (models/README.md, "NanoDet-m 320"):
//! class scores `[1, N, C]`, already through a sigmoid, and box distances `[1, N, 4 * (R+1)]`:
//! for each side (left, top, right, bottom) R+1 bins whose softmax-weighted mean, times s, is the
//! distance from the anchor centre `(x*s + (s-1)/2, y*s + (s-1)/2)`. Anchors run row-major
//! (y, then x) over a `ceil(w/s)` x `ceil(h/s)` grid.

use super::Candidate;
use super::yolox::argmax;

/// Anchors of one level of a `w` x `h` input at stride `s`.
pub fn level_anchors(w: u32, h: u32, s: u32) -> usize {
    let s = s.max(1);
    (w.div_ceil(s) * h.div_ceil(s)) as usize
}

/// Decode one level: every anchor whose best class score is above `threshold`.
///
/// `scores` holds `level_anchors` rows of `classes` floats, `dists` as many rows of
/// `4 * (reg_max + 1)`. Returns nothing rather than panicking on a short tensor (shapes are
/// validated once, at load).
#[allow(clippy::too_many_arguments)]
pub fn decode_level(
    scores: &[f32],
    dists: &[f32],
    w: u32,
    h: u32,
    stride: u32,
    classes: usize,
    reg_max: usize,
    threshold: f32,
    out: &mut Vec<Candidate>,
) {
    let bins = reg_max + 1;
    let n = level_anchors(w, h, stride);
    if classes == 0 || scores.len() < n * classes || dists.len() < n * 4 * bins {
        return;
    }
    let nx = w.div_ceil(stride.max(1)) as usize;
    let s = stride as f32;
    for i in 0..n {
        let (class, score) = argmax(&scores[i * classes..(i + 1) * classes]);
        if score <= threshold {
            continue;
        }
        let (gx, gy) = ((i % nx) as f32, (i / nx) as f32);
        let (cx, cy) = (gx * s + (s - 1.0) / 2.0, gy * s + (s - 1.0) / 2.0);
        let row = &dists[i * 4 * bins..(i + 1) * 4 * bins];
        let mut d = [0.0f32; 4];
        for (side, dist) in d.iter_mut().enumerate() {
            *dist = expected_bin(&row[side * bins..(side + 1) * bins]) * s;
        }
        out.push(Candidate { class, score, bbox: [cx - d[0], cy - d[1], cx + d[2], cy + d[3]] });
    }
}

/// The softmax-weighted mean bin index (the "integral" of the Generalized Focal Loss head).
fn expected_bin(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (i, &l) in logits.iter().enumerate() {
        let e = (l - max).exp();
        sum += e;
        weighted += e * i as f32;
    }
    if sum > 0.0 { weighted / sum } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_rounded_up() {
        assert_eq!(level_anchors(320, 320, 8), 1600);
        assert_eq!(level_anchors(320, 320, 32), 100);
        assert_eq!(level_anchors(100, 50, 32), 4 * 2);
    }

    #[test]
    fn expected_bin_is_the_softmax_mean() {
        // One dominant bin: its index.
        assert!((expected_bin(&[0.0, 0.0, 50.0, 0.0]) - 2.0).abs() < 1e-4);
        // Two equal bins: halfway.
        assert!((expected_bin(&[10.0, 10.0, -50.0]) - 0.5).abs() < 1e-4);
    }

    #[test]
    fn decodes_centre_and_side_distances() {
        // A 32x16 input at stride 16: a 2x1 grid; anchor 1 is (x=1, y=0), centre (23.5, 7.5).
        let (classes, reg_max) = (3, 3);
        let mut scores = vec![0.0; 2 * classes];
        scores[classes + 2] = 0.8;
        let mut dists = vec![0.0; 2 * 4 * (reg_max + 1)];
        // Sides left, top, right, bottom peaked at bins 1, 0, 2, 3.
        for (side, bin) in [1usize, 0, 2, 3].iter().enumerate() {
            dists[4 * (reg_max + 1) + side * (reg_max + 1) + bin] = 60.0;
        }
        let mut out = Vec::new();
        decode_level(&scores, &dists, 32, 16, 16, classes, reg_max, 0.35, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class, 2);
        assert!((out[0].score - 0.8).abs() < 1e-6);
        let want = [23.5 - 16.0, 7.5, 23.5 + 32.0, 7.5 + 48.0];
        for (g, w) in out[0].bbox.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{:?}", out[0].bbox);
        }
    }

    #[test]
    fn below_threshold_and_short_tensors_decode_nothing() {
        let mut out = Vec::new();
        decode_level(&[0.35; 6], &[0.0; 32], 32, 16, 16, 3, 3, 0.35, &mut out);
        assert!(out.is_empty(), "the threshold is strict");
        decode_level(&[0.9; 2], &[0.0; 4], 32, 16, 16, 3, 3, 0.35, &mut out);
        assert!(out.is_empty());
    }
}
