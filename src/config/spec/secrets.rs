//! Logins and TLS: passwords from the environment or a file, and the MQTT client's TLS config,
//! read and checked here so that `lookout check` names a missing or unreadable file by its key.

use super::*;

/// `username` with `password_env` or `password_file`. Resolved here, so `lookout check`
/// (which systemd runs before start) catches a missing variable or unreadable file.
pub(super) fn build_credentials(
    (username, password_env, password_file): (Option<String>, Option<String>, Option<String>),
    uri: &str,
    scheme: &str,
    e: &mut Errors,
) -> Option<Credentials> {
    let (Some(username), source) = (username, (&password_env, &password_file)) else {
        if password_env.is_some() || password_file.is_some() {
            e.push("username", "is needed with password_env or password_file");
        }
        return None;
    };
    if !matches!(scheme, "rtsp" | "rtsps" | "http" | "https") {
        e.push("username", format!("only applies to rtsp:// and http(s):// sources, not `{scheme}://`"));
        return None;
    }
    if uri.split_once("://").and_then(|(_, rest)| rest.split('/').next()).is_some_and(|auth| auth.contains('@')) {
        e.push(
            "username",
            "the uri already holds a user name; give credentials in one place only (preferably here, not in the uri)",
        );
        return None;
    }
    let (password, password_file) = read_password("", source, e)?;
    Some(Credentials { username, password, password_file })
}

/// `[mqtt.tls]`: read and parse every file now, so `lookout check` reports a missing or bad
/// one by its key, and the daemon never meets it at connect time.
pub(super) fn build_tls(dir: &Path, t: crate::config::raw::RawMqttTls, e: &mut Errors) -> Option<TlsSpec> {
    use crate::publish::tls;
    let path = |p: &str| resolve(dir, &expand_credentials_dir(p).to_string_lossy());
    let roots = match &t.ca_file {
        Some(f) => {
            let p = path(f);
            tls::read(&p).and_then(|pem| tls::roots_from_pem(&pem, &p)).map(|r| (r, p.display().to_string()))
        }
        None => tls::system_roots().map(|r| (r, "system CA bundle".to_string())),
    }
    .map_err(|err| e.push("mqtt.tls.ca_file", err.to_string()))
    .ok();
    let identity = match (&t.client_cert_file, &t.client_key_file) {
        (None, None) => Some(None),
        (Some(_), None) => {
            e.push(
                "mqtt.tls.client_key_file",
                "is needed with client_cert_file: give the PEM private key of the client certificate",
            );
            None
        }
        (None, Some(_)) => {
            e.push("mqtt.tls.client_cert_file", "is needed with client_key_file: give the PEM client certificate");
            None
        }
        (Some(c), Some(k)) => {
            let (cp, kp) = (path(c), path(k));
            let chain = tls::read(&cp)
                .and_then(|pem| tls::certs_from_pem(&pem, &cp))
                .map_err(|err| e.push("mqtt.tls.client_cert_file", err.to_string()));
            let key = tls::read(&kp)
                .and_then(|pem| tls::key_from_pem(&pem, &kp))
                .map_err(|err| e.push("mqtt.tls.client_key_file", err.to_string()));
            match (chain, key) {
                (Ok(c), Ok(k)) => Some(Some((c, k))),
                _ => None,
            }
        }
    };
    let ((roots, ca), identity) = (roots?, identity?);
    let client_cert = identity.is_some();
    match tls::client_config(roots, identity) {
        Ok(client_config) => Some(TlsSpec { client_config, ca, client_cert }),
        Err(err) => {
            e.push(if client_cert { "mqtt.tls.client_key_file" } else { "mqtt.tls" }, err.to_string());
            None
        }
    }
}

/// The password from `<prefix>password_env` or `<prefix>password_file` (exactly one), and the
/// file it came from.
pub(super) fn read_password(
    prefix: &str,
    source: (&Option<String>, &Option<String>),
    e: &mut Errors,
) -> Option<(String, Option<PathBuf>)> {
    match source {
        (Some(_), Some(_)) => {
            e.push(&format!("{prefix}password_env"), "give password_env or password_file, not both");
            None
        }
        (None, None) => {
            e.push(
                &format!("{prefix}username"),
                "needs a password: set password_env (an environment variable's name) or password_file",
            );
            None
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some((v, None)),
            _ => {
                e.push(&format!("{prefix}password_env"), format!("environment variable `{var}` is not set or empty; set it for the service (systemd Environment= or EnvironmentFile=)"));
                None
            }
        },
        (None, Some(path)) => {
            let expanded = expand_credentials_dir(path);
            match std::fs::read_to_string(&expanded) {
                Ok(v) if !v.trim_end_matches(['\r', '\n']).is_empty() => {
                    Some((v.trim_end_matches(['\r', '\n']).to_string(), Some(expanded)))
                }
                Ok(_) => {
                    e.push(&format!("{prefix}password_file"), format!("{} is empty", expanded.display()));
                    None
                }
                Err(err) => {
                    e.push(
                        &format!("{prefix}password_file"),
                        format!(
                            "can't read {}: {err}; check the path and that the lookout user may read it",
                            expanded.display()
                        ),
                    );
                    None
                }
            }
        }
    }
}
