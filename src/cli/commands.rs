//! `switchyard queue | exchange | plugin | dlq | definitions`: topology and operations.

use std::io::Write;

use serde_json::{json, Value};

use super::client::{encode, CliError};
use super::table::render;
use super::{DefinitionsCommand, DlqCommand, ExchangeCommand, PluginRemoteCommand};
use super::{QueueCommand, Target};

fn s(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

fn rows(v: &Value, cols: &[&str]) -> Vec<Vec<String>> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|item| cols.iter().map(|c| s(&item[*c])).collect())
        .collect()
}

fn pretty(v: &Value) -> String {
    format!("{v:#}\n")
}

pub fn queue(target: &Target, cmd: &QueueCommand) -> Result<String, CliError> {
    let c = target.client()?;
    let resp = match cmd {
        QueueCommand::List => {
            let v = c.get("/api/queues")?;
            if target.json {
                return Ok(pretty(&v));
            }
            let cols = [
                "name",
                "messages",
                "ready",
                "unacked",
                "dead_lettered",
                "publish_rate",
                "deliver_rate",
                "oldest_message_age_ms",
                "consumers",
            ];
            let headers = [
                "QUEUE",
                "MESSAGES",
                "READY",
                "UNACKED",
                "DEAD-LETTERED",
                "PUB/S",
                "DELIVER/S",
                "OLDEST_MS",
                "CONSUMERS",
            ];
            return Ok(render(&headers, &rows(&v, &cols)));
        }
        QueueCommand::Show { name } => c.get(&format!("/api/queues/{}", encode(name)))?,
        QueueCommand::Declare {
            name,
            dead_letter,
            max_deliveries,
            retry_delays_ms,
            message_ttl_ms,
            max_length,
            overflow,
        } => c.put(
            &format!("/api/queues/{}", encode(name)),
            &json!({
                "dead_letter": dead_letter, "max_deliveries": max_deliveries,
                "retry_delays_ms": retry_delays_ms, "message_ttl_ms": message_ttl_ms,
                "max_length": max_length, "overflow": overflow,
            }),
        )?,
        QueueCommand::Delete { name } => c.delete(&format!("/api/queues/{}", encode(name)))?,
        QueueCommand::Purge { name } => {
            c.post(&format!("/api/queues/{}/purge", encode(name)), &json!({}))?
        }
        QueueCommand::Ack { name, tags } => c.post(
            &format!("/api/queues/{}/ack", encode(name)),
            &json!({ "tags": tags }),
        )?,
        QueueCommand::Nack {
            name,
            tags,
            no_requeue,
        } => c.post(
            &format!("/api/queues/{}/nack", encode(name)),
            &json!({ "tags": tags, "requeue": !no_requeue }),
        )?,
    };
    Ok(pretty(&resp))
}

