//! The `lookout` binary: parse arguments, set up logging, dispatch to `lookout::cli`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lookout::cli;

#[derive(Parser)]
#[command(name = "lookout", version, about = "Video analytics for edge camera gateways")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: every camera in the config, events to MQTT or stdout.
    Run {
        /// Holds lookout.toml and pipelines/. Default: /etc/lookout, else ./, else the demo config.
        #[arg(long)]
        config_dir: Option<PathBuf>,
    },
    /// Validate the config offline; print every problem; exit 2 on any.
    Check {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Also load the ONNX Runtime library and build a session on each configured execution
        /// provider: says what this machine can run (no camera or broker needed); exit 1 when
        /// the provider `lookout run` would use does not build.
        #[arg(long)]
        probe: bool,
        /// Judge the config as `lookout run` does at start (the unit's ExecStartPre): a camera
        /// file with errors is reported, and that camera will be `failed`, but fails the check
        /// only when lookout.toml, the environment or a model has errors.
        #[arg(long)]
        for_start: bool,
    },
    /// Detect objects in images and print one JSON object per image.
    Detect {
        /// A model manifest (models/<name>.toml, or just <name>) or a plain YOLOX .onnx. Default: models/yolox_nano.onnx.
        #[arg(long)]
        model: Option<PathBuf>,
        /// ONNX Runtime library. Default: .lookout/ort/libonnxruntime.so.1.31.1; ORT_DYLIB_PATH overrides.
        #[arg(long)]
        ort_library: Option<PathBuf>,
        /// Minimum score to report. Default: the manifest's score_threshold (0.3 for a plain .onnx).
        #[arg(long)]
        score_threshold: Option<f32>,
        /// Execution provider, in order of preference (repeat the flag): cpu, cuda, cuda:1,
        /// tensorrt, openvino, openvino:NPU, qnn. Default: cpu.
        #[arg(long = "provider", value_name = "P", value_parser = parse_provider)]
        providers: Vec<lookout::detect::ProviderSpec>,
        /// Only the first --provider is tried; its failure is an error.
        #[arg(long)]
        no_fallback: bool,
        /// Write a JPEG with the boxes drawn (OUT-<image>.jpg when several images are given).
        #[arg(long, value_name = "OUT.jpg")]
        annotate: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Measure performance, as ratios to baselines measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Per-image detect time (pre, infer, post) against a bare session.run loop.
    Detect {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        ort_library: Option<PathBuf>,
        #[arg(long, default_value_t = 30)]
        iterations: usize,
        images: Vec<PathBuf>,
    },
    /// The batched inference path in images/s against a bare session.run loop at the same
    /// batch, with detections checked against a batch-1 reference provider.
    Infer {
        /// Default: models/yolox_nano.onnx; --batch above 1 needs models/yolox_nano_dynbatch.onnx.
        /// Repeat to compare models in one run (the first is the baseline), e.g. the uint8-input
        /// variant models/yolox_nano_dynbatch_uint8.toml.
        #[arg(long = "model", value_name = "M")]
        models: Vec<PathBuf>,
        /// off: the input passed to each run; on: bound with IoBinding (pinned memory on
        /// cuda/tensorrt; on other providers ORT's CPU memory, which gains nothing); both.
        #[arg(long, default_value = "off", value_parser = ["off", "on", "both"])]
        io_binding: String,
        /// Detectors running batches at once, one thread each, so that one's copy can overlap
        /// another's compute.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[arg(long)]
        ort_library: Option<PathBuf>,
        /// As for `lookout detect`; repeat for a fallback order. Default: cpu.
        #[arg(long = "provider", value_name = "P", value_parser = parse_provider)]
        providers: Vec<lookout::detect::ProviderSpec>,
        /// Frames per run.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        #[arg(long, default_value_t = 30)]
        iterations: usize,
        /// Provider whose batch-1 detections the batched ones must match ("none": no check).
        #[arg(long, default_value = "cpu")]
        reference: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
        images: Vec<PathBuf>,
    },
    /// Models against the first one (the baseline): mean inference time and speed ratio, and
    /// agreement with the baseline's detections (recall at IoU 0.5, score drift) on the media
    /// images and frames of a clip.
    Models {
        /// A manifest (models/<name>.toml or <name>) or plain .onnx; give two or more, the first is the baseline.
        #[arg(long = "model", required = true)]
        models: Vec<PathBuf>,
        #[arg(long)]
        ort_library: Option<PathBuf>,
        /// As for `lookout detect`, without fallback: once for every model, or once per --model
        /// in the same order (`openvino:CPU` needs `--ort-library
        /// .lookout/ort-openvino/libonnxruntime.so.1.24.1`). Default: cpu.
        #[arg(long = "provider", value_name = "P", value_parser = parse_provider)]
        providers: Vec<lookout::detect::ProviderSpec>,
        /// Default: media/bikes.mp4.
        #[arg(long)]
        clip: Option<PathBuf>,
        /// Score every Nth frame of the clip.
        #[arg(long, default_value_t = 5)]
        frame_step: usize,
        /// Timed runs per input and model.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Still images; default: the four in media/.
        images: Vec<PathBuf>,
    },
    /// `lookout run` on a clip, unpaced, against the bare inference rate.
    Pipeline {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Default: media/bikes.mp4 in the config dir.
        #[arg(long)]
        clip: Option<PathBuf>,
        /// Detect rate; the default offers every frame to detection.
        #[arg(long, default_value_t = 1000.0)]
        fps: f64,
        /// Runs of the clip; the median is reported.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// Several file streams at full speed through the daemon against bare session.run loops.
    Efficiency {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 2)]
        streams: usize,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
    },
    /// Offer more than inference takes: frame age at publish, RSS growth, the books.
    Overload {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 300.0)]
        seconds: f64,
        /// Offered frames per second as a multiple of the bare inference rate.
        #[arg(long, default_value_t = 3.0)]
        factor: f64,
    },
    /// How many 1080p25 H.264 streams at detect 5 fps run in real time with no drop.
    Density {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 8)]
        max_streams: usize,
        /// Seconds measured per step.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// CPU of a still scene with motion gating on against off.
    Motion {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
    },
    /// One camera, every frame, on 2 workers of 1 thread and 1 worker of 2 threads, against two
    /// bare single-thread loops.
    Cores {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
    },
    /// Lookout against a plain Python loop (OpenCV decode, onnxruntime, the same model and
    /// cores), every frame detected, on the sample clip and the long one: fps and peak RSS.
    Peer {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// A clip (repeat the flag). Default: media/bikes.mp4, and media/vtest.avi if present.
        #[arg(long = "clip")]
        clips: Vec<PathBuf>,
        /// The Python with OpenCV and onnxruntime. Default: .lookout/venv-models/bin/python.
        #[arg(long)]
        python: Option<PathBuf>,
        /// ONNX Runtime threads of the peer's session.
        #[arg(long, default_value_t = 2)]
        peer_threads: usize,
    },
    /// CPU of one camera with one console viewer against nobody watching.
    Viewer {
        #[arg(long)]
        config_dir: Option<PathBuf>,
        /// Length of each of the four windows (nobody, viewer, nobody, viewer).
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
    },
}

