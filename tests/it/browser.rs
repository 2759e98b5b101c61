//! The operator console in a real browser: Debian's `chromium`, headless, driven over WebDriver
//! (`chromedriver`, from `chromium-driver`) by fantoccini, against a real daemon on `test://` and
//! file sources, with a real mosquitto. `scripts/test` has the setup install both packages.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::*;

const TOKEN: &str = "browser-token-0123456789";

/// A headless chromium behind its chromedriver, both stopped on drop.
struct Browser {
    driver: Child,
    client: Option<Client>,
    rt: tokio::runtime::Runtime,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test installs it)");
        assert!(
            wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "chromedriver did not listen on {port}"
        );
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let caps = json!({
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000"]
            }
        });
        let Value::Object(caps) = caps else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = rt
            .block_on(ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")))
            .expect("a chromium session");
        Browser { driver, client: Some(client), rt }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).unwrap();
    }

    /// The value of a JavaScript expression on the page.
    fn eval(&self, expr: &str) -> Value {
        self.rt.block_on(self.c().execute(&format!("return ({expr});"), vec![])).unwrap()
    }

    /// Wait until the expression is true.
    fn wait_js(&self, what: &str, expr: &str, timeout: Duration) {
        assert!(
            wait_until(timeout, || self.eval(expr) == Value::Bool(true)),
            "{what}: `{expr}` not true within {timeout:?}"
        );
    }

    fn click(&self, css: &str) {
        self.rt.block_on(async { self.c().find(Locator::Css(css)).await?.click().await }).unwrap();
    }

    fn type_into(&self, css: &str, text: &str) {
        self.rt.block_on(async { self.c().find(Locator::Css(css)).await?.send_keys(text).await }).unwrap();
    }

    fn text(&self, css: &str) -> String {
        self.rt.block_on(async { self.c().find(Locator::Css(css)).await?.text().await }).unwrap()
    }

    /// Click each point, given as fractions of the element's width and height, with the mouse.
    fn click_at(&self, css: &str, points: &[(f64, f64)]) {
        self.rt
            .block_on(async {
                let el = self.c().find(Locator::Css(css)).await?;
                let (_, _, w, h) = el.rectangle().await?;
                let mut mouse = MouseActions::new("mouse".into());
                for &(fx, fy) in points {
                    // Offsets are from the element's centre.
                    mouse = mouse
                        .then(PointerAction::MoveToElement {
                            element: el.clone(),
                            duration: None,
                            x: (fx - 0.5) * w,
                            y: (fy - 0.5) * h,
                        })
                        .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
                        .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
                }
                self.c().perform_actions(mouse).await
            })
            .unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn the_overview_and_camera_pages_show_every_camera_live_with_its_zones() {
    let port = free_port();
    let dir = ConfigDir::new(
        "browser-view",
        &format!("gateway_id = \"bv\"\n[web]\nlisten = \"127.0.0.1:{port}\"\n{}", inference_toml()),
        &[
            (
                "ball",
                "uri = \"test://ball\"\n[detect]\nfps = 5\n\n[[zones]]\nname = \"left\"\npolygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]\n",
            ),
            ("snow", "uri = \"test://snow\"\n[detect]\nfps = 2\n"),
        ],
    );
    let mut d = Daemon::start(&dir.path);
    for cam in ["ball", "snow"] {
        assert!(d.wait_for(0, Duration::from_secs(30), |v| is_status(v, cam, "streaming")).is_some(), "{cam}");
    }
    let b = Browser::start();

    // The overview: a card per camera, its counters moving without a reload.
    b.goto(&format!("http://127.0.0.1:{port}/"));
    b.wait_js("two cards", "document.querySelectorAll('.card').length === 2", Duration::from_secs(10));
    let names = b.eval("[...document.querySelectorAll('.card h3 a')].map(a => a.textContent)");
    assert_eq!(names, json!(["ball", "snow"]));
    let books = b.text("#card-ball .books");
    assert!(books.contains("inferred"), "{books}");
    b.eval("window.marker = 1"); // gone if the page reloads
    b.wait_js(
        "the ball's books move",
        &format!("document.querySelector('#card-ball .books').textContent !== {books:?}"),
        Duration::from_secs(15),
    );
    assert_eq!(b.eval("window.marker"), json!(1), "updated in place, not by a reload");
    assert!(b.text("#card-ball .state").starts_with("streaming"));
    b.wait_js(
        "the small pictures load",
        "[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)",
        Duration::from_secs(15),
    );

    // The camera page: the annotated frame loads, and the zone's yellow outline is on it along
    // x = 0.5 (JPEG keeps a 3-pixel saturated line recognisable).
    b.goto(&format!("http://127.0.0.1:{port}/cameras/ball"));
    b.wait_js("the frame loads", "document.getElementById('frame').naturalWidth > 0", Duration::from_secs(15));
    let yellow = b.eval(
        "(() => { const i = document.getElementById('frame'), c = document.createElement('canvas');
           c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d'); g.drawImage(i, 0, 0);
           const x0 = Math.round(c.width / 2) - 4, d = g.getImageData(x0, 0, 9, c.height).data; let n = 0;
           for (let k = 0; k < d.length; k += 4) if (d[k] > 200 && d[k + 1] > 160 && d[k + 2] < 90) n++;
           return n / c.height; })()",
    );
    assert!(yellow.as_f64().unwrap() > 0.5, "the zone's edge is drawn on the frame: {yellow} yellow pixels per row");
    b.wait_js(
        "the books show",
        "document.getElementById('books').textContent.includes('decoded')",
        Duration::from_secs(10),
    );
}

