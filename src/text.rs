//! Text helpers every layer uses, at the bottom of the module graph (they import nothing of
//! ours): one "did you mean" rule for config keys, labels and provider names alike.

/// Levenshtein distance, for short names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// How far a typo may be from the name it was meant to be.
const SUGGEST_MAX_EDITS: usize = 2;

/// The known name that `wanted` was most likely meant to be: the closest, when it is within
/// [`SUGGEST_MAX_EDITS`] edits and closer than rewriting `wanted` whole (`ab` is not a typo of
/// `cd`). Case-blind.
pub fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wanted = wanted.trim().to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (edit_distance(&wanted, &k.to_ascii_lowercase()), k))
        .min()
        .filter(|(d, _)| *d <= SUGGEST_MAX_EDITS && *d < wanted.chars().count())
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_plurals_are_suggested_and_strangers_are_not() {
        assert_eq!(edit_distance("stall_timeout_second", "stall_timeout_seconds"), 1);
        assert_eq!(closest("fsp", ["fps", "labels", "min_score"]), Some("fps"));
        assert_eq!(closest("cars", ["car", "bus"]), Some("car"));
        assert_eq!(closest("OpenVio", ["cuda", "openvino"]), Some("openvino"));
        assert_eq!(closest("colour", ["fps", "labels"]), None);
        assert_eq!(closest("ab", ["cd"]), None, "two edits rewrite a two-letter word");
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }
}
