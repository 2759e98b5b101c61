//! The JSON API under `/api/` (documented in `docs/api/openapi.yaml`). Camera names in paths
//! are looked up among the configured cameras; only the file a camera was loaded from is ever
//! read or written, so a name can't reach another path.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{self, Refused};
use super::edit::{self, Problem, Shapes};
use super::{Console, Shared, picture};
use crate::config::spec::valid_name;
use crate::config::{CameraSpec, PIPELINES_DIR, replace};
use crate::metrics::CameraEntry;

pub(super) fn routes() -> Router<Arc<Console>> {
    Router::new()
        .route("/api/cameras", get(cameras))
        .route("/api/cameras/stream", get(stream))
        .route("/api/cameras/{name}", get(camera))
        .route("/api/cameras/{name}/frame.jpg", get(frame))
        .route("/api/cameras/{name}/config", get(config).put(put_config))
        .route("/api/cameras/{name}/shapes", post(shapes))
        .route("/api/cameras/{name}/snapshots/{object_id}", get(snapshot))
        .route("/api/check", post(check))
        .route("/api/events", get(events))
}

/// An API error: its status and a message that says what to do.
struct ApiError(StatusCode, Value);

impl ApiError {
    fn new(code: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(code, json!({ "error": message.into() }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, axum::Json(self.1)).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            // A Bearer challenge, not Basic: a Basic one makes browsers pop up a login dialog over
            // the editor's own refusal. Basic credentials sent up front are still accepted.
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"lookout\""));
        }
        r
    }
}

type ApiResult = Result<Response, ApiError>;

/// A configured camera: running (with its spec), or one whose file has errors.
struct Known {
    name: String,
    spec: Option<CameraSpec>,
    file: std::path::PathBuf,
    entry: Option<CameraEntry>,
}

