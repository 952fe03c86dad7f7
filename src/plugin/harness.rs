//! The offline harness behind `switchyard plugin test`: runs JSON-lines messages through a
//! plugin, with the same limits as the broker, and writes one JSON verdict per line.
//!
//! # Input format (one JSON object per line; blank lines and lines starting with `#` skipped)
//!
//! ```json
//! {"id": "m1",
//!  "headers": {"region": "eu", "attempt": 3, "vip": true, "ratio": 0.5, "none": null},
//!  "properties": {"content_type": "application/json", "priority": 5, "persistent": true},
//!  "context": {"exchange": "orders", "routing_key": "eu", "delivery_count": 0, "source": "cli"},
//!  "body": "text body"}
//! ```
//!
//! - Body: `"body"` (UTF-8 text), `"body_base64"` (bytes), or `"json"` (any JSON value,
//!   serialized compactly as the body). At most one; none means an empty body.
//! - `id`: optional; a time-ordered id is generated when absent.
//! - Header values: strings, integers (→ 64-bit signed, or unsigned above `i64::MAX`), floats,
//!   booleans, `null` (void), arrays and objects (nested AMQP arrays and tables).
//! - `properties`: the fields of [`crate::message::Properties`], all optional.
//! - `context`: the [`RouteContext`] fields, all optional.
//!
//! # Output format
//!
//! `{"line": 1, "id": "m1", "verdict": {...}}` or `{"line": 1, "id": "m1", "error": {"kind":
//! "timeout", "message": "..."}}` where the verdict is one of
//! `{"type": "deliver", "destinations": [{"queue": "q"} | {"exchange": "x", "routing_key": "k"},
//! plus optional "delay_ms" and "message"]}`, `{"type": "drop"}`,
//! `{"type": "dead_letter", "reason": "..."}`, `{"type": "filter", "keep": true}` or
//! `{"type": "transform", "message": {...}}`. Messages are written in the input format (body as
//! text when it is UTF-8, else `body_base64`), so an output message can be fed back in.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{
    DeployOptions, HostConfig, PluginError, PluginHost, PluginKind, PluginLimits, RouteContext,
    RouteVerdict, Target,
};
use crate::message::{FieldValue, Headers, Lineage, Message, MessageId, Properties};

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct InputProperties {
    content_type: Option<String>,
    content_encoding: Option<String>,
    persistent: bool,
    priority: Option<u8>,
    correlation_id: Option<String>,
    reply_to: Option<String>,
    expiration_ms: Option<u64>,
    timestamp: Option<u64>,
    kind: Option<String>,
    user_id: Option<String>,
    app_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct InputLine {
    id: Option<String>,
    headers: Map<String, Value>,
    properties: InputProperties,
    context: RouteContext,
    body: Option<String>,
    body_base64: Option<String>,
    json: Option<Value>,
}

/// A JSON value as a header value (integers as `I64`/`U64`, objects as tables).
pub fn json_to_field(v: Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => FieldValue::I64(i),
            (None, Some(u)) => FieldValue::U64(u),
            _ => FieldValue::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => FieldValue::String(s),
        Value::Array(a) => FieldValue::Array(a.into_iter().map(json_to_field).collect()),
        Value::Object(o) => {
            FieldValue::Table(o.into_iter().map(|(k, v)| (k, json_to_field(v))).collect())
        }
    }
}

/// A header value as JSON (the inverse of [`json_to_field`] up to integer widths).
pub fn field_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Void => Value::Null,
        FieldValue::Bool(b) => json!(b),
        FieldValue::F32(x) => json!(x),
        FieldValue::F64(x) => json!(x),
        FieldValue::U64(x) => json!(x),
        FieldValue::Decimal { scale, value } => {
            json!({"decimal": {"scale": scale, "value": value}})
        }
        FieldValue::String(s) => json!(s),
        FieldValue::Bytes(b) => {
            json!({"base64": base64::engine::general_purpose::STANDARD.encode(b)})
        }
        FieldValue::Timestamp(t) => json!(t),
        FieldValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), field_to_json(v)))
                .collect(),
        ),
        FieldValue::Array(a) => Value::Array(a.iter().map(field_to_json).collect()),
        other => json!(other.as_i64()),
    }
}

