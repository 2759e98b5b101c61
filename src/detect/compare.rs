//! How far one list of detections is from a reference list: the one comparison that
//! `lookout bench` (batched against batch 1, a model against the baseline model) and the tests
//! (against the Python golden files, the CPU provider, the f32 model) hold detections to. Pure.
//!
//! The matching is greedy: reference detections by descending score, each paired with the
//! still unpaired detection of the same label that overlaps it most ([`iou`]), if that IoU
//! reaches `min_iou`. A detection is in at most one pair, so two reference boxes can never
//! both be "found" by one box. What the callers need of it is then read off the pairs: recall,
//! the largest score difference, the smallest IoU, the largest box error, the missed and the
//! extra detections.

use super::Detection;
use super::nms::iou;

/// One reference detection and the detection paired with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// Index into the reference (`want`).
    pub want: usize,
    /// Index into the detections compared with it (`got`).
    pub got: usize,
    pub iou: f32,
    /// |got score - want score|.
    pub score_diff: f32,
    /// The largest difference of the two boxes' coordinates, in pixels.
    pub box_error: f32,
}

/// The outcome of [`compare`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    /// In the order they were made: reference detections by descending score.
    pub pairs: Vec<Pair>,
    /// Reference detections paired with nothing (indices into `want`, ascending).
    pub missed: Vec<usize>,
    /// Detections paired with nothing (indices into `got`, ascending).
    pub extra: Vec<usize>,
}

impl Comparison {
    pub fn matched(&self) -> usize {
        self.pairs.len()
    }

    /// Reference detections found / reference detections; 1 when the reference is empty
    /// (nothing was there to find).
    pub fn recall(&self) -> f64 {
        let want = self.pairs.len() + self.missed.len();
        if want == 0 { 1.0 } else { self.pairs.len() as f64 / want as f64 }
    }

    /// Every detection on both sides paired: none missed, none extra.
    pub fn one_to_one(&self) -> bool {
        self.missed.is_empty() && self.extra.is_empty()
    }

    /// The largest score difference of a pair; 0 without pairs.
    pub fn max_score_diff(&self) -> f32 {
        self.pairs.iter().map(|p| p.score_diff).fold(0.0, f32::max)
    }

    /// The sum of the pairs' score differences (a mean drift, divided by [`Self::matched`]).
    pub fn score_diff_sum(&self) -> f64 {
        self.pairs.iter().map(|p| f64::from(p.score_diff)).sum()
    }

    /// The smallest IoU of a pair; 1 without pairs.
    pub fn min_iou(&self) -> f32 {
        self.pairs.iter().map(|p| p.iou).fold(1.0, f32::min)
    }

    /// The largest box error of a pair, in pixels; 0 without pairs.
    pub fn max_box_error(&self) -> f32 {
        self.pairs.iter().map(|p| p.box_error).fold(0.0, f32::max)
    }

    /// Each reference detection paired with the detection at its own index: the same objects
    /// in the same order.
    pub fn in_order(&self) -> bool {
        self.one_to_one() && self.pairs.iter().all(|p| p.want == p.got)
    }
}

