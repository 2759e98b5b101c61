//! The editor's work on a camera file: shapes drawn on the picture written into the TOML with
//! `toml_edit` (comments, key order and every other key survive), passwords masked on the way
//! out and restored on the way in, the Check, and the atomic save.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value, value};

use crate::config::check::{Checked, check_dir};
use crate::config::{ConfigError, PIPELINES_DIR, redact_uri};

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

/// A problem the editor shows on its line.
#[derive(Debug, Serialize, PartialEq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl From<&ConfigError> for Problem {
    fn from(e: &ConfigError) -> Problem {
        Problem { file: e.file.clone(), line: e.line, key: e.key.clone(), message: e.message.clone() }
    }
}

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

/// The file as the browser may see it: a password written into the `uri` replaced by `***`.
pub fn masked(text: &str) -> String {
    match text.parse::<DocumentMut>() {
        Ok(mut doc) => {
            if let Some(uri) = doc.get("uri").and_then(Item::as_str).map(str::to_string) {
                let shown = redact_uri(&uri);
                if shown != uri {
                    let decor = doc["uri"].as_value().map(|v| v.decor().clone());
                    doc["uri"] = value(shown);
                    if let (Some(d), Some(v)) = (decor, doc["uri"].as_value_mut()) {
                        *v.decor_mut() = d;
                    }
                }
            }
            doc.to_string()
        }
        // Not TOML (a broken file): show nothing that could hold a password in the clear.
        Err(_) => text
            .lines()
            .map(|l| if l.contains("://") { redact_uri_in_line(l) } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn redact_uri_in_line(line: &str) -> String {
    line.split('"').map(redact_uri).collect::<Vec<_>>().join("\"")
}

/// The edited file back from the browser: a `uri` that is the masked form of the one on disk
/// gets the real one back, so a save never writes `***` over a password.
pub fn unmasked(edited: &str, on_disk: &str) -> String {
    let disk_uri =
        on_disk.parse::<DocumentMut>().ok().and_then(|d| d.get("uri").and_then(Item::as_str).map(str::to_string));
    let (Some(real), Ok(mut doc)) = (disk_uri, edited.parse::<DocumentMut>()) else { return edited.to_string() };
    let shown = redact_uri(&real);
    if shown == real || doc.get("uri").and_then(Item::as_str) != Some(shown.as_str()) {
        return edited.to_string();
    }
    if let Some(v) = doc["uri"].as_value_mut() {
        let decor = v.decor().clone();
        *v = Value::from(real);
        *v.decor_mut() = decor;
    }
    doc.to_string()
}

static CHECKS: AtomicU64 = AtomicU64::new(0);

/// Check the config directory `dir` as it would be with `camera`'s file replaced by `text`:
/// exactly what `lookout check` runs ([`check_dir`]), on a copy of the directory made of links to
/// the real files (relative paths resolve as they do in `dir`) plus the edited file.
pub fn check_edit(dir: &Path, camera: &str, text: &str) -> Result<Checked, Vec<Problem>> {
    let n = CHECKS.fetch_add(1, Ordering::Relaxed);
    let tmp = std::env::temp_dir().join(format!("lookout-console-check-{}-{n}", std::process::id()));
    let result = overlay(dir, &tmp, camera, text).map_err(|e| {
        vec![Problem {
            file: format!("{PIPELINES_DIR}/{camera}.toml"),
            line: None,
            key: String::new(),
            message: format!("could not prepare the check in {}: {e}", tmp.display()),
        }]
    });
    let checked = result.and_then(|()| {
        check_dir(&tmp, false).map_err(|errors| {
            let shown = |s: &str| s.replace(&tmp.display().to_string(), &dir.display().to_string());
            errors.0.iter().map(|e| Problem { message: shown(&e.message), ..Problem::from(e) }).collect()
        })
    });
    let _ = std::fs::remove_dir_all(&tmp);
    checked
}

fn overlay(dir: &Path, tmp: &Path, camera: &str, text: &str) -> std::io::Result<()> {
    let pipelines = tmp.join(PIPELINES_DIR);
    std::fs::create_dir_all(&pipelines)?;
    let dir = dir.canonicalize()?;
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if entry.file_name() != PIPELINES_DIR {
            std::os::unix::fs::symlink(entry.path(), tmp.join(entry.file_name()))?;
        }
    }
    let own = format!("{camera}.toml");
    if let Ok(rd) = std::fs::read_dir(dir.join(PIPELINES_DIR)) {
        for entry in rd.flatten() {
            if entry.file_name() != own.as_str() {
                std::os::unix::fs::symlink(entry.path(), pipelines.join(entry.file_name()))?;
            }
        }
    }
    std::fs::write(pipelines.join(own), text)
}

/// Replace `file` with `text` atomically: a temporary file beside it, synced, then renamed over
/// it; the previous version is kept as `<file>.bak`. A failure leaves `file` as it was.
pub fn save_atomically(file: &Path, text: &str) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let dir = file.parent().unwrap_or(Path::new("."));
    // A dot file with another extension: the config loader reads only `*.toml`.
    let tmp = dir.join(format!(".{name}.saving"));
    let backup = dir.join(format!("{name}.bak"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        if file.exists() {
            std::fs::copy(file, &backup)?;
        }
        std::fs::rename(&tmp, file)?;
        // The rename itself reaches the disk with the directory's sync.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(backup)
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

    #[test]
    fn passwords_are_masked_out_and_restored_in() {
        let shown = masked(FILE);
        assert!(!shown.contains("hunter2") && shown.contains("rtsp://viewer:***@cam.local/s1"), "{shown}");
        assert!(shown.contains("# the main stream"), "{shown}");
        let edited = shown.replace("fps = 5", "fps = 4");
        let back = unmasked(&edited, FILE);
        assert!(back.contains("hunter2") && back.contains("fps = 4"), "{back}");
        // A new uri typed by the operator stays as typed.
        let edited = shown.replace("rtsp://viewer:***@cam.local/s1", "rtsp://other/s2");
        assert!(unmasked(&edited, FILE).contains("rtsp://other/s2"));
        assert!(!masked("uri = \"rtsp://a:secret@b/c\n[[broken").contains("secret"));
    }

    #[test]
    fn a_save_replaces_the_file_and_keeps_the_previous_one() {
        let dir = std::env::temp_dir().join(format!("lookout-web-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("cam.toml");
        std::fs::write(&f, "uri = \"a\"\n").unwrap();
        let bak = save_atomically(&f, "uri = \"b\"\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "uri = \"b\"\n");
        assert_eq!(std::fs::read_to_string(&bak).unwrap(), "uri = \"a\"\n");
        assert_eq!(bak.file_name().unwrap(), "cam.toml.bak");
        assert!(!dir.join(".cam.toml.saving").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
