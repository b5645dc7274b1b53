//! The sandbox: compiles components once, then runs each call in a fresh, bounded instance.
//!
//! One [`Sandbox`] holds the wasmtime engine, the linker (WASI, outgoing HTTP and our own
//! `config`/`flow`/`log` imports) and the epoch ticker that measures wall-clock time. Loading a
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
mod guest_output;
mod http;
mod memory;
mod precompiled;
mod run;

use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::component::{HasData, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use failure::RunFailure;
pub(crate) use memory::RunMemory;
pub use run::{CallContext, LoadedComponent, Metered};

use crate::builtins::Builtin;
use crate::host::HostState;
use crate::integrity::Digest;
use crate::wit::{InitialiserComponent, InitialiserComponentPre};
use epoch::EpochTicker;
use run::RunState;

/// The largest linear memory the pool holds: all of a 32-bit memory (4 GiB), so every
/// per-initialiser `limits.memory` works as it does on demand; the memory cap itself is
/// enforced per run by `RunMemory`, over all of a component's memories and what the host holds for it.
const POOL_MAX_MEMORY: usize = 1 << 32;

/// What one component instance may hold in the pool. An interpreted Python guest
/// (componentize-py) has 11+ core instances, several memories and tens of tables; these caps
/// leave it room twice over. A component over a cap fails to load, with wasmtime's reason.
const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 48;
const POOL_MEMORIES_PER_COMPONENT: u32 = 8;
const POOL_TABLES_PER_COMPONENT: u32 = 48;
/// Per core module: Python's interpreter module has several tables.
const POOL_TABLES_PER_MODULE: u32 = 8;
/// The metadata (`VMContext`s) of one component instance and all its core instances.
const POOL_INSTANCE_METADATA: usize = 4 << 20;
/// How much of a freed memory slot's written pages, and of a freed table's, stays resident
/// (reset by `memset`) rather than being decommitted and faulted in again by the next
/// instance. A core initialiser writes a few dozen pages per run; with decommitting, those
/// faults were a large share of converging many tenants (docs/performance.md, "Scale and
/// steady state"). Only written pages are kept
/// (found with Linux's `PAGEMAP_SCAN`, 6.7 and later), so this bounds what an idle pool
/// holds: at most this much per slot ever used.
const POOL_KEEP_RESIDENT: usize = 512 << 10;
/// The same for each table slot: a component has many tables, most of them a page or two.
const POOL_TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// How each call's instance gets its memories, tables and async stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// From a pool with room for `instances` calls alive at once; a call beyond that waits
    /// for one to end. The pool reserves (without committing) about 33 GiB of address space
    /// per instance: 8 memory slots of 4 GiB plus guard pages, and 48 tables of up to 2^20
    /// elements (see docs/performance.md, "Address space").
    Pooled { instances: u32 },
    /// Mapped afresh for every call and unmapped after it: no reservation, a slower start.
    OnDemand,
}

impl Allocation {
    /// A pool for `calls` calls at once (the reconcile loop's concurrency), and two spare.
    pub fn pooled_for(calls: std::num::NonZeroUsize) -> Self {
        Self::Pooled { instances: u32::try_from(calls.get()).unwrap_or(u32::MAX).saturating_add(2) }
    }
}

impl Default for Allocation {
    /// For one call at a time.
    fn default() -> Self {
        Self::pooled_for(std::num::NonZeroUsize::MIN)
    }
}

/// How a [`Sandbox`] is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxOptions {
    pub allocation: Allocation,
    /// Load the core initialisers from the artefacts the build precompiled into the binary
    /// (on by default); off, they are compiled (or taken from the compile cache) as any other
    /// component, which only the benchmarks want.
    pub precompiled_builtins: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self { allocation: Allocation::default(), precompiled_builtins: true }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
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

