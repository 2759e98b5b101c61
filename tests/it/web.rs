//! The console's HTTP side against a real daemon: the API documented in docs/api/openapi.yaml,
//! frames, and writes (refused without the token or with errors, applied with them).

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::*;

/// One HTTP/1.1 request: (status, headers, body bytes).
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (code, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..(i + 2 + n).min(b.len())]);
        b = &b[(i + 4 + n).min(b.len())..];
    }
    out
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (code, _, body) = request(port, "GET", path, &[], b"");
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

const TOKEN: &str = "0123456789abcdef0123";

#[test]
fn the_console_api_frames_and_writes_against_a_running_daemon() {
    let port = free_port();
    let dir = ConfigDir::new(
        "web",
        &format!(
            "gateway_id = \"w\"\n[web]\nlisten = \"127.0.0.1:{port}\"\nallow_config_writes = true\ntoken_file = \"token\"\n{}",
            inference_toml()
        ),
        &[
            (
                "ball",
                "# the ball\nuri = \"test://ball\"\n[detect]\nfps = 5\n\n[[zones]]\nname = \"left\"\npolygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]\n",
            ),
            ("snow", "uri = \"test://snow\"\n[detect]\nfps = 2\n"),
        ],
    );
    std::fs::write(dir.path.join("token"), format!("{TOKEN}\n")).unwrap();
    let mut d = Daemon::start(&dir.path);
    assert!(d.wait_for(0, Duration::from_secs(30), |v| is_status(v, "ball", "streaming")).is_some());

    // The overview's data: every camera, with counters that move.
    let inferred = || {
        let v = json(port, "/api/cameras");
        v["cameras"].as_array().unwrap().iter().find(|c| c["name"] == "ball").unwrap()["books"]["inferred"]
            .as_u64()
            .unwrap()
    };
    let first = inferred();
    assert!(wait_until(Duration::from_secs(20), || inferred() > first), "counters move");
    let v = json(port, "/api/cameras");
    let names: Vec<&str> = v["cameras"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ball", "snow"]);

    // Frames: raw and annotated, JPEG.
    for path in ["/api/cameras/ball/frame.jpg", "/api/cameras/ball/frame.jpg?annotate=1"] {
        let (code, head, body) = request(port, "GET", path, &[], b"");
        assert_eq!(code, 200, "{path}: {head}");
        assert!(body.starts_with(&[0xFF, 0xD8]), "{path}: not a JPEG");
        image::load_from_memory(&body).expect("decodes");
    }
    let cam = json(port, "/api/cameras/ball");
    assert_eq!(cam["zones"][0]["name"], "left", "{cam}");

    // Every path in the OpenAPI file answers (GETs with a real camera).
    let spec = std::fs::read_to_string(repo().join("docs/api/openapi.yaml")).unwrap();
    let paths: Vec<&str> =
        spec.lines().filter_map(|l| l.strip_prefix("  /")).map(|l| l.trim_end_matches(':')).collect();
    assert!(paths.len() >= 10, "{paths:?}");
    for p in &paths {
        let path = format!("/{p}").replace("{name}", "ball").replace("{object_id}", "nothing");
        let method = if path.ends_with("/shapes") || path == "/api/check" { "POST" } else { "GET" };
        if path.ends_with("/stream") {
            continue; // never ends; covered by the browser
        }
        let (code, _, body) =
            request(port, method, &path, &[("x-lookout-write", "1"), ("content-type", "application/json")], b"{}");
        // A 404 with the router's own text means the path is not served.
        assert!(!String::from_utf8_lossy(&body).contains("the console is at /"), "{path}: not served");
        assert!(code != 0 && code != 405, "{path}: {code}");
    }
    // Names outside the config are refused, whatever they hold.
    for bad in ["../lookout", "nope", "..%2Flookout", "ball.toml"] {
        let (code, _, _) = request(port, "GET", &format!("/api/cameras/{bad}/config"), &[], b"");
        assert_eq!(code, 404, "{bad}");
    }

    // Writes: refused without the token, with a wrong one, without the header, and with errors;
    // the file is untouched each time.
    let file = dir.path.join("pipelines/ball.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let config = json(port, "/api/cameras/ball/config");
    let text = config["toml"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {TOKEN}");
    let edited = text.replace("name = \"left\"", "name = \"west\"");
    for (headers, want) in [
        (vec![("x-lookout-write", "1")], 401),
        (vec![("x-lookout-write", "1"), ("authorization", "Bearer wrongwrongwrongwrong")], 401),
        (vec![("authorization", bearer.as_str())], 403),
    ] {
        let (code, _, _) = request(port, "PUT", "/api/cameras/ball/config", &headers, edited.as_bytes());
        assert_eq!(code, want, "{headers:?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    }
    let auth = [("x-lookout-write", "1"), ("authorization", bearer.as_str())];
    let broken = text.replace("fps = 5", "fps = \"fast\"");
    let (code, _, body) = request(port, "PUT", "/api/cameras/ball/config", &auth, broken.as_bytes());
    assert_eq!(code, 422);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["problems"][0]["line"], 4, "{v}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    // Check says the same, without writing.
    let body = serde_json::json!({"camera": "ball", "toml": broken}).to_string();
    let (code, _, out) = request(port, "POST", "/api/check", &[("x-lookout-write", "1")], body.as_bytes());
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((code, v["ok"].as_bool()), (200, Some(false)), "{v}");
    let (code, _, _) = request(port, "POST", "/api/check", &[], body.as_bytes());
    assert_eq!(code, 403, "check needs the header too");
    // Too big.
    let (code, _, _) = request(port, "PUT", "/api/cameras/ball/config", &auth, &vec![b'#'; 300_000]);
    assert_eq!(code, 413);

    // A good save: written, the old file kept, comments kept, applied to that camera only.
    let mark = d.mark();
    let (code, _, body) = request(port, "PUT", "/api/cameras/ball/config", &auth, edited.as_bytes());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let now = std::fs::read_to_string(&file).unwrap();
    assert!(now.contains("name = \"west\"") && now.starts_with("# the ball"), "{now}");
    assert_eq!(std::fs::read_to_string(dir.path.join("pipelines/ball.toml.bak")).unwrap(), before);
    assert!(d.wait_for(mark, Duration::from_secs(30), |v| is_status(v, "ball", "stopped")).is_some());
    assert!(d.wait_for(mark, Duration::from_secs(30), |v| is_status(v, "ball", "streaming")).is_some());
    assert!(wait_until(Duration::from_secs(10), || json(port, "/api/cameras/ball")["zones"][0]["name"] == "west"));
    let out = d.terminate();
    let stderr = text_of(&out.stderr);
    assert!(!d_lines_have(&d, "snow", "stopped"), "only the saved camera restarts");
    assert!(stderr.contains("console: camera file saved") && stderr.contains("who=token"), "{stderr}");
    assert!(stderr.contains("console: write refused"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "the token never reaches the log");
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// Whether a status message put `camera` in `state` before the end.
fn d_lines_have(d: &Daemon, camera: &str, state: &str) -> bool {
    d.lines
        .iter()
        .take_while(|v| !(v["type"] == "stats" && v["final"] == true))
        .any(|v| is_status(v, camera, state) && v["reason"] != "shutdown")
}

#[test]
fn check_refuses_a_console_open_to_the_network_without_a_token() {
    let dir = ConfigDir::new("webcheck", &format!("[web]\nlisten = \"0.0.0.0:8080\"\n{}", inference_toml()), &[]);
    let out = run_lookout(&["check", "--config-dir", dir.path.to_str().unwrap()], &[], Duration::from_secs(60));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("lookout.toml:2: web.listen: 0.0.0.0:8080 is reachable from other machines"), "{stderr}");
}
