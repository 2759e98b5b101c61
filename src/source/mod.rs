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
//! `uridecodebin → [rate gate] → videoconvert (to I420) → appsink → [reference conversion and
//! resize] → [motion gate]`. The rate gate ([`rate::RateGate`]) sits on the decoder's output, so
//! frames detection does not need cost only their decode. Each admitted frame is converted and
//! scaled to the model's letterbox size exactly as the reference recipe's OpenCV does it
//! ([`crate::resize::resize_i420`]), only at the source pixels the resize reads, so the
//! conversion costs about four pixels per model pixel whatever the camera's size. The optional
//! motion gate ([`motion`]) looks at the scaled frame, shrunk again to a small grey one, and
//! skips still frames.

pub mod backoff;
mod decode;
pub mod geometry;
pub mod motion;
pub mod rate;
pub mod repeat;
pub mod settings;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use crate::link::LinkSender;
use crate::shutdown::Shutdown;
use crate::stats::{CameraCounters, DropReason};
use backoff::{BACKOFF_MIN, Backoff};
use decode::build;
use geometry::{Geometry, Letterbox};
use rate::RateGate;
use repeat::{REPEAT_WINDOW, RepeatLimiter, Verdict};
use settings::{OnError, SourceSpec};

/// The facts about one frame that its events carry: when and where in the stream it was taken,
/// and the source's size.
#[derive(Debug, Clone, Copy)]
pub struct FrameMeta {
    pub captured_at: SystemTime,
    pub capture_clock: &'static str,
    pub pts_ms: Option<u64>,
    pub seq: u64,
    pub width: u32,
    pub height: u32,
}

/// One camera as its source stage sees it: its name (for logs and the pipeline's name), how
/// often it wants frames, and its source settings.
#[derive(Debug, Clone, Copy)]
pub struct Camera<'a> {
    pub name: &'a str,
    /// Frames per second to deliver (`detect.fps`); the rest are skipped at the decoder.
    pub fps: f64,
    pub source: &'a SourceSpec,
    /// The camera's motion-gating switch (`toggles`), flipped over MQTT: while it is off, the
    /// motion gate lets every frame through. `None`: always as `[motion]` says.
    pub motion_switch: Option<&'a Arc<std::sync::atomic::AtomicBool>>,
}

/// One decoded frame, scaled to the model's letterbox size and converted to packed RGB as the
/// reference recipe does it (OpenCV's video reader and `cv2.resize`).
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
    pub data: Vec<u8>,
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
pub fn apply_decoder_preferences<'a>(cameras: impl IntoIterator<Item = Camera<'a>>) -> Result<(), SourceError> {
    init()?;
    let registry = gst::Registry::get();
    for cam in cameras {
        let n = cam.source.decoder.len() as i32;
        for (i, name) in cam.source.decoder.iter().enumerate() {
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
fn redact(text: &str, spec: &Camera<'_>) -> String {
    let text = if spec.source.uri.is_empty() {
        text.to_string()
    } else {
        text.replace(&spec.source.uri, &spec.source.uri_redacted)
    };
    match &spec.source.credentials {
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
    spec: &Camera<'_>,
    geometry: Geometry,
    frames: LinkSender<Frame>,
    counters: Arc<CameraCounters>,
    shutdown: &Shutdown,
    mut on_state: impl FnMut(StateChange),
) -> Outcome {
    let mut backoff = Backoff::new(BACKOFF_MIN, spec.source.reconnect_max, index as u64);
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
            End::Eos(_) if !spec.source.live && spec.source.loop_file => {
                tracing::info!(camera = %spec.name, "end of file; looping");
                // The same file again: it is still the stream it was, so `streaming` is not
                // announced (and republished, retained) once a loop.
                looping = true;
                continue;
            }
            End::Eos(Some((at, declared))) if !spec.source.live && truncated(at, declared) => {
                break Outcome::Truncated(format!(
                    "the file ended at {:.1} s of the {:.1} s its header declares: it is truncated or still being written",
                    at.as_secs_f64(),
                    declared.as_secs_f64()
                ));
            }
            End::Eos(_) if !spec.source.live => break Outcome::Ended,
            End::Failed(r) if spec.source.on_error == OnError::Fail => break Outcome::Failed(r),
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
    spec: &Camera<'_>,
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
        let hint = if spec.source.uri.starts_with("v4l2://") {
            "; check that the device exists and that the lookout user is in the `video` group"
        } else {
            ""
        };
        return (
            End::Failed(redact(&format!("{}: could not start: {why}{hint}", spec.source.uri_redacted), spec)),
            false,
        );
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
        } else if last_progress.elapsed() >= spec.source.stall_timeout {
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
                let reached = (!spec.source.live)
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
                let mut text = format!("{}: {}{}", spec.source.uri_redacted, err.error(), detail);
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
                if spec.source.live && is_read_failure(&error, &debug) {
                    let detail = if debug.is_empty() { String::new() } else { format!(" ({})", debug.trim()) };
                    return (
                        End::Lost(redact(
                            &format!("{}: connection lost: {}{}", spec.source.uri_redacted, error, detail),
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
