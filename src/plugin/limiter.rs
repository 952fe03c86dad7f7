//! The memory cap. A `ResourceLimiter` rather than `StoreLimits` because the host must tell a
//! memory-limit failure from any other trap: a guest whose `memory.grow` is refused usually
//! aborts (a trap), and the flag set here turns that trap into `PluginError::MemoryLimit`.

/// Refuses growth of any linear memory past `max_bytes` and remembers that it did.
///
/// Invariant: `hit` is reset by the host before every call, so it describes that call only.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    pub max_bytes: usize,
    pub hit: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            hit: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold pointers; 1M elements is 8 MiB, far beyond what real plugins use.
        Ok(desired <= 1_000_000)
    }
}
