//! TLS for `pulsar+ssl://`: whom to trust, and whether the certificate must name the host.
//!
//! A broker's certificate is trusted if it chains to one of: the Mozilla root certificates
//! (webpki-roots), the machine's trust store (where a deployment usually installs its own
//! certificate authority: `/etc/ssl/certs`, or `SSL_CERT_FILE` / `SSL_CERT_DIR`, through
//! rustls-native-certs), or the file of [`TlsOptions::trust_certs`]. TrustGraph's services
//! (Pulsar's C++ client) trust the machine's store too; without it here, a deployment whose CA
//! is installed there would need the flag where upstream needs nothing.
//!
//! The certificate must also name the host the client connects to (a DNS name, or an IP
//! address in its subject alternative names), unless [`TlsOptions::check_hostname`] is off.
//! Pulsar's own clients do not check names by default (`tls_validate_hostname=False`), which
//! lets anyone with a certificate from the same CA stand in for the broker; here the check is
//! on by default, and off only by the operator's explicit choice, for deployments whose
//! certificates name no reachable host. The chain is verified either way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::PulsarError;

/// Whom to trust for `pulsar+ssl://`, and how strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// Certificates (PEM) to trust besides the Mozilla roots and the machine's store: a
    /// deployment's own certificate authority.
    pub trust_certs: Option<PathBuf>,
    /// Whether a certificate must name the host connected to (on by default).
    pub check_hostname: bool,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self { trust_certs: None, check_hostname: true }
    }
}

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

pub(super) fn connector(options: &TlsOptions) -> Result<TlsConnector, PulsarError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(options)?), provider.clone())
        .build()
        .map_err(|e| PulsarError::Protocol(format!("the certificates to trust: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let config = if options.check_hostname {
        builder.with_webpki_verifier(verifier).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyHostname(verifier))).with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The Mozilla roots, the machine's store and the operator's file.
fn roots(options: &TlsOptions) -> Result<rustls::RootCertStore, PulsarError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    // A machine may have no store at all (a distroless image): then the other two suffice.
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!("the machine's trust store: {error}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "trusting the machine's certificates for pulsar+ssl://");
    let own = options.trust_certs.as_deref().map(trusted_certs).transpose().map_err(PulsarError::Protocol)?;
    for cert in own.into_iter().flatten() {
        roots.add(cert).map_err(|e| PulsarError::Protocol(format!("a certificate to trust: {e}")))?;
    }
    Ok(roots)
}

pub(super) async fn connect(
    connector: &TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, PulsarError> {
    // An IP address is checked against the certificate's IP address names, a name against
    // its DNS names.
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| PulsarError::Protocol(format!("{host:?} cannot be checked against a certificate: {e}")))?;
    Ok(connector.connect(name, tcp).await?)
}

/// WebPKI's verification but for the name: a certificate that chains to a trusted root is
/// accepted whichever host it names. webpki checks the chain before the name, so a name error
/// means the chain was good.
#[derive(Debug)]
struct AnyHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
