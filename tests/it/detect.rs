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
        // the resize is cv2's to the byte (`detect::resize`), so only float rounding is left.
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
