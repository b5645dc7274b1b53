//! Write TrustGraph bootstrap initialisers in Rust, as WebAssembly components that
//! `bootstrap-wasm` runs in a sandbox.
//!
//! An initialiser is a type that implements [`Initialiser`]; one line,
//! [`export_initialiser!`], turns it into the `initialiser` export of the
//! `trustgraph:bootstrap` world. Inside `run` it talks to TrustGraph through [`config`] and
//! [`flow`], registers workspaces with TrustGraph's IAM through [`iam`] (TrustGraph 2.4.13 and
//! later), writes to the runtime's log through [`log`] (or plain `println!`), reads the files
//! the operator granted with `std::fs`, and reaches granted HTTP origins through [`http`].
//! [`seed`] holds the `{type: {key: value}}` seeding logic that TrustGraph's own initialisers
//! share.
//!
//! The full contract — grants, flags, retries, limits — is in `docs/authoring.md`.
//!
//! # Example
//!
//! An initialiser that stores one greeting, given in its params, in a workspace's config.
//! Build it as a `cdylib` with `cargo build --target wasm32-wasip2 --release`.
//!
//! ```
//! use bootstrap_guest::{config, export_initialiser, info};
//! use bootstrap_guest::{Description, Error, Initialiser, Parameters, Params};
//! use serde::Deserialize;
//!
//! /// The params: `greeting` (required) and `workspace`; any other draws a warning.
//! #[derive(Deserialize)]
//! struct Settings { greeting: String, #[serde(default = "default_workspace")] workspace: String }
//! fn default_workspace() -> String { "default".into() }
//! impl Parameters for Settings {}
//!
//! struct SeedGreeting;
//!
//! impl Initialiser for SeedGreeting {
//!     fn describe() -> Description {
//!         Description::new("Stores the configured greeting in a workspace's config")
//!     }
//!     fn validate(params: &Params) -> Result<Vec<String>, String> {
//!         params.validate_as::<Settings>()
//!     }
//!     fn run(params: &Params, _old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
//!         let settings: Settings = params.read()?;
//!         config::put_json(&settings.workspace, "greeting", "text", &settings.greeting)?;
//!         info!("greeting stored in workspace '{}'", settings.workspace);
//!         Ok(())
//!     }
//! }
//!
//! export_initialiser!(SeedGreeting);
//! ```

#![warn(missing_docs)]

pub mod config;
mod error;
mod field_names;
pub mod flow;
pub mod http;
pub mod iam;
pub mod log;
mod params;
pub mod seed;

// JSON as Python's `json` module writes it, shared with the runtime (`guest-sdk/upstream`).
#[doc(inline)]
pub use bootstrap_upstream::pyjson;
// Python's `str` methods, as TrustGraph applies them (`title()` names a registered workspace).
#[doc(inline)]
pub use bootstrap_upstream::pystr;
pub use error::{Context, Error, HostError};
pub use params::{Parameters, Params, ParamsError};

/// The bindings `wit-bindgen` generates from `wit/bootstrap.wit`. Use the wrappers in this
/// crate instead; these are public only so that [`export_initialiser!`] can reach them.
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "initialiser-component",
        path: "../wit",
        pub_export_macro: true,
        default_bindings_module: "bootstrap_guest::bindings",
    });
}

use bindings::exports::trustgraph::bootstrap::initialiser as export;
use std::marker::PhantomData;

/// What an initialiser says of itself; the result of [`Initialiser::describe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `true` (the default): run only once config-svc and flow-svc answer. `false`: run
    /// before that gate, for initialisers that set up what the services need to start.
    pub wait_for_services: bool,
    /// One line for operators, shown by `bootstrap-wasm check` and in logs.
    pub summary: String,
}

impl Description {
    /// A description with `summary` that waits for the services, as almost every
    /// initialiser should.
    pub fn new(summary: impl Into<String>) -> Self {
        Description { wait_for_services: true, summary: summary.into() }
    }

    /// The same description, but run before the services are up (on every wake until it
    /// succeeds at its flag), so `run` must be idempotent.
    pub fn before_services(mut self) -> Self {
        self.wait_for_services = false;
        self
    }
}

/// What an initialiser implements. The runtime calls `describe` and `validate` at start-up
/// and `run` on a wake when the operator's flag differs from the one stored at the last
/// success.
pub trait Initialiser {
    /// Describes the initialiser. Must not call the host.
    fn describe() -> Description;

    /// Checks `params` before any wake. Return `Err` with a message that names the offending
    /// parameter, or `Ok` with warnings for the operator; [`Params::validate_as`] does both
    /// for a [`Parameters`] type. Must not call the host.
    fn validate(_params: &Params) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }

    /// Does the work. `old_flag` is the flag stored at the last success (`None` if there was
    /// none), `new_flag` the configured one. Return `Ok` only when the work is done; an `Err`
    /// is logged and the run retried on a later wake, so this must be safe to repeat.
    fn run(params: &Params, old_flag: Option<&str>, new_flag: &str) -> Result<(), Error>;
}

/// Adapts an [`Initialiser`] to the generated `Guest` trait; used by [`export_initialiser!`].
#[doc(hidden)]
pub struct Exported<T>(PhantomData<T>);

impl<T: Initialiser> export::Guest for Exported<T> {
    fn describe() -> export::Description {
        let description = T::describe();
        export::Description { wait_for_services: description.wait_for_services, summary: description.summary }
    }

    fn validate(params: String) -> Result<Vec<String>, String> {
        T::validate(&Params::from_json(&params)?)
    }

    fn run(params: String, old_flag: Option<String>, new_flag: String) -> Result<(), String> {
        let params = Params::from_json(&params)?;
        T::run(&params, old_flag.as_deref(), &new_flag).map_err(|error| error.to_string())
    }
}

/// Exports a type that implements [`Initialiser`] as this component's `initialiser`.
/// Use it once per component, at the crate's top level.
#[macro_export]
#[rustfmt::skip] // rustfmt cannot parse `with_types_in` and mangles the indentation.
macro_rules! export_initialiser {
    ($initialiser:ty) => {
        const _: () = {
            // wit-bindgen's `export!` takes a plain name, not a generic type.
            type BootstrapGuestExport = $crate::Exported<$initialiser>;
            $crate::bindings::export!(BootstrapGuestExport with_types_in $crate::bindings);
        };
    };
}
