//! The sandbox: compiles components once, then runs each call in a fresh, bounded instance.
//!
//! One [`Sandbox`] holds the wasmtime engine, the linker (WASI, outgoing HTTP and our own
//! `config`/`flow`/`iam`/`log` imports) and the epoch ticker that measures wall-clock time. Loading a
//! component (compiling it, or loading it from the compile cache or, for a core initialiser,
//! from the artefact the build precompiled) checks that it targets our world and pre-links it
//! ([`LoadedComponent`]); every call then gets its own `Store`, with its own fuel, deadline,
//! memory cap, WASI context and grants ([`LoadedComponent::run`]). Nothing survives from one call to the next.
//!
//! A component that imports wasi:http gets it only when its entry is granted HTTP origins: for
//! the others its wasi:http imports are linked to a stand-in that fails every call (a trap
//! naming the function), so that a guest without the grant can create no HTTP objects in the
//! host at all, while components whose toolchain imports wasi:http regardless (JavaScript's,
//! for one) still load.
//!
//! By default each call's memories, tables and stack come from wasmtime's pooling allocator:
//! address space reserved once when the sandbox starts (see [`Allocation`] for how much), so an
//! instance costs a few microseconds, and a slot's pages are given back to the system when its
//! call ends, so an idle runtime holds none of them. [`SandboxOptions`] chooses on-demand
//! allocation instead.

mod cache;
mod compiler_settings;
mod epoch;
mod failure;
mod files;
mod guest_log;
mod guest_output;
mod http;
mod memory;
mod pool;
mod precompiled;
mod run;

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

pub use failure::RunFailure;
pub use guest_log::{GuestLog, Source};
pub use memory::RunMemory;
pub use pool::Allocation;
pub use run::{CallContext, LoadedComponent, Metered, RunState};

use crate::integrity::Digest;
use crate::wit::InitialiserComponentPre;
use epoch::EpochTicker;

/// How a [`Sandbox`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxOptions {
    pub allocation: Allocation,
    /// Load code from the precompiled artefact its caller hands with it ([`ComponentCode`]; on
    /// by default); off, such code is compiled (or taken from the compile cache) as any other,
    /// which only the benchmarks want.
    pub use_precompiled: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self { allocation: Allocation::default(), use_precompiled: true }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("does not fit the runtime's `initialiser-component` world (trustgraph:bootstrap@{version}): {0}", version = crate::wit::VERSION)]
    WrongWorld(String),
}

/// Why the sandbox itself could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly sandbox: {}", error_chain(.0))]
pub struct SandboxError(#[source] wasmtime::Error);

/// What the embedder links beside WASI and wasi:http: the functions of the world's own imports
/// (`config`, `flow`, `iam`, `log`), and the state they reach in one call's store. The sandbox is
/// generic over it so that it knows nothing of what those functions do; the runtime's are
/// `host::HostState`, over the services.
pub trait Imports: Sized + Send + 'static {
    /// Define the imports' functions in `linker`.
    fn add_to_linker(linker: &mut Linker<RunState<Self>>) -> wasmtime::Result<()>;
    /// The state for one call: its context, its log budget (shared with the guest's stdout
    /// and stderr) and its memory budget, which the sandbox's limiter charges as the guest's
    /// memories grow and the imports charge for what they hand the guest.
    fn for_call(context: &CallContext, log: Arc<GuestLog>, memory: RunMemory) -> Self;
    /// The memory budget handed to [`Imports::for_call`].
    fn memory(&mut self) -> &mut RunMemory;
}

/// A component's code as its caller has it: the bytes, their digest (which keys the compile
/// cache), and, for code the build precompiled, wasmtime's artefact for it.
#[derive(Debug, Clone, Copy)]
pub struct ComponentCode<'a> {
    pub bytes: &'a [u8],
    pub digest: Digest,
    pub precompiled: Option<&'a [u8]>,
}

impl<'a> ComponentCode<'a> {
    /// `bytes`, hashed here, with no precompiled artefact.
    pub fn of(bytes: &'a [u8]) -> Self {
        Self { bytes, digest: Digest::of(bytes), precompiled: None }
    }
}

