//! Liveness for systemd: READY once the pipeline is up, a one-line STATUS every few seconds,
//! and WATCHDOG pings only while every stage thread is alive and moving.
//!
//! Each long-lived stage thread (detect workers, objects stages, the publisher) holds a
//! [`Beat`] and bumps it every loop iteration, and at least every [`IDLE_BEAT`] while it waits
//! for input, so an idle but healthy thread still beats. A thread whose last beat is older than
//! the stuck limit (the watchdog interval, at least [`MIN_STUCK_AFTER`]) is stuck: pings stop,
//! an error names the thread, and systemd restarts the service after `WatchdogSec=`. A thread
//! that returns drops its `Beat` and is no longer watched; one that panics stays watched, and
//! so goes stale, because a dead stage is worth a restart.
//!
//! ```ini
//! [Service]
//! Type=notify
//! WatchdogSec=30   # pings every 15 s; a thread silent for 30 s withholds them
//! ```
//!
//! Source threads (`src-<camera>`) are not watched here: they spend their time inside
//! GStreamer, and the source's own stall watchdog (`stall_timeout_seconds`) reconnects them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::notify;
use crate::shutdown::Shutdown;
use crate::source::{Outcome, StateChange};
use crate::stats::CameraCounters;

/// The longest a healthy stage thread waits for input before it beats anyway.
pub const IDLE_BEAT: Duration = Duration::from_secs(1);
/// A thread is never called stuck sooner than this, whatever `WatchdogSec=` says: a thread
/// idles for up to [`IDLE_BEAT`] between beats, and a loaded gateway runs late.
pub const MIN_STUCK_AFTER: Duration = Duration::from_secs(3);
/// The stuck limit when systemd runs no watchdog: stuck threads are still logged.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(30);
/// How often STATUS= is refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);
/// How often the supervisor looks at the shutdown flag and the clock.
const TICK: Duration = Duration::from_millis(250);

/// What a camera is doing, as far as the status line is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CameraState {
    Streaming,
    Connecting,
    Reconnecting,
    Failed,
    Ended,
    Stopped,
}

impl CameraState {
    pub fn as_str(self) -> &'static str {
        match self {
            CameraState::Streaming => "streaming",
            CameraState::Connecting => "connecting",
            CameraState::Reconnecting => "reconnecting",
            CameraState::Failed => "failed",
            CameraState::Ended => "ended",
            CameraState::Stopped => "stopped",
        }
    }

    /// The state a change leaves the camera in; `None` for a change that is not a state
    /// (a clock-skew warning).
    pub fn after(change: &StateChange) -> Option<CameraState> {
        Some(match change {
            StateChange::Connecting => CameraState::Connecting,
            StateChange::Streaming { .. } => CameraState::Streaming,
            StateChange::Reconnecting { .. } => CameraState::Reconnecting,
            StateChange::ClockSkew { .. } => return None,
            StateChange::Finished(Outcome::Ended | Outcome::Truncated(_)) => CameraState::Ended,
            StateChange::Finished(Outcome::Stopped) => CameraState::Stopped,
            StateChange::Finished(Outcome::Failed(_)) => CameraState::Failed,
        })
    }
}

/// STATUS= while no camera is configured (an empty pipelines/ folder is valid: a new install).
pub const NO_CAMERA_STATUS: &str =
    "no camera configured: add pipelines/<camera>.toml to the config directory, then reload";

/// The one-line summary for STATUS=, e.g.
/// `3 cameras: 2 streaming, 1 reconnecting (door); 14.8 frames/s inferred`.
/// Cameras that are not streaming are named, up to three per state.
pub fn status_line(cameras: &[(String, CameraState)], frames_per_second: f64) -> String {
    if cameras.is_empty() {
        return NO_CAMERA_STATUS.to_string();
    }
    let mut states: Vec<CameraState> = cameras.iter().map(|(_, s)| *s).collect();
    states.sort();
    states.dedup();
    let parts: Vec<String> = states
        .iter()
        .map(|&state| {
            let names: Vec<&str> = cameras.iter().filter(|(_, s)| *s == state).map(|(n, _)| n.as_str()).collect();
            let mut part = format!("{} {}", names.len(), state.as_str());
            if state != CameraState::Streaming {
                let shown: Vec<&str> = names.iter().take(3).copied().collect();
                let more = if names.len() > 3 { format!(", +{}", names.len() - 3) } else { String::new() };
                part.push_str(&format!(" ({}{more})", shown.join(", ")));
            }
            part
        })
        .collect();
    let n = cameras.len();
    format!(
        "{n} camera{}: {}; {frames_per_second:.1} frames/s inferred",
        if n == 1 { "" } else { "s" },
        if parts.is_empty() { "none".to_string() } else { parts.join(", ") }
    )
}

