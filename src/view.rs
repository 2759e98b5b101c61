//! The viewer tap: each camera's latest frame, with what the objects stage made of it, for the
//! console's viewers (`crate::web`), and its recent events.
//!
//! A camera nobody watches costs one atomic load per frame: the detect worker converts a frame
//! to RGB for viewers only while [`ViewerTap::wanted`] says someone asked for a frame in the last
//! [`VIEW_LEASE`], and the objects stage stores it only then. A viewer asks again with each
//! frame it fetches (1-5 a second), so the lease lapses on its own a few seconds after the last
//! viewer leaves; nothing has to notice a closed browser tab. JPEG encoding happens in the web
//! server, per request.
//!
//! The tap lives in each camera's [`crate::stats::CameraCounters`], so it reaches every stage
//! that already holds them, survives a camera's restart by a reload, and is found by the web
//! server through [`crate::metrics`]' camera list.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use image::RgbImage;

/// How long one request for a frame keeps a camera's frames coming.
pub const VIEW_LEASE: Duration = Duration::from_secs(3);
/// Recent events kept per camera, for the console (about a minute of a busy street).
pub const RECENT_EVENTS: usize = 50;

/// One frame as the console shows it.
#[derive(Debug)]
pub struct ViewFrame {
    /// The frame as the detector saw it (scaled from the source).
    pub rgb: RgbImage,
    /// Image pixels per source pixel: boxes are in source pixels.
    pub scale_x: f32,
    pub scale_y: f32,
    /// The objects reported in this frame, with their track ids, boxes in source pixels.
    pub objects: Vec<ViewObject>,
    /// Objects now in each (zone, label).
    pub occupancy: BTreeMap<(String, String), u32>,
    /// Crossings of each (line, label) since the camera started.
    pub counts: BTreeMap<(String, String), Crossings>,
    pub captured_at: SystemTime,
}

/// An object as the console draws it. The view's own type, so the tap sits below the stages
/// that fill it.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewObject {
    /// Track id.
    pub id: u64,
    pub label: String,
    /// x1, y1, x2, y2 in source pixels.
    pub bbox: [f32; 4],
    pub score: f32,
}

/// A line's crossings in each direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crossings {
    pub left_to_right: u64,
    pub right_to_left: u64,
}

/// One event as it was published: its JSON payload.
#[derive(Debug, Clone)]
pub struct RecentEvent {
    pub at: SystemTime,
    pub payload: Arc<str>,
}

/// See the module doc.
#[derive(Debug, Default)]
pub struct ViewerTap {
    /// Milliseconds since the epoch until which a viewer wants frames.
    wanted_until_ms: AtomicU64,
    latest: Mutex<Option<Arc<ViewFrame>>>,
    events: Mutex<VecDeque<RecentEvent>>,
    /// The time of the last event, for the overview (milliseconds since the epoch; 0: none yet).
    last_event_ms: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl ViewerTap {
    /// Whether a viewer wants this camera's frames now. The stages' only cost while nobody watches.
    pub fn wanted(&self) -> bool {
        let until = self.wanted_until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// A viewer asks for frames for the next [`VIEW_LEASE`].
    pub fn watch(&self) {
        self.wanted_until_ms.fetch_max(now_ms() + VIEW_LEASE.as_millis() as u64, Ordering::Relaxed);
    }

    /// The objects stage's frame, while [`ViewerTap::wanted`].
    pub fn store(&self, frame: ViewFrame) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(frame));
    }

    pub fn latest(&self) -> Option<Arc<ViewFrame>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Keep an event's payload (the newest [`RECENT_EVENTS`]).
    pub fn record_event(&self, payload: &[u8]) {
        let at = SystemTime::now();
        self.last_event_ms.store(now_ms(), Ordering::Relaxed);
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if events.len() >= RECENT_EVENTS {
            events.pop_front();
        }
        events.push_back(RecentEvent { at, payload: Arc::from(String::from_utf8_lossy(payload)) });
    }

    /// The recent events, oldest first.
    pub fn events(&self) -> Vec<RecentEvent> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    pub fn last_event(&self) -> Option<SystemTime> {
        match self.last_event_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_wanted_only_while_watched() {
        let tap = ViewerTap::default();
        assert!(!tap.wanted());
        tap.watch();
        assert!(tap.wanted());
        tap.wanted_until_ms.store(now_ms() - 1, Ordering::Relaxed);
        assert!(!tap.wanted(), "the lease lapses by itself");
    }

    #[test]
    fn recent_events_are_bounded_and_in_order() {
        let tap = ViewerTap::default();
        assert!(tap.last_event().is_none());
        for i in 0..RECENT_EVENTS + 5 {
            tap.record_event(format!("{{\"n\":{i}}}").as_bytes());
        }
        let ev = tap.events();
        assert_eq!(ev.len(), RECENT_EVENTS);
        assert_eq!(&*ev[0].payload, "{\"n\":5}");
        assert!(tap.last_event().is_some());
    }
}
