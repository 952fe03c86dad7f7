//! The host side of `message-view`: the message a `view-router` plugin reads field by field.
//!
//! Why it exists: a record-world call copies every string and list of the message into guest
//! memory (one `cabi_realloc` call into the guest each) whether the plugin reads them or not,
//! which is most of a small router's call cost. A view copies only what the guest asks for.
//!
//! Invariants:
//! - a store holds at most one view, set by the worker just before a `view-router` call and
//!   taken out right after it, whatever the call's outcome;
//! - a direct call's view is the caller's message itself, *lent* (no copy: a copy of a message
//!   with a few headers was half of the call). Only [`lend_during`] makes a lent view, and it
//!   empties the slot before it returns or unwinds, so the pointers never outlive the borrows
//!   they were made from. A fiber call can be suspended, moved to another thread or dropped
//!   half-way, so it gets an owned copy instead;
//! - the guest only ever holds the view as a `borrow` lent for that call (the canonical ABI
//!   ends the borrow at return), so no method can run while the slot is empty. The methods
//!   still answer with empty values rather than panic if one did;
//! - every handle has the same representation, [`REP`]: the store has one slot, not a table.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use wasmtime::component::Resource;
use wasmtime::Store;

use super::bindings::{view_router::switchyard::plugin::view, wit, StoreState};
use super::marshal;
use super::memo::Probe;
use super::types::RouteContext;
use crate::message::Message;

/// The Rust type behind `message-view` handles. Carries nothing: the message is in
/// [`StoreState::view`].
#[derive(Debug)]
pub struct MessageView;

/// The representation of the one handle a call lends.
pub(crate) const REP: u32 = 0;

/// What the view shows during one call.
pub(crate) enum View {
    /// Copies, for a fiber call.
    Owned(Box<(Message, RouteContext)>),
    /// The caller's message and context, lent to a direct call by [`lend_during`].
    Lent {
        message: NonNull<Message>,
        context: NonNull<RouteContext>,
    },
}

// SAFETY: `Message` and `RouteContext` are `Sync`, so reading them through shared pointers from
// any thread is sound; and a `Lent` view is only read while `lend_during` holds the borrows it
// was made from (see `View::parts`).
#[allow(unsafe_code)]
unsafe impl Send for View {}

impl View {
    /// An owned copy, for a fiber call.
    pub fn copy(message: &Message, context: &RouteContext) -> View {
        View::Owned(Box::new((message.clone(), context.clone())))
    }

    fn parts(&self) -> (&Message, &RouteContext) {
        match self {
            View::Owned(parts) => (&parts.0, &parts.1),
            // SAFETY: a `Lent` view is only ever in a store's slot while `lend_during` runs
            // (it empties the slot before returning or unwinding), and `lend_during` holds
            // shared borrows of both values for that whole time.
            #[allow(unsafe_code)]
            View::Lent { message, context } => unsafe { (message.as_ref(), context.as_ref()) },
        }
    }
}

/// Runs `call` with `message` and `context` lent to `store`'s view slot, without a copy, and
/// empties the slot when `call` returns or panics.
pub(crate) fn lend_during<R>(
    store: &mut Store<StoreState>,
    message: &Message,
    context: &RouteContext,
    call: impl FnOnce(&mut Store<StoreState>) -> R,
) -> R {
    store.data_mut().view = Some(View::Lent {
        message: NonNull::from(message),
        context: NonNull::from(context),
    });
    let result = catch_unwind(AssertUnwindSafe(|| call(&mut *store)));
    store.data_mut().view = None;
    result.unwrap_or_else(|panic| resume_unwind(panic))
}

/// The borrowed handle a `view-router` call passes to its export.
pub(crate) fn lend() -> Resource<MessageView> {
    Resource::new_borrow(REP)
}

/// The message and context the slot shows, if a call is running.
struct Viewed<'a> {
    message: &'a Message,
    context: &'a RouteContext,
}

impl StoreState {
    fn probe(&mut self, probe: Probe) {
        if let Some(reads) = &mut self.reads {
            reads.probe(probe);
        }
    }

    fn viewed(&self) -> Option<Viewed<'_>> {
        let (message, context) = self.view.as_ref()?.parts();
        Some(Viewed { message, context })
    }
}

impl view::Host for StoreState {}

impl view::HostMessageView for StoreState {
    fn id(&mut self, _: Resource<MessageView>) -> String {
        self.probe(Probe::Id);
        self.viewed()
            .map_or_else(String::new, |v| v.message.id.as_str().to_owned())
    }

    fn header(&mut self, _: Resource<MessageView>, name: String) -> Option<wit::HeaderValue> {
        let value = self
            .viewed()?
            .message
            .headers
            .get(&name)
            .map(marshal::value_to_wit);
        self.probe(Probe::Header(name));
        value
    }

    fn headers(&mut self, _: Resource<MessageView>) -> Vec<(String, wit::HeaderValue)> {
        self.probe(Probe::Headers);
        self.viewed().map_or_else(Vec::new, |v| {
            v.message
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), marshal::value_to_wit(v)))
                .collect()
        })
    }

    fn properties(&mut self, _: Resource<MessageView>) -> wit::Properties {
        self.probe(Probe::Properties);
        match self.viewed() {
            Some(v) => marshal::properties_to_wit(&v.message.properties),
            None => marshal::properties_to_wit(&Default::default()),
        }
    }

    fn body_size(&mut self, _: Resource<MessageView>) -> u64 {
        self.probe(Probe::BodySize);
        self.viewed().map_or(0, |v| v.message.body.len() as u64)
    }

    fn body(&mut self, _: Resource<MessageView>) -> Vec<u8> {
        self.probe(Probe::Body);
        self.viewed()
            .map_or_else(Vec::new, |v| v.message.body.to_vec())
    }

    fn to_message(&mut self, _: Resource<MessageView>) -> wit::Message {
        self.probe(Probe::ToMessage);
        match self.viewed() {
            Some(v) => marshal::message_to_wit(v.message),
            None => marshal::message_to_wit(&Message::new(Vec::new())),
        }
    }

    fn context(&mut self, _: Resource<MessageView>) -> wit::RouteContext {
        self.probe(Probe::Context);
        match self.viewed() {
            Some(v) => marshal::context_to_wit(v.context),
            None => marshal::context_to_wit(&RouteContext::default()),
        }
    }

    /// Only owned handles are dropped, and the host never gives one out.
    fn drop(&mut self, _: Resource<MessageView>) -> wasmtime::Result<()> {
        Ok(())
    }
}
