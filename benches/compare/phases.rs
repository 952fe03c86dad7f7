//! Runs the workloads' phases on one broker and measures each: the part that is the same for
//! every broker (which phases, in what order, what is counted).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::amqp::Amqp;
use super::consuming::Consuming;
use super::flow::Flow;
use super::meter::{Meter, Watched};
use super::nats::Nats;
use super::procfs;

/// Messages per phase.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub backlog: usize,
    pub end_to_end: usize,
    /// Seconds of the fixed-rate latency phase.
    pub latency_secs: f64,
    pub fan_out: usize,
    pub competing: usize,
    pub json: usize,
}

/// The fixed publish rate of the latency phase.
pub const LATENCY_RATE: f64 = 2000.0;

/// A broker's client side.
#[derive(Debug)]
pub enum Driver {
    Amqp(Amqp),
    Nats(Nats),
}

impl Driver {
    async fn publish(
        &self,
        flow: Flow,
        range: std::ops::Range<usize>,
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        match self {
            Driver::Amqp(d) => d.publish(flow, range, rate).await,
            Driver::Nats(d) => d.publish(flow, range, rate).await,
        }
    }

    async fn consume(&self, flow: Flow, expect: usize, latency: bool) -> anyhow::Result<Consuming> {
        match self {
            Driver::Amqp(d) => d.consume(flow, expect, latency).await,
            Driver::Nats(d) => d.consume(flow, expect, latency).await,
        }
    }
}

/// Where a broker's disk use is read.
#[derive(Debug, Clone)]
pub enum Disk {
    /// Blocks allocated under a directory (Switchyard's data dir, RabbitMQ's node dir).
    Dir(PathBuf),
    /// JetStream's stream info.
    Streams,
    None,
}

/// A broker under test.
#[derive(Debug)]
pub struct Target {
    pub label: String,
    pub driver: Driver,
    pub watched: Watched,
    pub disk: Disk,
}

/// Latency percentiles, µs.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub samples: usize,
}

impl Latency {
    fn of(mut samples: Vec<u64>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Some(Latency {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: *samples.last().unwrap_or(&0),
            samples: samples.len(),
        })
    }
}

/// One measured phase of one repetition on one broker.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub workload: &'static str,
    pub phase: &'static str,
    pub broker: String,
    pub rep: usize,
    /// Messages published (drain: delivered).
    pub messages: usize,
    pub deliveries: usize,
    pub secs: f64,
    pub broker_cpu_s: Option<f64>,
    pub client_cpu_s: f64,
    pub peak_rss: Option<u64>,
    pub disk: Option<u64>,
    pub latency: Option<Latency>,
    pub error: Option<String>,
}

/// What a phase does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Publish only (no consumer): builds a backlog.
    Publish,
    /// Consume only: drains what is there.
    Drain,
    /// Consumers first, then publish; ends when everything is delivered.
    Both { rate: Option<f64> },
}

impl Target {
    async fn disk_bytes(&self) -> Option<u64> {
        match &self.disk {
            Disk::Dir(dir) => procfs::dir_bytes(dir),
            Disk::Streams => match &self.driver {
                Driver::Nats(n) => n.stored_bytes().await,
                Driver::Amqp(_) => None,
            },
            Disk::None => None,
        }
    }

    /// Runs and measures one phase.
    async fn phase(
        &self,
        rep: usize,
        flow: Flow,
        phase: &'static str,
        mode: Mode,
        messages: std::ops::Range<usize>,
    ) -> PhaseResult {
        let n = messages.len();
        let deliveries = if mode == Mode::Publish {
            0
        } else {
            flow.deliveries(n)
        };
        let latency = matches!(mode, Mode::Both { rate: Some(_) });
        let limit = Duration::from_secs(60 + (deliveries / 500) as u64);
        let mut result = PhaseResult {
            workload: flow.name(),
            phase,
            broker: self.label.clone(),
            rep,
            messages: n,
            deliveries,
            secs: 0.0,
            broker_cpu_s: None,
            client_cpu_s: 0.0,
            peak_rss: None,
            disk: None,
            latency: None,
            error: None,
        };
        let meter = Meter::start(self.watched);
        let start = Instant::now();
        let run = async {
            match mode {
                Mode::Publish => {
                    self.driver.publish(flow, messages, None).await?;
                    Ok((Instant::now(), Vec::new()))
                }
                Mode::Drain => {
                    let c = self.driver.consume(flow, deliveries, false).await?;
                    c.finish(limit).await
                }
                Mode::Both { rate } => {
                    let c = self.driver.consume(flow, deliveries, latency).await?;
                    let publish = self.driver.publish(flow, messages, rate);
                    let (published, delivered) = tokio::join!(publish, c.finish(limit));
                    published?;
                    delivered
                }
            }
        };
        let outcome: anyhow::Result<(Instant, Vec<u64>)> = run.await;
        let measured = meter.stop();
        result.broker_cpu_s = measured.broker_cpu_s;
        result.client_cpu_s = measured.client_cpu_s;
        result.peak_rss = measured.peak_rss;
        match outcome {
            Ok((done, samples)) => {
                result.secs = (done - start).as_secs_f64();
                result.latency = Latency::of(samples);
            }
            Err(e) => result.error = Some(format!("{e:#}")),
        }
        result.disk = self.disk_bytes().await;
        result
    }

    /// Every phase of every workload this broker supports, in order. A failed phase ends its
    /// workload (later phases would run on an unknown state); the next workload still runs.
    pub async fn run(&self, rep: usize, sizes: &Sizes, report: &mut dyn FnMut(PhaseResult)) {
        let mut emit = |r: PhaseResult| {
            let failed = r.error.is_some();
            report(r);
            failed
        };
        let b = sizes.backlog;
        let e = sizes.end_to_end;
        let l = (sizes.latency_secs * LATENCY_RATE) as usize;
        let w1: [(&'static str, Mode, std::ops::Range<usize>); 4] = [
            ("publish backlog", Mode::Publish, 0..b),
            ("drain backlog", Mode::Drain, 0..b),
            ("end-to-end", Mode::Both { rate: None }, b..b + e),
            (
                "latency @2000/s",
                Mode::Both {
                    rate: Some(LATENCY_RATE),
                },
                b + e..b + e + l,
            ),
        ];
        for (name, mode, range) in w1 {
            if emit(self.phase(rep, Flow::W1, name, mode, range).await) {
                break;
            }
        }
        let both = Mode::Both { rate: None };
        emit(
            self.phase(rep, Flow::W2, "end-to-end", both, 0..sizes.fan_out)
                .await,
        );
        emit(
            self.phase(rep, Flow::W3, "end-to-end", both, 0..sizes.competing)
                .await,
        );
        if !matches!(self.driver, Driver::Nats(_)) {
            emit(
                self.phase(rep, Flow::W4, "end-to-end", both, 0..sizes.json)
                    .await,
            );
        }
    }
}
