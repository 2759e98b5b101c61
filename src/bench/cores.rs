//! `lookout bench cores`: one busy camera on every core. One camera (the sample clip, looped,
//! unpaced, every frame detected, its frames link blocking so nothing is dropped) three ways in
//! one run: two workers of one thread taking its frames in turn (`detect.workers = 2`), one
//! worker of two threads, and, as the baseline, two bare single-thread `session.run` loops,
//! timed half before and half after the pipelines.

use std::path::PathBuf;
use std::time::Duration;

use super::BenchError;
use super::daemon::{bare_rate, base_spec, bikes, camera, run_streams};
use super::proc::loadavg;
use crate::config;
use crate::link::{LinkSpec, WhenFull};

pub fn cores(config_dir: Option<PathBuf>, seconds: f64) -> Result<(), BenchError> {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    println!(
        "lookout bench cores: 1 camera (bikes.mp4 looped, unpaced, every frame detected, frames link block), {seconds:.0} s each; load {}",
        loadavg()
    );
    let block = LinkSpec { capacity: 2, when_full: WhenFull::Block };
    let half = Duration::from_secs_f64(seconds / 2.0);
    let bare_spec = base_spec(&dir, 2)?;
    let before = bare_rate(&bare_spec, 2, half)?;
    let mut rates = Vec::new();
    for (workers, threads, label) in [(2, 1, "2 workers x 1 thread"), (1, 2, "1 worker x 2 threads")] {
        let mut spec = base_spec(&dir, workers)?;
        spec.inference.intra_threads = threads;
        let mut cam = camera(&spec.inference, "street", &bikes(&dir), 1000.0, false, true, block)?;
        cam.detect.workers = workers;
        spec.cameras = vec![cam];
        let (d, secs, shares, _) = run_streams(&spec, seconds, label)?;
        let fps = d.inferred as f64 / secs;
        println!("  {label}: {fps:.1} frames/s detected, {} dropped; load {}", d.link_full, loadavg());
        shares.print(secs);
        rates.push((label, fps));
    }
    let after = bare_rate(&bare_spec, 2, half)?;
    let bare = (before + after) / 2.0;
    println!(
        "  baseline: 2 bare single-thread session.run loops: {bare:.1} runs/s (before {before:.1}, after {after:.1})"
    );
    for (label, fps) in rates {
        println!("  {label} / bare: {:.2}x", fps / bare);
    }
    println!("  target: 2 workers x 1 thread >= 0.90x of the bare loops");
    Ok(())
}