/// One thread's liveness as the supervisor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BeatSample {
    pub thread: String,
    /// Milliseconds since the supervisor's epoch of the last beat.
    pub last_ms: u64,
    /// The thread has returned: it is no longer watched.
    pub done: bool,
}

/// The threads whose last beat is older than `limit` at `now_ms`, with how long they have
/// been silent, most silent first.
pub fn stuck_threads(beats: &[BeatSample], now_ms: u64, limit: Duration) -> Vec<(String, Duration)> {
    let mut stuck: Vec<(String, Duration)> = beats
        .iter()
        .filter(|b| !b.done)
        .map(|b| (b.thread.clone(), Duration::from_millis(now_ms.saturating_sub(b.last_ms))))
        .filter(|(_, silent)| *silent > limit)
        .collect();
    stuck.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    stuck
}

/// The stuck limit for a watchdog interval.
pub fn stuck_after(watchdog: Option<Duration>) -> Duration {
    watchdog.unwrap_or(DEFAULT_STUCK_AFTER).max(MIN_STUCK_AFTER)
}

#[derive(Debug, Default)]
struct BeatCell {
    last_ms: AtomicU64,
    done: AtomicBool,
}

/// A stage thread's heartbeat. Dropping it (the thread returned) stops the watching, unless
/// the thread is panicking.
#[derive(Debug)]
pub struct Beat {
    cell: Arc<BeatCell>,
    epoch: Instant,
}

impl Beat {
    /// The thread made progress, or waited its [`IDLE_BEAT`] for input.
    pub fn beat(&self) {
        self.cell.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.cell.done.store(true, Ordering::Relaxed);
        }
    }
}

/// `rx.recv()` for a stage thread: beats while it waits; `None` once the link is closed and
/// drained.
pub fn recv_beating<T>(rx: &crossbeam_channel::Receiver<T>, beat: &Beat) -> Option<T> {
    loop {
        beat.beat();
        match rx.recv_timeout(IDLE_BEAT) {
            Ok(item) => return Some(item),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return None,
        }
    }
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    beats: Mutex<Vec<(String, Arc<BeatCell>)>>,
    states: Mutex<std::collections::BTreeMap<String, CameraState>>,
    cameras: Mutex<(Vec<String>, Vec<Arc<CameraCounters>>)>,
    started: AtomicBool,
}

