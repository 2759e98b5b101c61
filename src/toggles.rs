//! Switches an operator flips at run time over MQTT, ON or OFF: each zone, counting line and
//! mask of a camera (`<prefix>/<camera>/zone/<name>/set`, `…/line/<name>/set`,
//! `…/mask/<n>/set`), and the camera's motion gating and snapshots (`…/motion/set`,
//! `…/snapshots/set`). A zone switched off makes no events and its occupancy stays as it was; a
//! line switched off counts nothing; a mask switched off drops nothing; motion gating switched
//! off sends every frame at the camera's rate to the detector; snapshots switched off are
//! neither published nor saved. Shared by the MQTT connection (which flips them) and each
//! camera's stages (which read them every frame), and kept in a file in the state directory so
//! that a restart keeps them; a reload keeps those whose object still exists.
//!
//! The topic and payload parsing ([`parse_command`], [`parse_switch`]) is pure; [`Toggles`]
//! owns the registry and its file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// What a switch turns on and off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Zone,
    Line,
    /// Masks have no names in the config: they are numbered from 1 in file order.
    Mask,
    /// One per camera (named ""), only for a camera with `[motion] enabled = true`.
    Motion,
    /// One per camera (named ""), only for a camera with `[snapshots] enabled = true`.
    Snapshots,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Zone, Kind::Line, Kind::Mask, Kind::Motion, Kind::Snapshots];

    /// The topic level (`zone`, `line`, `mask`, `motion`, `snapshots`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Zone => "zone",
            Kind::Line => "line",
            Kind::Mask => "mask",
            Kind::Motion => "motion",
            Kind::Snapshots => "snapshots",
        }
    }

    /// Whether switches of this kind are one per camera rather than one per named object.
    pub fn per_camera(self) -> bool {
        matches!(self, Kind::Motion | Kind::Snapshots)
    }

    fn from_level(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One switch: (camera, kind, name).
pub type Key = (String, Kind, String);

/// `<prefix>/<camera>/<kind>/<name>/set`, or `<prefix>/<camera>/<kind>/set` for a per-camera
/// kind → (camera, kind, name); `None` for any other topic.
pub fn parse_command(prefix: &str, topic: &str) -> Option<Key> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?.strip_suffix("/set")?;
    let levels: Vec<&str> = rest.split('/').collect();
    let (camera, kind, name) = match levels[..] {
        [camera, kind, name] => (camera, Kind::from_level(kind).filter(|k| !k.per_camera())?, name),
        [camera, kind] => (camera, Kind::from_level(kind).filter(|k| k.per_camera())?, ""),
        _ => return None,
    };
    if camera.is_empty() || (name.is_empty() && !kind.per_camera()) {
        return None;
    }
    Some((camera.to_string(), kind, name.to_string()))
}

/// The topic of a switch without its last level (`/set` or `/state`).
pub fn topic_base(prefix: &str, (camera, kind, name): &Key) -> String {
    if kind.per_camera() {
        format!("{prefix}/{camera}/{}", kind.as_str())
    } else {
        format!("{prefix}/{camera}/{}/{name}", kind.as_str())
    }
}

/// The state topic of a switch.
pub fn state_topic(prefix: &str, key: &Key) -> String {
    format!("{}/state", topic_base(prefix, key))
}

/// `ON` or `OFF` (any case, spaces around ignored), as Home Assistant's switches send.
pub fn parse_switch(payload: &[u8]) -> Option<bool> {
    match String::from_utf8_lossy(payload).trim().to_ascii_uppercase().as_str() {
        "ON" => Some(true),
        "OFF" => Some(false),
        _ => None,
    }
}

/// Why a switch could not be set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetError {
    #[error("camera `{0}` has no {1} named `{2}` (a reload may have removed it)")]
    Unknown(String, &'static str, String),
    #[error("camera `{0}` has no {1} switch: it is not enabled in its file, or the camera doesn't exist")]
    NotEnabled(String, &'static str),
}

#[derive(Default)]
struct Registry {
    on: BTreeMap<Key, Arc<AtomicBool>>,
    /// What the file holds: the last value set for each switch, kept for a switch whose
    /// camera is not running yet (or was removed and may come back).
    saved: BTreeMap<String, bool>,
}

/// The registry of switches, and the file that keeps them across restarts.
#[derive(Clone, Default)]
pub struct Toggles {
    inner: Arc<Mutex<Registry>>,
    file: Option<PathBuf>,
}

fn file_key((camera, kind, name): &Key) -> String {
    if kind.per_camera() { format!("{camera}/{}", kind.as_str()) } else { format!("{camera}/{}/{name}", kind.as_str()) }
}

impl Toggles {
    /// The switches saved in `file` (a missing file is none; an unreadable one is reported and
    /// treated as none: every switch starts on).
    pub fn load(file: &Path) -> Toggles {
        let saved = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, bool>>(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "the saved switches are unreadable; every switch starts ON");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read the saved switches; every switch starts ON");
                BTreeMap::new()
            }
        };
        Toggles { inner: Arc::new(Mutex::new(Registry { on: BTreeMap::new(), saved })), file: Some(file.to_path_buf()) }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The switches of `camera`'s `names` of `kind`, as a (re)starting camera needs them: one
    /// that exists keeps its value, a new one takes the saved value or ON, and those of this
    /// camera and kind that are no longer named are dropped.
    pub fn register(&self, camera: &str, kind: Kind, names: &[String]) -> Vec<(String, Arc<AtomicBool>)> {
        let mut r = self.registry();
        r.on.retain(|(c, k, n), _| !(c == camera && *k == kind && !names.contains(n)));
        names
            .iter()
            .map(|name| {
                let key: Key = (camera.to_string(), kind, name.clone());
                let initial = r.saved.get(&file_key(&key)).copied().unwrap_or(true);
                let switch = r.on.entry(key).or_insert_with(|| Arc::new(AtomicBool::new(initial))).clone();
                (name.clone(), switch)
            })
            .collect()
    }

    /// Every switch of a (re)starting camera, as [`switches_of`] lists them: [`Toggles::register`]
    /// for each kind, so one the camera no longer has (a mask removed, motion gating turned
    /// off in its file) is dropped.
    pub fn register_camera(&self, camera: &str, switches: &[(Kind, String)]) -> Vec<(Kind, String, Arc<AtomicBool>)> {
        Kind::ALL
            .into_iter()
            .flat_map(|kind| {
                let names: Vec<String> = switches.iter().filter(|(k, _)| *k == kind).map(|(_, n)| n.clone()).collect();
                self.register(camera, kind, &names).into_iter().map(move |(n, s)| (kind, n, s))
            })
            .collect()
    }

    /// A camera removed by a reload: its switches go (their saved values stay in the file).
    pub fn forget_camera(&self, camera: &str) {
        self.registry().on.retain(|(c, _, _), _| c != camera);
    }

    /// Flip a switch and save every switch's value.
    pub fn set(&self, key: &Key, on: bool) -> Result<(), SetError> {
        let saved = {
            let mut r = self.registry();
            let Some(switch) = r.on.get(key) else {
                return Err(if key.1.per_camera() {
                    SetError::NotEnabled(key.0.clone(), key.1.as_str())
                } else {
                    SetError::Unknown(key.0.clone(), key.1.as_str(), key.2.clone())
                });
            };
            switch.store(on, Ordering::Relaxed);
            r.saved.insert(file_key(key), on);
            r.saved.clone()
        };
        if let Some(file) = &self.file
            && let Err(e) = save(file, &saved)
        {
            tracing::warn!(file = %file.display(), error = %e, "the switches could not be saved: a restart will not keep this change");
        }
        Ok(())
    }

    /// Every registered switch and its value.
    pub fn all(&self) -> Vec<(Key, bool)> {
        self.registry().on.iter().map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed))).collect()
    }
}

