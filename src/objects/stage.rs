//! The objects stage's thread: one per camera, running the camera's [`CameraObjects`]
//! (filters, tracker, lifecycle, rules) on each detected frame, in order, and handing the
//! events on to the publisher.

use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::link::LinkSender;
use crate::objects::{CameraObjects, DetectedFrame};
use crate::publish::Outgoing;
use crate::stats::CameraCounters;
use crate::supervisor::{Beat, recv_beating};

/// One camera's objects stage: tracker, rules and lifecycle, until its workers are done;
/// then every object still open ends.
pub fn objects_loop(
    mut stage: CameraObjects,
    rx: Receiver<DetectedFrame>,
    events: &LinkSender<Outgoing>,
    min_score: f32,
    counters: &CameraCounters,
    beat: Beat,
    freeze: Option<std::path::PathBuf>,
) {
    let mut last = None;
    while let Some(frame) = recv_beating(&rx, &beat) {
        if let Some(path) = &freeze
            && path.exists()
        {
            // The test hook: stuck for good, as a deadlocked stage would be.
            tracing::warn!(path = %path.display(), "LOOKOUT_TEST_FREEZE: this stage freezes now");
            loop {
                std::thread::park_timeout(Duration::from_secs(1));
            }
        }
        let out = stage.on_frame(&frame, min_score);
        counters.add_filtered(&stage.take_filtered());
        counters.tracking.store(stage.tracking(), std::sync::atomic::Ordering::Relaxed);
        for msg in out {
            if events.send(msg).is_err() {
                tracing::error!("publisher gone; stopping objects stage");
                return;
            }
        }
        last = Some(frame.meta);
    }
    if let Some(meta) = last {
        for msg in stage.finish(meta) {
            let _ = events.send(msg);
        }
    }
    counters.tracking.store(false, std::sync::atomic::Ordering::Relaxed);
}
