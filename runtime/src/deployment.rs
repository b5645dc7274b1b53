//! The composition root: one replica of a deployment, wired from its parts.
//!
//! [`Backend`] chooses the services (in-process on a local store, or TrustGraph's own over
//! Pulsar, RabbitMQ or Kafka) and the lease that makes one replica of a deployment the active one;
//! [`run_replica`] is that replica's life: wait for the lease while the initialisers load,
//! reconcile while it is held, stand by when it is lost, and close the services on the way
//! out. This is the only module that knows the brokers, the embedded store, the lease and the
//! loop together; each of them knows only the port ([`crate::services`]) or its own broker's
//! client. The binary parses a command line into these and calls them.

use std::future::Future;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::BrokerServices;
use crate::broker::kafka::{KafkaOptions, KafkaTransport};
use crate::broker::pulsar::{PulsarOptions, PulsarTransport};
use crate::broker::rabbitmq::{RabbitOptions, RabbitTransport};
use crate::embedded::{EmbeddedServices, StoreError};
use crate::initialiser::Initialiser;
use crate::lease::{self, Lease, LeaseError, Timing};
use crate::reconcile::{Cadence, Reconciler, WakeReport};
use crate::services::{Protocol, ProtocolChoice, Services};
use crate::tenants::Tenants;

/// Where config-svc and flow-svc are.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In-process, on a redb file whose writes are durable within `sync_window`.
    Embedded { state: PathBuf, sync_window: Duration },
    /// TrustGraph's services over Pulsar.
    Pulsar(PulsarOptions),
    /// TrustGraph's services over RabbitMQ.
    RabbitMq(RabbitOptions),
    /// TrustGraph's services over Kafka.
    Kafka(KafkaOptions),
}

impl Backend {
    /// The services, speaking the protocol `choice` names (the embedded ones, asked to detect,
    /// speak current TrustGraph's: so the no-broker quick start teaches what production
    /// does), with the start-up log line that says which and where. Broker backends connect
    /// lazily, so this succeeds while the broker is still down (the gate then stays closed
    /// until it is up, and detects the protocol then); the embedded backend opens its store
    /// now. Each broker request times out after `request_timeout`, config-svc's after
    /// `config_timeout`.
    pub fn open(
        &self,
        request_timeout: Duration,
        config_timeout: Duration,
        choice: ProtocolChoice,
    ) -> Result<Arc<dyn Services>, StoreError> {
        let services: Arc<dyn Services> = match self {
            Self::Embedded { state, sync_window } => {
                let protocol = match choice {
                    ProtocolChoice::Detect => Protocol::Workspaces,
                    ProtocolChoice::Speak(protocol) => protocol,
                };
                Arc::new(EmbeddedServices::open_with_sync_window(state, *sync_window)?.speaking(protocol))
            }
            Self::Pulsar(options) => Arc::new(
                BrokerServices::speaking(choice, Arc::new(PulsarTransport::new(options.clone())), request_timeout)
                    .with_config_timeout(config_timeout),
            ),
            Self::RabbitMq(options) => Arc::new(
                BrokerServices::speaking(choice, Arc::new(RabbitTransport::new(options.clone())), request_timeout)
                    .with_config_timeout(config_timeout),
            ),
            // A publish may take as long as an answer may.
            Self::Kafka(options) => Arc::new(
                BrokerServices::speaking(
                    choice,
                    Arc::new(KafkaTransport::new(options.clone(), request_timeout.max(config_timeout))),
                    request_timeout,
                )
                .with_config_timeout(config_timeout),
            ),
        };
        let protocol = services.protocol().map_or("detected once config-svc answers", Protocol::name);
        tracing::info!(protocol, "backend: {self}");
        Ok(services)
    }
}

impl Backend {
    /// Start taking this deployment's lease (see [`crate::lease`]): a lock on the embedded
    /// store's `<state>.lock`, or the lease `name` on the broker, its heartbeats paced by
    /// `timing`. Take it before [`Self::open`]: the embedded store admits one process.
    pub fn lease(&self, name: &str, timing: Timing) -> Result<Lease, LeaseError> {
        match self {
            Self::Embedded { state, .. } => lease::file::lease(state),
            Self::Pulsar(options) => Ok(lease::pulsar::lease(options, name, timing)),
            Self::RabbitMq(options) => lease::rabbitmq::lease(options, name, timing),
            Self::Kafka(options) => lease::kafka::lease(options, name, timing),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded { state, .. } => write!(f, "embedded, state {}", state.display()),
            Self::Pulsar(options) => write!(f, "pulsar at {}", options.url),
            Self::RabbitMq(options) => {
                write!(f, "rabbitmq at amqp://{}@{}:{}/{}", options.username, options.host, options.port, options.vhost)
            }
            Self::Kafka(options) => write!(f, "kafka at {}", options.describe()),
        }
    }
}

