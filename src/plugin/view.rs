//! The host side of `message-view` and of `batch`: the messages a `view-router` or
//! `batch-router` plugin reads field by field.
//!
//! Why it exists: a record-world call copies every string and list of the message into guest
//! memory (one `cabi_realloc` call into the guest each) whether the plugin reads them or not,
//! which is most of a small router's call cost. A view copies only what the guest asks for.
//!
//! Invariants:
//! - a store holds at most one view, set by the worker just before a `view-router` or
//!   `batch-router` call and taken out right after it, whatever the call's outcome. A view shows
//!   one message per index: a `view-router` call reads index 0 through its one handle, a
//!   `batch-router` call reads indices `0..count` through `batch`'s functions;
//! - a direct call's view is the callers' messages themselves, *lent* (no copy: a copy of a
//!   message with a few headers was half of the call). Only [`lend_during`] makes a lent view,
//!   and it empties the slot before it returns or unwinds, so the pointers never outlive the
//!   borrows they were made from. A fiber call can be suspended, moved to another thread or
//!   dropped half-way, so it gets an owned copy instead;
//! - the guest only ever holds a `message-view` as a `borrow` lent for that call (the canonical
//!   ABI ends the borrow at return), so no method can run while the slot is empty. The methods
//!   still answer with empty values rather than panic if one did; `batch`'s functions, which
//!   take an index the guest chose, trap on an index the view does not have;
//! - every handle has the same representation, [`REP`]: the store has one slot, not a table.

use std::borrow::Cow;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use wasmtime::component::Resource;
use wasmtime::Store;

use super::bindings::{
    batch_router::switchyard::plugin::batch, view_router::switchyard::plugin::view, wit, StoreState,
};
use super::marshal;
use super::memo::Probe;
use super::types::RouteContext;
use crate::message::{FieldValue, Message};

/// The Rust type behind `message-view` handles. Carries nothing: the message is in
/// [`StoreState::view`].
#[derive(Debug)]
pub struct MessageView;

/// The representation of the one handle a call lends.
pub(crate) const REP: u32 = 0;

/// A message to route and where it is: what a view shows at one index.
pub type Routed<'a> = (&'a Message, &'a RouteContext);

