//! Model variants are checked against their fp32 source before they run (`detect::variant`):
//! on the real models and the sample images, through the `lookout` binary (ORT loads one
//! library per process). A smaller input passes; a variant held to a recall it does not reach
//! is refused: its source runs instead, or the load fails without fallback, and a reload keeps
//! the running detector. The NNCF INT8 model on OpenVINO, the case that motivated the check,
//! is in `openvino.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// A copy of models/yolox_nano_256.toml in `dir` with `min_recall` raised to 0.95: it finds 9
/// of yolox_nano's 10 detections on the sample images, so it must be refused.
fn strict_variant(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("models/yolox_nano_256.toml")).unwrap();
    let models = repo().join("models");
    let text = text
        .replace("file = \"yolox_nano_256.onnx\"", &format!("file = {:?}", models.join("yolox_nano_256.onnx")))
        .replace("variant_of = \"yolox_nano.toml\"", &format!("variant_of = {:?}", models.join("yolox_nano.toml")))
        .replace("min_recall = 0.8", &format!("min_recall = 0.95\ncheck_images = {:?}", repo().join("media")));
    assert!(text.contains("min_recall = 0.95") && text.contains("check_images"), "{text}");
    let path = dir.join("strict_256.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn detect(model: &str, extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let lib = ort_library().display().to_string();
    let dog = media("dog.jpg").display().to_string();
    let mut args = vec!["detect", "--model", model, "--ort-library", &lib];
    args.extend_from_slice(extra);
    args.push(&dog);
    let out = run_lookout(&args, &[], Duration::from_secs(120));
    let lines = text(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (out.status.code(), lines, text(&out.stderr))
}

#[test]
fn a_smaller_input_passes_its_check_and_runs() {
    let (code, out, stderr) = detect("yolox_nano_320", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let check = &out[0]["variant_check"];
    assert_eq!(out[0]["model"], "yolox_nano_320", "{}", out[0]);
    assert_eq!((check["variant"].as_str(), check["source"].as_str()), (Some("yolox_nano_320"), Some("yolox_nano")));
    assert_eq!(check["accepted"], true, "{check}");
    assert_eq!(check["images"], 4, "{check}");
    let (found, wanted) = (check["found"].as_u64().unwrap(), check["source_detections"].as_u64().unwrap());
    assert!(wanted >= 8 && found as f64 >= 0.8 * wanted as f64, "{check}");
    assert!(stderr.contains("model variant checked against its fp32 source"), "{stderr}");
    // The fp32 model itself is no variant: nothing to check, nothing reported.
    let (code, out, stderr) = detect("yolox_nano", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(out[0].get("variant_check").is_none(), "{}", out[0]);
}

#[test]
fn a_variant_below_its_min_recall_is_refused_for_its_source_or_fails_without_fallback() {
    let dir = ConfigDir::new("strict-variant", "", &[]);
    let strict = strict_variant(&dir.path).display().to_string();
    let (code, out, stderr) = detect(&strict, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // The fp32 source ran in its place, and said why.
    assert_eq!(out[0]["model"], "yolox_nano", "{}", out[0]);
    let check = &out[0]["variant_check"];
    assert_eq!((check["accepted"].as_bool(), check["min_recall"].as_f64()), (Some(false), Some(0.95)), "{check}");
    assert!(check["recall"].as_f64().unwrap() < 0.95, "{check}");
    assert!(stderr.contains("model variant refused: running its fp32 source instead"), "{stderr}");
    assert!(stderr.contains("(recall 0.90, min_recall 0.95): refused"), "{stderr}");

    let (code, out, stderr) = detect(&strict, &["--no-fallback"]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(out.is_empty(), "{out:?}");
    assert!(
        stderr.contains("model variant") && stderr.contains("refused") && stderr.contains("min_recall 0.95"),
        "{stderr}"
    );
    assert!(stderr.contains("does not agree with its fp32 source"), "{stderr}");

    // Without its check images it is never run unchecked.
    let text = std::fs::read_to_string(&strict).unwrap();
    let nowhere = dir.path.join("no-images");
    let blind = dir.path.join("blind.toml");
    let blind_text =
        text.replace(&format!("check_images = {:?}", repo().join("media")), &format!("check_images = {nowhere:?}"));
    std::fs::write(&blind, blind_text).unwrap();
    let (code, out, stderr) = detect(blind.to_str().unwrap(), &["--no-fallback"]);
    assert_ne!(code, Some(0), "{stderr}");
    assert!(out.is_empty(), "{out:?}");
    assert!(stderr.contains("could not be checked") && stderr.contains("cannot read the check images"), "{stderr}");
}

/// Under `lookout run`: the stats say which variant was refused and which model runs, and a
/// reload to a variant that fails its check keeps the running detectors.
#[test]
fn the_daemon_reports_the_check_and_a_reload_keeps_the_running_detector() {
    let dir = ConfigDir::new("variant-run", "", &[]);
    let strict = strict_variant(&dir.path).display().to_string();
    let global = format!("gateway_id = \"variants\"\n[stats]\ninterval_seconds = 1\n{}", inference_toml());
    std::fs::write(dir.path.join("lookout.toml"), global).unwrap();
    let camera = |model: &str| format!("uri = \"test://ball\"\n[detect]\nfps = 5\nmodel = {model:?}\n");
    std::fs::write(dir.path.join("pipelines/a.toml"), camera(&strict)).unwrap();
    let mut d = Daemon::start(&dir.path);
    let (_, s) = d
        .wait_for(0, Duration::from_secs(90), |v| {
            v["type"] == "stats" && v["cameras"]["a"]["inferred"].as_u64() > Some(0)
        })
        .expect("stats");
    let a = &s["cameras"]["a"];
    assert_eq!(a["model"], "yolox_nano", "{s}");
    assert_eq!(a["variant_check"]["variant"], "strict_256", "{s}");
    assert_eq!(a["variant_check"]["accepted"], false, "{s}");

    // A good variant is swapped in on reload; then the strict one is refused and 320 stays.
    let models = repo().join("models");
    std::fs::write(
        dir.path.join("pipelines/a.toml"),
        camera(&models.join("yolox_nano_320.toml").display().to_string()),
    )
    .unwrap();
    let hup = |d: &Daemon| {
        let _ = std::process::Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
    };
    let mark = d.mark();
    hup(&d);
    let (i, s) = d
        .wait_for(mark, Duration::from_secs(90), |v| {
            v["type"] == "stats" && v["cameras"]["a"]["model"] == "yolox_nano_320"
        })
        .expect("320 swapped in");
    assert_eq!(s["cameras"]["a"]["variant_check"]["accepted"], true, "{s}");
    let inferred = s["cameras"]["a"]["inferred"].as_u64().unwrap();
    std::fs::write(dir.path.join("pipelines/a.toml"), camera(&strict)).unwrap();
    hup(&d);
    // The refused reload leaves the camera on 320, still inferring.
    let (_, s) = d
        .wait_for(i + 1, Duration::from_secs(90), |v| {
            v["type"] == "stats" && v["cameras"]["a"]["inferred"].as_u64() >= Some(inferred + 25)
        })
        .expect("still inferring");
    assert_eq!(s["cameras"]["a"]["model"], "yolox_nano_320", "{s}");
    let out = d.terminate();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("this model can't be loaded; the cameras that would run it keep what they run now"),
        "{stderr}"
    );
    assert!(stderr.contains("strict_256 on cpu found 9 of yolox_nano's 10 detections"), "{stderr}");
}