/// Parses one input line into a message and its routing context.
pub fn parse_line(line: &str) -> Result<(Message, RouteContext), String> {
    let input: InputLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let bodies = [
        input.body.is_some(),
        input.body_base64.is_some(),
        input.json.is_some(),
    ];
    if bodies.iter().filter(|b| **b).count() > 1 {
        return Err("give at most one of body, body_base64, json".into());
    }
    let body = if let Some(text) = input.body {
        Bytes::from(text)
    } else if let Some(b64) = input.body_base64 {
        Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("body_base64: {e}"))?,
        )
    } else if let Some(json) = input.json {
        Bytes::from(serde_json::to_vec(&json).map_err(|e| e.to_string())?)
    } else {
        Bytes::new()
    };
    let p = input.properties;
    let message = Message {
        id: input
            .id
            .filter(|s| !s.is_empty())
            .map_or_else(MessageId::generate, MessageId::from),
        properties: Properties {
            content_type: p.content_type,
            content_encoding: p.content_encoding,
            persistent: p.persistent,
            priority: p.priority,
            correlation_id: p.correlation_id,
            reply_to: p.reply_to,
            expiration_ms: p.expiration_ms,
            timestamp: p.timestamp,
            kind: p.kind,
            user_id: p.user_id,
            app_id: p.app_id,
        },
        headers: input
            .headers
            .into_iter()
            .map(|(k, v)| (k, json_to_field(v)))
            .collect::<Headers>(),
        body,
        lineage: Lineage::default(),
    };
    Ok((message, input.context))
}

/// A message in the input format.
pub fn message_to_json(m: &Message) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(m.id.as_str()));
    if m.has_headers() {
        out.insert(
            "headers".into(),
            Value::Object(
                m.shown_headers()
                    .map(|(k, v)| (k.to_owned(), field_to_json(&v)))
                    .collect(),
            ),
        );
    }
    if m.properties != Properties::default() {
        let p = &m.properties;
        let props = json!({
            "content_type": p.content_type, "content_encoding": p.content_encoding,
            "persistent": p.persistent, "priority": p.priority,
            "correlation_id": p.correlation_id, "reply_to": p.reply_to,
            "expiration_ms": p.expiration_ms, "timestamp": p.timestamp, "kind": p.kind,
            "user_id": p.user_id, "app_id": p.app_id,
        });
        let props: Map<String, Value> = props
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.insert("properties".into(), Value::Object(props));
    }
    match std::str::from_utf8(&m.body) {
        Ok(text) => out.insert("body".into(), json!(text)),
        Err(_) => out.insert(
            "body_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(&m.body)),
        ),
    };
    Value::Object(out)
}

/// A router verdict as JSON (see the module docs).
pub fn verdict_to_json(v: &RouteVerdict) -> Value {
    match v {
        RouteVerdict::Drop => json!({"type": "drop"}),
        RouteVerdict::DeadLetter { reason } => json!({"type": "dead_letter", "reason": reason}),
        RouteVerdict::Deliver(list) => {
            let destinations: Vec<Value> = list
                .iter()
                .map(|d| {
                    let mut o = match &d.target {
                        Target::Queue(q) => json!({"queue": q}),
                        Target::Exchange { name, routing_key } => {
                            json!({"exchange": name, "routing_key": routing_key})
                        }
                    };
                    if let Some(delay) = d.delay_ms {
                        o["delay_ms"] = json!(delay);
                    }
                    if let Some(m) = &d.message {
                        o["message"] = message_to_json(m);
                    }
                    o
                })
                .collect();
            json!({"type": "deliver", "destinations": destinations})
        }
    }
}

/// What one harness run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub messages: u64,
    pub errors: u64,
}