pub fn exchange(target: &Target, cmd: &ExchangeCommand) -> Result<String, CliError> {
    let c = target.client()?;
    let resp = match cmd {
        ExchangeCommand::List => {
            let v = c.get("/api/exchanges")?;
            if target.json {
                return Ok(pretty(&v));
            }
            let cols = [
                "name",
                "type",
                "plugin",
                "failure_policy",
                "alternate_exchange",
            ];
            let headers = ["EXCHANGE", "TYPE", "PLUGIN", "ON FAILURE", "ALTERNATE"];
            return Ok(render(&headers, &rows(&v, &cols)));
        }
        ExchangeCommand::Bindings => {
            let v = c.get("/api/bindings")?;
            if target.json {
                return Ok(pretty(&v));
            }
            let cols = [
                "source",
                "destination",
                "destination_type",
                "routing_key",
                "filter",
            ];
            let headers = ["SOURCE", "DESTINATION", "KIND", "ROUTING KEY", "FILTER"];
            return Ok(render(&headers, &rows(&v, &cols)));
        }
        ExchangeCommand::Show { name } => c.get(&format!("/api/exchanges/{}", encode(name)))?,
        ExchangeCommand::Declare {
            name,
            kind,
            plugin,
            pipeline,
            failure_policy,
            alternate_exchange,
        } => c.put(
            &format!("/api/exchanges/{}", encode(name)),
            &json!({
                "type": kind, "plugin": plugin, "pipeline": pipeline,
                "failure_policy": failure_policy, "alternate_exchange": alternate_exchange,
            }),
        )?,
        ExchangeCommand::Delete { name, if_unused } => c.delete(&format!(
            "/api/exchanges/{}?if_unused={if_unused}",
            encode(name)
        ))?,
        ExchangeCommand::Bind {
            source,
            destination,
            key,
            to_exchange,
            filter,
        } => c.post(
            "/api/bindings",
            &json!({
                "source": source, "destination": destination, "routing_key": key,
                "destination_type": if *to_exchange { "exchange" } else { "queue" },
                "filter": filter,
            }),
        )?,
        ExchangeCommand::Unbind {
            source,
            destination,
            key,
            to_exchange,
        } => c.post(
            "/api/bindings/unbind",
            &json!({
                "source": source, "destination": destination, "routing_key": key,
                "destination_type": if *to_exchange { "exchange" } else { "queue" },
            }),
        )?,
    };
    Ok(pretty(&resp))
}

pub fn plugin(target: &Target, cmd: &PluginRemoteCommand) -> Result<String, CliError> {
    let c = target.client()?;
    let resp = match cmd {
        PluginRemoteCommand::List => {
            let v = c.get("/api/plugins")?;
            if target.json {
                return Ok(pretty(&v));
            }
            let rows: Vec<Vec<String>> = v
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    vec![
                        s(&p["name"]),
                        s(&p["kind"]),
                        s(&p["current"]["version"]).chars().take(12).collect(),
                        p["history"].as_array().map_or(0, Vec::len).to_string(),
                        s(&p["stats"]["calls"]),
                        s(&p["stats"]["plugin_errors"]),
                        s(&p["stats"]["traps"]),
                        s(&p["stats"]["timeouts"]),
                        s(&p["verdict_cache"]["hits"]),
                        s(&p["last_load_error"]),
                    ]
                })
                .collect();
            let headers = [
                "PLUGIN",
                "KIND",
                "VERSION",
                "VERSIONS",
                "CALLS",
                "ERRORS",
                "TRAPS",
                "TIMEOUTS",
                "CACHE HITS",
                "LOAD ERROR",
            ];
            return Ok(render(&headers, &rows));
        }
        PluginRemoteCommand::Deploy {
            name,
            file,
            config,
            kind,
        } => {
            let bytes = std::fs::read(file).map_err(|e| CliError::File {
                path: file.display().to_string(),
                cause: e.to_string(),
            })?;
            let mut query: Vec<String> = config
                .iter()
                .map(|(k, v)| format!("config.{}={}", encode(k), encode(v)))
                .collect();
            if let Some(k) = kind {
                query.push(format!("kind={}", encode(k)));
            }
            let mut err = std::io::stderr();
            let _ = write!(
                err,
                "uploading {} ({:.1} KiB) and compiling…",
                file.display(),
                bytes.len() as f64 / 1024.0
            );
            let _ = err.flush();
            let result = c.put_bytes(
                &format!("/api/plugins/{}?{}", encode(name), query.join("&")),
                &bytes,
            );
            let _ = writeln!(err, " {}", if result.is_ok() { "done" } else { "failed" });
            let v = result?;
            if target.json {
                return Ok(pretty(&v));
            }
            return Ok(format!(
                "plugin {name} ({}) now at version {}\n",
                s(&v["kind"]),
                s(&v["version"]["version"])
            ));
        }
        PluginRemoteCommand::Versions { name } => {
            let v = c.get(&format!("/api/plugins/{}", encode(name)))?;
            if target.json {
                return Ok(pretty(&v["history"]));
            }
            let cols = ["version", "size_bytes", "deployed_at_ms", "config"];
            let headers = ["VERSION", "BYTES", "DEPLOYED_AT_MS", "CONFIG"];
            return Ok(render(&headers, &rows(&v["history"], &cols)));
        }
        PluginRemoteCommand::Rollback { name } => c.post(
            &format!("/api/plugins/{}/rollback", encode(name)),
            &json!({}),
        )?,
        PluginRemoteCommand::Remove { name } => {
            c.delete(&format!("/api/plugins/{}", encode(name)))?
        }
        PluginRemoteCommand::Stats { name } => {
            c.get(&format!("/api/plugins/{}/stats", encode(name)))?
        }
    };
    Ok(pretty(&resp))
}

