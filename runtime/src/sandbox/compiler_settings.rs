//! The engine settings that shape compiled code, in one place because two programs use them:
//! the sandbox, which compiles and runs components, and `build.rs`, which precompiles the core
//! initialisers into the binary. wasmtime refuses to load an artefact compiled under other
//! settings, so a setting added here reaches both and the artefacts keep loading.
//!
//! Only settings that change the generated code belong here (wasmtime's "tunables": fuel,
//! epochs, memory layout). Settings of the running engine alone, such as the instance pool, do
//! not, and stay in the sandbox.

/// Apply the settings every compiled component shares.
pub fn apply(config: &mut wasmtime::Config) {
    // Fuel bounds a guest's work; epochs bound its wall-clock time (see `run` and `epoch`).
    config.consume_fuel(true).epoch_interruption(true);
}