/// How one replica runs: its lease, its pace, and whether it stops after one wake.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The lease's name on the broker (the embedded backend's lease is a lock file).
    pub lease_name: String,
    /// How long to wait for each flow-svc or IAM answer.
    pub request_timeout: Duration,
    /// How long to wait for each config-svc answer.
    pub config_timeout: Duration,
    /// What the services speak (a broker's, or the embedded backend's own), or whether to
    /// detect it.
    pub protocol: ProtocolChoice,
    pub cadence: Cadence,
    /// How many initialisers may run at once.
    pub concurrency: NonZeroUsize,
    /// One wake, then stop (`--once`).
    pub once: bool,
}

/// How a replica's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `once`: the wake left every initialiser at its flag.
    Converged,
    /// `once`: something is not at its flag, or the lease was lost during the wake.
    NotConverged,
    /// Shut down (by the signal the caller gave), at any point of the run.
    ShutDown,
}

/// Why a replica could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError<E> {
    #[error("lease: {0}")]
    Lease(#[from] LeaseError),
    #[error("{backend}: {source}")]
    Open { backend: String, source: StoreError },
    /// Loading the initialisers failed: the loader's own error.
    #[error(transparent)]
    Load(E),
}

/// Run one replica of the deployment on `backend`: wait for the lease while `loading` loads
/// the operator's initialisers (and declares the tenants, whose own load is the first wake's),
/// then open the services (the embedded store admits one process, so not
/// before) and reconcile until `shutdown` resolves, handing each wake's report to `on_wake`.
/// Whenever the lease is lost the wake in progress is dropped (its guest stopped at the next
/// epoch check, nothing stored for it) and the replica waits for the lease again.
pub async fn run_replica<E>(
    backend: &Backend,
    options: &ReplicaOptions,
    loading: impl Future<Output = Result<(Vec<Initialiser>, Tenants), E>>,
    shutdown: impl Future<Output = ()>,
    mut on_wake: impl FnMut(&WakeReport),
) -> Result<Ended, ReplicaError<E>> {
    let timing = Timing::for_gate_backoff(options.cadence.gate_backoff);
    let mut lease = backend.lease(&options.lease_name, timing)?;
    tokio::pin!(shutdown);
    // Taking a broker lease costs a connection and a heartbeat's round trip, and a first
    // start spends longer compiling: do both at once.
    let leased = async {
        lease.acquired().await;
        Ok(())
    };
    let (initialisers, tenants) = tokio::select! {
        both = async { tokio::try_join!(loading, leased) } => both.map_err(ReplicaError::Load)?.0,
        () = &mut shutdown => return Ok(shutting_down()),
    };
    let services = backend
        .open(options.request_timeout, options.config_timeout, options.protocol)
        .map_err(|source| ReplicaError::Open { backend: backend.to_string(), source })?;
    let mut reconciler = Reconciler::new(initialisers, services.clone(), options.cadence)
        .with_concurrency(options.concurrency)
        .with_tenants(tenants);
    let ended = if options.once {
        let report = tokio::select! {
            report = reconciler.wake() => Some(report),
            () = lease.lost() => None,
        };
        report.iter().for_each(&mut on_wake);
        if report.is_some_and(|report| report.converged()) { Ended::Converged } else { Ended::NotConverged }
    } else {
        loop {
            let mut shut_down = false;
            let interrupted = async {
                tokio::select! {
                    () = &mut shutdown => shut_down = true,
                    () = lease.lost() => {}
                }
            };
            reconciler.run_until(interrupted, &mut on_wake).await;
            if shut_down {
                break shutting_down();
            }
            tokio::select! {
                () = lease.acquired() => {}
                () = &mut shutdown => break shutting_down(),
            }
        }
    };
    // The wake (and any guest in it) is gone by now; close the broker clients, bounded so that
    // a broker that does not answer cannot hold the exit past the 2 s an orchestrator expects.
    drop(reconciler);
    let exit_by = tokio::time::Instant::now() + EXIT_BUDGET;
    if tokio::time::timeout(CLOSE_TIMEOUT, services.close()).await.is_err() {
        tracing::warn!("closing the broker clients took over 1.5 s; exiting without waiting");
    }
    // After the services: nothing runs under the lease once it is let go. It gets what is left
    // of the budget, at least RELEASE_TIMEOUT.
    let left = exit_by.saturating_duration_since(tokio::time::Instant::now()).max(RELEASE_TIMEOUT);
    lease.release(left).await;
    Ok(ended)
}

fn shutting_down() -> Ended {
    tracing::info!("shutting down");
    Ended::ShutDown
}

/// How long closing the services may hold a replica's exit.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(1500);

/// How long closing the services and then saying that the lease is free may take in all:
/// within the 2 s an orchestrator gives.
const EXIT_BUDGET: Duration = Duration::from_millis(1900);

/// The least time saying that the lease is free is given, however long the close took.
const RELEASE_TIMEOUT: Duration = Duration::from_millis(400);