/// Redrive in batches so a long redrive shows progress and can be interrupted between batches.
const REDRIVE_BATCH: usize = 500;

pub fn dlq(target: &Target, cmd: &DlqCommand) -> Result<String, CliError> {
    let c = target.client()?;
    match cmd {
        DlqCommand::List { queue, limit } => {
            let mut path = format!("/api/dead-letters?limit={limit}");
            if let Some(q) = queue {
                path += &format!("&queue={}", encode(q));
            }
            let v = c.get(&path)?;
            if target.json {
                return Ok(pretty(&v));
            }
            let cols = ["id", "reason", "exchange", "routing_key", "source_queue"];
            let headers = ["ID", "REASON", "EXCHANGE", "ROUTING KEY", "SOURCE QUEUE"];
            let mut out = format!("{}: {} dead letters\n", s(&v["queue"]), s(&v["total"]));
            out += &render(&headers, &rows(&v["messages"], &cols));
            Ok(out)
        }
        DlqCommand::Redrive { queue, limit } => {
            let mut total = 0usize;
            let mut last = Value::Null;
            let mut err = std::io::stderr();
            loop {
                let batch = limit.map_or(REDRIVE_BATCH, |l| (l - total).min(REDRIVE_BATCH));
                if batch == 0 {
                    break;
                }
                let v = c.post(
                    "/api/dead-letters/redrive",
                    &json!({ "queue": queue, "limit": batch }),
                )?;
                let n = v["redriven"].as_u64().unwrap_or(0) as usize;
                total += n;
                let _ = write!(err, "\rredriven {total}, {} left", s(&v["remaining"]));
                let _ = err.flush();
                last = v;
                if n < batch {
                    break;
                }
            }
            let _ = writeln!(err);
            if target.json {
                return Ok(pretty(&json!({ "redriven": total, "last_batch": last })));
            }
            Ok(format!(
                "redriven {total} messages from {}; {} left\n",
                s(&last["queue"]),
                s(&last["remaining"])
            ))
        }
    }
}

pub fn definitions(target: &Target, cmd: &DefinitionsCommand) -> Result<String, CliError> {
    let c = target.client()?;
    match cmd {
        DefinitionsCommand::Export { output } => {
            let v = c.get("/api/definitions")?;
            let text = pretty(&v);
            match output {
                Some(path) => {
                    std::fs::write(path, &text).map_err(|e| CliError::File {
                        path: path.display().to_string(),
                        cause: e.to_string(),
                    })?;
                    Ok(format!("definitions written to {}\n", path.display()))
                }
                None => Ok(text),
            }
        }
        DefinitionsCommand::Import { file } => {
            let text = std::fs::read_to_string(file).map_err(|e| CliError::File {
                path: file.display().to_string(),
                cause: e.to_string(),
            })?;
            let v: Value = serde_json::from_str(&text).map_err(|e| CliError::File {
                path: file.display().to_string(),
                cause: e.to_string(),
            })?;
            Ok(pretty(&c.post("/api/definitions", &v)?))
        }
    }
}
