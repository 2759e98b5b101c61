//! Camera sources: one GStreamer pipeline per camera, run by its own thread.
//!
//! ```toml
//! # pipelines/front-door.toml
//! uri = "rtsp://user:secret@camera.local/stream1"   # or file:///…, or a plain path
//! realtime = true                                   # files only: pace at the clip's frame rate
//! [detect]
//! fps = 5
//! ```
//!
//! `uridecodebin → [rate gate] → videoscale → videoconvert → appsink`. The rate gate
//! ([`rate::RateGate`]) sits on the decoder's output, so frames detection does not need cost only
//! their decode; scaling to the model's letterbox size happens before colour conversion, which
//! is cheaper (FINDINGS.md). The appsink hands each frame to the frame link without copying.

pub mod rate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::config::CameraSpec;
use crate::detect::letterbox::Letterbox;
use crate::link::LinkSender;
use crate::shutdown::Shutdown;
use crate::stats::{CameraCounters, DropReason};
use rate::RateGate;

/// One decoded frame, scaled to the model's letterbox size and converted to packed RGB.
pub struct Frame {
    /// Index of the camera in the spec.
    pub camera: usize,
    /// Position among this camera's delivered frames.
    pub seq: u64,
    /// The stream timestamp.
    pub pts: Option<Duration>,
    /// Wall-clock capture time: for now, when the frame reached the appsink (arrival time),
    /// kept monotonic per camera even if the system clock is stepped.
    pub captured_at: SystemTime,
    /// The source's own size: boxes are reported in these pixels.
    pub src_width: u32,
    pub src_height: u32,
    /// The scaled image held in `data`.
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub data: gst::MappedBuffer<gst::buffer::Readable>,
}

/// How a camera's pipeline ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A file reached its end.
    Ended,
    /// The daemon is shutting down.
    Stopped,
    /// The camera failed; the reason is safe to log (credentials redacted).
    Failed(String),
}

/// A state change worth telling operators about.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    Streaming { decoder: Option<String> },
    Finished(Outcome),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("GStreamer could not start: {0}. Run scripts/setup to install the GStreamer packages")]
    Init(String),
    #[error("could not build the pipeline: missing element `{0}`. Run scripts/setup to install the GStreamer plugins")]
    MissingElement(&'static str),
    #[error("could not build the pipeline: {0}")]
    Build(String),
}

/// Initialise GStreamer once; safe to call from every camera thread.
pub fn init() -> Result<(), SourceError> {
    gst::init().map_err(|e| SourceError::Init(e.to_string()))
}

fn make(factory: &'static str) -> Result<gst::Element, SourceError> {
    gst::ElementFactory::make(factory).build().map_err(|_| SourceError::MissingElement(factory))
}

/// Replace the URI (which may hold a password) with its redacted form in any message.
fn redact(text: &str, spec: &CameraSpec) -> String {
    if spec.uri.is_empty() { text.to_string() } else { text.replace(&spec.uri, &spec.uri_redacted) }
}

/// Run one camera until its stream ends, it fails, or `shutdown` is triggered.
///
/// `frames` is dropped before this returns, which is how the detect stage learns this camera
/// is finished. `on_state` reports every state change.
pub fn run_camera(
    index: usize,
    spec: &CameraSpec,
    model_size: u32,
    frames: LinkSender<Frame>,
    counters: Arc<CameraCounters>,
    shutdown: &Shutdown,
    mut on_state: impl FnMut(StateChange),
) -> Outcome {
    let outcome = match build(index, spec, model_size, frames, counters) {
        Ok((pipeline, sender_slot, decoder)) => {
            let outcome = drive(&pipeline, spec, shutdown, &decoder, &mut on_state);
            let _ = pipeline.set_state(gst::State::Null);
            // Dropping the sender closes this camera's frame link.
            if let Ok(mut slot) = sender_slot.lock() {
                slot.take();
            }
            outcome
        }
        Err(e) => Outcome::Failed(redact(&e.to_string(), spec)),
    };
    on_state(StateChange::Finished(outcome.clone()));
    outcome
}

