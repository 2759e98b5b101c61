//! `lookout bench efficiency | overload | density | motion`: the whole daemon, run in-process on
//! real clips and sampled from /proc ([`super::proc`]) while it runs. Each prints its figure
//! next to a baseline measured in the same run, as a ratio, with the load average (the machine
//! is shared).
//!
//! - `efficiency`: several file streams at full speed (every frame detected, the frames link
//!   set to `block` so nothing is dropped) against bare `session.run` loops on as many threads.
//! - `overload`: one camera offering `--factor` (3) times what inference takes, for
//!   `--seconds` (300): p99 frame age at publish against 2 x inference latency + one frame
//!   interval, RSS growth, and the books at EOS.
//! - `density`: how many 1080p25 H.264 streams, detecting at 5 fps, run in real time with no
//!   drop at the inference link; CPU shares of decode, pre-processing, inference and the rest.
//! - `motion`: CPU of a still 1080p25 scene with motion gating on, against off.
//!
//! Clips are made once with gst-launch-1.0 (x264enc from gst-plugins-ugly) under the temp dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::proc::{Shares, ThreadBook, loadavg, proc_self, thread_ticks};
use super::{BenchError, bare_options, percentile};
use crate::config::{self, CameraSpec, DetectSpec, InferenceSpec, OnError, RtspTransport, Spec, spec};
use crate::detect::Detector;
use crate::link::{LinkKind, LinkSpec, WhenFull};
use crate::pipeline::{self, PipelineError, RunReport, TestHooks};
use crate::publish::Sink;
use crate::shutdown::Shutdown;
use crate::source::motion::MotionConfig;
use crate::stats::CameraCounters;
use crate::supervisor::Health;

/// Sums over cameras of the counters a benchmark watches.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    pub(super) decoded: u64,
    pub(super) inferred: u64,
    pub(super) link_full: u64,
    pub(super) skipped_by_motion: u64,
    pub(super) detections: u64,
    pub(super) infer_us: u64,
    pub(super) pre_us: u64,
}

fn totals(counters: &[Arc<CameraCounters>]) -> Totals {
    let mut t = Totals::default();
    for c in counters {
        t.decoded += c.decoded.load(Ordering::Relaxed);
        t.inferred += c.inferred.load(Ordering::Relaxed);
        t.link_full += c.dropped_link_full.load(Ordering::Relaxed);
        t.skipped_by_motion += c.skipped_by_motion.load(Ordering::Relaxed);
        t.detections += c.detections.load(Ordering::Relaxed);
        t.infer_us += c.infer_micros_total.load(Ordering::Relaxed);
        t.pre_us += c.pre_micros_total.load(Ordering::Relaxed);
    }
    t
}

/// A daemon running in a thread of this process.
pub(super) struct Running {
    shutdown: Shutdown,
    health: Health,
    handle: std::thread::JoinHandle<Result<RunReport, PipelineError>>,
}