/// The engine and linker shared by every run. Cloning shares them.
pub struct Sandbox<H: Imports> {
    engine: Engine,
    /// Every import a component may have: WASI, wasi:http and the embedder's.
    linker: Linker<RunState<H>>,
    cache: Option<cache::CompileCache>,
    use_precompiled: bool,
    ticker: Arc<EpochTicker>,
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

// By hand: a derive would ask `H: Clone`.
impl<H: Imports> Clone for Sandbox<H> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            linker: self.linker.clone(),
            cache: self.cache.clone(),
            use_precompiled: self.use_precompiled,
            ticker: self.ticker.clone(),
            slots: self.slots.clone(),
        }
    }
}

impl<H: Imports> Sandbox<H> {
    /// A sandbox with the default options (pooled instances).
    pub fn new() -> Result<Self, SandboxError> {
        Self::with_options(SandboxOptions::default())
    }

    /// A sandbox whose pool has room for `calls` calls at once, or, where the pool's address
    /// space cannot be reserved (under `ulimit -v`), one that maps instances for each call.
    pub fn for_concurrency(calls: std::num::NonZeroUsize) -> Result<Self, SandboxError> {
        let pooled = SandboxOptions { allocation: Allocation::pooled_for(calls), ..Default::default() };
        Self::with_options(pooled).or_else(|error| {
            tracing::warn!("{error}; mapping instances per call instead of from a pool");
            Self::with_options(SandboxOptions { allocation: Allocation::OnDemand, ..Default::default() })
        })
    }

    pub fn with_options(options: SandboxOptions) -> Result<Self, SandboxError> {
        let mut config = Config::new();
        compiler_settings::apply(&mut config);
        if let Allocation::Pooled { instances } = options.allocation {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool::config(instances)));
        }
        let engine = Engine::new(&config).map_err(SandboxError)?;

        let mut linker = Linker::new(&engine);
        let link = |result: wasmtime::Result<()>| result.map_err(SandboxError);
        link(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        link(wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))?;
        link(H::add_to_linker(&mut linker))?;

        let ticker = EpochTicker::start(&engine);
        let slots = match options.allocation {
            Allocation::Pooled { instances } => Some(Arc::new(tokio::sync::Semaphore::new(instances as usize))),
            Allocation::OnDemand => None,
        };
        Ok(Self { engine, linker, cache: None, use_precompiled: options.use_precompiled, ticker, slots })
    }

    /// Keep compiled components in `dir` and load them from there on later starts, instead of
    /// compiling them again (see the `cache` module for what this trusts).
    pub fn with_compile_cache(mut self, dir: PathBuf) -> Self {
        self.cache = Some(cache::CompileCache::new(dir, &self.engine));
        self
    }

    /// Compile `bytes` (a component binary), or load it from the compile cache, and check it
    /// against our world.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent<H>, LoadError> {
        self.load_code(ComponentCode::of(bytes))
    }

    /// [`Sandbox::load`] for a caller that has more than the bytes: their digest (the
    /// initialisers' loader hashed them for their pins, and an interpreted guest is tens of
    /// megabytes, not worth hashing twice) and maybe an artefact the build precompiled.
    pub fn load_code(&self, code: ComponentCode<'_>) -> Result<LoadedComponent<H>, LoadError> {
        let ComponentCode { bytes, digest, precompiled } = code;
        let artefact = precompiled.filter(|_| self.use_precompiled);
        let component = match &self.cache {
            Some(cache) => cache.component(&self.engine, bytes, digest, artefact),
            None => precompiled::compile(&self.engine, bytes, artefact),
        };
        let component = component.map_err(|e| LoadError::NotAComponent(error_chain(&e)))?;
        let wrong_world = |e: wasmtime::Error| LoadError::WrongWorld(error_chain(&e));
        let pre = self.linker.instantiate_pre(&component).map_err(wrong_world)?;
        let pre = InitialiserComponentPre::new(pre).map_err(wrong_world)?;
        let pre_without_http = if imports_http(&self.engine, &component) {
            let mut linker = self.linker.clone();
            link_http_stand_in(&mut linker, &self.engine, &component).map_err(wrong_world)?;
            InitialiserComponentPre::new(linker.instantiate_pre(&component).map_err(wrong_world)?)
                .map_err(wrong_world)?
        } else {
            pre.clone()
        };
        Ok(LoadedComponent { pre, pre_without_http, ticker: self.ticker.clone(), slots: self.slots.clone() })
    }
}

/// The version of wasi:http that wasmtime-wasi-http defines in the linker; the linker matches a
/// component's import of any other 0.2 version to it, so the stand-in replaces functions there.
const LINKED_WASI_HTTP: &str = "0.2.12";

