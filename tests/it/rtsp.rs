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

impl RtspServer {
    fn serve(clip: &std::path::Path) -> RtspServer {
        gst::init().unwrap();
        let port = free_port();
        let launch = format!("( filesrc location={} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )", clip.display());
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
    let camera = format!("uri = {uri:?}\n[detect]\nfps = 5\nmin_score = 0.4\n");
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

    // Wait for detections of a person and a bicycle from the stream, then stop the daemon.
    let mut lines = Vec::new();
    let mut labels = std::collections::BTreeSet::new();
    let seen = wait_until(Duration::from_secs(60), || {
        for l in rx.try_iter() {
            if let Ok(v) = serde_json::from_str::<Value>(&l) {
                for d in v["detections"].as_array().into_iter().flatten() {
                    labels.insert(d["label"].as_str().unwrap_or("").to_string());
                }
            }
            lines.push(l);
        }
        labels.contains("person") && labels.contains("bicycle")
    });
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = wait_output(child, Duration::from_secs(20));
    lines.extend(rx.try_iter());
    let stderr = text(&out.stderr);
    assert!(seen, "labels seen over RTSP: {labels:?}\nstderr: {stderr}");
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
