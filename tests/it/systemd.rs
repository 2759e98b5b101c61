//! The systemd unit as systemd itself reads it, and sd_notify from a real `lookout run`.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// Lookout's unit lowers the exposure `systemd-analyze security` reports to at most this.
const MAX_EXPOSURE: f64 = 3.0;

fn systemd_analyze() -> Option<PathBuf> {
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].into_iter().map(PathBuf::from).find(|p| p.exists())
}

/// The unit in a temp folder with ExecStart= and friends pointing at the binary under test
/// (verify insists every command exists and is executable).
fn unit_copy(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("systemd/lookout.service")).unwrap();
    let path = dir.join("lookout.service");
    std::fs::write(&path, unit.replace("/usr/bin/lookout", bin().to_str().unwrap())).unwrap();
    path
}

/// `→ Overall exposure level for lookout.service: 1.8 OK 🙂` → 1.8
fn exposure(report: &str) -> Option<f64> {
    let line = report.lines().find(|l| l.contains("Overall exposure level"))?;
    line.rsplit_once(": ")?.1.split_whitespace().next()?.parse().ok()
}

#[test]
fn exposure_is_parsed_from_the_overall_line() {
    assert_eq!(exposure("x\n→ Overall exposure level for lookout.service: 1.8 OK 🙂\n"), Some(1.8));
    assert_eq!(exposure("no such line"), None);
}

#[test]
fn the_unit_verifies_and_its_security_exposure_is_at_most_3() {
    let Some(analyze) = systemd_analyze() else {
        eprintln!("SKIPPED: systemd-analyze not installed (Debian package `systemd`)");
        return;
    };
    let dir = ConfigDir::new("unit", "", &[]);
    let unit = unit_copy(&dir.path);

    let out = Command::new(&analyze).arg("verify").arg(&unit).output().unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    assert!(!stderr.contains("lookout.service:"), "verify warns about the unit:\n{stderr}");

    let out = Command::new(&analyze).args(["security", "--offline=true", "--no-pager"]).arg(&unit).output().unwrap();
    let report = text(&out.stdout);
    let level = exposure(&report).unwrap_or_else(|| panic!("no exposure figure in:\n{report}\n{}", text(&out.stderr)));
    eprintln!("systemd-analyze security --offline=true: exposure {level}");
    assert!(level <= MAX_EXPOSURE, "exposure {level} > {MAX_EXPOSURE}:\n{report}");
}

/// The notifications a daemon sent to our socket, in order.
pub struct NotifySocket {
    sock: UnixDatagram,
    pub path: PathBuf,
    pub got: Vec<String>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        NotifySocket { sock, path, got: Vec::new() }
    }

    /// Receive until `cond` holds on everything received so far, or `timeout` passes.
    pub fn wait_for(&mut self, timeout: Duration, cond: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while !cond(&self.got) {
            if Instant::now() > deadline {
                return false;
            }
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.got.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        true
    }

    pub fn count(got: &[String], msg: &str) -> usize {
        got.iter().filter(|m| *m == msg).count()
    }
}

#[test]
fn a_live_camera_notifies_ready_status_watchdog_and_stopping() {
    let ball = "uri = \"test://ball\"\n[detect]\nfps = 5\n";
    let dir = ConfigDir::new("notify", &format!("gateway_id = \"notify\"\n{}", inference_toml()), &[("ball", ball)]);
    let mut sock = NotifySocket::bind(&dir.path);
    // WATCHDOG_PID is left unset: then the watchdog is ours, as it is for systemd's main process.
    let mut d = Daemon::start_with_env(
        &dir.path,
        &[("NOTIFY_SOCKET", sock.path.to_str().unwrap()), ("WATCHDOG_USEC", "2000000")],
    );

    assert!(sock.wait_for(Duration::from_secs(60), |g| g.iter().any(|m| m == "READY=1")), "no READY=1: {:?}", sock.got);
    assert!(
        sock.wait_for(Duration::from_secs(30), |g| g.iter().any(|m| m.starts_with("STATUS=1 camera: 1 streaming"))),
        "no STATUS= with the camera streaming: {:?}",
        sock.got
    );
    let status = sock.got.iter().rfind(|m| m.starts_with("STATUS=")).unwrap();
    assert!(status.contains("frames/s inferred"), "{status}");
    // The watchdog interval is 2 s: a ping every second.
    assert!(
        sock.wait_for(Duration::from_secs(20), |g| NotifySocket::count(g, "WATCHDOG=1") >= 2),
        "fewer than 2 WATCHDOG=1: {:?}",
        sock.got
    );
    let ready_at = sock.got.iter().position(|m| m == "READY=1").unwrap();
    let first_ping = sock.got.iter().position(|m| m == "WATCHDOG=1").unwrap();
    assert!(ready_at < first_ping, "pings start once ready: {:?}", sock.got);
    assert_eq!(NotifySocket::count(&sock.got, "STOPPING=1"), 0);

    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        sock.wait_for(Duration::from_secs(5), |g| g.iter().any(|m| m == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM: {:?}",
        sock.got
    );
    assert_eq!(NotifySocket::count(&sock.got, "READY=1"), 1, "{:?}", sock.got);
    assert!(!text(&out.stderr).contains("stage thread stuck"), "{}", text(&out.stderr));
}

#[test]
fn sighup_is_acknowledged_and_does_not_stop_the_daemon() {
    let ball = "uri = \"test://ball\"\n[detect]\nfps = 2\n";
    let dir = ConfigDir::new(
        "hup",
        &format!("gateway_id = \"hup\"\n{}[stats]\ninterval_seconds = 1\n", inference_toml()),
        &[("ball", ball)],
    );
    let mut sock = NotifySocket::bind(&dir.path);
    let mut d = Daemon::start_with_env(&dir.path, &[("NOTIFY_SOCKET", sock.path.to_str().unwrap())]);
    assert!(sock.wait_for(Duration::from_secs(60), |g| g.iter().any(|m| m == "READY=1")), "no READY=1: {:?}", sock.got);
    let _ = Command::new("kill").args(["-HUP", &d.pid().to_string()]).status();
    // Still running and streaming after the SIGHUP: a fresh status line arrives.
    let mark = d.mark();
    d.wait_for(mark, Duration::from_secs(30), |v| v["type"] == "stats").expect("still publishing after SIGHUP");
    let out = d.terminate();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("SIGHUP"), "{stderr}");
}

