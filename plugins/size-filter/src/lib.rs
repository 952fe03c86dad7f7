//! Keeps messages whose body is at most `max-bytes` (config, default 65536) and, when
//! `required` is set (comma-separated field names), whose body is a JSON object that has every
//! required field. Everything else is dropped.
//!
//! A `required` value that is set but empty is a configuration error: the plugin reports it
//! rather than silently keeping everything.

wit_bindgen::generate!({ world: "filter", path: "../../wit" });

use switchyard::plugin::config;
use switchyard::plugin::log::{log, Level};

struct SizeFilter;

impl Guest for SizeFilter {
    fn filter(msg: Message, _ctx: RouteContext) -> Result<bool, PluginError> {
        let max: usize = config::get("max-bytes")
            .and_then(|s| s.parse().ok())
            .unwrap_or(65536);
        if msg.body.len() > max {
            log(
                Level::Debug,
                &format!("dropping {}: {} bytes > {max}", msg.id, msg.body.len()),
            );
            return Ok(false);
        }
        let Some(required) = config::get("required") else {
            return Ok(true);
        };
        let fields: Vec<&str> = required
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if fields.is_empty() {
            return Err(PluginError {
                message: "config `required` is empty".to_string(),
            });
        }
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&msg.body) else {
            return Ok(false);
        };
        Ok(fields.iter().all(|f| map.contains_key(*f)))
    }
}

export!(SizeFilter);
