//! The stats message: every camera's books, the publisher's counters and the inference
//! batches, sent on the stats topic every `stats.interval_seconds` and once more at the end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use crate::batch::BatchCounts;
use crate::publish::{Outgoing, Topic, payload};
use crate::stats::{CameraCounters, CameraSummary, PublishCounters};

/// The cameras now configured, with their counters: what the stats topic reports.
pub type Registry = Arc<Mutex<Vec<(String, Arc<CameraCounters>)>>>;

pub fn registry_now(r: &Registry) -> Vec<(String, Arc<CameraCounters>)> {
    r.lock().unwrap_or_else(PoisonError::into_inner).clone()
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
