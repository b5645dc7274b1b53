//! The linear-memory cap of one run, and the record of whether the guest hit it.
//!
//! wasmtime's own `StoreLimits` caps each memory separately and forgets that it refused; this
//! limiter caps the sum over all of a component's memories (a Python guest has several) and
//! remembers a refusal, so a guest that dies after an allocation failure is reported as having
//! hit the memory limit rather than as an anonymous trap.

use wasmtime::ResourceLimiter;

/// Most tables stay small; this only stops a guest from growing one without bound.
pub(super) const MAX_TABLE_ELEMENTS: usize = 1 << 20;

pub(crate) struct MemoryCap {
    limit: usize,
    in_use: usize,
    refused: bool,
}

impl MemoryCap {
    pub fn new(limit: usize) -> Self {
        Self { limit, in_use: 0, refused: false }
    }

    /// Whether a growth was refused during this run.
    pub fn was_hit(&self) -> bool {
        self.refused
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.in_use + (desired - current);
        if after > self.limit {
            self.refused = true;
            return Ok(false);
        }
        self.in_use = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_the_sum_of_all_memories_and_remembers_refusals() {
        let mut cap = MemoryCap::new(100);
        assert!(cap.memory_growing(0, 60, None).unwrap());
        assert!(cap.memory_growing(0, 40, None).unwrap());
        assert!(!cap.was_hit());
        assert!(!cap.memory_growing(60, 61, None).unwrap());
        assert!(cap.was_hit());
    }
}
