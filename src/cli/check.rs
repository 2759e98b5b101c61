//! `lookout check [--config-dir DIR]`: validate offline, print every problem, exit 2 on any.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config;

pub fn check(config_dir: Option<PathBuf>) -> ExitCode {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    match config::load(&dir) {
        Ok(spec) => {
            let names: Vec<&str> = spec.cameras.iter().map(|c| c.name.as_str()).collect();
            println!(
                "{}: config OK: gateway {}, {} camera(s): {}; events to {}",
                dir.display(),
                spec.gateway_id,
                names.len(),
                names.join(", "),
                spec.mqtt.as_ref().map(|m| format!("mqtt://{}:{} under {}", m.host, m.port, m.topic_prefix)).unwrap_or_else(|| "stdout".into())
            );
            // Warnings go to stderr and don't fail the check: the config works as it is.
            let warnings = config::audit::audit(&spec);
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            // One line per camera, so an operator sees what each file will do.
            for c in &spec.cameras {
                let r = &c.objects.rules;
                let names = |v: Vec<&str>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
                println!(
                    "  {}: {} at {} fps; zones: {}; lines: {}; masks: {}",
                    c.name,
                    c.uri_redacted,
                    c.detect.fps,
                    names(r.zones.iter().map(|z| z.name.as_str()).collect()),
                    names(r.lines.iter().map(|l| l.name.as_str()).collect()),
                    r.filters.masks.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: {}", dir.display(), errors);
            ExitCode::from(super::EXIT_CONFIG)
        }
    }
}