/// A wasi:http call by an entry that has no HTTP grant.
#[derive(Debug, thiserror::Error)]
#[error("called {0}, but this initialiser is granted no HTTP origins (grants.http)")]
pub(crate) struct HttpNotGranted(String);

/// Replace, in `linker`, every function of the wasi:http interfaces `component` imports with a
/// stand-in that fails with [`HttpNotGranted`] (a constructor cannot return an error, so the
/// call traps). The resource types stay wasi:http's own (some are wasi:io's, shared with the
/// rest of WASI), but no function can make one: the guest loads, and can hold nothing of HTTP
/// in the host.
fn link_http_stand_in<H: Imports>(
    linker: &mut Linker<RunState<H>>,
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    linker.allow_shadowing(true);
    for (name, item) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(interface) = item.ty else { continue };
        let Some(unversioned) = name.strip_prefix("wasi:http/").and_then(|rest| rest.split('@').next()) else {
            continue;
        };
        let mut instance = linker.instance(&format!("wasi:http/{unversioned}@{LINKED_WASI_HTTP}"))?;
        for (export, item) in interface.exports(engine) {
            if let ComponentItem::ComponentFunc(_) = item.ty {
                let function = format!("{name}#{export}");
                instance.func_new(export, move |_, _, _, _| Err(HttpNotGranted(function.clone()).into()))?;
            }
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Whether `component` imports any wasi:http interface.
fn imports_http(engine: &Engine, component: &wasmtime::component::Component) -> bool {
    component.component_type().imports(engine).any(|(name, _)| name.starts_with("wasi:http/"))
}

/// A wasmtime error with its causes, outermost first: the innermost says what is wrong.
fn error_chain(error: &wasmtime::Error) -> String {
    let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
    chain.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::Builtin;
    use crate::policy::{Grants, Limits};

    /// With the runtime's own imports, which the world needs linked.
    type Sandbox = crate::Sandbox;

    fn context() -> CallContext {
        CallContext {
            initialiser: "pooled".into(),
            limits: Limits::default(),
            grants: Arc::new(Grants::default()),
            services: None,
        }
    }

    #[tokio::test]
    async fn both_allocations_run_a_component() {
        for allocation in [Allocation::default(), Allocation::OnDemand] {
            let sandbox = Sandbox::with_options(SandboxOptions { allocation, ..Default::default() }).unwrap();
            let component = sandbox.load(Builtin::TemplateSeed.component()).unwrap();
            let description = component.describe(&context()).await.unwrap();
            assert!(!description.summary.is_empty(), "{allocation:?}");
        }
    }

    #[tokio::test]
    async fn calls_beyond_the_pool_wait_for_a_slot() {
        let sandbox = Sandbox::with_options(SandboxOptions {
            allocation: Allocation::Pooled { instances: 1 },
            ..Default::default()
        })
        .unwrap();
        let component = sandbox.load(Builtin::TemplateSeed.component()).unwrap();
        // Another call holds the only slot.
        let held = sandbox.slots.clone().unwrap().acquire_owned().await.unwrap();
        let call = tokio::spawn(async move { component.describe(&context()).await });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!call.is_finished(), "the call waits for the slot, rather than failing");
        drop(held);
        assert!(call.await.unwrap().is_ok(), "and runs once it is free");
    }

    #[tokio::test]
    async fn a_call_that_finds_the_pool_full_from_outside_fails_to_start() {
        let sandbox = Sandbox::with_options(SandboxOptions {
            allocation: Allocation::Pooled { instances: 1 },
            ..Default::default()
        })
        .unwrap();
        let bytes = Builtin::TemplateSeed.component();
        let component = sandbox.load(bytes).unwrap();
        // Hold the pool's only slot with another instance, alive until the end of the test.
        let compiled = wasmtime::component::Component::new(&sandbox.engine, bytes).unwrap();
        let mut linker = Linker::<()>::new(&sandbox.engine);
        linker.define_unknown_imports_as_traps(&compiled).unwrap();
        let mut store = wasmtime::Store::new(&sandbox.engine, ());
        store.set_fuel(1 << 30).unwrap();
        store.set_epoch_deadline(1 << 30);
        let _holder = linker.instantiate_async(&mut store, &compiled).await.unwrap();

        match component.describe(&context()).await {
            Err(RunFailure::Setup(message)) => assert!(message.contains("limit"), "{message}"),
            other => panic!("expected a set-up failure, got {other:?}"),
        }
        drop(store);
        assert!(component.describe(&context()).await.is_ok(), "the freed slot is used again");
    }
}
