//! The publish stage's thread: takes every outgoing message from the events link, saves
//! snapshots to disk, records each message's age, and hands it to the sink (MQTT or stdout);
//! at the end it flushes the sink within the stop's deadline.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use crate::metrics::Metrics;
use crate::publish::{DeliveryReport, Outgoing, Sink, Topic};
use crate::supervisor::{Beat, IDLE_BEAT};

/// Snapshots on disk: `<dir>/<camera>/<object_id>.jpg`, the latest (best) one per object,
/// deleted after the retention period.
pub struct SnapshotStore {
    dir: std::path::PathBuf,
    retain: Duration,
    enabled: bool,
    last_sweep: Option<Instant>,
    warned: bool,
}

impl SnapshotStore {
    pub fn new(dir: std::path::PathBuf, retain: Duration, enabled: bool) -> SnapshotStore {
        SnapshotStore { dir, retain, enabled, last_sweep: None, warned: false }
    }

    fn save(&mut self, camera: &str, object_id: &str, jpeg: &[u8]) {
        if !self.enabled {
            return;
        }
        let dir = self.dir.join(camera);
        let path = dir.join(format!("{object_id}.jpg"));
        // Write then rename, so a reader never sees half a JPEG.
        let tmp = dir.join(format!(".{object_id}.jpg.tmp"));
        let r = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(&tmp, jpeg))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = r
            && !std::mem::replace(&mut self.warned, true)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot save snapshots (they are still published); check snapshots.dir and its permissions");
        }
        self.sweep();
    }

    /// Delete snapshots older than the retention period, at most once a minute.
    fn sweep(&mut self) {
        if self.last_sweep.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            return;
        }
        self.last_sweep = Some(Instant::now());
        let Ok(cameras) = std::fs::read_dir(&self.dir) else { return };
        for cam in cameras.flatten() {
            let Ok(files) = std::fs::read_dir(cam.path()) else { continue };
            for f in files.flatten() {
                let old = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > self.retain);
                if old && f.path().extension().is_some_and(|x| x == "jpg") {
                    let _ = std::fs::remove_file(f.path());
                }
            }
        }
    }
}

/// How the run loop tells the publisher to finish: the stop deadline (SIGTERM plus
/// `shutdown_timeout_seconds`), and that nothing more will be sent that it must wait for.
#[derive(Debug, Clone, Default)]
pub struct PublisherClose(Arc<Mutex<(Option<Instant>, bool)>>);

impl PublisherClose {
    pub fn deadline(&self, at: Instant) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).0 = Some(at);
    }

    /// The final stats are sent: take what is queued and finish, even if a stuck stage still
    /// holds the event link open.
    pub fn close(&self) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
    }

    fn get(&self) -> (Option<Instant>, bool) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub fn publish_loop(
    rx: Receiver<Outgoing>,
    mut sink: Sink,
    flush_timeout: Duration,
    metrics: &Metrics,
    mut store: SnapshotStore,
    beat: Beat,
    closing: &PublisherClose,
) -> DeliveryReport {
    let mut handle = |msg: Outgoing, sink: &mut Sink| {
        if let Topic::Snapshot { camera, object_id } = &msg.topic {
            store.save(camera, object_id, &msg.payload);
        }
        if let (Some(at), Some(camera)) = (msg.captured_at, msg.topic.camera()) {
            // Age as the message leaves us for the broker's client queue (or stdout).
            let age = SystemTime::now().duration_since(at).unwrap_or_default();
            metrics.frame_age_seconds.get_or_create(&[("camera", camera.to_string())]).observe(age.as_secs_f64());
        }
        sink.publish(msg);
    };
    loop {
        beat.beat();
        match rx.recv_timeout(IDLE_BEAT) {
            Ok(msg) => handle(msg, &mut sink),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if closing.get().1 {
                    // Only a stuck stage still holds the link: take what is there and go.
                    for msg in rx.try_iter() {
                        handle(msg, &mut sink);
                    }
                    break;
                }
            }
        }
    }
    // A stop waits for the broker's acknowledgements no longer than its deadline allows; what
    // is not acknowledged by then stays in the spool for the next run.
    let timeout = match closing.get().0 {
        Some(deadline) => flush_timeout.min(deadline.saturating_duration_since(Instant::now())),
        None => flush_timeout,
    };
    sink.finish(timeout)
}
