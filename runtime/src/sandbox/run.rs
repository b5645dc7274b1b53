//! One bounded call into a component: a fresh store and instance, limits, grants, and a verdict.
//!
//! Each call (`describe`, `validate` or `run`) builds a new `Store` whose data ([`RunState`])
//! carries a deny-by-default WASI context (no environment, arguments, sockets or directories;
//! only the granted files, read-only), the HTTP allow-list, the memory cap and the host state.
//! Fuel bounds CPU work; the epoch callback bounds wall-clock time inside wasm, and an outer
//! timeout bounds time spent waiting in host calls. One budget ([`RunMemory`]) bounds what the
//! guest can make the runtime hold: its linear memories, the WASI and HTTP objects in its
//! resource table (whose capacity, and each header object's size, are set from the budget),
//! and host calls' arguments and results on their way across. Whatever happens inside, the
//! caller gets a [`RunFailure`] that says which limit or fault stopped the guest; the runtime
//! carries on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{CallHook, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::epoch::EpochTicker;
use super::failure::{DeadlineExceeded, RunFailure, classify};
use super::files::{self, StagedFiles};
use super::guest_log::{GuestLog, Source};
use super::guest_output::GuestOutput;
use super::http::HttpAllowList;
use super::memory::RunMemory;
use super::{Imports, error_chain};
use crate::guest_text;
use crate::policy::{Grants, Limits};
use crate::services::Services;
use crate::wit::{Description, InitialiserComponent, InitialiserComponentPre};

/// The most data one host call may copy out of the guest (wasmtime's "hostcall fuel": list
/// elements counted at their size in the host, strings by length); a call carrying more traps.
/// A backstop under the per-call caps of [`Limits`], which the host checks once the data is
/// copied (or, for `config.put` and `config.delete`, once it knows the list's length). Below
/// it, a call copies no more than the run's memory budget has room for.
const HOSTCALL_TRANSFER: usize = 128 << 20;

/// The most WASI and HTTP objects (streams, pollables, files, header objects, requests, ...)
/// one run may have alive at once: its resource table's capacity. Real guests hold a few dozen.
const MAX_HOST_OBJECTS: usize = 256;
/// The fewest a run gets however small its memory budget.
const MIN_HOST_OBJECTS: usize = 16;
/// The most a run's host objects may hold together, as a share of its memory budget.
const HOST_OBJECTS_SHARE: usize = 16;
/// What one resource-table entry that is not an HTTP header object holds at most, bounded.
const HOST_OBJECT_BYTES: usize = 1 << 10;
/// The most one wasi:http `fields` object may hold in the host (wasmtime-wasi-http counts its
/// in-memory size, about twice the headers' size on the wire; proxies cap those at 8 KiB), and
/// so the most any HTTP object holds (an outgoing body buffers two `BODY_CHUNK_BYTES` chunks).
const HTTP_FIELDS_BYTES: usize = 32 << 10;

/// The most random bytes one call may ask for (wasmtime-wasi's default is 64 MiB, made in the
/// host before the guest gets them); seeds and keys take a few hundred.
const RANDOM_BYTES: usize = 1 << 20;
/// The most component-model handles one run may have alive at once (wasmtime's default is
/// 100,000), and what one costs the host, set aside with the rest.
const COMPONENT_HANDLES: usize = 10_000;
const COMPONENT_HANDLE_BYTES: usize = 64;

/// What the host may hold for one run's objects: how many, and how large each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HostObjects {
    pub(super) count: usize,
    pub(super) each: usize,
}

impl HostObjects {
    /// As many objects as fit in a sixteenth of `memory`, within [`MIN_HOST_OBJECTS`] and
    /// [`MAX_HOST_OBJECTS`]; each as large as an HTTP header object when the run may reach
    /// HTTP (without a grant it cannot make one: see the sandbox's stand-in for wasi:http).
    fn for_run(memory: usize, http: bool) -> Self {
        let each = HOST_OBJECT_BYTES + if http { HTTP_FIELDS_BYTES } else { 0 };
        let count = (memory / HOST_OBJECTS_SHARE / each).clamp(MIN_HOST_OBJECTS, MAX_HOST_OBJECTS);
        Self { count, each }
    }

    fn bytes(self) -> usize {
        self.count * self.each
    }
}

