//! TLS failures in one line each (unknown CA, name mismatch, expiry, refused client
//! certificate, plaintext port) and the TLS files refused without quoting them.

use super::*;
use rustls::pki_types::ServerName;

fn name_mismatch(presented: &[&str]) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        expected: ServerName::try_from("broker.internal").unwrap(),
        presented: presented.iter().map(|s| (*s).to_owned()).collect(),
    })
}

#[test]
fn an_unknown_ca_asks_for_the_ca_file() {
    let line = explain(
        &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        "broker.internal",
    );
    assert!(line.contains("set AMQP_CA_FILE"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn a_name_mismatch_says_which_names_the_certificate_holds() {
    let presented = ["DnsName(\"localhost\")", "IpAddress(10.0.0.1)"];
    let line = explain(&name_mismatch(&presented), "127.0.0.1");
    assert!(
        line.contains("names localhost, 10.0.0.1, not host 127.0.0.1"),
        "{line}"
    );
    let line = explain(&name_mismatch(&[]), "127.0.0.1");
    assert!(line.contains("names no host"), "{line}");
}

#[test]
fn an_expired_certificate_says_so() {
    let line = explain(
        &rustls::Error::InvalidCertificate(CertificateError::Expired),
        "h",
    );
    assert!(line.contains("has expired"), "{line}");
}

#[test]
fn a_refused_client_certificate_points_at_the_client_files() {
    let line = explain(
        &rustls::Error::AlertReceived(AlertDescription::UnknownCA),
        "h",
    );
    assert!(line.contains("refused the client certificate"), "{line}");
    let line = explain(
        &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
        "h",
    );
    assert!(line.contains("set AMQP_CLIENT_CERT"), "{line}");
}

#[test]
fn a_plaintext_answer_to_a_tls_hello_names_the_plaintext_port() {
    let error = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
    let line = explain(&error, "h");
    assert!(line.contains("plaintext AMQP port"), "{line}");
}

#[test]
fn the_tls_error_is_found_inside_io_errors() {
    let io = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
    );
    let found = tls_error(&io);
    assert!(
        matches!(
            found,
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{found:?}"
    );
    let plain = std::io::Error::other("connection refused");
    assert!(tls_error(&plain).is_none());
}

#[test]
fn missing_tls_files_are_named_and_half_an_identity_is_refused() {
    let settings = AmqpSettings {
        ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
        ..AmqpSettings::default()
    };
    let err = load(&settings).unwrap_err();
    assert!(
        err.to_string().contains("AMQP_CA_FILE /nonexistent/ca.pem"),
        "{err}"
    );
    let settings = AmqpSettings {
        client_key: Some(PathBuf::from("k.pem")),
        ..AmqpSettings::default()
    };
    let err = load(&settings).unwrap_err();
    assert!(err.to_string().contains("only AMQP_CLIENT_KEY"), "{err}");
}

#[test]
fn a_file_without_pem_is_refused_without_quoting_it() {
    let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key.pem");
    std::fs::write(&key, "Secret-Key-Material-91").unwrap();
    let settings = AmqpSettings {
        ca_file: Some(key.clone()),
        ..AmqpSettings::default()
    };
    let err = load(&settings).unwrap_err().to_string();
    assert!(err.contains("holds no PEM certificate"), "{err}");
    assert!(!err.contains("Secret-Key-Material-91"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
