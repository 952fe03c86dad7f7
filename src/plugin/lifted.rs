//! A router's verdict as the host lifts it out of a guest: [`Verdict`].
//!
//! The generated `types::verdict` holds each destination's optional replacement message inline,
//! and a message record is several hundred bytes (its properties alone are a dozen optional
//! strings). Lifting a batch's verdicts built, moved and freed one such destination per message,
//! nearly always to say "none". Here the replacement is boxed, so a destination is a few words
//! and a verdict list converts to [`RouteVerdict`](super::types::RouteVerdict) in place.
//!
//! Direct calls lift this type straight from guest memory (`worker.rs` types the exports with
//! it; the component's own type is checked against it when the export is typed, so a guest
//! with another `verdict` fails there, not at a call). Fiber calls go through the generated
//! bindings and convert with `From`.
//!
//! `Boxed`'s two impls are written by hand and name wasmtime's hidden `__internal` items, as
//! the derive macros' output does; wasmtime is pinned to one version (`Cargo.toml`), so an
//! upgrade that moves them fails to compile here rather than misbehaving.

use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};

use super::bindings::router::switchyard::plugin::types as wit;

/// `batch.verdicts`, fields in WIT order: what a `route-batch` call answers.
#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct Verdicts {
    pub answers: Vec<Result<Verdict, wit::PluginError>>,
    pub of: Vec<u32>,
}

/// `types.verdict`, cases in WIT order.
#[derive(ComponentType, Lift, Debug)]
#[component(variant)]
pub(crate) enum Verdict {
    #[component(name = "deliver")]
    Deliver(Vec<Destination>),
    #[component(name = "drop")]
    Drop,
    #[component(name = "dead-letter")]
    DeadLetter(String),
}

/// `types.destination`, fields in WIT order.
#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct Destination {
    pub target: wit::Target,
    pub message: Option<Boxed>,
    #[component(name = "delay-ms")]
    pub delay_ms: Option<u64>,
}

/// A `types.message` lifted onto the heap.
#[derive(Debug)]
pub(crate) struct Boxed(pub Box<wit::Message>);

// SAFETY: `Boxed` is a `wit::Message` in every respect the canonical ABI sees: the same type
// (checked by `typecheck`), layout and lowered form; only where the lifted value lives differs.
// This is what wasmtime's own `Box<T>` forwarding does for lowering.
#[allow(unsafe_code)]
unsafe impl ComponentType for Boxed {
    type Lower = <wit::Message as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <wit::Message as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <wit::Message as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: lifting is `wit::Message`'s own, followed by a move into a box.
#[allow(unsafe_code)]
unsafe impl Lift for Boxed {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        wit::Message::linear_lift_from_flat(cx, ty, src).map(|m| Boxed(Box::new(m)))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        wit::Message::linear_lift_from_memory(cx, ty, bytes).map(|m| Boxed(Box::new(m)))
    }
}

impl From<wit::Verdict> for Verdict {
    fn from(v: wit::Verdict) -> Self {
        match v {
            wit::Verdict::Deliver(list) => Verdict::Deliver(
                list.into_iter()
                    .map(|d| Destination {
                        target: d.target,
                        message: d.message.map(|m| Boxed(Box::new(m))),
                        delay_ms: d.delay_ms,
                    })
                    .collect(),
            ),
            wit::Verdict::Drop => Verdict::Drop,
            wit::Verdict::DeadLetter(reason) => Verdict::DeadLetter(reason),
        }
    }
}