/// A component checked against our world and pre-linked, ready to instantiate cheaply.
pub struct LoadedComponent<H: Imports> {
    pub(super) pre: InitialiserComponentPre<RunState<H>>,
    /// For entries without an HTTP grant: wasi:http linked to stand-ins (the same as `pre` for
    /// a component that does not import it).
    pub(super) pre_without_http: InitialiserComponentPre<RunState<H>>,
    pub(super) ticker: Arc<EpochTicker>,
    /// The pool's instance slots, one per call while it runs; `None` on demand.
    pub(super) slots: Option<Arc<tokio::sync::Semaphore>>,
}

// By hand: a derive would ask `H: Clone`, and the imports' state is per call.
impl<H: Imports> Clone for LoadedComponent<H> {
    fn clone(&self) -> Self {
        Self {
            pre: self.pre.clone(),
            pre_without_http: self.pre_without_http.clone(),
            ticker: self.ticker.clone(),
            slots: self.slots.clone(),
        }
    }
}

/// Who is calling, under which limits and grants, with which services.
#[derive(Clone)]
pub struct CallContext {
    pub initialiser: Arc<str>,
    pub limits: Limits,
    pub grants: Arc<Grants>,
    /// `None` for `describe` and `validate`, which must not reach the services.
    pub services: Option<Arc<dyn Services>>,
}

/// A call's result with the fuel it burned (its limit minus what was left when it ended, on
/// success and on failure alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metered<T> {
    pub result: Result<T, RunFailure>,
    pub fuel_used: u64,
    /// A linear memory's growth was refused during the call, whatever the result: a guest that
    /// catches the refusal and succeeds has still met its memory limit.
    pub memory_refused: bool,
}

/// The data of one call's store: WASI's and wasi:http's contexts, the limits' bookkeeping, and
/// the state of the embedder's imports (`H`).
pub struct RunState<H> {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: HttpAllowList,
    table: ResourceTable,
    pub(super) host_objects: HostObjects,
    /// The last copy out of the guest (a host call's arguments, an export's results) was capped
    /// by the memory budget's room, below [`HOSTCALL_TRANSFER`]: running out of it is the
    /// memory limit.
    pub(super) transfer_capped: bool,
    imports: H,
    deadline: Instant,
    _staged_files: StagedFiles,
}

impl<H> RunState<H> {
    /// The state of the embedder's imports: what their functions reach.
    pub fn imports(&mut self) -> &mut H {
        &mut self.imports
    }
}

impl<H: Imports> RunState<H> {
    pub(super) fn memory(&mut self) -> &mut RunMemory {
        self.imports.memory()
    }
}

impl<H: Send> WasiView for RunState<H> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl<H: Send> WasiHttpView for RunState<H> {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.http_hooks }
    }
}

type CallFuture<'a, T> = Pin<Box<dyn Future<Output = wasmtime::Result<T>> + Send + 'a>>;

impl<H: Imports> LoadedComponent<H> {
    /// What to instantiate for a call under `grants`: wasi:http only where HTTP is granted.
    fn pre_for(&self, grants: &Grants) -> &InitialiserComponentPre<RunState<H>> {
        if grants.http.is_empty() { &self.pre_without_http } else { &self.pre }
    }

    /// The component's `describe()`.
    pub async fn describe(&self, context: &CallContext) -> Result<Description, RunFailure> {
        let mut description = self
            .call(context, |guest, store| Box::pin(guest.trustgraph_bootstrap_initialiser().call_describe(store)))
            .await
            .result?;
        description.summary = guest_text::for_log(&description.summary, &context.limits);
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
            Ok(warnings) => Ok(warnings
                .into_iter()
                .take(limits.log_lines)
                .map(|warning| guest_text::for_log(&warning, limits))
                .collect()),
            Err(refusal) => Err(guest_text::for_log(&refusal, limits)),
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
        let Metered { result, fuel_used, memory_refused } = self
            .call(context, move |guest, store| {
                Box::pin(async move {
                    let exports = guest.trustgraph_bootstrap_initialiser();
                    exports.call_run(store, &params, old_flag.as_deref(), &new_flag).await
                })
            })
            .await;
        let result = result.and_then(|verdict| {
            verdict.map_err(|message| RunFailure::Guest(guest_text::for_log(&message, &context.limits)))
        });
        Metered { result, fuel_used, memory_refused }
    }

