//! The commented reference configs (docs/*.reference.toml): they pass `lookout check`, and they
//! document every key the config parser accepts. The accepted keys are not listed by hand:
//! each table is probed with an unknown key, and the parser's own "expected one of" list is
//! compared with the reference.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::common::*;

const GLOBAL_REF: &str = "docs/lookout.reference.toml";
const CAMERA_REF: &str = "docs/pipeline.reference.toml";

fn reference(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

/// Table → keys documented in a reference file, commented or not. Table headers count as keys
/// of their parent (`[mqtt]` documents the root's `mqtt`). `filters.<label>` is `filters.*`.
fn documented(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut table = String::new();
    for line in text.lines() {
        let l = line.trim_start_matches('#').trim();
        let word = |s: &str| s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if let Some(name) = l.strip_prefix('[').map(|r| r.trim_start_matches('[')).and_then(|r| r.split(']').next())
            && !name.is_empty()
            && word(name)
        {
            let mut parts: Vec<&str> = name.split('.').collect();
            if parts[0] == "filters" && parts.len() == 2 {
                parts[1] = "*";
            }
            let (parent, last) = (parts[..parts.len() - 1].join("."), parts[parts.len() - 1]);
            out.entry(parent).or_default().insert(if last == "*" { parts[0].to_string() } else { last.to_string() });
            if last == "*" {
                out.entry(String::new()).or_default().insert("filters".into());
            }
            table = parts.join(".");
            continue;
        }
        if let Some((key, _)) = l.split_once('=') {
            let key = key.trim();
            if !key.is_empty() && word(key) && !key.contains('.') {
                out.entry(table.clone()).or_default().insert(key.to_string());
            }
        }
    }
    out
}

/// The keys the parser accepts in `table`, from the error an unknown key there produces.
fn accepted(global: &str, camera: &str) -> BTreeSet<String> {
    let dir = ConfigDir::new("probe", global, &[("front", camera)]);
    let errors = lookout::config::load(&dir.path).expect_err("the probe key is refused").0;
    let e = errors
        .iter()
        .find(|e| e.message.contains("unknown field `zzz_probe`"))
        .unwrap_or_else(|| panic!("no probe error in {errors:?}"));
    // "unknown field `zzz_probe`, expected one of `a`, `b` for key `mqtt`": the list only.
    let expected = e.message.split_once("expected").map(|(_, r)| r).unwrap_or("");
    let expected = expected.split(" for key").next().unwrap_or("");
    expected.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn every_key_the_parser_accepts_is_in_the_reference_configs() {
    let ball = "uri = \"test://ball\"\n";
    let global_doc = documented(&reference(GLOBAL_REF));
    let camera_doc = documented(&reference(CAMERA_REF));
    let mut missing = Vec::new();
    let mut probed = 0;
    for table in [
        "",
        "mqtt",
        "mqtt.tls",
        "spool",
        "inference",
        "detect",
        "stats",
        "track",
        "metrics",
        "snapshots",
        "links.frames",
        "links.detections",
        "links.events",
        "motion",
    ] {
        let global =
            if table.is_empty() { "zzz_probe = 1\n".to_string() } else { format!("[{table}]\nzzz_probe = 1\n") };
        for key in accepted(&global, ball) {
            probed += 1;
            if !global_doc.get(table).is_some_and(|k| k.contains(&key)) {
                missing.push(format!("{GLOBAL_REF}: [{table}] {key}"));
            }
        }
    }
    let zone = "[[zones]]\nname = \"z\"\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]\nzzz_probe = 1\n";
    let line = "[[lines]]\nname = \"l\"\npoints = [[0.0, 0.0], [1.0, 1.0]]\nzzz_probe = 1\n";
    let tables: [(&str, String); 12] = [
        ("", "zzz_probe = 1\n".into()),
        ("detect", "[detect]\nzzz_probe = 1\n".into()),
        ("track", "[track]\nzzz_probe = 1\n".into()),
        ("filters.*", "[filters.person]\nzzz_probe = 1\n".into()),
        ("zones", zone.into()),
        ("lines", line.into()),
        ("stationary", "[stationary]\nzzz_probe = 1\n".into()),
        ("events", "[events]\nzzz_probe = 1\n".into()),
        ("snapshots", "[snapshots]\nzzz_probe = 1\n".into()),
        ("links.frames", "[links.frames]\nzzz_probe = 1\n".into()),
        ("links.detections", "[links.detections]\nzzz_probe = 1\n".into()),
        ("motion", "[motion]\nzzz_probe = 1\n".into()),
    ];
    for (table, body) in tables {
        for key in accepted(&inference_toml(), &format!("{ball}{body}")) {
            probed += 1;
            if !camera_doc.get(table).is_some_and(|k| k.contains(&key)) {
                missing.push(format!("{CAMERA_REF}: [{table}] {key}"));
            }
        }
    }
    assert!(probed > 80, "the probes found only {probed} keys: {global_doc:?}");
    assert!(missing.is_empty(), "keys the parser accepts but the reference does not document:\n{}", missing.join("\n"));
}

#[test]
fn the_reference_configs_pass_lookout_check() {
    let dir = ConfigDir::new("reference", &reference(GLOBAL_REF), &[("front", &reference(CAMERA_REF))]);
    // The reference keeps the default (relative) model paths; point them at the real files.
    let (model, lib) = (model().display().to_string(), ort_library().display().to_string());
    let envs = [("LOOKOUT__INFERENCE__MODEL", model.as_str()), ("LOOKOUT__INFERENCE__ORT_LIBRARY", lib.as_str())];
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &envs, Duration::from_secs(30));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("front: rtsp://camera.local/stream1"), "{}", text(&out.stdout));
}
