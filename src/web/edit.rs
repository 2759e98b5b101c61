//! The editor's work on a camera file: shapes drawn on the picture written into the TOML with
//! `toml_edit` (comments, key order and every other key survive). Masking passwords, the Check
//! and the save are [`crate::config::replace`]'s, shared with MQTT remote config.

use serde::Deserialize;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value, value};

/// Shapes as the editor sends them, in normalised coordinates (0..1, origin top left).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shapes {
    #[serde(default)]
    pub zones: Vec<ZoneShape>,
    #[serde(default)]
    pub lines: Vec<LineShape>,
    #[serde(default)]
    pub masks: Vec<Vec<[f64; 2]>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneShape {
    pub name: String,
    /// The zone's name in the file, when it is one already there (renamed or moved): its other
    /// keys and comments are kept.
    #[serde(default)]
    pub was: Option<String>,
    pub polygon: Vec<[f64; 2]>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineShape {
    pub name: String,
    #[serde(default)]
    pub was: Option<String>,
    pub points: [[f64; 2]; 2],
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

pub use crate::config::replace::{Problem, check_edit, masked, unmasked};

/// `text` with `shapes` as its zones, lines and masks. A TOML syntax error comes back as one
/// problem on its line.
pub fn apply_shapes(text: &str, shapes: &Shapes) -> Result<String, toml_edit::TomlError> {
    let mut doc: DocumentMut = text.parse()?;
    let existing = |doc: &DocumentMut, key: &str| -> Vec<Table> {
        doc.get(key).and_then(Item::as_array_of_tables).map(|a| a.iter().cloned().collect()).unwrap_or_default()
    };
    let find = |tables: &[Table], was: &Option<String>| -> Table {
        was.as_ref()
            .and_then(|w| tables.iter().find(|t| t.get("name").and_then(Item::as_str) == Some(w.as_str())))
            .cloned()
            .unwrap_or_default()
    };
    let old_zones = existing(&doc, "zones");
    let mut zones = ArrayOfTables::new();
    for z in &shapes.zones {
        let mut t = find(&old_zones, &z.was);
        t["name"] = value(z.name.as_str());
        t["polygon"] = value(points(&z.polygon));
        set_labels(&mut t, &z.labels);
        zones.push(t);
    }
    set_tables(&mut doc, "zones", zones);
    let old_lines = existing(&doc, "lines");
    let mut lines = ArrayOfTables::new();
    for l in &shapes.lines {
        let mut t = find(&old_lines, &l.was);
        t["name"] = value(l.name.as_str());
        t["points"] = value(points(&l.points));
        match &l.direction {
            Some(d) => t["direction"] = value(d.as_str()),
            None => {
                t.remove("direction");
            }
        }
        set_labels(&mut t, &l.labels);
        lines.push(t);
    }
    set_tables(&mut doc, "lines", lines);
    if shapes.masks.is_empty() {
        doc.remove("masks");
    } else {
        let mut masks = Array::new();
        for m in &shapes.masks {
            masks.push(points(m));
        }
        // A top-level key: toml_edit writes it before the first table, where it must be.
        doc["masks"] = value(masks);
    }
    Ok(doc.to_string())
}

fn set_tables(doc: &mut DocumentMut, key: &str, tables: ArrayOfTables) {
    if tables.is_empty() {
        doc.remove(key);
    } else {
        doc[key] = Item::ArrayOfTables(tables);
    }
}

fn set_labels(t: &mut Table, labels: &Option<Vec<String>>) {
    match labels {
        Some(l) if !l.is_empty() => t["labels"] = value(l.iter().map(String::as_str).collect::<Array>()),
        _ => {
            t.remove("labels");
        }
    }
}

/// `[[x, y], …]`, rounded to 1/1000 (a pixel on a 1000-pixel-wide picture).
fn points(p: &[[f64; 2]]) -> Array {
    let round = |v: f64| (v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
    p.iter()
        .map(|[x, y]| {
            let mut a = Array::new();
            a.push(round(*x));
            a.push(round(*y));
            Value::Array(a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# The street camera.
uri = "rtsp://viewer:hunter2@cam.local/s1"   # the main stream

[detect]
fps = 5 # five is plenty

# The driveway: cars only.
[[zones]]
name = "driveway"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0]]
inertia = 5   # slow gate

[[zones]]
name = "old"
polygon = [[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]]
"#;

    #[test]
    fn shapes_replace_zones_keeping_comments_order_and_other_keys() {
        let shapes = Shapes {
            zones: vec![
                ZoneShape {
                    name: "drive".into(),
                    was: Some("driveway".into()),
                    polygon: vec![[0.2, 0.5], [0.7, 0.5], [0.7, 1.0], [0.2, 1.0]],
                    labels: Some(vec!["car".into()]),
                },
                ZoneShape {
                    name: "porch".into(),
                    was: None,
                    polygon: vec![[0.0, 0.0], [0.5, 0.0], [0.5, 0.33333]],
                    labels: None,
                },
            ],
            lines: vec![LineShape {
                name: "gate".into(),
                was: None,
                points: [[0.5, 1.0], [0.5, 0.0]],
                direction: Some("left_to_right".into()),
                labels: None,
            }],
            masks: vec![vec![[0.0, 0.0], [0.3, 0.0], [0.3, 0.2]]],
        };
        let out = apply_shapes(FILE, &shapes).unwrap();
        for kept in [
            "# The street camera.",
            "# the main stream",
            "fps = 5 # five is plenty",
            "inertia = 5   # slow gate",
            "# The driveway: cars only.",
        ] {
            assert!(out.contains(kept), "lost {kept:?}:\n{out}");
        }
        assert!(!out.contains("\"old\""), "{out}");
        assert!(out.contains("name = \"drive\"") && out.contains("labels = [\"car\"]"), "{out}");
        assert!(out.contains("polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.333]]"), "{out}");
        assert!(out.contains("[[lines]]") && out.contains("direction = \"left_to_right\""), "{out}");
        // Masks are a top-level key, before the first table.
        assert!(out.find("masks =").unwrap() < out.find("[detect]").unwrap(), "{out}");
        assert!(out.find("uri =").unwrap() < out.find("[detect]").unwrap(), "{out}");
        // And it still reads as the same kind of file.
        let doc: DocumentMut = out.parse().unwrap();
        assert_eq!(doc["zones"].as_array_of_tables().unwrap().len(), 2);
        assert_eq!(doc["zones"][0]["inertia"].as_integer(), Some(5));
    }
}
