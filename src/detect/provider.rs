//! Execution providers: which accelerator ONNX Runtime runs the model on, with its options.
//!
//! ```toml
//! [inference]
//! providers = [
//!   { type = "tensorrt", device_id = 0, fp16 = true, engine_cache_dir = "/var/cache/lookout/trt" },
//!   { type = "cuda", device_id = 0, memory_limit_bytes = 2147483648 },
//!   { type = "openvino", device_type = "NPU" },
//!   "cpu",
//! ]
//! fallback = true   # false: the first provider must build, or lookout stops with its reason
//! ```
//!
//! Each provider is tried alone, with `error_on_failure`, in order; the first whose session
//! builds and runs at least one node wins (docs/platform-notes.md: a plain `build()` falls back to CPU
//! silently). This file is the pure part: names, options, their validation, and reading ORT's
//! node-placement log lines. The session building is in [`super::session`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// An execution provider this build can ask ONNX Runtime for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderKind {
    TensorRt,
    Cuda,
    OpenVino,
    Qnn,
    Cpu,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 5] =
        [ProviderKind::TensorRt, ProviderKind::Cuda, ProviderKind::OpenVino, ProviderKind::Qnn, ProviderKind::Cpu];

    /// The name in the config, in logs, stats and /metrics.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::TensorRt => "tensorrt",
            ProviderKind::Cuda => "cuda",
            ProviderKind::OpenVino => "openvino",
            ProviderKind::Qnn => "qnn",
            ProviderKind::Cpu => "cpu",
        }
    }

    /// ONNX Runtime's own name, as in its node-placement log lines.
    pub fn ort_name(self) -> &'static str {
        match self {
            ProviderKind::TensorRt => "TensorrtExecutionProvider",
            ProviderKind::Cuda => "CUDAExecutionProvider",
            ProviderKind::OpenVino => "OpenVINOExecutionProvider",
            ProviderKind::Qnn => "QNNExecutionProvider",
            ProviderKind::Cpu => "CPUExecutionProvider",
        }
    }

    /// Whether batching frames across cameras pays off. Not on CPU: docs/platform-notes.md records no
    /// per-image gain there, and a batch only adds the wait for its last frame to every frame.
    pub fn gains_from_batching(self) -> bool {
        self != ProviderKind::Cpu
    }

    /// Parse a config name; an unknown one gets the closest known name as a suggestion.
    pub fn parse(name: &str) -> Result<ProviderKind, UnknownProvider> {
        let lower = name.trim().to_ascii_lowercase();
        if let Some(k) = ProviderKind::ALL.iter().find(|k| k.name() == lower) {
            return Ok(*k);
        }
        let suggestion = crate::text::closest(&lower, ProviderKind::ALL.iter().map(|k| k.name()));
        Err(UnknownProvider { name: name.to_string(), suggestion })
    }

    /// The options that mean something for this provider (besides `type`).
    fn options(self) -> &'static [&'static str] {
        match self {
            ProviderKind::TensorRt => &["device_id", "fp16", "engine_cache_dir"],
            ProviderKind::Cuda => &["device_id", "memory_limit_bytes"],
            ProviderKind::OpenVino => &["device_type"],
            ProviderKind::Qnn => &["device_id", "backend_path"],
            ProviderKind::Cpu => &[],
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A provider name that is none of [`ProviderKind::ALL`]: fix the name (the closest known one
/// is suggested when the typo is small).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown execution provider `{name}`{} Known: {}",
    suggestion.map(|k| format!("; did you mean `{k}`?")).unwrap_or_default(),
    ProviderKind::ALL.map(ProviderKind::name).join(", ")
)]
pub struct UnknownProvider {
    /// As written.
    pub name: String,
    /// The known name it most likely meant.
    pub suggestion: Option<&'static str>,
}

/// The config's problem lists hold messages: an unknown provider is one.
impl From<UnknownProvider> for String {
    fn from(e: UnknownProvider) -> String {
        e.to_string()
    }
}

/// What is wrong with a provider given on the command line (`--provider cuda:0`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderFlagError {
    #[error(transparent)]
    Unknown(#[from] UnknownProvider),
    #[error("`{arg}`: cpu takes no device")]
    CpuTakesNoDevice { arg: String },
    #[error("`{arg}`: the part after ':' is a device number, such as cuda:0")]
    NotADeviceNumber { arg: String },
    /// An option the flag set that does not apply or is out of range ([`ProviderSpec::problems`]).
    #[error("`{arg}`: {option} {message}")]
    BadOption { arg: String, option: &'static str, message: String },
}

/// Why one execution provider was passed over (for `cpu`: why the model did not load). The
/// text is what logs, `lookout detect`, the stats message and `lookout check --probe` show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderFailure {
    /// ONNX Runtime refused the session. Its returned `error` is often generic ("Failed to load
    /// provider"); the reason is in what it `logged` at ERROR while trying ("Device NPU is not
    /// available"), which comes first.
    #[error("{}", refused_text(logged, error))]
    Refused { logged: Vec<String>, error: String },
    /// ORT accepted the provider but ran every node elsewhere ([`check_placement`]).
    #[error("ONNX Runtime accepted it but placed no node on it ({})", placement_text(placement))]
    NoNodePlaced { placement: BTreeMap<String, usize> },
}

/// ORT's logged lines that its error does not already say, then the error.
fn refused_text(logged: &[String], error: &str) -> String {
    let extra: Vec<&str> = logged.iter().map(String::as_str).filter(|l| !error.contains(l)).collect();
    if extra.is_empty() { error.to_string() } else { format!("{}: {error}", extra.join("; ")) }
}

/// OpenVINO devices (`device_type`). `GPU.1` picks the second GPU, as OpenVINO names them.
pub const OPENVINO_DEVICES: [&str; 3] = ["CPU", "GPU", "NPU"];
/// QNN's HTP (NPU) backend, the default `backend_path`.
pub const DEFAULT_QNN_BACKEND: &str = "libQnnHtp.so";

/// One validated entry of `inference.providers`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSpec {
    pub kind: ProviderKind,
    pub device_id: Option<i32>,
    pub device_type: Option<String>,
    pub fp16: Option<bool>,
    pub engine_cache_dir: Option<PathBuf>,
    pub memory_limit_bytes: Option<u64>,
    pub backend_path: Option<String>,
}

