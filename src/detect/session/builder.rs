//! One ORT session on one execution provider: the provider registered with its options
//! (failing loudly), the session built with our logger so that ORT's errors and its
//! node-placement lines are kept, and the model's declared inputs and outputs read back for
//! the manifest check. Which providers are tried, in what order, is [`super::Detector::load`]'s.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ort::ep::{self, ExecutionProviderDispatch};
use ort::logging::{LogLevel, LoggerFunction};
use ort::session::Session;
use ort::value::TensorElementType;

use super::DetectorOptions;
use super::runtime::{ort_logger, with_logged_errors};
use crate::detect::manifest::Io;
use crate::detect::provider::{DEFAULT_QNN_BACKEND, ProviderFailure, ProviderKind, ProviderSpec, check_placement};

/// The ort registration of one provider with its options, failing loudly: the default
/// (`build()` alone) logs and falls back to CPU, which would hide the failure.
fn dispatch(p: &ProviderSpec) -> ExecutionProviderDispatch {
    let d = match p.kind {
        ProviderKind::TensorRt => {
            let mut e = ep::TensorRT::default();
            if let Some(id) = p.device_id {
                e = e.with_device_id(id);
            }
            if let Some(f) = p.fp16 {
                e = e.with_fp16(f);
            }
            if let Some(dir) = &p.engine_cache_dir {
                e = e.with_engine_cache(true).with_engine_cache_path(dir.display());
            }
            e.build()
        }
        ProviderKind::Cuda => {
            let mut e = ep::CUDA::default();
            if let Some(id) = p.device_id {
                e = e.with_device_id(id);
            }
            if let Some(limit) = p.memory_limit_bytes {
                e = e.with_memory_limit(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            e.build()
        }
        ProviderKind::OpenVino => {
            let mut e = ep::OpenVINO::default();
            if let Some(d) = &p.device_type {
                e = e.with_device_type(d);
            }
            e.build()
        }
        ProviderKind::Qnn => {
            let mut e = ep::QNN::default().with_backend_path(p.backend_path.as_deref().unwrap_or(DEFAULT_QNN_BACKEND));
            if let Some(id) = p.device_id {
                e = e.with_device_id(id);
            }
            e.build()
        }
        ProviderKind::Cpu => ep::CPU::default().build(),
    };
    d.error_on_failure()
}

/// Build a session on `p` alone, and learn where ORT put the nodes: the session logs at
/// VERBOSE while it is built, into a logger of ours that keeps the placement lines and hands
/// warnings and errors on to `tracing`. Runs log at WARNING (see the detector's run options).
pub(super) fn build_session(
    env: &ort::environment::Environment,
    opts: &DetectorOptions,
    model: &Path,
    p: &ProviderSpec,
) -> Result<(Session, BTreeMap<String, usize>), ProviderFailure> {
    let placement: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let logger = ort_logger(Some(placement.clone()));
    let (built, logged) = with_logged_errors(|| build_logged(env, opts, model, p, logger));
    let session = built.map_err(|e| ProviderFailure::Refused { logged, error: e.to_string() })?;
    let placement = placement.lock().map(|m| m.clone()).unwrap_or_default();
    check_placement(p.kind, &placement)?;
    Ok((session, placement))
}

fn build_logged(
    env: &ort::environment::Environment,
    opts: &DetectorOptions,
    model: &Path,
    p: &ProviderSpec,
    logger: LoggerFunction,
) -> Result<Session, ort::Error> {
    let mut b = Session::builder(env)?
        .with_intra_threads(opts.intra_threads.max(1))?
        .with_inter_threads(1)?
        .with_logger(logger)?
        // ORT's CPU arena stays on, though with it off a second session of YOLOX-Nano costs 2 MB
        // instead of 18: without it every intermediate tensor is a fresh allocation each run,
        // and with glibc's mmap threshold pinned (main.rs) a fresh mmap, which made a run take
        // 46 ms instead of 27 (docs/performance.md, "Memory").
        .with_log_level(LogLevel::Verbose)?;
    if p.kind != ProviderKind::Cpu {
        b = b.with_execution_providers([dispatch(p)])?;
    }
    b.commit_from_file(model)
}

/// The model's declared inputs and outputs, -1 for dynamic dimensions (empty for non-tensors).
pub(super) fn session_io(session: &Session) -> (Vec<Io>, Vec<Io>) {
    let io = |o: &ort::value::Outlet| Io {
        name: o.name().to_string(),
        shape: shape_of(o).unwrap_or_default(),
        dtype: dtype_of(o),
    };
    (session.inputs().iter().map(io).collect(), session.outputs().iter().map(io).collect())
}

/// A tensor outlet's shape, with -1 for dynamic dimensions; `None` if it is not a tensor.
fn shape_of(outlet: &ort::value::Outlet) -> Option<Vec<i64>> {
    outlet.dtype().tensor_shape().map(|s| s.iter().copied().collect())
}

/// A tensor outlet's element type as ONNX names it in lower case; empty if not a tensor.
fn dtype_of(outlet: &ort::value::Outlet) -> String {
    match outlet.dtype() {
        ort::value::ValueType::Tensor { ty, .. } => match ty {
            TensorElementType::Float32 => "float32".into(),
            TensorElementType::Uint8 => "uint8".into(),
            TensorElementType::Float16 => "float16".into(),
            other => format!("{other:?}").to_lowercase(),
        },
        _ => String::new(),
    }
}
