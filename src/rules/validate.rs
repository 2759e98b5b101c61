//! Every problem in a camera's rules, each with the key it is about, relative to the camera
//! file (`zones[1].polygon`, `filters.car.max_area`), so that the config loader can give its
//! line. The key is known where each part is checked: the index of a zone, the label of a
//! filter; nothing is recovered from a message. Pure.

use super::{RulesConfig, RulesError, geometry};
use crate::text::Problem;

impl RulesError {
    /// The field of its table this problem is about, when the variant says (`inertia`,
    /// `max_area`, `labels`); `shape` names the field a polygon or point problem is about.
    fn field(&self, shape: Option<&'static str>) -> Option<&'static str> {
        match self {
            RulesError::TooFewPoints { .. }
            | RulesError::NotFinite { .. }
            | RulesError::OutsideFrame { .. }
            | RulesError::ZeroArea { .. }
            | RulesError::ZeroLength { .. } => shape,
            RulesError::OutOfRange { key, .. } => Some(key),
            RulesError::MinAboveMax { min_key, .. } => Some(min_key),
            RulesError::EmptyLabels { .. } => Some("labels"),
            RulesError::EmptyName { .. } | RulesError::DuplicateName { .. } | RulesError::Several(_) => None,
        }
    }
}

/// Each problem in `result`, keyed under `table` (and its field, when it names one).
fn keyed(out: &mut Vec<Problem>, table: &str, shape: Option<&'static str>, result: Result<(), RulesError>) {
    for problem in result.err().map(RulesError::into_list).unwrap_or_default() {
        let key = match problem.field(shape) {
            Some(field) => format!("{table}.{field}"),
            None => table.to_string(),
        };
        out.push(Problem::new(key, problem.to_string()));
    }
}

impl RulesConfig {
    /// Every problem [`super::Rules::new`] would refuse, keyed relative to the camera file.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let f = &self.filters;
        let mut top = super::Problems::default();
        top.labels("filters", &f.labels);
        // The camera's label list is written as `detect.labels`.
        keyed(&mut out, "detect", None, top.finish());
        let default_ok = f.default.validate("filters").is_ok();
        keyed(&mut out, "filters", None, f.default.validate("filters"));
        for (label, own) in &f.per_label {
            let owner = format!("filters for `{label}`");
            let own_result = own.validate(&owner);
            let own_ok = own_result.is_ok();
            let table = format!("filters.{label}");
            keyed(&mut out, &table, None, own_result);
            if default_ok && own_ok {
                keyed(
                    &mut out,
                    &table,
                    None,
                    own.or(&f.default).validate(&format!("{owner} (with the default filters)")),
                );
            }
        }
        for (i, mask) in f.masks.iter().enumerate() {
            // A mask is a polygon itself: its point list is the value.
            keyed(
                &mut out,
                &format!("masks[{i}]"),
                None,
                geometry::validate_polygon(&format!("filters mask {}", i + 1), mask),
            );
        }
        for (i, z) in self.zones.iter().enumerate() {
            keyed(&mut out, &format!("zones[{i}]"), Some("polygon"), z.check());
        }
        let mut names = super::Problems::default();
        super::check_names(&mut names, "zone", self.zones.iter().map(|z| z.name.as_str()));
        keyed(&mut out, "zones", None, names.finish());
        for (i, l) in self.lines.iter().enumerate() {
            keyed(&mut out, &format!("lines[{i}]"), Some("points"), l.check());
        }
        let mut names = super::Problems::default();
        super::check_names(&mut names, "line", self.lines.iter().map(|l| l.name.as_str()));
        keyed(&mut out, "lines", None, names.finish());
        keyed(&mut out, "stationary", None, self.stationary.check());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LabelFilter, LineConfig, Point, Rules, ZoneConfig};
    use super::*;

    fn square() -> Vec<Point> {
        vec![Point::new(0.1, 0.1), Point::new(0.5, 0.1), Point::new(0.5, 0.5), Point::new(0.1, 0.5)]
    }

    #[test]
    fn each_problem_names_its_key_and_agrees_with_rules_new() {
        let mut c = RulesConfig::default();
        c.zones.push(ZoneConfig::new("door", square()));
        let mut bad = ZoneConfig::new("yard", vec![Point::new(0.1, 0.1), Point::new(0.2, 0.2)]);
        bad.inertia = 0;
        c.zones.push(bad);
        c.zones.push(ZoneConfig::new("door", square()));
        c.lines.push(LineConfig::new("gate", [Point::new(0.5, 0.5), Point::new(0.5, 0.5)]));
        c.filters
            .per_label
            .insert("car".into(), LabelFilter { min_area: Some(9.0), max_area: Some(4.0), ..Default::default() });
        c.filters.masks.push(vec![Point::new(0.0, 0.0), Point::new(2.0, 0.0), Point::new(0.0, 1.0)]);
        c.stationary.moving_updates = 0;
        let keys: Vec<String> = c.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "filters.car.min_area",
                "masks[0]",
                "zones[1].polygon",
                "zones[1].inertia",
                "zones",
                "lines[0].points",
                "stationary.moving_updates"
            ]
        );
        let all = Rules::new(c.clone()).err().map(RulesError::into_list).unwrap_or_default();
        assert_eq!(all.len(), keys.len(), "validate() and Rules::new report the same problems");
        assert!(RulesConfig::default().validate().is_empty() && Rules::new(RulesConfig::default()).is_ok());
    }
}