/// Runs every line of `input` through the deployed plugin `name` and writes a result per line.
/// A line that does not parse yields an `{"error": {"kind": "input", ...}}` line. Calls run on a
/// private single-threaded runtime, so call this from synchronous code.
pub fn run(
    host: &PluginHost,
    name: &str,
    input: impl BufRead,
    mut out: impl Write,
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    let kind = host.current(name).map(|(k, _)| k);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        summary.messages += 1;
        let mut record = Map::new();
        record.insert("line".into(), json!(index + 1));
        let result = match parse_line(trimmed) {
            Err(e) => Err(json!({"kind": "input", "message": e})),
            Ok((msg, ctx)) => {
                record.insert("id".into(), json!(msg.id.as_str()));
                let verdict: Result<Value, PluginError> = runtime.block_on(async {
                    match kind {
                        Some(PluginKind::Filter) => host
                            .filter(name, &msg, &ctx)
                            .await
                            .map(|keep| json!({"type": "filter", "keep": keep})),
                        Some(PluginKind::Transform) => host
                            .transform(name, &msg, &ctx)
                            .await
                            .map(|m| json!({"type": "transform", "message": message_to_json(&m)})),
                        _ => host
                            .route(name, &msg, &ctx)
                            .await
                            .map(|v| verdict_to_json(&v)),
                    }
                });
                verdict.map_err(|e| json!({"kind": e.kind(), "message": e.to_string()}))
            }
        };
        match result {
            Ok(v) => record.insert("verdict".into(), v),
            Err(e) => {
                summary.errors += 1;
                record.insert("error".into(), e)
            }
        };
        writeln!(out, "{}", Value::Object(record))?;
    }
    Ok(summary)
}

/// Options of `switchyard plugin test`.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    pub config: BTreeMap<String, String>,
    pub kind: Option<PluginKind>,
    pub limits: Option<PluginLimits>,
}

/// Loads `wasm` into an in-memory host (no data directory) and runs `input` through it.
pub fn run_file(
    wasm: &Path,
    input: impl BufRead,
    out: impl Write,
    opts: TestOptions,
) -> anyhow::Result<Summary> {
    let host = PluginHost::in_memory(HostConfig {
        max_instances: 16,
        ..HostConfig::default()
    })?;
    let name = "test";
    host.deploy_file(
        name,
        wasm,
        DeployOptions {
            kind: opts.kind,
            config: opts.config,
            limits: opts.limits,
        },
    )?;
    Ok(run(&host, name, input, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines_parse_and_messages_print_back_in_the_same_format() {
        let line = r#"{"id":"m1","headers":{"a":"x","n":-3,"big":18446744073709551615,"f":0.5,"t":true,"z":null,"o":{"k":[1]}},
            "properties":{"content_type":"text/plain","priority":3,"persistent":true},
            "context":{"exchange":"ex","routing_key":"rk","delivery_count":2,"source":"cli"},"body":"hello"}"#
            .replace('\n', "");
        let (msg, ctx) = parse_line(&line).unwrap();
        assert_eq!(msg.id.as_str(), "m1");
        assert_eq!(msg.headers["n"], FieldValue::I64(-3));
        assert_eq!(msg.headers["big"], FieldValue::U64(u64::MAX));
        assert_eq!(msg.headers["z"], FieldValue::Void);
        assert!(matches!(msg.headers["o"], FieldValue::Table(_)));
        assert_eq!(msg.properties.priority, Some(3));
        assert_eq!(ctx.delivery_count, 2);
        assert_eq!(&msg.body[..], b"hello");
        let printed = message_to_json(&msg).to_string();
        let (again, _) = parse_line(&printed).unwrap();
        assert_eq!(again, msg);

        let (b64, _) = parse_line(r#"{"body_base64":"/wE="}"#).unwrap();
        assert_eq!(&b64.body[..], &[0xff, 1]);
        assert_eq!(message_to_json(&b64)["body_base64"], "/wE=");
        let (json_body, _) = parse_line(r#"{"json":{"a":1}}"#).unwrap();
        assert_eq!(&json_body.body[..], br#"{"a":1}"#);
        assert!(parse_line(r#"{"body":"a","json":1}"#).is_err());
        assert!(
            parse_line(r#"{"bogus":1}"#).is_err(),
            "unknown fields are refused"
        );
    }
}
