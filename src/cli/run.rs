//! `lookout run [--config-dir DIR]`: the daemon.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{self, Spec};
use crate::notify;
use crate::pipeline::{self, RunReport};
use crate::shutdown::Shutdown;
use crate::source::Outcome;
use crate::supervisor::{Health, Supervisor};

pub fn run(config_dir: Option<PathBuf>) -> ExitCode {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    // A bad camera file takes down that camera only (reported `failed`); a bad lookout.toml
    // stops the start.
    let spec = match config::load_tolerant(&dir) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!(
                "lookout: cannot start with the config in {}: {}Run `lookout check --config-dir {}` after fixing.",
                dir.display(),
                errors,
                dir.display()
            );
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    tracing::info!(config_dir = %dir.display(), gateway_id = %spec.gateway_id, cameras = spec.cameras.len(), "starting");
    for w in config::audit::audit(&spec) {
        tracing::warn!(file = %w.file, key = %w.key, "{}", w.message);
    }
    let shutdown = Shutdown::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, shutdown.flag()) {
            tracing::warn!(error = %e, "could not install a signal handler; stop with SIGKILL only");
        }
    }
    // SIGHUP (systemctl reload) re-reads the config; unhandled it would kill us.
    let hup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone()) {
        tracing::warn!(error = %e, "could not install a SIGHUP handler; do not send SIGHUP");
    }
    let (reload_tx, reload_rx) = crossbeam_channel::bounded::<Spec>(1);
    let reloader = {
        let (dir, shutdown) = (dir.clone(), shutdown.clone());
        std::thread::Builder::new().name("reload".into()).spawn(move || reload_loop(&dir, &hup, &shutdown, &reload_tx))
    };
    if let Err(e) = &reloader {
        tracing::warn!(error = %e, "could not start the reload thread; SIGHUP is ignored");
    }
    let health = Health::new();
    let supervisor = Supervisor::start(health.clone(), shutdown.clone())
        .map_err(|e| tracing::warn!(error = %e, "could not start the supervisor thread; no READY, STATUS or WATCHDOG for systemd"))
        .ok();
    let edges = pipeline::Edges {
        health: health.clone(),
        reloads: Some(&reload_rx),
        console: true,
        ..pipeline::Edges::new(&shutdown)
    };
    let result = pipeline::run(&spec, edges);
    // Sends STOPPING=1 if the signal has not already.
    if let Some(s) = supervisor {
        s.stop();
    }
    // The reload thread watches `shutdown`; a run that ended by itself (every file done)
    // triggers it so the thread exits.
    shutdown.trigger();
    drop(reload_rx);
    if let Ok(h) = reloader {
        let _ = h.join();
    }
    match result {
        Ok(report) => {
            print_summary(&report);
            // Cameras that never started: a reload that fixed a file started that camera, which
            // is then in the report.
            let unstarted: Vec<_> =
                spec.broken.iter().filter(|b| !report.cameras.iter().any(|c| c.name == b.name)).collect();
            for b in &unstarted {
                eprintln!("  camera {}: FAILED: not started: {}", b.name, b.reason());
            }
            if !unstarted.is_empty() || report.cameras.iter().any(|c| matches!(c.outcome, Outcome::Failed(_))) {
                ExitCode::from(super::EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("lookout: cannot run: {e}");
            ExitCode::from(super::EXIT_FAILURE)
        }
    }
}

/// The per-camera books, on stderr so stdout stays pure JSON lines.
pub fn print_summary(report: &RunReport) {
    // The frame rate is over the time the cameras ran; the wait for the broker at the end is
    // named apart, so that a slow broker does not read as a slow gateway.
    eprintln!(
        "lookout: finished in {:.1} s ({:.1} s of it waiting for the broker at the end); {:.1} frames/s inferred",
        report.elapsed.as_secs_f64(),
        report.flushing.as_secs_f64(),
        report.frames_per_second
    );
    for c in &report.cameras {
        let s = &c.summary;
        let outcome = match &c.outcome {
            Outcome::Ended => "ended".to_string(),
            Outcome::Truncated(r) => format!("ended early: {r}"),
            Outcome::Stopped => "stopped".to_string(),
            Outcome::Failed(r) => format!("FAILED: {r}"),
        };
        let reasons: Vec<String> = s.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let filtered: Vec<String> =
            s.filtered.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k} {v}")).collect();
        let filtered = if filtered.is_empty() { "none".to_string() } else { filtered.join(", ") };
        eprintln!(
            "  camera {}: {}; decoded {} = skipped_by_rate {} + skipped_by_motion {} + inferred {} + dropped {} ({}); {} detections, filtered out: {}; inference {:.1} ms mean",
            c.name,
            outcome,
            s.decoded,
            s.skipped_by_rate,
            s.skipped_by_motion,
            s.inferred,
            s.dropped_total(),
            reasons.join(", "),
            s.detections,
            filtered,
            s.inference_ms_mean
        );
    }
    let d = &report.delivery;
    // The books add up: what this run was given plus what an earlier run left equals what
    // became of it.
    if d.dropped_queue_full > 0 || d.unacknowledged > 0 || d.spooled > 0 || d.dropped_oldest > 0 {
        eprintln!(
            "  publish: {} from an earlier run's spool + {} this run = {} acknowledged + {} lost (no spool, or larger than the spool) + {} not acknowledged by the broker and lost + {} dropped oldest (spool full) + {} messages left in the spool for the next run ({} bytes); {} spooled during the run, {} replayed",
            d.from_earlier_run,
            d.published,
            d.delivered,
            d.dropped_queue_full,
            d.unacknowledged,
            d.dropped_oldest,
            d.spooled,
            d.spooled_bytes,
            d.spooled_in_run,
            d.replayed
        );
    } else if d.spooled_in_run > 0 || d.replayed > 0 || d.delivered > 0 || d.from_earlier_run > 0 {
        eprintln!(
            "  publish: {} messages delivered = {} this run + {} from an earlier run's spool; {} spooled during the run, {} replayed",
            d.delivered, d.published, d.from_earlier_run, d.spooled_in_run, d.replayed
        );
    } else {
        // Stdout and discard sinks never spool: their line stays short.
        eprintln!("  publish: {} messages delivered", d.published);
    }
}

/// Wait for SIGHUP; on each, re-read and validate the whole config directory. A valid config
/// goes to the pipeline, which applies it and sends READY=1; an invalid one is refused with
/// every error logged, and the running config stays.
fn reload_loop(dir: &Path, hup: &AtomicBool, shutdown: &Shutdown, to_pipeline: &crossbeam_channel::Sender<Spec>) {
    while !shutdown.is_triggered() {
        std::thread::park_timeout(Duration::from_millis(200));
        if !hup.swap(false, Ordering::Relaxed) {
            continue;
        }
        notify::reloading();
        tracing::info!(config_dir = %dir.display(), "SIGHUP: reloading the config");
        match config::load(dir) {
            Ok(spec) => {
                if to_pipeline.send(spec).is_err() {
                    return;
                }
            }
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!(file = %e.file, key = %e.key, "reload: {e}");
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "reload refused: the new config has errors (each logged above); the running config stays. Fix them and check with `lookout check --config-dir {}`",
                    dir.display()
                );
                notify::ready();
            }
        }
    }
}
