//! A routing decision: what one publish turns into, before anything is written.
//!
//! The same value serves the real publish (which commits its outputs in one storage batch) and
//! the dry run (which returns it untouched), so a dry run shows exactly what a publish would do.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Outcome;
use crate::message::Message;
use crate::plugin::PluginLog;

/// One copy of the message bound for one queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    pub queue: String,
    #[serde(serialize_with = "message_summary")]
    pub message: Message,
    pub delay_ms: Option<u64>,
    /// Set when this output is a dead-lettering or quarantining rather than a normal route.
    pub reason: Option<String>,
}

/// One plugin call made while routing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Shared with the topology's exchange, not copied: a step is recorded on every routed
    /// publish.
    pub exchange: Arc<str>,
    pub plugin: Arc<str>,
    /// The plugin version (content hash) that answered; empty when the call did not happen.
    /// Shared with the plugin host, not copied: a step is recorded on every routed publish.
    pub version: Arc<str>,
    /// `filter`, `transform`, `router` or `binding-filter`.
    pub role: &'static str,
    /// What the plugin decided, or the error.
    pub outcome: Outcome,
    #[serde(serialize_with = "micros")]
    pub elapsed: Duration,
    /// What the plugin logged during this call; captured in dry runs only (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<PluginLog>,
}

/// The full decision for one publish.
///
/// Invariants: `rejected` is set only when nothing may be stored (a `reject` failure policy);
/// `returned` only when `outputs` is empty and the publisher asked for mandatory routing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Decision {
    pub steps: Vec<Step>,
    pub outputs: Vec<Output>,
    /// Why the message was dropped on purpose, when it was (a filter, a router's `drop`).
    pub dropped: Option<String>,
    /// Routed nowhere and the publisher asked for `mandatory`: the message goes back to it.
    pub returned: bool,
    /// Routed nowhere, whatever the publisher asked (counted as unroutable).
    pub unroutable: bool,
    /// The publish must be refused (negative acknowledgement) for this reason.
    pub rejected: Option<String>,
    #[serde(serialize_with = "micros")]
    pub elapsed: Duration,
}

impl Decision {
    /// Queues that get a copy, in output order (with repeats when a plugin sent two copies).
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|o| o.queue.as_str())
    }
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

fn message_summary<S: serde::Serializer>(m: &Message, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Message", 4)?;
    st.serialize_field("id", m.id.as_str())?;
    let names: Vec<_> = m.shown_headers().map(|(name, _)| name).collect();
    st.serialize_field("headers", &names)?;
    st.serialize_field("body_len", &m.body.len())?;
    st.serialize_field("body", &String::from_utf8_lossy(&m.body))?;
    st.end()
}
