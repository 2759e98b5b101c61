//! `lookout run` on an RTSP stream served on loopback by a real gst-rtsp-server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use serde_json::Value;

use crate::common::*;

/// Serves a clip at rtsp://127.0.0.1:<port>/clip until dropped.
struct RtspServer {
    port: u16,
    main_loop: glib::MainLoop,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How the test server misbehaves or locks its door.
#[derive(Default, Clone)]
struct ServeOptions {
    /// Require this user and password (RTSP basic auth).
    login: Option<(&'static str, &'static str)>,
    /// Stamp RTCP sender reports with the pipeline's running time instead of the wall clock,
    /// as a camera with an unset clock does: its "now" is near 1970.
    unset_clock: bool,
}

impl RtspServer {
    fn serve(clip: &std::path::Path) -> RtspServer {
        RtspServer::serve_with(clip, ServeOptions::default())
    }

    fn serve_with(clip: &std::path::Path, options: ServeOptions) -> RtspServer {
        gst::init().unwrap();
        let port = free_port();
        let launch = format!(
            "( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )",
            clip.display()
        );
        let (tx, rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::spawn(move || {
            let ctx = glib::MainContext::new();
            let main_loop = glib::MainLoop::new(Some(&ctx), false);
            let server = rtsp::RTSPServer::new();
            server.set_address("127.0.0.1");
            server.set_service(&port.to_string());
            let factory = rtsp::RTSPMediaFactory::new();
            factory.set_launch(&launch);
            factory.set_shared(true);
            if let Some((user, pw)) = options.login {
                let auth = rtsp::RTSPAuth::new();
                let token = rtsp::RTSPToken::builder().field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer").build();
                auth.add_basic(rtsp::RTSPAuth::make_basic(user, pw).as_str(), &token);
                server.set_auth(Some(&auth));
                let role = gst::Structure::builder("viewer")
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS.as_str(), true)
                    .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT.as_str(), true)
                    .build();
                factory.add_role_from_structure(&role);
            }
            if options.unset_clock {
                factory.connect_media_configure(|_, media| {
                    media.connect_prepared(|media| {
                        let Some(pipeline) = media.element().parent().and_then(|p| p.downcast::<gst::Bin>().ok())
                        else {
                            return;
                        };
                        for e in pipeline.iterate_recurse().into_iter().flatten() {
                            if e.factory().is_some_and(|f| f.name() == "rtpbin") {
                                e.set_property("use-pipeline-clock", true);
                            }
                        }
                    });
                });
            }
            server.mount_points().unwrap().add_factory("/clip", factory);
            let _id = server.attach(Some(&ctx)).unwrap();
            tx.send(main_loop.clone()).unwrap();
            main_loop.run();
        });
        let main_loop = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()));
        RtspServer { port, main_loop, thread: Some(thread) }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn run_detects_on_an_rtsp_stream_and_never_shows_the_password() {
    let server = RtspServer::serve(&media("bikes.mp4"));
    let uri = format!("rtsp://viewer:s3cretpw@127.0.0.1:{}/clip", server.port);
    let global = format!("gateway_id = \"rtsp\"\n{}", inference_toml());
    let camera = format!("uri = {uri:?}\n[detect]\nfps = 5\nmin_score = 0.4\n[events]\ndetections = true\n");
    let dir = ConfigDir::new("rtsp", &global, &[("gate", &camera)]);

    let mut child = Command::new(bin())
        .args(["run", "--config-dir", dir.path.to_str().unwrap()])
        .env("RUST_LOG", "info,ort=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    // Wait for detections of a person and a bicycle from the stream, and for the first frame
    // timed by an RTCP sender report (the server sends its first one a few seconds in), then
    // stop the daemon.
    let mut lines = Vec::new();
    let mut labels = std::collections::BTreeSet::new();
    let mut rtcp_timed = false;
    let seen = wait_until(Duration::from_secs(60), || {
        for l in rx.try_iter() {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                rtcp_timed |= v["capture_clock"] == "rtcp";
                for d in v["detections"].as_array().into_iter().flatten() {
                    labels.insert(d["label"].as_str().unwrap_or("").to_string());
                }
            }
            lines.push(l);
        }
        labels.contains("person") && labels.contains("bicycle") && rtcp_timed
    });
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = wait_output(child, Duration::from_secs(20));
    lines.extend(rx.try_iter());
    crate::schema::assert_valid_lines(&lines);
    let stderr = text(&out.stderr);
    assert!(seen, "labels seen over RTSP: {labels:?}, a frame timed by RTCP: {rtcp_timed}\nstderr: {stderr}");
    assert!(out.status.success(), "graceful stop on SIGTERM: {stderr}");

    let statuses: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "camera_status")
        .collect();
    assert_eq!(statuses[1]["state"], "streaming");
    assert_eq!(statuses[1]["uri"], format!("rtsp://viewer:***@127.0.0.1:{}/clip", server.port));
    // Once RTCP sender reports arrive, capture times come from the camera's clock, which here
    // (the same machine) agrees with ours to well within a second.
    let rtcp: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "detection" && v["capture_clock"] == "rtcp")
        .collect();
    assert!(!rtcp.is_empty(), "no event timed by RTCP:\n{}", lines.join("\n"));
    for ev in &rtcp {
        let t = humantime::parse_rfc3339(ev["captured_at"].as_str().unwrap()).unwrap();
        let age = std::time::SystemTime::now().duration_since(t).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        assert!(age < 60.0, "RTCP capture time {t:?} is plausible");
    }
    let all = format!("{}\n{stderr}", lines.join("\n"));
    assert!(!all.contains("s3cretpw"), "the password leaked:\n{all}");
    assert!(stderr.contains("camera gate: stopped"), "{stderr}");
}

