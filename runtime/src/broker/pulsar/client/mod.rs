//! A Pulsar client: connections to a cluster's brokers, and the topic lookups that say which.
//!
//! The service URL names any broker of the cluster (or a proxy in front of it). Each topic is
//! served by one broker, which a lookup on the service URL finds, following redirects; the
//! client then produces or consumes on a connection to that broker. Connections are kept by
//! broker and shared by everything on it; one that has ended is replaced on its next use, so a
//! restarted broker is picked up without anyone having to notice. Connections to
//! `pulsar+ssl://` URLs go through [`tls`].

pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::connection::{BrokerStream, ConnectSettings, Connection, ConsumerGuard, Producer};
use super::error::PulsarError;
use super::proto::{LookupType, ServerError, SubType};
use crate::broker::Envelope;

/// How many redirects a lookup follows before giving up.
const MAX_REDIRECTS: usize = 16;

/// Where the cluster is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `pulsar://host:6650` or `pulsar+ssl://host:6651`.
    pub url: String,
    /// Token authentication.
    pub token: Option<String>,
    /// The advertised listener whose addresses lookups should answer with.
    pub listener: Option<String>,
    /// Certificates (PEM) to trust for `pulsar+ssl://`, besides the Mozilla roots: a
    /// deployment's own certificate authority.
    pub tls_trust_certs: Option<PathBuf>,
    /// How long opening a TCP connection may take.
    pub connect_timeout: Duration,
    /// How long the broker may take over any one answer.
    pub operation_timeout: Duration,
    /// How often an idle connection is pinged; one silent for two pings is given up.
    pub keepalive: Duration,
}

/// A broker's URL, and the broker a proxy there should forward to.
type BrokerKey = (String, Option<String>);

/// Connections to one cluster; see the module's documentation.
pub struct Client {
    options: ClientOptions,
    connections: tokio::sync::Mutex<HashMap<BrokerKey, Arc<Connection>>>,
    /// Made at the first TLS connection.
    tls: OnceLock<tokio_rustls::TlsConnector>,
}

impl Client {
    /// A client of the cluster `options` names. Connects on first use.
    pub fn new(options: ClientOptions) -> Self {
        Self { options, connections: tokio::sync::Mutex::default(), tls: OnceLock::new() }
    }

    /// A producer on `topic`.
    pub async fn producer(&self, topic: &str) -> Result<Producer, PulsarError> {
        self.lookup(topic).await?.producer(topic).await
    }

    /// A consumer of `topic` under `subscription` (as `consumer_name`, or a fresh name), from
    /// its latest message: what is published once this returns arrives on the channel, which
    /// closes when the consumer or its connection ends. Dropping the guard closes the consumer.
    pub async fn subscribe(
        &self,
        topic: &str,
        subscription: &str,
        sub_type: SubType,
        consumer_name: Option<&str>,
    ) -> Result<(mpsc::Receiver<Envelope>, ConsumerGuard), PulsarError> {
        self.lookup(topic).await?.subscribe(topic, subscription, sub_type, consumer_name).await
    }

    /// Close every connection, with what is open on it, within `timeout`; returns how many
    /// consumers and producers were closed.
    pub async fn close(&self, timeout: Duration) -> (usize, usize) {
        let connections: Vec<_> = self.connections.lock().await.drain().map(|(_, connection)| connection).collect();
        let mut closed = (0, 0);
        for connection in connections {
            let (consumers, producers) = connection.close(timeout).await;
            closed = (closed.0 + consumers, closed.1 + producers);
        }
        closed
    }

    /// The connection to the broker serving `topic`.
    async fn lookup(&self, topic: &str) -> Result<Arc<Connection>, PulsarError> {
        let tls = BrokerUrl::parse(&self.options.url)?.tls;
        let mut connection = self.connection(&self.options.url, None).await?;
        let mut authoritative = false;
        for _ in 0..MAX_REDIRECTS {
            let answer = connection.lookup(topic, authoritative, self.options.listener.as_deref()).await?;
            let kind = answer.response.and_then(|kind| LookupType::try_from(kind).ok());
            if kind == Some(LookupType::Failed) || kind.is_none() {
                let code =
                    answer.error.and_then(|code| ServerError::try_from(code).ok()).unwrap_or(ServerError::UnknownError);
                let message = answer.message.unwrap_or_else(|| "lookup failed".into());
                return Err(PulsarError::Server { code, message: format!("looking up {topic}: {message}") });
            }
            let broker = if tls { answer.broker_service_url_tls } else { answer.broker_service_url };
            let broker =
                broker.ok_or_else(|| PulsarError::Protocol(format!("the lookup of {topic} named no broker")))?;
            connection = if answer.proxy_through_service_url == Some(true) {
                self.connection(&self.options.url, Some(&broker)).await?
            } else {
                self.connection(&broker, None).await?
            };
            if kind == Some(LookupType::Connect) {
                return Ok(connection);
            }
            authoritative = answer.authoritative == Some(true);
        }
        Err(PulsarError::Protocol(format!("the lookup of {topic} was redirected more than {MAX_REDIRECTS} times")))
    }

