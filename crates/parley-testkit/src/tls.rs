//! Throwaway certificates for tests of TLS and mutual TLS.
//!
//! One CA signs a server certificate for `localhost` and `127.0.0.1` and a
//! client certificate; everything is written as PEM files into a temporary
//! directory that lives as long as the [`TestPki`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tempfile::TempDir;

/// PEM files of a test CA, a server certificate and a client certificate.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Generates fresh keys and certificates (a few milliseconds).
    pub fn generate() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("parley-pki-")
            .tempdir()
            .context("creating a temporary directory")?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Parley test CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let write = |name: &str, text: &str| -> Result<()> {
            let path = dir.path().join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        };
        write("ca.pem", &ca_cert.pem())?;
        for (stem, names) in [
            (
                "server",
                vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ),
            ("client", vec!["parley-client".to_owned()]),
        ] {
            let key = KeyPair::generate()?;
            let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
            write(&format!("{stem}.pem"), &cert.pem())?;
            write(&format!("{stem}.key"), &key.serialize_pem())?;
        }
        Ok(Self { dir })
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// CA certificate (PARLEY_TLS_CA for clients, PARLEY_TLS_CLIENT_CA for servers).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Server certificate chain for `localhost`/`127.0.0.1` (PARLEY_TLS_CERT).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// Server private key (PARLEY_TLS_KEY).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Client certificate for mutual TLS.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// Client private key for mutual TLS.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }
}