/// What the pipeline tells the supervisor: heartbeats, camera states, and that it has started.
/// Cheap to clone; a pipeline run without a supervisor just updates atomics nobody reads.
#[derive(Debug, Clone)]
pub struct Health(Arc<Inner>);

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health(Arc::new(Inner {
            epoch: Instant::now(),
            beats: Mutex::new(Vec::new()),
            states: Mutex::new(std::collections::BTreeMap::new()),
            cameras: Mutex::new((Vec::new(), Vec::new())),
            started: AtomicBool::new(false),
        }))
    }

    /// A heartbeat for the thread named `thread`, beaten once already.
    pub fn heartbeat(&self, thread: &str) -> Beat {
        let cell = Arc::new(BeatCell::default());
        let beat = Beat { cell: cell.clone(), epoch: self.0.epoch };
        beat.beat();
        let mut beats = self.0.beats.lock().unwrap_or_else(PoisonError::into_inner);
        // Threads that returned (cameras restarted by reloads, retired workers) are forgotten,
        // so months of reloads don't grow the list.
        beats.retain(|(_, c)| !c.done.load(Ordering::Relaxed));
        beats.push((thread.to_string(), cell));
        beat
    }

    /// Camera `camera` changed state.
    pub fn camera_state(&self, camera: &str, change: &StateChange) {
        let Some(state) = CameraState::after(change) else { return };
        self.0.states.lock().unwrap_or_else(PoisonError::into_inner).insert(camera.to_string(), state);
    }

    /// Every camera thread has started and the detectors are loaded; called again with the new
    /// set of cameras after a reload.
    pub fn started(&self, names: &[String], counters: &[Arc<CameraCounters>]) {
        *self.0.cameras.lock().unwrap_or_else(PoisonError::into_inner) = (names.to_vec(), counters.to_vec());
        self.0.started.store(true, Ordering::SeqCst);
    }

    /// The cameras' counters, once [`Health::started`]: for benchmarks that sample a run.
    pub fn counters(&self) -> Vec<Arc<CameraCounters>> {
        self.0.cameras.lock().unwrap_or_else(PoisonError::into_inner).1.clone()
    }

    pub fn is_started(&self) -> bool {
        self.0.started.load(Ordering::SeqCst)
    }

    fn now_ms(&self) -> u64 {
        self.0.epoch.elapsed().as_millis() as u64
    }

    fn beats(&self) -> Vec<BeatSample> {
        let beats = self.0.beats.lock().unwrap_or_else(PoisonError::into_inner);
        beats
            .iter()
            .map(|(thread, c)| BeatSample {
                thread: thread.clone(),
                last_ms: c.last_ms.load(Ordering::Relaxed),
                done: c.done.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Each camera with its state, and the frames inferred so far over all cameras.
    fn cameras(&self) -> (Vec<(String, CameraState)>, u64) {
        let (names, counters) = self.0.cameras.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let states = self.0.states.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let cams = names
            .into_iter()
            .map(|n| {
                let state = states.get(&n).copied().unwrap_or(CameraState::Connecting);
                (n, state)
            })
            .collect();
        let inferred = counters.iter().map(|c| c.inferred.load(Ordering::Relaxed)).sum();
        (cams, inferred)
    }
}

/// The running supervisor thread. [`Supervisor::stop`] sends STOPPING=1 (if shutdown has not
/// already) and waits for the thread.
pub struct Supervisor {
    stop: crossbeam_channel::Sender<()>,
    handle: JoinHandle<()>,
}

impl Supervisor {
    /// Start the `supervise` thread. (SIGHUP, a reload, is handled by `lookout run` itself.)
    pub fn start(health: Health, shutdown: Shutdown) -> std::io::Result<Supervisor> {
        let (stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let handle = std::thread::Builder::new()
            .name("supervise".into())
            .spawn(move || supervise(&health, &shutdown, &stop_rx))?;
        Ok(Supervisor { stop, handle })
    }

    pub fn stop(self) {
        drop(self.stop);
        let _ = self.handle.join();
    }
}

fn supervise(health: &Health, shutdown: &Shutdown, stop: &crossbeam_channel::Receiver<()>) {
    let watchdog = notify::watchdog_interval();
    let limit = stuck_after(watchdog);
    // Without a watchdog, look for stuck threads as often as a watchdog of `limit` would.
    let check_every = watchdog.unwrap_or(limit) / 2;
    let mut ready = false;
    let mut last_status = Instant::now();
    let mut last_check = Instant::now();
    let (mut last_inferred, mut last_inferred_at) = (0u64, Instant::now());
    let mut withheld = false;
    // Until `Supervisor::stop` drops the sender.
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(TICK) {
        if shutdown.is_triggered() {
            break;
        }
        if !health.is_started() {
            continue;
        }
        let now = Instant::now();
        if !ready || now.duration_since(last_status) >= STATUS_EVERY {
            let (cams, inferred) = health.cameras();
            let dt = now.duration_since(last_inferred_at).as_secs_f64();
            let fps = if ready && dt > 0.0 { inferred.saturating_sub(last_inferred) as f64 / dt } else { 0.0 };
            (last_inferred, last_inferred_at) = (inferred, now);
            let mut line = status_line(&cams, fps);
            if withheld {
                line.push_str("; a stage thread is stuck, watchdog withheld");
            }
            notify::status(&line);
            last_status = now;
            if !ready {
                notify::ready();
                tracing::info!(status = %line, watchdog_s = watchdog.map(|w| w.as_secs_f64()), "ready");
                ready = true;
            }
        }
        if now.duration_since(last_check) >= check_every {
            last_check = now;
            let stuck = stuck_threads(&health.beats(), health.now_ms(), limit);
            if stuck.is_empty() {
                if withheld {
                    tracing::info!("every stage thread is moving again");
                }
                withheld = false;
                if watchdog.is_some() {
                    notify::watchdog();
                }
            } else if !withheld {
                withheld = true;
                let names: Vec<String> = stuck.iter().map(|(t, d)| format!("{t} ({:.1} s)", d.as_secs_f64())).collect();
                tracing::error!(
                    threads = %names.join(", "),
                    limit_s = limit.as_secs_f64(),
                    "stage thread stuck: no progress within the limit; watchdog pings withheld so systemd restarts the service"
                );
            }
        }
    }
    notify::stopping();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(thread: &str, last_ms: u64, done: bool) -> BeatSample {
        BeatSample { thread: thread.into(), last_ms, done }
    }

    #[test]
    fn a_thread_is_stuck_only_when_silent_longer_than_the_limit() {
        let beats =
            [sample("detect-0", 9_000, false), sample("objects-door", 6_999, false), sample("publish", 7_000, false)];
        let stuck = stuck_threads(&beats, 10_000, Duration::from_secs(3));
        assert_eq!(stuck, vec![("objects-door".to_string(), Duration::from_millis(3_001))]);
    }

    #[test]
    fn finished_threads_are_not_stuck_and_the_most_silent_comes_first() {
        let beats = [sample("objects-a", 0, true), sample("detect-0", 1_000, false), sample("detect-1", 0, false)];
        let stuck = stuck_threads(&beats, 60_000, Duration::from_secs(30));
        let names: Vec<&str> = stuck.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["detect-1", "detect-0"]);
    }

    #[test]
    fn a_beat_from_the_future_is_not_stuck() {
        // The sample is taken before `now`; a beat may land in between.
        assert!(stuck_threads(&[sample("publish", 10_050, false)], 10_000, Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn the_stuck_limit_follows_the_watchdog_with_a_floor() {
        assert_eq!(stuck_after(Some(Duration::from_secs(30))), Duration::from_secs(30));
        assert_eq!(stuck_after(Some(Duration::from_secs(1))), MIN_STUCK_AFTER);
        assert_eq!(stuck_after(None), DEFAULT_STUCK_AFTER);
    }

    #[test]
    fn status_line_counts_states_and_names_the_cameras_that_are_not_streaming() {
        let cams = vec![
            ("front".to_string(), CameraState::Streaming),
            ("door".to_string(), CameraState::Reconnecting),
            ("yard".to_string(), CameraState::Streaming),
        ];
        assert_eq!(status_line(&cams, 14.84), "3 cameras: 2 streaming, 1 reconnecting (door); 14.8 frames/s inferred");
        assert_eq!(status_line(&cams[..1], 5.0), "1 camera: 1 streaming; 5.0 frames/s inferred");
        // An empty pipelines/ (a new install) is said plainly, with what to do.
        assert_eq!(
            status_line(&[], 0.0),
            "no camera configured: add pipelines/<camera>.toml to the config directory, then reload"
        );
        let many: Vec<(String, CameraState)> = (0..5).map(|i| (format!("c{i}"), CameraState::Failed)).collect();
        assert_eq!(status_line(&many, 0.0), "5 cameras: 5 failed (c0, c1, c2, +2); 0.0 frames/s inferred");
    }

    #[test]
    fn health_tracks_states_beats_and_finished_threads() {
        let h = Health::new();
        h.camera_state("b", &StateChange::Streaming { decoder: None });
        h.camera_state("b", &StateChange::ClockSkew { skew_seconds: 9.0 });
        h.started(&["a".into(), "b".into()], &[Arc::default(), Arc::default()]);
        assert!(h.is_started());
        assert_eq!(
            h.cameras().0,
            vec![("a".to_string(), CameraState::Connecting), ("b".to_string(), CameraState::Streaming)]
        );

        let done = h.heartbeat("objects-a");
        let live = h.heartbeat("detect-0");
        drop(done);
        let beats = h.beats();
        assert_eq!(
            beats.iter().map(|b| (b.thread.as_str(), b.done)).collect::<Vec<_>>(),
            [("objects-a", true), ("detect-0", false)]
        );
        live.beat();
        // A new thread (a camera restarted by a reload) prunes the finished ones.
        let _again = h.heartbeat("objects-a");
        let names: Vec<String> = h.beats().into_iter().map(|b| b.thread).collect();
        assert_eq!(names, ["detect-0", "objects-a"]);
    }

    #[test]
    fn a_panicking_thread_stays_watched() {
        let h = Health::new();
        let h2 = h.clone();
        let r = std::thread::spawn(move || {
            let _beat = h2.heartbeat("detect-0");
            panic!("boom");
        })
        .join();
        assert!(r.is_err());
        assert!(!h.beats()[0].done, "a panicked stage must go stale, not be forgotten");
    }
}
