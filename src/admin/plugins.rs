//! `/api/plugins`: upload (`PUT` with the component bytes), list, show, rollback, remove,
//! statistics.
//!
//! Deploys compile (tens of ms for Rust, seconds for Python/JS) and so run on a blocking
//! thread; the plugin host serialises them.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::AdminState;
use crate::cluster::ClusterPluginError;
use crate::plugin::{DeployOptions, PluginInfo, PluginKind, StatsSnapshot, LATENCY_BUCKETS};

pub async fn list(State(state): State<AdminState>) -> Json<Vec<PluginInfo>> {
    Json(state.broker().plugins().list())
}

pub async fn show(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<PluginInfo>> {
    Ok(Json(state.broker().plugins().show(&name)?))
}

/// Query parameters of an upload: `kind=router|filter|transform`, `config.<key>=<value>`
/// (repeatable), `timeout_ms`, `max_memory_mib`.
fn deploy_options(query: Vec<(String, String)>) -> ApiResult<DeployOptions> {
    let mut opts = DeployOptions::default();
    let mut limits = None;
    let mut config = BTreeMap::new();
    for (k, v) in query {
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("{k}={v}: expected a whole number")))
        };
        if let Some(key) = k.strip_prefix("config.") {
            config.insert(key.to_owned(), v);
            continue;
        }
        match k.as_str() {
            "kind" => {
                opts.kind = Some(v.parse::<PluginKind>().map_err(|_| {
                    ApiError::bad_request(format!("kind={v}: expected router, filter or transform"))
                })?)
            }
            "timeout_ms" => {
                let l = limits.get_or_insert_with(crate::plugin::PluginLimits::default);
                l.timeout = Duration::from_millis(number(&v)?);
            }
            "max_memory_mib" => {
                let l = limits.get_or_insert_with(crate::plugin::PluginLimits::default);
                l.max_memory_bytes = (number(&v)? as usize) << 20;
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {k:?}: use kind, config.<key>, timeout_ms, max_memory_mib"
                )))
            }
        }
    }
    opts.config = config;
    opts.limits = limits;
    Ok(opts)
}

/// Deploy the request body as the new current version of `name`. 201 with the version; a
/// component that does not compile or fit its world is 422 and the old version keeps serving.
pub async fn deploy(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body: send the component's bytes (curl --data-binary @plugin.wasm)",
        ));
    }
    let opts = deploy_options(query)?;
    let host = state.broker().plugins().clone();
    let info = match state.cluster() {
        // Loaded here first (what does not load is refused, 422), then every node's.
        Some(cluster) => {
            cluster
                .plugins
                .deploy(&host, &name, body.to_vec(), opts)
                .await
                .map_err(cluster_error)?;
            let show = host.show(&name)?;
            serde_json::to_value(show.current).unwrap_or_default()
        }
        None => {
            let plugin = name.clone();
            let info =
                tokio::task::spawn_blocking(move || host.deploy(&plugin, &body, opts)).await??;
            serde_json::to_value(info).unwrap_or_default()
        }
    };
    let kind = state.broker().plugins().current(&name).map(|(k, _)| k);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "plugin": name, "kind": kind, "version": info })),
    ))
}

pub async fn rollback(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(cluster) = state.cluster() {
        let head = cluster
            .plugins
            .rollback(&name)
            .await
            .map_err(cluster_error)?;
        return Ok(Json(
            json!({ "plugin": name, "version": { "version": head.version } }),
        ));
    }
    let host = state.broker().plugins().clone();
    let plugin = name.clone();
    let info = tokio::task::spawn_blocking(move || host.rollback(&plugin)).await??;
    Ok(Json(json!({ "plugin": name, "version": info })))
}

pub async fn remove(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if let Some(cluster) = state.cluster() {
        cluster
            .plugins
            .remove(&name)
            .await
            .map_err(|e| cluster_error(e.into()))?;
        return Ok(Json(json!({ "removed": name })));
    }
    let host = state.broker().plugins().clone();
    let plugin = name.clone();
    tokio::task::spawn_blocking(move || host.remove(&plugin)).await??;
    Ok(Json(json!({ "removed": name })))
}

/// A cluster registry failure as an HTTP answer.
fn cluster_error(e: ClusterPluginError) -> ApiError {
    let status = match e {
        ClusterPluginError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ClusterPluginError::Unknown(_) => StatusCode::NOT_FOUND,
        ClusterPluginError::NoPrevious(_) => StatusCode::CONFLICT,
        ClusterPluginError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ClusterPluginError::JetStream(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    ApiError::new(status, e.to_string())
}

/// The upper bound, in microseconds, of the bucket holding quantile `q` of the calls.
pub fn percentile_us(buckets: &[u64; LATENCY_BUCKETS], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(1u64 << i);
        }
    }
    Some(1u64 << (LATENCY_BUCKETS - 1))
}

pub fn stats_json(s: &StatsSnapshot) -> Value {
    let b = &s.latency_buckets;
    json!({
        "calls": s.calls,
        "ok": s.ok,
        "errors": s.plugin_errors,
        "traps": s.traps,
        "timeouts": s.timeouts,
        "memory_limits": s.memory_limits,
        "output_rejected": s.output_rejected,
        "instantiations": s.instantiations,
        "lane_calls": s.lane_calls,
        "mean_us": s.total_ns.checked_div(s.calls).map(|ns| ns / 1000),
        "p50_us_at_most": percentile_us(b, 0.50),
        "p90_us_at_most": percentile_us(b, 0.90),
        "p99_us_at_most": percentile_us(b, 0.99),
        "latency_buckets": b,
    })
}

/// The plugin host's counters (all versions since the broker started: calls, errors, traps,
/// timeouts, latency) and, per version, what the broker saw it answer in committed publishes.
pub async fn stats(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let broker = state.broker();
    let info = broker.plugins().show(&name)?;
    let versions: serde_json::Map<String, Value> = broker
        .plugin_verdicts(&name)
        .into_iter()
        .map(|(version, v)| {
            let b = &v.latency_buckets;
            let entry = json!({
                "calls": v.calls,
                "verdicts": v.verdicts,
                "p50_us_at_most": percentile_us(b, 0.50),
                "p90_us_at_most": percentile_us(b, 0.90),
                "p99_us_at_most": percentile_us(b, 0.99),
                "latency_buckets": b,
            });
            (version, entry)
        })
        .collect();
    Ok(Json(json!({
        "plugin": name,
        "kind": info.kind,
        "current_version": info.current.version,
        "direct_calls": info.direct_calls,
        "penalized": info.penalized,
        "verdict_cache": info.verdict_cache,
        "calls": stats_json(&info.stats),
        "versions": versions,
        "last_load_error": info.last_load_error,
    })))
}
