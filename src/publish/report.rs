//! The stats message: every camera's books, the publisher's counters and the inference
//! batches, sent on the stats topic every `stats.interval_seconds` and once more at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::batch::BatchCounts;
use crate::link::LinkSender;
use crate::publish::{Outgoing, Topic, payload};
use crate::stats::{CameraCounters, CameraSummary, PublishCounters};

/// The cameras now configured, with their counters: what the stats topic reports.
pub type Registry = Arc<Mutex<Vec<(String, Arc<CameraCounters>)>>>;

pub fn registry_now(r: &Registry) -> Vec<(String, Arc<CameraCounters>)> {
    r.lock().unwrap_or_else(PoisonError::into_inner).clone()
}
/// The stats reporter's loop: the message `message` builds, sent every `every` until `done`
/// closes. The last one, with `is_final`, is the caller's to send once the cameras have stopped.
pub fn run_reporter(
    every: Duration,
    done: &crossbeam_channel::Receiver<()>,
    events: &LinkSender<Outgoing>,
    message: impl Fn() -> Outgoing,
) {
    let tick = crossbeam_channel::tick(every);
    loop {
        crossbeam_channel::select! {
            recv(tick) -> _ => {
                // A full events link drops this message, counted there; the next tick sends anew.
                let _ = events.send(message());
            }
            recv(done) -> _ => break,
        }
    }
}

pub fn stats_message(
    gateway_id: &str,
    cameras: &[(String, Arc<CameraCounters>)],
    publish: Option<&PublishCounters>,
    started: Instant,
    (provider, skipped, batches): (&str, &[(String, String)], &BatchCounts),
    is_final: bool,
) -> Outgoing {
    let cams: BTreeMap<&str, CameraSummary> = cameras.iter().map(|(n, c)| (n.as_str(), c.snapshot())).collect();
    let runs = batches.snapshot();
    let inference = payload::InferenceStats { provider, skipped, batches: Some(&runs) };
    let payload = payload::stats_with(
        gateway_id,
        SystemTime::now(),
        started.elapsed().as_secs_f64(),
        inference,
        is_final,
        cams,
        publish.map(|p| p.snapshot()),
    );
    Outgoing::new(Topic::Stats, payload)
}
