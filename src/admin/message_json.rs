//! Messages in JSON, in the same format as `switchyard plugin test` input lines: `id`,
//! `headers`, `properties`, and one of `body` (text), `body_base64` or `json`.

use serde_json::Value;

use super::error::ApiError;
use crate::message::Message;
use crate::plugin::harness;

pub use harness::message_to_json;

/// A message from a request body's message fields; `extra` names fields of the request that
/// are not part of the message (removed before parsing).
pub fn message_from_json(mut body: Value, extra: &[&str]) -> Result<Message, ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "expected a JSON object with the message fields (body, headers, properties...)",
        ));
    };
    for key in extra {
        obj.remove(*key);
    }
    harness::parse_line(&body.to_string())
        .map(|(m, _)| m)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "{e}; message fields: id, headers, properties, body | body_base64 | json"
            ))
        })
}
