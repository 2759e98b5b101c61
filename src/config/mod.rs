//! Configuration: `lookout.toml` for the gateway plus one `pipelines/<camera>.toml` per camera,
//! read with the `config` crate, with `LOOKOUT__SECTION__KEY` environment overrides on
//! `lookout.toml` (for example `LOOKOUT__MQTT__PORT=1884`).
//!
//! Two steps, as in ripgrep and Vector: [`raw`] structs that reject unknown keys, then a
//! validated [`spec::Spec`]. Loading reports every problem found, each with its file and key.

pub mod audit;
pub mod check;
pub mod profiles;
pub mod raw;
pub mod replace;
pub mod spec;
pub mod web;

use std::fmt;
use std::path::{Path, PathBuf};

use ::config::{Config, Environment, File, FileFormat};
use serde::de::DeserializeOwned;

pub use crate::text::{redact_uri, shorten};

pub use spec::{
    CameraLinks, CameraSpec, DetectSpec, InferenceSpec, MqttSpec, ObjectsSpec, OnError, RtspTransport, Spec, SpoolSpec,
    TlsSpec,
};

/// The global file's name inside a config directory.
pub const GLOBAL_FILE: &str = "lookout.toml";
/// The folder of camera files inside a config directory.
pub const PIPELINES_DIR: &str = "pipelines";
/// Prefix of environment overrides: `LOOKOUT__MQTT__PORT` sets `mqtt.port`.
pub const ENV_PREFIX: &str = "LOOKOUT";
/// The system-wide config directory, used by `lookout run` when it exists.
pub const SYSTEM_DIR: &str = "/etc/lookout";

