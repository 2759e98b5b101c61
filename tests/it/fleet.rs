//! A fleet of gateways through a broker tier (docs/mqtt.md, "A fleet of gateways"): three
//! daemons, each publishing to its own local mosquitto, each bridged to one central mosquitto.
//! The central broker is stopped for 60 s and started again; every event each gateway's local
//! broker took must reach a subscriber on the central one, none lost, the duplicates counted;
//! and a profile change (`…/profile/set`) sent to the centre reaches the one gateway it names.
//! Real processes on loopback ports; the outage is the scenario's length, every other wait is
//! on a condition.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// Event ids by gateway, and how many copies arrived, from everything `sub` has received.
#[derive(Default)]
struct Ledger {
    ids: BTreeMap<String, BTreeSet<String>>,
    copies: usize,
    /// The profile in force by each `…/profile/state` topic, as last published.
    profile: BTreeMap<String, String>,
}

impl Ledger {
    fn take(&mut self, sub: &Subscriber) {
        for (topic, payload, _) in sub.rx.try_iter() {
            let Ok(v) = serde_json::from_slice::<Value>(&payload) else { continue };
            if topic.ends_with("/profile/state") {
                self.profile.insert(topic, v["profile"].as_str().unwrap_or_default().to_string());
                continue;
            }
            // Events carry a unique id; status, stats, occupancy and counts are states.
            if let (Some(id), Some(gw)) = (v["id"].as_str(), v["gateway_id"].as_str()) {
                self.copies += 1;
                self.ids.entry(gw.to_string()).or_default().insert(id.to_string());
            }
        }
    }

    fn distinct(&self) -> usize {
        self.ids.values().map(BTreeSet::len).sum()
    }

    fn of(&self, gw: &str) -> usize {
        self.ids.get(gw).map_or(0, BTreeSet::len)
    }
}

