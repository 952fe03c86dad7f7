//! Redacts PII fields from JSON bodies.
//!
//! Config: `fields`, a comma-separated list of field names (default `email,phone,ssn,name`),
//! matched at any depth; `mask` (default `[REDACTED]`). Non-JSON bodies pass unchanged. A body
//! that was changed gets header `x-redacted` with the number of fields replaced.

wit_bindgen::generate!({ world: "transform", path: "../../wit" });

use serde_json::Value;
use switchyard::plugin::config;
use switchyard::plugin::types::HeaderValue;

struct RedactPii;

fn redact(value: &mut Value, fields: &[String], mask: &str) -> u32 {
    let mut count = 0;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if fields.iter().any(|f| f == key) {
                    *v = Value::String(mask.to_string());
                    count += 1;
                } else {
                    count += redact(v, fields, mask);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                count += redact(v, fields, mask);
            }
        }
        _ => {}
    }
    count
}

impl Guest for RedactPii {
    fn transform(mut msg: Message, _ctx: RouteContext) -> Result<Message, PluginError> {
        let fields: Vec<String> = config::get("fields")
            .unwrap_or_else(|| "email,phone,ssn,name".to_string())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let mask = config::get("mask").unwrap_or_else(|| "[REDACTED]".to_string());
        let Ok(mut body) = serde_json::from_slice::<Value>(&msg.body) else {
            return Ok(msg);
        };
        let count = redact(&mut body, &fields, &mask);
        if count > 0 {
            msg.body = serde_json::to_vec(&body).map_err(|e| PluginError {
                message: e.to_string(),
            })?;
            msg.headers.retain(|(k, _)| k != "x-redacted");
            msg.headers
                .push(("x-redacted".to_string(), HeaderValue::Uint32(count)));
        }
        Ok(msg)
    }
}

export!(RedactPii);