fn parse_provider(s: &str) -> Result<lookout::detect::ProviderSpec, lookout::detect::provider::ProviderFlagError> {
    lookout::detect::provider::parse_flag(s)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn"));
    // Colour only for a person at a terminal: in a file, a pipe or the journal the escape codes
    // are noise that breaks grep.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .fmt_fields(lookout::logfmt::fields());
    // journald stamps every line itself; a second timestamp is noise.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// glibc's malloc arenas, at most: see [`cap_malloc_arenas`].
const MALLOC_ARENAS: i32 = 2;
/// glibc's mmap threshold, pinned: see [`cap_malloc_arenas`].
const MALLOC_MMAP_THRESHOLD: i32 = 128 * 1024;

/// Cap glibc's malloc arenas before any thread starts, unless the operator set
/// MALLOC_ARENA_MAX. glibc gives threads that allocate at once arenas of their own, up to eight
/// per core, and keeps their memory for good. Every RTSP reconnect builds a new GStreamer
/// pipeline with new streaming threads, each landing on some arena, so the resident size grew
/// about 2 MB a reconnect, +93 MB on a 2-core machine before it levelled off, and more on
/// more cores. Two arenas keep it within a few MB (docs/operations.md, "Memory"), and the hot
/// paths allocate little: frames live in GStreamer's buffers, tensors in reused ones.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; it is called here, in main,
        // before this process starts any thread of its own.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
    // Pin the mmap threshold at glibc's initial 128 KiB, unless the operator set it. Left to
    // itself glibc raises it to the size of the largest block freed, so after the first 3 MB
    // 1080p frame is freed every later frame copy (GStreamer's video decoder copies each
    // decoded frame) comes from the heap, and the heap keeps what it held: 82 MB per added
    // 1080p stream instead of 28 (docs/performance.md, "Memory"), for about 5 % of a core per
    // 1080p25 stream in mmap system time.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above: a tunable of the allocator, set before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
        }
    }
}

