//! Routes an order by fields of its JSON body.
//!
//! Body: `{"id": "...", "region": "eu", "amount": 1234.5, "customer": {...}, "items": [...]}`.
//!
//! Verdict:
//! - every order goes to `orders.<region>` (the full message);
//! - an order with `amount >= threshold` (config `threshold`, default 1000) also goes to
//!   `orders.large`;
//! - every order also goes to `analytics` as a **slimmed copy**: a body with only `id`, `region`
//!   and `amount`, and header `x-slimmed: true`;
//! - a body that is not JSON, or has no `region`, is dead-lettered with the reason.
//!
//! The threshold is read once per instance (a deployment's config never changes; each
//! `config::get` is a host call).

wit_bindgen::generate!({ world: "router", path: "../../wit" });

use std::sync::OnceLock;

use serde_json::{json, Value};
use switchyard::plugin::config;
use switchyard::plugin::types::{Destination, HeaderValue, Target};

struct JsonRouter;

fn threshold() -> f64 {
    static THRESHOLD: OnceLock<f64> = OnceLock::new();
    *THRESHOLD.get_or_init(|| {
        config::get("threshold")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000.0)
    })
}

fn to_queue(name: String, message: Option<Message>) -> Destination {
    Destination {
        target: Target::Queue(name),
        message,
        delay_ms: None,
    }
}

impl Guest for JsonRouter {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let order: Value = match serde_json::from_slice(&msg.body) {
            Ok(v) => v,
            Err(e) => return Ok(Verdict::DeadLetter(format!("body is not JSON: {e}"))),
        };
        let Some(region) = order.get("region").and_then(Value::as_str) else {
            return Ok(Verdict::DeadLetter("order has no region".to_string()));
        };
        let amount = order.get("amount").and_then(Value::as_f64).unwrap_or(0.0);
        let threshold = threshold();

        let slim_body = json!({ "id": order.get("id"), "region": region, "amount": amount });
        let mut slim = Message {
            id: msg.id.clone(),
            properties: msg.properties.clone(),
            headers: msg.headers.clone(),
            body: serde_json::to_vec(&slim_body).map_err(|e| PluginError {
                message: e.to_string(),
            })?,
        };
        slim.headers
            .push(("x-slimmed".to_string(), HeaderValue::Boolean(true)));

        let mut out = vec![to_queue(format!("orders.{region}"), None)];
        if amount >= threshold {
            out.push(to_queue("orders.large".to_string(), None));
        }
        out.push(to_queue("analytics".to_string(), Some(slim)));
        Ok(Verdict::Deliver(out))
    }
}

export!(JsonRouter);