    /// Instantiate in a fresh store and `invoke` one export, within the context's limits.
    async fn call<T>(
        &self,
        context: &CallContext,
        invoke: impl for<'a> FnOnce(&'a InitialiserComponent, &'a mut Store<RunState<H>>) -> CallFuture<'a, T>,
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
            Err(failure) => return Metered { result: Err(failure), fuel_used: 0, memory_refused: false },
        };
        let pre = self.pre_for(&context.grants);
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
            Ok(Err(error)) => Err(classify(&error, &mut store, limits)),
            Err(_elapsed) => Err(RunFailure::Deadline(limits.timeout)),
        };
        Metered { result, fuel_used, memory_refused: store.data_mut().memory().growth_refused() }
    }

    fn new_store(&self, context: &CallContext) -> Result<Store<RunState<H>>, RunFailure> {
        let limits = context.limits;
        let log = GuestLog::new(context.initialiser.clone(), &limits);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(GuestOutput::new(Source::Stdout, log.clone()))
            .stderr(GuestOutput::new(Source::Stderr, log.clone()))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .max_random_size(RANDOM_BYTES as u64);
        let staged_files = files::stage(&context.grants.files, &mut wasi)
            .map_err(|e| RunFailure::Setup(format!("cannot stage granted files: {e}")))?;
        let host_objects = HostObjects::for_run(limits.memory, !context.grants.http.is_empty());
        let mut table = ResourceTable::new();
        table.set_max_capacity(host_objects.count);
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(HTTP_FIELDS_BYTES);
        // Set aside: the objects and handles, one call's random bytes, and a line buffer each
        // for stdout and stderr.
        let reserved =
            host_objects.bytes() + COMPONENT_HANDLES * COMPONENT_HANDLE_BYTES + RANDOM_BYTES + 2 * limits.log_line_size;

        let state = RunState {
            wasi: wasi.build(),
            http,
            // `describe` and `validate` (no services) reach no HTTP origin either, whatever the
            // grants: start-up and `bootstrap-wasm check` send nothing anywhere.
            http_hooks: HttpAllowList::new(
                context.initialiser.clone(),
                if context.services.is_some() { context.grants.clone() } else { Arc::new(Grants::default()) },
            ),
            table,
            host_objects,
            transfer_capped: false,
            imports: H::for_call(context, log, RunMemory::new(limits.memory, reserved)),
            deadline: Instant::now() + limits.timeout,
            _staged_files: staged_files,
        };
        let mut store = Store::new(self.pre.engine(), state);
        bound(&mut store, limits)?;
        Ok(store)
    }
}

/// Set `store`'s bounds: fuel, what host calls may copy, component handles, the memory budget
/// (as the limiter and around host calls) and the wall-clock deadline.
fn bound<H: Imports>(store: &mut Store<RunState<H>>, limits: Limits) -> Result<(), RunFailure> {
    store.limiter(|state| state.memory());
    store.set_fuel(limits.fuel).map_err(|e| RunFailure::Setup(error_chain(&e)))?;
    store.set_hostcall_fuel(HOSTCALL_TRANSFER);
    store.set_max_component_handles(COMPONENT_HANDLES);
    // Whenever the host is about to copy out of the guest (a host call's arguments, an
    // export's results), copy no more than the budget has room for; once a host call
    // returns, release its result (now in the guest's memory), or end the run if the host
    // was refused something on its behalf.
    store.call_hook(|mut store, hook| {
        if matches!(hook, CallHook::CallingHost | CallHook::ReturningFromWasm) {
            let room = store.data_mut().memory().transfer_room(HOSTCALL_TRANSFER);
            store.data_mut().transfer_capped = room < HOSTCALL_TRANSFER;
            store.set_hostcall_fuel(room);
        }
        let memory = store.data_mut().memory();
        match hook {
            CallHook::CallingHost => memory.host_call(true).map_err(wasmtime::Error::new),
            CallHook::ReturningFromHost => memory.host_call(false).map_err(wasmtime::Error::new),
            CallHook::CallingWasm | CallHook::ReturningFromWasm => Ok(()),
        }
    });
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
    Ok(())
}