/// The engine and linker shared by every run. Cloning shares them.
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    /// Every import a component may have: WASI, wasi:http and ours.
    linker: Linker<RunState>,
    cache: Option<cache::CompileCache>,
    precompiled_builtins: bool,
    ticker: Arc<EpochTicker>,
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// `HasData` marker: our imports see the [`HostState`] inside each run's store.
struct HostImports;

impl HasData for HostImports {
    type Data<'a> = &'a mut HostState;
}

impl Sandbox {
    /// A sandbox with the default options (pooled instances).
    pub fn new() -> Result<Self, SandboxError> {
        Self::with_options(SandboxOptions::default())
    }

    pub fn with_options(options: SandboxOptions) -> Result<Self, SandboxError> {
        let mut config = Config::new();
        compiler_settings::apply(&mut config);
        if let Allocation::Pooled { instances } = options.allocation {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(instances)));
        }
        let engine = Engine::new(&config).map_err(|e| SandboxError(format!("{e:#}")))?;

        let mut linker = Linker::new(&engine);
        let link = |result: wasmtime::Result<()>| result.map_err(|e| SandboxError(format!("{e:#}")));
        link(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
        link(wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))?;
        link(InitialiserComponent::add_to_linker::<RunState, HostImports>(&mut linker, |state| &mut state.host))?;
        link(crate::host::add_list_checks(&mut linker, |state: &mut RunState| &mut state.host))?;

        let ticker = EpochTicker::start(&engine);
        let slots = match options.allocation {
            Allocation::Pooled { instances } => Some(Arc::new(tokio::sync::Semaphore::new(instances as usize))),
            Allocation::OnDemand => None,
        };
        Ok(Self { engine, linker, cache: None, precompiled_builtins: options.precompiled_builtins, ticker, slots })
    }

    /// Keep compiled components in `dir` and load them from there on later starts, instead of
    /// compiling them again (see the `cache` module for what this trusts).
    pub fn with_compile_cache(mut self, dir: PathBuf) -> Self {
        self.cache = Some(cache::CompileCache::new(dir, &self.engine));
        self
    }

    /// Compile `bytes` (a component binary), or load it from the compile cache or, for a core
    /// initialiser, from the binary's precompiled artefact, and check it against our world.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        let digest = Builtin::of_component(bytes).map_or_else(|| Digest::of(bytes), Builtin::digest);
        self.load_hashed(bytes, digest)
    }

    /// [`Sandbox::load`] for a caller that has already hashed `bytes` (the initialisers'
    /// loader, for their pins): an interpreted guest is tens of megabytes, not worth hashing
    /// twice. The digest keys the compile cache.
    pub(crate) fn load_hashed(&self, bytes: &[u8], digest: Digest) -> Result<LoadedComponent, LoadError> {
        let builtin = Builtin::of_component(bytes);
        let artefact = builtin.filter(|_| self.precompiled_builtins).and_then(precompiled::artefact_for);
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
fn link_http_stand_in(
    linker: &mut Linker<RunState>,
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

/// A pool for `instances` component instances alive at once, each within the per-component caps.
fn pool(instances: u32) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_stacks(instances)
        .total_core_instances(instances * POOL_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(instances * POOL_MEMORIES_PER_COMPONENT)
        .total_tables(instances * POOL_TABLES_PER_COMPONENT)
        .max_core_instances_per_component(POOL_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(POOL_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(POOL_TABLES_PER_COMPONENT)
        .max_tables_per_module(POOL_TABLES_PER_MODULE)
        .max_memory_size(POOL_MAX_MEMORY)
        .table_elements(memory::MAX_TABLE_ELEMENTS)
        .max_component_instance_size(POOL_INSTANCE_METADATA)
        .max_core_instance_size(POOL_INSTANCE_METADATA)
        .linear_memory_keep_resident(POOL_KEEP_RESIDENT)
        .table_keep_resident(POOL_TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// A wasmtime error with its causes, outermost first: the innermost says what is wrong.
fn error_chain(error: &wasmtime::Error) -> String {
    let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
    chain.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Grants, Limits};

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