/// One problem, located by file, line (when the key is written in the file) and key path.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl ConfigError {
    /// A problem with `key` in `file`; its line is found later by [`locate_lines`], once
    /// every problem is known, so each file is read once.
    pub fn new(file: impl Into<String>, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { file: file.into(), line: None, key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `file:line:` as compilers write it, so terminals and editors can jump there.
        match self.line {
            Some(line) => write!(f, "{}:{line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        let message = shorten(&self.message);
        if self.key.is_empty() { write!(f, "{message}") } else { write!(f, "{}: {message}", shorten(&self.key)) }
    }
}

/// Give each problem in a TOML file of `dir` the line its key is written on. Keys that are
/// not in the file (defaults, the environment) keep no line.
pub fn locate_lines(dir: &Path, errors: &mut [ConfigError]) {
    let mut texts: std::collections::HashMap<String, Option<String>> = std::collections::HashMap::new();
    // Labels are relative to `dir` (lookout.toml, pipelines/a.toml, models/m.toml) or
    // absolute (a manifest elsewhere); "lookout.toml with … environment" is not a file.
    for e in errors.iter_mut().filter(|e| e.line.is_none() && !e.key.is_empty() && e.file.ends_with(".toml")) {
        // A gateway value set from the environment is not the one on the file's line.
        if e.file == GLOBAL_FILE
            && let Some(var) = env_override(&e.key)
        {
            e.file = format!("{GLOBAL_FILE} with {var}");
            continue;
        }
        let text = texts.entry(e.file.clone()).or_insert_with(|| std::fs::read_to_string(dir.join(&e.file)).ok());
        e.line = text.as_deref().and_then(|t| crate::text::locate::line_of(t, &e.key));
    }
}

/// Every problem found in one load.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} config error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Where `lookout run` looks when given no `--config-dir`: /etc/lookout if present, else the
/// current directory if it holds a lookout.toml or pipelines/ (the demo config, from the
/// repository root), else /etc/lookout, so that the error names the directory to create. Never
/// the directory the binary was built in: a packaged binary must not depend on the build machine.
pub fn default_dir() -> PathBuf {
    let system = PathBuf::from(SYSTEM_DIR);
    if system.is_dir() {
        return system;
    }
    if let Ok(cwd) = std::env::current_dir()
        && (cwd.join(GLOBAL_FILE).is_file() || cwd.join(PIPELINES_DIR).is_dir())
    {
        return cwd;
    }
    system
}

/// A camera whose file has errors: at start, `lookout run` runs every other camera and
/// reports this one `failed`, naming the file and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenCamera {
    pub name: String,
    /// Every problem in its file, located.
    pub errors: Vec<ConfigError>,
}

impl BrokenCamera {
    /// The camera status reason: the problems, then what to do.
    pub fn reason(&self) -> String {
        let problems: Vec<String> = self.errors.iter().map(|e| e.to_string()).collect();
        format!("{}; fix the file, then reload (`systemctl reload lookout`)", problems.join("; "))
    }
}

/// The camera a problem belongs to, if it lies in a camera file.
fn camera_of(error: &ConfigError) -> Option<&str> {
    error.file.strip_prefix(PIPELINES_DIR)?.strip_prefix('/')?.strip_suffix(".toml")
}

/// Load and validate a config directory: any problem refuses it whole. `lookout check`, and
/// every reload, which then keeps the running config.
pub fn load(dir: &Path) -> Result<Spec, ConfigErrors> {
    let (spec, errors) = load_all(dir)?;
    if errors.is_empty() { Ok(spec) } else { Err(ConfigErrors(errors)) }
}

/// As [`load`], for `lookout run` at start: a problem in a camera file takes down that camera
/// only, which goes into [`Spec::broken`], so that after a reboot one typo does not keep every
/// camera down. A problem anywhere else (lookout.toml, the environment, a model manifest) still
/// refuses the whole config, with every problem listed.
pub fn load_tolerant(dir: &Path) -> Result<Spec, ConfigErrors> {
    let (mut spec, errors) = load_all(dir)?;
    if errors.iter().any(|e| camera_of(e).is_none()) {
        return Err(ConfigErrors(errors));
    }
    for e in errors {
        let name = camera_of(&e).unwrap_or_default().to_string();
        match spec.broken.iter_mut().find(|b| b.name == name) {
            Some(b) => b.errors.push(e),
            None => spec.broken.push(BrokenCamera { name, errors: vec![e] }),
        }
    }
    spec.cameras.retain(|c| !spec.broken.iter().any(|b| b.name == c.name));
    Ok(spec)
}

/// Read and validate everything, collecting every problem.
fn load_all(dir: &Path) -> Result<(Spec, Vec<ConfigError>), ConfigErrors> {
    let mut errors = Vec::new();
    if !dir.is_dir() {
        errors.push(ConfigError::new(
            dir.display().to_string(),
            "",
            "config directory does not exist; pass --config-dir or create /etc/lookout",
        ));
        return Err(ConfigErrors(errors));
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let global_path = dir.join(GLOBAL_FILE);

    // The file alone first, so a bad key is blamed on the file rather than the environment.
    let raw_global: raw::RawGlobal = match read_file::<raw::RawGlobal>(&global_path, GLOBAL_FILE) {
        Err(e) => {
            errors.push(e);
            raw::RawGlobal::default()
        }
        Ok(_) => {
            let layered = Config::builder()
                .add_source(File::from(global_path.as_path()).format(FileFormat::Toml).required(false))
                .add_source(
                    Environment::with_prefix(ENV_PREFIX)
                        .prefix_separator("__")
                        .separator("__")
                        .try_parsing(true)
                        .list_separator(",")
                        .with_list_parse_key("inference.providers")
                        .with_list_parse_key("detect.labels"),
                )
                .build();
            match layered.map_err(|e| (String::new(), e.to_string())).and_then(deserialize::<raw::RawGlobal>) {
                Ok(g) => g,
                Err((key, message)) => {
                    errors.push(ConfigError::new(
                        format!("{GLOBAL_FILE} with {ENV_PREFIX}__* environment"),
                        key,
                        message,
                    ));
                    raw::RawGlobal::default()
                }
            }
        }
    };
    let detect_defaults = raw_global.detect.clone();
    let track_defaults = raw_global.track.clone();
    let camera_defaults = spec::CameraDefaults::from_global(&raw_global);
    let mut spec = spec::build_global(&dir, raw_global, &mut errors);
    let gateway_model = (spec.inference.model.clone(), spec.inference.labels.clone());

    let pipelines = dir.join(PIPELINES_DIR);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&pipelines) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect()
        }
        Err(_) => Vec::new(),
    };
    files.sort();
    // No camera file is valid: a freshly installed gateway starts idle and says so
    // (audit::audit warns, the STATUS= line names it) until a reload brings the first camera.
    for path in files {
        let name = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let label = format!("{PIPELINES_DIR}/{name}.toml");
        let text = match read_text(&path, &label) {
            Ok(Some(text)) => text,
            Ok(None) => {
                errors.push(ConfigError::new(label, "", "could not be read"));
                continue;
            }
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        // The file's own settings, then each profile laid over them, each read as a whole file.
        let (split, problems) = profiles::split(&text);
        errors.extend(problems.into_iter().map(|(key, message)| ConfigError::new(&label, key, message)));
        let build = |text: &str, errors: &mut Vec<ConfigError>| match parse_text::<raw::RawCamera>(text, &path, &label)
        {
            Ok(raw_cam) => Some(spec::build_camera(
                &dir,
                &path,
                &label,
                &name,
                raw_cam,
                &detect_defaults,
                &track_defaults,
                &camera_defaults,
                &gateway_model,
                errors,
            )),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        let before = errors.len();
        let Some(cam) = build(&split.base, &mut errors) else { continue };
        let own: Vec<ConfigError> = errors[before..].to_vec();
        for (profile, overlaid) in &split.profiles {
            let mut found = Vec::new();
            if let Some(variant) = build(overlaid, &mut found) {
                spec.profiles.entry(profile.clone()).or_default().insert(name.clone(), variant);
            }
            // What the file's own settings already got wrong is said once, there.
            for e in found.into_iter().filter(|e| !own.iter().any(|o| o.key == e.key && o.message == e.message)) {
                errors.push(in_profile(e, profile, &text));
            }
        }
        spec.cameras.push(cam);
    }
    name_collisions(&spec.cameras, &mut errors);
    workers_available(&spec, &mut errors);
    locate_lines(&dir, &mut errors);
    sort_by_place(&mut errors);
    Ok((spec, errors))
}

/// A problem found in a profile's settings: named after the profile, and placed on the
/// profile's own key when the profile sets it (else on the file's key it inherited).
fn in_profile(e: ConfigError, profile: &str, text: &str) -> ConfigError {
    let own_key = format!("profiles.{profile}.{}", e.key);
    let key = if !e.key.is_empty() && crate::text::locate::line_of(text, &own_key).is_some() { own_key } else { e.key };
    ConfigError { key, message: format!("with profile `{profile}`: {}", e.message), ..e }
}

/// The `LOOKOUT__…` variable that sets `key` (or the table or list holding it), if one is set.
fn env_override(key: &str) -> Option<String> {
    let mut var = ENV_PREFIX.to_string();
    for part in key.split('.') {
        var = format!("{var}__{}", part.split('[').next().unwrap_or(part).to_ascii_uppercase());
        if std::env::var_os(&var).is_some() {
            return Some(var);
        }
    }
    None
}

/// Files in the order they were first reported (lookout.toml, then the cameras by name), and
/// each file's problems from top to bottom, as an operator fixes them; problems without a line
/// come last in their file. Stable, so the validation order stays among equals.
pub fn sort_by_place(errors: &mut [ConfigError]) {
    let mut files: Vec<String> = Vec::new();
    for e in errors.iter() {
        if !files.contains(&e.file) {
            files.push(e.file.clone());
        }
    }
    errors.sort_by_key(|e| (files.iter().position(|f| *f == e.file), e.line.unwrap_or(usize::MAX)));
}

/// Camera names that differ only in case or punctuation (`front-door`, `Front_Door`) are
/// distinct MQTT topics but the same Home Assistant id and, on a case-insensitive disk, the
/// same snapshot folder: one camera's entities and snapshots would overwrite the other's.
fn name_collisions(cameras: &[CameraSpec], errors: &mut Vec<ConfigError>) {
    let folded = |n: &str| {
        n.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect::<String>()
    };
    for (i, cam) in cameras.iter().enumerate() {
        if let Some(first) = cameras[..i].iter().find(|c| folded(&c.name) == folded(&cam.name)) {
            errors.push(ConfigError::new(
                format!("{PIPELINES_DIR}/{}.toml", cam.name),
                "(file name)",
                format!(
                    "camera `{}` collides with `{}` ({PIPELINES_DIR}/{}.toml): names that differ only in case or in '-', '_', '.' share Home Assistant ids and snapshot folders; rename one file",
                    cam.name, first.name, first.name
                ),
            ));
        }
    }
}

/// A camera can't spread its frames over more workers than its model's pool has.
fn workers_available(spec: &Spec, errors: &mut Vec<ConfigError>) {
    for cam in spec.cameras.iter().filter(|c| c.detect.workers > spec.inference.workers) {
        errors.push(ConfigError::new(
            format!("{PIPELINES_DIR}/{}.toml", cam.name),
            "detect.workers",
            format!(
                "{} is more than the {} detect worker(s) of each model (`inference.workers` in lookout.toml); raise that or lower this",
                cam.detect.workers, spec.inference.workers
            ),
        ));
    }
}

/// Parse one TOML file on its own. `Ok(None)` if it does not exist (only lookout.toml may be absent).
fn read_file<T: DeserializeOwned>(path: &Path, label: &str) -> Result<Option<T>, ConfigError> {
    match read_text(path, label)? {
        Some(text) => parse_text(&text, path, label).map(Some),
        None => Ok(None),
    }
}

/// A TOML file's text, checked to be UTF-8 and TOML. `Ok(None)` if it does not exist.
fn read_text(path: &Path, label: &str) -> Result<Option<String>, ConfigError> {
    if !path.exists() {
        return Ok(None);
    }
    // A syntax error first, on our own parse, for its line and column: the config crate's
    // message spans several lines and repeats the file's full path.
    let bytes = std::fs::read(path).map_err(|e| ConfigError::new(label, "", format!("could not be read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, column) = utf8_error_place(e.as_bytes(), e.utf8_error().valid_up_to());
        ConfigError {
            line: Some(line),
            ..ConfigError::new(label, "", format!("byte {column}: not valid UTF-8; save the file as UTF-8"))
        }
    })?;
    if let Some((line, column, message)) = crate::text::locate::syntax_error(&text) {
        return Err(ConfigError {
            line: Some(line),
            ..ConfigError::new(label, "", format!("column {column}: TOML syntax: {message}"))
        });
    }
    Ok(Some(text))
}

/// Read checked TOML text into `T`, naming the key that fails.
fn parse_text<T: DeserializeOwned>(text: &str, path: &Path, label: &str) -> Result<T, ConfigError> {
    let built = Config::builder()
        .add_source(File::from_str(text, FileFormat::Toml))
        .build()
        .map_err(|e| ConfigError::new(label, "", syntax_message(&e.to_string(), path)))?;
    deserialize::<T>(built).map_err(|(key, message)| ConfigError::new(label, key, message))
}

/// The line (from 1) and the byte within it (from 1) of the first byte that is not UTF-8.
fn utf8_error_place(bytes: &[u8], valid_up_to: usize) -> (usize, usize) {
    let before = &bytes[..valid_up_to.min(bytes.len())];
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (before.iter().filter(|&&b| b == b'\n').count() + 1, valid_up_to - line_start + 1)
}

/// Deserialize, keeping the path of the key that failed.
fn deserialize<T: DeserializeOwned>(c: Config) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(c).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { String::new() } else { key };
        // The config crate ends its messages with "for key `detect.fps` in <path>": the key and
        // file are already in front of the message.
        let mut message = e.into_inner().to_string();
        if let Some(i) = message.find(" for key `") {
            message.truncate(i);
        }
        (key, with_suggestion(message))
    })
}

