//! Routes a message by the value of one header.
//!
//! Config (given at deployment):
//! - `header`: the header to look at (default `route`);
//! - `route.<value>`: the queue for messages whose header equals `<value>`;
//! - `default`: the queue for anything else. Without it, unmatched messages are dead-lettered.
//!
//! The header value may be text or any integer (`route.7` matches `x: 7`).
//!
//! Config is read once per instance and cached: a deployment's config never changes (a new
//! config is a new deployment, with new instances), and each `config::get` is a host call.
//!
//! It targets the `batch-router` world: the host passes every message published together in one
//! call, and the router asks for the one header it needs of all of them in one host call
//! (`batch::header-column`), which lists each value once. It decides once per value and answers
//! with the column's own indices, so a batch of a few regions costs a few decisions. Nothing
//! else (body, properties, other headers) is copied into the guest, and the call's fixed cost is
//! paid once per batch. What a call allocates lives in a bump arena that starts over after every
//! call (`arena.rs`).

wit_bindgen::generate!({ world: "batch-router", path: "../../wit" });

mod arena;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use switchyard::plugin::types::{Destination, HeaderValue, Target};
use switchyard::plugin::{batch, config};

struct HeaderRouter;

#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

fn header_text(value: HeaderValue) -> Option<String> {
    Some(match value {
        HeaderValue::Text(s) => s,
        HeaderValue::Int8(v) => v.to_string(),
        HeaderValue::Uint8(v) => v.to_string(),
        HeaderValue::Int16(v) => v.to_string(),
        HeaderValue::Uint16(v) => v.to_string(),
        HeaderValue::Int32(v) => v.to_string(),
        HeaderValue::Uint32(v) => v.to_string(),
        HeaderValue::Int64(v) => v.to_string(),
        HeaderValue::Uint64(v) => v.to_string(),
        HeaderValue::Boolean(v) => v.to_string(),
        _ => return None,
    })
}

struct Settings {
    header: String,
    /// A `BTreeMap`: a router has a few routes, and a few string comparisons beat hashing
    /// (SipHash) in a guest.
    routes: BTreeMap<String, String>,
    default: Option<String>,
}

fn settings() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let all = config::get_all();
        let get = |key: &str| all.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        Settings {
            header: get("header").unwrap_or_else(|| "route".to_string()),
            routes: all
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("route.")?.to_string(), v.clone())))
                .collect(),
            default: get("default"),
        }
    })
}

impl Guest for HeaderRouter {
    fn route_batch(_count: u32) -> Verdicts {
        // Settings live across calls: made before the arena serves anything.
        let settings = settings();
        ALLOCATOR.open();
        // One host call reads the header of every message of the batch, each value once; one
        // answer per value, and each message's answer is its value's.
        let column = batch::header_column(&settings.header);
        Verdicts {
            answers: column
                .values
                .into_iter()
                .map(|value| route(settings, value))
                .collect(),
            of: column.of,
        }
    }
}

/// The verdict for a message whose routing header is `value`.
fn route(settings: &Settings, value: Option<HeaderValue>) -> Result<Verdict, PluginError> {
    let header = &settings.header;
    let value = value.and_then(header_text);
    let queue = value
        .as_ref()
        .and_then(|v| settings.routes.get(v))
        .or(settings.default.as_ref())
        .cloned();
    Ok(match queue {
        Some(queue) => Verdict::Deliver(vec![Destination {
            target: Target::Queue(queue),
            message: None,
            delay_ms: None,
        }]),
        None => Verdict::DeadLetter(match value {
            Some(v) => format!("no route for {header}={v}"),
            None => format!("missing header {header}"),
        }),
    })
}

export!(HeaderRouter);
