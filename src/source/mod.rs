//! Camera sources: one GStreamer pipeline per camera, run by its own thread.
//!
//! ```toml
//! # pipelines/front-door.toml
//! uri = "rtsp://user:secret@camera.local/stream1"   # or file:///…, v4l2:///dev/video0, test://ball, a path
//! realtime = true                                   # files only: pace at the clip's frame rate
//! stall_timeout_seconds = 10                        # no frame for this long: reconnect
//! reconnect_max_seconds = 30                        # backoff cap
//! decoder = ["vah264dec", "avdec_h264"]             # preference, through feature ranks
//! [detect]
//! fps = 5
//! ```
//!
//! [`run_camera`] supervises one camera in its own thread: connecting → streaming →
//! reconnecting (exponential backoff with jitter, see [`backoff`]) → … until shutdown; files end
//! at EOS (or loop), and a camera whose `on_error` is `fail` goes to failed. On a live source,
//! end of stream means the camera went away, and a stall watchdog catches a camera that stops
//! sending without closing the connection (rtspsrc then says nothing for about 15 s).
//!
//! `uridecodebin → [rate gate] → videoscale → videoconvert → appsink [motion gate]`. The rate
//! gate ([`rate::RateGate`]) sits on the decoder's output, so frames detection does not need
//! cost only their decode; scaling to the model's letterbox size happens before colour
//! conversion, which is cheaper (docs/platform-notes.md). The optional motion gate ([`motion`]) looks at
//! the scaled frame, shrunk again to a small grey one, and skips still frames. The appsink
//! hands each frame to the frame link without copying.

pub mod backoff;
pub mod motion;
pub mod rate;
pub mod repeat;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::config::{CameraSpec, OnError};
use crate::detect::letterbox::{Geometry, Letterbox};
use crate::link::LinkSender;
use crate::shutdown::Shutdown;
use crate::stats::{CameraCounters, DropReason};
use backoff::{BACKOFF_MIN, Backoff};
use rate::RateGate;
use repeat::{REPEAT_WINDOW, RepeatLimiter, Verdict};

/// One decoded frame, scaled to the model's letterbox size and converted to packed RGB.
pub struct Frame {
    /// Index of the camera in the spec.
    pub camera: usize,
    /// Position among this camera's delivered frames.
    pub seq: u64,
    /// The stream timestamp.
    pub pts: Option<Duration>,
    /// Wall-clock capture time: the camera's own, from RTCP sender reports, where it sends
    /// them; else when the frame reached the appsink. Monotonic per camera.
    pub captured_at: SystemTime,
    /// Where `captured_at` came from.
    pub clock: CaptureClock,
    /// The source's own size: boxes are reported in these pixels.
    pub src_width: u32,
    pub src_height: u32,
    /// The scaled image held in `data`.
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub data: gst::MappedBuffer<gst::buffer::Readable>,
}

/// The source of a frame's capture time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureClock {
    /// The camera's clock, mapped through RTCP sender reports (NTP).
    Rtcp,
    /// The gateway's clock when the frame arrived.
    Arrival,
}

impl CaptureClock {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureClock::Rtcp => "rtcp",
            CaptureClock::Arrival => "arrival",
        }
    }
}

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECONDS: u64 = 2_208_988_800;

/// A capture time from an NTP reference timestamp, if it is one.
pub fn ntp_to_system_time(ntp_ns: u64) -> Option<SystemTime> {
    ntp_ns
        .checked_sub(NTP_UNIX_OFFSET_SECONDS * 1_000_000_000)
        .map(|ns| std::time::UNIX_EPOCH + Duration::from_nanos(ns))
}

/// How a camera's pipeline ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A file reached its end.
    Ended,
    /// A file ended well before the duration its header declares (a truncated or partly
    /// written file); the text says where, and is the camera's status reason.
    Truncated(String),
    /// The daemon is shutting down.
    Stopped,
    /// The camera failed; the reason is safe to log (credentials redacted).
    Failed(String),
}

/// A state change worth telling operators about.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    Connecting,
    /// Frames are flowing.
    Streaming {
        decoder: Option<String>,
    },
    /// The stream went away; the next attempt is in `retry_in`.
    Reconnecting {
        reason: String,
        retry_in: Duration,
    },
    /// The camera's clock, seen through RTCP, is `skew` seconds ahead of the gateway's
    /// (negative: behind), beyond `max_clock_skew_seconds`.
    ClockSkew {
        skew_seconds: f64,
    },
    Finished(Outcome),
}

