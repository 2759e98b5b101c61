//! Detection filters, applied to raw detections before tracking: a false positive dropped here
//! never becomes a track. Pure.
//!
//! Each check that fails names its reason ([`Rejected`]), so the caller counts drops by reason.

use std::collections::BTreeMap;

use super::geometry::{self, Point};
use super::{FrameSize, Problems, RulesError};
use crate::detect::Detection;

/// Limits for one label. An unset value in a per-label filter falls back to the default
/// filter's value; unset in both means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LabelFilter {
    /// Lowest detection score kept, 0..1.
    pub min_score: Option<f32>,
    /// Smallest box area kept, in square pixels of the source frame.
    pub min_area: Option<f32>,
    /// Largest box area kept, in square pixels of the source frame.
    pub max_area: Option<f32>,
    /// Smallest width / height kept.
    pub min_ratio: Option<f32>,
    /// Largest width / height kept.
    pub max_ratio: Option<f32>,
}

impl LabelFilter {
    /// This filter, with each unset value taken from `fallback`: a per-label filter usually
    /// changes one limit (a larger `min_area` for cars) and keeps the camera's `min_score`.
    pub(crate) fn or(&self, fallback: &LabelFilter) -> LabelFilter {
        LabelFilter {
            min_score: self.min_score.or(fallback.min_score),
            min_area: self.min_area.or(fallback.min_area),
            max_area: self.max_area.or(fallback.max_area),
            min_ratio: self.min_ratio.or(fallback.min_ratio),
            max_ratio: self.max_ratio.or(fallback.max_ratio),
        }
    }

    pub(crate) fn validate(&self, owner: &str) -> Result<(), RulesError> {
        let mut problems = Problems::default();
        if let Some(s) = self.min_score {
            problems.range((0.0..=1.0).contains(&s), owner, "min_score", s, "a score between 0 and 1");
        }
        for (key, v) in [("min_area", self.min_area), ("max_area", self.max_area)] {
            if let Some(v) = v {
                let ok = v.is_finite() && v >= 0.0;
                problems.range(ok, owner, key, v, "a finite area of 0 or more square pixels");
            }
        }
        for (key, v) in [("min_ratio", self.min_ratio), ("max_ratio", self.max_ratio)] {
            if let Some(v) = v {
                let ok = v.is_finite() && v > 0.0;
                problems.range(ok, owner, key, v, "a finite width/height ratio above 0");
            }
        }
        let pairs = [
            ("min_area", self.min_area, "max_area", self.max_area),
            ("min_ratio", self.min_ratio, "max_ratio", self.max_ratio),
        ];
        for (min_key, min, max_key, max) in pairs {
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                problems.push(RulesError::MinAboveMax {
                    owner: owner.to_string(),
                    min_key,
                    min: min.to_string(),
                    max_key,
                    max: max.to_string(),
                });
            }
        }
        problems.finish()
    }
}

/// The detection filters of one camera.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// Labels to track; `None` tracks every label.
    pub labels: Option<Vec<String>>,
    /// Limits for every label.
    pub default: LabelFilter,
    /// Limits for one label, over the default ones.
    pub per_label: BTreeMap<String, LabelFilter>,
    /// Normalised polygons: a detection whose reference point (bottom centre) is inside any
    /// of them is dropped. For places that fool the detector: a poster, a parked car's reflection.
    pub masks: Vec<Vec<Point>>,
    /// Masks switched off at run time (`toggles`), by index: they drop nothing. Empty in a
    /// config.
    pub masks_off: std::collections::BTreeSet<usize>,
}

/// Defined with the other drop reasons, which the counters are kept by.
pub use crate::stats::Rejected;

impl Filters {
    /// Report every problem: scores in 0..1, areas and ratios finite and non-negative
    /// (ratios above 0), each min at most its max, masks valid polygons.
    pub fn validate(&self) -> Result<(), RulesError> {
        let mut problems = Problems::default();
        problems.labels("filters", &self.labels);
        let default_ok = problems.check(self.default.validate("filters"));
        for (label, own) in &self.per_label {
            let owner = format!("filters for `{label}`");
            let own_ok = problems.check(own.validate(&owner));
            // Limits valid on their own can still cross once merged: a car's max_area below
            // the default min_area would drop every car.
            if default_ok && own_ok {
                let merged = own.or(&self.default);
                problems.check(merged.validate(&format!("{owner} (with the default filters)")));
            }
        }
        for (i, mask) in self.masks.iter().enumerate() {
            problems.check(geometry::validate_polygon(&format!("filters mask {}", i + 1), mask));
        }
        problems.finish()
    }

