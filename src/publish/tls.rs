//! MQTT over TLS: the rustls client config built from PEM files, and plain words for a failed
//! handshake.
//!
//! ```toml
//! [mqtt]
//! host = "broker.example"   # checked against the broker certificate's names
//! # port defaults to 8883 with TLS
//! [mqtt.tls]                # present: TLS on
//! ca_file = "/etc/lookout/mqtt-ca.pem"           # default: the system's CA bundle
//! client_cert_file = "/etc/lookout/gw-01.pem"    # mutual TLS: both or neither
//! client_key_file = "$CREDENTIALS_DIRECTORY/gw-01.key"
//! ```
//!
//! The files are read and parsed when the config is loaded, so `lookout check` catches a
//! missing, unreadable or malformed one, a certificate without its key, and a key that does
//! not belong to the certificate. The crypto provider (`ring`) is given to rustls explicitly,
//! so nothing depends on a process-wide default being installed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("can't read {path}: {source}; check the path and that the lookout user may read it")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: a certificate is not valid: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey { path: PathBuf, reason: String },
    #[error(
        "no CA certificates found on this system; install the ca-certificates package, or set mqtt.tls.ca_file to the CA that signed the broker's certificate"
    )]
    NoSystemRoots,
    #[error(
        "the client key does not fit the client certificate, or its type is not supported: {0}; give the key made with this certificate"
    )]
    ClientIdentity(rustls::Error),
    #[error("rustls: {0}")]
    Rustls(rustls::Error),
}

/// The CA certificates to trust: every certificate in the PEM bundle.
pub fn roots_from_pem(pem: &[u8], path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = certs_from_pem(pem, path)?;
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| TlsError::BadCertificate { path: path.to_path_buf(), reason: e.to_string() })?;
    }
    Ok(roots)
}

/// The system's CA bundle (`SSL_CERT_FILE` / `SSL_CERT_DIR` honoured), read from disk only.
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "a system CA certificate could not be loaded");
    }
    let mut roots = RootCertStore::empty();
    // A bundle commonly holds a few certificates rustls can't use; the rest still count.
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() { Err(TlsError::NoSystemRoots) } else { Ok(roots) }
}

/// Every certificate in a PEM file's bytes, at least one.
pub fn certs_from_pem(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate { path: path.to_path_buf(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_path_buf() });
    }
    Ok(certs)
}

/// The first private key in a PEM file's bytes.
pub fn key_from_pem(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::NoKey { path: path.to_path_buf(), reason: e.to_string() })
}

pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

/// The client config: trust `roots`, and present `identity` (certificate chain and key) when
/// the broker asks for one. Checks that the key belongs to the certificate.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots);
    let config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(TlsError::ClientIdentity)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What to do about a failed TLS connection, if `err` (or anything it wraps) is a TLS error.
/// `host` is `mqtt.host`, the name the certificate must hold.
pub fn advice(err: &(dyn std::error::Error + 'static), host: &str) -> Option<String> {
    let tls = find_rustls_error(err)?;
    Some(advice_for(tls, host))
}

/// rumqttc wraps the rustls error in an `io::Error`, whose `source()` skips the error it
/// holds; so look inside each `io::Error` as well as down the chain.
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = find_rustls_error(inner)
        {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

/// The likely fix for each way a handshake fails.
pub fn advice_for(err: &rustls::Error, host: &str) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match err {
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the broker's certificate is not signed by a CA this gateway trusts; set mqtt.tls.ca_file to the PEM of the CA that signed it".into()
        }
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the broker's certificate has expired; renew it on the broker (or check this gateway's clock)".into()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "the broker's certificate is not valid yet; check this gateway's clock (and the certificate's start date)".into()
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "the broker's certificate does not name `{host}`; set mqtt.host to a name or address in its subjectAltName, or reissue it with `{host}` in it"
        ),
        E::InvalidCertificate(other) => format!("the broker's certificate was rejected ({other:?}); check it and mqtt.tls.ca_file"),
        E::AlertReceived(A::CertificateRequired) => {
            "the broker wants a client certificate; set mqtt.tls.client_cert_file and mqtt.tls.client_key_file".into()
        }
        E::AlertReceived(A::BadCertificate | A::UnknownCA | A::CertificateUnknown | A::AccessDenied | A::DecryptError) => {
            "the broker rejected this gateway's client certificate; give mqtt.tls.client_cert_file one signed by a CA the broker trusts (its cafile)".into()
        }
        E::AlertReceived(A::HandshakeFailure) => {
            "the broker ended the handshake: it may want a client certificate (mqtt.tls.client_cert_file / client_key_file), or share no cipher or TLS version with us (TLS 1.2+)".into()
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => format!(
            "the broker did not answer in TLS; check that mqtt.port is its TLS listener (usually 8883), or remove [mqtt.tls] for a plain one: {err}"
        ),
        other => format!("TLS handshake failed ({other}); check mqtt.tls and the broker's TLS listener"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_pem_are_named() {
        let p = Path::new("/x/ca.pem");
        assert!(matches!(certs_from_pem(b"", p), Err(TlsError::NoCertificate { .. })));
        assert!(matches!(certs_from_pem(b"not a pem at all", p), Err(TlsError::NoCertificate { .. })));
        let broken = b"-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n";
        let e = certs_from_pem(broken, p).unwrap_err().to_string();
        assert!(e.contains("/x/ca.pem"), "{e}");
        let e = key_from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", Path::new("/x/k.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/k.pem") && e.contains("no PEM private key"), "{e}");
    }

    #[test]
    fn each_handshake_failure_names_its_fix() {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E};
        let cases = [
            (E::InvalidCertificate(C::UnknownIssuer), "mqtt.tls.ca_file"),
            (E::InvalidCertificate(C::Expired), "expired"),
            (E::InvalidCertificate(C::NotValidForName), "does not name `broker.local`"),
            (E::AlertReceived(A::CertificateRequired), "mqtt.tls.client_cert_file"),
            (E::AlertReceived(A::UnknownCA), "rejected this gateway's client certificate"),
            (E::InvalidMessage(rustls::InvalidMessage::InvalidContentType), "usually 8883"),
        ];
        for (err, want) in cases {
            let a = advice_for(&err, "broker.local");
            assert!(a.contains(want), "{err:?}: {a}");
        }
    }

    #[test]
    fn a_rustls_error_is_found_inside_the_io_errors_that_wrap_it() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let outer = std::io::Error::other(io);
        let a = advice(&outer, "h").expect("found");
        assert!(a.contains("ca_file"), "{a}");
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(advice(&plain, "h").is_none());
    }
}
