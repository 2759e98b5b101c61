//! The operator console, `/metrics` and `/healthz`, over HTTP (axum on a current-thread tokio
//! runtime, in one thread of ours named `web`).
//!
//! ```toml
//! [web]
//! listen = "127.0.0.1:8080"       # the console, its JSON API under /api/, /metrics, /healthz
//! allow_config_writes = false     # Save in the editor; needs token_file
//! token_file = "$CREDENTIALS_DIRECTORY/lookout-web"
//! ```
//!
//! - `settings`: `[web]`, validated (pure).
//! - `api`: the JSON API the pages use (`docs/api/openapi.yaml`); camera names in paths are
//!   looked up in the running config, never used as paths.
//! - `edit`: the editor's changes applied to a camera file with `toml_edit` (comments and key
//!   order survive), the Check (the code `lookout check` runs, on the edited file), and the
//!   atomic save.
//! - `auth`: bearer or basic auth against `token_file`, and the header writes must carry.
//! - `assets/`: the pages, plain HTML, CSS and JavaScript compiled into the binary.
//!
//! A saved camera file is applied as SIGHUP applies a config: the running pipeline receives the
//! new validated [`Spec`] on its reload link, so only that camera restarts.
//!
//! `[metrics] listen`, when set, is a second listener serving only `/metrics` and `/healthz`
//! (scrapers on another interface or port than the console).

mod api;
mod auth;
mod edit;
pub mod picture;
/// The console's settings live with the rest of the config, since the console reads and edits it.
pub use crate::config::web as settings;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::config::Spec;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
pub use settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{key} {addr}: could not listen: {source}; pick a free port or {advice}")]
    Bind { key: &'static str, addr: SocketAddr, source: std::io::Error, advice: &'static str },
    #[error("could not start the web thread: {0}")]
    Thread(std::io::Error),
}

/// What the console shares with the pipeline: the metrics (cameras, counters, states), the
/// config that runs now, and the link to apply a new one.
pub struct Console {
    metrics: Arc<Metrics>,
    spec: Mutex<Spec>,
    reloads: crossbeam_channel::Sender<Spec>,
    settings: Settings,
    /// Frames per second decoded and inferred, per camera, over the last second.
    rates: Mutex<BTreeMap<String, Rates>>,
    stop: Shutdown,
}

#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    decoded_fps: f64,
    inferred_fps: f64,
    last: (u64, u64),
}

impl Console {
    /// `reloads`: where a saved config goes, to be applied as a SIGHUP's is.
    pub fn new(spec: &Spec, metrics: Arc<Metrics>, reloads: crossbeam_channel::Sender<Spec>) -> Arc<Console> {
        Arc::new(Console {
            metrics,
            spec: Mutex::new(spec.clone()),
            reloads,
            settings: spec.web.clone(),
            rates: Mutex::default(),
            stop: Shutdown::new(),
        })
    }

    /// The config that runs now, after a reload was applied.
    pub fn set_spec(&self, spec: &Spec) {
        *self.spec.lock().unwrap_or_else(PoisonError::into_inner) = spec.clone();
    }

