//! The whole offline check of a config directory: the files ([`super::load`]), then every model
//! in use opened with ONNX Runtime and compared with its manifest. `lookout check` prints it; the
//! console's Check runs it on the edited camera file (`crate::web`), so both say the same.

use std::path::Path;

use super::{ConfigError, ConfigErrors, GLOBAL_FILE, PIPELINES_DIR, Spec};
use crate::detect::{DetectError, Detector, DetectorOptions};

/// A config that passed, and one line per model for the report.
pub struct Checked {
    pub spec: Spec,
    pub model_lines: Vec<String>,
}

/// Check `dir`. `for_start`: judge it as `lookout run` does at start (a camera file with errors
/// leaves that camera out, in `spec.broken`) rather than refusing it whole.
pub fn check_dir(dir: &Path, for_start: bool) -> Result<Checked, ConfigErrors> {
    let spec = if for_start { super::load_tolerant(dir)? } else { super::load(dir)? };
    // Every model in use: the gateway's, and each camera's own `detect.model`.
    let mut models = vec![spec.inference.model.clone()];
    for c in &spec.cameras {
        if !models.contains(&c.detect.model) {
            models.push(c.detect.model.clone());
        }
    }
    let shown = |p: &Path| p.strip_prefix(dir).unwrap_or(p).display().to_string();
    let mut model_lines = Vec::new();
    let mut problems = Vec::new();
    for model in &models {
        // Which key named it, for the error: the gateway's, or the first camera's.
        let (file, key) = match spec.cameras.iter().find(|c| c.detect.model == *model && *model != spec.inference.model)
        {
            Some(c) => (format!("{PIPELINES_DIR}/{}.toml", c.name), "detect.model"),
            None => (GLOBAL_FILE.to_string(), "inference.model"),
        };
        let opts = DetectorOptions::new(model.clone(), spec.inference.ort_library.clone());
        match Detector::load(&opts) {
            Ok(d) => {
                let m = d.model();
                let g = d.geometry();
                let users: Vec<&str> =
                    spec.cameras.iter().filter(|c| c.detect.model == *model).map(|c| c.name.as_str()).collect();
                model_lines.push(format!(
                    "  model: {} ({}, {}, input {}x{}, {} labels): {}; cameras: {}",
                    m.name,
                    m.family.name(),
                    m.precision.as_str(),
                    g.width,
                    g.height,
                    m.labels.len(),
                    if m.manifest.is_some() {
                        "inputs and outputs match the manifest"
                    } else {
                        "a plain .onnx, read as YOLOX"
                    },
                    if users.is_empty() { "none".to_string() } else { users.join(", ") }
                ));
                if let Some(c) = d.variant_check() {
                    let runs = if c.accepted { "it runs" } else { "its fp32 source runs instead" };
                    model_lines.push(format!("    variant check: {}; {runs}", crate::detect::variant::describe(c)));
                }
            }
            // A manifest that does not describe its model is the manifest's fault;
            // a plain .onnx that is no detector is the fault of the key that named it.
            Err(DetectError::ModelShape { path, reason }) if crate::detect::manifest::is_manifest(&path) => {
                problems.push(ConfigError::new(shown(&path), "", reason))
            }
            Err(DetectError::ModelShape { path, reason }) => {
                problems.push(ConfigError::new(file, key, format!("{}: {reason}", shown(&path))))
            }
            Err(other) => problems.push(ConfigError::new(file, key, other.to_string())),
        }
    }
    if !problems.is_empty() {
        super::locate_lines(&spec.config_dir, &mut problems);
        return Err(ConfigErrors(problems));
    }
    Ok(Checked { spec, model_lines })
}
