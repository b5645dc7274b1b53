//! The `bootstrap-wasm` command line: parse arguments ([`args`]), set up logging, and hand
//! over to the library. Exit codes: 0 done (or converged, with `--once`; valid, with `check`),
//! 1 not converged or failed (or, with `check` and `status`, a tenant's entry refused), 2 a
//! configuration error (bad arguments, init file, pin, component or params). A tenant's file
//! is never a configuration error of the process: its problems are reported and isolated.

mod args;

use std::io::Write as _;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use bootstrap_wasm::check::{Report, TenantReview};
use bootstrap_wasm::deployment::{self, Ended, ReplicaError, ReplicaOptions};
use bootstrap_wasm::embedded::EmbeddedServices;
use bootstrap_wasm::flag::FlagStore;
use bootstrap_wasm::initialiser::PrepareError;
use bootstrap_wasm::metrics::Metrics;
use bootstrap_wasm::scaffold;
use bootstrap_wasm::services::{ConfigClient, ProtocolChoice};
use bootstrap_wasm::tenants::{ReloadHandle, Tenants};
use bootstrap_wasm::{Cadence, ConfigError, InitFile, Initialiser, WakeReport};
use clap::Parser;

use args::{BackendArgs, CacheArgs, Cli, Command, Format, LogFormat, MetricsArgs, RunArgs};

/// A failure with the exit code it deserves.
pub(crate) enum Failure {
    Config(String),
    Runtime(anyhow::Error),
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::Config(error.to_string())
    }
}

