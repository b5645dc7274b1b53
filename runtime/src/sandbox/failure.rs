//! How a call into a component ended, when it did not complete: which limit or fault stopped
//! it ([`RunFailure`]), told apart from wasmtime's error by [`classify`].

use std::time::Duration;

use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap};

use super::Imports;
use super::error_chain;
use super::memory::OverBudget;
use super::run::{HostObjects, RunState};
use crate::guest_text::one_line;
use crate::policy::Limits;

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
    /// The budget was reached by what the host would have held for the guest.
    #[error("stopped: memory limit of {limit} bytes reached ({held})")]
    HostMemory { limit: usize, held: String },
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
            Self::Memory(_) | Self::HostMemory { .. } => "memory",
            Self::StackOverflow => "stack_overflow",
            Self::Trap(_) => "trap",
            Self::Setup(_) => "setup",
        }
    }
}

/// Raised by the epoch callback when a call's wall-clock deadline has passed.
#[derive(Debug)]
pub(super) struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wall-clock deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Which limit or fault ended a call.
pub(super) fn classify<H: Imports>(
    error: &wasmtime::Error,
    store: &mut Store<RunState<H>>,
    limits: Limits,
) -> RunFailure {
    if error.downcast_ref::<DeadlineExceeded>().is_some() {
        return RunFailure::Deadline(limits.timeout);
    }
    if let Some(full) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return RunFailure::Setup(full.to_string());
    }
    let state = store.data_mut();
    let host_memory = |held: String| RunFailure::HostMemory { limit: limits.memory, held };
    if let Some(not_granted) = error.downcast_ref::<super::HttpNotGranted>() {
        return RunFailure::Trap(not_granted.to_string());
    }
    if let Some(OverBudget(what)) = error.downcast_ref::<OverBudget>() {
        return host_memory((*what).to_owned());
    }
    if matches!(error.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)) {
        let HostObjects { count, each } = state.host_objects;
        return host_memory(format!("more than {count} WASI and HTTP objects at once, of up to {each} bytes each"));
    }
    // wasmtime's own words when a host call's arguments exceed its "hostcall fuel".
    if state.transfer_capped && error_chain(error).contains("too much data is being copied") {
        return host_memory("data copied out of the guest".to_owned());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RunFailure::OutOfFuel(limits.fuel),
        Some(Trap::StackOverflow) => RunFailure::StackOverflow,
        // A guest whose allocation was refused usually aborts (an `unreachable` trap): report
        // the cause, not the symptom.
        _ if state.memory().growth_refused() => RunFailure::Memory(limits.memory),
        // The trap itself, without the wasm backtrace wasmtime attaches as context.
        Some(trap) => RunFailure::Trap(trap.to_string()),
        None => RunFailure::Trap(one_line(&error_chain(error)).into_owned()),
    }
}
