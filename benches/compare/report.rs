//! Turns repetitions into medians with min–max: a markdown table on stdout, the issue-7
//! targets checked against the same run, and every raw figure as JSON.

use serde_json::json;

use super::phases::PhaseResult;

const MIB: f64 = (1 << 20) as f64;

/// Median, min and max of some values.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }

    fn cell(s: Option<Spread>, digits: usize) -> String {
        match s {
            None => "n/a".into(),
            Some(s) if s.min == s.max => format!("{:.*}", digits, s.median),
            Some(s) => format!(
                "{:.*} ({:.*}–{:.*})",
                digits, s.median, digits, s.min, digits, s.max
            ),
        }
    }
}

/// The repetitions of one (workload, phase, broker).
#[derive(Debug)]
pub struct Row<'a> {
    pub workload: &'static str,
    pub phase: &'static str,
    pub broker: &'a str,
    pub ok: Vec<&'a PhaseResult>,
    pub errors: Vec<&'a str>,
}

impl Row<'_> {
    fn spread(&self, f: impl Fn(&PhaseResult) -> Option<f64>) -> Option<Spread> {
        Spread::of(self.ok.iter().filter_map(|r| f(r)).collect())
    }
    pub fn msg_rate(&self) -> Option<Spread> {
        self.spread(|r| Some(r.messages as f64 / r.secs))
    }
    pub fn delivery_rate(&self) -> Option<Spread> {
        self.spread(|r| (r.deliveries > 0).then(|| r.deliveries as f64 / r.secs))
    }
    pub fn broker_us(&self) -> Option<Spread> {
        self.spread(|r| Some(r.broker_cpu_s? * 1e6 / r.messages as f64))
    }
    pub fn client_us(&self) -> Option<Spread> {
        self.spread(|r| Some(r.client_cpu_s * 1e6 / r.messages as f64))
    }
    pub fn rss_mib(&self) -> Option<Spread> {
        self.spread(|r| Some(r.peak_rss? as f64 / MIB))
    }
    pub fn disk_mib(&self) -> Option<Spread> {
        self.spread(|r| Some(r.disk? as f64 / MIB))
    }
    pub fn latency_ms(&self, f: impl Fn(&super::phases::Latency) -> u64) -> Option<Spread> {
        self.spread(|r| Some(f(r.latency.as_ref()?) as f64 / 1000.0))
    }
}

/// Groups results by (workload, phase, broker) in the order they first appeared.
pub fn rows(results: &[PhaseResult]) -> Vec<Row<'_>> {
    let mut rows: Vec<Row<'_>> = Vec::new();
    for r in results {
        let i = match rows
            .iter()
            .position(|x| x.workload == r.workload && x.phase == r.phase && x.broker == r.broker)
        {
            Some(i) => i,
            None => {
                rows.push(Row {
                    workload: r.workload,
                    phase: r.phase,
                    broker: &r.broker,
                    ok: Vec::new(),
                    errors: Vec::new(),
                });
                rows.len() - 1
            }
        };
        match &r.error {
            Some(e) => rows[i].errors.push(e),
            None => rows[i].ok.push(r),
        }
    }
    rows.sort_by_key(|r| (r.workload, phase_order(r.phase)));
    rows
}

fn phase_order(phase: &str) -> usize {
    [
        "publish backlog",
        "drain backlog",
        "end-to-end",
        "latency @2000/s",
    ]
    .iter()
    .position(|p| *p == phase)
    .unwrap_or(9)
}

/// The markdown tables: throughput and resources, then latency.
pub fn markdown(results: &[PhaseResult]) -> String {
    let rows = rows(results);
    let mut out = String::from(
        "| workload | phase | broker | msg/s | deliveries/s | broker CPU µs/msg | client CPU µs/msg | peak RSS MiB | disk MiB | reps |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        let reps = if r.errors.is_empty() {
            r.ok.len().to_string()
        } else {
            format!(
                "{} ok, {} FAILED: {}",
                r.ok.len(),
                r.errors.len(),
                r.errors[0]
            )
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.workload,
            r.phase,
            r.broker,
            Spread::cell(r.msg_rate(), 0),
            Spread::cell(r.delivery_rate(), 0),
            Spread::cell(r.broker_us(), 1),
            Spread::cell(r.client_us(), 1),
            Spread::cell(r.rss_mib(), 0),
            Spread::cell(r.disk_mib(), 1),
            reps
        );
    }
    out += "\nLatency publish → receive at a fixed 2,000 msg/s (W1), ms:\n\n| broker | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|\n";
    for r in rows
        .iter()
        .filter(|r| r.ok.iter().any(|x| x.latency.is_some()))
    {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            r.broker,
            Spread::cell(r.latency_ms(|l| l.p50), 2),
            Spread::cell(r.latency_ms(|l| l.p99), 2),
            Spread::cell(r.latency_ms(|l| l.p999), 2),
            Spread::cell(r.latency_ms(|l| l.max), 2),
        );
    }
    out
}