/// What the view shows during one call.
pub(crate) enum View {
    /// A copy of one message, for a fiber call.
    Owned(Box<(Message, RouteContext)>),
    /// The callers' messages and contexts, lent to a direct call by [`lend_during`]. The
    /// lifetimes are erased: see [`View::get`].
    Lent(NonNull<[Routed<'static>]>),
}

// SAFETY: `Message` and `RouteContext` are `Sync`, so reading them through shared pointers from
// any thread is sound; and a `Lent` view is only read while `lend_during` holds the borrows it
// was made from (see `View::get`).
#[allow(unsafe_code)]
unsafe impl Send for View {}

impl View {
    /// An owned copy, for a fiber call.
    pub fn copy(message: &Message, context: &RouteContext) -> View {
        View::Owned(Box::new((message.clone(), context.clone())))
    }

    /// How many messages the view shows.
    fn len(&self) -> usize {
        match self {
            View::Owned(_) => 1,
            // SAFETY: as in `get`.
            #[allow(unsafe_code)]
            View::Lent(items) => unsafe { items.as_ref() }.len(),
        }
    }

    /// The message at `index`, if the view has one there.
    fn get(&self, index: u32) -> Option<Routed<'_>> {
        match self {
            View::Owned(parts) => (index == 0).then_some((&parts.0, &parts.1)),
            // SAFETY: a `Lent` view is only ever in a store's slot while `lend_during` runs
            // (it empties the slot before returning or unwinding), and `lend_during` holds a
            // shared borrow of the slice, and the slice of its elements, for that whole time.
            // The returned references live no longer than `&self`, so no longer than that.
            #[allow(unsafe_code)]
            View::Lent(items) => unsafe { items.as_ref() }.get(index as usize).copied(),
        }
    }
}

/// Runs `call` with `items` lent to `store`'s view slot, without a copy, and empties the slot
/// when `call` returns or panics.
pub(crate) fn lend_during<R>(
    store: &mut Store<StoreState>,
    items: &[Routed<'_>],
    call: impl FnOnce(&mut Store<StoreState>) -> R,
) -> R {
    // Only the lifetimes change (which clippy does not see); `View::get` gives them back,
    // bounded by the slot's borrow.
    #[allow(clippy::unnecessary_cast)]
    let erased = items as *const [Routed<'_>] as *const [Routed<'static>];
    let erased = NonNull::new(erased.cast_mut()).expect("a reference is never null");
    store.data_mut().view = Some(View::Lent(erased));
    let result = catch_unwind(AssertUnwindSafe(|| call(&mut *store)));
    store.data_mut().view = None;
    result.unwrap_or_else(|panic| resume_unwind(panic))
}

/// The borrowed handle a `view-router` call passes to its export.
pub(crate) fn lend() -> Resource<MessageView> {
    Resource::new_borrow(REP)
}

impl StoreState {
    fn probe(&mut self, probe: Probe) {
        if let Some(reads) = &mut self.reads {
            reads.probe(probe);
        }
    }

    fn viewed(&self, index: u32) -> Option<Routed<'_>> {
        self.view.as_ref()?.get(index)
    }

    fn read_id(&mut self, index: u32) -> Option<String> {
        self.probe(Probe::Id);
        Some(self.viewed(index)?.0.id.as_str().to_owned())
    }

    fn read_header(&mut self, index: u32, name: String) -> Option<Option<wit::HeaderValue>> {
        let value = self
            .viewed(index)?
            .0
            .header(&name)
            .map(|v| marshal::value_to_wit(&v));
        self.probe(Probe::Header(name));
        Some(value)
    }

    fn read_header_column(&mut self, name: String) -> batch::Column {
        let mut column = batch::Column {
            values: Vec::new(),
            of: Vec::new(),
        };
        if let Some(view) = &self.view {
            let mut seen: Vec<Option<Cow<'_, FieldValue>>> = Vec::new();
            column.of.reserve(view.len());
            for i in 0..view.len() as u32 {
                let (message, _) = view.get(i).expect("an index below the view's length");
                column
                    .of
                    .push(value_index(&mut seen, message.header(&name)));
            }
            column.values = seen
                .into_iter()
                .map(|v| v.map(|v| marshal::value_to_wit(&v)))
                .collect();
        }
        self.probe(Probe::Header(name));
        column
    }

    fn read_headers(&mut self, index: u32) -> Option<Vec<(String, wit::HeaderValue)>> {
        self.probe(Probe::Headers);
        let (message, _) = self.viewed(index)?;
        Some(
            message
                .shown_headers()
                .map(|(k, v)| (k.to_owned(), marshal::value_to_wit(&v)))
                .collect(),
        )
    }

    fn read_properties(&mut self, index: u32) -> Option<wit::Properties> {
        self.probe(Probe::Properties);
        Some(marshal::properties_to_wit(
            &self.viewed(index)?.0.properties,
        ))
    }

    fn read_body_size(&mut self, index: u32) -> Option<u64> {
        self.probe(Probe::BodySize);
        Some(self.viewed(index)?.0.body.len() as u64)
    }

    fn read_body(&mut self, index: u32) -> Option<Vec<u8>> {
        self.probe(Probe::Body);
        Some(self.viewed(index)?.0.body.to_vec())
    }

    fn read_message(&mut self, index: u32) -> Option<wit::Message> {
        self.probe(Probe::ToMessage);
        Some(marshal::message_to_wit(self.viewed(index)?.0))
    }

    fn read_context(&mut self, index: u32) -> Option<wit::RouteContext> {
        self.probe(Probe::Context);
        Some(marshal::context_to_wit(self.viewed(index)?.1))
    }
}

impl view::Host for StoreState {}

impl view::HostMessageView for StoreState {
    fn id(&mut self, _: Resource<MessageView>) -> String {
        self.read_id(0).unwrap_or_default()
    }