#[test]
fn a_zone_drawn_in_the_editor_is_checked_saved_with_the_token_and_counted_on_mqtt() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/be/#");
    let port = free_port();
    let street = format!(
        "# the street, looped\nuri = {:?}\nloop = true\n[detect]\nfps = 5\nlabels = [\"person\", \"bicycle\", \"car\"]\n",
        media("bikes.mp4").display().to_string()
    );
    let dir = ConfigDir::new(
        "browser-edit",
        &format!(
            "gateway_id = \"be\"\n[mqtt]\nport = {}\n[web]\nlisten = \"127.0.0.1:{port}\"\nallow_config_writes = true\ntoken_file = \"token\"\n{}",
            broker.port,
            inference_toml()
        ),
        &[("street", &street), ("snow", "uri = \"test://snow\"\n[detect]\nfps = 2\n")],
    );
    std::fs::write(dir.path.join("token"), format!("{TOKEN}\n")).unwrap();
    let file = dir.path.join("pipelines/street.toml");
    let mut d = Daemon::start(&dir.path);
    let mut msgs: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let state_of = |msgs: &[(String, Vec<u8>, bool)], cam: &str| -> Vec<String> {
        msgs.iter()
            .filter(|(t, _, _)| *t == format!("lookout/be/{cam}/status"))
            .filter_map(|(_, p, _)| serde_json::from_slice::<Value>(p).ok())
            .filter_map(|v| v["state"].as_str().map(str::to_string))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            msgs.extend(sub.rx.try_iter());
            state_of(&msgs, "street").contains(&"streaming".into())
                && state_of(&msgs, "snow").contains(&"streaming".into())
        }),
        "both cameras stream"
    );
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{port}/cameras/street/edit"));
    b.wait_js("the picture loads", "document.getElementById('frame').naturalWidth > 0", Duration::from_secs(15));
    b.wait_js(
        "the file is shown",
        "document.getElementById('toml').value.includes('the street')",
        Duration::from_secs(5),
    );

    // Draw the lower half of the frame (the road) as a zone, with the mouse.
    b.click("#add-zone");
    b.click_at("#canvas", &[(0.02, 0.5), (0.98, 0.5), (0.98, 0.98), (0.02, 0.98)]);
    b.click("#finish");
    b.wait_js(
        "the drawn zone is in the file's text",
        "document.getElementById('toml').value.includes('name = \"zone_1\"')",
        Duration::from_secs(10),
    );
    let drawn = b.eval("document.getElementById('toml').value").as_str().unwrap().to_string();
    assert!(drawn.starts_with("# the street, looped"), "comments survive:\n{drawn}");
    let zone: toml::Value = toml::from_str(&drawn).expect("valid TOML");
    let polygon = zone["zones"][0]["polygon"].as_array().unwrap().clone();
    assert_eq!(polygon.len(), 4, "{drawn}");
    let y0 = polygon[0][1].as_float().unwrap();
    assert!((0.45..0.55).contains(&y0), "the first corner where it was clicked: {y0}");
    b.click("#check");
    b.wait_js("Check says valid", "document.getElementById('result').textContent === 'valid'", Duration::from_secs(10));
    let before = std::fs::read_to_string(&file).unwrap();
    assert!(!before.contains("zone_1"), "Check writes nothing");

    // An invalid edit: its error on its line, the file untouched.
    let broken = drawn.replace("fps = 5", "fps = \"fast\"");
    let line = broken.lines().position(|l| l.contains("fps = \"fast\"")).unwrap() + 1;
    b.eval(&format!("document.getElementById('toml').value = {}", json!(broken)));
    b.click("#check");
    b.wait_js(
        "Check says errors",
        "document.getElementById('result').textContent === 'errors'",
        Duration::from_secs(10),
    );
    let problems = b.text("#problems");
    assert!(problems.contains(&format!("street.toml:{line}: detect.fps")), "error on line {line}:\n{problems}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // Without the token, Save is refused and the file untouched.
    b.eval(&format!("document.getElementById('toml').value = {}", json!(drawn)));
    b.click("#save");
    b.wait_js(
        "refused",
        "document.getElementById('result').textContent.startsWith('not saved')",
        Duration::from_secs(10),
    );
    assert_eq!(b.text("#result"), "not saved (401)");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // With the token: written (the old file kept), only this camera restarts, and objects
    // entering the new zone are published.
    msgs.extend(sub.rx.try_iter());
    let seen = msgs.len();
    b.type_into("#token", TOKEN);
    b.click("#save");
    b.wait_js("saved", "document.getElementById('result').textContent.startsWith('saved')", Duration::from_secs(20));
    assert!(std::fs::read_to_string(&file).unwrap().contains("name = \"zone_1\""));
    assert_eq!(std::fs::read_to_string(dir.path.join("pipelines/street.toml.bak")).unwrap(), before);
    let entered = |msgs: &[(String, Vec<u8>, bool)]| {
        msgs[seen..].iter().any(|(t, p, _)| {
            t == "lookout/be/street/events"
                && serde_json::from_slice::<Value>(p).is_ok_and(|v| v["type"] == "zone_enter" && v["zone"] == "zone_1")
        })
    };
    assert!(
        wait_until(Duration::from_secs(60), || {
            msgs.extend(sub.rx.try_iter());
            entered(&msgs)
        }),
        "a zone_enter for the drawn zone"
    );
    let after: Vec<String> = msgs[seen..]
        .iter()
        .filter(|(t, _, _)| t.ends_with("/status"))
        .filter_map(|(t, p, _)| Some(format!("{t} {}", serde_json::from_slice::<Value>(p).ok()?["state"])))
        .collect();
    assert!(after.iter().any(|s| s == "lookout/be/street/status \"stopped\""), "{after:?}");
    assert!(!after.iter().any(|s| s.starts_with("lookout/be/snow/status")), "snow kept running: {after:?}");
    drop(b);
    let out = d.terminate();
    assert!(out.status.success());
}
