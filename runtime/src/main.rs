//! The `bootstrap-wasm` command line: parse arguments, set up logging, pick the backend, and
//! hand over to the library. Exit codes: 0 done (or converged, with `--once`; valid, with
//! `check`), 1 not converged or failed, 2 a configuration error (bad arguments, init file,
//! pin, component or params).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bootstrap_wasm::broker::pulsar::PulsarOptions;
use bootstrap_wasm::broker::pulsar::client::{BrokerUrl, tls};
use bootstrap_wasm::broker::rabbitmq::RabbitOptions;
use bootstrap_wasm::check::Report;
use bootstrap_wasm::deployment::Backend;
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::init_file::parse_duration;
use bootstrap_wasm::lease;
use bootstrap_wasm::metrics::Metrics;
use bootstrap_wasm::sandbox::{Allocation, SandboxOptions};
use bootstrap_wasm::scaffold;
use bootstrap_wasm::services::Services;
use bootstrap_wasm::{Cadence, ConfigError, InitFile, Initialiser, Reconciler, Sandbox};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "bootstrap-wasm", version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

// Parsed once at start-up; boxing the backend's options would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Check an init file as start-up does, touching no service, and print what each
    /// initialiser is and may do: code, sha256, summary, limits and grants.
    Check {
        /// The init file (YAML or JSON).
        #[arg(short = 'c', long = "initialisers-file", value_name = "FILE")]
        init_file: PathBuf,
        /// `text` for people, `json` for tools.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
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
struct RunArgs {
    /// The init file (YAML or JSON), as upstream's `--initialisers-file`.
    #[arg(short = 'c', long = "initialisers-file", value_name = "FILE")]
    init_file: Option<PathBuf>,
    /// Run one wake and exit: 0 when every initialiser is at its flag, 1 otherwise. Waits for
    /// the lease first, like a long-running replica.
    #[arg(long)]
    once: bool,
    /// The lease's name on the broker, for several deployments sharing one (the embedded
    /// backend's lease is a lock beside its state file).
    #[arg(long, env = "BOOTSTRAP_WASM_LEASE", value_parser = lease::check_name, default_value = lease::DEFAULT_NAME)]
    lease_name: String,
    #[command(flatten)]
    backend: BackendArgs,
    /// How many initialisers may run at once. Those whose grants may touch the same workspace
    /// (or both reach HTTP) still run in file order; 1 runs all of them in file order, as
    /// upstream does.
    #[arg(long, env = "BOOTSTRAP_WASM_CONCURRENCY", default_value = "8")]
    concurrency: NonZeroUsize,
    /// Sleep after a wake whose gate was closed.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    gate_backoff: Duration,
    /// Sleep after a wake in which something ran or failed.
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    init_retry: Duration,
    /// Sleep after a wake in which everything was at its flag.
    #[arg(long, value_parser = parse_duration, default_value = "300s")]
    steady_interval: Duration,
    /// Log filter (`info`, `debug`, `bootstrap_wasm=debug`, ...); RUST_LOG wins if set.
    #[arg(long, default_value = "info")]
    log_level: String,
    #[command(flatten)]
    cache: CacheArgs,
    /// `text` for people, `json` (one object per line) for log collectors.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// The Prometheus endpoint, spelled as TrustGraph's processors spell it (`--metrics`,
/// `-P/--metrics-port`, port 8000), but off unless asked for.
#[derive(Args)]
struct MetricsArgs {
    /// Serve Prometheus metrics on GET /metrics (also turned on by --metrics-port).
    #[arg(long)]
    metrics: bool,
    /// Serve no metrics, even with --metrics-port.
    #[arg(long)]
    no_metrics: bool,
    /// The metrics port [default: 8000]; 0 picks a free one (the log says which).
    #[arg(short = 'P', long, value_name = "PORT")]
    metrics_port: Option<u16>,
    /// The address the metrics endpoint listens on.
    #[arg(long, value_name = "IP", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    metrics_address: IpAddr,
}

impl MetricsArgs {
    /// Bind the endpoint if metrics are on, and serve them from a task of their own.
    async fn start(&self) -> Result<Option<Arc<Metrics>>, Failure> {
        if self.no_metrics || !(self.metrics || self.metrics_port.is_some()) {
            return Ok(None);
        }
        let address = SocketAddr::new(self.metrics_address, self.metrics_port.unwrap_or(8000));
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| Failure::Config(format!("--metrics-port: cannot listen on {address}: {e}")))?;
        tracing::info!("metrics on http://{}/metrics", listener.local_addr().context("reading the metrics address")?);
        let metrics = Arc::new(Metrics::new());
        tokio::spawn(bootstrap_wasm::metrics::serve(listener, metrics.clone()));
        Ok(Some(metrics))
    }
}

/// Where compiled components are kept between starts.
#[derive(Args)]
struct CacheArgs {
    /// The compile cache (default: $XDG_CACHE_HOME/bootstrap-wasm, else ~/.cache/bootstrap-wasm).
    /// It must be the operator's own: what it holds is loaded as native code.
    #[arg(long, env = "BOOTSTRAP_WASM_CACHE", value_name = "DIR")]
    compile_cache: Option<PathBuf>,
    /// Compile every component at every start.
    #[arg(long, conflicts_with = "compile_cache")]
    no_compile_cache: bool,
}

impl CacheArgs {
    fn dir(&self) -> Option<PathBuf> {
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
enum LogFormat {
    Text,
    Json,
}

/// Where config-svc and flow-svc are: upstream's flags and environment variables.
#[derive(Args)]
struct BackendArgs {
    /// Which services to talk to.
    #[arg(long = "pubsub-backend", env = "PUBSUB_BACKEND", value_enum, default_value = "pulsar")]
    pubsub_backend: BackendKind,
    /// The embedded backend's state file (created if missing).
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// How soon the embedded backend's writes are on disk: they are synced in groups, and a
    /// machine crash loses at most this much (0: each write is synced before it returns).
    #[arg(long, value_parser = parse_duration, default_value = "200ms", value_name = "DURATION")]
    state_sync: Duration,
    /// Pulsar broker URL.
    #[arg(short = 'p', long, env = "PULSAR_HOST", default_value = "pulsar://pulsar:6650")]
    pulsar_host: String,
    /// Pulsar token (token authentication).
    #[arg(long, env = "PULSAR_API_KEY", hide_env_values = true)]
    pulsar_api_key: Option<String>,
    /// Pulsar listener name, for brokers with several advertised listeners.
    #[arg(long)]
    pulsar_listener: Option<String>,
    /// Certificates (PEM) to trust for `pulsar+ssl://`, besides the Mozilla roots.
    #[arg(long, env = "PULSAR_TLS_TRUST_CERTS", value_name = "FILE")]
    pulsar_tls_trust_certs: Option<PathBuf>,
    #[arg(long, env = "RABBITMQ_HOST", default_value = "rabbitmq")]
    rabbitmq_host: String,
    #[arg(long, env = "RABBITMQ_PORT", default_value_t = 5672)]
    rabbitmq_port: u16,
    #[arg(long, env = "RABBITMQ_USERNAME", default_value = "guest")]
    rabbitmq_username: String,
    #[arg(long, env = "RABBITMQ_PASSWORD", default_value = "guest", hide_env_values = true)]
    rabbitmq_password: String,
    #[arg(long, env = "RABBITMQ_VHOST", default_value = "/")]
    rabbitmq_vhost: String,
    /// How long to wait for each config-svc or flow-svc answer.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    request_timeout: Duration,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendKind {
    /// TrustGraph's services over Pulsar (upstream's default).
    Pulsar,
    /// TrustGraph's services over RabbitMQ.
    Rabbitmq,
    /// config-svc and flow-svc in-process, on a local store (`--state`).
    Embedded,
}

impl BackendArgs {
    fn backend(&self) -> Result<Backend, Failure> {
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
                    tls_trust_certs: self.pulsar_tls_trust_certs.clone(),
                })
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

    /// The services, with the start-up log line that says which and where.
    fn open(&self) -> Result<Arc<dyn Services>, Failure> {
        self.open_backend(&self.backend()?)
    }

    fn open_backend(&self, backend: &Backend) -> Result<Arc<dyn Services>, Failure> {
        let services = backend.open(self.request_timeout).map_err(|e| Failure::Config(format!("{backend}: {e}")))?;
        tracing::info!("backend: {backend}");
        Ok(services)
    }
}

/// A failure with the exit code it deserves.
enum Failure {
    Config(String),
    Runtime(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::Config(error.to_string())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Runtime(error)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `check` prints its report on stdout; its log (on stderr) carries only what needs a look.
    let log_level = if matches!(cli.command, Some(Command::Check { .. })) { "warn" } else { &cli.run.log_level };
    init_logging(log_level, cli.run.log_format);
    // One thread: the loop's runs take turns on it while they wait for the services, and the
    // broker clients, the lease's heartbeats and the metrics server only wait. Measured on 1,000 tenants over
    // Pulsar, this costs a quarter less CPU than tokio's thread pool (docs/performance.md).
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("cannot start the async runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Check { init_file, format, cache }) => check(&init_file, format, &cache).await,
            Some(Command::Dump { state, workspace }) => dump(&state, workspace.as_deref()),
            Some(Command::Status { init_file, backend }) => status(&init_file, &backend).await,
            Some(Command::New { lang, name }) => new(lang, &name),
            None => run(cli.run).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(Failure::Config(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logger = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logger.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        // The current span (a run: initialiser, run_id) under `span`, beside the event's fields.
        LogFormat::Json => logger.json().with_current_span(true).with_span_list(false).init(),
    }
}

async fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let Some(init_path) = args.init_file else {
        return Err(Failure::Config("no init file: give one with -c FILE".into()));
    };
    let metrics = args.metrics.start().await?;
    let record = |report: &bootstrap_wasm::WakeReport| metrics.iter().for_each(|metrics| metrics.record(report));

    // One active replica: wait for the lease before opening the services (the embedded store
    // admits one process), and go back to waiting whenever it is lost. The first wait runs
    // while start-up loads the initialisers: taking a broker lease costs a connection and a
    // heartbeat's round trip, and a first start spends longer compiling.
    let backend = args.backend.backend()?;
    let timing = lease::Timing::for_gate_backoff(args.gate_backoff);
    let mut lease = backend.lease(&args.lease_name, timing).map_err(|e| Failure::Config(format!("lease: {e}")))?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let loaded = async {
        let (_, initialisers) = prepare(&init_path, &args.cache, args.concurrency).await?;
        tracing::info!(file = %init_path.display(), "loaded {} initialisers", initialisers.len());
        Ok::<_, Failure>(initialisers)
    };
    let leased = async {
        lease.acquired().await;
        Ok(())
    };
    let initialisers = tokio::select! {
        both = async { tokio::try_join!(loaded, leased) } => both?.0,
        () = &mut shutdown => return Ok(stopped()),
    };
    let services = args.backend.open_backend(&backend)?;
    let cadence =
        Cadence { gate_backoff: args.gate_backoff, init_retry: args.init_retry, steady_interval: args.steady_interval };
    let mut reconciler = Reconciler::new(initialisers, services.clone(), cadence).with_concurrency(args.concurrency);
    let code = if args.once {
        let report = tokio::select! {
            report = reconciler.wake() => Some(report),
            () = lease.lost() => None,
        };
        if let Some(report) = &report {
            record(report);
        }
        if report.is_some_and(|report| report.converged()) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    } else {
        loop {
            let mut shut_down = false;
            let interrupted = async {
                tokio::select! {
                    () = &mut shutdown => shut_down = true,
                    () = lease.lost() => {}
                }
            };
            // Dropping the wake stops its guest at the next epoch check and stores nothing for it.
            reconciler.run_until(interrupted, record).await;
            if shut_down {
                break stopped();
            }
            tokio::select! {
                () = lease.acquired() => {}
                () = &mut shutdown => break stopped(),
            }
        }
    };
    // The wake (and any guest in it) is gone by now; close the broker clients, bounded so that
    // a broker that does not answer cannot hold the exit past the 2 s an orchestrator expects.
    drop(reconciler);
    if tokio::time::timeout(Duration::from_millis(1500), services.close()).await.is_err() {
        tracing::warn!("closing the broker clients took over 1.5 s; exiting without waiting");
    }
    Ok(code)
}

fn stopped() -> ExitCode {
    tracing::info!("shutting down");
    ExitCode::SUCCESS
}

/// Everything start-up checks before it touches a service: the init file, pins, components,
/// `describe` and `validate`. `run` and `check` share it, so `check` passes exactly when a
/// start-up would.
async fn prepare(
    init_path: &Path,
    cache: &CacheArgs,
    concurrency: NonZeroUsize,
) -> Result<(InitFile, Vec<Initialiser>), Failure> {
    let init_file = InitFile::load(init_path)?;
    let pooled = SandboxOptions { allocation: Allocation::pooled_for(concurrency), ..Default::default() };
    let mut sandbox = match Sandbox::with_options(pooled) {
        Ok(sandbox) => sandbox,
        // The instance pool reserves ~33 GiB of address space per call slot up front; under a limit on
        // address space (`ulimit -v`) instances are mapped for each call instead.
        Err(error) => {
            tracing::warn!("{error}; mapping instances per call instead of from a pool");
            let on_demand = SandboxOptions { allocation: Allocation::OnDemand, ..Default::default() };
            Sandbox::with_options(on_demand).context("starting the sandbox")?
        }
    };
    if let Some(dir) = cache.dir() {
        sandbox = sandbox.with_compile_cache(dir);
    }
    let initialisers = Initialiser::prepare_all(&init_file, &sandbox).await?;
    Ok((init_file, initialisers))
}

/// `check`: the start-up checks, then the review of every initialiser. Exit 0 when valid.
async fn check(init_path: &Path, format: Format, cache: &CacheArgs) -> Result<ExitCode, Failure> {
    let (init_file, initialisers) = prepare(init_path, cache, NonZeroUsize::MIN).await?;
    let report = Report::new(&init_file, &initialisers);
    match format {
        Format::Text => print!("{report}"),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report.to_json()).context("printing the report")?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `status`: one row per initialiser, like `flyway info`. Exit 0 when none is pending.
async fn status(init_path: &Path, backend: &BackendArgs) -> Result<ExitCode, Failure> {
    let init_file = InitFile::load(init_path)?;
    let services = backend.open()?;
    let rows = bootstrap_wasm::reconcile::status(&init_file, services.as_ref())
        .await
        .context("reading the stored flags from config-svc")?;
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0).max(4);
    println!("{:width$}  {:12}  {:12}  STATE", "NAME", "CONFIGURED", "STORED");
    for row in &rows {
        let stored = row.stored.as_ref().map_or("-".to_owned(), |f| f.to_stored());
        let state = if row.pending() { "pending" } else { "done" };
        println!("{:width$}  {:12}  {:12}  {state}", row.name, row.configured.to_stored(), stored);
    }
    Ok(if rows.iter().any(|row| row.pending()) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn new(lang: scaffold::Lang, name: &str) -> Result<ExitCode, Failure> {
    match scaffold::create(lang, name, Path::new("")) {
        Ok(dir) => {
            print!("{}", scaffold::next_steps(lang, name, &dir));
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ (scaffold::ScaffoldError::BadName(_) | scaffold::ScaffoldError::Exists(_))) => {
            Err(Failure::Config(error.to_string()))
        }
        Err(error) => Err(Failure::Runtime(error.into())),
    }
}

fn dump(state: &Path, workspace: Option<&str>) -> Result<ExitCode, Failure> {
    if !state.exists() {
        return Err(Failure::Config(format!("--state {}: no such file", state.display())));
    }
    let services =
        EmbeddedServices::open(state).map_err(|e| Failure::Config(format!("--state {}: {e}", state.display())))?;
    let tree = services.dump(workspace).map_err(|e| Failure::Config(format!("--state {}: {e}", state.display())))?;
    let json = serde_json::to_string_pretty(&tree).context("printing the store")?;
    // A reader that stops early (`dump | head`) is not an error.
    match writeln!(std::io::stdout().lock(), "{json}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Runtime(e.into())),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
