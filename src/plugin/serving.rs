//! [`Serving`]: one plugin's serving version, held across a routing step.
//!
//! Why a handle and not calls by name: a hot swap may land between two lookups by name, so a
//! caller that looked the version up for its circuit breaker, then called, then looked it up
//! again to stamp lineage could name a version that did not answer. Everything done through one
//! `Serving` is done by one version. It is also one map lookup per step instead of three.

use std::sync::Arc;

use super::instance::LoadedPlugin;
use super::types::{Logged, PluginKind, PluginLog, RouteContext, RouteVerdict};
use super::view::Routed;
use super::PluginError;
use crate::message::Message;

/// A plugin version as it was serving when the handle was taken. Cheap to clone. Calls made
/// through it keep running on this version after a swap, like any call in flight.
#[derive(Clone)]
pub struct Serving(pub(super) Arc<LoadedPlugin>);

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Serving").field(&self.0).finish()
    }
}

impl Serving {
    pub fn name(&self) -> &Arc<str> {
        &self.0.identity.name
    }

    /// The content hash of this version.
    pub fn version(&self) -> &Arc<str> {
        &self.0.identity.version
    }

    /// `name@version`: this version's entry in a message's lineage header. Made once per
    /// version, not per message.
    pub fn lineage(&self) -> &Arc<str> {
        &self.0.identity.lineage
    }

    pub fn kind(&self) -> PluginKind {
        self.0.kind
    }

    /// Runs this version as a router; with `capture`, returns what it logged too.
    pub async fn route(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        capture: bool,
    ) -> Logged<RouteVerdict> {
        let mut logs = Vec::new();
        let result = self.0.route(msg, ctx, lines(capture, &mut logs)).await;
        Logged { result, logs }
    }

    /// Routes `items` in one call when this version is a `batch-router` on its fast path: one
    /// verdict per item, in order. `None` otherwise, or when the batch call did not complete
    /// (it escaped its direct budget, trapped, answered the wrong count): route the items one
    /// by one with [`route`](Self::route) then, which isolates a message that fails the plugin.
    /// Never captures logs (a dry run routes one message).
    pub fn route_batch(
        &self,
        items: &[Routed<'_>],
    ) -> Option<Vec<Result<RouteVerdict, PluginError>>> {
        self.0.route_batch(items)
    }

    /// Whether [`route_batch`](Self::route_batch) would try a batch call now: callers gather a
    /// batch only for a version that takes one.
    pub fn batches(&self) -> bool {
        self.0.batches()
    }

    /// Runs this version as a filter (`true` keeps the message).
    pub async fn filter(&self, msg: &Message, ctx: &RouteContext, capture: bool) -> Logged<bool> {
        let mut logs = Vec::new();
        let result = self.0.filter(msg, ctx, lines(capture, &mut logs)).await;
        Logged { result, logs }
    }

    /// Runs this version as a transform.
    pub async fn transform(
        &self,
        msg: &Message,
        ctx: &RouteContext,
        capture: bool,
    ) -> Logged<Message> {
        let mut logs = Vec::new();
        let result = self.0.transform(msg, ctx, lines(capture, &mut logs)).await;
        Logged { result, logs }
    }
}

fn lines(capture: bool, logs: &mut Vec<PluginLog>) -> Option<&mut Vec<PluginLog>> {
    capture.then_some(logs)
}

impl super::PluginHost {
    /// The serving version of `name`.
    pub fn serving(&self, name: &str) -> Result<Serving, PluginError> {
        self.live(name).map(Serving)
    }
}