    /// The open connection to `broker` (through the service URL's proxy to `proxy_to`), or a
    /// new one.
    async fn connection(&self, broker: &str, proxy_to: Option<&str>) -> Result<Arc<Connection>, PulsarError> {
        let key = (broker.to_owned(), proxy_to.map(str::to_owned));
        let mut connections = self.connections.lock().await;
        if let Some(connection) = connections.get(&key).filter(|connection| !connection.is_closed()) {
            return Ok(connection.clone());
        }
        let connection = self.open(broker, proxy_to).await.map_err(|e| match e {
            PulsarError::Connect { .. } => e,
            other => PulsarError::Connect { url: broker.to_owned(), reason: other.to_string() },
        })?;
        tracing::debug!(broker, "connected to Pulsar");
        connections.insert(key, connection.clone());
        Ok(connection)
    }

    async fn open(&self, broker: &str, proxy_to: Option<&str>) -> Result<Arc<Connection>, PulsarError> {
        let url = BrokerUrl::parse(broker)?;
        let connect = TcpStream::connect(&url.authority);
        let tcp = tokio::time::timeout(self.options.connect_timeout, connect)
            .await
            .map_err(|_| PulsarError::Timeout(self.options.connect_timeout))??;
        // Small frames must not wait for Nagle's algorithm (and the broker's delayed ACK): without
        // this a round trip takes tens of milliseconds (docs/performance.md, "The Pulsar client").
        tcp.set_nodelay(true)?;
        let stream: Box<dyn BrokerStream> = if url.tls {
            let connector = match self.tls.get() {
                Some(connector) => connector,
                None => {
                    let made = tls::connector(self.options.tls_trust_certs.as_deref())?;
                    self.tls.get_or_init(|| made)
                }
            };
            Box::new(tls::connect(connector, &url.host, tcp).await?)
        } else {
            Box::new(tcp)
        };
        let settings = ConnectSettings {
            token: self.options.token.clone(),
            proxy_to_broker_url: proxy_to.map(str::to_owned),
            operation_timeout: self.options.operation_timeout,
            keepalive: self.options.keepalive,
        };
        Connection::open(stream, settings).await
    }
}

