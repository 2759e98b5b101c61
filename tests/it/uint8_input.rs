//! The uint8-input model (scripts/uint8_input.py, placed by scripts/setup) on the real runtime:
//! the same detections as the f32 model, through the plain and the IoBinding input paths and
//! at several batch sizes; `lookout check` naming an element type the manifest gets wrong; and
//! `bench infer` measuring the variants side by side.

use std::path::PathBuf;
use std::time::Duration;

use lookout::detect::compare::compare;
use lookout::detect::session::InputBinding;
use lookout::detect::{Detection, Detector, DetectorOptions, ScaledImage};
use serde_json::Value;

use crate::common::*;
use crate::providers::dynbatch_model;

fn uint8_manifest() -> PathBuf {
    let p = repo().join("models/yolox_nano_dynbatch_uint8.toml");
    assert!(p.exists(), "models/yolox_nano_dynbatch_uint8.toml missing: run scripts/setup");
    p
}

const IMAGES: [&str; 4] = ["dog.jpg", "person.jpg", "astronaut.png", "grace_hopper.jpg"];

fn detector(model: PathBuf, io_binding: InputBinding, max_batch: usize) -> Detector {
    let opts =
        DetectorOptions { max_batch, batch_on_cpu: true, io_binding, ..DetectorOptions::new(model, ort_library()) };
    Detector::load(&opts).unwrap_or_else(|e| panic!("{e}"))
}

/// The four media images scaled to the detector's letterbox size.
fn scaled(det: &mut Detector) -> Vec<ScaledImage> {
    IMAGES.iter().map(|f| det.scale_image(&image::open(media(f)).unwrap().to_rgb8()).unwrap()).collect()
}

fn run(det: &mut Detector, images: &[ScaledImage]) -> Vec<Vec<Detection>> {
    let frames: Vec<_> = images.iter().map(|s| s.frame()).collect();
    det.detect_batch(&frames).unwrap_or_else(|e| panic!("{e}")).0
}

/// Same objects in the same order, boxes within `px` pixels and scores within `score`: by
/// `lookout::detect::compare`, each detection paired with the one at its own index.
fn assert_same(got: &[Vec<Detection>], want: &[Vec<Detection>], px: f32, score: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let c = compare(w, g, 0.5);
        assert!(c.in_order(), "{what}, {}: {g:?} vs {w:?}", IMAGES[i]);
        assert!(c.max_score_diff() <= score, "{what}, {}: {g:?} vs {w:?}", IMAGES[i]);
        assert!(c.max_box_error() <= px, "{what}, {}: {g:?} vs {w:?}", IMAGES[i]);
    }
}

#[test]
fn the_uint8_model_detects_what_the_f32_model_detects() {
    // YOLOX takes raw 0..255 BGR: the graph's Cast and Gather give the network the very floats
    // the host's f32 path writes, so the outputs are the same arithmetic on the same values.
    let mut f32_det = detector(dynbatch_model(), InputBinding::Off, 4);
    let mut u8_det = detector(uint8_manifest(), InputBinding::Off, 4);
    assert_eq!(u8_det.input_type().as_str(), "uint8");
    assert_eq!(f32_det.input_type().as_str(), "float32");
    let images = scaled(&mut f32_det);
    let want = run(&mut f32_det, &images);
    assert!(want.iter().map(Vec::len).sum::<usize>() >= 10, "too few detections to compare: {want:?}");
    assert_same(&run(&mut u8_det, &images), &want, 1e-3, 1e-5, "uint8 vs f32 at batch 4");
    // One at a time, in the same reused buffer: the same again.
    for (i, img) in images.iter().enumerate() {
        assert_same(&run(&mut u8_det, std::slice::from_ref(img)), &want[i..=i], 1e-3, 1e-5, "uint8 at batch 1");
    }
}

#[test]
fn the_bound_input_path_gives_the_plain_paths_detections() {
    // IoBinding is for cuda/tensorrt; `Always` runs the same code here with ORT's CPU memory,
    // re-bound at each batch's shape (4, then 1, then 3), while the outputs stay bound.
    for model in [uint8_manifest(), dynbatch_model()] {
        let mut plain = detector(model.clone(), InputBinding::Off, 4);
        let mut bound = detector(model.clone(), InputBinding::Always, 4);
        assert!(bound.io_binding() && !plain.io_binding(), "{}", model.display());
        assert!(
            !detector(model.clone(), InputBinding::Gpu, 4).io_binding(),
            "Gpu binds on cuda and tensorrt only, not on cpu"
        );
        let images = scaled(&mut plain);
        for batch in [&images[..], &images[..1], &images[1..]] {
            let want = run(&mut plain, batch);
            assert_same(
                &run(&mut bound, batch),
                &want,
                0.0,
                0.0,
                &format!("{} bound, batch {}", model.display(), batch.len()),
            );
        }
    }
}

