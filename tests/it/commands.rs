//! `<prefix>/<camera>/detect/set` ON / OFF over a real broker.

use std::time::Duration;

use rumqttc::{Client, MqttOptions, QoS};
use serde_json::Value;

use crate::common::*;

#[test]
fn detection_can_be_switched_off_and_on_over_mqtt() {
    let broker = Broker::start();
    let sub = Subscriber::new(broker.port, "lookout/cmd/#");
    let global = format!(
        "gateway_id = \"cmd\"\n[mqtt]\nport = {}\n[stats]\ninterval_seconds = 1\n{}",
        broker.port,
        inference_toml()
    );
    let dir = ConfigDir::new("cmd", &global, &[("ball", "uri = \"test://ball\"\n[detect]\nfps = 5\n")]);
    let mut d = Daemon::start(&dir.path);
    // (topic, payload, retained)
    type Msg = (String, Vec<u8>, bool);
    let mut msgs: Vec<Msg> = Vec::new();
    let seen = |msgs: &mut Vec<Msg>, pred: &dyn Fn(&Msg) -> bool| {
        wait_until(Duration::from_secs(30), || {
            msgs.extend(sub.rx.try_iter());
            msgs.iter().any(pred)
        })
    };
    assert!(seen(&mut msgs, &|(t, p, _)| t == "lookout/cmd/ball/detect/state" && p == b"ON"), "initial state ON");
    let mut opts = MqttOptions::new(format!("test-cmd-{}", free_port()), "127.0.0.1", broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut conn) = Client::new(opts, 10);
    std::thread::spawn(move || for _ in conn.iter() {});
    client.publish("lookout/cmd/ball/detect/set", QoS::AtLeastOnce, false, "OFF").unwrap();
    assert!(seen(&mut msgs, &|(t, p, _)| t == "lookout/cmd/ball/detect/state" && p == b"OFF"), "state OFF echoed");
    // While off, frames are counted as dropped for that reason and not inferred.
    let stats_off = |m: &(String, Vec<u8>, bool)| {
        m.0 == "lookout/cmd/stats"
            && serde_json::from_slice::<Value>(&m.1)
                .is_ok_and(|v| v["cameras"]["ball"]["dropped"]["detect_off"].as_u64().unwrap_or(0) >= 5)
    };
    assert!(seen(&mut msgs, &stats_off), "frames dropped as detect_off");
    client.publish("lookout/cmd/ball/detect/set", QoS::AtLeastOnce, false, "on").unwrap();
    let n_on = msgs.len();
    assert!(seen(&mut msgs, &|(t, p, _)| t == "lookout/cmd/ball/detect/state" && p == b"ON"));
    let inferred = |m: &(String, Vec<u8>, bool)| {
        (m.0 == "lookout/cmd/stats")
            .then(|| serde_json::from_slice::<Value>(&m.1).ok())
            .flatten()
            .and_then(|v| v["cameras"]["ball"]["inferred"].as_u64())
    };
    let at_on = msgs[..n_on].iter().filter_map(inferred).max().unwrap_or(0);
    assert!(seen(&mut msgs, &|m| inferred(m).is_some_and(|n| n > at_on + 2)), "inference resumes after ON");
    let out = d.terminate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("detection switched by MQTT command"));
}