/// A `pulsar://` or `pulsar+ssl://` URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    /// The host, without brackets around an IPv6 address.
    pub host: String,
    /// `host:port`, with the scheme's default port if the URL has none.
    pub authority: String,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<Self, PulsarError> {
        let invalid = || PulsarError::Protocol(format!("not a pulsar:// or pulsar+ssl:// URL: {url:?}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
        let tls = match scheme {
            "pulsar" => false,
            "pulsar+ssl" => true,
            _ => return Err(invalid()),
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_credentials, host)| host);
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or_else(invalid)?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err(invalid());
        }
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| invalid())?,
            None if tls => 6651,
            None => 6650,
        };
        let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        Ok(Self { tls, host: host.to_owned(), authority })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::super::frame;
    use super::super::proto::{
        BaseCommand, CommandConnected, CommandLookupTopicResponse, CommandProducerSuccess, CommandType,
    };
    use super::*;

    /// A broker that answers CONNECT, and every other command as `answer` says, and keeps
    /// what it was sent. It checks what the client sends in a way pulsar-lite cannot (one
    /// broker, no listeners or authentication): the real-broker tests are in tests/pulsar.rs.
    struct ScriptedBroker {
        url: String,
        received: Arc<Mutex<Vec<BaseCommand>>>,
    }

    impl ScriptedBroker {
        /// `answer` gets each command and the broker's own URL.
        async fn start(answer: impl Fn(&BaseCommand, &str) -> Option<BaseCommand> + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("pulsar://{}", listener.local_addr().unwrap());
            let received = Arc::new(Mutex::new(Vec::new()));
            let (answer, log, own_url) = (Arc::new(answer), received.clone(), url.clone());
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let (answer, log, own_url) = (answer.clone(), log.clone(), own_url.clone());
                    tokio::spawn(async move {
                        let mut buffer = BytesMut::new();
                        while socket.read_buf(&mut buffer).await.is_ok_and(|n| n > 0) {
                            while let Some(frame) = frame::decode(&mut buffer, 1 << 20).unwrap() {
                                let reply = if frame.command.r#type == CommandType::Connect as i32 {
                                    Some(BaseCommand {
                                        r#type: CommandType::Connected as i32,
                                        connected: Some(CommandConnected {
                                            server_version: "scripted".into(),
                                            ..Default::default()
                                        }),
                                        ..Default::default()
                                    })
                                } else {
                                    answer(&frame.command, &own_url)
                                };
                                log.lock().unwrap().push(frame.command);
                                if let Some(reply) = reply {
                                    socket.write_all(&frame::command(&reply)).await.unwrap();
                                }
                            }
                        }
                    });
                }
            });
            Self { url, received }
        }

        fn received(&self, kind: CommandType) -> Vec<BaseCommand> {
            self.received.lock().unwrap().iter().filter(|c| c.r#type == kind as i32).cloned().collect()
        }
    }

    fn lookup_answer(asked: &BaseCommand, kind: LookupType, broker: &str) -> BaseCommand {
        BaseCommand {
            r#type: CommandType::LookupResponse as i32,
            lookup_topic_response: Some(CommandLookupTopicResponse {
                request_id: asked.lookup_topic.as_ref().unwrap().request_id,
                response: Some(kind as i32),
                broker_service_url: Some(broker.to_owned()),
                authoritative: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_lookup_follows_redirects_with_the_listener_and_the_token() {
        // `owner` serves the topic; `front` redirects lookups to it.
        let owner = ScriptedBroker::start(|command, own_url| match CommandType::try_from(command.r#type).unwrap() {
            CommandType::Lookup => Some(lookup_answer(command, LookupType::Connect, own_url)),
            CommandType::Producer => Some(BaseCommand {
                r#type: CommandType::ProducerSuccess as i32,
                producer_success: Some(CommandProducerSuccess {
                    request_id: command.producer.as_ref().unwrap().request_id,
                    producer_name: "p-1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            _ => None,
        })
        .await;
        let owner_url = owner.url.clone();
        let front = ScriptedBroker::start(move |command, _| {
            (command.r#type == CommandType::Lookup as i32)
                .then(|| lookup_answer(command, LookupType::Redirect, &owner_url))
        })
        .await;

        let client = Client::new(ClientOptions {
            url: front.url.clone(),
            token: Some("secret".into()),
            listener: Some("internal".into()),
            tls_trust_certs: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(30),
        });
        let producer = client.producer("persistent://tg/flow/x").await.unwrap();
        assert!(producer.is_open());

        for broker in [&front, &owner] {
            let connect = broker.received(CommandType::Connect).remove(0).connect.unwrap();
            assert_eq!(connect.auth_method_name.as_deref(), Some("token"));
            assert_eq!(connect.auth_data.as_deref(), Some(&b"secret"[..]));
        }
        let first = front.received(CommandType::Lookup).remove(0).lookup_topic.unwrap();
        assert_eq!((first.topic.as_str(), first.authoritative), ("persistent://tg/flow/x", Some(false)));
        assert_eq!(first.advertised_listener_name.as_deref(), Some("internal"));
        let second = owner.received(CommandType::Lookup).remove(0).lookup_topic.unwrap();
        assert_eq!(second.authoritative, Some(true), "the redirect said the answer is authoritative");
        assert_eq!(second.advertised_listener_name.as_deref(), Some("internal"));
        assert_eq!(owner.received(CommandType::Producer).len(), 1, "the producer is made where the topic lives");
        assert!(front.received(CommandType::Producer).is_empty());
    }

    #[test]
    fn urls_default_the_port_by_scheme() {
        let parse = |url| BrokerUrl::parse(url).map(|url| (url.tls, url.host, url.authority));
        assert_eq!(parse("pulsar://pulsar:6650"), Ok((false, "pulsar".into(), "pulsar:6650".into())));
        assert_eq!(parse("pulsar://pulsar"), Ok((false, "pulsar".into(), "pulsar:6650".into())));
        assert_eq!(parse("pulsar+ssl://pulsar/"), Ok((true, "pulsar".into(), "pulsar:6651".into())));
        assert_eq!(parse("pulsar://[::1]"), Ok((false, "::1".into(), "[::1]:6650".into())));
        assert_eq!(parse("pulsar://[::1]:7000"), Ok((false, "::1".into(), "[::1]:7000".into())));
        for bad in ["pulsar://", "http://pulsar:80", "pulsar", "pulsar://host:port"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
