//! Config loading and `lookout check`: every example valid, every error located.

use std::time::Duration;

use crate::common::*;

#[test]
fn every_example_in_the_repo_loads() {
    let spec = lookout::config::load(&repo()).unwrap_or_else(|e| panic!("{e}"));
    let files = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert!(files > 0);
    assert_eq!(spec.cameras.len(), files, "one camera per pipelines/*.toml");
    let out = run_lookout(&["check", "--config-dir", repo().to_str().unwrap()], &[], Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("config OK"));
}

#[test]
fn unknown_keys_are_errors_with_file_and_key() {
    let global = format!("gateway_id = \"t\"\n{}", inference_toml());
    let cam = format!("uri = {:?}\n[detect]\nfsp = 5\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("unknown", &global, &[("front", &cam)]);
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("pipelines/front.toml:3: detect.fsp: unknown field `fsp`"), "{stderr}");
    assert!(stderr.contains("expected one of `fps`"), "{stderr}");
    assert!(stderr.contains("did you mean `fps`?"), "{stderr}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let global = format!("gateway_id = \"t\"\n[mqtt]\nport = 0\n{}", inference_toml());
    let a = format!("uri = {:?}\n[detect]\nfps = 0\n", media("bikes.mp4").display().to_string());
    let b = "uri = \"/nonexistent/clip.mp4\"\n[detect]\nlabels = [\"person\", \"unicorn\"]\n";
    let dir = ConfigDir::new("many", &global, &[("a", &a), ("b", b)]);
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for want in [
        "lookout.toml:3: mqtt.port: must be between 1 and 65535",
        "pipelines/a.toml:3: detect.fps: 0 must be above 0",
        "pipelines/b.toml:1: uri: /nonexistent/clip.mp4 does not exist",
        "pipelines/b.toml:3: detect.labels[1]: `unicorn` is not a label",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(stderr.contains("4 config error(s)"), "{stderr}");
    // `run` refuses the same config with the same messages and exit status.
    let out = run_lookout(&["run", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn environment_overrides_the_global_file() {
    let global = format!("gateway_id = \"t\"\n[mqtt]\nport = 1883\n{}", inference_toml());
    let cam = format!("uri = {:?}\n", media("bikes.mp4").display().to_string());
    let dir = ConfigDir::new("env", &global, &[("front", &cam)]);
    let out = run_lookout(
        &["check", "--config-dir", dir.path.to_str().unwrap()],
        &[("LOOKOUT__MQTT__PORT", "1884")],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("mqtt://127.0.0.1:1884"), "{}", text(&out.stdout));
    // A bad value from the environment is blamed on its variable, not on the file's line.
    let out = run_lookout(
        &["check", "--config-dir", dir.path.to_str().unwrap()],
        &[("LOOKOUT__MQTT__PORT", "0")],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("lookout.toml with LOOKOUT__MQTT__PORT: mqtt.port: must be between 1 and 65535"),
        "{}",
        text(&out.stderr)
    );
    let out = run_lookout(
        &["check", "--config-dir", dir.path.to_str().unwrap()],
        &[("LOOKOUT__MQTT__PROT", "1884")],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("environment"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown field `prot`"), "{}", text(&out.stderr));
    // A boolean from the environment: IoBinding off.
    let out = run_lookout(
        &["check", "--config-dir", dir.path.to_str().unwrap()],
        &[("LOOKOUT__INFERENCE__IO_BINDING", "false")],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("io_binding on cuda/tensorrt off"), "{}", text(&out.stdout));
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
    assert!(text(&out.stdout).contains("io_binding on cuda/tensorrt on"), "the default: {}", text(&out.stdout));
}

#[test]
fn a_missing_config_dir_is_a_clear_error() {
    let out = run_lookout(&["check", "--config-dir", "/nonexistent/lookout"], &[], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("config directory does not exist"));
}

#[test]
fn camera_logins_are_checked_offline_and_never_printed() {
    let global = format!("gateway_id = \"t\"\n{}", inference_toml());
    let pw_file = std::env::temp_dir().join(format!("lookout-test-login-{}", std::process::id()));
    std::fs::write(&pw_file, "filed-s3cret\n").unwrap();
    let ok = format!("uri = \"rtsp://127.0.0.1:8554/a\"\nusername = \"u\"\npassword_file = {pw_file:?}\n");
    let unset = "uri = \"rtsp://127.0.0.1:8554/b\"\nusername = \"u\"\npassword_env = \"NOT_SET_ANYWHERE_42\"\n";
    let no_pw = "uri = \"rtsp://127.0.0.1:8554/c\"\nusername = \"u\"\n";
    let twice = "uri = \"rtsp://x:y@127.0.0.1:8554/d\"\nusername = \"u\"\npassword_env = \"HOME\"\n";
    let dir = ConfigDir::new("login", &global, &[("ok", &ok), ("unset", unset), ("nopw", no_pw), ("twice", twice)]);
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
    let _ = std::fs::remove_file(&pw_file);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    for want in [
        "pipelines/unset.toml:3: password_env: environment variable `NOT_SET_ANYWHERE_42` is not set",
        "pipelines/nopw.toml:2: username: needs a password",
        "pipelines/twice.toml:2: username: the uri already holds a user name",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("pipelines/ok.toml"), "the file-based login is fine:\n{stderr}");
    assert!(stderr.contains("3 config error(s)"), "{stderr}");
    assert!(!format!("{stderr}{}", text(&out.stdout)).contains("filed-s3cret"));
}

#[test]
fn zone_line_and_filter_mistakes_are_all_reported_with_their_keys() {
    let global = format!("gateway_id = \"t\"\n{}", inference_toml());
    let cam = format!(
        "uri = {:?}\n\
         [filters.unicorn]\nmin_area = 10\n\
         [filters.car]\nmin_area = 500\nmax_area = 100\n\
         [[zones]]\nname = \"drive\"\npolygon = [[0.1, 0.5], [0.6, 0.5]]\n\
         [[zones]]\nname = \"events\"\npolygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0]]\n\
         [[lines]]\nname = \"drive\"\npoints = [[0.5, 0.0], [0.5, 1.0]]\ndirection = \"north\"\n\
         [[lines]]\nname = \"gate\"\npoints = [[0.5, 0.0], [0.5, 1.0], [0.6, 1.0]]\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("rules", &global, &[("front", &cam)]);
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    // Each at the line of its key, listed from the top of the file down.
    let mut last = 0;
    for want in [
        "pipelines/front.toml:2: filters.unicorn: `unicorn` is not a label",
        "pipelines/front.toml:5: filters.car.min_area: filters for `car`: min_area = 500 is above max_area = 100",
        "pipelines/front.toml:9: zones[0].polygon: zone `drive`: polygon needs at least 3 points, got 2",
        "pipelines/front.toml:11: zones[1].name: `events` must be made of",
        "pipelines/front.toml:14: lines[0].name: `drive` is used by another zone or line",
        "pipelines/front.toml:16: lines[0].direction: `north` must be",
        "pipelines/front.toml:19: lines[1].points: a counting line has exactly 2 points, got 3",
    ] {
        let at = stderr.find(want).unwrap_or_else(|| panic!("missing {want:?} in:\n{stderr}"));
        assert!(at > last, "{want:?} is out of order in:\n{stderr}");
        last = at;
    }
}

/// One broken config: extra lookout.toml lines (after the working `[inference]`), camera
/// files, and the fragment the error must contain.
struct Broken {
    global: &'static str,
    cameras: Vec<(&'static str, String)>,
    fragment: &'static str,
}

fn broken_configs() -> Vec<Broken> {
    let clip = format!("uri = {:?}\n", media("bikes.mp4").display().to_string());
    let cam = |extra: &str| vec![("front", format!("{clip}{extra}"))];
    let raw = |body: &str| vec![("front", body.to_string())];
    let g = |global: &'static str, fragment: &'static str| Broken { global, cameras: cam(""), fragment };
    let c = |cameras: Vec<(&'static str, String)>, fragment: &'static str| Broken { global: "", cameras, fragment };
    vec![
        g("gateway_id = \"gw one\"\n", "lookout.toml:1: gateway_id: `gw one` may only hold letters"),
        g("gatway_id = \"gw\"\n", "did you mean `gateway_id`?"),
        g("gateway_id = \n", "lookout.toml:1: column 14: TOML syntax: string values must be quoted"),
        g("shutdown_timeout_seconds = 0\n", "lookout.toml:1: shutdown_timeout_seconds: 0 must be above 0"),
        g("[mqtt]\nport = 0\n", "lookout.toml:6: mqtt.port: must be between 1 and 65535"),
        g("[mqtt]\nhost = \"\"\n", "lookout.toml:6: mqtt.host: must not be empty"),
        g(
            "[mqtt]\ntopic_prefix = \"a/#\"\n",
            "lookout.toml:6: mqtt.topic_prefix: `a/#` must be non-empty, hold no '+' or '#'",
        ),
        g("[mqtt]\nkeepalive_seconds = 1\n", "lookout.toml:6: mqtt.keepalive_seconds: must be at least 5"),
        g("[mqtt]\nmax_inflight = 0\n", "lookout.toml:6: mqtt.max_inflight: must be between 1 and 65534"),
        g(
            "[mqtt]\nreconnect_max_seconds = 0\n",
            "lookout.toml:6: mqtt.reconnect_max_seconds: 0 must be between 0.1 and 3600",
        ),
        g("[mqtt]\nusername = \"u\"\n", "lookout.toml:6: mqtt.username: needs a password"),
        g(
            "[mqtt]\npassword_env = \"X\"\n",
            "lookout.toml: mqtt.username: is needed with password_env or password_file",
        ),
        g(
            "[mqtt]\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
            "lookout.toml:7: mqtt.password_file: can't read /nonexistent/pw",
        ),
        g("[mqtt]\n[spool]\nmax_bytes = 100\n", "lookout.toml:7: spool.max_bytes: must be at least 4096"),
        g("[stats]\ninterval_seconds = 0\n", "lookout.toml:6: stats.interval_seconds: must be at least 1"),
        g(
            "[metrics]\nlisten = \"localhost\"\n",
            "lookout.toml:6: metrics.listen: `localhost` is not an address and port",
        ),
        g("[snapshots]\nretain_days = 0\n", "lookout.toml:6: snapshots.retain_days: 0 must be above 0"),
        g("[detect]\nfps = 500\n", "pipelines/front.toml: detect.fps: 500 must be above 0 and at most 120"),
        c(raw("uri = \"\"\n"), "pipelines/front.toml:1: uri: must not be empty"),
        c(
            raw("uri = \"/nonexistent/clip.mp4\"\n"),
            "pipelines/front.toml:1: uri: /nonexistent/clip.mp4 does not exist or is not a file",
        ),
        c(raw("uri = \"test://unicorn\"\n"), "pipelines/front.toml:1: uri: `test://unicorn`: unknown test pattern"),
        c(raw("uri = \"gopher://cam/x\"\n"), "pipelines/front.toml:1: uri: `gopher://` is not supported"),
        c(raw("uri = \"rtsp:///stream1\"\n"), "pipelines/front.toml:1: uri: `rtsp:///stream1` has no host"),
        c(raw("url = \"rtsp://cam/x\"\n"), "pipelines/front.toml:1: url: unknown field `url`"),
        c(
            cam("on_error = \"explode\"\n"),
            "pipelines/front.toml:2: on_error: `explode` must be \"reconnect\" or \"fail\"",
        ),
        c(
            raw("uri = \"rtsp://cam/x\"\nrtsp_transport = \"quic\"\n"),
            "pipelines/front.toml:2: rtsp_transport: `quic` must be",
        ),
        c(cam("decoder_threads = 0\n"), "pipelines/front.toml:2: decoder_threads: must be between 1 and 64"),
        c(
            cam("decoder = [\"bad name!\"]\n"),
            "pipelines/front.toml:2: decoder[0]: `bad name!` is not a GStreamer element name",
        ),
        c(raw("uri = \"rtsp://cam/x\"\nloop = true\n"), "pipelines/front.toml:2: loop: only applies to file sources"),
        c(cam("stall_timeout_seconds = -1\n"), "pipelines/front.toml:2: stall_timeout_seconds: -1 must be above 0"),
        c(cam("stal_timeout_seconds = 5\n"), "did you mean `stall_timeout_seconds`?"),
        c(cam("[detect]\nfps = \"five\"\n"), "pipelines/front.toml:3: detect.fps: "),
        c(cam("[detect]\nmin_score = 2\n"), "pipelines/front.toml:3: detect.min_score: 2 must be between 0 and 1"),
        c(
            cam("[detect]\nlabels = [\"unicorn\"]\n"),
            "pipelines/front.toml:3: detect.labels[0]: `unicorn` is not a label of the model",
        ),
        c(cam("[track]\nmin_hits = 0\n"), "pipelines/front.toml:3: track.min_hits: 0 must be between 1 and 100"),
        c(
            cam("[track]\nlow_score = 0.9\n"),
            "pipelines/front.toml:3: track.low_score: 0.9 must be between 0 and detect.min_score",
        ),
        c(
            cam("[filters.unicorn]\nmin_area = 1\n"),
            "pipelines/front.toml:2: filters.unicorn: `unicorn` is not a label",
        ),
        c(
            cam("[[zones]]\nname = \"z\"\npolygon = [[0.1, 0.5], [0.6, 0.5]]\n"),
            "pipelines/front.toml:4: zones[0].polygon: zone `z`: polygon needs at least 3 points, got 2",
        ),
        c(
            cam("[[zones]]\nname = \"events\"\npolygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0]]\n"),
            "pipelines/front.toml:3: zones[0].name: `events` must be made of",
        ),
        c(
            cam(
                "[[zones]]\nname = \"gate\"\npolygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 1.0]]\n[[lines]]\nname = \"gate\"\npoints = [[0.5, 0.0], [0.5, 1.0]]\n",
            ),
            "pipelines/front.toml:6: lines[0].name: `gate` is used by another zone or line",
        ),
        c(
            cam("[[lines]]\nname = \"l\"\npoints = [[0.5, 0.0], [0.5, 1.0]]\ndirection = \"north\"\n"),
            "pipelines/front.toml:5: lines[0].direction: `north` must be",
        ),
        c(
            cam("[[lines]]\nname = \"l\"\npoints = [[0.5, 0.0]]\n"),
            "pipelines/front.toml:4: lines[0].points: a counting line has exactly 2 points, got 1",
        ),
        c(cam("[snapshots]\nquality = 0\n"), "pipelines/front.toml:3: snapshots.quality: 0 must be between 1 and 100"),
        c(
            cam("username = \"u\"\npassword_env = \"HOME\"\n"),
            "pipelines/front.toml:2: username: only applies to rtsp:// and http(s)://",
        ),
        c(
            raw("uri = \"rtsp://cam/x\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n"),
            "pipelines/front.toml:3: password_file: can't read /nonexistent/pw",
        ),
        c(
            vec![("front door", clip.clone())],
            "pipelines/front door.toml: (file name): camera name `front door` may only hold",
        ),
        c(
            vec![("front-door", clip.clone()), ("front_door", clip.clone())],
            "pipelines/front_door.toml: (file name): camera `front_door` collides with `front-door`",
        ),
        c(
            cam("[track]\nlabel_groups = [[\"car\", \"unicorn\"]]\n"),
            "pipelines/front.toml:3: track.label_groups[0][1]: `unicorn` is not a label",
        ),
        c(
            cam("[track]\nlabel_groups = [[\"car\", \"truck\"], [\"bus\", \"car\"]]\n"),
            "pipelines/front.toml:3: track.label_groups[1][1]: `car` is already in group 0",
        ),
        c(
            cam("[track]\nlabel_groups = [[\"car\"]]\n"),
            "pipelines/front.toml:3: track.label_groups[0]: a group needs at least 2 labels",
        ),
        c(
            cam("[detect]\nlabels = [\"person\", \"cars\"]\n"),
            "pipelines/front.toml:3: detect.labels[1]: `cars` is not a label of the model: did you mean `car`? Its labels are names such as person",
        ),
        // Syntax errors point at the line and column; a mask's problem at its polygon.
        c(
            raw("uri = \"rtsp://cam/x\"\n[detect]\nfps = = 5\n"),
            "pipelines/front.toml:3: column 7: TOML syntax: extra `=`",
        ),
        c(
            raw("uri = \"rtsp://cam/x\"\nuri = \"rtsp://cam/y\"\n"),
            "pipelines/front.toml:2: column 1: TOML syntax: duplicate key",
        ),
        c(
            cam("masks = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.2], [0.0, 0.2]],\n  [[0.1, 0.1], [0.2, 0.2]]]\n"),
            "pipelines/front.toml:3: masks[1]: filters mask 2: polygon needs at least 3 points, got 2",
        ),
    ]
}

#[test]
fn a_table_of_broken_configs_each_gets_its_error_and_none_panics() {
    let cases = broken_configs();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let global = format!("gateway_id = \"t\"\n{}{}", inference_toml(), case.global);
        // Global lines that start a table must follow [inference], not precede it.
        let global = if case.global.starts_with("gateway_id")
            || case.global.starts_with("gatway_id")
            || case.global.starts_with("shutdown")
        {
            format!("{}\n{}", case.global, inference_toml())
        } else {
            global
        };
        let cams: Vec<(&str, &str)> = case.cameras.iter().map(|(n, b)| (*n, b.as_str())).collect();
        let dir = ConfigDir::new(&format!("broken{i}"), &global, &cams);
        let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(30));
        let stderr = text(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains(case.fragment) || stderr.contains("panicked") {
            failures.push(format!(
                "case {i}: want exit 2 and {:?}; got {:?}:\n{stderr}",
                case.fragment,
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn check_warns_about_exposed_secrets_and_unwritable_state_folders_but_passes() {
    use std::os::unix::fs::PermissionsExt;
    let pw = std::env::temp_dir().join(format!("lookout-test-open-pw-{}", std::process::id()));
    std::fs::write(&pw, "open-s3cret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let blocker = std::env::temp_dir().join(format!("lookout-test-blocker-{}", std::process::id()));
    std::fs::write(&blocker, "a file where a folder should be").unwrap();
    let global = format!(
        "gateway_id = \"t\"\n[mqtt]\nusername = \"u\"\npassword_file = {:?}\n[spool]\ndir = {:?}\n{}",
        pw.display().to_string(),
        blocker.join("spool").display().to_string(),
        inference_toml()
    );
    let in_uri = "uri = \"rtsp://admin:uri-s3cret@127.0.0.1/x\"\n";
    let dir = ConfigDir::new("audit", &global, &[("door", in_uri)]);
    std::fs::set_permissions(dir.path.join("pipelines/door.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(30));
    let _ = std::fs::remove_file(&pw);
    let _ = std::fs::remove_file(&blocker);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "warnings don't fail the check: {stderr}");
    for want in [
        "warning: pipelines/door.toml:1: uri: the file is readable by every user and its uri holds a password",
        "warning: lookout.toml:4: mqtt.password_file: ",
        "is readable by every user; `chmod 600` it",
        "warning: lookout.toml:6: spool.dir: ",
        "is not a directory",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(!format!("{stdout}{stderr}").contains("s3cret"), "no secret printed:\n{stdout}{stderr}");
}

#[test]
fn tls_files_are_read_and_checked_offline_and_named_by_key() {
    let pki = TestPki::new("check");
    let cam = format!("uri = {:?}\n", media("bikes.mp4").display().to_string());
    let check = |tls: &str| {
        let global = format!("gateway_id = \"t\"\n[mqtt]\n[mqtt.tls]\n{tls}\n{}", inference_toml());
        let dir = ConfigDir::new("tls-check", &global, &[("front", &cam)]);
        let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
        (out.status.code(), text(&out.stderr))
    };
    let f = |n: &str| pki.file(n).display().to_string();

    let (code, stderr) = check(&format!(
        "ca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}",
        f("ca.pem"),
        f("client.pem"),
        f("client.key")
    ));
    assert_eq!(code, Some(0), "{stderr}");
    // The system bundle (ca-certificates, installed by scripts/setup) when no ca_file is given.
    let (code, stderr) = check("");
    assert_eq!(code, Some(0), "{stderr}");

    std::fs::write(pki.file("garbage.pem"), "not a certificate\n").unwrap();
    let (code, stderr) = check(&format!(
        "ca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}",
        f("missing.pem"),
        f("garbage.pem"),
        f("ca.pem") // a certificate where the key should be
    ));
    assert_eq!(code, Some(2), "{stderr}");
    for want in [
        "lookout.toml:4: mqtt.tls.ca_file: can't read ",
        "missing.pem",
        "lookout.toml:5: mqtt.tls.client_cert_file: ",
        "garbage.pem holds no PEM certificate",
        "lookout.toml:6: mqtt.tls.client_key_file: ",
        "ca.pem holds no PEM private key",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }

    let (code, stderr) = check(&format!("ca_file = {:?}\nclient_cert_file = {:?}", f("ca.pem"), f("client.pem")));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("mqtt.tls.client_key_file: is needed with client_cert_file"), "{stderr}");

    // TLS moves the default port to 8883; an explicit port and `enabled = false` still rule.
    for (tls, port) in [
        (format!("[mqtt.tls]\nca_file = {:?}\n", f("ca.pem")), 8883),
        ("[mqtt.tls]\nenabled = false\n".to_string(), 1883),
        ("".to_string(), 1883),
    ] {
        let global = format!("gateway_id = \"t\"\n[mqtt]\n{tls}{}", inference_toml());
        let dir = ConfigDir::new("tls-port", &global, &[("front", &cam)]);
        let spec = lookout::config::load(&dir.path).unwrap_or_else(|e| panic!("{e}"));
        let mqtt = spec.mqtt.expect("mqtt");
        assert_eq!((mqtt.port, mqtt.tls.is_some()), (port, port == 8883), "{tls}");
    }

    // A key that is not the certificate's.
    let (code, stderr) = check(&format!(
        "ca_file = {:?}\nclient_cert_file = {:?}\nclient_key_file = {:?}",
        f("ca.pem"),
        f("client.pem"),
        f("server.key")
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("mqtt.tls.client_key_file: the client key does not fit the client certificate"),
        "{stderr}"
    );
}

#[test]
fn link_policies_that_cannot_be_honoured_are_config_errors() {
    let global = format!(
        "gateway_id = \"t\"\n{}\n[links.events]\nwhen_full = \"drop_oldest\"\n[links.detections]\ncapacity = 0\n[links.frames]\nwhen_full = \"block\"\n",
        inference_toml()
    );
    let clip = media("bikes.mp4").display().to_string();
    // A file may block (it waits for the detector); a live camera inheriting block may not.
    let file = format!("uri = {clip:?}\n");
    let live = "uri = \"test://ball\"\n";
    let own = format!(
        "uri = {clip:?}\n[links.frames]\ncapacity = 65\nwhen_full = \"drop_newer\"\n[links.detections]\nwhen_full = \"drop_newest\"\n"
    );
    let events_here = format!("uri = {clip:?}\n[links.events]\ncapacity = 4\n");
    let dir =
        ConfigDir::new("links", &global, &[("file", &file), ("live", live), ("own", &own), ("events", &events_here)]);
    let err = lookout::config::load(&dir.path).expect_err("bad links");
    let all = err.to_string();
    for want in [
        "lookout.toml:7: links.events.when_full: when_full = \"drop_oldest\" would drop events (an end or a line crossing lost for good) silently; the events link must never drop: only \"block\" is allowed",
        "lookout.toml:9: links.detections.capacity: capacity 0: a link must hold at least 1 item",
        "pipelines/live.toml: links.frames.when_full: when_full = \"block\" on a live camera would stall its decoder",
        "(set in lookout.toml [links])",
        "pipelines/own.toml:4: links.frames.when_full: `drop_newer` must be \"drop_oldest\", \"drop_newest\" or \"block\"",
        "pipelines/own.toml:6: links.detections.when_full: when_full = \"drop_newest\" would drop inferred frames",
        "pipelines/events.toml:2: links.events: unknown field `events`",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(!all.contains("pipelines/file.toml"), "a file may block:\n{all}");
    assert_eq!(all.matches("capacity 0").count(), 1, "a global mistake is reported once, not per camera:\n{all}");
    assert!(all.contains("7 config error(s)"), "{all}");
}

#[test]
fn links_and_motion_take_defaults_then_global_then_camera_values() {
    let global =
        format!("gateway_id = \"t\"\n{}\n[links.frames]\ncapacity = 4\n[motion]\nthreshold = 30\n", inference_toml());
    let clip = media("bikes.mp4").display().to_string();
    let plain = format!("uri = {clip:?}\n");
    let own = format!(
        "uri = {clip:?}\n[links.frames]\nwhen_full = \"drop_newest\"\n[motion]\nenabled = true\nmax_idle_detect_seconds = 3\n"
    );
    let dir = ConfigDir::new("linkdefaults", &global, &[("a", &plain), ("b", &own)]);
    let spec = lookout::config::load(&dir.path).unwrap_or_else(|e| panic!("{e}"));
    use lookout::link::{LinkSpec, WhenFull};
    let (a, b) = (&spec.cameras[0], &spec.cameras[1]);
    assert_eq!(a.links.frames, LinkSpec { capacity: 4, when_full: WhenFull::DropOldest });
    assert_eq!(b.links.frames, LinkSpec { capacity: 4, when_full: WhenFull::DropNewest });
    assert_eq!(
        a.links.detections,
        LinkSpec { capacity: lookout::link::DETECTIONS_LINK_CAPACITY, when_full: WhenFull::Block }
    );
    assert_eq!(spec.events_link, LinkSpec { capacity: lookout::link::EVENT_LINK_CAPACITY, when_full: WhenFull::Block });
    assert!(!a.source.motion.enabled && b.source.motion.enabled);
    assert_eq!((a.source.motion.threshold, b.source.motion.threshold), (30, 30));
    assert_eq!((a.source.motion.max_idle_detect_seconds, b.source.motion.max_idle_detect_seconds), (10.0, 3.0));
}

#[test]
fn motion_mistakes_are_config_errors() {
    let global = format!("gateway_id = \"t\"\n{}\n[motion]\nmin_area = 0\n", inference_toml());
    let cam = format!(
        "uri = {:?}\n[motion]\nthreshold = 0\nmax_idle_detect_seconds = -1\nframe_height = 4\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new("motionerr", &global, &[("a", &cam)]);
    let all = lookout::config::load(&dir.path).expect_err("bad motion").to_string();
    for want in [
        "lookout.toml:7: motion.min_area: 0 must be a fraction of the frame above 0",
        "pipelines/a.toml:3: motion.threshold: 0 must be between 1 and 254",
        "pipelines/a.toml:4: motion.max_idle_detect_seconds: -1 must be above 0",
        "pipelines/a.toml:5: motion.frame_height: 4 must be between 8 and 720",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(all.contains("4 config error(s)"), "{all}");
}

#[test]
fn label_groups_default_from_the_gateway_and_check_shows_them() {
    let global = format!(
        "gateway_id = \"t\"\n[track]\nlabel_groups = [[\"car\", \"truck\", \"bus\"], [\"bicycle\", \"motorcycle\"]]\n{}",
        inference_toml()
    );
    let clip = format!("uri = {:?}\n", media("bikes.mp4").display().to_string());
    let own = format!("{clip}[track]\nlabel_groups = []\n");
    let dir = ConfigDir::new("groups", &global, &[("a", &clip), ("b", &own)]);
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line = |cam: &str| {
        stdout.lines().find(|l| l.trim_start().starts_with(&format!("{cam}: "))).unwrap_or_default().to_string()
    };
    assert!(line("a").ends_with("; tracked as one: car+truck+bus, bicycle+motorcycle"), "{stdout}");
    assert!(!line("b").contains("tracked as one"), "a camera's own empty list turns the groups off: {stdout}");
}

/// A 10 MB value gives a one-line error, from `check` and from `run`; a file that is not UTF-8
/// is placed by line and byte.
#[test]
fn huge_values_are_shortened_in_errors_and_bad_utf8_is_placed() {
    let global = format!("gateway_id = \"t\"\n{}", inference_toml());
    let huge = format!("uri = \"{}\"\n", "x".repeat(10 * 1024 * 1024));
    let long = format!("uri = \"test://ball\"\n[detect]\nfps = \"{}\"\n", "z".repeat(5000));
    let dir = ConfigDir::new("huge", &global, &[("huge", &huge), ("long", &long)]);
    std::fs::write(dir.path.join("pipelines/latin1.toml"), b"uri = \"test://ball\"\n# caf\xe9\n").unwrap();
    let check = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(30));
    assert_eq!(check.status.code(), Some(2));
    // `run` starts without both cameras (each `failed`) and stays up for a fix.
    let mut d = Daemon::start(&dir.path);
    for cam in ["huge", "long", "latin1"] {
        d.wait_for(0, Duration::from_secs(30), |v| is_status(v, cam, "failed")).expect("failed status");
    }
    let run = d.terminate();
    let statuses: String = d.lines.iter().map(|v| v.to_string()).collect();
    assert!(statuses.len() < 4000, "{} bytes of statuses", statuses.len());
    for (what, out) in [("check", check), ("run", run)] {
        let stderr = text(&out.stderr);
        assert!(
            stderr.len() < 4000,
            "{what}: {} bytes of errors:\n{}",
            stderr.len(),
            &stderr[..stderr.len().min(3000)]
        );
        assert!(stderr.contains("pipelines/huge.toml:1: uri: ") && stderr.contains("… (10485"), "{stderr}");
        assert!(
            stderr.contains("pipelines/long.toml:3: detect.fps: invalid type: string \"zzz")
                && stderr.contains("(5003 characters)"),
            "{stderr}"
        );
        assert!(
            stderr.contains("pipelines/latin1.toml:2: byte 6: not valid UTF-8; save the file as UTF-8"),
            "{stderr}"
        );
    }
}

/// One bad camera file, after a reboot, must not keep every camera down: `lookout run` starts
/// the others and reports it `failed` with its file, line and error; a fix and a reload bring it
/// up. A bad lookout.toml still stops the start, and `lookout check` still refuses both.
#[test]
fn a_bad_camera_file_takes_down_that_camera_only() {
    let global = format!("gateway_id = \"t\"\n[stats]\ninterval_seconds = 1\n{}", inference_toml());
    let good = "uri = \"test://ball\"\n[detect]\nfps = 2\n";
    let bad = "uri = \"test://ball\"\n[detect]\nfps = \"fast\"\n";
    let dir = ConfigDir::new("onebad", &global, &[("good", good), ("bad", bad)]);
    let path = dir.path.to_str().unwrap();

    let out = run_lookout(&["check", "--config-dir", path], &[], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "check refuses any error");
    // What systemd's ExecStartPre runs: only what stops the start fails it.
    let out = run_lookout(&["check", "--for-start", "--config-dir", path], &[], Duration::from_secs(30));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("camera bad will not start")
            && stderr.contains("pipelines/bad.toml:3: detect.fps: invalid type"),
        "{stderr}"
    );
    assert!(!stderr.contains("no camera configured"), "{stderr}");

    let mut d = Daemon::start(&dir.path);
    let (_, failed) = d
        .wait_for(0, Duration::from_secs(30), |v| is_status(v, "bad", "failed"))
        .expect("the bad camera is reported failed");
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("pipelines/bad.toml:3: detect.fps: invalid type") && reason.contains("reload"), "{failed}");
    d.wait_for(0, Duration::from_secs(30), |v| is_status(v, "good", "streaming")).expect("the good camera runs");

    // Fixed and reloaded: it starts as a new camera would.
    let mark = d.mark();
    std::fs::write(dir.path.join("pipelines/bad.toml"), good).unwrap();
    let _ = std::process::Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
    d.wait_for(mark, Duration::from_secs(30), |v| is_status(v, "bad", "streaming"))
        .expect("streaming after the fix and a reload");
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A bad lookout.toml stops the start, whatever the cameras.
    std::fs::write(dir.path.join("lookout.toml"), format!("{global}[mqtt]\nport = 0\n")).unwrap();
    let out = run_lookout(&["run", "--config-dir", path], &[], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("lookout.toml:") && text(&out.stderr).contains("mqtt.port"),
        "{}",
        text(&out.stderr)
    );
    let out = run_lookout(&["check", "--for-start", "--config-dir", path], &[], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
}