    fn header(&mut self, _: Resource<MessageView>, name: String) -> Option<wit::HeaderValue> {
        self.read_header(0, name).flatten()
    }

    fn headers(&mut self, _: Resource<MessageView>) -> Vec<(String, wit::HeaderValue)> {
        self.read_headers(0).unwrap_or_default()
    }

    fn properties(&mut self, _: Resource<MessageView>) -> wit::Properties {
        self.read_properties(0)
            .unwrap_or_else(|| marshal::properties_to_wit(&Default::default()))
    }

    fn body_size(&mut self, _: Resource<MessageView>) -> u64 {
        self.read_body_size(0).unwrap_or(0)
    }

    fn body(&mut self, _: Resource<MessageView>) -> Vec<u8> {
        self.read_body(0).unwrap_or_default()
    }

    fn to_message(&mut self, _: Resource<MessageView>) -> wit::Message {
        self.read_message(0)
            .unwrap_or_else(|| marshal::message_to_wit(&Message::new(Vec::new())))
    }

    fn context(&mut self, _: Resource<MessageView>) -> wit::RouteContext {
        self.read_context(0)
            .unwrap_or_else(|| marshal::context_to_wit(&RouteContext::default()))
    }

    /// Only owned handles are dropped, and the host never gives one out.
    fn drop(&mut self, _: Resource<MessageView>) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// Distinct values a column looks back through before it lists a value again: a batch's header
/// usually takes a few values, and a batch of many distinct ones should not cost a quadratic
/// scan.
const DISTINCT: usize = 32;

/// The index of `value` in a column's `seen` values, added at the end if it is not among the
/// last [`DISTINCT`] of them.
fn value_index<'a>(
    seen: &mut Vec<Option<Cow<'a, FieldValue>>>,
    value: Option<Cow<'a, FieldValue>>,
) -> u32 {
    let from = seen.len().saturating_sub(DISTINCT);
    let found = seen[from..].iter().position(|v| *v == value);
    let index = match found {
        Some(i) => from + i,
        None => {
            seen.push(value);
            seen.len() - 1
        }
    };
    u32::try_from(index).expect("a batch holds fewer than 2^32 messages")
}

/// `batch`'s functions trap on an index the call's view does not have: the guest chose it, so it
/// is the guest's bug, and an empty answer would route the message on made-up data.
fn at<T>(index: u32, value: Option<T>) -> wasmtime::Result<T> {
    value.ok_or_else(|| wasmtime::format_err!("batch: no message at index {index} in this call"))
}

impl batch::Host for StoreState {
    fn id(&mut self, index: u32) -> wasmtime::Result<String> {
        at(index, self.read_id(index))
    }

    fn header(&mut self, index: u32, name: String) -> wasmtime::Result<Option<wit::HeaderValue>> {
        at(index, self.read_header(index, name))
    }

    fn header_column(&mut self, name: String) -> wasmtime::Result<batch::Column> {
        Ok(self.read_header_column(name))
    }

    fn headers(&mut self, index: u32) -> wasmtime::Result<Vec<(String, wit::HeaderValue)>> {
        at(index, self.read_headers(index))
    }

    fn properties_of(&mut self, index: u32) -> wasmtime::Result<wit::Properties> {
        at(index, self.read_properties(index))
    }

    fn body_size(&mut self, index: u32) -> wasmtime::Result<u64> {
        at(index, self.read_body_size(index))
    }

    fn body(&mut self, index: u32) -> wasmtime::Result<Vec<u8>> {
        at(index, self.read_body(index))
    }

    fn message_of(&mut self, index: u32) -> wasmtime::Result<wit::Message> {
        at(index, self.read_message(index))
    }

    fn context_of(&mut self, index: u32) -> wasmtime::Result<wit::RouteContext> {
        at(index, self.read_context(index))
    }
}