/// Write the file whole, through a temporary file renamed over it: a crash leaves the old
/// file or the new one, never half of one.
fn save(file: &Path, saved: &BTreeMap<String, bool>) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(saved).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_parsed_from_their_topics_and_nothing_else_is() {
        let p = "lookout/gw";
        assert_eq!(
            parse_command(p, "lookout/gw/street/zone/door/set"),
            Some(("street".into(), Kind::Zone, "door".into()))
        );
        assert_eq!(parse_command(p, "lookout/gw/street/line/middle/set").map(|k| k.1), Some(Kind::Line));
        for other in [
            "lookout/gw/street/detect/set",
            "lookout/gw/street/motion/a/set",
            "lookout/gw/street/mask/set",
            "lookout/gw/street/zone/door/state",
            "lookout/gw/street/zone//set",
            "lookout/gw/street/zone/a/b/set",
            "lookout/other/street/zone/door/set",
        ] {
            assert_eq!(parse_command(p, other), None, "{other}");
        }
        assert_eq!(parse_command(p, "lookout/gw/street/mask/2/set"), Some(("street".into(), Kind::Mask, "2".into())));
        assert_eq!(parse_command(p, "lookout/gw/street/motion/set"), Some(("street".into(), Kind::Motion, "".into())));
        assert_eq!(parse_command(p, "lookout/gw/street/snapshots/set").map(|k| k.1), Some(Kind::Snapshots));
        assert_eq!(state_topic(p, &("street".into(), Kind::Zone, "door".into())), "lookout/gw/street/zone/door/state");
        assert_eq!(state_topic(p, &("street".into(), Kind::Motion, "".into())), "lookout/gw/street/motion/state");
        assert_eq!(
            (parse_switch(b" on\n"), parse_switch(b"OFF"), parse_switch(b"maybe")),
            (Some(true), Some(false), None)
        );
    }

    #[test]
    fn switches_survive_a_restart_and_a_reload_keeps_those_still_named() {
        let dir = std::env::temp_dir().join(format!("lookout-toggles-{}", std::process::id()));
        let file = dir.join("toggles.json");
        let t = Toggles::load(&file);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let zones = t.register("street", Kind::Zone, &names(&["door", "yard"]));
        assert!(zones.iter().all(|(_, s)| s.load(Ordering::Relaxed)), "every switch starts ON");
        let door: Key = ("street".into(), Kind::Zone, "door".into());
        t.set(&door, false).unwrap();
        assert!(!zones[0].1.load(Ordering::Relaxed), "the stage's handle sees the change");
        let gone: Key = ("street".into(), Kind::Line, "nope".into());
        assert_eq!(t.set(&gone, false), Err(SetError::Unknown("street".into(), "line", "nope".into())));
        // A reload that drops `yard` and keeps `door`: door stays OFF, yard is gone.
        let again = t.register("street", Kind::Zone, &names(&["door"]));
        assert!(!again[0].1.load(Ordering::Relaxed));
        assert_eq!(t.all().len(), 1);
        // A restart reads the file.
        let t2 = Toggles::load(&file);
        let z = t2.register("street", Kind::Zone, &names(&["door", "yard"]));
        assert_eq!(z.iter().map(|(_, s)| s.load(Ordering::Relaxed)).collect::<Vec<_>>(), [false, true]);
        t2.forget_camera("street");
        assert!(t2.all().is_empty());
        // A damaged file starts everything ON rather than failing.
        std::fs::write(&file, b"{not json").unwrap();
        let t3 = Toggles::load(&file);
        assert!(t3.register("street", Kind::Zone, &names(&["door"]))[0].1.load(Ordering::Relaxed));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
