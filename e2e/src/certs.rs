//! Certificates made at run time for the TLS tests, with `rcgen`, so that no key is ever
//! committed: a CA, a server certificate for `localhost`, a client certificate whose
//! common name is a broker user (for `EXTERNAL`), and a stranger signed by another CA.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// The common name of [`TestPki::client_cert`]: the broker user `EXTERNAL` logs in as.
pub const CLIENT_NAME: &str = "e2e-tls-client";

/// A throwaway public key infrastructure in a temporary folder, removed on drop.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

/// One certificate file and its private key file.
#[derive(Debug, Clone)]
pub struct Identity {
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8).
    pub key: PathBuf,
}

impl TestPki {
    /// Generates the CA, the server (`localhost` only, so that `127.0.0.1` is a name
    /// mismatch), the client, and a stranger client from a CA nobody trusts.
    pub fn generate() -> anyhow::Result<Self> {
        let pki = Self {
            dir: tempfile::tempdir()?,
        };
        let (ca_params, ca_key) = authority("e2e test CA")?;
        let ca = ca_params.self_signed(&ca_key)?;
        pki.write("ca.pem", &ca.pem())?;
        let issuer = Issuer::new(ca_params, ca_key);
        pki.leaf("server", &["localhost"], "localhost", false, &issuer)?;
        pki.leaf("client", &[], CLIENT_NAME, true, &issuer)?;
        let (other_params, other_key) = authority("a CA nobody trusts")?;
        pki.write("other-ca.pem", &other_params.self_signed(&other_key)?.pem())?;
        let stranger = Issuer::new(other_params, other_key);
        pki.leaf("stranger", &[], CLIENT_NAME, true, &stranger)?;
        Ok(pki)
    }

    /// The folder holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the server and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    /// A CA that signed nothing the broker serves (the wrong `AMQP_CA_FILE`).
    pub fn other_ca(&self) -> PathBuf {
        self.dir().join("other-ca.pem")
    }

    /// The broker's certificate, for `localhost`.
    pub fn server(&self) -> Identity {
        self.identity("server")
    }

    /// The client certificate, common name [`CLIENT_NAME`].
    pub fn client(&self) -> Identity {
        self.identity("client")
    }

    /// A client certificate from another CA: the broker refuses it.
    pub fn stranger(&self) -> Identity {
        self.identity("stranger")
    }

    fn identity(&self, name: &str) -> Identity {
        Identity {
            cert: self.dir().join(format!("{name}.pem")),
            key: self.dir().join(format!("{name}.key")),
        }
    }

    fn leaf(
        &self,
        file: &str,
        names: &[&str],
        common_name: &str,
        client: bool,
        issuer: &Issuer<'_, KeyPair>,
    ) -> anyhow::Result<()> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, issuer)?;
        self.write(&format!("{file}.pem"), &cert.pem())?;
        self.write(&format!("{file}.key"), &key.serialize_pem())
    }

    fn write(&self, name: &str, content: &str) -> anyhow::Result<()> {
        let path = self.dir().join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))
    }
}

fn authority(name: &str) -> anyhow::Result<(CertificateParams, KeyPair)> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok((params, KeyPair::generate()?))
}
