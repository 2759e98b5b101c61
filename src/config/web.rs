//! `[web]` in lookout.toml: where the operator console (`crate::web`) listens, and who may change
//! the config through it.
//!
//! ```toml
//! [web]
//! enabled = true                  # false: no console, no /metrics or /healthz here
//! listen = "127.0.0.1:8080"       # another address needs token_file (`lookout check` refuses it)
//! allow_config_writes = false     # Save in the editor, PUT /api/cameras/{name}/config
//! username = "admin"              # the user name of basic auth
//! token_file = "$CREDENTIALS_DIRECTORY/lookout-web"   # the bearer token, or basic auth's password
//! max_body_bytes = 262144         # the largest request body accepted
//! ```
//!
//! Pure: the raw table in, the settings and every problem out (each with its key under `web.`).
//! Reading `token_file` is the one I/O, done here so that `lookout check` reports a missing
//! file by its key, as it does for `mqtt.password_file`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// On, but local: a console nobody outside the machine can reach until auth is set up.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ENABLED: bool = true;
pub const DEFAULT_ALLOW_CONFIG_WRITES: bool = false;
pub const DEFAULT_USERNAME: &str = "admin";
/// A camera file is a few kilobytes; 256 KiB leaves room for many polygons and no room for abuse.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
/// Below this a camera file with a few zones no longer fits.
pub const MIN_MAX_BODY_BYTES: usize = 4096;
/// A token shorter than this is guessable over the network.
pub const MIN_TOKEN_CHARS: usize = 16;

/// `[web]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    /// Serve the console, /metrics and /healthz. Default: true.
    pub enabled: Option<bool>,
    /// Address and port. Default: "127.0.0.1:8080". A non-loopback address needs `token_file`.
    pub listen: Option<String>,
    /// Let the console (and PUT /api/cameras/{name}/config) write camera files, for
    /// authenticated requests only. Default: false.
    pub allow_config_writes: Option<bool>,
    /// The user name basic auth expects. Default: "admin".
    pub username: Option<String>,
    /// A file holding the token (trailing newline ignored), sent as `Authorization: Bearer
    /// <token>` or as basic auth's password; `$CREDENTIALS_DIRECTORY/` at its start is expanded,
    /// for systemd `LoadCredential=`. Default: none, and then nothing can be written.
    pub token_file: Option<String>,
    /// The largest request body, in bytes. Default: 262144.
    pub max_body_bytes: Option<usize>,
}

/// `[web]`, validated.
#[derive(Clone, PartialEq)]
pub struct Settings {
    pub enabled: bool,
    pub listen: SocketAddr,
    pub allow_config_writes: bool,
    /// `None`: no credentials configured, so every write is refused.
    pub auth: Option<Auth>,
    pub max_body_bytes: usize,
}

/// The credentials writes must carry.
#[derive(Clone, PartialEq)]
pub struct Auth {
    pub username: String,
    pub token: String,
    pub token_file: PathBuf,
}

// By hand: the token never reaches a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("allow_config_writes", &self.allow_config_writes)
            .field("auth", &self.auth.as_ref().map(|a| (&a.username, "***", &a.token_file)))
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            enabled: DEFAULT_ENABLED,
            listen: default_listen(),
            allow_config_writes: DEFAULT_ALLOW_CONFIG_WRITES,
            auth: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// One problem: the key under `web.` and what is wrong.
pub type Problem = (String, String);

