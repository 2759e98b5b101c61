//! What a fresh install meets: an empty pipelines/ folder, logs going to a pipe or the journal,
//! and a binary that runs far from the tree it was built in. (`scripts/systemd-e2e` checks the
//! same under a real systemd, from the Debian package.)

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{ConfigDir, Daemon, bin, inference_toml, is_status, media, run_lookout, text};

#[test]
fn with_no_camera_the_daemon_stays_up_says_so_and_takes_its_first_camera_on_reload() {
    let global = format!("gateway_id = \"fresh\"\n[stats]\ninterval_seconds = 1\n{}", inference_toml());
    let dir = ConfigDir::new("nocam", &global, &[]);

    // `lookout check` (systemd's ExecStartPre) accepts it, with the warning.
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("no camera configured"), "{said}");

    let mut d = Daemon::start_with_env(&dir.path, &[("JOURNAL_STREAM", "8:12345")]);
    // Alive and publishing its stats, twice (so it has not just not exited yet).
    let (i, _) =
        d.wait_for(0, Duration::from_secs(30), |v| v["type"] == "stats").expect("a stats message with no camera");
    d.wait_for(i + 1, Duration::from_secs(30), |v| v["type"] == "stats").expect("a second stats message");
    assert!(
        d.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))),
        "the daemon exited with no camera configured"
    );

    // The first camera arrives with a reload.
    let clip = format!("uri = {:?}\nloop = true\n[detect]\nfps = 2\n", media("bikes.mp4").display().to_string());
    std::fs::write(dir.path.join("pipelines/first.toml"), clip).unwrap();
    let mark = d.mark();
    let _ = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
    d.wait_for(mark, Duration::from_secs(60), |v| is_status(v, "first", "streaming"))
        .expect("the camera added by reload streams");

    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    assert!(log.contains("no camera configured"), "{log}");
    // Logs to a pipe carry no colour, and under journald (JOURNAL_STREAM) no timestamp of
    // their own: every line starts with its level.
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in piped logs:\n{log}");
    for line in log.lines().filter(|l| l.contains(" lookout")) {
        let first = line.split_whitespace().next().unwrap_or("");
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&first),
            "a log line that does not start with its level: {line}"
        );
    }
}

#[test]
fn logs_to_a_pipe_have_timestamps_but_no_colour() {
    // Outside journald the timestamp stays; colour is only for a terminal.
    let dir = ConfigDir::new("pipe-log", &format!("gateway_id = \"pipe\"\n{}", inference_toml()), &[]);
    let mut child = Command::new(bin())
        .args(["run", "--config-dir", dir.path.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .env_remove("ORT_DYLIB_PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lookout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let ready = crate::common::wait_until(Duration::from_secs(30), || {
        lines.extend(rx.try_iter());
        lines.iter().any(|l| l.contains("no camera configured"))
    });
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().expect("wait lookout");
    lines.extend(rx.try_iter());
    let log = lines.join("\n");
    assert!(ready, "no `no camera configured` line:\n{log}");
    assert!(status.success(), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in piped logs:\n{log}");
    let stamped = lines.iter().find(|l| l.contains("no camera configured")).expect("the line");
    assert!(
        stamped.starts_with("20") && stamped.as_bytes().get(4) == Some(&b'-'),
        "no timestamp outside journald: {stamped}"
    );
}

#[test]
fn without_a_config_dir_the_binary_never_falls_back_to_its_build_tree() {
    // Run from a folder with no config: the daemon must name /etc/lookout (or use it when it
    // exists), never the source tree it was built in.
    if std::path::Path::new("/etc/lookout").exists() {
        return; // a machine with Lookout installed: /etc/lookout is the right answer there.
    }
    let empty = std::env::temp_dir().join(format!("lookout-test-nocfg-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(bin())
        .arg("check")
        .current_dir(&empty)
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .expect("run lookout check");
    let _ = std::fs::remove_dir_all(&empty);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("/etc/lookout"), "{said}");
    assert!(!said.contains(env!("CARGO_MANIFEST_DIR")), "the build tree leaked into a config path: {said}");
}

#[test]
fn the_model_scripts_derive_the_variants_from_the_committed_export_byte_for_byte() {
    // What scripts/setup does on a fresh clone, with the system python and its standard library
    // only: the same bytes as the pinned sha256s, every time.
    use sha2::{Digest, Sha256};
    let repo = crate::common::repo();
    let out = std::env::temp_dir().join(format!("lookout-test-dynbatch-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let python = |args: &[&str]| {
        Command::new("/usr/bin/python3").args(args).current_dir(&repo).output().expect("run /usr/bin/python3")
    };
    let sha = |p: &std::path::Path| format!("{:x}", Sha256::digest(std::fs::read(p).unwrap()));

    let dyn_path = out.join("yolox_nano_dynbatch.onnx");
    let run = python(&["scripts/dynbatch.py", "models/yolox_nano.onnx", dyn_path.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(sha(&dyn_path), "b220d4d3c71729af9b449f1bcdad6cb919fe97972b0121860d35924a2f70553c");

    // uint8_input.py shares scripts/onnx_proto.py with it; its output is pinned too.
    std::fs::copy(repo.join("models/yolox_nano.toml"), out.join("yolox_nano.toml")).unwrap();
    let run = python(&[
        "scripts/uint8_input.py",
        "--manifest",
        out.join("yolox_nano.toml").to_str().unwrap(),
        "--onnx",
        dyn_path.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        sha(&out.join("yolox_nano_dynbatch_uint8.onnx")),
        "bfcd769f38c85cabe49000b9805eb1a337992fbca910410b18f9c9cb6d6e99cf"
    );

    // Not the export it knows, or already dynamic: a refusal that says why, and no file.
    let other = out.join("other.onnx");
    let run = python(&["scripts/dynbatch.py", "models/nanodet_m_320.onnx", other.to_str().unwrap()]);
    assert!(!run.status.success() && text(&run.stderr).contains("not a YOLOX export"), "{}", text(&run.stderr));
    let run = python(&["scripts/dynbatch.py", dyn_path.to_str().unwrap(), other.to_str().unwrap()]);
    assert!(!run.status.success() && text(&run.stderr).contains("already dynamic"), "{}", text(&run.stderr));
    assert!(!other.exists());
    let _ = std::fs::remove_dir_all(&out);
}
