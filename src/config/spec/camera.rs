//! A camera file: its source keys, `[detect]`, `[motion]` and links, checked and built into a
//! [`CameraSpec`]. The object tables go through [`super::objects`].

use super::*;

pub(super) fn motion_threshold_ok(t: &u8) -> bool {
    (1..=254).contains(t)
}
pub(super) fn motion_min_area_ok(a: &f32) -> bool {
    a.is_finite() && *a > 0.0 && *a <= 1.0
}
pub(super) fn motion_idle_ok(s: &f64) -> bool {
    s.is_finite() && *s > 0.0 && *s <= 86_400.0
}
pub(super) fn motion_height_ok(h: &u32) -> bool {
    (8..=720).contains(h)
}

/// Only the motion values that pass validation.
pub(super) fn valid_motion(m: &RawMotion) -> RawMotion {
    RawMotion {
        enabled: m.enabled,
        threshold: m.threshold.filter(motion_threshold_ok),
        min_area: m.min_area.filter(motion_min_area_ok),
        max_idle_detect_seconds: m.max_idle_detect_seconds.filter(motion_idle_ok),
        frame_height: m.frame_height.filter(motion_height_ok),
    }
}

/// Report motion keys that are set and wrong; `prefix` is "motion." for the key path.
pub(super) fn check_motion(e: &mut Errors, prefix: &str, m: &RawMotion) {
    if let Some(t) = m.threshold
        && !motion_threshold_ok(&t)
    {
        e.push(&format!("{prefix}threshold"), format!("{t} must be between 1 and 254 (a grey-level difference)"));
    }
    if let Some(a) = m.min_area
        && !motion_min_area_ok(&a)
    {
        e.push(
            &format!("{prefix}min_area"),
            format!("{a} must be a fraction of the frame above 0 and at most 1, e.g. 0.002"),
        );
    }
    if let Some(s) = m.max_idle_detect_seconds
        && !motion_idle_ok(&s)
    {
        e.push(&format!("{prefix}max_idle_detect_seconds"), format!("{s} must be above 0 and at most 86400"));
    }
    if let Some(h) = m.frame_height
        && !motion_height_ok(&h)
    {
        e.push(&format!("{prefix}frame_height"), format!("{h} must be between 8 and 720 pixels"));
    }
}

