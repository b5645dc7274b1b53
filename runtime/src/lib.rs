//! bootstrap-wasm: TrustGraph's bootstrapper, with initialisers as sandboxed WebAssembly
//! components.
//!
//! The pieces, each in its own module, in the order a start-up uses them:
//! - [`init_file`] reads and checks the operator's init file, and [`flag`] is an initialiser's
//!   flag as configured there and as stored in `__system__`;
//! - [`builtins`] are the core initialisers compiled into the binary, with the grants their
//!   params imply;
//! - [`guest_text`] makes what a guest says safe to log: one line, escaped, bounded;
//! - [`integrity`] hashes each initialiser's code and checks it against its `sha256:` pin;
//! - [`policy`] is what each initialiser may touch (grants) and consume (limits);
//! - [`sandbox`] compiles components and runs each call in a fresh, bounded instance;
//! - `wit` (crate-private) holds the bindings generated from `wit/`, the contract with guests;
//! - `host` (crate-private) implements the WIT imports (`config`, `flow`, `log`) a guest calls;
//! - [`services`] carries config-svc and flow-svc requests to a backend ([`embedded`]
//!   runs both in-process on a local store);
//! - [`initialiser`] turns init-file entries into loaded, validated initialisers;
//! - [`reconcile`] is the loop that brings each one to its configured flag, running several
//!   at once where [`schedule`] finds their grants apart;
//! - [`lease`] makes one replica of a deployment the one that runs it, the others standbys;
//! - [`metrics`] records what the loop reports for Prometheus (`--metrics`);
//! - [`check`] reviews a loaded file for an operator (`bootstrap-wasm check`);
//! - [`scaffold`] writes a new initialiser project for an author (`bootstrap-wasm new`).
//!
//! The binary (`main.rs`) is a thin command line over this library.

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
mod wit;

pub use init_file::{ConfigError, InitFile};
pub use initialiser::Initialiser;
pub use reconcile::{Cadence, Outcome, Reconciler, WakeReport};

/// The sandbox with the runtime's own imports (`config`, `flow`, `log`): what loads and runs
/// initialisers.
pub type Sandbox = sandbox::Sandbox<host::HostState>;
/// A component loaded in a [`Sandbox`].
pub type LoadedComponent = sandbox::LoadedComponent<host::HostState>;
