//! The GStreamer pipeline of one camera: its source element (a URI, RTSP with its login, a test
//! pattern), the decoder decodebin picks, and the scaler and appsink that deliver frames at the
//! model's size and the camera's rate. Built once per connection by [`super::run_camera`].

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
    let scale = make("videoscale")?;
    let scale_caps = make("capsfilter")?;
    let convert = make("videoconvert")?;
    let is_file = spec.source.uri.starts_with("file:");
    let appsink = gst_app::AppSink::builder()
        .caps(&gst_video::VideoCapsBuilder::new().format(gst_video::VideoFormat::Rgb).build())
        // Files pace themselves like a camera when `realtime`; live sources are never held back.
        .sync(is_file && spec.source.realtime)
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

    // Link the first video pad to the scaler, sized for the model; give any other stream
    // (audio) a fakesink so it can never stall the pipeline with not-linked.
    let pipeline_weak = pipeline.downgrade();
    let scale_weak = scale.downgrade();
    let caps_weak = scale_caps.downgrade();
    let gate_counters = counters.clone();
    let mut gate = RateGate::new(spec.fps);
    let gate_start = Instant::now();
    let gate = Arc::new(Mutex::new(move |ts: Option<gst::ClockTime>| {
        // Streams without timestamps fall back to arrival time.
        let ns = ts.map(|t| t.nseconds()).unwrap_or_else(|| gate_start.elapsed().as_nanos() as u64);
        gate.admit(ns)
    }));
    let cam_for_pads = spec.name.to_string();
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
                let gating = motion_switch.as_ref().is_none_or(|on| on.load(Ordering::Relaxed));
                if let Some(gate) = motion_gate.as_mut().filter(|_| gating) {
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
