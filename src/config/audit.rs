//! Warnings about a valid config: things that work but that an operator should fix. File
//! permissions that expose secrets, and state folders the daemon could not write. `lookout
//! check` prints them (and still exits 0); `lookout run` logs them at start.
//!
//! Reads metadata only: nothing is written, except a probe file (created and removed at once)
//! in a state folder that exists, since only a real write tells whether a read-only mount or
//! an ACL stands in the way.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{ConfigError, GLOBAL_FILE, PIPELINES_DIR, Spec};

/// What `lookout check` and `lookout run` say about a config with no camera file: valid (a new
/// install starts idle), but nothing is watched until a camera is added.
pub const NO_CAMERA: &str = "no camera configured: the daemon runs idle; add one <camera>.toml per camera \
     (example: /usr/share/doc/lookout/examples/pipeline.reference.toml), then `systemctl reload lookout`";

/// Every warning for `spec`, each with its file and key.
pub fn audit(spec: &Spec) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut warn = |file: String, key: &str, message: String| out.push(ConfigError::new(file, key, message));
    // Cameras left out for errors in their files were reported as such.
    if spec.cameras.is_empty() && spec.broken.is_empty() {
        warn(format!("{PIPELINES_DIR}/"), "", NO_CAMERA.into());
    }
    for cam in &spec.cameras {
        let label = format!("{PIPELINES_DIR}/{}.toml", cam.name);
        if cam.source.uri != cam.source.uri_redacted && world_readable(&cam.file) {
            warn(
                label.clone(),
                "uri",
                "the file is readable by every user and its uri holds a password; move the password to password_file (or password_env), or `chmod 640` the file".into(),
            );
        }
        if let Some(path) = cam.source.credentials.as_ref().and_then(|c| c.password_file.as_ref())
            && world_readable(path)
        {
            warn(
                label,
                "password_file",
                format!(
                    "{} is readable by every user; `chmod 600` it (or hand it over with systemd LoadCredential=)",
                    path.display()
                ),
            );
        }
    }
    if let Some(m) = &spec.mqtt {
        if let Some(path) = m.credentials.as_ref().and_then(|c| c.password_file.as_ref())
            && world_readable(path)
        {
            warn(
                GLOBAL_FILE.into(),
                "mqtt.password_file",
                format!(
                    "{} is readable by every user; `chmod 600` it (or hand it over with systemd LoadCredential=)",
                    path.display()
                ),
            );
        }
        if let Some(problem) = not_writable(&m.spool.dir) {
            warn(
                GLOBAL_FILE.into(),
                "spool.dir",
                format!(
                    "{problem}; messages would wait in memory only while the broker is away. Fix the owner (the `lookout` user) or set spool.dir"
                ),
            );
        }
    }
    if spec.cameras.iter().any(|c| c.objects.snapshots.enabled)
        && let Some(problem) = not_writable(&spec.snapshot_dir)
    {
        warn(
            GLOBAL_FILE.into(),
            "snapshots.dir",
            format!(
                "{problem}; snapshots would be published but not saved. Fix the owner (the `lookout` user) or set snapshots.dir"
            ),
        );
    }
    super::locate_lines(&spec.config_dir, &mut out);
    out
}

fn world_readable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// Why this process could not create files in `dir` (or create `dir`), if it couldn't.
fn not_writable(dir: &Path) -> Option<String> {
    if dir.is_dir() {
        let probe = dir.join(format!(".lookout-check-{}", std::process::id()));
        return match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                None
            }
            Err(e) => Some(format!("{} is not writable by this user: {e}", dir.display())),
        };
    }
    // It would be created at start: look at the nearest folder that exists.
    let mut ancestor: PathBuf = dir.to_path_buf();
    while !ancestor.exists() {
        if !ancestor.pop() {
            return None;
        }
    }
    let meta = std::fs::metadata(&ancestor).ok()?;
    if !meta.is_dir() {
        return Some(format!("{} can't be created: {} is not a directory", dir.display(), ancestor.display()));
    }
    if !may_write(&meta) {
        return Some(format!(
            "{} can't be created: {} is not writable by this user",
            dir.display(),
            ancestor.display()
        ));
    }
    None
}

/// The permission bits' answer for this process (root may write anywhere).
fn may_write(meta: &std::fs::Metadata) -> bool {
    let Some((uid, gids)) = credentials() else { return true };
    let mode = meta.permissions().mode();
    uid == 0
        || (meta.uid() == uid && mode & 0o200 != 0)
        || (gids.contains(&meta.gid()) && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

/// Effective uid and every group id of this process, from /proc (std has no getuid).
fn credentials() -> Option<(u32, Vec<u32>)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|r| r.split_whitespace().filter_map(|n| n.parse::<u32>().ok()).collect::<Vec<_>>())
    };
    // "Uid: real effective saved fs"
    let uid = *field("Uid:")?.get(1)?;
    let mut gids = field("Groups:").unwrap_or_default();
    gids.extend(field("Gid:")?.get(1));
    Some((uid, gids))
}
