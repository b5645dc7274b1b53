//! TLS for `pulsar+ssl://`: the Mozilla root certificates (webpki-roots), and those of
//! [`ClientOptions::tls_trust_certs`](super::ClientOptions::tls_trust_certs).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::PulsarError;

/// The certificates of a PEM file; at least one.
pub fn trusted_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

pub(super) fn connector(trust_certs: Option<&Path>) -> Result<TlsConnector, PulsarError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for cert in trust_certs.map(trusted_certs).transpose().map_err(PulsarError::Protocol)?.into_iter().flatten() {
        roots.add(cert).map_err(|e| PulsarError::Protocol(format!("a certificate to trust: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

pub(super) async fn connect(
    connector: &TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, PulsarError> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| PulsarError::Protocol(format!("{host:?} cannot be checked against a certificate: {e}")))?;
    Ok(connector.connect(name, tcp).await?)
}