pub(in crate::config) fn build_camera(
    dir: &Path,
    file: &Path,
    file_label: &str,
    name: &str,
    mut raw: RawCamera,
    detect_defaults: &RawDetect,
    track_defaults: &RawTrack,
    defaults: &CameraDefaults,
    gateway_model: &(PathBuf, LabelTable),
    errors: &mut Vec<ConfigError>,
) -> CameraSpec {
    let mut e = Errors { file: file_label, list: errors };
    if !valid_name(name) {
        e.push("(file name)", format!("camera name `{name}` may only hold letters, digits, '-', '_' and '.', since it is part of MQTT topics; rename the file"));
    }
    let uri = resolve_uri(dir, &raw.uri, &mut e);
    let detect = raw.detect.or(detect_defaults);
    // Labels, filters and zones are checked against the model this camera runs.
    let (model, model_labels) = match detect.model.as_deref() {
        Some(v) => model_and_labels(dir, v, "detect.model", &mut e),
        None => gateway_model.clone(),
    };
    let model_labels = &model_labels;
    let fps = detect.fps.unwrap_or(DEFAULT_DETECT_FPS);
    if !(fps > 0.0 && fps <= 120.0) {
        e.push("detect.fps", format!("{fps} must be above 0 and at most 120"));
    }
    let workers = detect.workers.unwrap_or(DEFAULT_DETECT_WORKERS);
    if workers == 0 {
        e.push("detect.workers", "0 must be at least 1");
    }
    let min_score = detect.min_score.unwrap_or(DEFAULT_MIN_SCORE);
    if !(0.0..=1.0).contains(&min_score) {
        e.push("detect.min_score", format!("{min_score} must be between 0 and 1"));
    }
    let label_names = detect.labels.clone();
    let labels = detect.labels.map(|names| {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let idx = model_labels.index_of(l);
                if idx.is_none() {
                    e.push(&format!("detect.labels[{i}]"), not_a_label(l, model_labels));
                }
                idx
            })
            .collect()
    });
    let scheme = uri.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
    let live = LIVE_SCHEMES.contains(&scheme.as_str());
    let positive = |e: &mut Errors, key: &str, v: f64| {
        if !(v > 0.0 && v <= 86_400.0) {
            e.push(key, format!("{v} must be above 0 and at most 86400"));
        }
        Duration::from_secs_f64(v.clamp(0.001, 86_400.0))
    };
    let stall_timeout =
        positive(&mut e, "stall_timeout_seconds", raw.stall_timeout_seconds.unwrap_or(DEFAULT_STALL_TIMEOUT_SECONDS));
    let reconnect_max =
        positive(&mut e, "reconnect_max_seconds", raw.reconnect_max_seconds.unwrap_or(DEFAULT_RECONNECT_MAX_SECONDS));
    let on_error = match raw.on_error.as_deref() {
        None => {
            if live {
                OnError::Reconnect
            } else {
                OnError::Fail
            }
        }
        Some("reconnect") => OnError::Reconnect,
        Some("fail") => OnError::Fail,
        Some(other) => {
            e.push("on_error", format!("`{other}` must be \"reconnect\" or \"fail\""));
            OnError::Fail
        }
    };
    let rtsp_transport = match raw.rtsp_transport.as_deref() {
        None => DEFAULT_RTSP_TRANSPORT,
        Some("auto") => RtspTransport::Auto,
        Some("tcp") => RtspTransport::Tcp,
        Some("udp") => RtspTransport::Udp,
        Some(other) => {
            e.push("rtsp_transport", format!("`{other}` must be \"tcp\", \"udp\" or \"auto\""));
            RtspTransport::Auto
        }
    };
    let decoder_threads = raw.decoder_threads.unwrap_or(DEFAULT_DECODER_THREADS);
    if decoder_threads == 0 || decoder_threads > 64 {
        e.push("decoder_threads", "must be between 1 and 64");
    }
    let login = (raw.username.take(), raw.password_env.take(), raw.password_file.take());
    let credentials = build_credentials(login, &uri, &scheme, &mut e);
    let parts = ObjectParts {
        track: std::mem::take(&mut raw.track).or(track_defaults),
        filters: std::mem::take(&mut raw.filters),
        masks: std::mem::take(&mut raw.masks),
        zones: std::mem::take(&mut raw.zones),
        lines: std::mem::take(&mut raw.lines),
        stationary: std::mem::take(&mut raw.stationary),
        events: std::mem::take(&mut raw.events),
        snapshots: std::mem::take(&mut raw.snapshots),
    };
    let objects = build_objects(parts, min_score, label_names, model_labels, &mut e);
    let decoder = raw.decoder.unwrap_or_default();
    for (i, d) in decoder.iter().enumerate() {
        if d.is_empty() || !d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')) {
            e.push(&format!("decoder[{i}]"), format!("`{d}` is not a GStreamer element name"));
        }
    }
    let max_clock_skew = positive(
        &mut e,
        "max_clock_skew_seconds",
        raw.max_clock_skew_seconds.unwrap_or(DEFAULT_MAX_CLOCK_SKEW_SECONDS),
    );
    let loop_file = raw.loop_file.unwrap_or(false);
    if loop_file && live {
        e.push("loop", "only applies to file sources");
    }
    let own_links = std::mem::take(&mut raw.links);
    let inherited = |own: &RawLink, global: &RawLink| {
        (own.when_full.is_none() && global.when_full.is_some()).then_some("lookout.toml [links]")
    };
    let links = CameraLinks {
        frames: build_link(
            &mut e,
            "links.frames",
            LinkKind::Frames,
            own_links.frames.clone().or(&defaults.links.frames),
            live,
            inherited(&own_links.frames, &defaults.links.frames),
        ),
        detections: build_link(
            &mut e,
            "links.detections",
            LinkKind::Detections,
            own_links.detections.clone().or(&defaults.links.detections),
            live,
            inherited(&own_links.detections, &defaults.links.detections),
        ),
    };
    let own_motion = std::mem::take(&mut raw.motion);
    check_motion(&mut e, "motion.", &own_motion);
    let m = valid_motion(&own_motion.or(&defaults.motion));
    let d = MotionConfig::default();
    let motion = MotionConfig {
        enabled: m.enabled.unwrap_or(d.enabled),
        threshold: m.threshold.unwrap_or(d.threshold),
        min_area: m.min_area.unwrap_or(d.min_area),
        max_idle_detect_seconds: m.max_idle_detect_seconds.unwrap_or(d.max_idle_detect_seconds),
        frame_height: m.frame_height.unwrap_or(d.frame_height),
    };
    CameraSpec {
        name: name.to_string(),
        file: file.to_path_buf(),
        source: SourceSpec {
            uri_redacted: redact_uri(&uri),
            uri,
            realtime: raw.realtime.unwrap_or(true),
            live,
            loop_file,
            stall_timeout,
            reconnect_max,
            on_error,
            decoder,
            decoder_threads,
            rtsp_transport,
            max_clock_skew,
            credentials,
            motion,
        },
        detect: DetectSpec { model, fps, labels, min_score, workers: workers.max(1) },
        objects,
        links,
    }
}