fn main() -> ExitCode {
    cap_malloc_arenas();
    let args = Args::parse();
    init_logging();
    match args.command {
        Command::Run { config_dir } => cli::run::run(config_dir),
        Command::Check { config_dir, probe, for_start } => cli::check::check(config_dir, probe, for_start),
        Command::Detect { model, ort_library, score_threshold, providers, no_fallback, annotate, images } => {
            cli::detect::detect(cli::detect::DetectArgs {
                model,
                ort_library,
                score_threshold,
                providers,
                fallback: !no_fallback,
                annotate,
                images,
            })
        }
        Command::Bench { which } => match which {
            BenchCommand::Detect { model, ort_library, iterations, images } => {
                cli::bench::bench_detect(model, ort_library, iterations.max(1), images)
            }
            BenchCommand::Pipeline { config_dir, clip, fps, rounds } => {
                cli::bench::bench_pipeline(config_dir, clip, fps, rounds)
            }
            BenchCommand::Infer {
                models,
                io_binding,
                workers,
                ort_library,
                providers,
                batch,
                iterations,
                reference,
                json,
                images,
            } => {
                let reference = match reference.as_str() {
                    "none" => None,
                    r => match parse_provider(r) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            eprintln!("lookout bench infer: --reference {e}");
                            return ExitCode::from(cli::EXIT_CONFIG);
                        }
                    },
                };
                let io_binding = match io_binding.as_str() {
                    "on" => cli::bench::BindingChoice::On,
                    "both" => cli::bench::BindingChoice::Both,
                    _ => cli::bench::BindingChoice::Off,
                };
                // No --model: the default model.
                let models = if models.is_empty() { vec![None] } else { models.into_iter().map(Some).collect() };
                cli::bench::bench_infer(lookout::bench::InferArgs {
                    models: cli::bench::model_options(models, ort_library),
                    io_binding,
                    workers,
                    providers,
                    batch,
                    iterations: iterations.max(1),
                    reference,
                    json,
                    images,
                })
            }
            BenchCommand::Efficiency { config_dir, streams, workers, seconds } => {
                cli::bench::efficiency(config_dir, streams, workers, seconds)
            }
            BenchCommand::Overload { config_dir, seconds, factor } => cli::bench::overload(config_dir, seconds, factor),
            BenchCommand::Density { config_dir, max_streams, seconds, workers } => {
                cli::bench::density(config_dir, max_streams, seconds, workers)
            }
            BenchCommand::Motion { config_dir, seconds } => cli::bench::motion(config_dir, seconds),
            BenchCommand::Cores { config_dir, seconds } => cli::bench::cores(config_dir, seconds),
            BenchCommand::Viewer { config_dir, seconds } => cli::bench::viewer(config_dir, seconds),
            BenchCommand::Peer { config_dir, clips, python, peer_threads } => {
                cli::bench::peer(lookout::bench::PeerArgs { config_dir, clips, python, peer_threads })
            }
            BenchCommand::Models { models, ort_library, providers, clip, frame_step, runs, images } => {
                cli::bench::bench_models(lookout::bench::ModelsArgs {
                    models: cli::bench::model_options(models.into_iter().map(Some).collect(), ort_library),
                    providers,
                    clip,
                    frame_step,
                    runs,
                    images,
                })
            }
        },
    }
}
