//! Profiles: named overlays in a camera file (`[profiles.night]`) that a gateway-wide command
//! (`<prefix>/profile/set night`) applies without a restart. A profile holds any camera keys;
//! they are laid over the file's own:
//!
//! - a table merges key by key (`[profiles.night.detect] min_score = 0.6` keeps `detect.fps`);
//! - `[[profiles.night.zones]]` and `[[profiles.night.lines]]` entries merge with the file's
//!   entry of the same `name` (`enabled = false` switches one off), and one with a new name is
//!   added;
//! - any other value (`masks`, `labels`, …) replaces the file's.
//!
//! Each profile is built and validated as a whole camera file, exactly as a reload would read
//! it, by [`super::load`]. This module is the pure part: splitting a file into its base and
//! its profiles' merged texts.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

/// The name of the file's own settings, without any overlay: `profile/set default` goes back
/// to them.
pub const DEFAULT_PROFILE: &str = "default";

/// The arrays of tables merged by `name` rather than replaced.
const BY_NAME: [&str; 2] = ["zones", "lines"];

/// A camera file split: its own settings, and each profile's settings laid over them, as
/// TOML texts to read like any camera file.
#[derive(Debug, Default, PartialEq)]
pub struct Split {
    pub base: String,
    pub profiles: Vec<(String, String)>,
}

/// A problem with a profile, by key path in the file and message.
pub type Problem = (String, String);

/// Split `text` (already known to be valid TOML). Problems with the `profiles` table itself
/// (not a table, a bad name, a nested `profiles`, a zone without a name) come back as
/// (key, message) beside the split, which leaves out a profile with a problem.
pub fn split(text: &str) -> (Split, Vec<Problem>) {
    let mut doc: DocumentMut = match text.parse() {
        Ok(d) => d,
        Err(e) => {
            let e: toml_edit::TomlError = e;
            return (Split { base: text.to_string(), profiles: Vec::new() }, vec![(String::new(), e.to_string())]);
        }
    };
    let Some(profiles) = doc.remove("profiles") else {
        return (Split { base: text.to_string(), profiles: Vec::new() }, Vec::new());
    };
    let base = doc.to_string();
    let Some(profiles) = as_table(&profiles) else {
        let problem = ("profiles".into(), "must be a table of named profiles, as `[profiles.night]`".into());
        return (Split { base, profiles: Vec::new() }, vec![problem]);
    };
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (name, overlay) in profiles.iter() {
        let key = format!("profiles.{name}");
        if !crate::config::spec::valid_name(name) || name == DEFAULT_PROFILE {
            problems.push((key, format!("profile name `{name}` may only hold letters, digits, '-', '_' and '.' (it is an MQTT payload and a Home Assistant option), and `{DEFAULT_PROFILE}` means the file's own settings")));
            continue;
        }
        let Some(overlay) = as_table(overlay) else {
            problems.push((key, "must be a table of camera keys, as `[profiles.night]`".into()));
            continue;
        };
        let mut merged = doc.clone();
        let before = problems.len();
        merge(merged.as_table_mut(), &overlay, &key, &mut problems);
        if problems.len() == before {
            out.push((name.to_string(), merged.to_string()));
        }
    }
    (Split { base, profiles: out }, problems)
}

/// Lay `over` onto `base` (see the module's rules); `path` names keys in problems.
fn merge(base: &mut Table, over: &Table, path: &str, problems: &mut Vec<Problem>) {
    for (key, item) in over.iter() {
        let here = format!("{path}.{key}");
        if key == "profiles" {
            problems.push((here, "a profile can't hold profiles".into()));
            continue;
        }
        if BY_NAME.contains(&key)
            && let Some(entries) = as_tables(item)
        {
            let mut list = base.get(key).and_then(as_tables).unwrap_or_default();
            for (i, entry) in entries.iter().enumerate() {
                let Some(name) = entry.get("name").and_then(Item::as_str) else {
                    problems.push((
                        format!("{here}[{i}]"),
                        format!("each entry needs the `name` of the {key} entry it changes or adds"),
                    ));
                    continue;
                };
                match list.iter_mut().find(|t| t.get("name").and_then(Item::as_str) == Some(name)) {
                    Some(existing) => merge(existing, entry, &format!("{here}[{i}]"), problems),
                    None => list.push(entry.clone()),
                }
            }
            let mut tables = ArrayOfTables::new();
            for t in list {
                tables.push(t);
            }
            base.insert(key, Item::ArrayOfTables(tables));
            continue;
        }
        match (as_table(item), base.get(key).and_then(as_table)) {
            (Some(over_table), Some(mut base_table)) => {
                merge(&mut base_table, &over_table, &here, problems);
                base.insert(key, Item::Table(base_table));
            }
            _ => {
                base.insert(key, item.clone());
            }
        }
    }
}

