//! The OpenVINO execution provider, for real: the onnxruntime-openvino 1.24.1 runtime that
//! `LOOKOUT_OPENVINO=1 scripts/setup` places (CI does), on device CPU, a non-CPU provider that
//! runs on this CPU-only machine. ORT loads one library per process, so everything goes
//! through the `lookout` binary with `--ort-library`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The OpenVINO runtime. These tests never pass without running: where the runtime is absent,
/// scripts/test leaves them out by a filter and says so, and run on their own they fail with
/// what to do.
fn openvino_library() -> PathBuf {
    let p = repo().join(".lookout/ort-openvino/libonnxruntime.so.1.24.1");
    assert!(
        p.exists(),
        "{} is missing: run LOOKOUT_OPENVINO=1 scripts/setup (CI does), or leave these tests out (scripts/test does)",
        p.display()
    );
    p
}

fn images() -> Vec<String> {
    ["dog.jpg", "person.jpg", "astronaut.png", "grace_hopper.jpg"]
        .iter()
        .map(|f| media(f).display().to_string())
        .collect()
}

fn detect(lib: &str, extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let model = model().display().to_string();
    let imgs = images();
    let mut args = vec!["detect", "--model", &model, "--ort-library", lib];
    args.extend_from_slice(extra);
    args.extend(imgs.iter().map(|s| s.as_str()));
    let out = run_lookout(&args, &[], Duration::from_secs(120));
    let lines = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (out.status.code(), lines, text(&out.stderr))
}

#[test]
fn openvino_on_cpu_runs_every_node_and_matches_the_cpu_provider() {
    let ov = openvino_library();
    let ov = ov.display().to_string();
    let (code, got, stderr) = detect(&ov, &["--provider", "openvino:CPU", "--no-fallback"]);
    assert_eq!(code, Some(0), "{stderr}");
    let cpu_lib = ort_library().display().to_string();
    let (code, want, stderr) = detect(&cpu_lib, &["--provider", "cpu"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(got.len(), 4);
    let mut compared = 0;
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["image"], w["image"]);
        assert_eq!(g["provider"], "openvino", "{g}");
        // Every node on OpenVINO, as ORT itself logged the placement: nothing left on the CPU EP.
        let placement = g["placement"].as_object().unwrap();
        assert_eq!(placement.keys().collect::<Vec<_>>(), ["OpenVINOExecutionProvider"], "{g}");
        assert!(placement["OpenVINOExecutionProvider"].as_u64().unwrap() >= 1);
        // Every CPU detection found on OpenVINO at IoU >= 0.98 with its score within 0.01, and
        // none extra.
        let what = format!("{}: openvino against cpu", g["image"]);
        compared += assert_detections_match(&what, &detections(w), &detections(g), 0.98, 0.01).matched();
    }
    assert!(compared >= 10, "only {compared} detections compared");
}