/// A URI as written, or a plain path made into a file:// URI. Files must exist: a typo in a
/// path is better caught by `lookout check` than by a camera that fails at 3 a.m.
pub(super) fn resolve_uri(dir: &Path, uri: &str, e: &mut Errors) -> String {
    use gstreamer::glib;
    if uri.trim().is_empty() {
        e.push("uri", "must not be empty; use file:///path, rtsp://host/path or a path");
        return String::new();
    }
    let (is_file, path, uri) = match uri.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("file") => match glib::filename_from_uri(uri) {
            Ok((p, _)) => (true, p, uri.to_string()),
            Err(err) => {
                e.push("uri", format!("`{uri}` is not a valid file URI: {err}"));
                return uri.to_string();
            }
        },
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("test") => {
            if crate::source::test_pattern(rest).is_none() {
                e.push(
                    "uri",
                    format!(
                        "`{uri}`: unknown test pattern; use test://ball, test://smpte, test://snow or test://black"
                    ),
                );
            }
            (false, PathBuf::new(), uri.to_string())
        }
        Some((scheme, rest)) => {
            if !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) {
                e.push("uri", format!("`{}` has an invalid scheme", redact_uri(uri)));
            } else if crate::source::supports_uri_scheme(scheme) == Some(false) {
                e.push(
                    "uri",
                    format!(
                        "`{scheme}://` is not supported: no installed GStreamer source handles it; use file://, rtsp://, http(s):// (MJPEG), v4l2:// or test://, or install the GStreamer plugin for {scheme}"
                    ),
                );
            } else if matches!(scheme.to_ascii_lowercase().as_str(), "rtsp" | "rtsps" | "rtspt" | "http" | "https")
                && rest
                    .split('/')
                    .next()
                    .and_then(|auth| auth.rsplit('@').next())
                    .is_none_or(|host| host.is_empty() || host.starts_with(':'))
            {
                e.push("uri", format!("`{}` has no host; write {scheme}://host[:port]/path", redact_uri(uri)));
            }
            (false, PathBuf::new(), uri.to_string())
        }
        None => {
            let p = resolve(dir, uri);
            match glib::filename_to_uri(&p, None) {
                Ok(u) => (true, p, u.to_string()),
                Err(err) => {
                    e.push("uri", format!("path `{uri}` can't be made a URI: {err}"));
                    return uri.to_string();
                }
            }
        }
    };
    if is_file && !path.is_file() {
        e.push(
            "uri",
            format!(
                "{} does not exist or is not a file; fix the path (scripts/setup places the demo clip in media/)",
                path.display()
            ),
        );
    }
    uri
}
