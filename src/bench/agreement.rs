//! How `bench infer` reports a [`compare`] of its detections with a reference's: counted both
//! ways over the detections clearly above the score threshold, since ones near it may fall
//! either side of it on two runs that agree. The JSON field names are `scripts/gpu_bench`'s
//! and the tests'.

use crate::detect::Detection;
use crate::detect::compare::compare;

/// The IoU at which two detections are taken for the same object. [`Agreement::holds`] then
/// asks much more of every pair.
pub const MATCH_IOU: f32 = 0.5;

/// How far two detection lists are apart.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Agreement {
    /// Detections compared (those clearly above the threshold, on either side).
    pub compared: usize,
    /// Of those, paired with a detection of the same label on the other side.
    pub matched: usize,
    pub max_score_diff: f32,
    pub min_iou: f32,
}

impl Default for Agreement {
    /// Nothing compared yet: the identity of [`Agreement::merge`].
    fn default() -> Agreement {
        Agreement { compared: 0, matched: 0, max_score_diff: 0.0, min_iou: 1.0 }
    }
}

impl Agreement {
    /// Compare both ways: every detection scoring `margin` above `threshold`, on either side,
    /// must be paired (at IoU [`MATCH_IOU`], same label) with one on the other side.
    pub fn of(got: &[Detection], want: &[Detection], threshold: f32, margin: f32) -> Agreement {
        let clear = |d: &Detection| d.score >= threshold + margin;
        let c = compare(want, got, MATCH_IOU);
        let mut a = Agreement {
            compared: want.iter().filter(|d| clear(d)).count() + got.iter().filter(|d| clear(d)).count(),
            ..Agreement::default()
        };
        for p in &c.pairs {
            let sides = usize::from(clear(&want[p.want])) + usize::from(clear(&got[p.got]));
            if sides > 0 {
                a.matched += sides;
                a.min_iou = a.min_iou.min(p.iou);
                a.max_score_diff = a.max_score_diff.max(p.score_diff);
            }
        }
        a
    }

    /// Same objects, boxes within IoU 0.9 and scores within 0.02: what the golden test holds
    /// `lookout detect` to against the Python reference. GPUs differ from the CPU by about 0.004
    /// (docs/platform-notes.md).
    pub fn holds(&self) -> bool {
        self.compared > 0 && self.matched == self.compared && self.min_iou >= 0.9 && self.max_score_diff <= 0.02
    }

    /// Both as one: over several images.
    pub fn merge(&mut self, other: Agreement) {
        self.compared += other.compared;
        self.matched += other.matched;
        self.max_score_diff = self.max_score_diff.max(other.max_score_diff);
        self.min_iou = self.min_iou.min(other.min_iou);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(label: &'static str, score: f32, x: f32) -> Detection {
        Detection { class: 0, label, score, bbox: [x, 10.0, x + 50.0, 90.0] }
    }

    #[test]
    fn agreement_needs_every_clear_detection_matched_both_ways() {
        let want = vec![det("dog", 0.9, 0.0), det("car", 0.31, 200.0)];
        let got = vec![det("dog", 0.895, 1.0)];
        let a = Agreement::of(&got, &want, 0.3, 0.05);
        // The car is near the threshold: not compared. The dog is, both ways.
        assert_eq!((a.compared, a.matched), (2, 2));
        assert!(a.holds(), "{a:?}");
        assert!(a.max_score_diff > 0.004 && a.max_score_diff < 0.006);

        let missing = Agreement::of(&[], &want, 0.3, 0.05);
        assert!(!missing.holds());
        let extra = Agreement::of(&[det("dog", 0.9, 0.0), det("cat", 0.8, 300.0)], &want[..1], 0.3, 0.05);
        assert_eq!((extra.compared, extra.matched), (3, 2));
        assert!(!extra.holds());
        assert!(!Agreement::of(&[], &[], 0.3, 0.05).holds(), "nothing compared proves nothing");
    }

    #[test]
    fn merged_agreements_keep_the_worst_pair() {
        let mut sum = Agreement::default();
        sum.merge(Agreement { compared: 2, matched: 2, max_score_diff: 0.01, min_iou: 0.95 });
        sum.merge(Agreement { compared: 3, matched: 2, max_score_diff: 0.001, min_iou: 0.99 });
        assert_eq!((sum.compared, sum.matched), (5, 4));
        assert_eq!((sum.max_score_diff, sum.min_iou), (0.01, 0.95));
        assert!(!sum.holds());
    }
}