/// Validate `[web]`. `dir` is the config directory (a relative `token_file` is under it);
/// `expand` turns `$CREDENTIALS_DIRECTORY/x` into a path, as for the other credential files.
pub fn validate(raw: &RawWeb, dir: &Path, expand: impl Fn(&str) -> PathBuf) -> (Settings, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut push = |key: &str, message: String| problems.push((format!("web.{key}"), message));
    let enabled = raw.enabled.unwrap_or(DEFAULT_ENABLED);
    let listen = match raw.listen.as_deref() {
        None => default_listen(),
        Some(l) => l.parse::<SocketAddr>().unwrap_or_else(|_| {
            push("listen", format!("`{l}` is not an address and port such as \"{DEFAULT_LISTEN}\""));
            default_listen()
        }),
    };
    let username = raw.username.clone().unwrap_or_else(|| DEFAULT_USERNAME.to_string());
    if username.is_empty() || username.contains(':') {
        push("username", "must be non-empty and hold no ':' (basic auth splits on it)".into());
    }
    let auth = raw.token_file.as_deref().and_then(|f| {
        let expanded = expand(f);
        let path = if expanded.is_absolute() { expanded } else { dir.join(expanded) };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let token = text.trim_end_matches(['\r', '\n']).to_string();
                if token.chars().count() < MIN_TOKEN_CHARS {
                    push(
                        "token_file",
                        format!(
                            "{}: the token must be at least {MIN_TOKEN_CHARS} characters; make one with `head -c 24 /dev/urandom | base64`",
                            path.display()
                        ),
                    );
                    None
                } else {
                    Some(Auth { username: username.clone(), token, token_file: path })
                }
            }
            Err(e) => {
                push(
                    "token_file",
                    format!("can't read {}: {e}; check the path and that the lookout user may read it", path.display()),
                );
                None
            }
        }
    });
    let allow_config_writes = raw.allow_config_writes.unwrap_or(DEFAULT_ALLOW_CONFIG_WRITES);
    if enabled && !listen.ip().is_loopback() && raw.token_file.is_none() {
        push(
            "listen",
            format!(
                "{listen} is reachable from other machines: set web.token_file (and give the token to the operators), or listen on 127.0.0.1"
            ),
        );
    }
    if allow_config_writes && raw.token_file.is_none() {
        push(
            "allow_config_writes",
            "writes need authentication: set web.token_file, or leave allow_config_writes = false".into(),
        );
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes < MIN_MAX_BODY_BYTES {
        push(
            "max_body_bytes",
            format!("{max_body_bytes} is too small for a camera file; use at least {MIN_MAX_BODY_BYTES}"),
        );
    }
    (
        Settings { enabled, listen, allow_config_writes, auth, max_body_bytes: max_body_bytes.max(MIN_MAX_BODY_BYTES) },
        problems,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(p: &str) -> PathBuf {
        PathBuf::from(p)
    }

    fn check(raw: RawWeb) -> (Settings, Vec<Problem>) {
        validate(&raw, Path::new("/nonexistent"), plain)
    }

    #[test]
    fn defaults_are_on_local_and_read_only() {
        let (s, p) = check(RawWeb::default());
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s, Settings::default());
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert!(s.enabled && !s.allow_config_writes && s.auth.is_none());
    }

    #[test]
    fn another_address_without_a_token_is_refused() {
        let (_, p) = check(RawWeb { listen: Some("0.0.0.0:8080".into()), ..Default::default() });
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "web.listen");
        // Off, it listens nowhere: nothing to refuse.
        let (_, p) = check(RawWeb { listen: Some("0.0.0.0:8080".into()), enabled: Some(false), ..Default::default() });
        assert!(p.is_empty(), "{p:?}");
        let (_, p) = check(RawWeb { listen: Some("localhost".into()), ..Default::default() });
        assert_eq!(p[0].0, "web.listen");
    }

    #[test]
    fn writes_need_a_token_that_is_read_and_long_enough() {
        let (_, p) = check(RawWeb { allow_config_writes: Some(true), ..Default::default() });
        assert_eq!(p.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["web.allow_config_writes"]);
        let dir = std::env::temp_dir().join(format!("lookout-web-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("short"), "abc\n").unwrap();
        std::fs::write(dir.join("good"), "0123456789abcdefXYZ\n").unwrap();
        let raw =
            |f: &str| RawWeb { token_file: Some(f.into()), allow_config_writes: Some(true), ..Default::default() };
        let (_, p) = validate(&raw("short"), &dir, plain);
        assert_eq!(p[0].0, "web.token_file");
        let (_, p) = validate(&raw("missing"), &dir, plain);
        assert!(p[0].1.contains("can't read"), "{p:?}");
        let (s, p) = validate(&raw("good"), &dir, plain);
        assert!(p.is_empty(), "{p:?}");
        let auth = s.auth.unwrap();
        assert_eq!((auth.username.as_str(), auth.token.as_str()), ("admin", "0123456789abcdefXYZ"));
        assert!(!format!("{:?}", validate(&raw("good"), &dir, plain).0).contains("0123456789"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
