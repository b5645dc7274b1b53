//! bootstrap-wasm: TrustGraph's bootstrapper, with initialisers as sandboxed WebAssembly
//! components.
//!
//! The pieces, each in its own module, lowest layer first; a module imports only from layers
//! below its own (`.ci/layers` checks it, and docs/design.md draws it):
//! - data and contracts: [`policy`] is what each initialiser may touch (grants) and consume
//!   (limits); [`integrity`] hashes code and checks it against its `sha256:` pin; `wit`
//!   holds the bindings generated from `wit/`, the contract with guests;
//! - [`guest_text`] makes what a guest says safe to log: one line, escaped, bounded;
//! - [`services`] is the port to config-svc and flow-svc: the [`services::Services`] trait,
//!   TrustGraph's records, typed clients and the wake's read cache;
//! - behind the port: [`broker`] carries requests over Pulsar or RabbitMQ, and [`embedded`]
//!   answers them in-process on a local store;
//! - [`flag`] is an initialiser's flag, as configured and as stored in `__system__`
//!   ([`flag::FlagStore`]);
//! - [`sandbox`] compiles components and runs each call in a fresh, bounded instance, generic
//!   over the imports it links ([`sandbox::Imports`]); [`schedule`] finds which initialisers
//!   may run at once;
//! - [`builtins`] are the core initialisers compiled into the binary;
//! - [`init_file`] reads and checks the operator's init file; [`host`] implements the WIT
//!   imports (`config`, `flow`, `iam`, `log`) a guest calls; [`lease`] makes one replica of a
//!   deployment the one that runs it;
//! - [`initialiser`] turns init-file entries into loaded, validated initialisers; [`tenants`]
//!   loads each tenant's own entries within the ceiling the operator set, and reloads them
//!   when their files change;
//! - [`reconcile`] is the loop that brings each one to its configured flag; [`check`] reviews
//!   a loaded file for an operator; [`scaffold`] writes a new initialiser project;
//! - [`deployment`] is the composition root: it picks the backend and runs one replica
//!   (lease, services, loop); [`metrics`] records what the loop reports for Prometheus.
//!
//! The binary (`src/bin/bootstrap-wasm/`) is a thin command line over this library.

pub mod broker;
pub mod builtins;
pub mod check;
pub mod deployment;
pub mod embedded;
pub mod flag;
pub mod guest_text;
pub mod host;
pub mod init_file;
pub mod initialiser;
pub mod integrity;
pub mod lease;
pub mod metrics;
pub mod policy;
pub mod reconcile;
pub mod sandbox;
pub mod scaffold;
pub mod schedule;
pub mod services;
pub mod tenants;
mod wit;

pub use init_file::{ConfigError, InitFile};
pub use initialiser::Initialiser;
pub use reconcile::{Cadence, Outcome, Reconciler, WakeReport};

/// The sandbox with the runtime's own imports (`config`, `flow`, `iam`, `log`): what loads and runs
/// initialisers.
pub type Sandbox = sandbox::Sandbox<host::HostState>;
/// A component loaded in a [`Sandbox`].
pub type LoadedComponent = sandbox::LoadedComponent<host::HostState>;
