//! Replacing one camera's file while the daemon runs, for the console's Save and MQTT remote
//! config (`<prefix>/config/<camera>/set`) alike, so that both judge and write a file the same
//! way: the new text checked exactly as `lookout check` checks a directory ([`check_edit`]),
//! written atomically with the previous version kept as `<file>.bak` ([`save_atomically`]),
//! then the whole directory loaded as SIGHUP loads it ([`replace_camera_file`]). The caller
//! hands the loaded config to the run loop, which applies it as a reload.
//!
//! A password written into the `uri` never leaves the gateway: the file is shown with it
//! masked ([`masked`]), and a text sent back with the mask gets the real one ([`unmasked`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use toml_edit::{DocumentMut, Item, Value, value};

use super::check::{Checked, check_dir};
use super::{ConfigError, ConfigErrors, PIPELINES_DIR, Spec, redact_uri};

/// What a replaced file became.
#[derive(Debug)]
pub struct Replaced {
    /// The camera's file, written.
    pub file: PathBuf,
    /// The previous version.
    pub backup: PathBuf,
    /// The whole config directory loaded again, as a reload loads it: `Err` when a problem
    /// elsewhere (another file) keeps it from loading, and then nothing is applied.
    pub loaded: Result<Spec, ConfigErrors>,
}

/// Why a file was not replaced. Either way the file on disk is untouched.
#[derive(Debug)]
pub enum Refused {
    /// The text doesn't pass the check: every problem, each on its line.
    Problems(Vec<Problem>),
    /// It passed but could not be written.
    Write(String),
}

/// Replace `camera`'s file in `dir` with `text` if it passes the check, and load the directory
/// again. A `uri` sent back masked (`***`) keeps the password on disk.
pub fn replace_camera_file(dir: &Path, camera: &str, text: &str) -> Result<Replaced, Refused> {
    let file = dir.join(PIPELINES_DIR).join(format!("{camera}.toml"));
    let on_disk = std::fs::read_to_string(&file).unwrap_or_default();
    let text = unmasked(text, &on_disk);
    check_edit(dir, camera, &text).map_err(Refused::Problems)?;
    let backup = save_atomically(&file, &text).map_err(|e| Refused::Write(format!("{}: {e}", file.display())))?;
    let loaded = super::load(dir);
    Ok(Replaced { file, backup, loaded })
}

/// A problem the editor shows on its line.
#[derive(Debug, Clone, Serialize, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# The street camera.\nuri = \"rtsp://viewer:hunter2@cam.local/s1\"   # the main stream\n\n[detect]\nfps = 5 # five is plenty\n";

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
