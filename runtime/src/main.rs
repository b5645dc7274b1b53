//! The `bootstrap-wasm` command line: parse arguments, set up logging, pick the backend, and
//! hand over to the library. Exit codes: 0 done (or converged, with `--once`), 1 not converged
//! or failed, 2 a configuration error (bad arguments, init file, component or params).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bootstrap_wasm::services::Services;
use bootstrap_wasm::services::embedded::EmbeddedServices;
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

#[derive(Subcommand)]
enum Command {
    /// Print an embedded backend's store as JSON: {workspace: {type: {key: value}}}.
    Dump {
        /// The embedded backend's state file.
        #[arg(long, value_name = "PATH")]
        state: PathBuf,
        /// Print only this workspace, as {type: {key: value}}.
        #[arg(long)]
        workspace: Option<String>,
    },
}

/// Run the initialisers of an init file (the default command).
#[derive(Args)]
struct RunArgs {
    /// The init file (YAML or JSON), as upstream's `--initialisers-file`.
    #[arg(short = 'c', long = "initialisers-file", value_name = "FILE")]
    init_file: Option<PathBuf>,
    /// Run one wake and exit: 0 when every initialiser is at its flag, 1 otherwise.
    #[arg(long)]
    once: bool,
    /// Which services to talk to.
    #[arg(long = "pubsub-backend", env = "PUBSUB_BACKEND", value_enum, value_name = "BACKEND")]
    backend: Option<Backend>,
    /// The embedded backend's state file (created if missing).
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// config-svc and flow-svc in-process, on a local store (`--state`).
    Embedded,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => humantime::parse_duration(text).map_err(|e| format!("{e} (try 5s, 500ms or a number of seconds)")),
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
    init_logging(&cli.run.log_level);
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the async runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Dump { state, workspace }) => dump(&state, workspace.as_deref()),
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

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

async fn run(args: RunArgs) -> Result<ExitCode, Failure> {
    let Some(init_path) = args.init_file else {
        return Err(Failure::Config("no init file: give one with -c FILE".into()));
    };
    let init_file = InitFile::load(&init_path)?;
    let sandbox = Sandbox::new().context("starting the sandbox")?;
    let initialisers = Initialiser::prepare_all(&init_file, &sandbox).await?;
    tracing::info!(file = %init_path.display(), "loaded {} initialisers", initialisers.len());

    let services = open_backend(args.backend, args.state.as_deref())?;
    let cadence = Cadence {
        gate_backoff: args.gate_backoff,
        init_retry: args.init_retry,
        steady_interval: args.steady_interval,
    };
    let mut reconciler = Reconciler::new(initialisers, services, cadence);
    if args.once {
        let report = reconciler.wake().await;
        return Ok(if report.converged() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    reconciler.run_until(shutdown_signal()).await;
    tracing::info!("shutting down");
    Ok(ExitCode::SUCCESS)
}

fn open_backend(backend: Option<Backend>, state: Option<&Path>) -> Result<Arc<dyn Services>, Failure> {
    match backend {
        None => Err(Failure::Config("no backend: give --pubsub-backend embedded --state PATH".into())),
        Some(Backend::Embedded) => {
            let state = state.ok_or_else(|| Failure::Config("--pubsub-backend embedded needs --state PATH".into()))?;
            let services = EmbeddedServices::open(state)
                .map_err(|e| Failure::Config(format!("--state {}: {e}", state.display())))?;
            tracing::info!(state = %state.display(), "backend: embedded");
            Ok(Arc::new(services))
        }
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
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("cannot listen for SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