impl ProviderSpec {
    pub fn new(kind: ProviderKind) -> ProviderSpec {
        ProviderSpec {
            kind,
            device_id: None,
            device_type: None,
            fp16: None,
            engine_cache_dir: None,
            memory_limit_bytes: None,
            backend_path: None,
        }
    }

    pub fn cpu() -> ProviderSpec {
        ProviderSpec::new(ProviderKind::Cpu)
    }

    /// `openvino:NPU`, `cuda:0`, `cpu`: what logs say was tried.
    pub fn label(&self) -> String {
        match (&self.device_type, self.device_id) {
            (Some(d), _) => format!("{}:{d}", self.kind),
            (None, Some(id)) => format!("{}:{id}", self.kind),
            (None, None) => self.kind.to_string(),
        }
    }

    /// Options given, by name, so validation can say which do not apply.
    fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.device_id.is_some() {
            v.push("device_id");
        }
        if self.device_type.is_some() {
            v.push("device_type");
        }
        if self.fp16.is_some() {
            v.push("fp16");
        }
        if self.engine_cache_dir.is_some() {
            v.push("engine_cache_dir");
        }
        if self.memory_limit_bytes.is_some() {
            v.push("memory_limit_bytes");
        }
        if self.backend_path.is_some() {
            v.push("backend_path");
        }
        v
    }

    /// Every problem with the options, as (option, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let allowed = self.kind.options();
        for opt in self.given() {
            if !allowed.contains(&opt) {
                let takes = if allowed.is_empty() { "no options".to_string() } else { allowed.join(", ") };
                out.push((opt, format!("does not apply to {}; it takes {takes}", self.kind)));
            }
        }
        if let Some(id) = self.device_id
            && id < 0
        {
            out.push(("device_id", format!("{id} must be 0 or more")));
        }
        if let Some(d) = &self.device_type {
            let base = d.split('.').next().unwrap_or_default();
            let index_ok = d.split_once('.').is_none_or(|(_, n)| n.parse::<u32>().is_ok());
            if !(OPENVINO_DEVICES.contains(&base) && index_ok) {
                out.push((
                    "device_type",
                    format!(
                        "`{d}` is not an OpenVINO device; use one of {} (GPU.1 for a second GPU)",
                        OPENVINO_DEVICES.join(", ")
                    ),
                ));
            }
        }
        if let Some(0) = self.memory_limit_bytes {
            out.push(("memory_limit_bytes", "must be above 0; leave it out for no limit".into()));
        }
        out
    }
}

