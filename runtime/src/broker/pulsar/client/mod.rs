//! A Pulsar client: connections to a cluster's brokers, and the topic lookups that say which.
//!
//! The service URL names any broker of the cluster (or a proxy in front of it). Each topic is
//! served by one broker, which a lookup on the service URL finds, following redirects; the
//! client then produces or consumes on a connection to that broker. A lookup may say that the
//! broker is to be reached through the service URL (a Pulsar proxy): the connection then goes
//! there, and its CONNECT names the broker, as `host:port` like the Java and C++ clients, for
//! the proxy to forward to.
//!
//! Connections are kept by broker (and proxy: two brokers behind one proxy get a connection
//! each) and shared by everything on it; one that has ended is replaced on its next use, so a
//! restarted broker is picked up without anyone having to notice. Opening one holds no lock
//! (`super::pool`): a broker slow to answer delays only those who need it, and those who need
//! it at the same time share the one connection. Connections to `pulsar+ssl://` URLs go
//! through [`tls`].
//!
//! A producer's or consumer's creation that the broker answers with a retriable error (not
//! ready, or too busy: [`PulsarError::is_retriable`]), in the lookup or the creation itself, is
//! tried again from the lookup, after 100 ms and then twice as long each time, for as long as
//! the operation timeout allows, as Pulsar's Java client does. Any other error fails it at
//! once.
//!
//! A partitioned topic (a cluster may create them so) is served as Pulsar's own clients serve
//! it: a producer or subscription asks how many partitions the topic has, then makes a
//! producer or consumer on each partition's topic (`<topic>-partition-<n>`); see `producer`
//! and `subscription`, which also keep subscriptions going when the broker moves a topic.

mod producer;
mod subscription;
pub mod tls;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

pub use producer::TopicProducer;
pub use subscription::SubscriptionGuard;

use super::connection::{BrokerStream, ConnectSettings, Connection};
use super::error::PulsarError;
use super::pool::Pool;
use super::proto::{LookupType, ServerError};

/// How many redirects a lookup follows before giving up.
const MAX_REDIRECTS: usize = 16;

/// The wait before the first retry after a retriable error, and the longest between two.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(1);

/// Where the cluster is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `pulsar://host:6650` or `pulsar+ssl://host:6651`.
    pub url: String,
    /// Token authentication.
    pub token: Option<String>,
    /// The advertised listener whose addresses lookups should answer with.
    pub listener: Option<String>,
    /// Whom to trust for `pulsar+ssl://`, and whether certificates must name their host.
    pub tls: tls::TlsOptions,
    /// How long opening a TCP connection may take.
    pub connect_timeout: Duration,
    /// How long the broker may take over any one answer.
    pub operation_timeout: Duration,
    /// How often an idle connection is pinged; one silent for two pings is given up.
    pub keepalive: Duration,
}

/// A broker's URL, and the broker a proxy there should forward to.
type BrokerKey = (String, Option<String>);

/// Connections to one cluster; see the module's documentation. Clones share them.
#[derive(Clone)]
pub struct Client {
    options: ClientOptions,
    connections: Arc<Pool<BrokerKey, Arc<Connection>>>,
    /// Made at the first TLS connection.
    tls: Arc<OnceLock<tokio_rustls::TlsConnector>>,
}

impl Client {
    /// A client of the cluster `options` names. Connects on first use.
    pub fn new(options: ClientOptions) -> Self {
        Self { options, connections: Arc::default(), tls: Arc::default() }
    }

    /// The topics to produce to or consume from for `topic`: its partitions' if it is
    /// partitioned, else itself.
    async fn partitions(&self, topic: &str) -> Result<Vec<String>, PulsarError> {
        let ask = || async move { self.connection(&self.options.url, None).await?.partitions(topic).await };
        let partitions = self.retrying(PulsarError::is_retriable, ask).await?;
        if partitions == 0 {
            return Ok(vec![topic.to_owned()]);
        }
        tracing::debug!(topic, partitions, "a partitioned Pulsar topic");
        Ok((0..partitions).map(|n| format!("{topic}-partition-{n}")).collect())
    }

