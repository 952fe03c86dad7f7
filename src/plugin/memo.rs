//! The verdict cache of a deterministic `view-router` version: its verdicts, remembered by what
//! the guest read to reach them.
//!
//! Why: a router call costs a microsecond or two of guest, wasmtime and marshalling work, while
//! most routers decide on one or two fields whose values repeat (a region header, a message
//! type). A version whose deployment config sets [`DIRECTIVE`] to `on` vouches that its verdict
//! is a function of what it reads through the `message-view` and its config alone: no state kept
//! from call to call, no clock, no randomness. Its verdicts can then be looked up instead of
//! computed.
//!
//! How: during a call the view records each *probe* the guest makes (`header("region")`,
//! `properties()`, ...), in order. A deterministic guest's first probe is always the same, and
//! each later one depends only on the answers before it, so the traces of all its calls form a
//! tree: an inner node holds the probe the guest makes there, its children are keyed by that
//! probe's answer, and a leaf holds the verdict. A lookup walks the tree, answering each probe
//! from the message on the host side, and calls no guest code.
//!
//! Invariants:
//! - only a call that returned a verdict and was not *tainted* is remembered. A call is tainted
//!   when it logged (a side effect a hit would skip) or read a clock (its verdict may depend on
//!   the time). WASI randomness is not tracked; the spot checks below catch a guest that uses it;
//! - a trace that read the message id or the whole message (`to-message`) is never remembered:
//!   ids are unique, so it could never be hit;
//! - an answer is compared through one canonical encoding, [`answer`], used both when a trace is
//!   remembered and when the tree is walked, so the two cannot disagree on what an answer was;
//! - the tree holds at most [`MAX_VERDICTS`] verdicts, no trace of more than [`MAX_PROBES`]
//!   probes or [`MAX_TRACE_BYTES`] of header names and answers, and no verdict with a replacement message or over
//!   [`MAX_VERDICT_BYTES`] of names (so a full tree is a few MiB at worst, outside the guest's
//!   memory cap); when full it still answers, and remembers nothing new. A full tree
//!   that has missed more than it hit turns off: the plugin reads something that rarely repeats
//!   (a trace id, a timestamp), and every lookup would be wasted work;
//! - every [`CHECK_EVERY`]-th hit is computed by the plugin anyway and compared with the tree. A
//!   trace that contradicts it (another verdict for the same answers, or other probes) proves the
//!   plugin is not deterministic: the cache turns off for this version for good, empties, and
//!   says why (a warning, and `PluginInfo::verdict_cache`);
//! - a cache belongs to one loaded version: a hot swap or a rollback starts with an empty one.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use super::types::{Destination, RouteContext, RouteVerdict, Target};
use crate::message::Message;

/// The config key that turns the cache on for a version (value `on`). The `switchyard.` prefix
/// is the host's: the plugin may read it like any other key, and should not use the prefix.
pub const DIRECTIVE: &str = "switchyard.verdict-cache";

/// Verdicts one version's tree holds at most.
pub(crate) const MAX_VERDICTS: usize = 4096;
/// Bytes of probes and answers one remembered trace may hold (a body read past it is not
/// remembered).
pub(crate) const MAX_TRACE_BYTES: usize = 1024;
/// Probes one remembered trace may hold: each is a node, with a map, in the tree.
pub(crate) const MAX_PROBES: usize = 16;
/// Bytes of names, keys and reasons one remembered verdict may hold.
pub(crate) const MAX_VERDICT_BYTES: usize = 1024;
/// One hit in this many is checked against a real call.
pub(crate) const CHECK_EVERY: u64 = 1024;

/// One read a `view-router` guest made through its `message-view`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    Id,
    Header(String),
    Headers,
    Properties,
    BodySize,
    Body,
    ToMessage,
    Context,
}

/// What one call read, and whether anything else it did rules out remembering it.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    pub probes: Vec<Probe>,
    pub tainted: bool,
}

impl Reads {
    /// Records a probe. A trace that outgrows what could be remembered stops growing and is
    /// tainted instead, so a guest probing in a loop costs the host no memory.
    pub fn probe(&mut self, probe: Probe) {
        let too_long = matches!(&probe, Probe::Header(name) if name.len() > MAX_TRACE_BYTES);
        if self.tainted || too_long || self.probes.len() >= MAX_PROBES {
            self.tainted = true;
            return;
        }
        self.probes.push(probe);
    }
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The verdict the plugin gave for these answers.
    Hit(RouteVerdict),
    /// Not known (or a hit picked for a spot check): call the plugin and [`VerdictCache::remember`].
    Miss,
}

