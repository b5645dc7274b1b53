//! One bounded call into a component: a fresh store and instance, limits, grants, and a verdict.
//!
//! Each call (`describe`, `validate` or `run`) builds a new `Store` whose data ([`RunState`])
//! carries a deny-by-default WASI context (no environment, arguments, sockets or directories;
//! only the granted files, read-only), the HTTP allow-list, the memory cap and the host state.
//! Fuel bounds CPU work; the epoch callback bounds wall-clock time inside wasm, and an outer
//! timeout bounds time spent waiting in host calls. Whatever happens inside, the caller gets a
//! [`RunFailure`] that says which limit or fault stopped the guest; the runtime carries on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::{Description, InitialiserComponent};
use super::files::{self, StagedFiles};
use super::guest_output::GuestOutput;
use super::http::HttpAllowList;
use super::memory::MemoryCap;
use super::{LoadedComponent, error_chain};
use crate::host::{GuestLog, HostState, Source, clip};
use crate::policy::{Grants, Limits};
use crate::services::Services;

/// The most data one host call may copy out of the guest (wasmtime's "hostcall fuel": list
/// elements counted at their size in the host, strings by length); a call carrying more traps.
/// A backstop under the per-call caps of [`Limits`], which the host checks once the data is
/// copied (or, for `config.put` and `config.delete`, once it knows the list's length).
const HOSTCALL_TRANSFER: usize = 128 << 20;

/// Who is calling, under which limits and grants, with which services.
#[derive(Clone)]
pub struct CallContext {
    pub initialiser: Arc<str>,
    pub limits: Limits,
    pub grants: Arc<Grants>,
    /// `None` for `describe` and `validate`, which must not reach the services.
    pub services: Option<Arc<dyn Services>>,
}

/// Why a call did not complete. The runtime logs it and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunFailure {
    #[error("failed: {0}")]
    Guest(String),
    #[error("stopped: out of fuel (limit {0})")]
    OutOfFuel(u64),
    #[error("stopped: wall-clock limit of {0:?} exceeded")]
    Deadline(Duration),
    #[error("stopped: memory limit of {0} bytes reached")]
    Memory(usize),
    #[error("stopped: stack overflow")]
    StackOverflow,
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not start: {0}")]
    Setup(String),
}

impl RunFailure {
    /// A short, stable name for the kind of failure (`out_of_fuel`, `deadline`, ...), for
    /// metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Guest(_) => "guest_error",
            Self::OutOfFuel(_) => "out_of_fuel",
            Self::Deadline(_) => "deadline",
            Self::Memory(_) => "memory",
            Self::StackOverflow => "stack_overflow",
            Self::Trap(_) => "trap",
            Self::Setup(_) => "setup",
        }
    }
}

/// A call's result with the fuel it burned (its limit minus what was left when it ended, on
/// success and on failure alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metered<T> {
    pub result: Result<T, RunFailure>,
    pub fuel_used: u64,
}

/// The data of one call's store.
pub(crate) struct RunState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: HttpAllowList,
    table: ResourceTable,
    pub(super) memory: MemoryCap,
    pub(crate) host: HostState,
    deadline: Instant,
    _staged_files: StagedFiles,
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for RunState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_hooks }
    }
}

/// Raised by the epoch callback when a call's wall-clock deadline has passed.
#[derive(Debug)]
struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wall-clock deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

type CallFuture<'a, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>;

impl LoadedComponent {
    /// The component's `describe()`.
    pub async fn describe(&self, context: &CallContext) -> Result<Description, RunFailure> {
        let mut description = self
            .call(context, |guest, store| Box::pin(guest.trustgraph_bootstrap_initialiser().call_describe(store)))
            .await
            .result?;
        description.summary = guest_text(description.summary, &context.limits);
        Ok(description)
    }

    /// The component's `validate(params)`: `Ok(Ok(warnings))`, or the guest's refusal.
    pub async fn validate(
        &self,
        context: &CallContext,
        params: &str,
    ) -> Result<Result<Vec<String>, String>, RunFailure> {
        let params = params.to_owned();
        let verdict = self
            .call(context, move |guest, store| {
                Box::pin(async move { guest.trustgraph_bootstrap_initialiser().call_validate(store, &params).await })
            })
            .await
            .result?;
        // Warnings are logged one per line, and a refusal is printed: both within the log caps.
        let limits = &context.limits;
        Ok(match verdict {
            Ok(warnings) => {
                Ok(warnings.into_iter().take(limits.log_lines).map(|warning| guest_text(warning, limits)).collect())
            }
            Err(refusal) => Err(guest_text(refusal, limits)),
        })
    }

