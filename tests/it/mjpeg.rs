//! `lookout run` on an HTTP MJPEG camera (multipart/x-mixed-replace), served on loopback by a
//! tiny server in this file that, like a cheap IP camera, wants HTTP basic auth.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;

/// Serves `jpeg` as an endless MJPEG stream at 10 frames/s to clients that log in as
/// `user:password`; others get 401. Stops when dropped.
struct MjpegCamera {
    port: u16,
    stop: Arc<AtomicBool>,
}

/// RFC 4648 base64, enough for a basic-auth header.
fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl MjpegCamera {
    fn serve(jpeg: Vec<u8>, user: &str, password: &str) -> MjpegCamera {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!("basic {}", base64(format!("{user}:{password}").as_bytes()));
        let jpeg = Arc::new(jpeg);
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let (jpeg, stop, expected) = (jpeg.clone(), stop2.clone(), expected.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut authorised = false;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("authorization")
                        {
                            authorised = value.trim().eq_ignore_ascii_case(&expected);
                        }
                    }
                    if !authorised {
                        let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        return;
                    }
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\nConnection: close\r\n\r\n");
                    // A camera's own frame clock: 10 frames per second, until stopped.
                    while !stop.load(Ordering::Relaxed) {
                        let head =
                            format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n", jpeg.len());
                        if conn
                            .write_all(head.as_bytes())
                            .and_then(|_| conn.write_all(&jpeg))
                            .and_then(|_| conn.write_all(b"\r\n"))
                            .is_err()
                        {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                });
            }
        });
        MjpegCamera { port, stop }
    }
}

impl Drop for MjpegCamera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[test]
fn an_http_mjpeg_camera_with_a_login_is_detected_on() {
    let camera = MjpegCamera::serve(std::fs::read(media("person.jpg")).unwrap(), "admin", "mjpeg-s3cret");
    let global = format!("gateway_id = \"mjpeg\"\n{}", inference_toml());
    let cam = format!(
        "uri = \"http://127.0.0.1:{}/video.mjpg\"\nusername = \"admin\"\npassword_env = \"PORCH_PASSWORD\"\n[detect]\nfps = 5\n",
        camera.port
    );
    let dir = ConfigDir::new("mjpeg", &global, &[("porch", &cam)]);
    let mut d = Daemon::start_with_env(&dir.path, &[("PORCH_PASSWORD", "mjpeg-s3cret")]);
    let streaming = d.wait_for(0, Duration::from_secs(60), |v| is_status(v, "porch", "streaming"));
    let detection = d.wait_for(0, Duration::from_secs(60), |v| v["type"] == "new" && v["label"] == "person");
    let out = d.terminate();
    let all =
        format!("{}\n{}", d.lines.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n"), text(&out.stderr));
    assert!(streaming.is_some(), "the camera streams:\n{all}");
    let (_, ev) = detection.unwrap_or_else(|| panic!("a person is tracked in the MJPEG stream:\n{all}"));
    assert_eq!((ev["width"].as_u64(), ev["height"].as_u64()), (Some(640), Some(424)), "{ev}");
    assert!(!all.contains("mjpeg-s3cret"), "the password leaked:\n{all}");
}