/// What the admin API reports about a version's cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerdictCacheInfo {
    pub verdicts: usize,
    /// Lookups that found a verdict. A hit picked for a spot check counts here and, since the
    /// plugin is called for it, in `misses` too.
    pub hits: u64,
    /// Lookups answered by a plugin call.
    pub misses: u64,
    /// Why the cache turned itself off, if it did.
    pub off: Option<String>,
}

enum Node {
    Ask {
        probe: Probe,
        next: HashMap<Box<[u8]>, Node>,
    },
    Verdict(RouteVerdict),
}

#[derive(Default)]
struct Tree {
    root: Option<Node>,
    verdicts: usize,
}

thread_local! {
    /// The answer being looked up: one buffer per thread, so a lookup allocates nothing.
    static ANSWER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A version's remembered verdicts. Shared by every call of the version.
#[derive(Default)]
pub(crate) struct VerdictCache {
    tree: RwLock<Tree>,
    off: AtomicBool,
    why_off: Mutex<Option<String>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache")
            .field("info", &self.info())
            .finish_non_exhaustive()
    }
}

/// The trace contradicts the tree: the plugin is not deterministic.
struct Contradiction(&'static str);

impl VerdictCache {
    /// A cache for a version with this deployment config, if the config asks for one.
    pub fn for_config(config: &std::collections::BTreeMap<String, String>) -> Option<Self> {
        (config.get(DIRECTIVE).map(String::as_str) == Some("on")).then(Self::default)
    }

    /// Whether calls should record their reads for [`remember`](Self::remember).
    pub fn on(&self) -> bool {
        !self.off.load(Relaxed)
    }

    pub fn lookup(&self, msg: &Message, ctx: &RouteContext) -> Lookup {
        if !self.on() {
            return Lookup::Miss;
        }
        let tree = self.tree.read();
        let found = ANSWER.with_borrow_mut(|buf| {
            let mut node = tree.root.as_ref()?;
            loop {
                match node {
                    Node::Verdict(verdict) => return Some(verdict),
                    Node::Ask { probe, next } => {
                        if !answer(probe, msg, ctx, buf) {
                            return None;
                        }
                        node = next.get(&buf[..])?;
                    }
                }
            }
        });
        if let Some(verdict) = found {
            let n = self.hits.fetch_add(1, Relaxed) + 1;
            if !n.is_multiple_of(CHECK_EVERY) {
                return Lookup::Hit(verdict.clone());
            }
        }
        self.misses.fetch_add(1, Relaxed);
        Lookup::Miss
    }

    /// Remembers the verdict a call gave after reading `reads`, unless the call cannot be
    /// remembered (see the module invariants). Turns the cache off if the trace contradicts it.
    pub fn remember(
        &self,
        plugin: &str,
        reads: &Reads,
        msg: &Message,
        ctx: &RouteContext,
        verdict: &RouteVerdict,
    ) {
        if !self.on() || reads.tainted || !small(verdict) {
            return;
        }
        let unique = |p: &Probe| matches!(p, Probe::Id | Probe::ToMessage);
        if reads.probes.len() > MAX_PROBES || reads.probes.iter().any(unique) {
            return;
        }
        // Full, the tree learns nothing more, but a trace still walks it to be checked; and
        // lookups that mostly miss are not worth paying for.
        let full = self.tree.read().verdicts >= MAX_VERDICTS;
        if full && self.hits.load(Relaxed) < self.misses.load(Relaxed) {
            let why = "full, with fewer hits than misses: what it reads rarely repeats";
            self.turn_off(plugin, why.into());
            return;
        }
        let mut answers = Vec::with_capacity(reads.probes.len());
        let (mut bytes, mut buf) = (0, Vec::new());
        for probe in &reads.probes {
            if !answer(probe, msg, ctx, &mut buf) {
                return;
            }
            let name = match probe {
                Probe::Header(name) => name.len(),
                _ => 0,
            };
            bytes += name + buf.len();
            if bytes > MAX_TRACE_BYTES {
                return;
            }
            answers.push(Box::from(&buf[..]));
        }
        let mut tree = self.tree.write();
        let full = tree.verdicts >= MAX_VERDICTS;
        let added = match &mut tree.root {
            None => {
                tree.root = Some(chain(&reads.probes, answers, verdict));
                Ok(true)
            }
            Some(root) => insert(root, &reads.probes, answers, verdict, full),
        };
        match added {
            Ok(added) => tree.verdicts += usize::from(added),
            Err(Contradiction(why)) => {
                drop(tree);
                self.turn_off(plugin, format!("not deterministic: {why}"));
            }
        }
    }

    /// Empties the cache and turns it off for good.
    fn turn_off(&self, plugin: &str, why: String) {
        *self.tree.write() = Tree::default();
        self.off.store(true, Relaxed);
        tracing::warn!(plugin, why, "verdict cache turned off");
        *self.why_off.lock() = Some(why);
    }

    pub fn info(&self) -> VerdictCacheInfo {
        VerdictCacheInfo {
            verdicts: self.tree.read().verdicts,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            off: self.why_off.lock().clone(),
        }
    }
}

/// Adds one trace below `node`. `Ok(true)`: a new verdict; `Ok(false)`: known already, or not
/// added because the tree is `full`.
fn insert(
    mut node: &mut Node,
    probes: &[Probe],
    answers: Vec<Box<[u8]>>,
    verdict: &RouteVerdict,
    full: bool,
) -> Result<bool, Contradiction> {
    let mut answers = answers.into_iter();
    for (i, probe) in probes.iter().enumerate() {
        let Node::Ask { probe: asked, next } = node else {
            return Err(Contradiction("it read more after the same answers"));
        };
        if asked != probe {
            return Err(Contradiction(
                "it read something else after the same answers",
            ));
        }
        let answer = answers.next().expect("one answer per probe");
        match next.entry(answer) {
            Entry::Occupied(e) => node = e.into_mut(),
            Entry::Vacant(_) if full => return Ok(false),
            Entry::Vacant(e) => {
                e.insert(chain(&probes[i + 1..], answers.collect(), verdict));
                return Ok(true);
            }
        }
    }
    match node {
        Node::Verdict(known) if known == verdict => Ok(false),
        Node::Verdict(_) => Err(Contradiction(
            "it gave another verdict for the same answers",
        )),
        Node::Ask { .. } => Err(Contradiction("it read less for the same answers")),
    }
}

/// Whether a verdict is small enough to keep: no replacement message (a copy per entry), and at
/// most [`MAX_VERDICT_BYTES`] of strings, so that a full tree stays a few MiB at worst.
fn small(verdict: &RouteVerdict) -> bool {
    let bytes = match verdict {
        RouteVerdict::Drop => 0,
        RouteVerdict::DeadLetter { reason } => reason.len(),
        RouteVerdict::Deliver(destinations) => {
            if destinations.iter().any(|d| d.message.is_some()) {
                return false;
            }
            let target = |d: &Destination| match &d.target {
                Target::Queue(q) => q.len(),
                Target::Exchange { name, routing_key } => name.len() + routing_key.len(),
            };
            destinations.iter().map(target).sum()
        }
    };
    bytes <= MAX_VERDICT_BYTES
}

/// A path of fresh nodes: `probes[i]` answered `answers[i]`, then `verdict`.
fn chain(probes: &[Probe], answers: Vec<Box<[u8]>>, verdict: &RouteVerdict) -> Node {
    let mut node = Node::Verdict(verdict.clone());
    for (probe, answer) in probes.iter().zip(answers).rev() {
        let next = HashMap::from([(answer, node)]);
        node = Node::Ask {
            probe: probe.clone(),
            next,
        };
    }
    node
}

/// Writes the canonical encoding of `probe`'s answer for this message into `out`. `false`: no
/// answer that could be remembered (an id, the whole message, or a body over the trace limit).
fn answer(probe: &Probe, msg: &Message, ctx: &RouteContext, out: &mut Vec<u8>) -> bool {
    out.clear();
    let encoded = match probe {
        Probe::Header(name) => rmp_serde::encode::write(out, &msg.header(name)),
        Probe::Headers => rmp_serde::encode::write(out, &msg.headers_shown()),
        Probe::Properties => rmp_serde::encode::write(out, &msg.properties),
        Probe::BodySize => rmp_serde::encode::write(out, &(msg.body.len() as u64)),
        Probe::Body if msg.body.len() <= MAX_TRACE_BYTES => {
            out.extend_from_slice(&msg.body);
            Ok(())
        }
        Probe::Context => rmp_serde::encode::write(
            out,
            &(
                &ctx.exchange,
                &ctx.routing_key,
                ctx.delivery_count,
                &ctx.source,
            ),
        ),
        Probe::Body | Probe::Id | Probe::ToMessage => return false,
    };
    encoded.is_ok()
}

#[cfg(test)]
mod tests;