fn find<'a>(rows: &'a [Row<'a>], workload: &str, phase: &str, broker: &str) -> Option<&'a Row<'a>> {
    rows.iter()
        .find(|r| r.workload.starts_with(workload) && r.phase == phase && r.broker == broker)
}

fn median(s: Option<Spread>) -> Option<f64> {
    s.map(|s| s.median)
}

/// `a` against `b` by `metric`: (a ≥ factor × b, or ≤ when `lower_is_better`), with numbers.
fn ratio<'a>(
    a: Option<&'a Row<'a>>,
    b: Option<&'a Row<'a>>,
    metric: impl Fn(&'a Row<'a>) -> Option<Spread>,
    factor: f64,
    lower_is_better: bool,
    unit: &str,
) -> Option<(bool, String)> {
    let (x, y) = (median(metric(a?))?, median(metric(b?))?);
    let met = if lower_is_better {
        x <= y * factor
    } else {
        x >= y * factor
    };
    Some((met, format!("{x:.1} vs {y:.1} {unit} = {:.2}×", x / y)))
}

/// The worst peak RSS of `broker` while it held or drained the W1 backlog.
fn backlog_rss(rows: &[Row<'_>], broker: &str) -> Option<(bool, String)> {
    let peak = ["publish backlog", "drain backlog"]
        .iter()
        .filter_map(|p| find(rows, "W1", p, broker)?.rss_mib())
        .map(|s| s.max)
        .reduce(f64::max)?;
    Some((peak <= 64.0, format!("worst repetition {peak:.0} MiB")))
}

/// Issue 7's targets, each "met", "NOT met" or "not measured", with the numbers.
pub fn targets(results: &[PhaseResult]) -> String {
    let rows = rows(results);
    let rows = &rows[..];
    let mut out = String::new();
    let mut line = |name: &str, verdict: Option<(bool, String)>| {
        let text = match verdict {
            Some((true, why)) => format!("met ({why})"),
            Some((false, why)) => format!("NOT met ({why})"),
            None => "not measured (a broker or phase is missing)".into(),
        };
        out += &format!("- {name}: {text}\n");
    };
    let e2e = |b: &str| find(rows, "W1", "end-to-end", b);
    let latency = |b: &str| find(rows, "W1", "latency @2000/s", b);
    let w2 = |b: &str| find(rows, "W2", "end-to-end", b);
    line(
        "W1 end-to-end, fsync, WASM router on every message: ≥ 4× RabbitMQ msg/s",
        ratio(
            e2e("switchyard-fsync"),
            e2e("rabbitmq"),
            |r| r.msg_rate(),
            4.0,
            false,
            "msg/s",
        ),
    );
    line(
        "W1 end-to-end, fsync: broker CPU per message ≤ ¼ of RabbitMQ's",
        ratio(
            e2e("switchyard-fsync"),
            e2e("rabbitmq"),
            |r| r.broker_us(),
            0.25,
            true,
            "µs/msg",
        ),
    );
    line(
        "W1 end-to-end, relaxed: ≥ NATS JetStream msg/s",
        ratio(
            e2e("switchyard-relaxed"),
            e2e("nats"),
            |r| r.msg_rate(),
            1.0,
            false,
            "msg/s",
        ),
    );
    line(
        "W1 latency at 2,000 msg/s, fsync: p99 ≤ NATS p99",
        ratio(
            latency("switchyard-fsync"),
            latency("nats"),
            |r| r.latency_ms(|l| l.p99),
            1.0,
            true,
            "ms",
        ),
    );
    for broker in ["switchyard-fsync", "switchyard-relaxed"] {
        line(
            &format!("{broker}: peak RSS with the W1 backlog ≤ 64 MiB"),
            backlog_rss(rows, broker),
        );
    }
    for broker in ["switchyard-fsync", "switchyard-relaxed"] {
        line(
            &format!("W2 {broker}: ≥ 2× RabbitMQ deliveries/s"),
            ratio(
                w2(broker),
                w2("rabbitmq"),
                |r| r.delivery_rate(),
                2.0,
                false,
                "deliveries/s",
            ),
        );
    }
    out
}

/// Every raw result as JSON, plus the context of the run.
pub fn json(results: &[PhaseResult], context: serde_json::Value) -> serde_json::Value {
    let raw: Vec<_> = results
        .iter()
        .map(|r| {
            json!({
                "workload": r.workload,
                "phase": r.phase,
                "broker": r.broker,
                "rep": r.rep,
                "messages": r.messages,
                "deliveries": r.deliveries,
                "secs": r.secs,
                "msg_per_s": (r.error.is_none()).then(|| r.messages as f64 / r.secs),
                "broker_cpu_s": r.broker_cpu_s,
                "client_cpu_s": r.client_cpu_s,
                "peak_rss_bytes": r.peak_rss,
                "disk_bytes": r.disk,
                "latency_us": r.latency.map(|l| json!({
                    "p50": l.p50, "p99": l.p99, "p99_9": l.p999, "max": l.max, "samples": l.samples
                })),
                "error": r.error,
            })
        })
        .collect();
    json!({"context": context, "results": raw})
}