/// Pair `got` with the reference `want`: greedy, by descending reference score, each to the
/// unpaired same-label detection of highest IoU, if that IoU is at least `min_iou`.
pub fn compare(want: &[Detection], got: &[Detection], min_iou: f32) -> Comparison {
    let mut order: Vec<usize> = (0..want.len()).collect();
    // Stable: equal scores keep the reference's order, so the outcome never depends on the sort.
    order.sort_by(|&a, &b| want[b].score.total_cmp(&want[a].score));
    let mut used = vec![false; got.len()];
    let mut out = Comparison::default();
    for w in order {
        let x = &want[w];
        let best = got
            .iter()
            .enumerate()
            .filter(|(g, y)| !used[*g] && y.label == x.label)
            .map(|(g, y)| (g, iou(x.bbox, y.bbox)))
            .max_by(|p, q| p.1.total_cmp(&q.1));
        match best {
            Some((g, overlap)) if overlap >= min_iou => {
                used[g] = true;
                let y = &got[g];
                let box_error = x.bbox.iter().zip(y.bbox).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                out.pairs.push(Pair {
                    want: w,
                    got: g,
                    iou: overlap,
                    score_diff: (y.score - x.score).abs(),
                    box_error,
                });
            }
            _ => out.missed.push(w),
        }
    }
    out.missed.sort_unstable();
    out.extra = used.iter().enumerate().filter(|(_, u)| !**u).map(|(g, _)| g).collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(label: &'static str, score: f32, x: f32) -> Detection {
        Detection { class: 0, label, score, bbox: [x, 0.0, x + 10.0, 10.0] }
    }

    #[test]
    fn matches_by_label_and_iou_once_each() {
        let base = [small("car", 0.9, 0.0), small("car", 0.8, 100.0), small("person", 0.7, 200.0)];
        // The first car found (shifted by 1 px: IoU 0.82), the second missed, the person found
        // as a dog only (wrong label), and one extra box.
        let other = [small("car", 0.85, 1.0), small("dog", 0.7, 200.0), small("car", 0.5, 300.0)];
        let c = compare(&base, &other, 0.5);
        assert_eq!((c.matched(), c.missed.clone(), c.extra.clone()), (1, vec![1, 2], vec![1, 2]));
        assert!((c.score_diff_sum() - 0.05).abs() < 1e-6);
        assert!((c.min_iou() - 9.0 / 11.0).abs() < 1e-6, "{c:?}");
        assert_eq!(c.max_box_error(), 1.0);
        assert!((c.recall() - 1.0 / 3.0).abs() < 1e-9);
        // Two base boxes over one other box: only one can match it.
        let c = compare(&[small("car", 0.9, 0.0), small("car", 0.8, 0.0)], &[small("car", 0.9, 0.0)], 0.5);
        assert_eq!((c.matched(), c.missed.clone(), c.extra.len()), (1, vec![1], 0));
    }

    #[test]
    fn the_higher_scoring_reference_detection_picks_first() {
        // Both references overlap the one box; the stronger one (listed second) gets it.
        let want = [small("car", 0.4, 2.0), small("car", 0.9, 0.0)];
        let c = compare(&want, &[small("car", 0.88, 1.0)], 0.5);
        assert_eq!(c.pairs.len(), 1);
        assert_eq!((c.pairs[0].want, c.pairs[0].got), (1, 0));
        assert!((c.max_score_diff() - 0.02).abs() < 1e-6);
        assert_eq!(c.missed, vec![0]);
    }

    #[test]
    fn min_iou_is_inclusive_and_empty_lists_compare_clean() {
        // Shifted by half of 10 px: IoU exactly 1/3.
        let (a, b) = (small("car", 0.9, 0.0), small("car", 0.9, 5.0));
        let third = iou(a.bbox, b.bbox);
        let (a, b) = (std::slice::from_ref(&a), std::slice::from_ref(&b));
        assert_eq!(compare(a, b, third).matched(), 1);
        assert_eq!(compare(a, b, third + 1e-6).matched(), 0);
        let c = compare(&[], &[], 0.5);
        assert!(c.one_to_one() && c.in_order());
        assert_eq!((c.recall(), c.min_iou(), c.max_score_diff(), c.max_box_error()), (1.0, 1.0, 0.0, 0.0));
    }

    #[test]
    fn in_order_needs_each_pair_at_its_own_index() {
        let want = [small("car", 0.9, 0.0), small("person", 0.8, 100.0)];
        assert!(compare(&want, &want, 0.5).in_order());
        let swapped = [want[1].clone(), want[0].clone()];
        let c = compare(&want, &swapped, 0.5);
        assert!(c.one_to_one() && !c.in_order(), "{c:?}");
    }
}