/// A provider as the command line gives it: `cuda`, `cuda:1` (device id), `openvino:NPU`
/// (OpenVINO device type).
pub fn parse_flag(arg: &str) -> Result<ProviderSpec, ProviderFlagError> {
    let (name, device) = match arg.split_once(':') {
        Some((n, d)) => (n, Some(d)),
        None => (arg, None),
    };
    let mut spec = ProviderSpec::new(ProviderKind::parse(name)?);
    match (spec.kind, device) {
        (_, None) => {}
        (ProviderKind::OpenVino, Some(d)) => spec.device_type = Some(d.to_string()),
        (ProviderKind::Cpu, Some(_)) => return Err(ProviderFlagError::CpuTakesNoDevice { arg: arg.to_string() }),
        (_, Some(d)) => {
            spec.device_id = Some(d.parse().map_err(|_| ProviderFlagError::NotADeviceNumber { arg: arg.to_string() })?)
        }
    }
    if let Some((option, message)) = spec.problems().into_iter().next() {
        return Err(ProviderFlagError::BadOption { arg: arg.to_string(), option, message });
    }
    Ok(spec)
}

/// How the providers were chosen: the winner, where ORT put the nodes, and why the ones before
/// it were passed over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Each provider tried before the winner, with the reason it did not build.
    pub skipped: Vec<(String, String)>,
    /// Nodes per ORT execution provider, from ORT's own log; empty when ORT did not say.
    pub placement: BTreeMap<String, usize>,
}

impl Selection {
    /// `openvino:NPU: Device NPU is not available; cuda: ...`, for logs and `check --probe`.
    pub fn skipped_text(&self) -> String {
        self.skipped.iter().map(|(p, why)| format!("{p}: {why}")).collect::<Vec<_>>().join("; ")
    }
}

/// Reads ORT's node-placement lines, which a session logs at VERBOSE while it is built:
/// ` All nodes placed on [CPUExecutionProvider]. Number of nodes: 6` or, split,
/// ` Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 170`.
pub fn parse_placement(message: &str) -> Option<(String, usize)> {
    let m = message.trim_start();
    let rest = m.strip_prefix("All nodes placed on [").or_else(|| m.strip_prefix("Node(s) placed on ["))?;
    let (ep, tail) = rest.split_once(']')?;
    let n = tail.split("Number of nodes:").nth(1)?.trim().parse().ok()?;
    Some((ep.to_string(), n))
}

/// Whether the placement shows `kind` really running: at least one node on it. ORT may accept a
/// provider and still give it nothing (every node to CPU), which must count as a failure.
pub fn check_placement(kind: ProviderKind, placement: &BTreeMap<String, usize>) -> Result<(), ProviderFailure> {
    if kind == ProviderKind::Cpu || placement.is_empty() {
        return Ok(());
    }
    match placement.get(kind.ort_name()) {
        Some(n) if *n > 0 => Ok(()),
        _ => Err(ProviderFailure::NoNodePlaced { placement: placement.clone() }),
    }
}

