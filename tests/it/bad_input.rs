//! Bad input gets a clear error that names the thing and the fix, and never a panic.

use std::time::Duration;

use crate::common::*;
use crate::onnx::identity_model;

fn detect_with(model: &str, lib: &str) -> (Option<i32>, String) {
    let dog = media("dog.jpg");
    let out = run_lookout(
        &["detect", "--model", model, "--ort-library", lib, dog.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stderr)
}

#[test]
fn a_missing_ort_library_is_named_with_the_fix() {
    let (code, stderr) = detect_with(model().to_str().unwrap(), "/nonexistent/libonnxruntime.so.1.31.1");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("ONNX Runtime library not found at /nonexistent/libonnxruntime.so.1.31.1"), "{stderr}");
    assert!(stderr.contains("scripts/setup"), "{stderr}");
}

#[test]
fn a_file_that_is_not_the_ort_library_is_named_with_the_fix() {
    let (code, stderr) = detect_with(model().to_str().unwrap(), model().to_str().unwrap());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("could not load the ONNX Runtime library"), "{stderr}");
    assert!(stderr.contains("ort_library"), "{stderr}");
}

#[test]
fn a_missing_model_is_named_with_the_fix() {
    let (code, stderr) = detect_with("/nonexistent/model.onnx", ort_library().to_str().unwrap());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("model not found at /nonexistent/model.onnx"), "{stderr}");
}

#[test]
fn a_model_with_the_wrong_input_shape_is_refused_clearly() {
    let path = std::env::temp_dir().join(format!("lookout-tiny-{}.onnx", std::process::id()));
    std::fs::write(&path, identity_model(&[1, 3, 100, 100])).unwrap();
    let (code, stderr) = detect_with(path.to_str().unwrap(), ort_library().to_str().unwrap());
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not look like a YOLOX detector"), "{stderr}");
    assert!(stderr.contains("[1, 3, 100, 100]"), "names the shape it found: {stderr}");
}

#[test]
fn a_right_input_with_a_wrong_output_is_refused_clearly() {
    let path = std::env::temp_dir().join(format!("lookout-tiny2-{}.onnx", std::process::id()));
    std::fs::write(&path, identity_model(&[1, 3, 64, 64])).unwrap();
    let (code, stderr) = detect_with(path.to_str().unwrap(), ort_library().to_str().unwrap());
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("expected [1, 84, 5 + classes]"), "{stderr}");
}