#[test]
fn npu_absent_here_falls_back_or_fails_as_configured() {
    let ov = openvino_library();
    let ov = ov.display().to_string();
    // fallback (the default): the next provider runs, and the reason is told.
    let (code, got, stderr) = detect(&ov, &["--provider", "openvino:NPU", "--provider", "openvino:CPU"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(got[0]["provider"], "openvino");
    let skipped = &got[0]["provider_skipped"][0];
    assert_eq!(skipped["provider"], "openvino:NPU");
    assert!(skipped["reason"].as_str().unwrap().contains("Device NPU is not available"), "{skipped}");
    assert!(
        stderr.contains("execution provider did not build; trying the next one") && stderr.contains("openvino:NPU"),
        "{stderr}"
    );
    // fallback off: a hard error naming the provider, the reason and the setting.
    let (code, got, stderr) = detect(&ov, &["--provider", "openvino:NPU", "--provider", "cpu", "--no-fallback"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(got.is_empty());
    for want in
        ["inference.fallback = false", "openvino:NPU: [OpenVINO] Device NPU is not available", "lookout check --probe"]
    {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
}

#[test]
fn the_daemon_reports_the_openvino_provider_in_its_stats() {
    let ov = openvino_library();
    let global = format!(
        "gateway_id = \"ov\"\n[inference]\nmodel = {:?}\nort_library = {:?}\nproviders = [{{ type = \"openvino\", device_type = \"NPU\" }}, {{ type = \"openvino\", device_type = \"CPU\" }}, \"cpu\"]\n",
        model().display().to_string(),
        ov.display().to_string()
    );
    let cam = format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 2\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("openvino", &global, &[("street", &cam)]);
    let out =
        run_lookout(&["check", "--probe", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for want in [
        "1.24.1",
        "openvino yes",
        "1. openvino:NPU: FAILED: [OpenVINO] Device NPU is not available",
        "2. openvino:CPU: OK, nodes: OpenVINOExecutionProvider",
        "lookout run would use: openvino:CPU",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(120));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: Value = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "stats" && v["final"] == true)
        .expect("final stats");
    assert_eq!(stats["provider"], "openvino", "{stats}");
    assert_eq!(stats["provider_skipped"][0]["provider"], "openvino:NPU", "{stats}");
    assert!(stats["cameras"]["street"]["inferred"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn bench_models_runs_each_model_on_its_own_provider_without_fallback() {
    let ov = openvino_library();
    let (ov, m, dog) =
        (ov.display().to_string(), model().display().to_string(), media("dog.jpg").display().to_string());
    let base = ["bench", "models", "--ort-library", &ov, "--runs", "1", "--frame-step", "50"];
    // The same fp32 model on the CPU provider (the baseline) and on OpenVINO, in one process.
    let mut args = base.to_vec();
    args.extend(["--model", &m, "--provider", "cpu", "--model", &m, "--provider", "openvino:CPU", &dog]);
    let out = run_lookout(&args, &[], Duration::from_secs(180));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("provider cpu, openvino:CPU"), "{stdout}");
    let row =
        |prefix: &str, has: &str| stdout.lines().find(|l| l.starts_with(prefix) && l.contains(has)).map(str::to_string);
    let base_row = row("yolox_nano@cpu (base)", "fp32").unwrap_or_else(|| panic!("no baseline row in:\n{stdout}"));
    assert!(base_row.contains("CPUExecutionProvider") && !base_row.contains("OpenVINO"), "{base_row}");
    let ov_row = row("yolox_nano@openvino:CPU", "fp32").unwrap_or_else(|| panic!("no openvino row in:\n{stdout}"));
    assert!(ov_row.ends_with("OpenVINOExecutionProvider 1"), "{ov_row}");
    // OpenVINO gives the CPU provider's detections (the test above): every one found again.
    for inputs in ["images", "clip"] {
        let r = row("yolox_nano@openvino:CPU", &format!(" {inputs} "))
            .unwrap_or_else(|| panic!("no {inputs} agreement in:\n{stdout}"));
        let cols: Vec<&str> = r.split_whitespace().collect();
        assert!(cols[2].parse::<u32>().unwrap() > 0 && cols[3] == "1.000" && cols[5] == "0", "{r}");
    }

    // A provider that can't run is the run's failure, not a silent fallback to cpu.
    let mut args = base.to_vec();
    args.extend(["--model", &m, "--provider", "cpu", "--model", &m, "--provider", "openvino:NPU", &dog]);
    let out = run_lookout(&args, &[], Duration::from_secs(120));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Device NPU is not available") && stderr.contains(&m), "{stderr}");
    // Neither one provider for all nor one per model: refused before anything loads.
    let mut args = base.to_vec();
    args.extend(["--model", &m, "--model", &m, "--model", &m, "--provider", "cpu", "--provider", "openvino:CPU", &dog]);
    let out = run_lookout(&args, &[], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("2 --provider flags for 3 models"), "{}", text(&out.stderr));
}

/// The case that made the variant check: NNCF's INT8 YOLOX-Nano with int8 activations (the
/// form NNCF writes; `LOOKOUT_OPENVINO=1 LOOKOUT_FOR_TESTS=1 scripts/setup` makes it) keeps
/// fp32's detections on ORT's CPU provider, but OpenVINO's CPU plugin returns top scores of
/// 0.03-0.1 for it. On openvino:CPU it must be refused: without fallback the load fails with the
/// figures, with fallback yolox_nano runs on OpenVINO in its place.
#[test]
fn the_nncf_int8_model_is_refused_on_openvino_and_fp32_runs_instead() {
    let ov = openvino_library().display().to_string();
    let manifest = repo().join("models/yolox_nano_int8_nncf_i8.toml");
    assert!(
        manifest.exists(),
        "{} is missing: LOOKOUT_OPENVINO=1 LOOKOUT_FOR_TESTS=1 scripts/setup makes it (CI does)",
        manifest.display()
    );
    let m = manifest.display().to_string();
    let dog = media("dog.jpg").display().to_string();
    let args = |extra: &'static str| {
        let mut a = vec!["detect", "--model", m.as_str(), "--ort-library", ov.as_str(), "--provider", "openvino:CPU"];
        if !extra.is_empty() {
            a.push(extra);
        }
        a.push(dog.as_str());
        a.into_iter().map(String::from).collect::<Vec<String>>()
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run_lookout(&a, &[], Duration::from_secs(180))
    };
    let out = run(args("--no-fallback"));
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("yolox_nano_int8_nncf_i8 on openvino:CPU found"), "{stderr}");
    assert!(stderr.contains("min_recall 0.90): refused"), "{stderr}");

    let out = run(args(""));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line: Value = serde_json::from_str(text(&out.stdout).lines().next().expect("one line")).unwrap();
    assert_eq!((line["model"].as_str(), line["provider"].as_str()), (Some("yolox_nano"), Some("openvino")), "{line}");
    let check = &line["variant_check"];
    assert_eq!(check["accepted"], false, "{check}");
    assert!(check["recall"].as_f64().unwrap() < 0.5, "{check}");
    // fp32 on OpenVINO, where it runs in the variant's place, finds the dog.
    assert!(line["detections"].as_array().unwrap().iter().any(|d| d["label"] == "dog"), "{line}");
}
