//! `lookout bench pipeline [--clip FILE]`: `lookout run` on a clip as fast as it decodes, every
//! frame offered to detection, against the bare inference rate.

use std::path::{Path, PathBuf};

use super::{BenchError, bare_median, ms};
use crate::config::{self, Spec};
use crate::detect::Detector;
use crate::link::LinkKind;
use crate::pipeline;
use crate::publish::Sink;
use crate::shutdown::Shutdown;

pub fn pipeline(config_dir: Option<PathBuf>, clip: Option<PathBuf>, fps: f64, rounds: usize) -> Result<(), BenchError> {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    let clip = clip.unwrap_or_else(|| dir.join("media/bikes.mp4"));
    let spec = bench_spec(&dir, &clip, fps)?;
    let mut det = Detector::load(&spec.inference.detector_options())?;
    bare_median(&mut det, 5)?;
    let bare = bare_median(&mut det, 30)?;
    drop(det);
    // Several rounds, median reported: one 10 s clip unpaced is over in well under a second.
    let mut reports = Vec::new();
    for _ in 0..rounds.max(1) {
        let shutdown = Shutdown::new();
        let edges = pipeline::Edges { sink: Some(Sink::Discard(0)), ..pipeline::Edges::new(&shutdown) };
        reports.push(pipeline::run(&spec, edges)?);
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
            s.decoded,
            s.skipped_by_rate,
            s.inferred,
            s.dropped_total()
        );
    }
    println!(
        "  pipeline: {:.1} frames/s inferred (rounds: {})",
        report.frames_per_second,
        reports.iter().map(|r| format!("{:.1}", r.frames_per_second)).collect::<Vec<_>>().join(", ")
    );
    println!("  baseline: bare session.run {:.2} ms = {:.1} frames/s", ms(bare), bare_fps);
    println!("  ratio pipeline / bare inference rate: {:.2}x", report.frames_per_second / bare_fps);
    Ok(())
}

/// The config dir's inference settings, with one camera: the clip, unpaced.
fn bench_spec(dir: &Path, clip: &Path, fps: f64) -> Result<Spec, BenchError> {
    let mut spec = config::load(dir)?;
    let mut cam =
        super::daemon::camera(&spec.inference, "bench", clip, fps, false, false, LinkKind::Frames.default_spec())?;
    cam.detect.min_score = 0.3;
    spec.cameras = vec![cam];
    spec.mqtt = None;
    Ok(spec)
}
