//! The host side of `message-view`: the message a `view-router` plugin reads field by field.
//!
//! Why it exists: a record-world call copies every string and list of the message into guest
//! memory (one `cabi_realloc` call into the guest each) whether the plugin reads them or not,
//! which is most of a small router's call cost. A view copies only what the guest asks for.
//!
//! Invariants:
//! - a store holds at most one view, set by the worker just before a `view-router` call and
//!   taken out right after it, whatever the call's outcome;
//! - the guest only ever holds the view as a `borrow` lent for that call (the canonical ABI
//!   ends the borrow at return), so no method can run while the slot is empty. The methods
//!   still answer with empty values rather than panic if one did;
//! - every handle has the same representation, [`REP`]: the store has one slot, not a table.

use wasmtime::component::Resource;

use super::bindings::{view_router::switchyard::plugin::view, wit, StoreState};
use super::marshal;
use super::types::RouteContext;
use crate::message::Message;

/// The Rust type behind `message-view` handles. Carries nothing: the message is in
/// [`StoreState::view`].
#[derive(Debug)]
pub struct MessageView;

/// The representation of the one handle a call lends.
pub(crate) const REP: u32 = 0;

/// What the view shows during one call.
pub(crate) struct View {
    pub message: Message,
    pub context: RouteContext,
}

impl View {
    pub fn of(message: &Message, context: &RouteContext) -> View {
        View {
            message: message.clone(),
            context: context.clone(),
        }
    }
}

/// The borrowed handle a `view-router` call passes to its export.
pub(crate) fn lend() -> Resource<MessageView> {
    Resource::new_borrow(REP)
}

impl StoreState {
    fn viewed(&self) -> Option<&View> {
        self.view.as_ref()
    }
}

impl view::Host for StoreState {}

impl view::HostMessageView for StoreState {
    fn id(&mut self, _: Resource<MessageView>) -> String {
        self.viewed()
            .map_or_else(String::new, |v| v.message.id.as_str().to_owned())
    }

    fn header(&mut self, _: Resource<MessageView>, name: String) -> Option<wit::HeaderValue> {
        let value = self.viewed()?.message.headers.get(&name)?;
        Some(marshal::value_to_wit(value))
    }

    fn headers(&mut self, _: Resource<MessageView>) -> Vec<(String, wit::HeaderValue)> {
        self.viewed().map_or_else(Vec::new, |v| {
            v.message
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), marshal::value_to_wit(v)))
                .collect()
        })
    }

    fn properties(&mut self, _: Resource<MessageView>) -> wit::Properties {
        let default = crate::message::Properties::default();
        let properties = self.viewed().map_or(&default, |v| &v.message.properties);
        marshal::properties_to_wit(properties)
    }

    fn body_size(&mut self, _: Resource<MessageView>) -> u64 {
        self.viewed().map_or(0, |v| v.message.body.len() as u64)
    }

    fn body(&mut self, _: Resource<MessageView>) -> Vec<u8> {
        self.viewed()
            .map_or_else(Vec::new, |v| v.message.body.to_vec())
    }

    fn to_message(&mut self, _: Resource<MessageView>) -> wit::Message {
        match self.viewed() {
            Some(v) => marshal::message_to_wit(&v.message),
            None => marshal::message_to_wit(&Message::new(Vec::new())),
        }
    }

    fn context(&mut self, _: Resource<MessageView>) -> wit::RouteContext {
        let default = RouteContext::default();
        marshal::context_to_wit(self.viewed().map_or(&default, |v| &v.context))
    }

    /// Only owned handles are dropped, and the host never gives one out.
    fn drop(&mut self, _: Resource<MessageView>) -> wasmtime::Result<()> {
        Ok(())
    }
}
