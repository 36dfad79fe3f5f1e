//! rustls configuration for both sides of a proxy: serving clients with a
//! configured certificate, and trusting upstreams (web PKI roots plus an
//! optional CA file).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn file_err(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = {
        let mut r = std::io::BufReader::new(
            std::fs::File::open(cert_file).map_err(|e| file_err(cert_file, e))?,
        );
        rustls_pemfile::certs(&mut r)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err(cert_file, e))?
    };
    if certs.is_empty() {
        return Err(file_err(cert_file, "no PEM certificate found"));
    }
    let key = {
        let mut r = std::io::BufReader::new(
            std::fs::File::open(key_file).map_err(|e| file_err(key_file, e))?,
        );
        rustls_pemfile::private_key(&mut r)
            .map_err(|e| file_err(key_file, e))?
            .ok_or_else(|| file_err(key_file, "no PEM private key found"))?
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub fn client_config(extra_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let mut r =
            std::io::BufReader::new(std::fs::File::open(path).map_err(|e| file_err(path, e))?);
        for cert in rustls_pemfile::certs(&mut r) {
            roots
                .add(cert.map_err(|e| file_err(path, e))?)
                .map_err(|e| file_err(path, e))?;
        }
    }
    Ok(
        ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
