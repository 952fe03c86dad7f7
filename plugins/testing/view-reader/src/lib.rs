//! Test plugin for the `view-router` world: reads the message through every `message-view`
//! method and reports what it saw, so a test can compare it with what the host holds.
//!
//! - header `mode` = `copy`: delivers to queue `copy` a replacement built from `to-message`,
//!   with header `x-viewed` added;
//! - otherwise: dead-letters with a JSON object of everything read.
wit_bindgen::generate!({ world: "view-router", path: "../../../wit" });

use serde_json::json;
use switchyard::plugin::types::{Destination, HeaderValue, Target};

struct ViewReader;

fn text(value: Option<HeaderValue>) -> serde_json::Value {
    match value {
        Some(HeaderValue::Text(s)) => json!(s),
        Some(HeaderValue::Int32(n)) => json!(n),
        Some(other) => json!(format!("{other:?}")),
        None => serde_json::Value::Null,
    }
}

impl Guest for ViewReader {
    fn route(msg: &MessageView) -> Result<Verdict, PluginError> {
        if matches!(msg.header("mode"), Some(HeaderValue::Text(m)) if m == "copy") {
            let mut copy = msg.to_message();
            copy.headers
                .push(("x-viewed".to_string(), HeaderValue::Text("yes".to_string())));
            return Ok(Verdict::Deliver(vec![Destination {
                target: Target::Queue("copy".to_string()),
                message: Some(copy),
                delay_ms: None,
            }]));
        }
        let properties = msg.properties();
        let context = msg.context();
        let whole = msg.to_message();
        let body = msg.body();
        let seen = json!({
            "id": msg.id(),
            "region": text(msg.header("region")),
            "absent": text(msg.header("no-such-header")),
            "header_names": msg.headers().into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "content_type": properties.content_type,
            "correlation_id": properties.correlation_id,
            "body_size": msg.body_size(),
            "body": String::from_utf8_lossy(&body),
            "exchange": context.exchange,
            "routing_key": context.routing_key,
            "delivery_count": context.delivery_count,
            "source": context.source,
            "whole_matches": whole.body == body && whole.id == msg.id(),
        });
        Ok(Verdict::DeadLetter(seen.to_string()))
    }
}

export!(ViewReader);
