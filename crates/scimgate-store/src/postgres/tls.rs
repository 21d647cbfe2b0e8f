//! TLS to the database. Asked for by the address (`sslmode=require`) or by naming the
//! authority that signs the server's certificate (`database_ca_file`); then always
//! verified: the server's certificate must chain to that authority (else to the web's
//! public roots) and name the host connected to, and a client certificate is presented
//! when one is configured. Without either, the connection is plain TCP (`prefer` is not
//! honoured as "TLS if offered, unverified": a connection is verified or it is plain).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::SslMode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::StoreError;

/// Where the TLS material is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates of the authorities that may sign the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain and its key, for certificate authentication.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether TLS is asked for by these files.
    fn any(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some()
    }
}

/// The connector for `config`, and `config` told whether to use it: TLS when the address
/// or `files` ask for it, plain otherwise.
pub fn connector(
    config: &mut postgres::Config,
    files: &TlsFiles,
) -> Result<MakeRustlsConnect, StoreError> {
    let wanted = files.any() || config.get_ssl_mode() == SslMode::Require;
    config.ssl_mode(if wanted {
        SslMode::Require
    } else {
        SslMode::Disable
    });
    let mut roots = rustls::RootCertStore::empty();
    match &files.ca_file {
        Some(file) => {
            for cert in certificates(file)? {
                roots
                    .add(cert)
                    .map_err(|e| bad(file, &format!("not a usable certificate: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Setup(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let tls = match (&files.client_cert, &files.client_key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(key, &format!("no private key: {e}")))?;
            builder
                .with_client_auth_cert(certificates(cert)?, key)
                .map_err(|e| bad(cert, &format!("does not go with its key: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(StoreError::Setup(
                "database_client_cert and database_client_key go together".into(),
            ));
        }
    };
    Ok(MakeRustlsConnect::new(tls))
}

fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let certs = CertificateDer::pem_file_iter(file)
        .map_err(|e| bad(file, &e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(file, &e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(file, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn bad(file: &Path, why: &str) -> StoreError {
    StoreError::Setup(format!("TLS file {}: {why}", file.display()))
}
