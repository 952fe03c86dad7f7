//! `/metrics`: Prometheus text exposition format (version 0.0.4).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::queues::view;
use super::AdminState;
use crate::plugin::LATENCY_BUCKETS;

/// Escape a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", l.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

pub async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let broker = state.broker();
    let mut out = Out(String::new());

    let queues: Vec<_> = broker
        .queues()
        .list()
        .iter()
        .filter_map(|n| view(&state, n).ok())
        .collect();
    type Field = fn(&super::queues::QueueView) -> f64;
    let per_queue: [(&str, &str, &str, Field); 7] = [
        (
            "switchyard_queue_messages",
            "gauge",
            "Stored messages (ready, delayed, unacked).",
            |q| q.messages as f64,
        ),
        (
            "switchyard_queue_messages_unacked",
            "gauge",
            "Delivered, not yet settled.",
            |q| q.unacked as f64,
        ),
        (
            "switchyard_queue_consumers",
            "gauge",
            "Consumers of the queue.",
            |q| q.consumers as f64,
        ),
        (
            "switchyard_queue_published_total",
            "counter",
            "Messages stored into the queue since start.",
            |q| q.published_total as f64,
        ),
        (
            "switchyard_queue_delivered_total",
            "counter",
            "Deliveries since start.",
            |q| q.delivered_total as f64,
        ),
        (
            "switchyard_queue_dead_lettered_total",
            "counter",
            "Messages the queue dead-lettered since start.",
            |q| q.dead_lettered as f64,
        ),
        (
            "switchyard_queue_oldest_message_age_seconds",
            "gauge",
            "Age of the oldest stored message (0 when empty).",
            |q| q.oldest_message_age_ms.unwrap_or(0) as f64 / 1000.0,
        ),
    ];
    for (name, kind, help, f) in per_queue {
        out.family(name, kind, help);
        for q in &queues {
            out.sample(name, &[("queue", q.name.as_str())], f(q));
        }
    }

    let topology = broker.topology();
    out.family(
        "switchyard_exchanges",
        "gauge",
        "Declared exchanges, by type.",
    );
    let mut by_type = std::collections::BTreeMap::<&str, u64>::new();
    for x in topology.exchanges() {
        *by_type.entry(x.kind.type_name()).or_default() += 1;
    }
    for (t, n) in by_type {
        out.sample("switchyard_exchanges", &[("type", t)], n);
    }
    out.family("switchyard_bindings", "gauge", "Bindings.");
    out.sample("switchyard_bindings", &[], topology.bindings().count());

    let c = broker.counters();
    out.family(
        "switchyard_publishes_total",
        "counter",
        "Publishes routed, by outcome.",
    );
    for (outcome, v) in [
        ("all", &c.published),
        ("unroutable", &c.unroutable),
        ("returned", &c.returned),
        ("dropped", &c.dropped),
        ("rejected", &c.rejected),
    ] {
        out.sample(
            "switchyard_publishes_total",
            &[("outcome", outcome)],
            v.load(Ordering::Relaxed),
        );
    }

    let plugins = broker.plugins().list();
    out.family(
        "switchyard_plugin_calls_total",
        "counter",
        "Plugin calls, by result.",
    );
    for p in &plugins {
        let s = &p.stats;
        for (result, v) in [
            ("ok", s.ok),
            ("error", s.plugin_errors),
            ("trap", s.traps),
            ("timeout", s.timeouts),
            ("memory_limit", s.memory_limits),
            ("output_rejected", s.output_rejected),
        ] {
            out.sample(
                "switchyard_plugin_calls_total",
                &[("plugin", p.name.as_str()), ("result", result)],
                v,
            );
        }
    }
    out.family(
        "switchyard_plugin_call_duration_seconds",
        "histogram",
        "Plugin call latency.",
    );
    for p in &plugins {
        let s = &p.stats;
        let mut cumulative = 0u64;
        for (i, n) in s
            .latency_buckets
            .iter()
            .enumerate()
            .take(LATENCY_BUCKETS - 1)
        {
            cumulative += n;
            let le = format!("{}", (1u64 << i) as f64 / 1e6);
            out.sample(
                "switchyard_plugin_call_duration_seconds_bucket",
                &[("plugin", p.name.as_str()), ("le", le.as_str())],
                cumulative,
            );
        }
        out.sample(
            "switchyard_plugin_call_duration_seconds_bucket",
            &[("plugin", p.name.as_str()), ("le", "+Inf")],
            s.calls,
        );
        out.sample(
            "switchyard_plugin_call_duration_seconds_sum",
            &[("plugin", p.name.as_str())],
            s.total_ns as f64 / 1e9,
        );
        out.sample(
            "switchyard_plugin_call_duration_seconds_count",
            &[("plugin", p.name.as_str())],
            s.calls,
        );
    }
    out.family(
        "switchyard_plugin_verdict_cache_lookups_total",
        "counter",
        "Verdict cache lookups of the serving version, by result (reset by a deploy).",
    );
    for p in &plugins {
        let Some(cache) = &p.verdict_cache else {
            continue;
        };
        for (result, v) in [("hit", cache.hits), ("miss", cache.misses)] {
            out.sample(
                "switchyard_plugin_verdict_cache_lookups_total",
                &[("plugin", p.name.as_str()), ("result", result)],
                v,
            );
        }
    }
    let h = broker.plugins().host_stats();
    out.family(
        "switchyard_plugin_loads_total",
        "counter",
        "Plugin versions loaded, by how.",
    );
    out.sample(
        "switchyard_plugin_loads_total",
        &[("how", "compiled")],
        h.compiles,
    );
    out.sample(
        "switchyard_plugin_loads_total",
        &[("how", "cache_hit")],
        h.cache_hits,
    );
    out.sample(
        "switchyard_plugin_loads_total",
        &[("how", "failed")],
        h.failed_loads,
    );

    let (conns, consumers) = match &state.inner.amqp {
        Some(r) => (r.connections().len(), r.consumers().len()),
        None => (0, 0),
    };
    out.family("switchyard_connections", "gauge", "Open AMQP connections.");
    out.sample("switchyard_connections", &[], conns);
    out.family("switchyard_consumers", "gauge", "Active AMQP consumers.");
    out.sample("switchyard_consumers", &[], consumers);

    out.family(
        "switchyard_storage_bytes",
        "gauge",
        "Bytes the message store occupies on disk.",
    );
    out.sample(
        "switchyard_storage_bytes",
        &[],
        broker.queues().size_on_disk().unwrap_or(0),
    );
    out.family(
        "switchyard_uptime_seconds",
        "gauge",
        "Seconds since the admin API started.",
    );
    out.sample(
        "switchyard_uptime_seconds",
        &[],
        state.inner.started.elapsed().as_secs(),
    );

    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.0,
    )
}