#[test]
fn rtsp_login_from_the_environment_and_a_wrong_one_named_clearly() {
    let server = RtspServer::serve_with(
        &media("bikes.mp4"),
        ServeOptions { login: Some(("viewer", "Env-s3cret")), ..Default::default() },
    );
    let global = format!("gateway_id = \"rtsp-auth\"\n{}", inference_toml());
    let good = format!(
        "uri = \"rtsp://127.0.0.1:{}/clip\"\nusername = \"viewer\"\npassword_env = \"GATE_PASSWORD\"\n[events]\ndetections = true\n",
        server.port
    );
    let pw_file = std::env::temp_dir().join(format!("lookout-test-pw-{}", std::process::id()));
    std::fs::write(&pw_file, "wrong-pw\n").unwrap();
    let bad = format!(
        "uri = \"rtsp://127.0.0.1:{}/clip\"\nusername = \"viewer\"\npassword_file = {:?}\nreconnect_max_seconds = 2\n",
        server.port, pw_file
    );
    let dir = ConfigDir::new("rtsp-auth", &global, &[("gate", &good), ("yard", &bad)]);

    let mut d = Daemon::start_with_env(&dir.path, &[("GATE_PASSWORD", "Env-s3cret")]);
    let streaming = d.wait_for(0, Duration::from_secs(60), |v| is_status(v, "gate", "streaming"));
    let refused = d.wait_for(0, Duration::from_secs(60), |v| is_status(v, "yard", "reconnecting"));
    let detected = d.wait_for(0, Duration::from_secs(60), |v| v["type"] == "detection" && v["camera"] == "gate");
    let out = d.terminate();
    let stderr = text(&out.stderr);
    let all = format!("{}\n{stderr}", d.lines.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n"));
    let _ = std::fs::remove_file(&pw_file);
    assert!(streaming.is_some() && detected.is_some(), "the login from GATE_PASSWORD was accepted:\n{all}");
    let (_, refused) = refused.expect("the wrong password makes the camera reconnect");
    let reason = refused["reason"].as_str().unwrap_or("").to_lowercase();
    assert!(
        reason.contains("unauthorized") && reason.contains("check username"),
        "the reason names the login and the fix: {refused}"
    );
    assert!(!all.contains("Env-s3cret") && !all.contains("wrong-pw"), "a password leaked:\n{all}");
}

#[test]
fn a_camera_clock_far_from_ours_is_flagged_in_its_status() {
    let server = RtspServer::serve_with(&media("bikes.mp4"), ServeOptions { unset_clock: true, ..Default::default() });
    let global = format!("gateway_id = \"rtsp-skew\"\n{}", inference_toml());
    let camera = format!("uri = \"rtsp://127.0.0.1:{}/clip\"\nmax_clock_skew_seconds = 5\n", server.port);
    let dir = ConfigDir::new("rtsp-skew", &global, &[("gate", &camera)]);
    let mut d = Daemon::start(&dir.path);
    let skew = d.wait_for(0, Duration::from_secs(60), |v| {
        v["type"] == "camera_status"
            && v["camera"] == "gate"
            && v["reason"].as_str().is_some_and(|r| r.contains("clock"))
    });
    let out = d.terminate();
    let all =
        format!("{}\n{}", d.lines.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n"), text(&out.stderr));
    let (_, skew) = skew.unwrap_or_else(|| panic!("no clock warning in the status:\n{all}"));
    // The server's clock reads about 1970: decades behind ours, and the camera keeps streaming.
    let reason = skew["reason"].as_str().unwrap_or("");
    let secs: f64 =
        reason.split(" s ").next().and_then(|w| w.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0.0);
    assert!(reason.contains("behind") && secs > 1.0e9, "skew is decades behind: {skew}");
    assert_eq!(skew["state"], "streaming");
}
