//! The broker's memory allocator: jemalloc, configured to give memory back within a second.
//!
//! Why not glibc's: a message's life is a run of short-lived buffers a little over 1 KiB (the
//! frame read, the stored record, the delivery's frames), which is past glibc's per-thread
//! cache, so each takes its locked slow path (`_int_malloc`, `malloc_consolidate`). `perf` put
//! the `malloc` family at ~18% of the server's worker in W1. jemalloc's size classes serve them
//! from thread caches. Measured with `cargo bench --bench compare` (2026-12-06,
//! `docs/benchmarks.md`): broker CPU per message 7–20% lower across W1–W4 (W1 end to end with
//! fsync 16.8/17.3 → 13.1/13.8 µs). Peak RSS with the W1 backlog stays under its 64 MiB target
//! (worst repetition 56 MiB in a full run, against glibc's 40–42).
//!
//! Why this configuration: with jemalloc's defaults, freed pages linger for 10 s and W1's end
//! to end RSS rose from 45–51 to 60–61 MiB; a background thread that purges after 1 s brought
//! it back to 40–52 MiB. mimalloc was also tried (2026-11-28): 10% less CPU, but 125 MiB.
//!
//! Only the binary installs it: the library leaves the choice to whoever embeds it.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads this symbol at start-up (`tikv-jemalloc-sys` prefixes its symbols with
/// `_rjem_`) as a C `const char *`: a reference to an array is that thin pointer. The
/// `_RJEM_MALLOC_CONF` environment variable still overrides it.
// A symbol exported by name is `unsafe_code` to the lint; this one is a constant C string.
#[allow(unsafe_code, non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
