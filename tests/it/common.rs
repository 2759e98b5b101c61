//! Helpers shared by the integration tests.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The binary under test: the one cargo built, or `LOOKOUT_TEST_BIN` (to run a test against
/// another build, e.g. to show that it fails before a fix).
pub fn bin() -> PathBuf {
    std::env::var_os("LOOKOUT_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lookout")))
}

/// A media file as scripts/setup placed it.
pub fn media(name: &str) -> PathBuf {
    let placed = repo().join("media").join(name);
    assert!(placed.exists(), "media/{name} not found: run scripts/setup");
    placed
}

pub fn model() -> PathBuf {
    let p = repo().join("models/yolox_nano.onnx");
    assert!(p.exists(), "models/yolox_nano.onnx missing: run scripts/setup");
    p
}

pub fn ort_library() -> PathBuf {
    let p = repo().join(".lookout/ort/libonnxruntime.so.1.31.1");
    assert!(p.exists(), "ONNX Runtime missing: run scripts/setup");
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Two distinct free ports: both listeners are held at once, so the OS can't hand out the
/// same port twice (two `free_port()` calls in a row may).
pub fn two_free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("free port");
    (a.local_addr().expect("port").port(), b.local_addr().expect("port").port())
}

/// Poll `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
    cond()
}

/// A config directory in a temp folder: lookout.toml plus pipelines/<name>.toml files.
pub struct ConfigDir {
    pub path: PathBuf,
}

impl ConfigDir {
    pub fn new(tag: &str, global: &str, cameras: &[(&str, &str)]) -> ConfigDir {
        let path = std::env::temp_dir().join(format!("lookout-test-{tag}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(path.join("pipelines")).unwrap();
        std::fs::write(path.join("lookout.toml"), global).unwrap();
        for (name, body) in cameras {
            std::fs::write(path.join("pipelines").join(format!("{name}.toml")), body).unwrap();
        }
        ConfigDir { path }
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The `[inference]` table pointing at the real model and runtime.
pub fn inference_toml() -> String {
    format!(
        "[inference]\nmodel = {:?}\nort_library = {:?}\n",
        model().display().to_string(),
        ort_library().display().to_string()
    )
}

/// Run `lookout` to completion with a deadline; kills it if the deadline passes.
pub fn run_lookout(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("ORT_DYLIB_PATH")
        .env("RUST_LOG", "info,ort=warn");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn lookout");
    wait_output(child, timeout)
}

/// Wait for `child` with a deadline, killing it if the deadline passes. Its stdout and stderr
/// are read while it runs: a child that writes more than a pipe holds (64 KB) would otherwise
/// block on the write and never finish.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let done = wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait lookout");
    let out = Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() };
    assert!(done, "lookout did not finish within {timeout:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A mosquitto broker on a free loopback port, stopped on drop.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    conf: PathBuf,
}

impl Broker {
    pub fn start() -> Broker {
        let port = free_port();
        Broker::start_on(port)
    }

    pub fn start_on(port: u16) -> Broker {
        Broker::start_with(port, "persistence false")
    }

    /// Sessions, subscriptions, queued messages and retained ones kept in `dir`: they survive
    /// [`Broker::stop`] and a start on the same port with the same `dir`.
    pub fn start_persistent(port: u16, dir: &Path) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        // Started as root, mosquitto drops to its own user before it saves the database.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Broker::start_with(
            port,
            &format!("persistence true\npersistence_location {}/\nmax_queued_messages 0", dir.display()),
        )
    }

    /// A gateway's local broker, bridged to `central`: everything under `lookout/` goes up at
    /// QoS 1 and `…/set` topics come down, the bridge's session kept (`cleansession false`) so
    /// that the local broker queues what the central one can't take yet (docs/mqtt.md, "A
    /// fleet of gateways").
    pub fn start_bridged(port: u16, central: u16, name: &str) -> Broker {
        Broker::start_with(
            port,
            &format!(
                "persistence false\nmax_queued_messages 100000\n\
                 connection {name}\naddress 127.0.0.1:{central}\nbridge_protocol_version mqttv311\n\
                 cleansession false\nclientid bridge-{name}\nrestart_timeout 1 2\n\
                 topic lookout/# out 1\ntopic lookout/{name}/+/detect/set in 1\ntopic lookout/{name}/profile/set in 1\n"
            ),
        )
    }

    fn start_with(port: u16, extra: &str) -> Broker {
        let conf = std::env::temp_dir().join(format!("lookout-mosquitto-{}-{port}.conf", std::process::id()));
        let mut f = std::fs::File::create(&conf).unwrap();
        writeln!(f, "listener {port} 127.0.0.1\nallow_anonymous true\n{extra}").unwrap();
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto not installed: run scripts/setup");
        let up = wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok());
        assert!(up, "mosquitto did not start on port {port}");
        Broker { port, child: Some(child), conf }
    }
}

