//! A TLS front for a broker without TLS of its own (pulsar-lite): it accepts `pulsar+ssl://`
//! connections with a certificate made for the test, and forwards each to the broker over
//! plain TCP. Its certificate is self-signed for the names the test chooses (DNS names or IP
//! addresses), and trusted by nobody who is not given `ca.pem`: the tests of the client's trust
//! and host-name checks. Lookup answers are rewritten to name the front as the TLS address,
//! which pulsar-lite leaves out.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;

/// A running front; it serves until the test's runtime ends.
pub struct TlsFront {
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsFront {
    /// A front for the broker at `broker_address` (`host:port`), with a certificate for
    /// `names`; lookups name the front as `pulsar+ssl://<lookup_host>:<port>`.
    pub async fn start(broker_address: &str, names: &[&str], lookup_host: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (broker_address, tls_url) = (broker_address.to_owned(), format!("pulsar+ssl://{lookup_host}:{port}"));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, broker_address, tls_url) = (acceptor.clone(), broker_address.clone(), tls_url.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let broker = tokio::net::TcpStream::connect(&broker_address).await.unwrap();
                    let (mut from_client, mut to_client) = tokio::io::split(tls);
                    let (mut from_broker, mut to_broker) = broker.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut from_client, &mut to_broker) => {}
                        _ = forward_naming_tls(&mut from_broker, &mut to_client, &tls_url) => {}
                    }
                });
            }
        });
        Self { port, dir }
    }

    /// The front's URL, with `host` (which the certificate may or may not name).
    pub fn url(&self, host: &str) -> String {
        format!("pulsar+ssl://{host}:{}", self.port)
    }

    /// The certificate (PEM), to trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// Copy the broker's frames to the client, its lookup answers naming `tls_url`.
async fn forward_naming_tls(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    tls_url: &str,
) -> std::io::Result<()> {
    use bootstrap_wasm::broker::pulsar::proto::{BaseCommand, CommandType};
    use prost::Message as _;

    loop {
        let size = from.read_u32().await?;
        let mut frame = vec![0; size as usize];
        from.read_exact(&mut frame).await?;
        let command_size = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        if frame.len() == 4 + command_size {
            let mut command = BaseCommand::decode(&frame[4..]).unwrap();
            if let Some(answer) =
                command.lookup_topic_response.as_mut().filter(|_| command.r#type == CommandType::LookupResponse as i32)
            {
                answer.broker_service_url_tls = Some(tls_url.to_owned());
                let encoded = command.encode_to_vec();
                frame = [&(encoded.len() as u32).to_be_bytes()[..], &encoded].concat();
            }
        }
        to.write_u32(frame.len() as u32).await?;
        to.write_all(&frame).await?;
    }
}