    /// Whether to keep a raw detection: `Err` names the first check it fails, in the order of
    /// [`Rejected`]. `bbox` is x1, y1, x2, y2 in pixels of a frame of size `frame`.
    pub fn keep(&self, label: &str, score: f32, bbox: [f32; 4], frame: FrameSize) -> Result<(), Rejected> {
        if !super::label_allowed(&self.labels, label) {
            return Err(Rejected::Label);
        }
        let limits = match self.per_label.get(label) {
            Some(own) => own.or(&self.default),
            None => self.default,
        };
        // Comparisons are written so that a NaN fails them: a box the detector could not
        // measure is not one to track.
        if let Some(min) = limits.min_score
            && (score.is_nan() || score < min)
        {
            return Err(Rejected::Score);
        }
        let (w, h) = ((bbox[2] - bbox[0]).max(0.0), (bbox[3] - bbox[1]).max(0.0));
        let area = w * h;
        if limits.min_area.is_some_and(|min| area.is_nan() || area < min)
            || limits.max_area.is_some_and(|max| area.is_nan() || area > max)
        {
            return Err(Rejected::Area);
        }
        // A zero-height box has an infinite (or 0/0, NaN) ratio: it fails any ratio limit.
        let ratio = w / h;
        if limits.min_ratio.is_some_and(|min| ratio.is_nan() || ratio < min)
            || limits.max_ratio.is_some_and(|max| ratio.is_nan() || ratio > max)
        {
            return Err(Rejected::Ratio);
        }
        if let Some(p) = geometry::reference_point(bbox, frame)
            && self
                .masks
                .iter()
                .enumerate()
                .any(|(i, m)| !self.masks_off.contains(&i) && geometry::point_in_polygon(p, m))
        {
            return Err(Rejected::Mask);
        }
        Ok(())
    }

    /// Switch mask `n` (from 1, in file order) on or off; false if there is no such mask.
    pub fn set_mask_enabled(&mut self, n: usize, on: bool) -> bool {
        if n == 0 || n > self.masks.len() {
            return false;
        }
        if on {
            self.masks_off.remove(&(n - 1));
        } else {
            self.masks_off.insert(n - 1);
        }
        true
    }

