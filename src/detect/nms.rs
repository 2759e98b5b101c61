//! Per-class non-maximum suppression. Pure.

use super::Candidate;

/// Intersection over union of two x1,y1,x2,y2 boxes; 0 for empty boxes.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Keep the best box of each overlapping group, class by class: a box is suppressed when it
/// overlaps a higher-scoring kept box of the same class by more than `iou_threshold`.
/// Returns the kept candidates sorted by descending score.
pub fn nms_per_class(mut cands: Vec<Candidate>, iou_threshold: f32) -> Vec<Candidate> {
    // Sort by score (descending), then by class so the result is deterministic on ties.
    cands.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.class.cmp(&b.class)));
    let mut kept: Vec<Candidate> = Vec::with_capacity(cands.len().min(64));
    for c in cands {
        let suppressed = kept.iter().any(|k| k.class == c.class && iou(k.bbox, c.bbox) > iou_threshold);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(class: usize, score: f32, bbox: [f32; 4]) -> Candidate {
        Candidate { class, score, bbox }
    }

    #[test]
    fn iou_known_values() {
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]), 1.0);
        assert_eq!(iou([0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]), 0.0);
        // Half overlap: inter 50, union 150.
        assert!((iou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(iou([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn suppresses_overlapping_same_class_only() {
        let out = nms_per_class(
            vec![
                cand(0, 0.8, [0.0, 0.0, 10.0, 10.0]),
                cand(0, 0.9, [1.0, 0.0, 11.0, 10.0]),   // overlaps the first: wins
                cand(1, 0.7, [0.0, 0.0, 10.0, 10.0]),   // other class: kept
                cand(0, 0.6, [50.0, 50.0, 60.0, 60.0]), // far away: kept
            ],
            0.45,
        );
        let scores: Vec<f32> = out.iter().map(|c| c.score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }

    #[test]
    fn threshold_is_exclusive() {
        // IoU exactly 1/3 with threshold 1/3 is kept (the reference keeps iou <= thr).
        let out = nms_per_class(
            vec![cand(0, 0.9, [0.0, 0.0, 10.0, 10.0]), cand(0, 0.8, [5.0, 0.0, 15.0, 10.0])],
            iou([0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]),
        );
        assert_eq!(out.len(), 2);
    }

    /// Property: whatever the input, no two kept boxes of one class overlap above the
    /// threshold, and every dropped box overlaps some kept box of its class above it.
    #[test]
    fn property_kept_set_is_maximal_and_disjoint() {
        // A small deterministic LCG so the test needs no extra crate and always sees the same cases.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32) / ((1u64 << 31) as f32)
        };
        for _ in 0..200 {
            let n = 1 + (next() * 30.0) as usize;
            let cands: Vec<Candidate> = (0..n)
                .map(|_| {
                    let (x, y) = (next() * 100.0, next() * 100.0);
                    let (w, h) = (5.0 + next() * 40.0, 5.0 + next() * 40.0);
                    cand((next() * 3.0) as usize, next(), [x, y, x + w, y + h])
                })
                .collect();
            let kept = nms_per_class(cands.clone(), 0.45);
            for (i, a) in kept.iter().enumerate() {
                for b in &kept[i + 1..] {
                    assert!(a.class != b.class || iou(a.bbox, b.bbox) <= 0.45);
                }
            }
            for c in &cands {
                let was_kept = kept.iter().any(|k| k == c);
                let covered =
                    kept.iter().any(|k| k.class == c.class && k.score >= c.score && iou(k.bbox, c.bbox) > 0.45);
                assert!(was_kept || covered);
            }
        }
    }
}
