//! `lookout bench peer`: Lookout against what a user writes in an afternoon, in one run. The
//! peer is scripts/peer.py: OpenCV decodes, the YOLOX letterbox, ONNX Runtime on the same model
//! and cores, numpy NMS, every frame detected. Lookout is `lookout run` on the same clip, every
//! frame detected (files unpaced, the frames link blocking so nothing is dropped) on two detect
//! workers of one thread. Both run as child processes, one after the other and then again in
//! the other order, so that neither gets the quieter half of a noisy machine; each is timed from
//! spawn to exit (start-up included on both sides) and its peak RSS (VmHWM) read from /proc
//! while it runs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;
use super::proc::loadavg;
use crate::config;

/// What `lookout bench peer` compares.
#[derive(Debug, Clone)]
pub struct PeerArgs {
    pub config_dir: Option<PathBuf>,
    /// Default: media/bikes.mp4, and media/vtest.avi where setup placed it.
    pub clips: Vec<PathBuf>,
    /// The Python with OpenCV and onnxruntime. Default: .lookout/venv-models/bin/python.
    pub python: Option<PathBuf>,
    /// ONNX Runtime threads of the peer's one session (Lookout runs two workers of one).
    pub peer_threads: usize,
}

/// One process's run over a clip.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    frames: u64,
    seconds: f64,
    peak_rss_kib: u64,
}

impl Run {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.seconds.max(1e-9)
    }
}

pub fn peer(args: PeerArgs) -> Result<(), BenchError> {
    let dir = args.config_dir.clone().unwrap_or_else(config::default_dir);
    // The config written for `lookout run` lives elsewhere: its paths must not be relative.
    let dir = dir.canonicalize().map_err(|source| BenchError::Io { what: format!("{}", dir.display()), source })?;
    let python = args.python.clone().unwrap_or_else(|| dir.join(".lookout/venv-models/bin/python"));
    if !python.exists() {
        return Err(BenchError::Clip {
            path: python,
            reason: "no Python with OpenCV for the peer: python3 -m venv .lookout/venv-models && \
                     .lookout/venv-models/bin/pip install -r scripts/models.requirements.txt"
                .into(),
        });
    }
    let clips: Vec<PathBuf> = if args.clips.is_empty() {
        ["media/bikes.mp4", "media/vtest.avi"].iter().map(|c| dir.join(c)).filter(|p| p.exists()).collect()
    } else {
        args.clips.clone()
    };
    let model = dir.join("models/yolox_nano.toml");
    let onnx = dir.join("models/yolox_nano.onnx");
    let exe = std::env::current_exe().map_err(|source| BenchError::Io { what: "the lookout binary".into(), source })?;
    println!(
        "lookout bench peer: every frame detected, yolox_nano 416; Lookout `lookout run` (2 detect workers x 1 thread) against scripts/peer.py (OpenCV + onnxruntime, {} thread(s)), each run twice in alternating order; load {}",
        args.peer_threads,
        loadavg()
    );
    for clip in &clips {
        let clip = clip
            .canonicalize()
            .map_err(|source| BenchError::Io { what: format!("clip {}", clip.display()), source })?;
        let conf = write_config(&dir, &model, &clip)?;
        let script = dir.join("scripts/peer.py");
        let lookout = || run_lookout(&exe, &conf);
        let python = || run_peer(&python, &script, &onnx, &clip, args.peer_threads);
        // Lookout first, then the peer first: neither always gets the quieter turn.
        let rounds = (|| -> Result<(Vec<Run>, Vec<Run>), BenchError> {
            let (a, b) = (lookout()?, python()?);
            let (d, c) = (python()?, lookout()?);
            Ok((vec![a, c], vec![b, d]))
        })();
        let _ = std::fs::remove_dir_all(&conf);
        let (ours, theirs) = rounds?;
        let mean = |runs: &[Run], f: fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / runs.len().max(1) as f64;
        let (fps_l, fps_p) = (mean(&ours, Run::fps), mean(&theirs, Run::fps));
        let peak = |runs: &[Run]| runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0) as f64 / 1024.0;
        let (rss_l, rss_p) = (peak(&ours), peak(&theirs));
        println!("  {} ({} frames):", clip.display(), ours.first().map(|r| r.frames).unwrap_or(0));
        for (name, runs) in [("lookout", &ours), ("peer", &theirs)] {
            let each: Vec<String> = runs
                .iter()
                .map(|r| {
                    format!(
                        "{:.1} frames/s ({} in {:.2} s), peak RSS {:.1} MiB",
                        r.fps(),
                        r.frames,
                        r.seconds,
                        r.peak_rss_kib as f64 / 1024.0
                    )
                })
                .collect();
            println!("    {name:<8} {}", each.join("; "));
        }
        println!(
            "    lookout / peer: {:.2}x the frames per second (target >= 1.5), {:.2}x the peak RSS (target <= 0.75); load {}",
            fps_l / fps_p.max(1e-9),
            rss_l / rss_p.max(1e-9),
            loadavg()
        );
    }
    Ok(())
}