#[test]
fn a_frozen_stage_stops_the_watchdog_pings_and_a_stop_still_ends_in_time() {
    let ball = "uri = \"test://ball\"\n[detect]\nfps = 5\n";
    let global = format!("gateway_id = \"freeze\"\nshutdown_timeout_seconds = 2\n{}", inference_toml());
    let dir = ConfigDir::new("freeze", &global, &[("ball", ball)]);
    let mut sock = NotifySocket::bind(&dir.path);
    let trigger = dir.path.join("freeze-now");
    // The test hook (feature `fault-injection`, on in test builds only) freezes objects-ball
    // once the trigger file exists.
    let hook = format!("objects-ball:{}", trigger.display());
    let mut d = Daemon::start_with_env(
        &dir.path,
        &[
            ("NOTIFY_SOCKET", sock.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
            ("LOOKOUT_TEST_FREEZE", hook.as_str()),
        ],
    );
    assert!(
        sock.wait_for(Duration::from_secs(60), |g| NotifySocket::count(g, "WATCHDOG=1") >= 3),
        "no pings while healthy: {:?}",
        sock.got
    );

    std::fs::write(&trigger, "").unwrap();
    let frozen = Instant::now();
    // Healthy, the pings come every second. Stuck for the limit (3 s, the floor), they stop:
    // wait for a silence of 5 s, at most 30 s.
    let mut last_count = NotifySocket::count(&sock.got, "WATCHDOG=1");
    let mut last_change = Instant::now();
    let silent = wait_until(Duration::from_secs(30), || {
        sock.wait_for(Duration::from_millis(200), |_| false);
        let n = NotifySocket::count(&sock.got, "WATCHDOG=1");
        if n != last_count {
            (last_count, last_change) = (n, Instant::now());
        }
        last_change.elapsed() >= Duration::from_secs(5)
    });
    assert!(silent, "the pings did not stop after the freeze: {:?}", sock.got);
    eprintln!("frozen stage: last ping {:.1} s after the freeze", last_change.duration_since(frozen).as_secs_f64());

    let stop = Instant::now();
    let out = d.terminate();
    let stderr = text(&out.stderr);
    assert!(
        stop.elapsed() < Duration::from_secs(10),
        "a stop with a frozen stage still ends by shutdown_timeout_seconds: {stderr}"
    );
    assert!(
        stderr.contains("stage thread stuck") && stderr.contains("objects-ball"),
        "the stuck thread is named: {stderr}"
    );
    assert!(stderr.contains("shutdown_timeout_seconds passed"), "{stderr}");
}

#[test]
fn the_debian_package_ships_files_that_exist_where_the_unit_expects_them() {
    // `cargo deb` itself is not run here (installing it takes minutes); its metadata is.
    let cargo = ::config::Config::builder()
        .add_source(::config::File::from(repo().join("Cargo.toml")).format(::config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize::<serde_json::Value>()
        .unwrap();
    let deb = &cargo["package"]["metadata"]["deb"];
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a[0].as_str().unwrap().to_string(), a[1].as_str().unwrap().to_string()))
        .collect();
    for (from, _) in &assets {
        if from != "target/release/lookout" {
            assert!(repo().join(from).exists(), "deb asset {from} is missing");
        }
    }
    let has = |to: &str| assets.iter().any(|(_, t)| t == to);
    assert!(has("usr/bin/"), "the binary goes to /usr/bin: {assets:?}");
    assert!(has("etc/lookout/lookout.toml"), "{assets:?}");
    assert!(has("usr/lib/tmpfiles.d/lookout.conf"), "{assets:?}");
    // The unit and the sysusers file come from systemd/ through cargo-deb's systemd support.
    let scripts = deb["systemd-units"]["unit-scripts"].as_str().unwrap();
    for f in ["lookout.service", "lookout.sysusers"] {
        assert!(repo().join(scripts).join(f).exists(), "{scripts}{f}");
    }
    assert!(repo().join(deb["maintainer-scripts"].as_str().unwrap()).join("postinst").exists());
    let unit = std::fs::read_to_string(repo().join("systemd/lookout.service")).unwrap();
    for line in [
        "ExecStartPre=/usr/bin/lookout check",
        "ExecStart=/usr/bin/lookout run",
        "ExecReload=/usr/bin/lookout check",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    assert!(unit.lines().any(|l| l.starts_with("LoadCredential=mqtt-password:/etc/lookout/credentials/mqtt-password")));
    let tmpfiles = std::fs::read_to_string(repo().join("systemd/lookout.tmpfiles")).unwrap();
    assert!(
        tmpfiles.lines().any(|l| l.starts_with("f /etc/lookout/credentials/mqtt-password")),
        "the credential LoadCredential= reads always exists"
    );
}