impl From<PrepareError> for Failure {
    fn from(error: PrepareError) -> Self {
        match error {
            PrepareError::Config(error) => error.into(),
            PrepareError::Sandbox(error) => Failure::Runtime(error.into()),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Runtime(error)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `check` and `status` print their reports on stdout; their log (on stderr) carries only
    // what needs a look.
    let reporting = matches!(cli.command, Some(Command::Check { .. } | Command::Status { .. }));
    let log_level = if reporting { "warn" } else { &cli.run.log_level };
    init_logging(log_level, cli.run.log_format);
    if cli.run.upstream.loki_enabled {
        tracing::warn!("--loki-enabled: logs go to stderr here, not to Loki (--log-format json suits a collector)");
    }
    // One thread: the loop's runs take turns on it while they wait for the services, and the
    // broker clients, the lease's heartbeats and the metrics server only wait. Measured on 1,000 tenants over
    // Pulsar, this costs a quarter less CPU than tokio's thread pool (docs/performance.md).
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("cannot start the async runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Check { init_file, format, protocol, cache }) => {
                check(&init_file, format, protocol.into(), &cache).await
            }
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
    // Upstream's level names, as a TrustGraph command line spells them.
    let level = match level.to_ascii_uppercase().as_str() {
        "WARNING" => "warn".to_owned(),
        "CRITICAL" => "error".to_owned(),
        "DEBUG" | "INFO" | "ERROR" => level.to_ascii_lowercase(),
        _ => level.to_owned(),
    };
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
    let metrics = start_metrics(&args.metrics).await?;
    let backend = args.backend.backend()?;
    let options = ReplicaOptions {
        lease_name: args.lease_name,
        request_timeout: args.backend.request_timeout,
        config_timeout: args.backend.config_timeout(),
        protocol: args.backend.protocol.into(),
        cadence: Cadence {
            gate_backoff: args.gate_backoff,
            init_retry: args.init_retry,
            steady_interval: args.steady_interval,
        },
        concurrency: args.concurrency,
        once: args.once,
    };
    let reload = ReloadHandle::default();
    tokio::spawn(reload_on_sighup(reload.clone()));
    let loading = async {
        let (file, initialisers, sandbox) =
            Initialiser::load_file(&init_path, args.cache.dir(), args.concurrency).await?;
        tracing::info!(file = %init_path.display(), "loaded {} initialisers", initialisers.len());
        let tenants = Tenants::new(file.tenants, sandbox).reloaded_by(reload);
        Ok::<_, Failure>((initialisers, tenants))
    };
    let record = |report: &WakeReport| metrics.iter().for_each(|metrics| metrics.record(report));
    match deployment::run_replica(&backend, &options, loading, shutdown_signal(), record).await {
        Ok(Ended::Converged | Ended::ShutDown) => Ok(ExitCode::SUCCESS),
        Ok(Ended::NotConverged) => Ok(ExitCode::FAILURE),
        Err(ReplicaError::Load(failure)) => Err(failure),
        Err(ReplicaError::Lease(error)) => Err(Failure::Config(format!("lease: {error}"))),
        Err(ReplicaError::Open { backend, source }) => Err(Failure::Config(format!("{backend}: {source}"))),
    }
}

/// Bind the endpoint if metrics are on, and serve them from a task of their own.
async fn start_metrics(args: &MetricsArgs) -> Result<Option<Arc<Metrics>>, Failure> {
    if args.no_metrics || !(args.metrics || args.metrics_port.is_some()) {
        return Ok(None);
    }
    let address = SocketAddr::new(args.metrics_address, args.metrics_port.unwrap_or(8000));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Failure::Config(format!("--metrics-port: cannot listen on {address}: {e}")))?;
    tracing::info!("metrics on http://{}/metrics", listener.local_addr().context("reading the metrics address")?);
    let metrics = Arc::new(Metrics::new());
    tokio::spawn(bootstrap_wasm::metrics::serve(listener, metrics.clone()));
    Ok(Some(metrics))
}

/// `check`: the start-up checks, then the review of every initialiser. Exit 0 when valid.
async fn check(
    init_path: &Path,
    format: Format,
    protocol: ProtocolChoice,
    cache: &CacheArgs,
) -> Result<ExitCode, Failure> {
    let (init_file, initialisers, sandbox) = Initialiser::load_file(init_path, cache.dir(), NonZeroUsize::MIN).await?;
    let mut tenants = Tenants::new(init_file.tenants.clone(), sandbox);
    tenants.refresh().await;
    let report = Report::new(&init_file, &initialisers, protocol).with_tenants(&tenants);
    match format {
        Format::Text => print!("{report}"),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report.to_json()).context("printing the report")?),
    }
    Ok(if report.refusals() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `status`: one row per initialiser, like `flyway info`. Exit 0 when none is pending.
async fn status(init_path: &Path, backend: &BackendArgs) -> Result<ExitCode, Failure> {
    let (timeout, config_timeout, protocol) = (backend.request_timeout, backend.config_timeout(), backend.protocol);
    let init_file = InitFile::load(init_path)?;
    // The tenants' entries as a run would load them: within their ceilings, pinned, signed
    // and validated, in a sandbox of their own (compiling each distinct component once).
    let mut tenants =
        Tenants::new(init_file.tenants.clone(), bootstrap_wasm::Sandbox::new().context("starting the sandbox")?);
    tenants.refresh().await;
    let backend = backend.backend()?;
    let services = backend
        .open(timeout, config_timeout, protocol.into())
        .map_err(|e| Failure::Config(format!("{backend}: {e}")))?;
    let operator = init_file.initialisers.iter().map(|spec| (spec.name.clone(), &spec.flag));
    let of_tenants = tenants.running().map(|init| (init.name.to_string(), &init.flag));
    let configured: Vec<(String, &bootstrap_wasm::flag::Flag)> = operator.chain(of_tenants).collect();
    let rows = FlagStore(ConfigClient(services.as_ref()))
        .status(configured.iter().map(|(name, flag)| (name.as_str(), *flag)))
        .await
        .context("reading the stored flags from config-svc")?;
    let reviews: Vec<TenantReview> = tenants.tenants().iter().map(TenantReview::new).collect();
    let refused = reviews.iter().any(|review| review.refusals() > 0);
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0).max(4);
    println!("{:width$}  {:12}  {:12}  STATE", "NAME", "CONFIGURED", "STORED");
    for row in &rows {
        let stored = row.stored.as_ref().map_or("-".to_owned(), |f| f.to_stored());
        let state = if row.pending() { "pending" } else { "done" };
        println!("{:width$}  {:12}  {:12}  {state}", row.name, row.configured.to_stored(), stored);
    }
    for review in &reviews {
        print!("\n{}", review.compact());
    }
    // config-svc answered, so the protocol can be detected now if it is not known.
    let detecting = services.protocol().is_none();
    match services.settle_protocol().await {
        Ok(speaking) if detecting => println!("\nprotocol: {} (detected)", speaking.name()),
        Ok(speaking) => println!("\nprotocol: {}", speaking.name()),
        Err(e) => println!("\nprotocol: unknown ({e})"),
    }
    let all_done = !refused && !rows.iter().any(|row| row.pending());
    Ok(if all_done { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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

/// Ask for the tenants' files to be read again on every SIGHUP (the operator's own file is
/// read once: changing it takes a restart).
async fn reload_on_sighup(reload: ReloadHandle) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: tenants' files are still read again when they change");
        return;
    };
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reading every tenant's files again");
        reload.request();
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