    /// [`Filters::keep`] for a detector output.
    pub fn keep_detection(&self, d: &Detection, frame: FrameSize) -> Result<(), Rejected> {
        self.keep(d.label, d.score, d.bbox, frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: FrameSize = FrameSize { width: 1000, height: 1000 };

    fn filters() -> Filters {
        let mut per_label = BTreeMap::new();
        per_label.insert("car".to_string(), LabelFilter { min_area: Some(10_000.0), ..LabelFilter::default() });
        Filters {
            labels: Some(vec!["person".into(), "car".into()]),
            default: LabelFilter {
                min_score: Some(0.5),
                min_area: Some(100.0),
                max_area: Some(250_000.0),
                min_ratio: Some(0.2),
                max_ratio: Some(5.0),
            },
            per_label,
            // The top-left quarter of the frame.
            masks: vec![vec![Point::new(0.0, 0.0), Point::new(0.5, 0.0), Point::new(0.5, 0.5), Point::new(0.0, 0.5)]],
            masks_off: Default::default(),
        }
    }

    // A 40 × 80 px person standing at (700, 800): passes every default check.
    const PERSON: [f32; 4] = [680.0, 720.0, 720.0, 800.0];

    #[test]
    fn keeps_a_plain_detection() {
        assert_eq!(filters().validate(), Ok(()));
        assert_eq!(filters().keep("person", 0.9, PERSON, FRAME), Ok(()));
    }

    #[test]
    fn rejects_each_reason() {
        let f = filters();
        assert_eq!(f.keep("dog", 0.9, PERSON, FRAME), Err(Rejected::Label));
        assert_eq!(f.keep("person", 0.4, PERSON, FRAME), Err(Rejected::Score));
        assert_eq!(f.keep("person", f32::NAN, PERSON, FRAME), Err(Rejected::Score));
        assert_eq!(f.keep("person", 0.9, [700.0, 790.0, 705.0, 800.0], FRAME), Err(Rejected::Area));
        assert_eq!(f.keep("person", 0.9, [0.0, 0.0, 1000.0, 1000.0], FRAME), Err(Rejected::Area));
        // 200 × 20: ratio 10.
        assert_eq!(f.keep("person", 0.9, [600.0, 780.0, 800.0, 800.0], FRAME), Err(Rejected::Ratio));
        // 20 × 200: ratio 0.1.
        assert_eq!(f.keep("person", 0.9, [690.0, 600.0, 710.0, 800.0], FRAME), Err(Rejected::Ratio));
        // Bottom centre (200, 400) is inside the top-left mask.
        assert_eq!(f.keep("person", 0.9, [180.0, 320.0, 220.0, 400.0], FRAME), Err(Rejected::Mask));
        // Switched off, the mask drops nothing; back on, it drops again.
        let mut off = f.clone();
        assert!(off.set_mask_enabled(1, false) && !off.set_mask_enabled(2, false) && !off.set_mask_enabled(0, false));
        assert_eq!(off.keep("person", 0.9, [180.0, 320.0, 220.0, 400.0], FRAME), Ok(()));
        assert!(off.set_mask_enabled(1, true));
        assert_eq!(off.keep("person", 0.9, [180.0, 320.0, 220.0, 400.0], FRAME), Err(Rejected::Mask));
    }

    #[test]
    fn first_failing_check_is_the_reason() {
        assert_eq!(filters().keep("person", 0.1, [180.0, 395.0, 181.0, 400.0], FRAME), Err(Rejected::Score));
    }

    #[test]
    fn per_label_limits_override_the_default_field_by_field() {
        let f = filters();
        // 40 × 80 = 3200 px²: enough for a person, too small for a car.
        assert_eq!(f.keep("car", 0.9, PERSON, FRAME), Err(Rejected::Area));
        // The car filter sets no min_score, so the default's 0.5 applies.
        assert_eq!(f.keep("car", 0.4, [500.0, 700.0, 700.0, 800.0], FRAME), Err(Rejected::Score));
        assert_eq!(f.keep("car", 0.6, [500.0, 700.0, 700.0, 800.0], FRAME), Ok(()));
    }

    #[test]
    fn no_limits_keeps_everything_even_degenerate_boxes() {
        let f = Filters::default();
        assert_eq!(f.keep("anything", 0.0, [5.0, 5.0, 5.0, 5.0], FRAME), Ok(()));
        // With a ratio limit, a zero-height box fails it.
        let f =
            Filters { default: LabelFilter { max_ratio: Some(5.0), ..LabelFilter::default() }, ..Filters::default() };
        assert_eq!(f.keep("x", 0.9, [5.0, 5.0, 9.0, 5.0], FRAME), Err(Rejected::Ratio));
    }

    #[test]
    fn validation_names_the_filter_and_the_fix() {
        let mut per_label = BTreeMap::new();
        per_label.insert(
            "car".to_string(),
            LabelFilter { min_area: Some(500.0), max_area: Some(100.0), ..LabelFilter::default() },
        );
        let f = Filters {
            labels: Some(vec![]),
            default: LabelFilter { min_score: Some(1.5), min_ratio: Some(0.0), ..LabelFilter::default() },
            per_label,
            masks: vec![vec![Point::new(0.1, 0.1), Point::new(0.2, 0.2)]],
            masks_off: Default::default(),
        };
        let messages: Vec<String> =
            f.validate().err().map(RulesError::into_list).unwrap_or_default().iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec![
                "filters: labels is empty, so nothing would match; omit labels to match every \
                 label, or list at least one"
                    .to_string(),
                "filters: min_score = 1.5 is out of range; expected a score between 0 and 1".into(),
                "filters: min_ratio = 0 is out of range; expected a finite width/height ratio above 0".into(),
                "filters for `car`: min_area = 500 is above max_area = 100; make min_area at most \
                 max_area"
                    .into(),
                "filters mask 1: polygon needs at least 3 points, got 2".into(),
            ]
        );
    }

    #[test]
    fn validation_catches_limits_crossed_by_the_defaults() {
        let mut per_label = BTreeMap::new();
        per_label.insert("car".to_string(), LabelFilter { max_area: Some(50.0), ..LabelFilter::default() });
        let f = Filters {
            default: LabelFilter { min_area: Some(100.0), ..LabelFilter::default() },
            per_label,
            ..Filters::default()
        };
        assert_eq!(
            f.validate().err().map(|e| e.to_string()).as_deref(),
            Some(
                "filters for `car` (with the default filters): min_area = 100 is above max_area = \
                 50; make min_area at most max_area"
            )
        );
    }

    #[test]
    fn rejected_names_are_counter_labels() {
        let names: Vec<&str> = Rejected::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["label", "score", "area", "ratio", "mask"]);
    }
}
