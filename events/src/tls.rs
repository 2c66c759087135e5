//! TLS for `amqps://`: the trust and identity files read into lapin's rustls
//! configuration, and a failed handshake explained in one line that says what to do.

use std::path::{Path, PathBuf};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError};

use crate::endpoints::Node;
use crate::settings::AmqpSettings;

/// Why the TLS files could not be used. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Unreadable {
        /// Which setting it is (`AMQP_CA_FILE`…).
        what: &'static str,
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file holds no usable PEM item of the expected kind.
    #[error("{what} {path} holds no PEM {expected}")]
    NotPem {
        /// Which setting it is.
        what: &'static str,
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
    },
    /// Only one of `AMQP_CLIENT_CERT` and `AMQP_CLIENT_KEY` is set.
    #[error("mutual TLS needs both AMQP_CLIENT_CERT and AMQP_CLIENT_KEY; only {0} is set")]
    HalfIdentity(&'static str),
}

/// The TLS configuration of `settings`: the CA bundle and client identity, read now (so
/// a renewed certificate applies at the next connection). The system's roots are
/// always trusted as well.
pub fn load(settings: &AmqpSettings) -> Result<OwnedTLSConfig, TlsFileError> {
    let cert_chain = match &settings.ca_file {
        Some(path) => Some(read_certificates("AMQP_CA_FILE", path)?),
        None => None,
    };
    let identity = match (&settings.client_cert, &settings.client_key) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read_certificates("AMQP_CLIENT_CERT", cert)?.into_bytes(),
            key: read_key(key)?,
        }),
        (Some(_), None) => return Err(TlsFileError::HalfIdentity("AMQP_CLIENT_CERT")),
        (None, Some(_)) => return Err(TlsFileError::HalfIdentity("AMQP_CLIENT_KEY")),
        (None, None) => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Unreadable {
        what,
        path: path.to_owned(),
        source,
    })
}

/// The file's text, checked to hold at least one PEM certificate and nothing malformed.
fn read_certificates(what: &'static str, path: &Path) -> Result<String, TlsFileError> {
    let not_pem = || TlsFileError::NotPem {
        what,
        path: path.to_owned(),
        expected: "certificate",
    };
    let bytes = read(what, path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| not_pem())?;
    if certificates.is_empty() {
        return Err(not_pem());
    }
    String::from_utf8(bytes).map_err(|_| not_pem())
}

/// The key file's bytes, checked to hold a private key (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let bytes = read("AMQP_CLIENT_KEY", path)?;
    // The parse error is not shown: it could quote part of the key.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsFileError::NotPem {
        what: "AMQP_CLIENT_KEY",
        path: path.to_owned(),
        expected: "private key",
    })?;
    Ok(bytes)
}

/// One line on what failed and what to do, when a connection to `node` with `config`
/// failed because of TLS (or of TLS on one side only); `None` for other failures.
pub fn diagnose(error: &lapin::Error, node: &Node, config: &OwnedTLSConfig) -> Option<String> {
    if let Some(tls) = tls_error(error) {
        return Some(explain(tls, node.host()));
    }
    if node.is_tls()
        && let lapin::ErrorKind::IOError(io) = error.kind()
        && closed_early(io.kind())
    {
        // In TLS 1.3 the broker checks the client certificate after the client's side of
        // the handshake is done; its refusal may arrive as a reset rather than an alert.
        let host = node.host();
        return Some(if config.identity.is_some() {
            format!(
                "{host} closed the connection after the TLS handshake: it probably refused the \
                 client certificate; check AMQP_CLIENT_CERT and AMQP_CLIENT_KEY, and that the \
                 broker trusts the CA that issued them"
            )
        } else {
            format!(
                "{host} closed the connection after the TLS handshake: if it requires a client \
                 certificate, set AMQP_CLIENT_CERT and AMQP_CLIENT_KEY"
            )
        });
    }
    if !node.is_tls() {
        // A TLS listener answers the AMQP header with a TLS alert (which does not parse)
        // or by closing the connection.
        let (host, port) = (node.host(), node.port());
        let hint = "if it is a TLS port (usually 5671), use amqps://";
        return match error.kind() {
            lapin::ErrorKind::ParsingError(_) => {
                Some(format!("{host}:{port} did not answer in AMQP: {hint}"))
            }
            lapin::ErrorKind::IOError(io) if closed_early(io.kind()) => Some(format!(
                "{host}:{port} closed the connection before AMQP began: {hint}"
            )),
            _ => None,
        };
    }
    if node.is_tls() && error.to_string().contains("native certificates") {
        return Some(
            "no system root certificates could be loaded: install the ca-certificates \
             package, or set SSL_CERT_FILE to a PEM bundle"
                .to_owned(),
        );
    }
    None
}

fn closed_early(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof
    )
}

/// The rustls error inside `error`, if the failure was a TLS one. lapin wraps it in an
/// `io::Error`, itself in a `lapin::Error`.
pub fn tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(found) = tls_error(inner)
        {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// What failed in a TLS handshake with `host`, and what to do, in one line.
pub fn explain(error: &rustls::Error, host: &str) -> String {
    use rustls::Error as E;
    match error {
        E::InvalidCertificate(certificate) => explain_certificate(certificate, host),
        E::AlertReceived(alert) => explain_alert(*alert, host),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
            "{host} did not answer in TLS: this looks like a plaintext AMQP port; \
             use amqp:// for it, or the broker's TLS port (usually 5671) with amqps://"
        ),
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

fn explain_certificate(error: &CertificateError, host: &str) -> String {
    match error {
        CertificateError::UnknownIssuer => format!(
            "the certificate of {host} was issued by a CA this client does not trust: \
             set AMQP_CA_FILE to a PEM file holding that CA"
        ),
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "the certificate names {}, not host {host}: connect by one of those names, \
             or reissue the certificate for {host}",
            if presented.is_empty() {
                "no host".to_owned()
            } else {
                presented
                    .iter()
                    .map(|name| plain_name(name))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        CertificateError::NotValidForName => format!(
            "the certificate of {host} is not valid for that name: connect by a name it \
             holds, or reissue it for {host}"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
            "the certificate of {host} has expired: renew it on the broker \
             (or check this machine's clock)"
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the certificate of {host} is not valid yet: check this machine's clock")
        }
        other => format!("the certificate of {host} was refused: {other}"),
    }
}

/// `localhost` from webpki's `DnsName("localhost")`, `127.0.0.1` from `IpAddress(127.0.0.1)`.
fn plain_name(presented: &str) -> &str {
    ["DnsName(", "IpAddress(", "UniformResourceIdentifier("]
        .iter()
        .find_map(|prefix| presented.strip_prefix(prefix)?.strip_suffix(')'))
        .map_or(presented, |inner| inner.trim_matches('"'))
}

fn explain_alert(alert: AlertDescription, host: &str) -> String {
    match alert {
        AlertDescription::CertificateRequired => format!(
            "{host} requires a client certificate: set AMQP_CLIENT_CERT and AMQP_CLIENT_KEY"
        ),
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateUnknown
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateExpired
        | AlertDescription::CertificateRevoked
        | AlertDescription::AccessDenied => format!(
            "{host} refused the client certificate ({alert:?}): check AMQP_CLIENT_CERT and \
             AMQP_CLIENT_KEY, and that the broker trusts the CA that issued them"
        ),
        other => format!("{host} ended the TLS handshake ({other:?})"),
    }
}

#[cfg(test)]
mod tests;
