//! The ONNX Runtime library: loaded once per process (ORT allows one library and one
//! environment per process), its log forwarded to `tracing`, and what it says about itself
//! (`lookout check --probe`). Building a session on a provider is in [`super::builder`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ort::ep::{self, ExecutionProvider};
use ort::logging::{LogLevel, LoggerFunction};

use crate::detect::DetectError;
use crate::detect::provider::{ProviderKind, parse_placement};

/// The environment variable that overrides `inference.ort_library`, as `ort` itself documents.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// The library path actually used: ORT_DYLIB_PATH wins over the config.
pub fn effective_library(configured: &Path) -> PathBuf {
    match std::env::var_os(ORT_DYLIB_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => configured.to_path_buf(),
    }
}

// ORT allows one library and one environment per process (`ort` with load-dynamic loads the
// library once, globally): a second inference config naming another library cannot be
// honoured in the same process. The first successful load wins; a failed load is remembered
// so every caller gets the same clear error instead of a panic.
static RUNTIME: OnceLock<Result<(PathBuf, ort::environment::Environment), String>> = OnceLock::new();

/// Load the ONNX Runtime shared library once per process, and return its environment.
pub fn init_runtime(library: &Path) -> Result<&'static ort::environment::Environment, DetectError> {
    let path = effective_library(library);
    if !path.exists() {
        return Err(DetectError::LibraryMissing { path });
    }
    let path = path.canonicalize().unwrap_or(path);
    let result = RUNTIME.get_or_init(|| {
        ort::init_from(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_name("lookout").with_logger(ort_logger(None)).build().map_err(|e| e.to_string()))
            .map(|env| (path.clone(), env))
    });
    match result {
        Ok((loaded, _)) if *loaded != path => Err(DetectError::LibraryLoad {
            path,
            reason: format!(
                "this process already loaded {}, and ONNX Runtime can only be loaded once per process",
                loaded.display()
            ),
        }),
        Ok((_, env)) => Ok(env),
        Err(reason) => Err(DetectError::LibraryLoad { path, reason: reason.clone() }),
    }
}

thread_local! {
    // ORT's errors while this thread tries a provider. A provider that fails to register says
    // why only in ORT's log ("Device NPU is not available"), and returns a bare "Failed to
    // load provider"; the log lines make the reason the operator sees.
    static ORT_ERRORS: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Forward ORT's log to `tracing` (target `ort`), keep this thread's errors while a provider is
/// being tried, and pass node-placement lines to `placement`.
pub(super) fn ort_logger(placement: Option<Arc<Mutex<BTreeMap<String, usize>>>>) -> LoggerFunction {
    Arc::new(move |level: LogLevel, _category: &str, _id: &str, _location: &str, message: &str| {
        if let Some((ep, n)) = parse_placement(message) {
            if let Some(Ok(mut m)) = placement.as_ref().map(|p| p.lock()) {
                *m.entry(ep).or_default() += n;
            }
            return;
        }
        match level {
            // ORT warns once per weight that an old exporter also listed as a graph input
            // (NanoDet: about 200 lines, harmless, see models/README.md).
            LogLevel::Warning if message.contains("graph input") => tracing::debug!(target: "ort", "{message}"),
            LogLevel::Warning => tracing::warn!(target: "ort", "{message}"),
            LogLevel::Error | LogLevel::Fatal => {
                tracing::error!(target: "ort", "{message}");
                ORT_ERRORS.with(|e| {
                    if let Some(v) = e.borrow_mut().as_mut() {
                        // "/onnxruntime/.../factory.cc:141 std::string ...() [ERROR] [OpenVINO] Device NPU is not available"
                        let short = message.rsplit_once("[ERROR] ").map(|(_, m)| m).unwrap_or(message);
                        v.push(short.trim().to_string());
                    }
                });
            }
            LogLevel::Info => tracing::debug!(target: "ort", "{message}"),
            LogLevel::Verbose => {}
        }
    })
}

/// What the loaded ONNX Runtime library says about itself: its build line (with the version)
/// and, per provider, whether it was compiled in. Compiled in is not usable: only building a
/// session tells that ([`super::Detector::load`]).
pub fn runtime_info(library: &Path) -> Result<(String, Vec<(ProviderKind, bool)>), DetectError> {
    init_runtime(library)?;
    let compiled = ProviderKind::ALL.iter().map(|k| (*k, compiled_in(*k))).collect();
    Ok((ort::info().to_string(), compiled))
}

fn compiled_in(kind: ProviderKind) -> bool {
    let r = match kind {
        ProviderKind::TensorRt => ep::TensorRT::is_available(),
        ProviderKind::Cuda => ep::CUDA::is_available(),
        ProviderKind::OpenVino => ep::OpenVINO::is_available(),
        ProviderKind::Qnn => ep::QNN::is_available(),
        ProviderKind::Cpu => Ok(true),
    };
    r.unwrap_or(false)
}

/// Run `f` (building a session) and return, with its result, what ORT logged at ERROR on this
/// thread meanwhile: a provider that fails to register says why only there.
pub(super) fn with_logged_errors<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    ORT_ERRORS.with(|e| *e.borrow_mut() = Some(Vec::new()));
    let out = f();
    let logged = ORT_ERRORS.with(|e| e.borrow_mut().take()).unwrap_or_default();
    (out, logged)
}
