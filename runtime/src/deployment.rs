//! Choosing the services at start-up: in-process on a local store, or TrustGraph's own over
//! Pulsar or RabbitMQ, and the lease that makes one replica of a deployment the active one.
//! This is the only place that knows all three; everything above it sees `Arc<dyn Services>`
//! and a [`Lease`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::broker::BrokerServices;
use crate::broker::pulsar::{PulsarOptions, PulsarTransport};
use crate::broker::rabbitmq::{RabbitOptions, RabbitTransport};
use crate::embedded::{EmbeddedServices, StoreError};
use crate::lease::{self, Lease, LeaseError, Timing};
use crate::services::Services;

/// Where config-svc and flow-svc are.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In-process, on a redb file whose writes are durable within `sync_window`.
    Embedded { state: PathBuf, sync_window: Duration },
    /// TrustGraph's services over Pulsar.
    Pulsar(PulsarOptions),
    /// TrustGraph's services over RabbitMQ.
    RabbitMq(RabbitOptions),
}

impl Backend {
    /// The services. Broker backends connect lazily, so this succeeds while the broker is
    /// still down (the gate then stays closed until it is up); the embedded backend opens its
    /// store now. Each broker request times out after `request_timeout`.
    pub fn open(&self, request_timeout: Duration) -> Result<Arc<dyn Services>, StoreError> {
        Ok(match self {
            Self::Embedded { state, sync_window } => {
                Arc::new(EmbeddedServices::open_with_sync_window(state, *sync_window)?)
            }
            Self::Pulsar(options) => {
                Arc::new(BrokerServices::new(Arc::new(PulsarTransport::new(options.clone())), request_timeout))
            }
            Self::RabbitMq(options) => {
                Arc::new(BrokerServices::new(Arc::new(RabbitTransport::new(options.clone())), request_timeout))
            }
        })
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
        }
    }
}
