//! Switches an operator flips at run time over MQTT: whether each zone and each counting line
//! of a camera is active (`<prefix>/<camera>/zone/<name>/set` and `…/line/<name>/set`, ON or
//! OFF). A zone switched off makes no events and its occupancy stays as it was; a line switched
//! off counts nothing. Shared by the MQTT connection (which flips them) and each camera's
//! objects stage (which reads them every frame), and kept in a file in the state directory so
//! that a restart keeps them; a reload keeps those whose zone or line still exists.
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
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Zone, Kind::Line];

    /// The topic level (`zone`, `line`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Zone => "zone",
            Kind::Line => "line",
        }
    }

    fn from_level(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One switch: (camera, kind, name).
pub type Key = (String, Kind, String);

/// `<prefix>/<camera>/<kind>/<name>/set` → (camera, kind, name); `None` for any other topic.
pub fn parse_command(prefix: &str, topic: &str) -> Option<Key> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?.strip_suffix("/set")?;
    let mut levels = rest.split('/');
    let (camera, kind, name) = (levels.next()?, levels.next()?, levels.next()?);
    if levels.next().is_some() || camera.is_empty() || name.is_empty() {
        return None;
    }
    Some((camera.to_string(), Kind::from_level(kind)?, name.to_string()))
}

/// The state topic of a switch.
pub fn state_topic(prefix: &str, (camera, kind, name): &Key) -> String {
    format!("{prefix}/{camera}/{}/{name}/state", kind.as_str())
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
    format!("{camera}/{}/{name}", kind.as_str())
}

impl Toggles {
    /// The switches saved in `file` (a missing file is none; an unreadable one is reported and
    /// treated as none: every switch starts on).
    pub fn load(file: &Path) -> Toggles {
        let saved = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice::<BTreeMap<String, bool>>(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "the saved zone and line switches are unreadable; every switch starts ON");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot read the saved zone and line switches; every switch starts ON");
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

    /// A camera removed by a reload: its switches go (their saved values stay in the file).
    pub fn forget_camera(&self, camera: &str) {
        self.registry().on.retain(|(c, _, _), _| c != camera);
    }

    /// Flip a switch and save every switch's value.
    pub fn set(&self, key: &Key, on: bool) -> Result<(), SetError> {
        let saved = {
            let mut r = self.registry();
            let Some(switch) = r.on.get(key) else {
                return Err(SetError::Unknown(key.0.clone(), key.1.as_str(), key.2.clone()));
            };
            switch.store(on, Ordering::Relaxed);
            r.saved.insert(file_key(key), on);
            r.saved.clone()
        };
        if let Some(file) = &self.file
            && let Err(e) = save(file, &saved)
        {
            tracing::warn!(file = %file.display(), error = %e, "the zone and line switches could not be saved: a restart will not keep this change");
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
            "lookout/gw/street/mask/a/set",
            "lookout/gw/street/zone/door/state",
            "lookout/gw/street/zone//set",
            "lookout/gw/street/zone/a/b/set",
            "lookout/other/street/zone/door/set",
        ] {
            assert_eq!(parse_command(p, other), None, "{other}");
        }
        assert_eq!(state_topic(p, &("street".into(), Kind::Zone, "door".into())), "lookout/gw/street/zone/door/state");
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
