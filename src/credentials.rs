//! Secrets and where systemd puts things: a login whose password never reaches a log, and the
//! directories systemd hands a service (`StateDirectory=`, `LoadCredential=`). At the bottom of
//! the module graph, because the sources, the publisher and the console all log in.

use std::path::PathBuf;

/// A source's login. The password never appears in `Debug` output, logs, status or MQTT.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// Where the password was read from, if from a file (`lookout check` audits its mode).
    pub password_file: Option<PathBuf>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: ***, password_file: {:?} }}",
            self.username, self.password_file
        )
    }
}

/// Set by systemd for `StateDirectory=`; the default spool lives under it.
pub const STATE_DIRECTORY_ENV: &str = "STATE_DIRECTORY";

/// `<systemd's state directory>/<sub>` when systemd set STATE_DIRECTORY (`StateDirectory=`),
/// else `None`. systemd passes a colon-separated list when the unit names several; the first is
/// ours.
pub fn state_directory(sub: &str) -> Option<PathBuf> {
    let state = std::env::var_os(STATE_DIRECTORY_ENV)?;
    let first = state.to_string_lossy().split(':').next().unwrap_or_default().to_string();
    (!first.is_empty()).then(|| PathBuf::from(first).join(sub))
}

/// `$CREDENTIALS_DIRECTORY/x` → `<that directory>/x` when systemd set it; else as written.
pub fn expand_credentials_dir(path: &str) -> PathBuf {
    match (path.strip_prefix("$CREDENTIALS_DIRECTORY/"), std::env::var_os("CREDENTIALS_DIRECTORY")) {
        (Some(rest), Some(dir)) => PathBuf::from(dir).join(rest),
        _ => PathBuf::from(path),
    }
}
