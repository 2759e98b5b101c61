//! Execution providers and batching, on the real model and the real runtime: names and options
//! checked offline, `check --probe` against the loaded library, and the batched path (run on
//! the CPU with `batch_on_cpu`, since no GPU is here) giving the detections batch 1 gives.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

pub fn dynbatch_model() -> std::path::PathBuf {
    let p = repo().join("models/yolox_nano_dynbatch.onnx");
    assert!(p.exists(), "models/yolox_nano_dynbatch.onnx missing: run scripts/setup");
    p
}

fn check(global: &str, envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let cam = format!("uri = {:?}\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("providers", global, &[("front", &cam)]);
    let mut all = vec!["check", "--config-dir", dir.path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run_lookout(&all, envs, Duration::from_secs(60));
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn provider_names_and_options_are_checked_offline() {
    let global = format!(
        "gateway_id = \"t\"\n{}providers = [\"cuda\", \"openvio\", {{ type = \"cuda\", fp16 = true }}, {{ type = \"openvino\", device_type = \"TPU\" }}, \"cpu\", \"cpu\"]\nmax_batch = 0\n",
        inference_toml()
    );
    let (code, _, stderr) = check(&global, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    for want in [
        "lookout.toml:5: inference.providers[1]: unknown execution provider `openvio`; did you mean `openvino`?",
        "inference.providers[2].fp16: does not apply to cuda; it takes device_id, memory_limit_bytes",
        "inference.providers[3].device_type: `TPU` is not an OpenVINO device",
        "inference.providers[5]: cpu is listed twice",
        "inference.max_batch: 0 must be between 1 and 128",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    // A misspelt option inside a provider table is an unknown key like any other.
    let global =
        format!("gateway_id = \"t\"\n{}providers = [{{ type = \"tensorrt\", fp61 = true }}]\n", inference_toml());
    let (code, _, stderr) = check(&global, &[], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `fp61`") && stderr.contains("did you mean `fp16`?"), "{stderr}");
}

#[test]
fn the_environment_sets_the_provider_list() {
    let global = format!(
        "gateway_id = \"t\"\n{}providers = [{{ type = \"openvino\", device_type = \"NPU\" }}, \"cpu\"]\n",
        inference_toml()
    );
    let (code, stdout, stderr) = check(&global, &[], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("on openvino:NPU, cpu (fallback true)"), "{stdout}");
    let (code, stdout, stderr) = check(&global, &[("LOOKOUT__INFERENCE__PROVIDERS", "cpu")], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("on cpu (fallback true)"), "{stdout}");
    let (_, stdout, _) = check(
        &global,
        &[("LOOKOUT__INFERENCE__PROVIDERS", "cuda,cpu"), ("LOOKOUT__INFERENCE__FALLBACK", "false")],
        &[],
    );
    assert!(stdout.contains("on cuda, cpu (fallback false)"), "{stdout}");
}

#[test]
fn probe_builds_each_provider_and_names_the_one_run_would_use() {
    // The CPU wheel's runtime has no CUDA: the probe says so, and that run would use the CPU.
    let global = format!(
        "gateway_id = \"t\"\n{}providers = [{{ type = \"cuda\", device_id = 0 }}, \"cpu\"]\n",
        inference_toml()
    );
    let (code, stdout, stderr) = check(&global, &[], &["--probe"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for want in [
        "probe: ONNX Runtime ",
        "1.31.1",
        "compiled in: tensorrt no, cuda no, openvino no, qnn no, cpu yes",
        "1. cuda:0: FAILED",
        "2. cpu: OK, nodes: CPUExecutionProvider",
        "lookout run would use: cpu",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    // Without fallback only the first counts.
    let global = format!("gateway_id = \"t\"\n{}providers = [\"cuda\", \"cpu\"]\nfallback = false\n", inference_toml());
    let (code, stdout, stderr) = check(&global, &[], &["--probe"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("no configured provider builds first (inference.fallback = false)"), "{stderr}");
}

#[test]
fn a_failed_provider_falls_back_or_stops_as_configured() {
    let dog = media("dog.jpg").display().to_string();
    let (model, lib) = (model().display().to_string(), ort_library().display().to_string());
    let base = ["detect", "--model", &model, "--ort-library", &lib, "--provider", "cuda", "--provider", "cpu"];
    let out = run_lookout(&[&base[..], &[dog.as_str()]].concat(), &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["provider"], "cpu");
    assert_eq!(v["provider_skipped"][0]["provider"], "cuda");
    assert!(v["provider_skipped"][0]["reason"].as_str().unwrap().len() > 5, "{v}");
    assert!(v["placement"]["CPUExecutionProvider"].as_u64().unwrap() > 0, "{v}");
    assert!(
        text(&out.stderr).contains("execution provider did not build; trying the next one"),
        "{}",
        text(&out.stderr)
    );

    let out = run_lookout(&[&base[..], &["--no-fallback", dog.as_str()]].concat(), &[], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no execution provider could run the model (inference.fallback = false"), "{stderr}");
    assert!(stderr.contains("cuda: "), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn batched_inference_gives_the_detections_of_batch_one() {
    // bench infer at batch 8 on the CPU (four images in turn), checked against batch-1 runs
    // of the same images in the same process.
    let (model, lib) = (dynbatch_model().display().to_string(), ort_library().display().to_string());
    let images: Vec<String> = ["dog.jpg", "person.jpg", "astronaut.png", "grace_hopper.jpg"]
        .iter()
        .map(|f| media(f).display().to_string())
        .collect();
    let mut args =
        vec!["bench", "infer", "--model", &model, "--ort-library", &lib, "--batch", "8", "--iterations", "2", "--json"];
    args.extend(images.iter().map(|s| s.as_str()));
    let out = run_lookout(&args, &[], Duration::from_secs(120));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(v["batch"], 8);
    assert_eq!(v["provider"], "cpu");
    assert_eq!(v["detections_match"], true, "{v}");
    let a = &v["agreement"];
    assert!(a["compared"].as_u64().unwrap() >= 10, "{v}");
    assert_eq!(a["compared"], a["matched"]);
    // The same network on the same runtime: a batch changes nothing but the arithmetic order.
    assert!(a["max_score_diff"].as_f64().unwrap() <= 1e-3, "{v}");
    assert!(v["images_per_second"].as_f64().unwrap() > 0.0 && v["bare_images_per_second"].as_f64().unwrap() > 0.0);

    // A fixed-batch model cannot batch: a clear error, not a crash.
    let plain = crate::common::model().display().to_string();
    let out = run_lookout(
        &["bench", "infer", "--model", &plain, "--ort-library", &lib, "--batch", "4", &images[0]],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has a fixed batch of 1; use a model with a dynamic batch"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_daemon_batches_frames_across_cameras_and_counts_the_sizes() {
    // Three unpaced file cameras on one worker: frames wait on every link, so batches fill
    // with one frame per camera. batch_on_cpu stands in for a GPU provider.
    let global = format!(
        "gateway_id = \"b\"\n[inference]\nmodel = {:?}\nort_library = {:?}\nworkers = 1\nmax_batch = 4\nmax_batch_wait_ms = 50\nbatch_on_cpu = true\n",
        dynbatch_model().display().to_string(),
        ort_library().display().to_string()
    );
    let cam = format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 25\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("batch", &global, &[("a", &cam), ("b", &cam), ("c", &cam)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(180));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stats: Value = text(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "stats" && v["final"] == true)
        .expect("final stats");
    let batches = stats["batches"].as_object().unwrap();
    let sizes: Vec<(usize, u64)> = batches.iter().map(|(k, v)| (k.parse().unwrap(), v.as_u64().unwrap())).collect();
    eprintln!("batches {sizes:?}");
    assert!(sizes.iter().any(|(n, runs)| *n > 1 && *runs > 0), "no batch above 1: {stats}");
    assert!(sizes.iter().all(|(n, _)| *n <= 3), "at most one frame per camera in a batch: {sizes:?}");
    let frames_in_batches: u64 = sizes.iter().map(|(n, runs)| *n as u64 * runs).sum();
    let mut inferred = 0;
    for cam in ["a", "b", "c"] {
        let c = &stats["cameras"][cam];
        let n = |k: &str| c[k].as_u64().unwrap();
        let dropped: u64 = c["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(n("decoded"), 250, "{c}");
        assert_eq!(n("decoded"), n("skipped_by_rate") + n("inferred") + dropped, "books of {cam}: {c}");
        inferred += n("inferred");
    }
    assert_eq!(frames_in_batches, inferred, "every inferred frame was in exactly one counted run");
    assert!(stderr.contains("execution provider chosen"), "{stderr}");
}