impl Broker {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM, so that a persistent broker saves its state, and wait for it to exit.
    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let gone = wait_until(Duration::from_secs(10), || matches!(c.try_wait(), Ok(Some(_))));
            if !gone {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// Collects every message under a topic filter from a real broker.
pub struct Subscriber {
    pub rx: crossbeam_channel::Receiver<(String, Vec<u8>, bool)>,
}

impl Subscriber {
    /// Returns once the broker has acknowledged the subscription.
    pub fn new(port: u16, filter: &str) -> Subscriber {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let mut opts = MqttOptions::new(format!("test-sub-{}", free_port()), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut conn) = Client::new(opts, 100);
        client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _keep = client;
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ack_tx.try_send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec(), p.retain)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        ack_rx.recv_timeout(Duration::from_secs(10)).expect("subscription acknowledged");
        Subscriber { rx }
    }
}

impl Subscriber {
    /// A subscriber with a kept session (clean_session = false, a fixed client id) that
    /// reconnects on its own: with [`Broker::start_persistent`] it gets every QoS 1 message,
    /// including those published while it or the broker was away.
    pub fn persistent(port: u16, filter: &str, client_id: &str) -> Subscriber {
        use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_session(false);
        opts.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut conn) = Client::new(opts, 100);
        client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _keep = client;
            loop {
                match conn.recv() {
                    Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                        let _ = ack_tx.try_send(());
                    }
                    Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                        if tx.send((p.topic.clone(), p.payload.to_vec(), p.retain)).is_err() {
                            return;
                        }
                    }
                    Ok(Ok(_)) => {}
                    // The broker is away: rumqttc reconnects on the next poll.
                    Ok(Err(_)) => std::thread::park_timeout(Duration::from_millis(100)),
                    Err(_) => return,
                }
            }
        });
        ack_rx.recv_timeout(Duration::from_secs(10)).expect("subscription acknowledged");
        Subscriber { rx }
    }
}

/// Publish one QoS 1 message and return once the broker has acknowledged it: a marker that a
/// subscriber receives after everything the broker took before.
pub fn publish_acked(port: u16, topic: &str, payload: &[u8]) {
    publish_acked_with(port, topic, payload, false)
}

/// [`publish_acked`], retained: an empty payload clears the topic's retained message.
pub fn publish_retained_acked(port: u16, topic: &str, payload: &[u8]) {
    publish_acked_with(port, topic, payload, true)
}

fn publish_acked_with(port: u16, topic: &str, payload: &[u8], retain: bool) {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(format!("test-pub-{}", free_port()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut conn) = Client::new(opts, 10);
    client.publish(topic, QoS::AtLeastOnce, retain, payload.to_vec()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match conn.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                let _ = client.disconnect();
                return;
            }
            Ok(Err(e)) => panic!("publishing the marker to port {port}: {e}"),
            _ => {}
        }
    }
    panic!("the broker on port {port} did not acknowledge the marker");
}

/// A running `lookout run`, its stdout JSON lines collected as they come.
pub struct Daemon {
    pub child: Option<Child>,
    rx: crossbeam_channel::Receiver<String>,
    pub lines: Vec<serde_json::Value>,
}

impl Daemon {
    pub fn start(config_dir: &Path) -> Daemon {
        Daemon::start_with_env(config_dir, &[])
    }

    pub fn start_with_env(config_dir: &Path, envs: &[(&str, &str)]) -> Daemon {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(bin())
            .args(["run", "--config-dir", config_dir.to_str().unwrap()])
            .env("RUST_LOG", "info,ort=warn")
            .env_remove("ORT_DYLIB_PATH")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lookout");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon { child: Some(child), rx, lines: Vec::new() }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn drain(&mut self) {
        for l in self.rx.try_iter() {
            if let Ok(v) = serde_json::from_str(&l) {
                crate::schema::assert_valid(&v);
                self.lines.push(v);
            }
        }
    }