/// How one attempt at streaming ended.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// End of stream; for a file, how far it got and how long it says it is, when known.
    Eos(Option<(Duration, Duration)>),
    /// A live source lost its camera: reconnect, whatever `on_error` says.
    Lost(String),
    Stopped,
    Stalled(Duration),
    Failed(String),
}

/// The pattern of a `test://<pattern>` URI, if it is one videotestsrc knows.
pub fn test_pattern(rest: &str) -> Option<&'static str> {
    match rest.trim_end_matches('/') {
        "ball" => Some("ball"),
        "smpte" => Some("smpte"),
        "snow" => Some("snow"),
        "black" => Some("black"),
        _ => None,
    }
}

/// Prefer decoders by raising their feature ranks, first name highest. Ranks are global to
/// the process, so this runs once before any camera starts; a name that isn't installed is
/// reported and skipped.
pub fn apply_decoder_preferences(cameras: &[CameraSpec]) -> Result<(), SourceError> {
    init()?;
    let registry = gst::Registry::get();
    for cam in cameras {
        let n = cam.decoder.len() as i32;
        for (i, name) in cam.decoder.iter().enumerate() {
            match registry.lookup_feature(name) {
                Some(feature) => {
                    feature.set_rank(gst::Rank::PRIMARY + (n - i as i32) * 10 + 100);
                    tracing::info!(camera = %cam.name, decoder = %name, preference = i + 1, "decoder preferred");
                }
                None => {
                    tracing::warn!(camera = %cam.name, decoder = %name, "preferred decoder is not installed; skipped")
                }
            }
        }
    }
    Ok(())
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

/// Whether an installed GStreamer source element handles `scheme://` URIs (as uridecodebin
/// would pick one); `None` when GStreamer can't start here, so nobody can tell.
pub fn supports_uri_scheme(scheme: &str) -> Option<bool> {
    init().ok()?;
    let scheme = scheme.to_ascii_lowercase();
    let factories = gst::ElementFactory::factories_with_type(gst::ElementFactoryType::SRC, gst::Rank::NONE);
    Some(factories.iter().any(|f| {
        f.uri_type() == gst::URIType::Src && f.uri_protocols().iter().any(|p| p.eq_ignore_ascii_case(&scheme))
    }))
}

/// Initialise GStreamer once; safe to call from every camera thread.
pub fn init() -> Result<(), SourceError> {
    gst::init().map_err(|e| SourceError::Init(e.to_string()))
}

fn make(factory: &'static str) -> Result<gst::Element, SourceError> {
    gst::ElementFactory::make(factory).build().map_err(|_| SourceError::MissingElement(factory))
}

/// Replace the URI (which may hold a password) with its redacted form in any message.
/// Also masks a password given apart from the URI, should an element ever echo it.
fn redact(text: &str, spec: &CameraSpec) -> String {
    let text = if spec.uri.is_empty() { text.to_string() } else { text.replace(&spec.uri, &spec.uri_redacted) };
    match &spec.credentials {
        Some(c) => text.replace(&c.password, "***"),
        None => text,
    }
}

/// Supervise one camera until its file ends, it fails for good, or `shutdown` is triggered.
///
/// `frames` is dropped before this returns, which is how the detect stage learns this camera
/// is finished. `on_state` reports every state change.
pub fn run_camera(
    index: usize,
    spec: &CameraSpec,
    geometry: Geometry,
    frames: LinkSender<Frame>,
    counters: Arc<CameraCounters>,
    shutdown: &Shutdown,
    mut on_state: impl FnMut(StateChange),
) -> Outcome {
    let mut backoff = Backoff::new(BACKOFF_MIN, spec.reconnect_max, index as u64);
    // One clock anchor for the camera's life, so capture times stay monotonic across reconnects.
    let clock = (SystemTime::now(), Instant::now());
    let last_capture: Arc<Mutex<Option<SystemTime>>> = Arc::new(Mutex::new(None));
    // Across reconnects, so that a camera that warns on every attempt is still one line a window.
    let mut warnings = RepeatLimiter::new(REPEAT_WINDOW);
    // Set while a file starts over at its end.
    let mut looping = false;
    on_state(StateChange::Connecting);
    let outcome = loop {
        let skew: Arc<Mutex<Option<f64>>> = Arc::new(Mutex::new(None));
        let (end, streamed) = match build(index, spec, geometry, &frames, counters.clone(), clock, &skew, &last_capture)
        {
            Ok((pipeline, slot, decoder)) => {
                let r =
                    drive(&pipeline, spec, shutdown, &decoder, &counters, &skew, &mut warnings, looping, &mut on_state);
                for (text, n) in warnings.take_held() {
                    tracing::warn!(camera = %spec.name, warning = %text, repeated = n, "source warning, repeated {n} more times before the pipeline ended");
                }
                let _ = pipeline.set_state(gst::State::Null);
                if let Ok(mut s) = slot.lock() {
                    s.take();
                }
                r
            }
            Err(e) => (End::Failed(redact(&e.to_string(), spec)), false),
        };
        let reason = match end {
            End::Stopped => break Outcome::Stopped,
            End::Eos(_) if !spec.live && spec.loop_file => {
                tracing::info!(camera = %spec.name, "end of file; looping");
                // The same file again: it is still the stream it was, so `streaming` is not
                // announced (and republished, retained) once a loop.
                looping = true;
                continue;
            }
            End::Eos(Some((at, declared))) if !spec.live && truncated(at, declared) => {
                break Outcome::Truncated(format!(
                    "the file ended at {:.1} s of the {:.1} s its header declares: it is truncated or still being written",
                    at.as_secs_f64(),
                    declared.as_secs_f64()
                ));
            }
            End::Eos(_) if !spec.live => break Outcome::Ended,
            End::Failed(r) if spec.on_error == OnError::Fail => break Outcome::Failed(r),
            End::Eos(_) => "end of stream: the camera closed the connection".to_string(),
            End::Stalled(d) => format!("no frame for {:.1} s: stalled", d.as_secs_f64()),
            End::Lost(r) => r,
            End::Failed(r) => r,
        };
        looping = false;
        if streamed {
            backoff.reset();
        }
        let retry_in = backoff.next_delay();
        on_state(StateChange::Reconnecting { reason, retry_in });
        // Waiting costs nothing: the thread sleeps, waking only to notice shutdown.
        let until = Instant::now() + retry_in;
        while Instant::now() < until && !shutdown.is_triggered() {
            std::thread::park_timeout(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
        }
        if shutdown.is_triggered() {
            break Outcome::Stopped;
        }
    };
    drop(frames);
    on_state(StateChange::Finished(outcome.clone()));
    outcome
}

type SenderSlot = Arc<Mutex<Option<LinkSender<Frame>>>>;
/// The decoder element decodebin picked, once it has.
type DecoderSlot = Arc<Mutex<Option<String>>>;

fn build(
    index: usize,
    spec: &CameraSpec,
    geometry: Geometry,
    frames: &LinkSender<Frame>,
    counters: Arc<CameraCounters>,
    clock: (SystemTime, Instant),
    skew: &Arc<Mutex<Option<f64>>>,
    last_capture: &Arc<Mutex<Option<SystemTime>>>,
) -> Result<(gst::Pipeline, SenderSlot, DecoderSlot), SourceError> {
    init()?;
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", spec.name));
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
        .add_many([&scale, &scale_caps, &convert, appsink.upcast_ref()])
        .map_err(|e| SourceError::Build(e.to_string()))?;
    gst::Element::link_many([&scale, &scale_caps, &convert, appsink.upcast_ref()])
        .map_err(|e| SourceError::Build(e.to_string()))?;

    // Note which decoder decodebin picked: operators ask "why is this software-decoded?".
    let decoder: DecoderSlot = Arc::new(Mutex::new(None));
    let decoder_w = decoder.clone();
    let camera_name = spec.name.clone();
    let decoder_threads = spec.decoder_threads;
    pipeline.connect_deep_element_added(move |_, _, element| {
        if let Some(factory) = element.factory()
            && factory.klass().contains("Decoder")
            && factory.klass().contains("Video")
        {
            let name = factory.name().to_string();
            // One thread per stream beats libav's default of two when there are many streams.
            if element.has_property("max-threads") {
                element.set_property("max-threads", decoder_threads as i32);
            }
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
    let link_decoded = move |pad: &gst::Pad| {
        let (Some(pipeline), Some(scale), Some(scale_caps)) =
            (pipeline_weak.upgrade(), scale_weak.upgrade(), caps_weak.upgrade())
        else {
            return;
        };
        // Decoders expose fixed caps; a static source pad (test://) only its template, which
        // fixates to what it will negotiate.
        let mut caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        if !caps.is_fixed() && !caps.is_empty() && !caps.is_any() {
            caps.fixate();
        }
        let is_video = caps.structure(0).is_some_and(|s| s.name().starts_with("video/"));
        let Some(sink_pad) = scale.static_pad("sink") else { return };
        if !is_video || sink_pad.is_linked() {
            if let Ok(fake) =
                gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build()
                && pipeline.add(&fake).is_ok()
            {
                let _ = fake.sync_state_with_parent();
                if let Some(fp) = fake.static_pad("sink") {
                    let _ = pad.link(&fp);
                }
            }
            return;
        }
        let info = if caps.is_fixed() { gst_video::VideoInfo::from_caps(&caps).ok() } else { None };
        let Some(info) = info else {
            tracing::warn!(camera = %cam_for_pads, caps = %caps, "video pad without usable caps");
            return;
        };
        let lb = Letterbox::place(info.width(), info.height(), geometry);
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
    };
    add_source(&pipeline, spec, link_decoded)?;

    let sender_slot: SenderSlot = Arc::new(Mutex::new(Some(frames.clone())));
    let slot = sender_slot.clone();
    let (wall_anchor, mono_anchor) = clock;
    let max_skew = spec.max_clock_skew;
    let skew_reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let skew_slot = skew.clone();
    let last_capture = last_capture.clone();
    // Rebuilt with the pipeline: after a reconnect the first frame is looked at afresh.
    let mut motion_gate = spec.motion.enabled.then(|| motion::MotionGate::new(spec.motion));
    let motion_height = spec.motion.frame_height as usize;
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                // Arrival time, monotonic per camera even if the wall clock is stepped.
                let arrival = wall_anchor + mono_anchor.elapsed();
                let (Some(caps), Some(buffer)) = (sample.caps(), sample.buffer_owned()) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
                let ntp = buffer
                    .iter_meta::<gst::ReferenceTimestampMeta>()
                    .find(|m| m.reference().structure(0).is_some_and(|s| s.name() == "timestamp/x-ntp"))
                    .and_then(|m| ntp_to_system_time(m.timestamp().nseconds()));
                let (mut captured_at, clock) = match ntp {
                    Some(t) => {
                        let skew = match t.duration_since(arrival) {
                            Ok(ahead) => ahead.as_secs_f64(),
                            Err(behind) => -behind.duration().as_secs_f64(),
                        };
                        if skew.abs() > max_skew.as_secs_f64()
                            && !skew_reported.swap(true, Ordering::Relaxed)
                            && let Ok(mut s) = skew_slot.lock()
                        {
                            *s = Some(skew);
                        }
                        (t, CaptureClock::Rtcp)
                    }
                    None => (arrival, CaptureClock::Arrival),
                };
                // Switching from arrival to RTCP time can step back by the network latency;
                // capture times stay strictly increasing per camera regardless.
                if let Ok(mut last) = last_capture.lock() {
                    if let Some(prev) = *last
                        && captured_at <= prev
                    {
                        captured_at = prev + Duration::from_micros(1);
                    }
                    *last = Some(captured_at);
                }
                let Ok(data) = buffer.into_mapped_buffer_readable() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                if let Some(gate) = motion_gate.as_mut() {
                    let stride = info.stride()[0].max(0) as usize;
                    let small = motion::downscale_gray(
                        &data,
                        info.width() as usize,
                        info.height() as usize,
                        stride,
                        motion_height,
                    );
                    // Stream time, so a file decoded faster than real time idles as a camera would.
                    let t = pts.unwrap_or_else(|| mono_anchor.elapsed()).as_secs_f64();
                    let tracking = counters.tracking.load(Ordering::Relaxed);
                    // A frame that can't be measured is detected: better a wasted inference than a missed object.
                    if let Some(small) = small
                        && !gate.decide(t, &small, tracking).detect()
                    {
                        counters.skipped_by_motion.fetch_add(1, Ordering::Relaxed);
                        return Ok(gst::FlowSuccess::Ok);
                    }
                }
                // The delivered count doubles as the sequence number: it survives reconnects.
                let seq = counters.delivered.fetch_add(1, Ordering::Relaxed);
                let dims = src_dims.load(Ordering::Relaxed);
                let (src_w, src_h) = ((dims >> 32) as u32, dims as u32);
                let frame = Frame {
                    camera: index,
                    seq,
                    pts,
                    captured_at,
                    clock,
                    src_width: src_w,
                    src_height: src_h,
                    width: info.width(),
                    height: info.height(),
                    stride: info.stride()[0].max(0) as usize,
                    data,
                };
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

/// Add the camera's source to the pipeline; `link_decoded` receives each decoded pad.
fn add_source(
    pipeline: &gst::Pipeline,
    spec: &CameraSpec,
    link_decoded: impl Fn(&gst::Pad) + Send + Sync + 'static,
) -> Result<(), SourceError> {
    let build_err = |e: &dyn std::fmt::Display| SourceError::Build(e.to_string());
    if let Some(rest) = spec.uri.strip_prefix("test://") {
        // A camera without a camera: videotestsrc, live, 640x480 at 25 fps.
        let pattern = test_pattern(rest).unwrap_or("ball");
        let src = gst::ElementFactory::make("videotestsrc")
            .property("is-live", true)
            .property_from_str("pattern", pattern)
            .build()
            .map_err(|_| SourceError::MissingElement("videotestsrc"))?;
        let caps = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I420)
                    .width(640)
                    .height(480)
                    .framerate(gst::Fraction::new(25, 1))
                    .build(),
            )
            .build()
            .map_err(|_| SourceError::MissingElement("capsfilter"))?;
        pipeline.add_many([&src, &caps]).map_err(|e| build_err(&e))?;
        src.link(&caps).map_err(|e| build_err(&e))?;
        let pad = caps.static_pad("src").ok_or_else(|| SourceError::Build("capsfilter has no src pad".into()))?;
        link_decoded(&pad);
        return Ok(());
    }
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", &spec.uri)
        .build()
        .map_err(|_| SourceError::MissingElement("uridecodebin"))?;
    let protocols = spec.rtsp_transport.protocols();
    let credentials = spec.credentials.clone();
    decode.connect("source-setup", false, move |args| {
        let src = match args.get(1).map(|v| v.get::<gst::Element>()) {
            Some(Ok(src)) => src,
            _ => return None,
        };
        // rtspsrc and souphttpsrc both take the login as user-id / user-pw.
        if let Some(c) = &credentials
            && src.has_property("user-id")
            && src.has_property("user-pw")
        {
            src.set_property("user-id", &c.username);
            src.set_property("user-pw", &c.password);
        }
        if src.has_property("protocols") {
            src.set_property_from_str("protocols", protocols);
            // rtspsrc buffers 2 s by default; events should not arrive that late.
            if src.has_property("latency") {
                src.set_property("latency", 200u32);
            }
            // Stamp frames with the camera's NTP time once RTCP sender reports map it.
            if src.has_property("add-reference-timestamp-meta") {
                src.set_property("add-reference-timestamp-meta", true);
            }
        }
        None
    });
    decode.connect_pad_added(move |_, pad| link_decoded(pad));
    pipeline.add(&decode).map_err(|e| build_err(&e))?;
    Ok(())
}

/// Whether a file that ended at `at` stopped well short of the `declared` duration: more than
/// a second and more than a tenth of it (a container's declared length and its last frame's
/// time differ by a frame or two in a whole file).
pub fn truncated(at: Duration, declared: Duration) -> bool {
    let short = declared.saturating_sub(at);
    short > Duration::from_secs(1) && short.as_secs_f64() > 0.1 * declared.as_secs_f64()
}

/// Whether a source warning means the source can no longer read: a resource read error,
/// unless the element says it is retrying by itself (rtspsrc's fallback from UDP to TCP).
fn is_read_failure(error: &gst::glib::Error, debug: &str) -> bool {
    matches!(error.kind::<gst::ResourceError>(), Some(gst::ResourceError::Read | gst::ResourceError::Close))
        && !debug.contains("Retrying")
}

/// Play the pipeline until it ends. Returns how it ended, and whether any frame flowed.
fn drive(
    pipeline: &gst::Pipeline,
    spec: &CameraSpec,
    shutdown: &Shutdown,
    decoder: &Arc<Mutex<Option<String>>>,
    counters: &CameraCounters,
    skew: &Arc<Mutex<Option<f64>>>,
    warnings: &mut RepeatLimiter,
    looping: bool,
    on_state: &mut impl FnMut(StateChange),
) -> (End, bool) {
    let Some(bus) = pipeline.bus() else { return (End::Failed("pipeline has no bus".into()), false) };
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The element that refused posted the real reason ("Cannot identify device
        // '/dev/video9'") on the bus; "failed to change its state" alone helps no one.
        let why = bus
            .iter_filtered(&[gst::MessageType::Error])
            .find_map(|m| match m.view() {
                gst::MessageView::Error(err) => Some(err.error().to_string().trim_end_matches('.').to_string()),
                _ => None,
            })
            .unwrap_or_else(|| e.to_string());
        let hint = if spec.uri.starts_with("v4l2://") {
            "; check that the device exists and that the lookout user is in the `video` group"
        } else {
            ""
        };
        return (End::Failed(redact(&format!("{}: could not start: {why}{hint}", spec.uri_redacted), spec)), false);
    }
    let mut streamed = false;
    let mut last_count = counters.decoded.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    loop {
        if shutdown.is_triggered() {
            return (End::Stopped, streamed);
        }
        // The watchdog: decoded frames are the heartbeat, whatever the bus says.
        let count = counters.decoded.load(Ordering::Relaxed);
        if count != last_count {
            last_count = count;
            last_progress = Instant::now();
            if !streamed {
                streamed = true;
                if !looping {
                    let decoder = decoder.lock().ok().and_then(|d| d.clone());
                    on_state(StateChange::Streaming { decoder });
                }
            }
        } else if last_progress.elapsed() >= spec.stall_timeout {
            return (End::Stalled(last_progress.elapsed()), streamed);
        }
        if let Some(skew_seconds) = skew.lock().ok().and_then(|mut s| s.take()) {
            on_state(StateChange::ClockSkew { skew_seconds });
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
        use gst::MessageView;
        match msg.view() {
            MessageView::Eos(_) => {
                // How far a file got against its declared length: a file cut short ends as
                // cleanly as a whole one, and only this tells them apart.
                let reached = (!spec.live)
                    .then(|| {
                        pipeline.query_position::<gst::ClockTime>().zip(pipeline.query_duration::<gst::ClockTime>())
                    })
                    .flatten()
                    .map(|(at, declared)| {
                        (Duration::from_nanos(at.nseconds()), Duration::from_nanos(declared.nseconds()))
                    });
                return (End::Eos(reached), streamed);
            }
            MessageView::Error(err) => {
                let detail = err.debug().map(|d| format!(" ({d})")).unwrap_or_default();
                let mut text = format!("{}: {}{}", spec.uri_redacted, err.error(), detail);
                if matches!(err.error().kind::<gst::ResourceError>(), Some(gst::ResourceError::NotAuthorized)) {
                    text.push_str("; the camera refused the login: check username and password_env / password_file (or the uri's user:password)");
                }
                return (End::Failed(redact(&text, spec)), streamed);
            }
            MessageView::Warning(w) => {
                let error = w.error();
                let debug = w.debug().map(|d| d.to_string()).unwrap_or_default();
                // rtspsrc posts a read failure as a warning, thousands of times a second, and
                // stays PLAYING while nothing arrives: the camera is gone. Reconnect now, not at
                // the stall timeout. Its UDP timeout is also a read warning, but it says it is
                // retrying over TCP itself: that one is left to it.
                if spec.live && is_read_failure(&error, &debug) {
                    let detail = if debug.is_empty() { String::new() } else { format!(" ({})", debug.trim()) };
                    return (
                        End::Lost(redact(
                            &format!("{}: connection lost: {}{}", spec.uri_redacted, error, detail),
                            spec,
                        )),
                        streamed,
                    );
                }
                let text = redact(&error.to_string(), spec);
                match warnings.judge(&text, Instant::now()) {
                    Verdict::Log { held_back: 0 } => {
                        tracing::warn!(camera = %spec.name, warning = %text, "source warning")
                    }
                    Verdict::Log { held_back } => {
                        tracing::warn!(camera = %spec.name, warning = %text, repeated = held_back, "source warning, repeated {held_back} more times in the last {} s", REPEAT_WINDOW.as_secs())
                    }
                    Verdict::Hold => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod end_tests {
    use super::*;

    #[test]
    fn a_file_is_truncated_only_when_it_stops_well_short_of_its_declared_length() {
        let s = Duration::from_secs_f64;
        assert!(truncated(s(3.04), s(10.0)), "76 of 250 frames at 25 fps");
        assert!(!truncated(s(9.96), s(10.0)), "the last frame starts a frame before the end");
        assert!(!truncated(s(0.5), s(1.2)), "short clips are judged by the second too");
        assert!(!truncated(s(95.0), s(100.0)), "a tenth of the length");
    }
}
