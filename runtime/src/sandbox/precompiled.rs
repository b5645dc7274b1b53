//! Components as a build compiled them: ready to load without Cranelift.
//!
//! `build.rs` compiles each core initialiser with the settings of `compiler_settings`, for the
//! target's baseline CPU (no features of the build machine's own), and the binary embeds the
//! artefacts beside the components (`crate::builtins`). A sandbox handed an artefact with a
//! component's bytes ([`super::ComponentCode`]) deserializes it instead of compiling: a first
//! start costs what a start from a warm compile cache does. An artefact that does not load (a
//! build that could not precompile, or an engine configured otherwise) is ignored and the
//! component compiled as any other.

use wasmtime::Engine;
use wasmtime::component::Component;

/// `bytes` compiled: deserialized from `artefact` when it has one that fits `engine`, compiled
/// with Cranelift otherwise.
pub(super) fn compile(engine: &Engine, bytes: &[u8], artefact: Option<&[u8]>) -> wasmtime::Result<Component> {
    if let Some(artefact) = artefact {
        // SAFETY: the artefact is wasmtime's own output for these bytes, made by `build.rs` and
        // embedded in this binary; wasmtime checks that it fits this engine before using it.
        match unsafe { Component::deserialize(engine, artefact) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!("a precompiled core initialiser does not fit this engine, compiling it: {e:#}"),
        }
    }
    Component::new(engine, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::Builtin;

    #[test]
    fn every_builtin_has_an_artefact_that_loads_in_the_sandbox_engine() {
        let sandbox = crate::Sandbox::new().unwrap();
        for builtin in Builtin::ALL {
            let artefact = builtin.code().precompiled.unwrap_or_else(|| panic!("{} has no artefact", builtin.name()));
            // SAFETY: as in `compile`.
            let loaded = unsafe { Component::deserialize(&sandbox.engine, artefact) };
            assert!(loaded.is_ok(), "{}: {:#}", builtin.name(), loaded.err().unwrap());
        }
    }
}