#[test]
fn three_gateways_through_a_bridged_tier_lose_nothing_across_a_60_s_central_outage() {
    let work = std::env::temp_dir().join(format!("lookout-fleet-{}", std::process::id()));
    let central_port = free_port();
    let central = Broker::start_persistent(central_port, &work.join("central"));
    // The fleet's subscriber: a kept session on the central broker, so what arrives while it
    // reconnects after the restart is queued for it.
    let at_centre = Subscriber::persistent(central_port, "lookout/#", "fleet-ledger");
    let gateways = ["gw1", "gw2", "gw3"];
    let mut locals = Vec::new();
    let mut local_subs = Vec::new();
    let mut daemons = Vec::new();
    let mut dirs = Vec::new();
    for gw in gateways {
        let port = free_port();
        locals.push(Broker::start_bridged(port, central_port, gw));
        local_subs.push(Subscriber::new(port, "lookout/#"));
        let global = format!(
            "gateway_id = \"{gw}\"\n[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\n[stats]\ninterval_seconds = 5\n{}",
            inference_toml()
        );
        // The sample clip on a loop, in real time: a camera that keeps making events.
        let camera = format!(
            "uri = {:?}\nloop = true\n[detect]\nfps = 5\n[profiles.quiet]\ndetect = {{ fps = 2 }}\n",
            media("bikes.mp4").display().to_string()
        );
        let dir = ConfigDir::new(&format!("fleet-{gw}"), &global, &[("street", &camera)]);
        daemons.push(Daemon::start(&dir.path));
        dirs.push(dir);
    }
    let mut centre = Ledger::default();
    let mut local: Vec<Ledger> = gateways.iter().map(|_| Ledger::default()).collect();
    let take_all = |centre: &mut Ledger, local: &mut Vec<Ledger>| {
        centre.take(&at_centre);
        for (l, s) in local.iter_mut().zip(&local_subs) {
            l.take(s);
        }
    };
    // Every gateway's events reach the centre before the outage.
    let flowing = wait_until(Duration::from_secs(90), || {
        take_all(&mut centre, &mut local);
        gateways.iter().all(|gw| centre.of(gw) >= 5)
    });
    assert!(flowing, "events did not reach the central broker from every gateway: {:?}", centre.ids.keys());

    // The outage: the central broker stops for 60 s while the gateways keep publishing.
    central.stop();
    let down = Instant::now();
    let before: Vec<usize> = local.iter().map(|l| l.distinct()).collect();
    // Messages the broker delivered just before it stopped may still be on their way through
    // the subscriber's client: the centre's count is taken once that has settled, 5 s in.
    let mut centre_before = None;
    while down.elapsed() < Duration::from_secs(60) {
        std::thread::park_timeout(Duration::from_millis(500));
        take_all(&mut centre, &mut local);
        if centre_before.is_none() && down.elapsed() >= Duration::from_secs(5) {
            centre_before = Some(centre.distinct());
        }
    }
    let during: Vec<usize> = local.iter().zip(&before).map(|(l, b)| l.distinct() - b).collect();
    assert!(during.iter().all(|n| *n >= 10), "the gateways made too few events during the outage: {during:?}");
    let centre_before = centre_before.unwrap_or_default();
    assert_eq!(centre.distinct(), centre_before, "nothing can reach a stopped central broker");
    let central = Broker::start_persistent(central_port, &work.join("central"));
    let outage = down.elapsed();

    // Once the bridges are back, keep the gateways running a little, then stop them and wait
    // for the centre to hold every event the local brokers took.
    let mark = local.iter().map(|l| l.distinct()).sum::<usize>();
    let resumed = wait_until(Duration::from_secs(60), || {
        take_all(&mut centre, &mut local);
        centre.distinct() > centre_before + during.iter().sum::<usize>()
            && local.iter().map(|l| l.distinct()).sum::<usize>() > mark
    });
    assert!(resumed, "the bridges did not deliver after the central broker came back");
    // A profile change from the centre reaches the one gateway it names, down that gateway's
    // bridge: gw2 switches to `quiet` and says so; the others stay in `default`.
    publish_acked(central_port, "lookout/gw2/profile/set", b"quiet");
    let state = |c: &Ledger, gw: &str| c.profile.get(&format!("lookout/{gw}/profile/state")).cloned();
    let switched = wait_until(Duration::from_secs(30), || {
        take_all(&mut centre, &mut local);
        state(&centre, "gw2").as_deref() == Some("quiet")
    });
    assert!(switched, "gw2 did not report the profile `quiet` at the centre: {:?}", centre.profile);
    for gw in ["gw1", "gw3"] {
        assert_eq!(state(&centre, gw).as_deref(), Some("default"), "{gw}: {:?}", centre.profile);
    }
    for d in daemons.iter_mut() {
        let out = d.terminate();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let all_arrived = wait_until(Duration::from_secs(60), || {
        take_all(&mut centre, &mut local);
        gateways
            .iter()
            .zip(&local)
            .all(|(gw, l)| l.ids.get(*gw).is_some_and(|ids| centre.ids.get(*gw).is_some_and(|c| ids.is_subset(c))))
    });
    let mut report = Vec::new();
    for (gw, l) in gateways.iter().zip(&local) {
        let sent = l.of(gw);
        let arrived = centre.ids.get(*gw).map_or(0, |c| l.ids.get(*gw).map_or(0, |s| s.intersection(c).count()));
        report.push(format!("{gw}: sent {sent}, arrived {arrived}, lost {}", sent - arrived));
    }
    let duplicates = centre.copies - centre.distinct();
    let report =
        format!("{}; duplicates at the centre {duplicates}; outage {:.1} s", report.join("; "), outage.as_secs_f64());
    // The figures for docs/mqtt.md: printed on every run.
    println!("fleet: {report}");
    assert!(all_arrived, "events lost between the gateways and the centre: {report}");
    central.stop();
    for b in locals {
        b.stop();
    }
    let _ = std::fs::remove_dir_all(&work);
}
