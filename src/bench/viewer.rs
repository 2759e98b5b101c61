//! `lookout bench viewer`: what one console viewer costs. One camera (the sample clip, looped and
//! paced, detecting at 5 fps) runs with the console on. The process's CPU is measured in
//! alternating windows: nobody watching, then one viewer fetching the annotated frame twice a
//! second as the camera page does, and so on. The viewer's own thread is left out of the
//! figure, so what remains is the daemon's cost: converting frames for viewers, and encoding
//! and annotating the JPEGs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::BenchError;
use super::daemon::{Running, base_spec, bikes, camera};
use super::proc::{loadavg, proc_self, thread_ticks};
use crate::config;
use crate::link::LinkKind;
use crate::pipeline::TestHooks;
use crate::publish::Sink;
use crate::view::VIEW_LEASE;

/// The viewer's thread, by name, so that its CPU can be left out.
const VIEWER_THREAD: &str = "bench-viewer";
/// The camera page's refresh: one frame every 500 ms.
const VIEWER_PERIOD: Duration = Duration::from_millis(500);

/// One GET of `path`; the body if the answer is 200.
fn fetch(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    raw.starts_with(b"HTTP/1.1 200").then(|| raw[split + 4..].to_vec())
}

/// CPU ticks of the process, less the viewer's thread.
fn daemon_ticks() -> u64 {
    let viewer: u64 = thread_ticks().values().filter(|(name, _)| name == VIEWER_THREAD).map(|(_, t)| t).sum();
    proc_self().0.saturating_sub(viewer)
}

pub fn viewer(config_dir: Option<PathBuf>, seconds: f64) -> Result<(), BenchError> {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    let mut spec = base_spec(&dir, 1)?;
    // A free loopback port for the console.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|source| BenchError::Io { what: "no free loopback port".into(), source })?;
    spec.web.enabled = true;
    spec.web.listen = addr;
    spec.cameras =
        vec![camera(&spec.inference, "street", &bikes(&dir), 5.0, true, true, LinkKind::Frames.default_spec())?];
    println!(
        "lookout bench viewer: bikes.mp4 looped, paced, detect 5 fps, console on {addr}; {seconds:.0} s windows, \
         nobody watching and one viewer (annotated frame every {} ms) in turn; load {}",
        VIEWER_PERIOD.as_millis(),
        loadavg()
    );
    let run = Running::start(spec, Sink::Discard(0), TestHooks::default())?;
    std::thread::park_timeout(Duration::from_secs(3));
    let watching = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let viewer = {
        let (watching, done, served) = (watching.clone(), done.clone(), served.clone());
        std::thread::Builder::new()
            .name(VIEWER_THREAD.into())
            .spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if watching.load(Ordering::Relaxed)
                        && fetch(addr, "/api/cameras/street/frame.jpg?annotate=1")
                            .is_some_and(|jpeg| jpeg.starts_with(&[0xFF, 0xD8]))
                    {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::park_timeout(VIEWER_PERIOD);
                }
            })
            .map_err(|source| BenchError::Io { what: format!("could not start thread {VIEWER_THREAD}"), source })?
    };
    let mut cpu = [Vec::new(), Vec::new()];
    for watch in [false, true, false, true] {
        watching.store(watch, Ordering::Relaxed);
        // Let the lease lapse after a viewer leaves, or the first frames flow after one comes.
        std::thread::park_timeout(if watch { Duration::from_secs(1) } else { VIEW_LEASE + Duration::from_secs(1) });
        let (t0, c0, s0, i0) = (run.totals(), daemon_ticks(), served.load(Ordering::Relaxed), Instant::now());
        std::thread::park_timeout(Duration::from_secs_f64(seconds));
        let (t1, c1, s1, secs) = (run.totals(), daemon_ticks(), served.load(Ordering::Relaxed), i0.elapsed());
        let secs = secs.as_secs_f64();
        let share = (c1 - c0) as f64 / 100.0 / secs;
        println!(
            "  {:<13} CPU {:5.1} % of a core, inferred {:.2}/s, frames served {:.2}/s; load {}",
            if watch { "one viewer:" } else { "nobody:" },
            100.0 * share,
            (t1.inferred - t0.inferred) as f64 / secs,
            (s1 - s0) as f64 / secs,
            loadavg()
        );
        cpu[usize::from(watch)].push(share);
    }
    done.store(true, Ordering::Relaxed);
    let _ = viewer.join();
    run.stop()?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (none, one) = (mean(&cpu[0]), mean(&cpu[1]));
    println!(
        "  CPU with one viewer / nobody: {:.2}x ({:+.1} % of a core for the viewer)",
        one / none.max(f64::EPSILON),
        100.0 * (one - none)
    );
    Ok(())
}