fn known(c: &Console, name: &str) -> Result<Known, ApiError> {
    let spec = c.spec();
    let unknown = || {
        let names: Vec<&str> = spec.cameras.iter().map(|c| c.name.as_str()).collect();
        ApiError::new(StatusCode::NOT_FOUND, format!("no camera `{name}`; the cameras are: {}", names.join(", ")))
    };
    if !valid_name(name) {
        return Err(unknown());
    }
    let entry = c.metrics.cameras().snapshot().into_iter().find(|e| e.name == name);
    if let Some(cam) = spec.cameras.iter().find(|c| c.name == name) {
        return Ok(Known { name: name.to_string(), file: cam.file.clone(), spec: Some(cam.clone()), entry });
    }
    if spec.broken.iter().any(|b| b.name == name) {
        let file = spec.config_dir.join(PIPELINES_DIR).join(format!("{name}.toml"));
        return Ok(Known { name: name.to_string(), spec: None, file, entry });
    }
    Err(unknown())
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One camera as the overview shows it.
fn summary(c: &Console, e: &CameraEntry) -> Value {
    let books = e.counters.snapshot();
    let rates = c.rates(&e.name);
    json!({
        "name": e.name,
        "state": e.state,
        "reason": e.reason,
        "decoder": e.decoder,
        "model": books.model,
        "provider": books.provider,
        "decoded_fps": (rates.decoded_fps * 10.0).round() / 10.0,
        "inferred_fps": (rates.inferred_fps * 10.0).round() / 10.0,
        "books": books,
        "unaccounted": books.unaccounted(),
        "last_event": e.counters.view.last_event().map(rfc3339),
        "tracking": e.counters.tracking.load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn all(c: &Console) -> Value {
    let cams: Vec<Value> = c.metrics.cameras().snapshot().iter().map(|e| summary(c, e)).collect();
    json!({
        "gateway_id": c.spec().gateway_id,
        "provider": c.metrics.provider(),
        "uptime_seconds": c.metrics.uptime().as_secs(),
        "allow_config_writes": c.settings.allow_config_writes && c.settings.auth.is_some(),
        "cameras": cams,
    })
}

async fn cameras(State(c): Shared) -> Response {
    axum::Json(all(&c)).into_response()
}

/// Server-sent events: the overview's data once a second, until the client leaves or the
/// server stops.
async fn stream(State(c): Shared) -> Response {
    let s = futures_util::stream::unfold((c, true), |(c, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if c.stop.is_triggered() {
            return None;
        }
        let event = Event::default().event("cameras").data(all(&c).to_string());
        Some((Ok::<_, Infallible>(event), (c, false)))
    });
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}

fn directions(d: crate::rules::Directions) -> &'static str {
    match d {
        crate::rules::Directions::LeftToRight => "left_to_right",
        crate::rules::Directions::RightToLeft => "right_to_left",
        crate::rules::Directions::Both => "both",
    }
}

fn point(p: &crate::rules::Point) -> [f32; 2] {
    [p.x, p.y]
}

/// One camera: its summary, its rules as drawn (normalised), and the latest counts.
async fn camera(State(c): Shared, Path(name): Path<String>) -> ApiResult {
    let k = known(&c, &name)?;
    let mut v = k.entry.as_ref().map(|e| summary(&c, e)).unwrap_or_else(|| json!({ "name": k.name }));
    if let Some(cam) = &k.spec {
        let r = &cam.objects.rules;
        v["uri"] = json!(cam.source.uri_redacted);
        v["detect_fps"] = json!(cam.detect.fps);
        v["zones"] = r
            .zones
            .iter()
            .map(|z| json!({ "name": z.name, "polygon": z.polygon.iter().map(point).collect::<Vec<_>>(), "labels": z.labels }))
            .collect();
        v["lines"] = r
            .lines
            .iter()
            .map(|l| json!({ "name": l.name, "points": l.points.iter().map(point).collect::<Vec<_>>(), "direction": directions(l.direction), "labels": l.labels }))
            .collect();
        v["masks"] = r.filters.masks.iter().map(|m| m.iter().map(point).collect::<Vec<_>>()).collect();
        v["labels"] = json!(cam.objects.labels.names());
    }
    let latest = k.entry.as_ref().and_then(|e| e.counters.view.latest());
    if let Some(f) = &latest {
        v["occupancy"] =
            f.occupancy.iter().map(|((zone, label), n)| json!({ "zone": zone, "label": label, "count": n })).collect();
        v["line_counts"] = f
            .counts
            .iter()
            .map(|((line, label), n)| json!({ "line": line, "label": label, "left_to_right": n.left_to_right, "right_to_left": n.right_to_left }))
            .collect();
        v["objects"] = f
            .objects
            .iter()
            .map(|o| json!({ "id": o.id, "label": o.label, "score": o.score, "bbox": o.bbox }))
            .collect();
        v["frame_at"] = json!(rfc3339(f.captured_at));
    }
    Ok(axum::Json(v).into_response())
}

#[derive(Deserialize)]
struct FrameQuery {
    #[serde(default)]
    annotate: Option<String>,
}

/// How long a request waits for the first frame of a camera nobody was watching.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(4);

/// The latest frame, as JPEG: asking for it is what keeps frames coming (see `crate::view`).
async fn frame(State(c): Shared, Path(name): Path<String>, Query(q): Query<FrameQuery>) -> ApiResult {
    let k = known(&c, &name)?;
    let (Some(entry), Some(spec)) = (k.entry, k.spec) else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("camera {name} is not running")));
    };
    let tap = &entry.counters.view;
    let was_watched = tap.wanted();
    tap.watch();
    let asked = SystemTime::now();
    let start = Instant::now();
    // A camera nobody watched has no fresh frame: wait for the next one it detects on.
    let mut latest = tap.latest();
    while !was_watched
        && latest.as_ref().is_none_or(|f| f.captured_at < asked - Duration::from_secs(2))
        && start.elapsed() < FIRST_FRAME_WAIT
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        latest = tap.latest();
    }
    let Some(f) = latest else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no frame from {name} yet (state {}); try again in a moment", entry.state),
        ));
    };
    let annotated = q.annotate.as_deref().is_some_and(|a| a != "0" && a != "false");
    let rules = spec.objects.rules.clone();
    let jpeg = tokio::task::spawn_blocking(move || {
        let (src_w, src_h) = (f.rgb.width() as f32 / f.scale_x.max(1e-6), f.rgb.height() as f32 / f.scale_y.max(1e-6));
        let mut img = picture::to_source_aspect(&f.rgb, src_w, src_h);
        if annotated {
            picture::annotate(&mut img, &rules, &f.objects, src_w);
        }
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&img).map(|_| out)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("JPEG: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], jpeg).into_response())
}

/// The camera's file, its password masked.
async fn config(State(c): Shared, Path(name): Path<String>) -> ApiResult {
    let k = known(&c, &name)?;
    let text = std::fs::read_to_string(&k.file)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{}: {e}", k.file.display())))?;
    Ok(axum::Json(json!({
        "camera": k.name,
        "file": format!("{PIPELINES_DIR}/{}.toml", k.name),
        "toml": edit::masked(&text),
        "writable": c.settings.allow_config_writes && c.settings.auth.is_some(),
    }))
    .into_response())
}

fn body_text(body: &Bytes) -> Result<String, ApiError> {
    String::from_utf8(body.to_vec()).map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the body must be UTF-8 text"))
}

fn problems_response(code: StatusCode, problems: &[Problem]) -> ApiError {
    ApiError(code, json!({ "ok": false, "problems": problems }))
}

/// Check the edited file (run off the server's thread: it opens the models).
async fn run_check(c: &Console, name: &str, text: String) -> Result<(), Vec<Problem>> {
    let dir = c.spec().config_dir;
    let name = name.to_string();
    tokio::task::spawn_blocking(move || edit::check_edit(&dir, &name, &text).map(|_| ())).await.unwrap_or_else(|e| {
        Err(vec![Problem { file: String::new(), line: None, key: String::new(), message: e.to_string() }])
    })
}

/// Write the camera's file, then apply it as SIGHUP would.
async fn put_config(
    State(c): Shared,
    Path(name): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let who = match auth::authorize(&headers, c.settings.allow_config_writes, c.settings.auth.as_ref()) {
        Ok(who) => who,
        Err(refused) => {
            tracing::warn!(camera = %name, peer = %peer, bytes = body.len(), reason = %refused, "console: write refused");
            let code = match refused {
                Refused::NoCredentials | Refused::Wrong => StatusCode::UNAUTHORIZED,
                Refused::WritesOff | Refused::NoCsrfHeader => StatusCode::FORBIDDEN,
            };
            return Err(ApiError::new(code, refused.to_string()));
        }
    };
    known(&c, &name)?;
    let edited = body_text(&body)?;
    // Checked, written and loaded exactly as MQTT remote config does it (`config::replace`).
    let dir = c.spec().config_dir;
    let replaced = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || replace::replace_camera_file(&dir, &name, &edited)).await
    };
    let replaced = match replaced {
        Ok(Ok(r)) => r,
        Ok(Err(replace::Refused::Problems(problems))) => {
            tracing::warn!(camera = %name, who = %who, peer = %peer, problems = problems.len(), "console: save refused, the file has errors; nothing written");
            return Err(problems_response(StatusCode::UNPROCESSABLE_ENTITY, &problems));
        }
        Ok(Err(replace::Refused::Write(e))) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(e) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    };
    let backup = replaced.backup;
    tracing::info!(camera = %name, who = %who, peer = %peer, bytes = body.len(), file = %replaced.file.display(), backup = %backup.display(), "console: camera file saved; applying it as a reload");
    // Applied as SIGHUP applies a config: handed to the running pipeline, which restarts only
    // what changed.
    let applied = match replaced.loaded {
        Ok(spec) => match c.reloads.try_send(spec) {
            Ok(()) => "applying",
            Err(_) => "saved; a reload is already under way, send SIGHUP (systemctl reload lookout) to apply",
        },
        Err(errors) => {
            tracing::error!(%errors, "console: the saved config does not load; not applied");
            "saved, not applied: the config directory has errors elsewhere"
        }
    };
    Ok(axum::Json(json!({ "ok": true, "saved": format!("{PIPELINES_DIR}/{name}.toml"), "backup": backup.file_name().map(|n| n.to_string_lossy().to_string()), "applied": applied })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapesBody {
    toml: String,
    shapes: Shapes,
}

/// The editor's shapes written into the camera's TOML (nothing saved).
async fn shapes(State(c): Shared, Path(name): Path<String>, body: Bytes) -> ApiResult {
    known(&c, &name)?;
    let b: ShapesBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("expected {{\"toml\": …, \"shapes\": …}}: {e}")))?;
    match edit::apply_shapes(&b.toml, &b.shapes) {
        Ok(toml) => Ok(axum::Json(json!({ "toml": toml })).into_response()),
        Err(e) => {
            let line = e.span().map(|s| b.toml[..s.start.min(b.toml.len())].matches('\n').count() + 1);
            let p = Problem {
                file: format!("{PIPELINES_DIR}/{name}.toml"),
                line,
                key: String::new(),
                message: format!("TOML syntax: {}", e.message()),
            };
            Err(problems_response(StatusCode::UNPROCESSABLE_ENTITY, &[p]))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    camera: String,
    toml: String,
}

/// `lookout check` on the config with this camera's file replaced by the posted one.
async fn check(State(c): Shared, headers: HeaderMap, body: Bytes) -> ApiResult {
    if !headers.contains_key(auth::CSRF_HEADER) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, Refused::NoCsrfHeader.to_string()));
    }
    let b: CheckBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("expected {{\"camera\": …, \"toml\": …}}: {e}")))?;
    let k = known(&c, &b.camera)?;
    let on_disk = std::fs::read_to_string(&k.file).unwrap_or_default();
    let text = edit::unmasked(&b.toml, &on_disk);
    match run_check(&c, &k.name, text).await {
        Ok(()) => Ok(axum::Json(json!({ "ok": true, "problems": [] })).into_response()),
        Err(problems) => Ok(axum::Json(json!({ "ok": false, "problems": problems })).into_response()),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    camera: Option<String>,
    limit: Option<usize>,
}

