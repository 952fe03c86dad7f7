//! `switchyard publish` and `switchyard consume`.

use std::io::Read;

use serde_json::{json, Map, Value};

use super::client::{encode, CliError};
use super::table::render;
use super::{ConsumeArgs, PublishArgs, Target};

/// A header value typed from its text: JSON numbers and booleans keep their type.
fn typed(v: &str) -> Value {
    match serde_json::from_str::<Value>(v) {
        Ok(n @ (Value::Number(_) | Value::Bool(_))) => n,
        _ => Value::String(v.to_owned()),
    }
}

fn read_body(args: &PublishArgs) -> Result<Vec<u8>, CliError> {
    if let Some(b) = &args.body {
        return Ok(b.clone().into_bytes());
    }
    let mut buf = Vec::new();
    match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            return std::fs::read(p).map_err(|e| CliError::File {
                path: p.display().to_string(),
                cause: e.to_string(),
            })
        }
        _ => std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::File {
                path: "stdin".into(),
                cause: e.to_string(),
            })?,
    };
    Ok(buf)
}

pub fn publish(target: &Target, args: &PublishArgs) -> Result<String, CliError> {
    let body = read_body(args)?;
    let mut req = Map::new();
    req.insert("routing_key".into(), json!(args.routing_key));
    match String::from_utf8(body) {
        Ok(text) => req.insert("body".into(), json!(text)),
        Err(e) => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(e.as_bytes());
            req.insert("body_base64".into(), json!(b64))
        }
    };
    if let Some(id) = &args.id {
        req.insert("id".into(), json!(id));
    }
    if !args.headers.is_empty() {
        let h: Map<String, Value> = args
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), typed(v)))
            .collect();
        req.insert("headers".into(), Value::Object(h));
    }
    if !args.properties.is_empty() {
        let p: Map<String, Value> = args
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), typed(v)))
            .collect();
        req.insert("properties".into(), Value::Object(p));
    }
    let exchange = if args.exchange.is_empty() {
        "amq.default".to_owned()
    } else {
        args.exchange.clone()
    };
    let action = if args.dry_run { "dry-run" } else { "publish" };
    let resp = target.client()?.post(
        &format!("/api/exchanges/{}/{action}", encode(&exchange)),
        &Value::Object(req),
    )?;
    if target.json {
        return Ok(format!("{resp:#}\n"));
    }
    if args.dry_run {
        return Ok(decision_text(&resp));
    }
    let queues: Vec<&str> = resp["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out = format!(
        "published {} → {}\n",
        resp["message_id"].as_str().unwrap_or("?"),
        if queues.is_empty() {
            "nowhere (unroutable)".to_owned()
        } else {
            queues.join(", ")
        }
    );
    if let Some(d) = resp["dropped"].as_str() {
        out.push_str(&format!("dropped: {d}\n"));
    }
    Ok(out)
}

/// A routing decision: plugin steps, then outputs.
fn decision_text(d: &Value) -> String {
    let steps: Vec<Vec<String>> = d["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                s["exchange"].as_str().unwrap_or("").to_owned(),
                s["plugin"].as_str().unwrap_or("").to_owned(),
                s["role"].as_str().unwrap_or("").to_owned(),
                s["version"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(12)
                    .collect(),
                s["outcome"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    let outputs: Vec<Vec<String>> = d["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            vec![
                o["queue"].as_str().unwrap_or("").to_owned(),
                o["delay_ms"]
                    .as_u64()
                    .map_or(String::new(), |d| d.to_string()),
                o["reason"].as_str().unwrap_or("").to_owned(),
                o["message"]["body"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    let mut out = String::new();
    if !steps.is_empty() {
        out += &render(
            &["EXCHANGE", "PLUGIN", "ROLE", "VERSION", "OUTCOME"],
            &steps,
        );
        out.push('\n');
    }
    out += &render(&["QUEUE", "DELAY_MS", "REASON", "BODY"], &outputs);
    if let Some(d) = d["dropped"].as_str() {
        out += &format!("dropped: {d}\n");
    }
    out
}

pub fn consume(target: &Target, args: &ConsumeArgs) -> Result<String, CliError> {
    let resp = target.client()?.post(
        &format!("/api/queues/{}/get", encode(&args.queue)),
        &json!({ "count": args.count, "ack": !args.no_ack }),
    )?;
    if target.json {
        return Ok(format!("{resp:#}\n"));
    }
    let rows: Vec<Vec<String>> = resp["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let msg = &m["message"];
            vec![
                m["tag"].to_string(),
                msg["id"].as_str().unwrap_or("").to_owned(),
                m["redelivered"].to_string(),
                msg["body"].as_str().map(str::to_owned).unwrap_or_else(|| {
                    format!(
                        "<{} base64>",
                        msg["body_base64"].as_str().map_or(0, str::len)
                    )
                }),
            ]
        })
        .collect();
    if rows.is_empty() {
        return Ok(format!("queue {} is empty\n", args.queue));
    }
    Ok(render(&["TAG", "ID", "REDELIVERED", "BODY"], &rows))
}
