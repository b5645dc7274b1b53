//! What TrustGraph's Python side does that bootstrap-wasm's Rust must do the same way, in one
//! place for the runtime (`bootstrap-wasm`) and the guest SDK (`bootstrap-guest`), so that the
//! two cannot drift:
//! - [`pyjson`] is JSON as Python's `json` module reads and writes it, and `str()` of what it
//!   reads: the guests store config values with it and the runtime's embedded flow-svc writes
//!   flow records with it, each byte for byte what upstream writes.
//! - [`builtins`] holds the core initialisers' parameter defaults: the initialisers read their
//!   params with them, and the runtime derives their grants from the same values.
//! - [`pystr`] is Python's `str` methods that TrustGraph applies to what it is given: WorkspaceInit
//!   names the workspace it registers with IAM `workspace.title()`.
//!
//! Plain Rust on serde_json, built for the host and for `wasm32-wasip2` alike. The guest SDK
//! re-exports [`pyjson`] as `bootstrap_guest::pyjson`.

#![warn(missing_docs)]

pub mod builtins;
pub mod pyjson;
pub mod pystr;
