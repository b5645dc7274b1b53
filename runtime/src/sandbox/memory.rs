//! One run's memory budget (`limits.memory`), over everything the guest can make the runtime
//! hold: its linear memories, and what the host holds on its behalf.
//!
//! wasmtime's own `StoreLimits` caps each linear memory separately and forgets that it refused;
//! a guest could also make the host hold memory that no linear-memory cap sees (wasi:http
//! header objects, resource-table entries, the answer to a config read on its way in, the
//! arguments of a host call on their way out). [`RunMemory`] is one account for all of them:
//! - **linear memories**, summed over all of a component's memories (a Python guest has
//!   several), checked at every growth ([`ResourceLimiter`]);
//! - **set aside** when the run starts ([`RunMemory::new`]'s `reserved`): the most the run's
//!   WASI and HTTP objects can hold (the resource table's capacity times what one entry can
//!   hold) and its output line buffers;
//! - **in transit**: a host call's result, charged by the host function that produced it
//!   ([`RunMemory::hold`]) and released once wasmtime has copied it into the guest and the call
//!   returns ([`RunMemory::host_call`]); and a host call's arguments, which wasmtime copies out
//!   of the guest only up to the room left ([`RunMemory::transfer_room`]).
//!
//! A growth past the budget is refused, as wasm's `memory.grow` allows; anything else past it
//! ends the run with the memory limit as its reason. Either way the refusal is remembered, so
//! a guest that dies of it is reported as having hit the memory limit rather than as an
//! anonymous trap, and one that swallows it and succeeds is reported too.

use wasmtime::ResourceLimiter;

/// Most tables stay small; this only stops a guest from growing one without bound.
pub(super) const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// What one run's linear memories and host-side objects may hold, and what they hold now.
#[derive(Debug)]
pub struct RunMemory {
    limit: usize,
    linear: usize,
    reserved: usize,
    in_transit: usize,
    /// Host calls in progress (a host call may call back into the guest, whose `memory.grow`
    /// is a host call too): what is in transit is released when the outermost one returns.
    depth: u32,
    /// A linear memory's growth was refused; wasm lets the guest carry on.
    growth_refused: bool,
    /// What the host would have held for the guest, refused; the run ends.
    host_refused: Option<&'static str>,
}

/// A host call's result that does not fit: the run ends (see [`RunMemory::host_call`]).
#[derive(Debug, thiserror::Error)]
#[error("memory limit reached: {0}")]
pub struct OverBudget(pub &'static str);

impl RunMemory {
    /// A budget of `limit` bytes, of which `reserved` are set aside for the host's objects.
    pub fn new(limit: usize, reserved: usize) -> Self {
        Self { limit, linear: 0, reserved, in_transit: 0, depth: 0, growth_refused: false, host_refused: None }
    }

    /// Whether a linear memory's growth was refused in this run.
    pub fn growth_refused(&self) -> bool {
        self.growth_refused
    }

    /// What the host was refused to hold for the guest in this run, if anything.
    #[cfg(test)]
    pub fn host_refused(&self) -> Option<&'static str> {
        self.host_refused
    }

    fn used(&self) -> usize {
        self.linear.saturating_add(self.reserved).saturating_add(self.in_transit)
    }

    /// Bytes the run may still take.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// Charge `bytes` that the host is about to hand the guest (`what`: a config read's answer).
    /// Over the budget, nothing is charged, the refusal is remembered and the run ends when the
    /// host call returns.
    pub fn hold(&mut self, bytes: usize, what: &'static str) -> Result<(), OverBudget> {
        if bytes > self.room() {
            self.host_refused.get_or_insert(what);
            return Err(OverBudget(what));
        }
        self.in_transit += bytes;
        Ok(())
    }

    /// The most a host call about to start may copy out of the guest: the room left, up to
    /// `cap` (wasmtime's "hostcall fuel", set from this before every host call).
    pub fn transfer_room(&self, cap: usize) -> usize {
        self.room().min(cap)
    }

    /// Track a host call's start (`entering`) or return. When the outermost one returns, its
    /// result has been copied into the guest: release it, and end the run if the call was
    /// refused something.
    pub fn host_call(&mut self, entering: bool) -> Result<(), OverBudget> {
        if entering {
            self.depth += 1;
            return Ok(());
        }
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.in_transit = 0;
        }
        match self.host_refused {
            Some(what) => Err(OverBudget(what)),
            None => Ok(()),
        }
    }
}

impl ResourceLimiter for RunMemory {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        if growth > self.room() {
            self.growth_refused = true;
            return Ok(false);
        }
        self.linear += growth;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_the_sum_of_all_memories_and_remembers_refusals() {
        let mut memory = RunMemory::new(100, 0);
        assert!(memory.memory_growing(0, 60, None).unwrap());
        assert!(memory.memory_growing(0, 40, None).unwrap());
        assert!(!memory.growth_refused());
        assert!(!memory.memory_growing(60, 61, None).unwrap());
        assert!(memory.growth_refused() && memory.host_refused().is_none());
    }

    #[test]
    fn what_is_set_aside_and_in_transit_counts_against_growth() {
        let mut memory = RunMemory::new(100, 30);
        memory.host_call(true).unwrap();
        memory.hold(50, "an answer").unwrap();
        assert_eq!(memory.transfer_room(usize::MAX), 20);
        assert!(!memory.memory_growing(0, 21, None).unwrap(), "30 set aside, 50 in transit");
        // The guest's allocation for the answer, in a nested host call (its `memory.grow`).
        memory.host_call(true).unwrap();
        assert!(memory.memory_growing(0, 20, None).unwrap());
        memory.host_call(false).unwrap();
        assert_eq!(memory.room(), 0, "the answer is still in transit until the outer call returns");
        memory.host_call(false).unwrap();
        assert_eq!(memory.room(), 50);
    }

    #[test]
    fn a_result_over_the_budget_ends_the_run_when_its_call_returns() {
        let mut memory = RunMemory::new(100, 0);
        memory.host_call(true).unwrap();
        assert!(memory.hold(101, "config.get-workspace's answer").is_err());
        assert_eq!(memory.room(), 100, "nothing charged");
        let ended = memory.host_call(false).unwrap_err();
        assert_eq!(ended.to_string(), "memory limit reached: config.get-workspace's answer");
        assert_eq!(memory.host_refused(), Some("config.get-workspace's answer"));
    }
}