#[test]
fn a_corrupt_clip_fails_its_camera_only() {
    let corrupt = std::env::temp_dir().join(format!("lookout-corrupt-{}.mp4", std::process::id()));
    // A real clip's header with its middle destroyed: a file that exists but can't be decoded.
    let mut bytes = std::fs::read(media("bikes.mp4")).unwrap();
    bytes.truncate(4096);
    bytes.iter_mut().skip(16).for_each(|b| *b = 0x5a);
    std::fs::write(&corrupt, &bytes).unwrap();
    let global = format!("gateway_id = \"bad\"\n{}", inference_toml());
    let bad = format!("uri = {:?}\n", corrupt.display().to_string());
    let good = format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 2\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("corrupt", &global, &[("broken", &bad), ("street", &good)]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    let _ = std::fs::remove_file(&corrupt);
    crate::schema::assert_valid_lines(text(&out.stdout).lines());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a failed camera makes a non-zero exit: {stderr}");
    assert!(stderr.contains("camera broken: FAILED"), "{stderr}");
    assert!(stderr.contains("camera street: ended; decoded 250"), "the good camera ran to its end: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_v4l2_device_is_named_and_retried() {
    // No /dev/video* exists on CI machines: the camera says which device and what to check,
    // and keeps retrying (a USB camera may be plugged in later).
    let global = format!("gateway_id = \"t\"\n{}", inference_toml());
    let dir = ConfigDir::new("v4l2", &global, &[("usb", "uri = \"v4l2:///dev/video97\"\nreconnect_max_seconds = 1\n")]);
    let mut d = Daemon::start(&dir.path);
    let first = d.wait_for(0, Duration::from_secs(30), |v| is_status(v, "usb", "reconnecting"));
    let again = first
        .as_ref()
        .and_then(|(i, _)| d.wait_for(i + 1, Duration::from_secs(30), |v| is_status(v, "usb", "reconnecting")));
    let out = d.terminate();
    let stderr = text(&out.stderr);
    let (_, status) = first.unwrap_or_else(|| panic!("no reconnecting status:\n{stderr}"));
    let reason = status["reason"].as_str().unwrap_or("");
    assert!(reason.contains("/dev/video97") && reason.contains("video` group"), "{status}");
    assert!(again.is_some(), "it retries:\n{stderr}");
    assert!(out.status.success() && !stderr.contains("panicked"), "{stderr}");
}

/// A clip with its index first (as cameras and recorders write them), cut at 30 %: it decodes
/// cleanly up to the cut and then ends as a whole file does. Only its declared length tells.
#[test]
fn a_file_cut_short_ends_with_its_reason_in_the_status_and_the_log() {
    let tmp = std::env::temp_dir().join(format!("lookout-cut-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let (whole, cut) = (tmp.join("whole.mp4"), tmp.join("cut.mp4"));
    let remux = std::process::Command::new("gst-launch-1.0")
        .args([
            "-q",
            "filesrc",
            &format!("location={}", media("bikes.mp4").display()),
            "!",
            "qtdemux",
            "!",
            "h264parse",
            "!",
            "mp4mux",
            "faststart=true",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", whole.display()))
        .status()
        .expect("gst-launch-1.0 (gstreamer1.0-tools): run scripts/setup");
    assert!(remux.success());
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 3 / 10]).unwrap();
    let global = format!("gateway_id = \"cut\"\n{}", inference_toml());
    let cam =
        |p: &std::path::Path| format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 2\n", p.display().to_string());
    let dir = ConfigDir::new("cut", &global, &[("cut", &cam(&cut)), ("whole", &cam(&whole))]);
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&tmp);
    let stdout = text(&out.stdout);
    crate::schema::assert_valid_lines(stdout.lines());
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "an early end is not a failure: {stderr}");
    let ended: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "camera_status" && v["state"] == "ended")
        .collect();
    let reason = |cam: &str| {
        ended
            .iter()
            .find(|v| v["camera"] == cam)
            .map(|v| v["reason"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(reason("cut").contains("the file ended at 3.0 s of the 10.0 s its header declares"), "{stdout}");
    assert_eq!(reason("whole"), "end of stream", "a whole file ends plainly");
    assert!(stderr.contains("WARN") && stderr.contains("file ended early camera=cut"), "{stderr}");
    assert!(stderr.contains("camera cut: ended early") && stderr.contains("decoded 76 "), "{stderr}");
    assert!(stderr.contains("camera whole: ended; decoded 250 "), "{stderr}");
}

/// A looping file is one stream: `streaming` (retained on MQTT) is announced once, not at every
/// loop.
#[test]
fn a_looping_file_announces_streaming_once() {
    let global = format!("gateway_id = \"loop\"\n[stats]\ninterval_seconds = 1\n{}", inference_toml());
    let cam = format!(
        "uri = {:?}\nrealtime = false\nloop = true\n[detect]\nfps = 1\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("loop", &global, &[("again", &cam)]);
    let mut d = Daemon::start(&dir.path);
    // Three loops: the decoded count passes three times the clip's 250 frames.
    let looped = d.wait_for(0, Duration::from_secs(60), |v| {
        v["type"] == "stats" && v["cameras"]["again"]["decoded"].as_u64().unwrap_or(0) > 750
    });
    let out = d.terminate();
    assert!(looped.is_some(), "three loops within 60 s: {}", text(&out.stderr));
    let streaming = d.lines.iter().filter(|v| is_status(v, "again", "streaming")).count();
    assert_eq!(streaming, 1, "one `streaming` for the whole run");
    assert!(text(&out.stderr).matches("end of file; looping").count() >= 3);
}