/// A table, written as `[table]` or inline.
fn as_table(item: &Item) -> Option<Table> {
    match item {
        Item::Table(t) => Some(t.clone()),
        Item::Value(Value::InlineTable(t)) => Some(t.clone().into_table()),
        _ => None,
    }
}

/// A list of tables, written as `[[list]]` or as an inline array of inline tables.
fn as_tables(item: &Item) -> Option<Vec<Table>> {
    match item {
        Item::ArrayOfTables(a) => Some(a.iter().cloned().collect()),
        Item::Value(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::InlineTable(t) => Some(t.clone().into_table()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"uri = "rtsp://cam/s1"
masks = [[[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]]]

[detect]
fps = 5
min_score = 0.5

[[zones]]
name = "door"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0]]
inertia = 3

[[lines]]
name = "gate"
points = [[0.5, 0.0], [0.5, 1.0]]

[profiles.night]
detect = { min_score = 0.7 }
masks = []

[[profiles.night.zones]]
name = "door"
enabled = false

[[profiles.night.zones]]
name = "porch"
polygon = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]

[profiles.away.motion]
enabled = true
"#;

    fn read(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn a_profile_merges_tables_key_by_key_zones_by_name_and_replaces_the_rest() {
        let (split, problems) = split(FILE);
        assert!(problems.is_empty(), "{problems:?}");
        let base = read(&split.base);
        assert!(base.get("profiles").is_none());
        assert_eq!(base["detect"]["min_score"].as_float(), Some(0.5));
        let names: Vec<&str> = split.profiles.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["night", "away"]);

        let night = read(&split.profiles[0].1);
        assert_eq!(night["uri"].as_str(), Some("rtsp://cam/s1"));
        assert_eq!(night["detect"]["min_score"].as_float(), Some(0.7));
        assert_eq!(night["detect"]["fps"].as_integer(), Some(5), "the rest of [detect] is kept");
        assert_eq!(night["masks"].as_array().map(Vec::len), Some(0), "a plain value replaces");
        let zones = night["zones"].as_array().unwrap();
        assert_eq!(zones.len(), 2);
        assert_eq!(zones[0]["name"].as_str(), Some("door"));
        assert_eq!(zones[0]["enabled"].as_bool(), Some(false));
        assert_eq!(zones[0]["inertia"].as_integer(), Some(3), "the zone's other keys are kept");
        assert_eq!(zones[1]["name"].as_str(), Some("porch"), "a new name is added");
        assert_eq!(night["lines"].as_array().map(Vec::len), Some(1));

        let away = read(&split.profiles[1].1);
        assert_eq!(away["motion"]["enabled"].as_bool(), Some(true));
        assert_eq!(away["detect"]["min_score"].as_float(), Some(0.5));
    }

    #[test]
    fn a_file_without_profiles_is_its_own_base() {
        let text = "uri = \"a\"\n[detect]\nfps = 2\n";
        assert_eq!(split(text), (Split { base: text.into(), profiles: vec![] }, vec![]));
    }

    #[test]
    fn bad_profiles_are_named_by_key() {
        let (base, problems) = split("uri = \"a\"\nprofiles = 3\n");
        assert_eq!(problems[0].0, "profiles");
        assert_eq!(base.base.trim(), "uri = \"a\"", "the file's own settings still stand");
        let (split, problems) = split(
            "uri = \"a\"\n[profiles.default]\n[profiles.x]\nprofiles = {}\n[[profiles.y.zones]]\nenabled = false\n[profiles.z]\n",
        );
        assert_eq!(split.profiles.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["z"]);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["profiles.default", "profiles.x.profiles", "profiles.y.zones[0]"]);
        assert!(problems[2].1.contains("needs the `name`"), "{problems:?}");
    }
}