/// `OpenVINOExecutionProvider 1, CPUExecutionProvider 2`.
pub fn placement_text(placement: &BTreeMap<String, usize>) -> String {
    if placement.is_empty() {
        return "not reported".into();
    }
    placement.iter().map(|(ep, n)| format!("{ep} {n}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_blind_and_typos_get_a_suggestion() {
        assert_eq!(ProviderKind::parse("CUDA"), Ok(ProviderKind::Cuda));
        assert_eq!(ProviderKind::parse("openvino"), Ok(ProviderKind::OpenVino));
        let e = ProviderKind::parse("openvio").unwrap_err().to_string();
        assert!(e.contains("did you mean `openvino`?"), "{e}");
        let e = ProviderKind::parse("directml").unwrap_err().to_string();
        assert!(!e.contains("did you mean"), "{e}");
        assert!(e.contains("tensorrt, cuda, openvino, qnn, cpu"), "{e}");
    }

    #[test]
    fn options_are_checked_against_their_provider() {
        let mut p = ProviderSpec::new(ProviderKind::Cuda);
        p.fp16 = Some(true);
        p.memory_limit_bytes = Some(1 << 30);
        let probs = p.problems();
        assert_eq!(probs.len(), 1, "{probs:?}");
        assert_eq!(probs[0].0, "fp16");
        assert!(
            probs[0].1.contains("does not apply to cuda; it takes device_id, memory_limit_bytes"),
            "{}",
            probs[0].1
        );

        let mut ov = ProviderSpec::new(ProviderKind::OpenVino);
        ov.device_type = Some("NPU".into());
        assert!(ov.problems().is_empty());
        ov.device_type = Some("GPU.1".into());
        assert!(ov.problems().is_empty());
        ov.device_type = Some("TPU".into());
        assert_eq!(ov.problems()[0].0, "device_type");

        let mut cpu = ProviderSpec::cpu();
        cpu.device_id = Some(0);
        assert!(cpu.problems()[0].1.contains("takes no options"));
    }

    #[test]
    fn command_line_providers_carry_their_device() {
        assert_eq!(parse_flag("openvino:NPU").unwrap().device_type.as_deref(), Some("NPU"));
        assert_eq!(parse_flag("cuda:1").unwrap().device_id, Some(1));
        assert_eq!(parse_flag("cpu").unwrap(), ProviderSpec::cpu());
        let err = |arg: &str| parse_flag(arg).unwrap_err().to_string();
        assert!(err("cuda:x").contains("device number"));
        assert!(err("openvino:TPU").contains("not an OpenVINO device"));
        assert!(err("cudaa").contains("did you mean `cuda`?"));
        assert_eq!(err("cpu:0"), "`cpu:0`: cpu takes no device");
    }

    #[test]
    fn placement_lines_are_read_whole_or_split() {
        assert_eq!(
            parse_placement(" All nodes placed on [OpenVINOExecutionProvider]. Number of nodes: 1"),
            Some(("OpenVINOExecutionProvider".into(), 1))
        );
        assert_eq!(
            parse_placement(" Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 170"),
            Some(("CUDAExecutionProvider".into(), 170))
        );
        assert_eq!(parse_placement("Node placements"), None);
        assert_eq!(parse_placement("  Conv (Conv_0)"), None);
    }

    #[test]
    fn a_provider_given_no_node_did_not_really_run() {
        let all_cpu = BTreeMap::from([("CPUExecutionProvider".to_string(), 300)]);
        let e = check_placement(ProviderKind::OpenVino, &all_cpu).unwrap_err();
        assert_eq!(e.to_string(), "ONNX Runtime accepted it but placed no node on it (CPUExecutionProvider 300)");
        assert!(check_placement(ProviderKind::Cpu, &all_cpu).is_ok());
        let split =
            BTreeMap::from([("CPUExecutionProvider".to_string(), 4), ("CUDAExecutionProvider".to_string(), 170)]);
        assert!(check_placement(ProviderKind::Cuda, &split).is_ok());
        assert_eq!(
            ProviderSpec { device_type: Some("NPU".into()), ..ProviderSpec::new(ProviderKind::OpenVino) }.label(),
            "openvino:NPU"
        );
    }

    #[test]
    fn a_refusal_puts_what_ort_logged_first() {
        let refused = |logged: &[&str], error: &str| {
            ProviderFailure::Refused { logged: logged.iter().map(|l| l.to_string()).collect(), error: error.into() }
                .to_string()
        };
        assert_eq!(
            refused(&["[OpenVINO] Device NPU is not available"], "Failed to load provider"),
            "[OpenVINO] Device NPU is not available: Failed to load provider"
        );
        assert_eq!(refused(&["bad model"], "load failed: bad model"), "load failed: bad model", "no repeats");
        assert_eq!(refused(&[], "Failed to load provider"), "Failed to load provider");
    }
}