    /// Close every connection, with what is open on it, within `timeout`; returns how many
    /// consumers and producers were closed.
    pub async fn close(&self, timeout: Duration) -> (usize, usize) {
        let mut closed = (0, 0);
        for connection in self.connections.drain() {
            let (consumers, producers) = connection.close(timeout).await;
            closed = (closed.0 + consumers, closed.1 + producers);
        }
        closed
    }

    /// What `attempt` makes, trying again while it fails with an error that `worth_retrying`
    /// and the operation timeout allows; see the module's documentation.
    async fn retrying<T, F>(
        &self,
        worth_retrying: impl Fn(&PulsarError) -> bool,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, PulsarError>
    where
        F: Future<Output = Result<T, PulsarError>>,
    {
        let deadline = Instant::now() + self.options.operation_timeout;
        let mut wait = FIRST_RETRY;
        loop {
            match attempt().await {
                Err(e) if worth_retrying(&e) && Instant::now() + wait < deadline => {
                    tracing::debug!("trying again in {wait:?}: {e}");
                    tokio::time::sleep(wait).await;
                    wait = (2 * wait).min(LONGEST_RETRY);
                }
                done => return done,
            }
        }
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

    /// The open connection to `broker` (through the service URL's proxy to `proxy_to`), the one
    /// being opened, or a new one.
    async fn connection(&self, broker: &str, proxy_to: Option<&str>) -> Result<Arc<Connection>, PulsarError> {
        let key = (broker.to_owned(), proxy_to.map(str::to_owned));
        let open = || async move {
            let connection = self.open(broker, proxy_to).await.map_err(|e| match e {
                PulsarError::Connect { .. } => e,
                other => PulsarError::Connect { url: broker.to_owned(), reason: other.to_string() },
            })?;
            tracing::debug!(broker, proxy_to, "connected to Pulsar");
            Ok(connection)
        };
        self.connections.get_or_make(&key, |connection| !connection.is_closed(), open).await
    }

    async fn open(&self, broker: &str, proxy_to: Option<&str>) -> Result<Arc<Connection>, PulsarError> {
        let url = BrokerUrl::parse(broker)?;
        // A proxy wants the broker's address, not its URL: it forwards to `host:port`.
        let proxy_to_broker_url = proxy_to.map(BrokerUrl::parse).transpose()?.map(|url| url.authority);
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
                    let made = tls::connector(&self.options.tls)?;
                    self.tls.get_or_init(|| made)
                }
            };
            Box::new(tls::connect(connector, &url.host, tcp).await?)
        } else {
            Box::new(tcp)
        };
        let settings = ConnectSettings {
            token: self.options.token.clone(),
            proxy_to_broker_url,
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::super::proto::{BaseCommand, CommandType, SubType};
    use super::super::scripted::{self, Handshake, ScriptedBroker, client};
    use super::*;

    const TOPIC: &str = "persistent://tg/flow/x";

    fn kind(command: &BaseCommand) -> CommandType {
        CommandType::try_from(command.r#type).unwrap()
    }

    fn closed_consumers(broker: &ScriptedBroker) -> Vec<u64> {
        let closes = broker.received(CommandType::CloseConsumer);
        closes.into_iter().map(|close| close.close_consumer.unwrap().consumer_id).collect()
    }

    #[tokio::test]
    async fn a_lookup_follows_redirects_with_the_listener_and_the_token() {
        // `owner` serves the topic; `front` redirects lookups to it.
        let owner = ScriptedBroker::start(scripted::serves).await;
        let owner_url = owner.url.clone();
        let front = ScriptedBroker::start(move |command, _| match kind(command) {
            CommandType::PartitionedMetadata => Some(scripted::partitions_answer(command, 0)),
            CommandType::Lookup => Some(scripted::lookup_answer(command, LookupType::Redirect, &owner_url)),
            _ => None,
        })
        .await;

        let client = Client::new(ClientOptions {
            token: Some("secret".into()),
            listener: Some("internal".into()),
            ..client(&front.url, Duration::from_secs(5)).options
        });
        let producer = client.producer(TOPIC).await.unwrap();
        assert!(producer.is_open());

        for broker in [&front, &owner] {
            let connect = broker.received(CommandType::Connect).remove(0).connect.unwrap();
            assert_eq!(connect.auth_method_name.as_deref(), Some("token"));
            assert_eq!(connect.auth_data.as_deref(), Some(&b"secret"[..]));
            assert_eq!(connect.proxy_to_broker_url, None);
        }
        let first = front.received(CommandType::Lookup).remove(0).lookup_topic.unwrap();
        assert_eq!((first.topic.as_str(), first.authoritative), (TOPIC, Some(false)));
        assert_eq!(first.advertised_listener_name.as_deref(), Some("internal"));
        let second = owner.received(CommandType::Lookup).remove(0).lookup_topic.unwrap();
        assert_eq!(second.authoritative, Some(true), "the redirect said the answer is authoritative");
        assert_eq!(second.advertised_listener_name.as_deref(), Some("internal"));
        assert_eq!(owner.received(CommandType::Producer).len(), 1, "the producer is made where the topic lives");
        assert!(front.received(CommandType::Producer).is_empty());
    }

    #[tokio::test]
    async fn through_a_proxy_each_broker_gets_a_connection_that_names_it_by_host_and_port() {
        // The service URL is a proxy's, and lookups say that the topic's broker is behind it.
        let proxy = ScriptedBroker::start(|command, own_url| match kind(command) {
            CommandType::Lookup => {
                let topic = &command.lookup_topic.as_ref().unwrap().topic;
                let broker = if topic.ends_with("/a") { "pulsar://broker-a:6650" } else { "pulsar://broker-b" };
                let mut answer = scripted::lookup_answer(command, LookupType::Connect, broker);
                answer.lookup_topic_response.as_mut().unwrap().proxy_through_service_url = Some(true);
                Some(answer)
            }
            _ => scripted::serves(command, own_url),
        })
        .await;
        let client = client(&proxy.url, Duration::from_secs(5));
        for topic in ["persistent://tg/flow/a", "persistent://tg/flow/a", "persistent://tg/flow/b"] {
            client.producer(topic).await.unwrap();
        }

        let connects = proxy.received(CommandType::Connect);
        let mut forwarded: Vec<_> = connects.into_iter().map(|c| c.connect.unwrap().proxy_to_broker_url).collect();
        forwarded.sort();
        let expected = [None, Some("broker-a:6650".to_owned()), Some("broker-b:6650".to_owned())];
        assert_eq!(forwarded, expected, "one connection for the lookups, then one per broker behind the proxy");
    }

    #[tokio::test]
    async fn a_subscribe_that_times_out_closes_its_consumer_though_the_broker_answers_late() {
        let broker = ScriptedBroker::start(|command, own_url| match kind(command) {
            CommandType::Subscribe => None, // Answered late, below.
            _ => scripted::serves(command, own_url),
        })
        .await;
        let timeout = Duration::from_millis(300);
        let client = client(&broker.url, timeout);

        let subscribed = client.subscribe(TOPIC, "lease", SubType::Exclusive, None).await;
        assert_eq!(subscribed.err(), Some(PulsarError::Timeout(timeout)));
        let subscribe = broker.received(CommandType::Subscribe).remove(0).subscribe.unwrap();
        broker.send(&scripted::success(subscribe.request_id));

        broker.wait_for(CommandType::CloseConsumer, 1).await;
        broker.round_trip().await;
        assert_eq!(closed_consumers(&broker), [subscribe.consumer_id], "closed, once");
    }

    #[tokio::test]
    async fn a_subscribe_given_up_on_closes_its_consumer() {
        let broker = ScriptedBroker::start(|command, own_url| match kind(command) {
            CommandType::Subscribe => None,
            _ => scripted::serves(command, own_url),
        })
        .await;
        let client = client(&broker.url, Duration::from_secs(30));

        tokio::select! {
            _ = client.subscribe(TOPIC, "lease", SubType::Exclusive, None) => unreachable!("never answered"),
            // The subscribe's future is dropped here, its SUBSCRIBE sent and unanswered.
            _ = broker.wait_for(CommandType::Subscribe, 1) => {}
        }
        let subscribe = broker.received(CommandType::Subscribe).remove(0).subscribe.unwrap();
        broker.wait_for(CommandType::CloseConsumer, 1).await;
        assert_eq!(closed_consumers(&broker), [subscribe.consumer_id]);

        // The broker's answer, when it comes, changes nothing.
        broker.send(&scripted::success(subscribe.request_id));
        broker.round_trip().await;
        assert_eq!(closed_consumers(&broker), [subscribe.consumer_id]);
    }

    #[tokio::test]
    async fn messages_for_a_consumer_this_side_does_not_know_get_it_closed_once() {
        let broker = ScriptedBroker::start(|command, own_url| match kind(command) {
            CommandType::CloseConsumer => None, // Answered below.
            _ => scripted::serves(command, own_url),
        })
        .await;
        let client = client(&broker.url, Duration::from_secs(5));
        let _producer = client.producer(TOPIC).await.unwrap(); // For a connection.

        broker.send_frame(scripted::message(4242, b"one"));
        broker.send_frame(scripted::message(4242, b"two"));
        broker.round_trip().await;
        assert_eq!(closed_consumers(&broker), [4242], "one close for both messages");

        // Once the broker has answered the close, a message for the consumer is news again.
        let close = broker.received(CommandType::CloseConsumer).remove(0).close_consumer.unwrap();
        broker.send(&scripted::success(close.request_id));
        broker.send_frame(scripted::message(4242, b"three"));
        broker.round_trip().await;
        assert_eq!(closed_consumers(&broker), [4242, 4242]);
    }

    #[tokio::test]
    async fn a_message_over_the_brokers_limit_is_refused_and_the_connection_stays() {
        let handshake = Handshake { max_message_size: Some(1024), ..Handshake::default() };
        let broker = ScriptedBroker::start_with(handshake, scripted::serves).await;
        let client = client(&broker.url, Duration::from_secs(5));
        let producer = client.producer(TOPIC).await.unwrap();

        // Over the limit, then over what the broker would read at all.
        for size in [1025, 64 << 10] {
            let refused = producer.send(Vec::new(), &vec![0; size]).await;
            assert_eq!(refused, Err(PulsarError::MessageTooLarge { size, limit: 1024 }));
        }
        let refused = PulsarError::MessageTooLarge { size: 1025, limit: 1024 };
        assert_eq!(refused.to_string(), "a message of 1025 bytes is over the broker's limit of 1024 bytes");
        assert!(producer.is_open());
        producer.send(Vec::new(), &[0; 1024]).await.unwrap();
        let sent = broker.received(CommandType::Send);
        assert_eq!(sent.len(), 1, "only the message within the limit went out");
        assert_eq!(sent[0].send.as_ref().unwrap().sequence_id, 0, "the refused ones took no sequence id");
    }

    #[tokio::test]
    async fn a_broker_not_ready_or_too_busy_is_asked_again() {
        let (lookups, producers) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let broker = ScriptedBroker::start(move |command, own_url| match kind(command) {
            CommandType::Lookup if lookups.fetch_add(1, Ordering::Relaxed) < 2 => {
                Some(scripted::lookup_failed(command, ServerError::ServiceNotReady))
            }
            CommandType::Producer if producers.fetch_add(1, Ordering::Relaxed) < 1 => {
                let request_id = command.producer.as_ref().unwrap().request_id;
                Some(scripted::error(request_id, ServerError::TooManyRequests))
            }
            _ => scripted::serves(command, own_url),
        })
        .await;
        let client = client(&broker.url, Duration::from_secs(5));

        assert!(client.producer(TOPIC).await.unwrap().is_open());
        // Two lookups not ready, one whose producer was refused, and the one that made it.
        assert_eq!(broker.received(CommandType::Lookup).len(), 4);
        assert_eq!(broker.received(CommandType::Producer).len(), 2);
    }

    #[tokio::test]
    async fn a_refusal_fails_at_once() {
        let broker = ScriptedBroker::start(|command, own_url| match kind(command) {
            CommandType::Lookup if command.lookup_topic.as_ref().unwrap().topic == TOPIC => {
                Some(scripted::lookup_failed(command, ServerError::AuthorizationError))
            }
            CommandType::Subscribe => {
                let request_id = command.subscribe.as_ref().unwrap().request_id;
                Some(scripted::error(request_id, ServerError::ConsumerBusy))
            }
            _ => scripted::serves(command, own_url),
        })
        .await;
        let client = client(&broker.url, Duration::from_secs(5));

        let unauthorized = client.producer(TOPIC).await.err();
        assert!(matches!(unauthorized, Some(PulsarError::Server { code: ServerError::AuthorizationError, .. })));
        assert_eq!(broker.received(CommandType::Lookup).len(), 1);
        let busy = client.subscribe("persistent://tg/flow/held", "lease", SubType::Exclusive, None).await.err();
        assert!(matches!(busy, Some(PulsarError::Server { code: ServerError::ConsumerBusy, .. })));
        assert_eq!(broker.received(CommandType::Subscribe).len(), 1);
        broker.round_trip().await;
        assert!(closed_consumers(&broker).is_empty(), "the broker made no consumer to close");
    }

    #[tokio::test]
    async fn retries_end_within_the_operation_timeout() {
        let broker = ScriptedBroker::start(|command, own_url| match kind(command) {
            CommandType::Lookup => Some(scripted::lookup_failed(command, ServerError::ServiceNotReady)),
            _ => scripted::serves(command, own_url),
        })
        .await;
        let timeout = Duration::from_secs(1);
        let client = client(&broker.url, timeout);

        let started = Instant::now();
        let failed = client.producer(TOPIC).await.err();
        assert!(matches!(failed, Some(PulsarError::Server { code: ServerError::ServiceNotReady, .. })));
        assert!(started.elapsed() < 2 * timeout, "gave up after {:?}", started.elapsed());
        // After 100, 200 and 400 ms; 800 more would be past the timeout.
        let lookups = broker.received(CommandType::Lookup).len();
        assert!((3..=4).contains(&lookups), "{lookups} lookups");
    }

    #[tokio::test]
    async fn a_broker_slow_to_connect_delays_no_one_else() {
        let silent =
            ScriptedBroker::start_with(Handshake { answered: false, ..Handshake::default() }, scripted::serves).await;
        let broker = ScriptedBroker::start(scripted::serves).await;
        let client = client(&broker.url, Duration::from_secs(30));

        tokio::select! {
            _ = client.connection(&silent.url, None) => unreachable!("the silent broker never answers"),
            made = async {
                silent.wait_for(CommandType::Connect, 1).await;
                tokio::time::timeout(Duration::from_secs(5), client.producer(TOPIC)).await
            } => assert!(made.expect("not held up by the other broker").is_ok()),
        }
    }

    #[tokio::test]
    async fn callers_at_the_same_time_share_one_connection() {
        let broker = ScriptedBroker::start(scripted::serves).await;
        let client = client(&broker.url, Duration::from_secs(5));

        let (one, two) = tokio::join!(client.connection(&broker.url, None), client.connection(&broker.url, None));
        assert!(Arc::ptr_eq(&one.unwrap(), &two.unwrap()));
        assert_eq!(broker.received(CommandType::Connect).len(), 1);
    }

    /// A broker on which [`TOPIC`] has three partitions.
    async fn partitioned_broker() -> ScriptedBroker {
        ScriptedBroker::start(|command, own_url| match kind(command) {
            CommandType::PartitionedMetadata if command.partition_metadata.as_ref().unwrap().topic == TOPIC => {
                Some(scripted::partitions_answer(command, 3))
            }
            _ => scripted::serves(command, own_url),
        })
        .await
    }

    #[tokio::test]
    async fn a_partitioned_topic_gets_a_producer_on_each_partition_sent_to_in_turn() {
        let broker = partitioned_broker().await;
        let client = client(&broker.url, Duration::from_secs(5));

        let producer = client.producer(TOPIC).await.unwrap();
        for _ in 0..6 {
            producer.send(Vec::new(), b"{}").await.unwrap();
        }

        let made = broker.received(CommandType::Producer);
        let topics: Vec<_> = made.iter().map(|p| p.producer.as_ref().unwrap().topic.clone()).collect();
        let partitions: Vec<_> = (0..3).map(|n| format!("{TOPIC}-partition-{n}")).collect();
        assert_eq!(topics, partitions);
        let ids: Vec<_> = made.iter().map(|p| p.producer.as_ref().unwrap().producer_id).collect();
        let sent: Vec<_> =
            broker.received(CommandType::Send).iter().map(|s| s.send.as_ref().unwrap().producer_id).collect();
        assert_eq!(sent, [ids.clone(), ids].concat(), "round robin over the partitions");
    }

    #[tokio::test]
    async fn a_partitioned_topic_is_read_from_every_partition_on_one_channel() {
        let broker = partitioned_broker().await;
        let client = client(&broker.url, Duration::from_secs(5));

        let (mut messages, _guard) = client.subscribe(TOPIC, "s", SubType::Exclusive, None).await.unwrap();
        let subscribes = broker.received(CommandType::Subscribe);
        let topics: Vec<_> = subscribes.iter().map(|s| s.subscribe.as_ref().unwrap().topic.clone()).collect();
        assert_eq!(topics, (0..3).map(|n| format!("{TOPIC}-partition-{n}")).collect::<Vec<_>>());
        for (n, subscribe) in subscribes.iter().enumerate() {
            broker.send_frame(scripted::message(
                subscribe.subscribe.as_ref().unwrap().consumer_id,
                format!("{n}").as_bytes(),
            ));
        }
        let mut bodies = Vec::new();
        for _ in 0..3 {
            bodies.push(messages.recv().await.unwrap().body);
        }
        bodies.sort();
        assert_eq!(bodies, [b"0", b"1", b"2"]);
    }

    #[tokio::test]
    async fn a_consumer_the_broker_closes_is_made_again_on_the_same_channel() {
        let broker = ScriptedBroker::start(scripted::serves).await;
        let client = client(&broker.url, Duration::from_secs(5));
        let (mut messages, _guard) = client.subscribe(TOPIC, "lease", SubType::Exclusive, Some("me")).await.unwrap();
        let first = broker.received(CommandType::Subscribe).remove(0).subscribe.unwrap();

        // The topic is unloaded: the broker closes the consumer, and the client subscribes again.
        broker.send(&scripted::close_consumer(first.consumer_id));
        let again = broker.wait_for(CommandType::Subscribe, 2).await.remove(1).subscribe.unwrap();
        assert_ne!(again.consumer_id, first.consumer_id);
        assert_eq!(
            (again.topic.as_str(), again.subscription.as_str(), again.sub_type, again.consumer_name.as_deref()),
            (TOPIC, "lease", SubType::Exclusive as i32, Some("me")),
            "the same subscription, under the same name"
        );
        broker.round_trip().await;
        broker.send_frame(scripted::message(again.consumer_id, b"after the move"));
        assert_eq!(messages.recv().await.unwrap().body, b"after the move");
        assert!(closed_consumers(&broker).is_empty(), "nothing was closed from this side");
    }

    #[tokio::test]
    async fn a_consumer_the_broker_closes_and_then_refuses_ends_the_subscription() {
        let subscribes = AtomicUsize::new(0);
        let broker = ScriptedBroker::start(move |command, own_url| match kind(command) {
            CommandType::Subscribe if subscribes.fetch_add(1, Ordering::Relaxed) > 0 => {
                let request_id = command.subscribe.as_ref().unwrap().request_id;
                Some(scripted::error(request_id, ServerError::ConsumerBusy))
            }
            _ => scripted::serves(command, own_url),
        })
        .await;
        let client = client(&broker.url, Duration::from_secs(5));
        let (mut messages, _guard) = client.subscribe(TOPIC, "lease", SubType::Exclusive, None).await.unwrap();
        let first = broker.received(CommandType::Subscribe).remove(0).subscribe.unwrap();

        broker.send(&scripted::close_consumer(first.consumer_id));
        let ended = tokio::time::timeout(Duration::from_secs(5), messages.recv()).await;
        assert_eq!(ended.expect("the subscription ended"), None);
        assert_eq!(broker.received(CommandType::Subscribe).len(), 2, "a refusal is not retried");
    }

    #[tokio::test]
    async fn dropping_the_guard_closes_every_partitions_consumer() {
        let broker = partitioned_broker().await;
        let client = client(&broker.url, Duration::from_secs(5));
        let (_messages, guard) = client.subscribe(TOPIC, "s", SubType::Exclusive, None).await.unwrap();
        let mut ids: Vec<_> =
            broker.received(CommandType::Subscribe).iter().map(|s| s.subscribe.as_ref().unwrap().consumer_id).collect();

        drop(guard);
        broker.wait_for(CommandType::CloseConsumer, 3).await;
        let mut closed = closed_consumers(&broker);
        closed.sort();
        ids.sort();
        assert_eq!(closed, ids);
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
