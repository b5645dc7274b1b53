//! The sandbox: compiles components once, then runs each call in a fresh, bounded instance.
//!
//! One [`Sandbox`] holds the wasmtime engine, the linker (WASI, outgoing HTTP and our own
//! `config`/`flow`/`log` imports) and the epoch ticker that measures wall-clock time. Loading a
//! component checks that it targets our world and pre-links it ([`LoadedComponent`]); every
//! call then gets its own `Store`, with its own fuel, deadline, memory cap, WASI context and
//! grants ([`run`]). Nothing survives from one call to the next.

pub(crate) mod bindings;
mod cache;
mod files;
mod guest_output;
mod http;
mod memory;
mod run;

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::component::{Component, HasData, Linker};
use wasmtime::{Config, Engine};

pub use run::{CallContext, Metered, RunFailure};

use crate::host::HostState;
use bindings::{InitialiserComponent, InitialiserComponentPre};
use run::RunState;

/// How often the engine's epoch advances: the resolution of wall-clock deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("does not fit the runtime's `initialiser-component` world (trustgraph:bootstrap@0.1.0): {0}")]
    WrongWorld(String),
}

/// Why the sandbox itself could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly sandbox: {0}")]
pub struct SandboxError(String);

/// The engine and linker shared by every run.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<RunState>,
    cache: Option<cache::CompileCache>,
}

/// A component checked against our world and pre-linked, ready to instantiate cheaply.
#[derive(Clone)]
pub struct LoadedComponent {
    pre: InitialiserComponentPre<RunState>,
}

/// `HasData` marker: our imports see the [`HostState`] inside each run's store.
struct HostImports;

impl HasData for HostImports {
    type Data<'a> = &'a mut HostState;
}

impl Sandbox {
    pub fn new() -> Result<Self, SandboxError> {
        let mut config = Config::new();
        config.consume_fuel(true).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| SandboxError(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        let link = |result: wasmtime::Result<()>| result.map_err(|e| SandboxError(format!("{e:#}")));
        link(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        link(wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))?;
        link(InitialiserComponent::add_to_linker::<RunState, HostImports>(&mut linker, |state| {
            &mut state.host
        }))?;
        link(crate::host::add_list_checks(&mut linker, |state: &mut RunState| &mut state.host))?;

        start_epoch_ticker(&engine);
        Ok(Self { engine, linker, cache: None })
    }

    /// Keep compiled components in `dir` and load them from there on later starts, instead of
    /// compiling them again (see the `cache` module for what this trusts).
    pub fn with_compile_cache(mut self, dir: PathBuf) -> Self {
        self.cache = Some(cache::CompileCache::new(dir, &self.engine));
        self
    }

    /// Compile `bytes` (a component binary), or load it from the compile cache, and check it
    /// against our world.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        let component = match &self.cache {
            Some(cache) => cache.component(&self.engine, bytes),
            None => Component::new(&self.engine, bytes),
        };
        let component = component.map_err(|e| LoadError::NotAComponent(error_chain(&e)))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| LoadError::WrongWorld(error_chain(&e)))?;
        let pre = InitialiserComponentPre::new(pre).map_err(|e| LoadError::WrongWorld(error_chain(&e)))?;
        Ok(LoadedComponent { pre })
    }
}

/// Advance the engine's epoch every tick for as long as the engine lives (in the sandbox or in
/// any component loaded from it, which may outlive the sandbox); each store's epoch callback
/// compares the clock with its own deadline.
fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("bootstrap-wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("cannot start the epoch thread");
}

/// A wasmtime error with its causes, outermost first: the innermost says what is wrong.
fn error_chain(error: &wasmtime::Error) -> String {
    let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
    chain.join(": ")
}