/// serde says "unknown field `fsp`, expected one of `fps`, `labels`…"; add "did you mean
/// `fps`?" when one expected name is close ([`crate::text::closest`]), since a typo is the
/// usual cause.
fn with_suggestion(msg: String) -> String {
    let Some(rest) = msg.strip_prefix("unknown field `") else { return msg };
    let Some((unknown, expected)) = rest.split_once('`') else { return msg };
    match crate::text::closest(unknown, expected.split('`').skip(1).step_by(2)) {
        Some(name) => format!("{msg}; did you mean `{name}`?"),
        None => msg,
    }
}

/// The config crate prefixes TOML syntax errors with the full path; keep the useful part.
fn syntax_message(msg: &str, path: &Path) -> String {
    msg.replace(&format!(" in {}", path.display()), "")
}

#[cfg(test)]
mod shorten_tests {
    use super::*;

    #[test]
    fn errors_shorten_their_long_values() {
        let uri = format!("/etc/lookout/{}", "x".repeat(10_000_000));
        let m =
            ConfigError::new("pipelines/a.toml", "uri", format!("{uri} does not exist; check the path")).to_string();
        assert_eq!(
            m,
            format!(
                "pipelines/a.toml: uri: /etc/lookout/{}… (10000013 characters) does not exist; check the path",
                "x".repeat(35)
            )
        );
    }

    #[test]
    fn invalid_utf8_is_placed_by_line_and_byte() {
        assert_eq!(utf8_error_place(b"uri = 1\n# caf\xe9\n", 13), (2, 6));
        assert_eq!(utf8_error_place(b"\xff", 0), (1, 1));
    }
}

#[cfg(test)]
mod suggestion_tests {
    use super::*;

    #[test]
    fn a_close_typo_gets_a_suggestion_and_a_far_one_does_not() {
        let m = with_suggestion("unknown field `fsp`, expected one of `fps`, `labels`, `min_score`".into());
        assert!(m.ends_with("did you mean `fps`?"), "{m}");
        let m = with_suggestion("unknown field `colour`, expected one of `fps`, `labels`, `min_score`".into());
        assert!(!m.contains("did you mean"), "{m}");
    }
}
