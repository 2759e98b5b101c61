//! The objects stage's thread: one per camera, running the camera's [`CameraObjects`]
//! (filters, tracker, lifecycle, rules) on each detected frame, in order (the frames of a camera
//! served by several detect workers are put back in order first), and handing the events on to
//! the publisher.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::link::LinkSender;
use crate::objects::reorder::Reorder;
use crate::objects::snapshot::FrameImage;
use crate::objects::{CameraObjects, DetectedFrame};
use crate::publish::{Outgoing, Topic};
use crate::stats::CameraCounters;
use crate::supervisor::{Beat, recv_beating};
use crate::toggles::Kind;
use crate::view::{Crossings, ViewFrame, ViewObject};

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
    switches: Vec<(Kind, String, Arc<AtomicBool>)>,
) {
    let mut last = None;
    let mut order = Reorder::default();
    // What each switch was last applied as: the rules are told only of a change.
    let mut applied: Vec<Option<bool>> = vec![None; switches.len()];
    let mut ready = Vec::new();
    while let Some(arrived) = recv_beating(&rx, &beat) {
        if let Some(path) = &freeze
            && path.exists()
        {
            // The test hook: stuck for good, as a deadlocked stage would be.
            tracing::warn!(path = %path.display(), "LOOKOUT_TEST_FREEZE: this stage freezes now");
            loop {
                std::thread::park_timeout(Duration::from_secs(1));
            }
        }
        if let Err(dup) = order.push(arrived.ticket, arrived, &mut ready) {
            // Every frame is taken once; a second copy would be a bug upstream. Not twice through
            // the tracker, whatever happens.
            tracing::error!(ticket = dup.ticket, "a frame arrived twice; the second is ignored");
        }
        for frame in ready.drain(..) {
            if frame.skipped {
                continue;
            }
            // The zone and line switches, as MQTT last set them: one atomic load each per frame.
            for ((kind, name, on), was) in switches.iter().zip(applied.iter_mut()) {
                let now = on.load(Ordering::Relaxed);
                if *was != Some(now) {
                    stage.set_switch(*kind, name, now);
                    *was = Some(now);
                }
            }
            if !on_frame(&mut stage, &frame, events, min_score, counters) {
                return;
            }
            last = Some(frame.meta);
        }
    }
    if let Some(meta) = last {
        for msg in stage.finish(meta) {
            let _ = events.send(msg);
        }
    }
    counters.tracking.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// One frame, in order, through the stage; its messages to the publisher. `false` once the
/// publisher is gone.
fn on_frame(
    stage: &mut CameraObjects,
    frame: &DetectedFrame,
    events: &LinkSender<Outgoing>,
    min_score: f32,
    counters: &CameraCounters,
) -> bool {
    let out = stage.on_frame(frame, min_score);
    counters.add_filtered(&stage.take_filtered());
    counters.tracking.store(stage.tracking(), std::sync::atomic::Ordering::Relaxed);
    // The console's picture: only while someone watches (the worker made RGB for it then).
    if let Some(image) = frame.image.as_ref().filter(|_| counters.view.wanted()) {
        counters.view.store(view_frame(stage, image, frame));
    }
    for msg in out {
        if matches!(msg.topic, Topic::Events(_)) {
            counters.view.record_event(&msg.payload);
        }
        if events.send(msg).is_err() {
            tracing::error!("publisher gone; stopping objects stage");
            return false;
        }
    }
    true
}

/// What a viewer sees of this frame. A child of `objects`, so it reads the stage's own state.
fn view_frame(stage: &CameraObjects, image: &FrameImage, frame: &DetectedFrame) -> ViewFrame {
    ViewFrame {
        rgb: image.rgb.clone(),
        scale_x: image.scale_x,
        scale_y: image.scale_y,
        objects: stage
            .last_objects
            .iter()
            .map(|o| ViewObject { id: o.id, label: o.label.clone(), bbox: o.bbox, score: o.score })
            .collect(),
        occupancy: stage.rules.zones().occupancy(),
        counts: stage
            .rules
            .lines()
            .counts()
            .into_iter()
            .map(|(k, c)| (k, Crossings { left_to_right: c.left_to_right, right_to_left: c.right_to_left }))
            .collect(),
        captured_at: frame.meta.captured_at,
    }
}
