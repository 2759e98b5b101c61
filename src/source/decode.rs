//! The GStreamer pipeline of one camera: its source element (a URI, RTSP with its login, a test
//! pattern), the decoder decodebin picks, and the appsink that takes the decoded I420 frames at
//! the camera's rate. Each admitted frame is converted and scaled to the model's letterbox size
//! exactly as the reference recipe's OpenCV does it ([`crate::resize::resize_i420`]),
//! only at the pixels the resize reads. Built once per connection by [`super::run_camera`].

use super::*;

pub(super) type SenderSlot = Arc<Mutex<Option<LinkSender<Frame>>>>;
/// The decoder element decodebin picked, once it has.
pub(super) type DecoderSlot = Arc<Mutex<Option<String>>>;

pub(super) fn build(
    index: usize,
    spec: &Camera<'_>,
    geometry: Geometry,
    frames: &LinkSender<Frame>,
    counters: Arc<CameraCounters>,
    clock: (SystemTime, Instant),
    skew: &Arc<Mutex<Option<f64>>>,
    last_capture: &Arc<Mutex<Option<SystemTime>>>,
) -> Result<(gst::Pipeline, SenderSlot, DecoderSlot), SourceError> {
    init()?;
    let pipeline = gst::Pipeline::with_name(&format!("camera-{}", spec.name));
    // To I420 when the decoder gives another layout (NV12 from hardware decoders, 4:2:2 JPEG);
    // a passthrough for the usual software decoders.
    let convert = make("videoconvert")?;
    let is_file = spec.source.uri.starts_with("file:");
    let appsink = gst_app::AppSink::builder()
        .caps(&gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::I420).build())
        // Files pace themselves like a camera when `realtime`; live sources are never held back.
        .sync(is_file && spec.source.realtime)
        .max_buffers(1)
        .drop(false)
        .build();
    pipeline.add_many([&convert, appsink.upcast_ref()]).map_err(|e| SourceError::Build(e.to_string()))?;
    gst::Element::link_many([&convert, appsink.upcast_ref()]).map_err(|e| SourceError::Build(e.to_string()))?;

    // Note which decoder decodebin picked: operators ask "why is this software-decoded?".
    let decoder: DecoderSlot = Arc::new(Mutex::new(None));
    let decoder_w = decoder.clone();
    let camera_name = spec.name.to_string();
    let decoder_threads = spec.source.decoder_threads;
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

    // Link the first video pad to the converter; give any other stream (audio) a fakesink so
    // it can never stall the pipeline with not-linked.
    let pipeline_weak = pipeline.downgrade();
    let convert_weak = convert.downgrade();
    let gate_counters = counters.clone();
    let mut gate = RateGate::new(spec.fps);
    let gate_start = Instant::now();
    let gate = Arc::new(Mutex::new(move |ts: Option<gst::ClockTime>| {
        // Streams without timestamps fall back to arrival time.
        let ns = ts.map(|t| t.nseconds()).unwrap_or_else(|| gate_start.elapsed().as_nanos() as u64);
        gate.admit(ns)
    }));
    let cam_for_pads = spec.name.to_string();
    let link_decoded = move |pad: &gst::Pad| {
        let (Some(pipeline), Some(convert)) = (pipeline_weak.upgrade(), convert_weak.upgrade()) else {
            return;
        };
        // Decoders expose fixed caps; a static source pad (test://) only its template, which
        // fixates to what it will negotiate.
        let mut caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        if !caps.is_fixed() && !caps.is_empty() && !caps.is_any() {
            caps.fixate();
        }
        let is_video = caps.structure(0).is_some_and(|s| s.name().starts_with("video/"));
        let Some(sink_pad) = convert.static_pad("sink") else { return };
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
    let max_skew = spec.source.max_clock_skew;
    let skew_reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let skew_slot = skew.clone();
    let last_capture = last_capture.clone();
    // Rebuilt with the pipeline: after a reconnect the first frame is looked at afresh.
    let mut motion_gate = spec.source.motion.enabled.then(|| motion::MotionGate::new(spec.source.motion));
    let motion_height = spec.source.motion.frame_height as usize;
    let motion_switch = spec.motion_switch.cloned();
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
                // The reference recipe's conversion and resize, to the model's letterbox size.
                let lb = Letterbox::place(info.width(), info.height(), geometry);
                let (sw, sh) = (lb.scaled_w as usize, lb.scaled_h as usize);
                let Some(i420) = i420_planes(&data, &info) else {
                    // A buffer shorter than its caps say: skipped rather than read out of bounds.
                    counters.dropped(DropReason::InferenceError);
                    return Ok(gst::FlowSuccess::Ok);
                };
                let mut rgb = vec![0u8; sw * sh * 3];
                crate::resize::resize_i420(&i420, sw, sh, &mut rgb);
                drop(data);
                let gating = motion_switch.as_ref().is_none_or(|on| on.load(Ordering::Relaxed));
                if let Some(gate) = motion_gate.as_mut().filter(|_| gating) {
                    let small = motion::downscale_gray(&rgb, sw, sh, sw * 3, motion_height);
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
                let frame = Frame {
                    camera: index,
                    seq,
                    pts,
                    captured_at,
                    clock,
                    src_width: info.width(),
                    src_height: info.height(),
                    width: lb.scaled_w,
                    height: lb.scaled_h,
                    stride: sw * 3,
                    data: rgb,
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

/// The three planes of a mapped I420 buffer, as its video info lays them out; `None` when the
/// buffer is too short for them.
fn i420_planes<'a>(data: &'a [u8], info: &gst_video::VideoInfo) -> Option<crate::resize::I420<'a>> {
    let (w, h) = (info.width() as usize, info.height() as usize);
    let (offsets, strides) = (info.offset(), info.stride());
    let stride = |i: usize| usize::try_from(*strides.get(i)?).ok();
    let (y_stride, uv_stride) = (stride(0)?, stride(1)?);
    let plane = |i: usize, stride: usize, rows: usize| {
        let start = *offsets.get(i)?;
        data.get(start..start.checked_add(stride.checked_mul(rows)?)?)
    };
    let ch = h.div_ceil(2);
    Some(crate::resize::I420 {
        y: plane(0, y_stride, h)?,
        u: plane(1, uv_stride, ch)?,
        v: plane(2, stride(2).filter(|s| *s == uv_stride)?, ch)?,
        y_stride,
        uv_stride,
        width: w,
        height: h,
    })
}

/// Add the camera's source to the pipeline; `link_decoded` receives each decoded pad.
pub(super) fn add_source(
    pipeline: &gst::Pipeline,
    spec: &Camera<'_>,
    link_decoded: impl Fn(&gst::Pad) + Send + Sync + 'static,
) -> Result<(), SourceError> {
    let build_err = |e: &dyn std::fmt::Display| SourceError::Build(e.to_string());
    if let Some(rest) = spec.source.uri.strip_prefix("test://") {
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
        .property("uri", &spec.source.uri)
        .build()
        .map_err(|_| SourceError::MissingElement("uridecodebin"))?;
    let protocols = spec.source.rtsp_transport.protocols();
    let credentials = spec.source.credentials.clone();
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
