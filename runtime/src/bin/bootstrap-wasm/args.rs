//! The command line: upstream's flags and environment variables, and what they turn into.
//!
//! Only parsing lives here, and the few checks a parser can make (a Pulsar URL that can never
//! work is the operator's to fix at once); `main.rs` does what the command says.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use bootstrap_wasm::broker::kafka::{KafkaOptions, SecurityProtocol};
use bootstrap_wasm::broker::pulsar::client::{BrokerUrl, tls};
use bootstrap_wasm::broker::pulsar::{PulsarOptions, TlsOptions};
use bootstrap_wasm::broker::rabbitmq::RabbitOptions;
use bootstrap_wasm::deployment::Backend;
use bootstrap_wasm::init_file::parse_duration;
use bootstrap_wasm::lease;
use bootstrap_wasm::scaffold;
use bootstrap_wasm::services::{Protocol, ProtocolChoice};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::Failure;

#[derive(Parser)]
#[command(name = "bootstrap-wasm", version, about, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

// Parsed once at start-up; boxing the backend's options would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(crate) enum Command {
    /// Check an init file as start-up does, touching no service, and print what each
    /// initialiser is and may do: code, sha256, summary, limits and grants.
    Check {
        /// The init file (YAML or JSON).
        #[arg(short = 'c', long = "initialisers-file", value_name = "FILE")]
        init_file: PathBuf,
        /// `text` for people, `json` for tools.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// The protocol the run would be given (check itself asks no service).
        #[arg(long, env = "BOOTSTRAP_WASM_PROTOCOL", value_enum, default_value = "auto")]
        protocol: ProtocolArg,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Show each initialiser's configured flag, stored flag and whether it is pending.
    Status {
        /// The init file (YAML or JSON).
        #[arg(short = 'c', long = "initialisers-file", value_name = "FILE")]
        init_file: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Print an embedded backend's store as JSON: {workspace: {type: {key: value}}}.
    Dump {
        /// The embedded backend's state file.
        #[arg(long, value_name = "PATH")]
        state: PathBuf,
        /// Print only this workspace, as {type: {key: value}}.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Write a ready-to-build initialiser project in NAME/: its source, the WIT, build.sh
    /// and dev.yaml (which runs it on the embedded backend).
    New {
        /// The initialiser's language.
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// The project's name: its directory, crate or package, initialiser and workspace.
        name: String,
    },
}

/// Run the initialisers of an init file (the default command).
#[derive(Args)]
pub(crate) struct RunArgs {
    /// The init file (YAML or JSON), as upstream's `--initialisers-file`.
    #[arg(short = 'c', long = "initialisers-file", value_name = "FILE")]
    pub(crate) init_file: Option<PathBuf>,
    /// Run one wake and exit: 0 when every initialiser is at its flag, 1 otherwise. Waits for
    /// the lease first, like a long-running replica.
    #[arg(long)]
    pub(crate) once: bool,
    /// The lease's name on the broker, for several deployments sharing one (the embedded
    /// backend's lease is a lock beside its state file).
    #[arg(long, env = "BOOTSTRAP_WASM_LEASE", value_parser = lease::check_name, default_value = lease::DEFAULT_NAME)]
    pub(crate) lease_name: String,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    /// How many initialisers may run at once. Those whose grants may touch the same workspace
    /// (or both reach HTTP) still run in file order; 1 runs all of them in file order, as
    /// upstream does. (Upstream 2.11's --concurrency counts receiver workers, which a
    /// bootstrapper does not use: its command line's value is taken in this sense.)
    #[arg(long, env = "BOOTSTRAP_WASM_CONCURRENCY", default_value = "8")]
    pub(crate) concurrency: NonZeroUsize,
    /// Sleep after a wake whose gate was closed.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub(crate) gate_backoff: Duration,
    /// Sleep after a wake in which something ran or failed.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub(crate) init_retry: Duration,
    /// Sleep after a wake in which everything was at its flag.
    #[arg(long, value_parser = parse_duration, default_value = "300s")]
    pub(crate) steady_interval: Duration,
    /// Log filter (`info`, `debug`, `bootstrap_wasm=debug`, ...; upstream's `INFO`, `WARNING`,
    /// ... too); RUST_LOG wins if set.
    #[arg(short = 'l', long, default_value = "info")]
    pub(crate) log_level: String,
    #[command(flatten)]
    pub(crate) cache: CacheArgs,
    /// `text` for people, `json` (one object per line) for log collectors.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
    #[command(flatten)]
    pub(crate) metrics: MetricsArgs,
    #[command(flatten)]
    pub(crate) upstream: UpstreamOnlyArgs,
}

/// Upstream's processor flags that mean nothing here, accepted so that a TrustGraph 2.11
/// command line runs unchanged (docs/operations.md, "Upstream's flags").
#[derive(Args)]
pub(crate) struct UpstreamOnlyArgs {
    /// Upstream's processor identity; subscriptions here are named `bootstrap--...` as
    /// upstream's default names them.
    #[arg(long, value_name = "ID", hide = true)]
    pub(crate) id: Option<String>,
    /// Upstream's config-push queue: a bootstrapper reads config by request, not by push.
    #[arg(long, value_name = "QUEUE", hide = true)]
    pub(crate) config_push_queue: Option<String>,
    /// Upstream's Loki logging: logs go to stderr here (`--log-format json` for a collector).
    #[arg(long, hide = true, overrides_with = "no_loki_enabled")]
    pub(crate) loki_enabled: bool,
    #[arg(long, hide = true)]
    pub(crate) no_loki_enabled: bool,
    #[arg(long, env = "LOKI_URL", hide = true, hide_env_values = true)]
    pub(crate) loki_url: Option<String>,
    #[arg(long, env = "LOKI_USERNAME", hide = true, hide_env_values = true)]
    pub(crate) loki_username: Option<String>,
    #[arg(long, env = "LOKI_PASSWORD", hide = true, hide_env_values = true)]
    pub(crate) loki_password: Option<String>,
}

/// The Prometheus endpoint, spelled as TrustGraph's processors spell it (`--metrics`,
/// `-P/--metrics-port`, port 8000), but off unless asked for.
#[derive(Args)]
pub(crate) struct MetricsArgs {
    /// Serve Prometheus metrics on GET /metrics (also turned on by --metrics-port).
    #[arg(long)]
    pub(crate) metrics: bool,
    /// Serve no metrics, even with --metrics-port.
    #[arg(long)]
    pub(crate) no_metrics: bool,
    /// The metrics port [default: 8000]; 0 picks a free one (the log says which).
    #[arg(short = 'P', long, value_name = "PORT")]
    pub(crate) metrics_port: Option<u16>,
    /// The address the metrics endpoint listens on.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub(crate) metrics_address: IpAddr,
}

/// Where compiled components are kept between starts.
#[derive(Args)]
pub(crate) struct CacheArgs {
    /// The compile cache (default: $XDG_CACHE_HOME/bootstrap-wasm, else ~/.cache/bootstrap-wasm).
    /// It must be the operator's own: what it holds is loaded as native code.
    #[arg(long, env = "BOOTSTRAP_WASM_CACHE", value_name = "DIR")]
    pub(crate) compile_cache: Option<PathBuf>,
    /// Compile every component at every start.
    #[arg(long, conflicts_with = "compile_cache")]
    pub(crate) no_compile_cache: bool,
}

impl CacheArgs {
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        if self.no_compile_cache {
            return None;
        }
        self.compile_cache.clone().or_else(|| {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
            Some(base.join("bootstrap-wasm"))
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Where config-svc and flow-svc are: upstream's flags and environment variables.
#[derive(Args)]
pub(crate) struct BackendArgs {
    /// Which services to talk to.
    #[arg(long = "pubsub-backend", env = "PUBSUB_BACKEND", value_enum, default_value = "pulsar")]
    pub(crate) pubsub_backend: BackendKind,
    /// The embedded backend's state file (created if missing).
    #[arg(long, value_name = "PATH")]
    pub(crate) state: Option<PathBuf>,
    /// How soon the embedded backend's writes are on disk: they are synced in groups, and a
    /// machine crash loses at most this much (0: each write is synced before it returns).
    #[arg(long, value_parser = parse_duration, default_value = "200ms", value_name = "DURATION")]
    pub(crate) state_sync: Duration,
    /// Pulsar broker URL.
    #[arg(short = 'p', long, env = "PULSAR_HOST", default_value = "pulsar://pulsar:6650")]
    pub(crate) pulsar_host: String,
    /// Pulsar token (token authentication).
    #[arg(long, env = "PULSAR_API_KEY", hide_env_values = true)]
    pub(crate) pulsar_api_key: Option<String>,
    /// Pulsar listener name, for brokers with several advertised listeners.
    #[arg(long)]
    pub(crate) pulsar_listener: Option<String>,
    /// Certificates (PEM) to trust for `pulsar+ssl://`, besides the Mozilla roots and the
    /// machine's trust store.
    #[arg(long, env = "PULSAR_TLS_TRUST_CERTS", value_name = "FILE")]
    pub(crate) pulsar_tls_trust_certs: Option<PathBuf>,
    /// Accept a trusted broker certificate that does not name the host connected to (the
    /// chain is still verified). Only for certificates that name no reachable host: anyone
    /// holding a certificate from the same CA can then stand in for the broker.
    #[arg(long, env = "PULSAR_TLS_SKIP_HOSTNAME_CHECK")]
    pub(crate) pulsar_tls_skip_hostname_check: bool,
    /// The namespace (`tenant/namespace`) of the lease's topic, for clusters that forbid
    /// `public/default`; it must exist before the first replica starts.
    #[arg(long, env = "PULSAR_LEASE_NAMESPACE", default_value = PulsarOptions::DEFAULT_LEASE_NAMESPACE,
        value_parser = lease::pulsar::check_namespace, value_name = "TENANT/NAMESPACE")]
    pub(crate) pulsar_lease_namespace: String,
    #[arg(long, env = "RABBITMQ_HOST", default_value = "rabbitmq")]
    pub(crate) rabbitmq_host: String,
    #[arg(long, env = "RABBITMQ_PORT", default_value_t = 5672)]
    pub(crate) rabbitmq_port: u16,
    #[arg(long, env = "RABBITMQ_USERNAME", default_value = "guest")]
    pub(crate) rabbitmq_username: String,
    #[arg(long, env = "RABBITMQ_PASSWORD", default_value = "guest", hide_env_values = true)]
    pub(crate) rabbitmq_password: String,
    #[arg(long, env = "RABBITMQ_VHOST", default_value = "/")]
    pub(crate) rabbitmq_vhost: String,
    /// Kafka's bootstrap servers, `host:port[,host:port...]`.
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "kafka:9092")]
    pub(crate) kafka_bootstrap_servers: String,
    /// PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, env = "KAFKA_SECURITY_PROTOCOL", default_value = "PLAINTEXT", value_parser = parse_security_protocol)]
    pub(crate) kafka_security_protocol: SecurityProtocol,
    /// PLAIN (the default with SASL), SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    #[arg(long, env = "KAFKA_SASL_MECHANISM")]
    pub(crate) kafka_sasl_mechanism: Option<String>,
    #[arg(long, env = "KAFKA_SASL_USERNAME")]
    pub(crate) kafka_sasl_username: Option<String>,
    #[arg(long, env = "KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub(crate) kafka_sasl_password: Option<String>,
    /// A librdkafka setting of your own, KEY=VALUE (repeatable): a CA file
    /// (`ssl.ca.location=...`), OAUTHBEARER's endpoint, ... Applied after the flags above.
    #[arg(long = "kafka-config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) kafka_config: Vec<(String, String)>,
    /// How long to wait for each config-svc, flow-svc or IAM answer.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub(crate) request_timeout: Duration,
    /// Upstream's config-svc timeout, in whole seconds: when given, config-svc's answers are
    /// waited for this long instead of --request-timeout.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) config_timeout: Option<u64>,
    /// Pulsar's admin REST API, as upstream takes it. Nothing here uses it: the Pulsar client
    /// needs no admin API, and PulsarTopology takes its own `admin_url` param, as upstream's.
    #[arg(long, env = "PULSAR_ADMIN_URL", value_name = "URL")]
    pub(crate) pulsar_admin_url: Option<String>,
    /// The protocol of the deployment's TrustGraph: `legacy` for 2.4.4 to 2.4.10, `workspaces`
    /// for 2.4.13 and later (a flow-svc queue per workspace, IAM), `auto` to ask the services
    /// once config-svc answers (the embedded backend then speaks `workspaces`).
    #[arg(long, env = "BOOTSTRAP_WASM_PROTOCOL", value_enum, default_value = "auto")]
    pub(crate) protocol: ProtocolArg,
}

impl BackendArgs {
    /// config-svc's timeout: --config-timeout if given, else --request-timeout.
    pub(crate) fn config_timeout(&self) -> Duration {
        self.config_timeout.map_or(self.request_timeout, Duration::from_secs)
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ProtocolArg {
    /// Whichever the services answer in (docs/design.md, "Two protocols").
    Auto,
    /// TrustGraph 2.4.4 to 2.4.10.
    Legacy,
    /// TrustGraph 2.4.13 and later.
    Workspaces,
}

impl From<ProtocolArg> for ProtocolChoice {
    fn from(protocol: ProtocolArg) -> Self {
        match protocol {
            ProtocolArg::Auto => ProtocolChoice::Detect,
            ProtocolArg::Legacy => ProtocolChoice::Speak(Protocol::Legacy),
            ProtocolArg::Workspaces => ProtocolChoice::Speak(Protocol::Workspaces),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum BackendKind {
    /// TrustGraph's services over Pulsar (upstream's default).
    Pulsar,
    /// TrustGraph's services over RabbitMQ.
    Rabbitmq,
    /// TrustGraph's services over Kafka.
    Kafka,
    /// config-svc and flow-svc in-process, on a local store (`--state`).
    Embedded,
}

impl BackendArgs {
    pub(crate) fn backend(&self) -> Result<Backend, Failure> {
        Ok(match self.pubsub_backend {
            BackendKind::Embedded => Backend::Embedded {
                state: self
                    .state
                    .clone()
                    .ok_or_else(|| Failure::Config("--pubsub-backend embedded needs --state PATH".into()))?,
                sync_window: self.state_sync,
            },
            BackendKind::Pulsar => {
                // The broker may be down at start-up, but a URL that can never work is the
                // operator's to fix now.
                BrokerUrl::parse(&self.pulsar_host).map_err(|e| Failure::Config(format!("--pulsar-host: {e}")))?;
                if let Some(path) = &self.pulsar_tls_trust_certs {
                    tls::trusted_certs(path).map_err(|e| Failure::Config(format!("--pulsar-tls-trust-certs: {e}")))?;
                }
                Backend::Pulsar(PulsarOptions {
                    url: self.pulsar_host.clone(),
                    api_key: self.pulsar_api_key.clone(),
                    listener: self.pulsar_listener.clone(),
                    tls: TlsOptions {
                        trust_certs: self.pulsar_tls_trust_certs.clone(),
                        check_hostname: !self.pulsar_tls_skip_hostname_check,
                    },
                    lease_namespace: self.pulsar_lease_namespace.clone(),
                })
            }
            BackendKind::Kafka => {
                let options = KafkaOptions {
                    bootstrap_servers: self.kafka_bootstrap_servers.clone(),
                    security_protocol: self.kafka_security_protocol,
                    sasl_mechanism: self.kafka_sasl_mechanism.clone(),
                    sasl_username: self.kafka_sasl_username.clone(),
                    sasl_password: self.kafka_sasl_password.clone(),
                    extra: self.kafka_config.clone(),
                };
                options.check().map_err(Failure::Config)?;
                Backend::Kafka(options)
            }
            BackendKind::Rabbitmq => Backend::RabbitMq(RabbitOptions {
                host: self.rabbitmq_host.clone(),
                port: self.rabbitmq_port,
                username: self.rabbitmq_username.clone(),
                password: self.rabbitmq_password.clone(),
                vhost: self.rabbitmq_vhost.clone(),
            }),
        })
    }
}

fn parse_security_protocol(name: &str) -> Result<SecurityProtocol, String> {
    name.parse()
}

/// `KEY=VALUE`, split at the first `=`.
fn parse_key_value(setting: &str) -> Result<(String, String), String> {
    match setting.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_owned(), value.to_owned())),
        _ => Err(format!("{setting:?}: use KEY=VALUE")),
    }
}
