//! `lookout check [--config-dir DIR]`: validate offline, print every problem, exit 2 on any.
//! `lookout check --probe`: also load the ONNX Runtime library and build a session on each
//! configured execution provider, to say what this machine can run (no camera, no broker).
//!
//! Beyond the config files, it opens the model with ONNX Runtime (no camera, broker or GPU
//! needed) and compares its real inputs and outputs with the manifest, so a manifest that
//! does not describe its model fails here rather than at start. The checking itself is
//! [`config::check::check_dir`], which the web console's Check runs too; this file prints it.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::check::Checked;
use crate::config::{self, ConfigErrors, InferenceSpec};
use crate::detect::session::{effective_library, runtime_info};
use crate::detect::{DetectError, Detector, DetectorOptions};

/// `for_start`: judge the config as `lookout run` does at start (systemd's ExecStartPre): a
/// camera file with errors is printed, and that camera will start `failed`, but only problems
/// that stop the start (lookout.toml, the environment, a model) fail the check.
pub fn check(config_dir: Option<PathBuf>, probe: bool, for_start: bool) -> ExitCode {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    match config::check::check_dir(&dir, for_start) {
        Ok(Checked { spec, model_lines }) => {
            for b in &spec.broken {
                eprintln!(
                    "{}: camera {} will not start, its file has errors: {}",
                    dir.display(),
                    b.name,
                    ConfigErrors(b.errors.clone())
                );
            }
            let names: Vec<&str> = spec.cameras.iter().map(|c| c.name.as_str()).collect();
            println!(
                "{}: config OK: gateway {}, {} camera(s): {}; events to {}",
                dir.display(),
                spec.gateway_id,
                names.len(),
                names.join(", "),
                spec.mqtt
                    .as_ref()
                    .map(|m| format!("mqtt://{}:{} under {}", m.host, m.port, m.topic_prefix))
                    .unwrap_or_else(|| "stdout".into())
            );
            // Warnings go to stderr and don't fail the check: the config works as it is.
            let warnings = config::audit::audit(&spec);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            for line in &model_lines {
                println!("{line}");
            }
            // One line per camera, so an operator sees what each file will do.
            for c in &spec.cameras {
                let r = &c.objects.rules;
                let names = |v: Vec<&str>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
                let labels = &c.objects.labels;
                let groups: Vec<String> = c
                    .objects
                    .tracker
                    .label_groups
                    .iter()
                    .map(|g| g.iter().map(|&i| labels.name(i)).collect::<Vec<_>>().join("+"))
                    .collect();
                println!(
                    "  {}: {} at {} fps; zones: {}; lines: {}; masks: {}{}",
                    c.name,
                    c.source.uri_redacted,
                    c.detect.fps,
                    names(r.zones.iter().map(|z| z.name.as_str()).collect()),
                    names(r.lines.iter().map(|l| l.name.as_str()).collect()),
                    r.filters.masks.len(),
                    if groups.is_empty() { String::new() } else { format!("; tracked as one: {}", groups.join(", ")) }
                );
            }
            // Every profile was built and checked with its camera's file.
            for (profile, cameras) in &spec.profiles {
                let names: Vec<&str> = cameras.keys().map(String::as_str).collect();
                println!("  profile {profile}: checked; cameras: {}", names.join(", "));
            }
            let inf = &spec.inference;
            println!(
                "  inference: {} on {} (fallback {}), {} worker(s), max_batch {}, io_binding on cuda/tensorrt {}",
                inf.model.display(),
                inf.providers.iter().map(|p| p.label()).collect::<Vec<_>>().join(", "),
                inf.fallback,
                inf.workers,
                inf.max_batch,
                if inf.io_binding { "on" } else { "off" }
            );
            if probe { probe_providers(inf) } else { ExitCode::SUCCESS }
        }
        Err(errors) => {
            eprint!("{}: {}", dir.display(), errors);
            ExitCode::from(super::EXIT_CONFIG)
        }
    }
}

/// Load the runtime, say what it was built with, and build a session on each configured
/// provider alone. Exit 0 when the provider `lookout run` would choose builds.
fn probe_providers(inf: &InferenceSpec) -> ExitCode {
    let library = effective_library(&inf.ort_library);
    println!("probe: ONNX Runtime {}", library.display());
    let (build, compiled) = match runtime_info(&library) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("probe: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    println!("  build: {}", build.trim());
    let list: Vec<String> =
        compiled.iter().map(|(k, yes)| format!("{k} {}", if *yes { "yes" } else { "no" })).collect();
    println!("  compiled in: {}", list.join(", "));
    println!("  configured providers, each built alone on {}:", inf.model.display());
    let mut chosen = None;
    for (i, p) in inf.providers.iter().enumerate() {
        let opts = DetectorOptions { providers: vec![p.clone()], fallback: false, ..inf.detector_options() };
        match Detector::load(&opts) {
            Ok(d) => {
                let placement = crate::detect::provider::placement_text(&d.selection().placement);
                println!("    {}. {}: OK, nodes: {placement}; max batch {}", i + 1, p.label(), d.max_batch());
                if let Some(c) = d.variant_check() {
                    let runs = if c.accepted { c.variant.as_str() } else { c.source.as_str() };
                    println!("       variant check: {}; runs {runs}", crate::detect::variant::describe(c));
                }
                if chosen.is_none() && (inf.fallback || i == 0) {
                    chosen = Some(p.label());
                }
            }
            Err(e) => {
                // The detector's error repeats the advice; the reason is what matters here.
                let why = match e {
                    DetectError::NoProvider { tried, .. } => {
                        tried.strip_prefix(&format!("{}: ", p.label())).map(str::to_string).unwrap_or(tried)
                    }
                    other => other.to_string(),
                };
                println!("    {}. {}: FAILED: {why}", i + 1, p.label());
            }
        }
    }
    match chosen {
        Some(p) => {
            println!("  lookout run would use: {p}");
            ExitCode::SUCCESS
        }
        None => {
            eprintln!(
                "probe: no configured provider builds{}; see the reasons above",
                if inf.fallback { "" } else { " first (inference.fallback = false)" }
            );
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}