#[test]
fn check_names_an_input_element_type_the_manifest_gets_wrong() {
    let written = std::fs::read_to_string(uint8_manifest()).unwrap();
    let global = format!(
        "gateway_id = \"t\"\n[inference]\nmodel = \"x\"\nort_library = {:?}\n",
        ort_library().display().to_string()
    );
    let cam = format!("uri = {:?}\n", media("bikes.mp4").display().to_string());
    let check = |manifest: String| {
        let dir = ConfigDir::new("uint8", &global, &[("front", &cam)]);
        std::fs::create_dir_all(dir.path.join("models")).unwrap();
        std::fs::write(dir.path.join("models/x.toml"), manifest).unwrap();
        let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    // The manifest as setup writes it passes, and says so.
    let abs = |t: &str| {
        t.replace(
            "file = \"yolox_nano_dynbatch_uint8.onnx\"",
            &format!("file = {:?}", repo().join("models/yolox_nano_dynbatch_uint8.onnx").display().to_string()),
        )
    };
    let (code, stdout, stderr) = check(abs(&written));
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("inputs and outputs match the manifest"), "{stdout}");
    // Without input.dtype the manifest says float32, and the model's input is uint8.
    let (code, _, stderr) = check(abs(&written.replace("dtype = \"uint8\"\n", "")));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("models/x.toml: input.dtype is float32 but the ONNX input `images_uint8` is uint8; a uint8 model needs input.dtype = \"uint8\""),
        "{stderr}"
    );
    // A uint8 manifest over the f32 model.
    let over_f32 = written
        .replace(
            "file = \"yolox_nano_dynbatch_uint8.onnx\"",
            &format!("file = {:?}", dynbatch_model().display().to_string()),
        )
        .replace("images_uint8", "images");
    let sha = |p: PathBuf| {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(p).unwrap()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let over_f32 =
        over_f32
            .lines()
            .map(|l| {
                if l.starts_with("sha256 = ") {
                    format!("sha256 = \"{}\"", sha(dynbatch_model()))
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    let (code, _, stderr) = check(over_f32);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("input.dtype is uint8 but the ONNX input `images` is float32"), "{stderr}");
}

#[test]
fn bench_infer_measures_f32_uint8_and_io_binding_in_one_run() {
    let (f32_model, u8_model, lib) = (
        dynbatch_model().display().to_string(),
        uint8_manifest().display().to_string(),
        ort_library().display().to_string(),
    );
    let images: Vec<String> = IMAGES.iter().map(|f| media(f).display().to_string()).collect();
    let mut args = vec![
        "bench",
        "infer",
        "--model",
        &f32_model,
        "--model",
        &u8_model,
        "--io-binding",
        "both",
        "--ort-library",
        &lib,
        "--batch",
        "2",
        "--iterations",
        "2",
        "--json",
    ];
    args.extend(images.iter().map(|s| s.as_str()));
    let out = run_lookout(&args, &[], Duration::from_secs(240));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<(String, bool)> = rows
        .iter()
        .map(|r| (r["input_dtype"].as_str().unwrap().to_string(), r["io_binding"].as_bool().unwrap()))
        .collect();
    let want = [("float32", false), ("float32", true), ("uint8", false), ("uint8", true)];
    assert_eq!(kinds, want.map(|(d, b)| (d.to_string(), b)), "one row per model and input path, in order");
    assert_eq!(rows[0]["ratio_to_first"], 1.0);
    for r in &rows {
        assert_eq!(r["detections_match"], true, "{r}");
        assert!(
            r["images_per_second"].as_f64().unwrap() > 0.0 && r["bare_images_per_second"].as_f64().unwrap() > 0.0,
            "{r}"
        );
    }
    for r in &rows[1..] {
        let a = &r["agreement_with_first"];
        assert!(a["compared"].as_u64().unwrap() >= 4 && a["compared"] == a["matched"], "{r}");
        assert!(a["max_score_diff"].as_f64().unwrap() <= 1e-4, "{r}");
    }

    // Two workers at once (copy/compute overlap on a GPU): every batch counted.
    let out = run_lookout(
        &[
            "bench",
            "infer",
            "--model",
            &u8_model,
            "--ort-library",
            &lib,
            "--batch",
            "2",
            "--iterations",
            "3",
            "--workers",
            "2",
            "--reference",
            "none",
            "--json",
            &images[0],
        ],
        &[],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!((r["workers"].as_u64(), r["iterations"].as_u64()), (Some(2), Some(3)), "{r}");
}
