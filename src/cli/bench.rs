//! `lookout bench`: performance measured, never asserted. Every figure is printed next to a
//! baseline measured in the same run, as a ratio, because these machines are shared and noisy.
//!
//! - `lookout bench detect [IMAGE...]`: per image, `lookout detect`'s pre-processing, inference
//!   and post-processing, against a bare `session.run` loop on the same input.
//! - `lookout bench pipeline [--clip FILE]`: `lookout run` on a clip as fast as it decodes,
//!   every frame offered to detection, against the bare inference rate.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::{self, CameraSpec, DetectSpec, OnError, RtspTransport, Spec, spec};
use crate::detect::Detector;
use crate::pipeline;
use crate::publish::Sink;
use crate::shutdown::Shutdown;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Time `iterations` bare session runs: the baseline both benchmarks divide by.
fn bare_median(det: &mut Detector, iterations: usize) -> Result<Duration, String> {
    let mut t = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let s = Instant::now();
        det.run_bare().map_err(|e| e.to_string())?;
        t.push(s.elapsed());
    }
    Ok(median(t))
}

pub fn bench_detect(model: Option<PathBuf>, ort_library: Option<PathBuf>, iterations: usize, images: Vec<PathBuf>) -> ExitCode {
    let opts = super::detect::detector_options(model, ort_library);
    let mut det = match Detector::load(&opts) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("lookout bench: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    let images = if images.is_empty() { default_images() } else { images };
    if images.is_empty() {
        eprintln!("lookout bench: no images given and none found in media/; run scripts/setup or pass paths");
        return ExitCode::from(super::EXIT_FAILURE);
    }
    println!("lookout bench detect: {} iterations per image, provider {}, model {}", iterations, det.provider(), opts.model.display());
    println!("{:<20} {:>8} {:>8} {:>8} {:>8} {:>10} {:>7}", "image", "pre ms", "infer ms", "post ms", "total ms", "bare ms", "ratio");
    for path in &images {
        let img = match image::open(path) {
            Ok(i) => i.to_rgb8(),
            Err(e) => {
                eprintln!("lookout bench: cannot read {}: {e}", path.display());
                return ExitCode::from(super::EXIT_FAILURE);
            }
        };
        // Warm up, then interleave the two loops so both see the same machine load.
        for _ in 0..3 {
            let _ = det.detect_image(&img);
        }
        let (mut pre, mut inf, mut post, mut total, mut bare) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..iterations {
            let s = Instant::now();
            let Ok((_, t)) = det.detect_image(&img) else {
                eprintln!("lookout bench: inference failed on {}", path.display());
                return ExitCode::from(super::EXIT_FAILURE);
            };
            total.push(s.elapsed());
            pre.push(t.pre);
            inf.push(t.infer);
            post.push(t.post);
            match bare_median(&mut det, 1) {
                Ok(b) => bare.push(b),
                Err(e) => {
                    eprintln!("lookout bench: {e}");
                    return ExitCode::from(super::EXIT_FAILURE);
                }
            }
        }
        let (total, bare) = (median(total), median(bare));
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        println!(
            "{:<20} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>6.2}x",
            name,
            ms(median(pre)),
            ms(median(inf)),
            ms(median(post)),
            ms(total),
            ms(bare),
            total.as_secs_f64() / bare.as_secs_f64().max(1e-9)
        );
    }
    println!("ratio = lookout detect total / bare session.run on the same input (1.00x = no overhead)");
    ExitCode::SUCCESS
}

fn default_images() -> Vec<PathBuf> {
    let dir = config::default_dir().join("media");
    ["dog.jpg", "person.jpg", "astronaut.png", "grace_hopper.jpg"].iter().map(|f| dir.join(f)).filter(|p| p.exists()).collect()
}

pub fn bench_pipeline(config_dir: Option<PathBuf>, clip: Option<PathBuf>, fps: f64, rounds: usize) -> ExitCode {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    let clip = clip.unwrap_or_else(|| dir.join("media/bikes.mp4"));
    let spec = match bench_spec(&dir, &clip, fps) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lookout bench: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    let opts = super::detect::detector_options(Some(spec.inference.model.clone()), Some(spec.inference.ort_library.clone()));
    let bare = match Detector::load(&opts).map_err(|e| e.to_string()).and_then(|mut d| {
        bare_median(&mut d, 5)?;
        bare_median(&mut d, 30)
    }) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("lookout bench: {e}");
            return ExitCode::from(super::EXIT_FAILURE);
        }
    };
    // Several rounds, median reported: one 10 s clip unpaced is over in well under a second.
    let mut reports = Vec::new();
    for _ in 0..rounds.max(1) {
        match pipeline::run_with_sink(&spec, &Shutdown::new(), Some(Sink::Discard(0))) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("lookout bench: {e}");
                return ExitCode::from(super::EXIT_FAILURE);
            }
        }
    }
    reports.sort_by(|a, b| a.frames_per_second.total_cmp(&b.frames_per_second));
    let report = &reports[reports.len() / 2];
    let bare_fps = 1.0 / bare.as_secs_f64().max(1e-9);
    println!(
        "lookout bench pipeline: {} unpaced, detect.fps {fps}, {} worker(s), median of {} rounds",
        clip.display(),
        spec.inference.workers,
        reports.len()
    );
    for c in &report.cameras {
        let s = &c.summary;
        println!(
            "  decoded {} frames: skipped_by_rate {}, inferred {}, dropped {} (link_full: newer frames replaced them)",
            s.decoded, s.skipped_by_rate, s.inferred, s.dropped_total()
        );
    }
    println!(
        "  pipeline: {:.1} frames/s inferred (rounds: {})",
        report.frames_per_second,
        reports.iter().map(|r| format!("{:.1}", r.frames_per_second)).collect::<Vec<_>>().join(", ")
    );
    println!("  baseline: bare session.run {:.2} ms = {:.1} frames/s", ms(bare), bare_fps);
    println!("  ratio pipeline / bare inference rate: {:.2}x", report.frames_per_second / bare_fps);
    ExitCode::SUCCESS
}

/// The config dir's inference settings, with one camera: the clip, unpaced.
fn bench_spec(dir: &std::path::Path, clip: &std::path::Path, fps: f64) -> Result<Spec, String> {
    let mut spec = config::load(dir).map_err(|e| e.to_string())?;
    let clip = clip.canonicalize().map_err(|e| format!("clip {}: {e}", clip.display()))?;
    let uri = gstreamer::glib::filename_to_uri(&clip, None).map_err(|e| e.to_string())?.to_string();
    spec.cameras = vec![CameraSpec {
        name: "bench".into(),
        file: clip.clone(),
        uri_redacted: uri.clone(),
        uri,
        realtime: false,
        live: false,
        loop_file: false,
        stall_timeout: Duration::from_secs_f64(spec::DEFAULT_STALL_TIMEOUT_SECONDS),
        reconnect_max: Duration::from_secs_f64(spec::DEFAULT_RECONNECT_MAX_SECONDS),
        on_error: OnError::Fail,
        decoder: Vec::new(),
        decoder_threads: spec::DEFAULT_DECODER_THREADS,
        rtsp_transport: RtspTransport::Auto,
        credentials: None,
        objects: spec::ObjectsSpec::default(),
        max_clock_skew: Duration::from_secs_f64(spec::DEFAULT_MAX_CLOCK_SKEW_SECONDS),
        detect: DetectSpec { fps, labels: None, min_score: 0.3 },
        links: Default::default(),
        motion: Default::default(),
    }];
    spec.mqtt = None;
    Ok(spec)
}
