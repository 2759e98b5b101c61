//! A broker that wants a login: the password comes from a file (systemd LoadCredential style),
//! a wrong one is refused with a message that names the keys to fix, and neither is printed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// mosquitto on a free loopback port that accepts only `user` / `password`.
struct AuthBroker {
    port: u16,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl AuthBroker {
    fn start(user: &str, password: &str) -> AuthBroker {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("lookout-test-authbroker-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let passwd = dir.join("passwd");
        let ok = Command::new("mosquitto_passwd")
            .args(["-c", "-b", passwd.to_str().unwrap(), user, password])
            .status()
            .unwrap();
        assert!(ok.success(), "mosquitto_passwd");
        let conf = dir.join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        writeln!(
            f,
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false",
            passwd.display()
        )
        .unwrap();
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(exe).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        assert!(wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()));
        AuthBroker { port, child, dir }
    }
}

impl Drop for AuthBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_broker_login_comes_from_a_credentials_file_and_a_wrong_one_is_named() {
    let broker = AuthBroker::start("lookout", "mq-s3cret");
    let creds = std::env::temp_dir().join(format!("lookout-test-creds-{}", free_port()));
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(creds.join("mqtt-password"), "mq-s3cret\n").unwrap();
    std::fs::write(creds.join("wrong"), "nope-pw\n").unwrap();
    let camera = format!("uri = {:?}\nrealtime = false\n[detect]\nfps = 2\n", media("bikes.mp4").display().to_string());
    let run = |file: &str| {
        let global = format!(
            "gateway_id = \"auth\"\n[mqtt]\nport = {}\nusername = \"lookout\"\npassword_file = \"$CREDENTIALS_DIRECTORY/{file}\"\nflush_timeout_seconds = 2\n{}",
            broker.port,
            inference_toml()
        );
        let dir = ConfigDir::new("mqtt-auth", &global, &[("street", &camera)]);
        run_lookout(
            &["run", "--config-dir", dir.path.to_str().unwrap()],
            &[("CREDENTIALS_DIRECTORY", creds.to_str().unwrap())],
            Duration::from_secs(60),
        )
    };

    let out = run("mqtt-password");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("publish:") && stderr.contains("messages delivered"),
        "every message acknowledged: {stderr}"
    );

    let out = run("wrong");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("refused the connection") && stderr.contains("mqtt.username"), "{stderr}");
    assert!(stderr.contains("not acknowledged"), "undelivered messages are reported: {stderr}");
    let _ = std::fs::remove_dir_all(&creds);
    for secret in ["mq-s3cret", "nope-pw"] {
        assert!(!stderr.contains(secret), "the password leaked: {stderr}");
    }
}
