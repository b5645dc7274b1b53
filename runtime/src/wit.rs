//! Host-side bindings for the `initialiser-component` world in `wit/`: the types and traits
//! generated from the WIT package, which the host interfaces (`host`) implement and the sandbox
//! links and calls. A module of its own so that neither has to reach into the other for them.
//!
//! Every import is async so that a host call can await a broker round trip without blocking
//! the executor; every export is async so that the sandbox can bound a run by wall-clock time.

wasmtime::component::bindgen!({
    world: "initialiser-component",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});

pub use exports::trustgraph::bootstrap::initialiser::Description;
pub use trustgraph::bootstrap::types::{ConfigEntry, ConfigKey, HostError};
pub use trustgraph::bootstrap::{config, flow, log, types};