    fn spec(&self) -> Spec {
        self.spec.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sample every camera's counters: the rates the overview shows.
    fn sample(&self, dt: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        let dt = dt.as_secs_f64().max(1e-3);
        let cams = self.metrics.cameras().snapshot();
        rates.retain(|n, _| cams.iter().any(|c| &c.name == n));
        for c in cams {
            let now = (c.counters.decoded.load(Relaxed), c.counters.inferred.load(Relaxed));
            let r = rates.entry(c.name.clone()).or_insert(Rates { last: now, ..Rates::default() });
            r.decoded_fps = now.0.saturating_sub(r.last.0) as f64 / dt;
            r.inferred_fps = now.1.saturating_sub(r.last.1) as f64 / dt;
            r.last = now;
        }
    }

    fn rates(&self, camera: &str) -> Rates {
        self.rates.lock().unwrap_or_else(PoisonError::into_inner).get(camera).copied().unwrap_or_default()
    }
}

/// The web server's thread, and how to stop it.
pub struct Server {
    handle: std::thread::JoinHandle<()>,
    console: Arc<Console>,
}

impl Server {
    /// Stop serving; waits up to `timeout` for the thread (a client holding a connection open
    /// must not hold up the daemon's exit).
    pub fn stop(self, timeout: Duration) {
        self.console.stop.trigger();
        let deadline = Instant::now() + timeout;
        while !self.handle.is_finished() && Instant::now() < deadline {
            std::thread::park_timeout(Duration::from_millis(10));
        }
        if self.handle.is_finished() {
            let _ = self.handle.join();
        }
    }
}

/// Bind `[web] listen` (when the console is on) and `metrics_listen` (when set), then serve
/// both from one thread. A listener that can't bind is logged and left out: the console and
/// the metrics are for watching the cameras, no reason to stop them. `None`: nothing bound.
pub fn serve(console: Arc<Console>, metrics_listen: Option<SocketAddr>) -> Option<Server> {
    let mut listeners: Vec<(std::net::TcpListener, Router)> = Vec::new();
    if let Some(addr) = metrics_listen {
        match bind(addr, "metrics.listen", "remove [metrics]") {
            Ok((l, bound)) => {
                // The bound address, not the asked one: with port 0 the kernel picks the port, and
                // the log is how an operator (or a test) learns it.
                tracing::info!(addr = %bound, "metrics on http://{bound}/metrics and /healthz");
                listeners.push((l, metrics_router(console.clone())));
            }
            Err(e) => tracing::error!("{e}"),
        }
    }
    if console.settings.enabled {
        match bind(console.settings.listen, "web.listen", "set [web] enabled = false") {
            Ok((l, bound)) => {
                tracing::info!(addr = %bound, "console on http://{bound}/ (with /metrics and /healthz)");
                listeners.push((l, router(console.clone())));
            }
            Err(e) => tracing::warn!("{e}; the console is off"),
        }
    }
    if listeners.is_empty() {
        return None;
    }
    let c = console.clone();
    let handle = std::thread::Builder::new()
        .name("web".into())
        .spawn(move || run(c, listeners))
        .map_err(|e| tracing::error!("{}", WebError::Thread(e)))
        .ok()?;
    Some(Server { handle, console })
}

fn bind(
    addr: SocketAddr,
    key: &'static str,
    advice: &'static str,
) -> Result<(std::net::TcpListener, SocketAddr), WebError> {
    let err = |source| WebError::Bind { key, addr, source, advice };
    let l = std::net::TcpListener::bind(addr).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    let bound = l.local_addr().unwrap_or(addr);
    Ok((l, bound))
}

/// The thread: one runtime, every listener, and the once-a-second sampling of the rates.
fn run(console: Arc<Console>, listeners: Vec<(std::net::TcpListener, Router)>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "web: could not start its runtime; no console and no /metrics");
            return;
        }
    };
    rt.block_on(async move {
        let mut tasks = Vec::new();
        for (l, router) in listeners {
            let l = match tokio::net::TcpListener::from_std(l) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "web: listener unusable");
                    continue;
                }
            };
            let stop = console.stop.clone();
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(l, service).with_graceful_shutdown(stopped(stop)).await;
            }));
        }
        let mut last = Instant::now();
        while !console.stop.is_triggered() && !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if last.elapsed() >= Duration::from_secs(1) {
                console.sample(last.elapsed());
                last = Instant::now();
            }
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Resolves once `stop` is triggered (the flag is polled: it is a plain atomic).
async fn stopped(stop: Shutdown) {
    while !stop.is_triggered() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Shared = State<Arc<Console>>;

/// `/metrics` and `/healthz` only, for `[metrics] listen`.
fn metrics_router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: try /metrics or /healthz\n") })
        .with_state(console)
}

/// Everything, for `[web] listen`.
fn router(console: Arc<Console>) -> Router {
    let max_body = console.settings.max_body_bytes;
    Router::new()
        .route("/", get(|| page(OVERVIEW_HTML)))
        .route("/cameras/{name}", get(|| page(CAMERA_HTML)))
        .route("/cameras/{name}/edit", get(|| page(EDITOR_HTML)))
        .route("/assets/{file}", get(asset))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(api::routes())
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: the console is at /, the API under /api/\n") })
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(console)
}

async fn metrics(State(c): Shared) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], c.metrics.render()).into_response()
}

async fn healthz(State(c): Shared) -> Response {
    let (code, body) = c.metrics.health();
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

const OVERVIEW_HTML: &str = include_str!("assets/overview.html");
const CAMERA_HTML: &str = include_str!("assets/camera.html");
const EDITOR_HTML: &str = include_str!("assets/editor.html");

/// The pages and their scripts, compiled in: no CDN, no build step.
const ASSETS: [(&str, &str, &str); 3] = [
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("assets/console.js")),
    ("editor.js", "text/javascript; charset=utf-8", include_str!("assets/editor.js")),
];

async fn page(html: &'static str) -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response()
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, body)) => {
            ([(header::CONTENT_TYPE, *kind), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}
