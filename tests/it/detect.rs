//! `lookout detect` against the Python reference's golden detections, on the real model.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;

#[test]
fn detect_matches_the_python_reference_on_every_image() {
    let golden: Value = serde_json::from_str(include_str!("../fixtures/yolox_nano_detections.json")).unwrap();
    let images = golden["images"].as_object().unwrap();
    assert_eq!(images.len(), 4);
    let paths: Vec<String> = images.keys().map(|k| media(k).display().to_string()).collect();
    let mut args = vec!["detect", "--model"];
    let model = model().display().to_string();
    let lib = ort_library().display().to_string();
    args.push(&model);
    args.extend(["--ort-library", &lib]);
    args.extend(paths.iter().map(|s| s.as_str()));
    let out = run_lookout(&args, &[], Duration::from_secs(60));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4, "one JSON object per image");

    for (name, want) in images {
        let got = lines.iter().find(|l| l["image"].as_str().unwrap().ends_with(name.as_str())).unwrap();
        assert_eq!(got["width"], want["width"], "{name}");
        assert_eq!(got["height"], want["height"], "{name}");
        assert_eq!(got["provider"], "cpu");
        // Every golden detection found at IoU >= 0.99 with its score within 0.002, and none extra:
        // the resize is cv2's to the byte (`resize`), so only float rounding is left.
        assert_detections_match(name, &detections(want), &detections(got), 0.99, 0.002);
    }
}

#[test]
fn annotate_writes_a_jpeg_with_boxes() {
    let out_path = std::env::temp_dir().join(format!("lookout-annotate-{}.jpg", std::process::id()));
    let img = media("person.jpg");
    let (model, lib) = (model().display().to_string(), ort_library().display().to_string());
    let out = run_lookout(
        &[
            "detect",
            "--model",
            &model,
            "--ort-library",
            &lib,
            "--annotate",
            out_path.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let bytes = std::fs::read(&out_path).unwrap();
    assert_eq!(&bytes[..2], &[0xFF, 0xD8], "a JPEG");
    let annotated = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let original = image::open(&img).unwrap().to_rgb8();
    assert_eq!(annotated.dimensions(), original.dimensions());
    // The person's box edge (x1 = 188) is drawn in the first palette colour, red-dominant.
    let p = annotated.get_pixel(189, 230);
    assert!(p[0] > 200 && p[1] < 120, "box edge pixel {p:?}");
    let _ = std::fs::remove_file(out_path);
}

#[test]
fn detect_reports_an_unreadable_image_and_goes_on() {
    let bogus = std::env::temp_dir().join(format!("lookout-bogus-{}.jpg", std::process::id()));
    std::fs::write(&bogus, b"not an image").unwrap();
    let dog = media("dog.jpg");
    let (model, lib) = (model().display().to_string(), ort_library().display().to_string());
    let out = run_lookout(
        &["detect", "--model", &model, "--ort-library", &lib, bogus.to_str().unwrap(), dog.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read image"), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1, "the good image is still reported");
    let _ = std::fs::remove_file(bogus);
}

/// The `run` path against the reference recipe on clip frames: `lookout run` detects every
/// frame of bikes.mp4 (GStreamer decodes, `videoscale` scales the YUV frame, `videoconvert`
/// makes RGB) and publishes each frame's raw detections; the golden file holds what
/// scripts/reference_detect.py finds on every 10th frame with OpenCV's decoder and resize
/// (`--video media/bikes.mp4 --every 10`). Unlike the still-image path the pixels are not the
/// same (scaling before colour conversion, GStreamer's bilinear against cv2's), so this holds
/// the agreement measured (62 of 64 reference detections found, mean |score difference|
/// 0.022, docs/performance.md "Preprocessing"), with a margin, not equality.
#[test]
fn the_run_path_agrees_with_the_reference_recipe_on_clip_frames() {
    let global = format!("gateway_id = \"ref\"\n{}[links.frames]\nwhen_full = \"block\"\n", inference_toml());
    let camera = format!(
        "uri = {:?}\nrealtime = false\n[detect]\nfps = 120\nmin_score = 0.3\n[events]\ndetections = true\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("run-reference", &global, &[("clip", &camera)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(120));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // frame_seq: the frame's index in the clip, from 0 (every frame is inferred here).
    let mut run: std::collections::BTreeMap<u64, Value> = Default::default();
    for line in text(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "detection" {
            run.insert(v["frame_seq"].as_u64().unwrap(), v);
        }
    }
    let (mut wanted, mut found, mut extra, mut drift) = (0usize, 0usize, 0usize, 0.0f64);
    let golden = include_str!("../fixtures/yolox_nano_bikes_every10_reference.jsonl");
    for line in golden.lines() {
        let want: Value = serde_json::from_str(line).unwrap();
        let frame = want["frame"].as_u64().unwrap();
        let got = run.get(&frame).map(detections).unwrap_or_default();
        let c = lookout::detect::compare::compare(&detections(&want), &got, 0.5);
        wanted += c.pairs.len() + c.missed.len();
        found += c.matched();
        extra += c.extra.len();
        drift += c.score_diff_sum();
    }
    assert_eq!(golden.lines().count(), 25);
    assert!(wanted >= 60, "{wanted} reference detections: the golden file is not the one described");
    let recall = found as f64 / wanted as f64;
    let mean_drift = drift / found.max(1) as f64;
    eprintln!(
        "run path against the reference: found {found} of {wanted}, {extra} extra, mean |score difference| {mean_drift:.4}"
    );
    // The camera path converts and resizes as OpenCV does, byte for byte (`resize`): what is
    // left is ONNX Runtime's float rounding.
    assert_eq!(found, wanted, "run path found {found} of {wanted} reference detections ({recall:.3})");
    assert!(mean_drift <= 0.002, "mean |score difference| {mean_drift:.4} over {found} pairs");
    assert_eq!(extra, 0, "detections the reference does not have");
}