    /// The component's `run(params, old_flag, new_flag)`, with the fuel it used.
    pub async fn run(
        &self,
        context: &CallContext,
        params: &str,
        old_flag: Option<&str>,
        new_flag: &str,
    ) -> Metered<()> {
        // The export borrows its arguments for as long as the call runs: hand it owned copies.
        let (params, old_flag, new_flag) = (params.to_owned(), old_flag.map(str::to_owned), new_flag.to_owned());
        let Metered { result, fuel_used } = self
            .call(context, move |guest, store| {
                Box::pin(async move {
                    let exports = guest.trustgraph_bootstrap_initialiser();
                    exports.call_run(store, &params, old_flag.as_deref(), &new_flag).await
                })
            })
            .await;
        let result = result
            .and_then(|verdict| verdict.map_err(|message| RunFailure::Guest(guest_text(message, &context.limits))));
        Metered { result, fuel_used }
    }

    /// Instantiate in a fresh store and `invoke` one export, within the context's limits.
    async fn call<T>(
        &self,
        context: &CallContext,
        invoke: impl for<'a> FnOnce(&'a InitialiserComponent, &'a mut Store<RunState>) -> CallFuture<'a, T>,
    ) -> Metered<T> {
        let limits = context.limits;
        // The pool has room for so many instances; a call beyond them waits here, before its
        // limits start counting.
        let _slot = match &self.slots {
            Some(slots) => Some(slots.acquire().await.expect("the slots are never closed")),
            None => None,
        };
        let _ticking = self.ticker.ticking();
        let mut store = match self.new_store(context) {
            Ok(store) => store,
            Err(failure) => return Metered { result: Err(failure), fuel_used: 0 },
        };
        let pre = &self.pre;
        let outcome = tokio::time::timeout(limits.timeout, async {
            let instance = pre.instantiate_async(&mut store).await?;
            invoke(&instance, &mut store).await
        })
        .await;
        // The store outlives the call however it ended (a timeout drops only the future), so
        // what is left of the fuel can be read in every case.
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let result = match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(classify(&error, &store, limits)),
            Err(_elapsed) => Err(RunFailure::Deadline(limits.timeout)),
        };
        Metered { result, fuel_used }
    }

    fn new_store(&self, context: &CallContext) -> Result<Store<RunState>, RunFailure> {
        let limits = context.limits;
        let log = GuestLog::new(context.initialiser.clone(), &limits);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(GuestOutput::new(Source::Stdout, log.clone()))
            .stderr(GuestOutput::new(Source::Stderr, log.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let staged_files = files::stage(&context.grants.files, &mut wasi)
            .map_err(|e| RunFailure::Setup(format!("cannot stage granted files: {e}")))?;

        let state = RunState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            // `describe` and `validate` (no services) reach no HTTP origin either, whatever the
            // grants: start-up and `bootstrap-wasm check` send nothing anywhere.
            http_hooks: HttpAllowList::new(
                context.initialiser.clone(),
                if context.services.is_some() { context.grants.clone() } else { Arc::new(Grants::default()) },
            ),
            table: ResourceTable::new(),
            memory: MemoryCap::new(limits.memory),
            host: HostState::new(
                context.initialiser.clone(),
                context.grants.clone(),
                context.services.clone(),
                limits,
                log,
            ),
            deadline: Instant::now() + limits.timeout,
            _staged_files: staged_files,
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        store.set_fuel(limits.fuel).map_err(|e| RunFailure::Setup(error_chain(&e)))?;
        store.set_hostcall_fuel(HOSTCALL_TRANSFER);
        // Check the clock at every epoch tick and yield to the executor, so a spinning guest
        // neither outlives its deadline nor starves other tasks.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        Ok(store)
    }
}

/// Text the guest wrote that the runtime will log or print, cut to the run's line size.
fn guest_text(text: String, limits: &Limits) -> String {
    match clip(&text, limits.log_line_size, 0) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(clipped) => clipped,
    }
}

/// Which limit or fault ended a call.
fn classify(error: &wasmtime::Error, store: &Store<RunState>, limits: Limits) -> RunFailure {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return RunFailure::Deadline(limits.timeout);
    }
    if let Some(full) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return RunFailure::Setup(full.to_string());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RunFailure::OutOfFuel(limits.fuel),
        Some(Trap::StackOverflow) => RunFailure::StackOverflow,
        // A guest whose allocation was refused usually aborts (an `unreachable` trap): report
        // the cause, not the symptom.
        _ if store.data().memory.was_hit() => RunFailure::Memory(limits.memory),
        // The trap itself, without the wasm backtrace wasmtime attaches as context.
        Some(trap) => RunFailure::Trap(trap.to_string()),
        None => RunFailure::Trap(error_chain(error)),
    }
}
