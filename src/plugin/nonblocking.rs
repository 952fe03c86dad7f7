//! WASI for direct calls: the synchronous WASI implementation minus everything that can block.
//!
//! A *direct* call runs a plugin's export on the caller's stack, with no fiber (see
//! `instance.rs`). That is only sound if no import can block: wasmtime-wasi's synchronous
//! bindings run their blocking functions (`poll`, `pollable.block`, the `blocking-*` stream
//! methods, stream destructors, file and socket I/O) through `in_tokio`, which panics on a tokio
//! worker thread. So this linker takes `add_to_linker_sync` and shadows each of those functions
//! with one that ends the call with [`NeedsFiber`]; the host then discards the instance and runs
//! the call again on a fiber, where the real asynchronous implementation serves it. Plugins are
//! pure decisions (they perform no I/O and return a verdict), so running a call again is safe.
//!
//! Two exceptions keep printing plugins direct: `blocking-flush` and `blocking-write-and-flush`
//! complete at once when their stream is ready (stdout and stderr are sinks in the empty WASI
//! context), and stream destructors drop synchronously.
//!
//! The list mirrors wasmtime-wasi 48's own split between its async and sync functions (the
//! `imports` of its bindings). A function missing from it would panic a worker: the tests call
//! each kind of blocking import from a direct call.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::bindings::io::streams::{HostOutputStream, StreamError as WitStreamError};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, StreamError};
use wasmtime_wasi::WasiView;

use super::bindings::StoreState;

/// The WASI version wasmtime-wasi 48 defines; guests importing any 0.2.x match it.
const WASI: &str = "0.2.12";

/// Why a direct call stopped: it reached an import that may block.
#[derive(Debug, thiserror::Error)]
#[error("plugin reached a blocking WASI import (`{0}`): the call moves to a fiber")]
pub(crate) struct NeedsFiber(pub &'static str);

/// Functions that block or do I/O, by interface.
const BLOCKING: &[(&str, &[&str])] = &[
    (
        "wasi:io/poll",
        &["poll", "[method]pollable.block", "[method]pollable.ready"],
    ),
    (
        "wasi:io/streams",
        &[
            "[method]input-stream.blocking-read",
            "[method]input-stream.blocking-skip",
            "[method]output-stream.blocking-splice",
            "[method]output-stream.blocking-write-zeroes-and-flush",
        ],
    ),
    (
        "wasi:filesystem/types",
        &[
            "[method]descriptor.advise",
            "[method]descriptor.create-directory-at",
            "[method]descriptor.get-flags",
            "[method]descriptor.get-type",
            "[method]descriptor.is-same-object",
            "[method]descriptor.link-at",
            "[method]descriptor.metadata-hash",
            "[method]descriptor.metadata-hash-at",
            "[method]descriptor.open-at",
            "[method]descriptor.read",
            "[method]descriptor.read-directory",
            "[method]descriptor.readlink-at",
            "[method]descriptor.remove-directory-at",
            "[method]descriptor.rename-at",
            "[method]descriptor.set-size",
            "[method]descriptor.set-times",
            "[method]descriptor.set-times-at",
            "[method]descriptor.stat",
            "[method]descriptor.stat-at",
            "[method]descriptor.symlink-at",
            "[method]descriptor.sync",
            "[method]descriptor.sync-data",
            "[method]descriptor.unlink-file-at",
            "[method]descriptor.write",
            "[method]directory-entry-stream.read-directory-entry",
        ],
    ),
    (
        "wasi:sockets/tcp",
        &[
            "[method]tcp-socket.start-bind",
            "[method]tcp-socket.start-listen",
        ],
    ),
    (
        "wasi:sockets/udp",
        &["[method]udp-socket.start-bind", "[method]udp-socket.stream"],
    ),
    ("wasi:sockets/udp-create-socket", &["create-udp-socket"]),
];

/// The result of a stream operation that completed in its first poll; otherwise [`NeedsFiber`].
fn ready_now<F>(op: F, function: &'static str) -> wasmtime::Result<(Result<(), WitStreamError>,)>
where
    F: Future<Output = Result<(), StreamError>>,
{
    let mut op = std::pin::pin!(op);
    match op.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(())) => Ok((Ok(()),)),
        Poll::Ready(Err(_)) | Poll::Pending => Err(wasmtime::Error::new(NeedsFiber(function))),
    }
}

/// A linker for direct calls: synchronous WASI (empty context, as for fibers) with every
/// blocking function replaced by one that fails with [`NeedsFiber`].
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    for (interface, functions) in BLOCKING {
        let mut instance = linker.instance(&format!("{interface}@{WASI}"))?;
        for &function in *functions {
            instance.func_new(function, move |_, _, _, _| {
                Err(wasmtime::Error::new(NeedsFiber(function)))
            })?;
        }
    }
    // Flushing stdout or stderr (every `println!`, every Rust panic message) would otherwise
    // move a plugin to fibers. Their streams are sinks here, always ready: try once, and
    // escape only if the stream is not ready or failed (the fiber reproduces the failure).
    let mut streams = linker.instance(&format!("wasi:io/streams@{WASI}"))?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store, (stream,): (Resource<DynOutputStream>,)| {
            let table = store.data_mut().ctx().table;
            ready_now(
                HostOutputStream::blocking_flush(table, stream),
                "blocking-flush",
            )
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store, (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            let table = store.data_mut().ctx().table;
            let write = HostOutputStream::blocking_write_and_flush(table, stream, bytes);
            ready_now(write, "blocking-write-and-flush")
        },
    )?;
    // Stream destructors are async in wasmtime-wasi (they may wait for a background writer).
    // With the empty WASI context every stream is an in-memory one with no background task,
    // so dropping it synchronously is complete.
    streams.resource(
        "input-stream",
        ResourceType::host::<DynInputStream>(),
        |mut store, rep| {
            let table = store.data_mut().ctx().table;
            table.delete(Resource::<DynInputStream>::new_own(rep))?;
            Ok(())
        },
    )?;
    streams.resource(
        "output-stream",
        ResourceType::host::<DynOutputStream>(),
        |mut store, rep| {
            let table = store.data_mut().ctx().table;
            table.delete(Resource::<DynOutputStream>::new_own(rep))?;
            Ok(())
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