type SenderSlot = Arc<Mutex<Option<LinkSender<Frame>>>>;

fn build(
    index: usize,
    spec: &CameraSpec,
    model_size: u32,
    frames: LinkSender<Frame>,
    counters: Arc<CameraCounters>,
) -> Result<(gst::Pipeline, SenderSlot, Arc<Mutex<Option<String>>>), SourceError> {
    init()?;
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", spec.name));
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", &spec.uri)
        .build()
        .map_err(|_| SourceError::MissingElement("uridecodebin"))?;
    let scale = make("videoscale")?;
    let scale_caps = make("capsfilter")?;
    let convert = make("videoconvert")?;
    let is_file = spec.uri.starts_with("file:");
    let appsink = gst_app::AppSink::builder()
        .caps(&gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::Rgb).build())
        // Files pace themselves like a camera when `realtime`; live sources are never held back.
        .sync(is_file && spec.realtime)
        .max_buffers(1)
        .drop(false)
        .build();
    pipeline
        .add_many([&decode, &scale, &scale_caps, &convert, appsink.upcast_ref()])
        .map_err(|e| SourceError::Build(e.to_string()))?;
    gst::Element::link_many([&scale, &scale_caps, &convert, appsink.upcast_ref()])
        .map_err(|e| SourceError::Build(e.to_string()))?;

    // Note which decoder decodebin picked: operators ask "why is this software-decoded?".
    let decoder: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let decoder_w = decoder.clone();
    let camera_name = spec.name.clone();
    pipeline.connect_deep_element_added(move |_, _, element| {
        if let Some(factory) = element.factory()
            && factory.klass().contains("Decoder")
            && factory.klass().contains("Video")
        {
            let name = factory.name().to_string();
            tracing::info!(camera = %camera_name, decoder = %name, "decoder chosen");
            if let Ok(mut d) = decoder_w.lock() {
                *d = Some(name);
            }
        }
    });

    // Link the first video pad to the scaler, sized for the model; give any other stream
    // (audio) a fakesink so it can never stall the pipeline with not-linked.
    let pipeline_weak = pipeline.downgrade();
    let scale_weak = scale.downgrade();
    let caps_weak = scale_caps.downgrade();
    let gate_counters = counters.clone();
    let mut gate = RateGate::new(spec.detect.fps);
    let gate_start = Instant::now();
    let gate = Arc::new(Mutex::new(move |ts: Option<gst::ClockTime>| {
        // Streams without timestamps fall back to arrival time.
        let ns = ts.map(|t| t.nseconds()).unwrap_or_else(|| gate_start.elapsed().as_nanos() as u64);
        gate.admit(ns)
    }));
    let cam_for_pads = spec.name.clone();
    // The decoder's frame size, packed as (w << 32 | h): boxes are reported in these pixels,
    // while the appsink only sees the scaled size.
    let src_dims = Arc::new(AtomicU64::new(0));
    let src_dims_w = src_dims.clone();
    decode.connect_pad_added(move |_, pad| {
        let (Some(pipeline), Some(scale), Some(scale_caps)) = (pipeline_weak.upgrade(), scale_weak.upgrade(), caps_weak.upgrade()) else {
            return;
        };
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps.structure(0).is_some_and(|s| s.name().starts_with("video/"));
        let Some(sink_pad) = scale.static_pad("sink") else { return };
        if !is_video || sink_pad.is_linked() {
            if let Ok(fake) = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build()
                && pipeline.add(&fake).is_ok()
            {
                let _ = fake.sync_state_with_parent();
                if let Some(fp) = fake.static_pad("sink") {
                    let _ = pad.link(&fp);
                }
            }
            return;
        }
        let Ok(info) = gst_video::VideoInfo::from_caps(&caps) else {
            tracing::warn!(camera = %cam_for_pads, caps = %caps, "video pad without usable caps");
            return;
        };
        let lb = Letterbox::fit(info.width(), info.height(), model_size);
        src_dims_w.store(((info.width() as u64) << 32) | info.height() as u64, Ordering::Relaxed);
        scale_caps.set_property(
            "caps",
            gst_video::VideoCapsBuilder::new().width(lb.scaled_w as i32).height(lb.scaled_h as i32).build(),
        );
        let counters = gate_counters.clone();
        let gate = gate.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, probe| {
            let Some(buffer) = probe.buffer() else { return gst::PadProbeReturn::Ok };
            counters.decoded.fetch_add(1, Ordering::Relaxed);
            let admit = gate.lock().map(|mut g| g(buffer.pts())).unwrap_or(true);
            if admit {
                gst::PadProbeReturn::Ok
            } else {
                counters.skipped_by_rate.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Drop
            }
        });
        if let Err(e) = pad.link(&sink_pad) {
            tracing::warn!(camera = %cam_for_pads, error = ?e, "could not link the decoded video");
        }
    });

    let sender_slot: SenderSlot = Arc::new(Mutex::new(Some(frames)));
    let slot = sender_slot.clone();
    let wall_anchor = SystemTime::now();
    let mono_anchor = Instant::now();
    let mut seq = 0u64;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                // Monotonic per camera even if the wall clock is stepped.
                let captured_at = wall_anchor + mono_anchor.elapsed();
                let (Some(caps), Some(buffer)) = (sample.caps(), sample.buffer_owned()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
                let Ok(data) = buffer.into_mapped_buffer_readable() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                let dims = src_dims.load(Ordering::Relaxed);
                let (src_w, src_h) = ((dims >> 32) as u32, dims as u32);
                let frame = Frame {
                    camera: index,
                    seq,
                    pts,
                    captured_at,
                    src_width: src_w,
                    src_height: src_h,
                    width: info.width(),
                    height: info.height(),
                    stride: info.stride()[0].max(0) as usize,
                    data,
                };
                seq += 1;
                let guard = slot.lock().map_err(|_| gst::FlowError::Error)?;
                match guard.as_ref() {
                    // The link counts its own drops (latest frame wins).
                    Some(tx) => {
                        if tx.send(frame).is_err() {
                            counters.dropped(DropReason::LinkFull);
                        }
                    }
                    None => return Err(gst::FlowError::Flushing),
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok((pipeline, sender_slot, decoder))
}

fn drive(
    pipeline: &gst::Pipeline,
    spec: &CameraSpec,
    shutdown: &Shutdown,
    decoder: &Arc<Mutex<Option<String>>>,
    on_state: &mut impl FnMut(StateChange),
) -> Outcome {
    let Some(bus) = pipeline.bus() else { return Outcome::Failed("pipeline has no bus".into()) };
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        return Outcome::Failed(format!("{}: could not start: {e}", spec.uri_redacted));
    }
    let mut announced = false;
    loop {
        if shutdown.is_triggered() {
            return Outcome::Stopped;
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => return Outcome::Ended,
            MessageView::Error(err) => {
                let detail = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                let text = format!("{}: {}{}", spec.uri_redacted, err.error(), detail);
                return Outcome::Failed(redact(&text, spec));
            }
            MessageView::Warning(w) => {
                tracing::warn!(camera = %spec.name, warning = %redact(&w.error().to_string(), spec), "source warning");
            }
            MessageView::StateChanged(sc) if !announced => {
                if sc.src().is_some_and(|s| s == pipeline) && sc.current() == gst::State::Playing {
                    announced = true;
                    let decoder = decoder.lock().ok().and_then(|d| d.clone());
                    on_state(StateChange::Streaming { decoder });
                }
            }
            _ => {}
        }
    }
}
