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
pub use trustgraph::bootstrap::{config, flow, iam, log, types};

/// The WIT package's version. Components built against an earlier, semver-compatible version
/// (0.1.0) link too: wasmtime resolves their imports and exports to this one's.
pub const VERSION: &str = "0.1.1";

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_wit_packages() {
        let wit = include_str!("../../wit/bootstrap.wit");
        assert!(wit.contains(&format!("package trustgraph:bootstrap@{};", super::VERSION)));
    }
}
