//! The detect stage's thread: one worker per detector, taking frames from its cameras' frame
//! links fairly, batching across cameras where the detector batches (see [`crate::batch`]),
//! and handing every inferred frame to the camera's objects stage.
//!
//! ```toml
//! [inference]
//! workers = 1              # detectors per model; cameras are spread over them
//! max_batch_wait_ms = 5    # how long a batching worker waits for other cameras' frames
//! ```
//!
//! The assembly ([`crate::pipeline`]) starts workers, attaches cameras to them and retires them
//! on a reload, through each worker's control link ([`WorkerCtl`]).
//!
//! A camera may be attached to several workers (`detect.workers`), so that one busy camera uses
//! every core: the workers take successive frames from its link. Each frame is numbered (its
//! ticket) as it is taken, under the camera's lock, and every ticket reaches the objects stage,
//! detected, switched off or failed, which puts them back in order before the tracker
//! ([`crate::objects::reorder`]).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};

use crate::batch::{self, BatchCounts};
use crate::detect::frame::{DetectedFrame, FrameImage};
use crate::detect::{DetectError, Detection, Detector, ScaledFrame, Timings};
use crate::link::LinkSender;
use crate::metrics::Metrics;
use crate::source::{Frame, FrameMeta};
use crate::stats::{CameraCounters, DropReason};
use crate::supervisor::{Beat, IDLE_BEAT};

/// What the run loop tells a detect worker.
pub enum WorkerCtl {
    /// Detect for one more camera.
    Attach(WorkerCamera),
    /// Hand back every camera (their links intact) and exit: a reload swapped the detectors.
    Retire(crossbeam_channel::Sender<Vec<WorkerCamera>>),
}

/// One camera as a detect worker sees it. A clone is the same camera for one more worker: the
/// same links, counters and tickets.
#[derive(Clone)]
pub struct WorkerCamera {
    pub name: String,
    pub rx: Receiver<Frame>,
    pub to_objects: LinkSender<DetectedFrame>,
    pub counters: Arc<CameraCounters>,
    /// Detection switched on (`<camera>/detect/set`).
    pub on: Arc<AtomicBool>,
    pub min_score: f32,
    pub snapshots: bool,
    /// The next frame's ticket, shared by every worker serving this camera.
    pub tickets: Arc<Mutex<u64>>,
}

/// A frame as a worker took it: with its ticket.
struct Taken {
    ticket: u64,
    frame: Frame,
}

/// The camera's link is closed: its source stopped.
struct Closed;

impl WorkerCamera {
    /// The camera's next frame with its ticket, if one is queued (another worker of the camera
    /// may have taken the one that made the link ready).
    fn take(&self) -> Result<Option<Taken>, Closed> {
        // The lock spans the take, so tickets follow the link's order.
        let mut next = self.tickets.lock().unwrap_or_else(PoisonError::into_inner);
        match self.rx.try_recv() {
            Ok(frame) => {
                let ticket = *next;
                *next += 1;
                Ok(Some(Taken { ticket, frame }))
            }
            Err(crossbeam_channel::TryRecvError::Empty) => Ok(None),
            Err(crossbeam_channel::TryRecvError::Disconnected) => Err(Closed),
        }
    }
}

/// How a worker batches: at most `max` frames a run (the detector's own limit), waiting up to
/// `max_wait` for the other cameras' next frames; each run's size is counted in `runs`.
pub struct Batching {
    pub max_wait: Duration,
    pub runs: Arc<BatchCounts>,
}

