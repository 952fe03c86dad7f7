//! Routes a message by the value of one header.
//!
//! Config (given at deployment):
//! - `header`: the header to look at (default `route`);
//! - `route.<value>`: the queue for messages whose header equals `<value>`;
//! - `default`: the queue for anything else. Without it, unmatched messages are dead-lettered.
//!
//! The header value may be text or any integer (`route.7` matches `x: 7`).

wit_bindgen::generate!({ world: "router", path: "../../wit" });

use switchyard::plugin::config;
use switchyard::plugin::types::{Destination, HeaderValue, Target};

struct HeaderRouter;

fn header_text(value: &HeaderValue) -> Option<String> {
    Some(match value {
        HeaderValue::Text(s) => s.clone(),
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

impl Guest for HeaderRouter {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let header = config::get("header").unwrap_or_else(|| "route".to_string());
        let value = msg
            .headers
            .iter()
            .find(|(name, _)| *name == header)
            .and_then(|(_, v)| header_text(v));
        let queue = match &value {
            Some(v) => config::get(&format!("route.{v}")).or_else(|| config::get("default")),
            None => config::get("default"),
        };
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
}

export!(HeaderRouter);
