//! `.wait()` for the plugin host's async calls in synchronous tests: each test thread has its
//! own single-threaded runtime, so tests that call from several threads keep doing so.

use std::future::Future;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime");
}

pub trait Wait: Future + Sized {
    /// Runs the future to completion on this thread's runtime.
    fn wait(self) -> Self::Output {
        RUNTIME.with(|rt| rt.block_on(self))
    }
}

impl<F: Future> Wait for F {}
