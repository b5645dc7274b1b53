//! Wasmtime's pooling allocator, sized for the sandbox: address space for each call's
//! memories, tables and stack reserved once at start-up, so that an instance costs a few
//! microseconds, and each slot's pages given back to the system when its call ends.

use wasmtime::{Enabled, PoolingAllocationConfig};

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

/// A pool for `instances` component instances alive at once, each within the per-component caps.
pub(super) fn config(instances: u32) -> PoolingAllocationConfig {
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
        .table_elements(super::memory::MAX_TABLE_ELEMENTS)
        .max_component_instance_size(POOL_INSTANCE_METADATA)
        .max_core_instance_size(POOL_INSTANCE_METADATA)
        .linear_memory_keep_resident(POOL_KEEP_RESIDENT)
        .table_keep_resident(POOL_TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}