/// One worker: detect on frames from its cameras, fairly, and hand every inferred frame (with
/// or without detections: the tracker needs both) to the camera's objects stage. With a
/// detector that batches, frames from several cameras (at most one each) go through one run
/// (see [`crate::batch`]). A camera whose frame link closes (its source stopped) is dropped,
/// which closes its objects stage's link. The worker exits when its control link is closed and
/// it has no cameras left, or on Retire.
pub fn detect_loop(
    mut detector: Detector,
    ctl: Receiver<WorkerCtl>,
    metrics: &Metrics,
    batching: &Batching,
    beat: Beat,
    extra_delay: Duration,
) {
    let max_batch = detector.max_batch();
    let mut cams: Vec<WorkerCamera> = Vec::new();
    let mut ctl = Some(ctl);
    let mut batch: Vec<(usize, Taken)> = Vec::with_capacity(max_batch);
    loop {
        if ctl.is_none() && cams.is_empty() {
            return;
        }
        // Select picks fairly among the ready links, so a busy camera can't starve a quiet one.
        // The timeout keeps an idle worker beating. Only readiness: the take is `take`'s.
        beat.beat();
        let mut sel = Select::new();
        for c in &cams {
            sel.recv(&c.rx);
        }
        if let Some(ctl) = &ctl {
            sel.recv(ctl);
        }
        let Ok(i) = sel.ready_timeout(IDLE_BEAT) else { continue };
        if i == cams.len() {
            let Some(rx) = &ctl else { continue };
            match rx.try_recv() {
                Ok(WorkerCtl::Attach(c)) => cams.push(c),
                Ok(WorkerCtl::Retire(reply)) => {
                    let _ = reply.send(cams);
                    return;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
                Err(crossbeam_channel::TryRecvError::Disconnected) => ctl = None,
            }
            continue;
        }
        match cams[i].take() {
            Ok(Some(t)) => batch.push((i, t)),
            Ok(None) => continue,
            Err(Closed) => {
                cams.swap_remove(i);
                continue;
            }
        }
        // Cameras to drop once this batch is through: indices stay valid until then.
        let mut gone = vec![false; cams.len()];
        if max_batch > 1 {
            fill_batch(&mut batch, &cams, &mut gone, max_batch, batching.max_wait);
        }
        detect_batch(&mut detector, &mut batch, &cams, &mut gone, metrics, &batching.runs, extra_delay);
        if gone.iter().any(|g| *g) {
            let mut k = 0;
            cams.retain(|_| {
                let keep = !gone[k];
                k += 1;
                keep
            });
        }
    }
}

/// Add to `batch` what the other cameras have ready, then wait up to `max_wait` for more. A
/// camera whose link closed is marked in `gone`.
fn fill_batch(
    batch: &mut Vec<(usize, Taken)>,
    cams: &[WorkerCamera],
    gone: &mut [bool],
    max: usize,
    max_wait: Duration,
) {
    batch::gather(batch, cams.len(), max, |j| {
        if gone[j] {
            return None;
        }
        match cams[j].take() {
            Ok(t) => t,
            Err(Closed) => {
                gone[j] = true;
                None
            }
        }
    });
    let deadline = Instant::now() + max_wait;
    while batch.len() < max {
        let waiting: Vec<usize> = (0..cams.len()).filter(|j| !gone[*j] && !batch.iter().any(|(k, _)| k == j)).collect();
        if waiting.is_empty() {
            return;
        }
        let mut sel = Select::new();
        for j in &waiting {
            sel.recv(&cams[*j].rx);
        }
        let Ok(k) = sel.ready_deadline(deadline) else { return };
        let j = waiting[k];
        match cams[j].take() {
            Ok(Some(t)) => batch.push((j, t)),
            Ok(None) => {}
            Err(Closed) => gone[j] = true,
        }
    }
}

/// Detect on the batch's frames in one run and hand each on; empties `batch`. A camera whose
/// objects stage is gone is marked in `gone`.
fn detect_batch(
    detector: &mut Detector,
    batch: &mut Vec<(usize, Taken)>,
    cams: &[WorkerCamera],
    gone: &mut [bool],
    metrics: &Metrics,
    runs: &BatchCounts,
    extra_delay: Duration,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut frames: Vec<(usize, Taken)> = Vec::with_capacity(batch.len());
    for (i, taken) in batch.drain(..) {
        let cam = &cams[i];
        if cam.on.load(Relaxed) {
            frames.push((i, taken));
            continue;
        }
        // Switched off: the frame is counted, and the objects stage sees an empty frame,
        // so tracked objects end as they would if the scene emptied.
        cam.counters.dropped(DropReason::DetectOff);
        let Taken { ticket, frame } = taken;
        let meta = frame_meta(&frame);
        let empty = DetectedFrame { ticket, skipped: false, meta, pts: frame.pts, detections: Vec::new(), image: None };
        if cam.to_objects.send(empty).is_err() {
            gone[i] = true;
        }
    }
    if frames.is_empty() {
        return;
    }
    let inputs: Vec<ScaledFrame<'_>> = frames
        .iter()
        .map(|(_, Taken { frame: f, .. })| ScaledFrame {
            rgb: &f.data,
            width: f.width,
            height: f.height,
            stride: f.stride,
            src_width: f.src_width,
            src_height: f.src_height,
        })
        .collect();
    let result: Result<(Vec<Vec<Detection>>, Timings), DetectError> = detector.detect_batch(&inputs);
    drop(inputs);
    if !extra_delay.is_zero() {
        // TestHooks only: a slower detector, not a wait for anything.
        std::thread::sleep(extra_delay);
    }
    match result {
        Ok((per_frame, timings)) => {
            runs.record(frames.len());
            for ((i, Taken { ticket, frame }), detections) in frames.iter().zip(per_frame) {
                let cam = &cams[*i];
                let ctr = &cam.counters;
                // Each frame's latency is its run's, whatever else rode along.
                ctr.inferred.fetch_add(1, Relaxed);
                ctr.infer_micros_total.fetch_add(timings.infer.as_micros() as u64, Relaxed);
                ctr.pre_micros_total.fetch_add(timings.pre.as_micros() as u64, Relaxed);
                metrics
                    .inference_seconds
                    .get_or_create(&Metrics::camera_label(&cam.name))
                    .observe(timings.infer.as_secs_f64());
                let confident = detections.iter().filter(|d| d.score >= cam.min_score).count();
                ctr.detections.fetch_add(confident as u64, Relaxed);
                let meta = frame_meta(frame);
                // Snapshots need the pixels after the frame's buffer goes back to GStreamer; so
                // does the console, but only while someone watches this camera (`crate::view`).
                let image = (cam.snapshots || cam.counters.view.wanted()).then(|| frame_image(frame)).flatten();
                let detected =
                    DetectedFrame { ticket: *ticket, skipped: false, meta, pts: frame.pts, detections, image };
                if cam.to_objects.send(detected).is_err() {
                    tracing::error!(camera = %cam.name, "objects stage gone; no more detection for this camera");
                    gone[*i] = true;
                }
            }
        }
        Err(e) => {
            for (i, Taken { ticket, frame }) in &frames {
                let cam = &cams[*i];
                cam.counters.dropped(DropReason::InferenceError);
                tracing::warn!(camera = %cam.name, error = %e, batch = frames.len(), "inference failed on a frame; frame dropped");
                // Its ticket still goes on, so the objects stage moves past it in order.
                let meta = frame_meta(frame);
                let skip = DetectedFrame {
                    ticket: *ticket,
                    skipped: true,
                    meta,
                    pts: frame.pts,
                    detections: Vec::new(),
                    image: None,
                };
                if cam.to_objects.send(skip).is_err() {
                    gone[*i] = true;
                }
            }
        }
    }
}

/// What events need to know about a frame.
fn frame_meta(frame: &Frame) -> FrameMeta {
    FrameMeta {
        captured_at: frame.captured_at,
        capture_clock: frame.clock.as_str(),
        pts_ms: frame.pts.map(|p| p.as_millis() as u64),
        seq: frame.seq,
        width: frame.src_width,
        height: frame.src_height,
    }
}

/// A tightly packed copy of a frame's RGB pixels (the buffer rows may be padded).
fn frame_image(frame: &Frame) -> Option<Arc<FrameImage>> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        rgb.extend_from_slice(frame.data.get(row * frame.stride..row * frame.stride + w * 3)?);
    }
    let rgb = image::RgbImage::from_raw(frame.width, frame.height, rgb)?;
    let (sx, sy) =
        (frame.width as f32 / frame.src_width.max(1) as f32, frame.height as f32 / frame.src_height.max(1) as f32);
    Some(Arc::new(FrameImage { rgb, scale_x: sx, scale_y: sy }))
}