/// A config dir that runs `clip` once, every frame, on two workers of one thread.
fn write_config(dir: &Path, model: &Path, clip: &Path) -> Result<PathBuf, BenchError> {
    let conf = std::env::temp_dir().join(format!("lookout-bench-peer-{}", std::process::id()));
    let io = |source| BenchError::Io { what: format!("config in {}", conf.display()), source };
    std::fs::create_dir_all(conf.join("pipelines")).map_err(io)?;
    let library = crate::detect::session::effective_library(&dir.join(crate::detect::settings::DEFAULT_ORT_LIBRARY));
    let global = format!(
        "gateway_id = \"peer\"\n[inference]\nmodel = {:?}\nort_library = {:?}\nworkers = 2\nintra_threads = 1\n\
         [links.frames]\nwhen_full = \"block\"\n",
        model.display().to_string(),
        library.display().to_string()
    );
    std::fs::write(conf.join("lookout.toml"), global).map_err(io)?;
    let camera =
        format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 120\nworkers = 2\n", clip.display().to_string());
    std::fs::write(conf.join("pipelines/clip.toml"), camera).map_err(io)?;
    Ok(conf)
}

/// Spawn, time to exit, and follow VmHWM; stdout's lines go to `line`.
fn timed(mut cmd: Command, what: &str, mut line: impl FnMut(&str)) -> Result<(f64, u64), BenchError> {
    let io = |source| BenchError::Io { what: what.to_string(), source };
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(io)?;
    let status_path = format!("/proc/{}/status", child.id());
    let stdout = child.stdout.take();
    // Read stdout on a thread so the child never blocks on a full pipe.
    let reader = std::thread::spawn(move || {
        stdout.map(|s| BufReader::new(s).lines().map_while(Result::ok).collect::<Vec<String>>()).unwrap_or_default()
    });
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if let Some(kb) = std::fs::read_to_string(&status_path).ok().and_then(|s| vm_hwm_kib(&s)) {
            peak = peak.max(kb);
        }
        std::thread::park_timeout(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    let lines = reader.join().map_err(|_| BenchError::Thread("the stdout reader panicked"))?;
    if !status.success() {
        return Err(BenchError::Clip { path: PathBuf::from(what), reason: format!("exited with {status}") });
    }
    lines.iter().for_each(|l| line(l));
    Ok((seconds, peak))
}

/// `VmHWM:` (peak resident set) of a /proc/<pid>/status text, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn run_lookout(exe: &Path, conf: &Path) -> Result<Run, BenchError> {
    let mut cmd = Command::new(exe);
    cmd.args(["run", "--config-dir"]).arg(conf).env("RUST_LOG", "warn");
    let mut frames = 0;
    let (seconds, peak_rss_kib) = timed(cmd, "lookout run", |l| {
        // The final stats line holds the camera's books.
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(l)
            && v["type"] == "stats"
            && v["final"] == true
        {
            frames = v["cameras"]["clip"]["inferred"].as_u64().unwrap_or(0);
        }
    })?;
    Ok(Run { frames, seconds, peak_rss_kib })
}

fn run_peer(python: &Path, script: &Path, model: &Path, clip: &Path, threads: usize) -> Result<Run, BenchError> {
    let mut cmd = Command::new(python);
    cmd.arg(script).arg("--model").arg(model).arg("--video").arg(clip).args(["--threads", &threads.to_string()]);
    let mut frames = 0;
    let (seconds, peak) = timed(cmd, "scripts/peer.py", |l| {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
            frames = v["frames"].as_u64().unwrap_or(0);
        }
    })?;
    Ok(Run { frames, seconds, peak_rss_kib: peak })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_peak_resident_set_from_proc_status() {
        let status = "Name:\tlookout\nVmPeak:\t  900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(123456));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
    }
}