/// Recent events, newest first, of one camera or all.
async fn events(State(c): Shared, Query(q): Query<EventsQuery>) -> ApiResult {
    let entries = match &q.camera {
        Some(name) => vec![known(&c, name)?.entry.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not running"))?],
        None => c.metrics.cameras().snapshot(),
    };
    let mut all: Vec<(SystemTime, String, Value)> = Vec::new();
    for e in &entries {
        for ev in e.counters.view.events() {
            let payload = serde_json::from_str::<Value>(&ev.payload).unwrap_or(Value::Null);
            all.push((ev.at, e.name.clone(), payload));
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    all.truncate(q.limit.unwrap_or(50).min(crate::view::RECENT_EVENTS * 4));
    let list: Vec<Value> = all
        .into_iter()
        .map(|(at, camera, event)| json!({ "at": rfc3339(at), "camera": camera, "event": event }))
        .collect();
    Ok(axum::Json(json!({ "events": list })).into_response())
}

/// An object's snapshot, as the publisher saved it.
async fn snapshot(State(c): Shared, Path((name, object_id)): Path<(String, String)>) -> ApiResult {
    let k = known(&c, &name)?;
    let id = object_id.strip_suffix(".jpg").unwrap_or(&object_id);
    if !valid_name(id) || id.starts_with('.') {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such snapshot"));
    }
    let path = c.spec().snapshot_dir.join(&k.name).join(format!("{id}.jpg"));
    match std::fs::read(&path) {
        Ok(jpeg) => Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response()),
        Err(_) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "no such snapshot (none taken, or past snapshots.retain_days)"))
        }
    }
}