impl Running {
    pub(super) fn start(spec: Spec, sink: Sink, hooks: TestHooks) -> Result<Running, BenchError> {
        let (shutdown, health) = (Shutdown::new(), Health::new());
        let (sd, hl) = (shutdown.clone(), health.clone());
        let handle = std::thread::Builder::new()
            .name("bench-run".into())
            .spawn(move || {
                pipeline::run(
                    &spec,
                    pipeline::Edges {
                        sink: Some(sink),
                        health: hl,
                        hooks,
                        // As `[web] enabled` says: off but in `bench viewer`.
                        console: true,
                        ..pipeline::Edges::new(&sd)
                    },
                )
            })
            .map_err(|source| BenchError::Io { what: "could not start thread bench-run".into(), source })?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !health.is_started() {
            if handle.is_finished() || Instant::now() > deadline {
                return Err(BenchError::Thread("the pipeline did not start"));
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        Ok(Running { shutdown, health, handle })
    }

    pub(super) fn totals(&self) -> Totals {
        totals(&self.health.counters())
    }

    /// Stop (unless already finished) and collect the report.
    pub(super) fn stop(self) -> Result<RunReport, BenchError> {
        self.shutdown.trigger();
        Ok(self.handle.join().map_err(|_| BenchError::Thread("the pipeline panicked"))??)
    }

    fn finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Make a clip with gst-launch-1.0 unless it exists; `pipeline` ends before the filesink.
fn make_clip(name: &str, pipeline: &str) -> Result<PathBuf, BenchError> {
    let path = std::env::temp_dir().join(name);
    if path.exists() {
        return Ok(path);
    }
    let tmp = path.with_extension("part.mp4");
    println!("  making {} (once) ...", path.display());
    let full = format!("{pipeline} ! h264parse ! mp4mux ! filesink location={}", tmp.display());
    let status = std::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(full.split_whitespace())
        .status()
        .map_err(BenchError::GstLaunch)?;
    if !status.success() {
        return Err(BenchError::MakeClip { path, pipeline: full });
    }
    std::fs::rename(&tmp, &path).map_err(|source| BenchError::Io {
        what: format!("could not rename {} to {}", tmp.display(), path.display()),
        source,
    })?;
    Ok(path)
}

/// A camera on `clip` for benchmarks (here and in `bench pipeline`): the config dir's model, the
/// given detect rate, pacing, looping and links; no broker.
pub(super) fn camera(
    inference: &InferenceSpec,
    name: &str,
    clip: &Path,
    fps: f64,
    realtime: bool,
    loop_file: bool,
    frames: LinkSpec,
) -> Result<CameraSpec, BenchError> {
    let clip =
        clip.canonicalize().map_err(|source| BenchError::Io { what: format!("clip {}", clip.display()), source })?;
    let uri = gstreamer::glib::filename_to_uri(&clip, None)
        .map_err(|e| BenchError::Clip { path: clip.clone(), reason: e.to_string() })?
        .to_string();
    Ok(CameraSpec {
        name: name.into(),
        file: clip.clone(),
        source: spec::SourceSpec {
            uri_redacted: uri.clone(),
            uri,
            realtime,
            live: false,
            loop_file,
            stall_timeout: Duration::from_secs_f64(spec::DEFAULT_STALL_TIMEOUT_SECONDS),
            reconnect_max: Duration::from_secs_f64(spec::DEFAULT_RECONNECT_MAX_SECONDS),
            on_error: OnError::Fail,
            decoder: Vec::new(),
            decoder_threads: spec::DEFAULT_DECODER_THREADS,
            rtsp_transport: RtspTransport::Auto,
            credentials: None,
            max_clock_skew: Duration::from_secs_f64(spec::DEFAULT_MAX_CLOCK_SKEW_SECONDS),
            motion: MotionConfig::default(),
        },
        objects: spec::ObjectsSpec { labels: inference.labels.clone(), ..spec::ObjectsSpec::default() },
        detect: DetectSpec {
            model: inference.model.clone(),
            fps,
            labels: None,
            min_score: spec::DEFAULT_MIN_SCORE,
            workers: spec::DEFAULT_DETECT_WORKERS,
        },
        links: config::CameraLinks { frames, ..Default::default() },
    })
}

pub(super) fn base_spec(dir: &Path, workers: usize) -> Result<Spec, BenchError> {
    let mut spec = config::load(dir)?;
    spec.mqtt = None;
    spec.metrics_listen = None;
    spec.inference.workers = workers;
    spec.inference.intra_threads = 1;
    spec.stats_interval = Duration::from_secs(3600);
    // No console unless a benchmark measures it (`bench viewer`): the default listens on 8080.
    spec.web.enabled = false;
    Ok(spec)
}

/// `threads` bare session.run loops for `window`: runs per second, all threads together.
pub(super) fn bare_rate(spec: &Spec, threads: usize, window: Duration) -> Result<f64, BenchError> {
    let opts = bare_options(spec);
    let mut dets: Vec<Detector> = (0..threads).map(|_| Detector::load(&opts)).collect::<Result<_, _>>()?;
    for d in &mut dets {
        for _ in 0..3 {
            d.run_bare(1)?;
        }
    }
    let started = Instant::now();
    let handles: Vec<_> = dets
        .into_iter()
        .map(|mut d| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < window {
                    if d.run_bare(1).is_err() {
                        break;
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let runs: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    Ok(runs as f64 / started.elapsed().as_secs_f64())
}

/// Median bare session.run latency on one thread.
fn bare_latency(spec: &Spec) -> Result<Duration, BenchError> {
    let mut d = Detector::load(&bare_options(spec))?;
    let mut t = Vec::new();
    for i in 0..40 {
        let s = Instant::now();
        d.run_bare(1)?;
        if i >= 5 {
            t.push(s.elapsed());
        }
    }
    t.sort();
    Ok(t[t.len() / 2])
}

pub(super) fn bikes(dir: &Path) -> PathBuf {
    dir.join("media/bikes.mp4")
}

type Mark = (Totals, u64, Instant);

/// Watch a running daemon for `seconds` (or until it ends), printing progress every `every`;
/// returns the totals and process CPU ticks at the start and end of the window, and the RSS
/// (kB) last seen while it still ran.
fn watch(run: &Running, seconds: f64, every: Duration, label: &str) -> (Mark, Mark, u64) {
    let start = (run.totals(), proc_self().0, Instant::now());
    let mut next = Instant::now() + every;
    let mut rss_running = proc_self().1;
    while start.2.elapsed().as_secs_f64() < seconds && !run.finished() {
        std::thread::park_timeout(Duration::from_millis(200));
        if !run.finished() {
            rss_running = proc_self().1;
        }
        if Instant::now() >= next {
            next += every;
            let t = run.totals();
            let (_, rss) = proc_self();
            println!(
                "    [{label}] {:>5.0} s: decoded {}, inferred {}, link_full {}, skipped_by_motion {}, RSS {:.1} MB, load {}",
                start.2.elapsed().as_secs_f64(),
                t.decoded,
                t.inferred,
                t.link_full,
                t.skipped_by_motion,
                rss as f64 / 1024.0,
                loadavg()
            );
        }
    }
    (start, (run.totals(), proc_self().0, Instant::now()), rss_running)
}

pub fn efficiency(config_dir: Option<PathBuf>, streams: usize, workers: usize, seconds: f64) -> Result<(), BenchError> {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    let streams = streams.max(1);
    let workers = workers.clamp(1, streams);
    let mut spec = base_spec(&dir, workers)?;
    println!(
        "lookout bench efficiency: {streams} file streams (bikes.mp4 looped, unpaced, every frame detected, frames link block), {workers} worker(s) x 1 thread, {seconds:.0} s; load {}",
        loadavg()
    );
    let block = LinkSpec { capacity: 2, when_full: WhenFull::Block };
    spec.cameras = (0..streams)
        .map(|i| camera(&spec.inference, &format!("s{i}"), &bikes(&dir), 1000.0, false, true, block))
        .collect::<Result<_, _>>()?;
    // The baseline brackets the pipeline, half before and half after: on this shared machine
    // the same bare loop has measured anywhere from 50 to 71 runs/s a minute apart, so one
    // baseline taken on one side of the window would put that drift into the ratio.
    let half = Duration::from_secs_f64(seconds / 2.0);
    let before = bare_rate(&spec, workers, half)?;
    let (d, secs, shares, _) = run_streams(&spec, seconds, "pipeline")?;
    let after = bare_rate(&spec, workers, half)?;
    let (fps, dps) = (d.inferred as f64 / secs, d.detections as f64 / secs);
    let bare = (before + after) / 2.0;
    println!(
        "  pipeline: {fps:.1} frames/s detected ({dps:.1} detections/s at min_score 0.5), {} dropped",
        d.link_full
    );
    shares.print(secs);
    println!("  baseline: {workers} bare session.run loop(s): {bare:.1} runs/s (before {before:.1}, after {after:.1})");
    println!("  ratio pipeline / bare: {:.2}x (target >= 0.90); load {}", fps / bare, loadavg());
    if workers >= cores() {
        println!(
            "  note: {workers} worker(s) on {} core(s): decode shares the cores the bare loops had to themselves; --workers {} leaves a core for it",
            cores(),
            cores().saturating_sub(1).max(1)
        );
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub fn overload(config_dir: Option<PathBuf>, seconds: f64, factor: f64) -> Result<(), BenchError> {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    let mut spec = base_spec(&dir, 1)?;
    let latency = bare_latency(&spec)?;
    // Offer `factor` times what one worker takes: a camera at that frame rate, detecting
    // every frame.
    let offered = (factor / latency.as_secs_f64()).round().max(1.0) as u32;
    let frames = (seconds * offered as f64).round() as u64;
    println!(
        "lookout bench overload: bare inference {:.1} ms (1 thread) = {:.1} frames/s; offering {offered} frames/s ({factor}x) for {seconds:.0} s; load {}",
        latency.as_secs_f64() * 1e3,
        1.0 / latency.as_secs_f64(),
        loadavg()
    );
    // A real photo held still (dog.jpg: a dog, a bicycle, a truck), so every frame has
    // detections and so a message whose age can be measured.
    let photo = dir.join("media/dog.jpg");
    let clip = make_clip(
        &format!("lookout-bench-overload-{offered}fps-{frames}.mp4"),
        &format!(
            "filesrc location={} ! jpegdec ! videoconvert ! imagefreeze num-buffers={frames} ! video/x-raw,framerate={offered}/1 ! videoscale ! video/x-raw,width=640,height=480 ! x264enc speed-preset=ultrafast key-int-max=250",
            photo.display()
        ),
    )?;
    let mut cam =
        camera(&spec.inference, "overload", &clip, offered as f64, true, false, LinkKind::Frames.default_spec())?;
    cam.objects.publish_detections = true;
    spec.cameras = vec![cam];
    let ages = Arc::new(Mutex::new(Vec::with_capacity(frames as usize)));
    let run = Running::start(spec, Sink::Probe(ages.clone(), 0), TestHooks::default())?;
    // RSS once warm (sessions, buffers and the first frames allocated), then at the end.
    std::thread::park_timeout(Duration::from_secs(10));
    let rss_warm = proc_self().1;
    let (_, (t_end, _, _), rss_end) = watch(&run, seconds + 60.0, Duration::from_secs(15), "overload");
    let report = run.stop()?;
    let s = &report.cameras[0].summary;
    let mut v = ages.lock().map(|a| a.clone()).unwrap_or_default();
    // The age measurement vector itself grew by this much; it is not the daemon's.
    let probe_kb = (v.capacity() * 4 / 1024) as i64;
    let infer_mean = t_end.infer_us as f64 / t_end.inferred.max(1) as f64 / 1e3;
    let bound = 2.0 * infer_mean + 1000.0 / offered as f64;
    let (p50, p99) = (percentile(&mut v, 50.0) * 1e3, percentile(&mut v, 99.0) * 1e3);
    println!(
        "  books at EOS: decoded {} = skipped_by_rate {} + inferred {} + dropped {} (link_full {}); unaccounted {}",
        s.decoded,
        s.skipped_by_rate,
        s.inferred,
        s.dropped_total(),
        s.dropped.get("link_full").copied().unwrap_or(0),
        s.unaccounted()
    );
    println!(
        "  inference under load: {infer_mean:.1} ms mean; took {:.1} of {offered} frames/s offered",
        s.inferred as f64 / report.elapsed.as_secs_f64()
    );
    println!(
        "  frame age at publish over {} messages: p50 {p50:.1} ms, p99 {p99:.1} ms; bound 2 x {infer_mean:.1} + {:.1} = {bound:.1} ms; ratio p99 / bound {:.2} (target <= 1.00)",
        v.len(),
        1000.0 / offered as f64,
        p99 as f64 / bound
    );
    println!(
        "  RSS warm (10 s in) {:.1} MB, last while running {:.1} MB: growth {:.2} MB (of which {:.2} MB the age probe's own buffer) (target < 5 MB); load {}",
        rss_warm as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        (rss_end as i64 - rss_warm as i64) as f64 / 1024.0,
        probe_kb as f64 / 1024.0,
        loadavg()
    );
    Ok(())
}

/// Run `spec` for a window of `seconds`: the totals over the window, its length, the CPU by
/// part, and the RSS (kB) last seen while it ran.
pub(super) fn run_streams(spec: &Spec, seconds: f64, label: &str) -> Result<(Totals, f64, Shares, u64), BenchError> {
    let run = Running::start(spec.clone(), Sink::Discard(0), TestHooks::default())?;
    std::thread::park_timeout(Duration::from_secs(3));
    // A sampler beside the watch: thread ticks every 250 ms for the window.
    let book = Arc::new(Mutex::new(ThreadBook::open(thread_ticks())));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (book, done) = (book.clone(), done.clone());
        std::thread::Builder::new()
            .name("bench-cpu".into())
            .spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    std::thread::park_timeout(Duration::from_millis(250));
                    let now = thread_ticks();
                    if let Ok(mut b) = book.lock() {
                        b.sample(now);
                    }
                }
            })
            .map_err(|source| BenchError::Io { what: "could not start thread bench-cpu".into(), source })?
    };
    let ((t0, c0, i0), (t1, c1, i1), rss_kb) = watch(&run, seconds, Duration::from_secs(10), label);
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let book = book.lock().map(|mut b| {
        b.sample(thread_ticks());
        b.clone()
    });
    run.stop()?;
    let book = book.map_err(|_| BenchError::Thread("the CPU sampler panicked"))?;
    let secs = (i1 - i0).as_secs_f64();
    let d = Totals {
        decoded: t1.decoded - t0.decoded,
        inferred: t1.inferred - t0.inferred,
        link_full: t1.link_full - t0.link_full,
        skipped_by_motion: t1.skipped_by_motion - t0.skipped_by_motion,
        detections: t1.detections - t0.detections,
        infer_us: t1.infer_us - t0.infer_us,
        pre_us: t1.pre_us - t0.pre_us,
    };
    let shares = Shares::from_ticks(c1 - c0, &book, d.pre_us, d.infer_us);
    Ok((d, secs, shares, rss_kb))
}

fn clip_1080p(dir: &Path) -> Result<PathBuf, BenchError> {
    make_clip(
        "lookout-bench-bikes-1080p25.mp4",
        &format!(
            "filesrc location={} ! decodebin ! videoconvert ! videoscale ! video/x-raw,width=1920,height=1080 ! x264enc speed-preset=veryfast bitrate=6000 key-int-max=50",
            bikes(dir).display()
        ),
    )
}

pub fn density(
    config_dir: Option<PathBuf>,
    max_streams: usize,
    seconds: f64,
    workers: usize,
) -> Result<(), BenchError> {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    let clip = clip_1080p(&dir)?;
    let base = base_spec(&dir, workers.max(1))?;
    println!(
        "lookout bench density: 1080p25 H.264 streams (bikes.mp4 scaled, looped, paced), detect 5 fps, {} worker(s); {seconds:.0} s per step; load {}",
        workers.max(1),
        loadavg()
    );
    let mut sustained = 0;
    // RSS (kB) at each step, to give each added stream's share.
    let mut rss: Vec<u64> = Vec::new();
    for n in 1..=max_streams.max(1) {
        let mut spec = base.clone();
        spec.inference.workers = workers.max(1).min(n);
        spec.cameras = (0..n)
            .map(|i| camera(&base.inference, &format!("c{i}"), &clip, 5.0, true, true, LinkKind::Frames.default_spec()))
            .collect::<Result<_, _>>()?;
        let (d, secs, shares, rss_kb) = run_streams(&spec, seconds, &format!("{n} streams"))?;
        // Real time: 25 frames/s decoded per stream (a few percent for loop restarts).
        let decode_fps = d.decoded as f64 / secs / n as f64;
        let ok = d.link_full == 0 && decode_fps >= 25.0 * 0.95;
        println!(
            "  {n} stream(s): decoded {decode_fps:.1} frames/s per stream (baseline: the clip's 25), inferred {:.1}/s (offered {}), link_full {} -> {}; load {}",
            d.inferred as f64 / secs,
            5 * n,
            d.link_full,
            if ok { "sustained" } else { "NOT sustained" },
            loadavg()
        );
        shares.print(secs);
        let mb = |kb: u64| kb as f64 / 1024.0;
        match rss.last() {
            Some(&before) => println!(
                "    RSS {:.1} MB while running: {:+.1} MB for this stream (target <= 40 MB per added 1080p25 stream)",
                mb(rss_kb),
                mb(rss_kb) - mb(before)
            ),
            None => println!("    RSS {:.1} MB while running (one stream)", mb(rss_kb)),
        }
        rss.push(rss_kb);
        if !ok {
            break;
        }
        sustained = n;
    }
    println!("  sustained: {sustained} stream(s) of 1080p25 at detect 5 fps with no drop (target >= 4)");
    if let (Some(first), Some(last)) = (rss.first(), rss.last())
        && rss.len() > 1
    {
        // The steps run one after another in this process: what an earlier step's heap kept
        // counts here too, so this is an upper bound on what a stream adds.
        println!(
            "  RSS per added stream, {} to {} streams: {:.1} MB (target <= 40 MB)",
            1,
            rss.len(),
            (*last as f64 - *first as f64) / 1024.0 / (rss.len() - 1) as f64
        );
    }
    Ok(())
}

pub fn motion(config_dir: Option<PathBuf>, seconds: f64) -> Result<(), BenchError> {
    let dir = config_dir.unwrap_or_else(config::default_dir);
    // A still scene: a street with nothing in it is hard to come by in the sample media, so a
    // still test picture, 1080p25 like a camera's main stream. smpte100, not smpte: smpte's
    // corner of snow changes about 5 % of the picture every frame, which is motion.
    let clip = make_clip(
        "lookout-bench-still100-1080p25.mp4",
        "videotestsrc num-buffers=750 pattern=smpte100 ! video/x-raw,width=1920,height=1080,framerate=25/1 ! x264enc speed-preset=veryfast bitrate=6000 key-int-max=50",
    )?;
    let base = base_spec(&dir, 1)?;
    println!(
        "lookout bench motion: still 1080p25 scene, paced, detect 5 fps, {seconds:.0} s each, gating off then on; load {}",
        loadavg()
    );
    let mut cpu = Vec::new();
    for gating in [false, true] {
        let mut spec = base.clone();
        let mut cam = camera(&base.inference, "still", &clip, 5.0, true, true, LinkKind::Frames.default_spec())?;
        cam.source.motion.enabled = gating;
        spec.cameras = vec![cam];
        let (d, secs, shares, _) = run_streams(&spec, seconds, if gating { "gating on" } else { "gating off" })?;
        println!(
            "  gating {}: inferred {:.2}/s, skipped_by_motion {:.2}/s; load {}",
            if gating { "on " } else { "off" },
            d.inferred as f64 / secs,
            d.skipped_by_motion as f64 / secs,
            loadavg()
        );
        shares.print(secs);
        cpu.push(shares.total / secs);
    }
    println!("  CPU with gating / without: {:.2}x ({:.0} % saved)", cpu[1] / cpu[0], 100.0 * (1.0 - cpu[1] / cpu[0]));
    Ok(())
}