    /// Wait for a new line matching `pred` (lines seen before `from` are ignored).
    pub fn wait_for(
        &mut self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<(usize, serde_json::Value)> {
        let mut found = None;
        wait_until(timeout, || {
            self.drain();
            found = self.lines.iter().enumerate().skip(from).find(|(_, v)| pred(v)).map(|(i, v)| (i, v.clone()));
            found.is_some()
        });
        found
    }

    /// The index of the next line to come.
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.lines.len()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> Output {
        let child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let out = wait_output(child, Duration::from_secs(30));
        self.drain();
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A camera status line of `camera` in `state`.
pub fn is_status(v: &serde_json::Value, camera: &str, state: &str) -> bool {
    v["type"] == "camera_status" && v["camera"] == camera && v["state"] == state
}

/// CPU seconds (user + system) a process has used, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// utime + stime of a /proc `stat` line (a process's or a thread's), in seconds.
pub fn stat_cpu_seconds(stat: &str) -> f64 {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// A test PKI made with the openssl CLI in a temp folder: a CA, a server certificate for
/// 127.0.0.1 and localhost, and a client certificate, all signed by the CA; plus a second,
/// unrelated CA. EC P-256 keys, valid for a day. Removed on drop.
pub struct TestPki {
    pub dir: PathBuf,
}

impl TestPki {
    pub fn new(tag: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("lookout-test-pki-{tag}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = TestPki { dir };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "server",
            "ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        pki.leaf("client", "ca", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
        // A server certificate from the other CA, for a broker the daemon must not trust.
        pki.leaf(
            "other-server",
            "other-ca",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        );
        // mosquitto may read them after dropping root.
        use std::os::unix::fs::PermissionsExt;
        for f in std::fs::read_dir(&pki.dir).unwrap().flatten() {
            std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        pki
    }

    /// `<name>.pem` (certificate) or `<name>.key` in the PKI folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl CLI not installed: run scripts/setup");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn ca(&self, name: &str) {
        let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN=lookout test {name}"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "1",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    fn leaf(&self, name: &str, ca: &str, ext: &str) {
        let (key, csr, pem, ext_file, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
            format!("/CN={name}"),
        );
        std::fs::write(self.dir.join(&ext_file), ext).unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ]);
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &ext_file,
        ]);
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Broker {
    /// A plain listener on `port` (for the tests' own subscribers) and a TLS one on
    /// `tls_port` presenting `<server>.pem`; with `require_client_cert`, TLS clients must show
    /// a certificate signed by the PKI's CA (mutual TLS).
    /// With `state`, sessions and queued messages persist there, as in [`Broker::start_persistent`].
    pub fn start_tls(
        port: u16,
        tls_port: u16,
        pki: &TestPki,
        server: &str,
        require_client_cert: bool,
        state: Option<&Path>,
    ) -> Broker {
        let persistence = match state {
            Some(dir) => {
                std::fs::create_dir_all(dir).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
                format!("persistence true\npersistence_location {}/\nmax_queued_messages 0", dir.display())
            }
            None => "persistence false".to_string(),
        };
        let extra = format!(
            "{persistence}\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_client_cert}",
            pki.file("ca.pem").display(),
            pki.file(&format!("{server}.pem")).display(),
            pki.file(&format!("{server}.key")).display()
        );
        let broker = Broker::start_with(port, &extra);
        let up = wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", tls_port)).is_ok());
        assert!(up, "mosquitto's TLS listener did not open on port {tls_port}");
        broker
    }
}

/// The detections of a `lookout detect` JSON line, or of an image of a golden file, for
/// `lookout::detect::compare`. Labels are leaked to `&'static str` (the type's, since a
/// detector's labels live as long as it): a few short strings per test.
pub fn detections(v: &serde_json::Value) -> Vec<lookout::detect::Detection> {
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b: Vec<f32> = d["box"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let label: &'static str = Box::leak(d["label"].as_str().unwrap().to_string().into_boxed_str());
            lookout::detect::Detection {
                class: 0,
                label,
                score: d["score"].as_f64().unwrap() as f32,
                bbox: [b[0], b[1], b[2], b[3]],
            }
        })
        .collect()
}

/// `got` held to the reference `want` by `lookout::detect::compare`: every detection paired one
/// to one with a reference detection of the same label at IoU >= `min_iou` (none missed, none
/// extra), and each pair's scores within `max_score_diff`. Returns the comparison.
pub fn assert_detections_match(
    what: &str,
    want: &[lookout::detect::Detection],
    got: &[lookout::detect::Detection],
    min_iou: f32,
    max_score_diff: f32,
) -> lookout::detect::compare::Comparison {
    let c = lookout::detect::compare::compare(want, got, min_iou);
    assert!(
        c.one_to_one(),
        "{what}: missed {:?}, extra {:?} at IoU >= {min_iou}; got {got:?}, want {want:?}",
        c.missed.iter().map(|&i| &want[i]).collect::<Vec<_>>(),
        c.extra.iter().map(|&i| &got[i]).collect::<Vec<_>>()
    );
    for p in &c.pairs {
        assert!(
            p.score_diff <= max_score_diff,
            "{what}: {} score {} vs {} (more than {max_score_diff} apart)",
            want[p.want].label,
            got[p.got].score,
            want[p.want].score
        );
    }
    c
}
