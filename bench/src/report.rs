//! The results: a table for people (with the ratios against each peer) and JSON for
//! machines (`bench/results.json`), with the machine they were measured on.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::api::ApiResult;
use crate::drain::DrainResult;
use crate::latency::LatencyResult;
use crate::replay::ReplayResult;
use crate::summary::{self, DrainRow};

/// One criterion benchmark's mean.
#[derive(Debug, Clone, Serialize)]
pub struct RoutingEstimate {
    /// Criterion's id, e.g. `match/exact/10000`.
    pub id: String,
    /// Mean time, nanoseconds.
    pub mean_ns: f64,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Results {
    /// When.
    pub date: String,
    /// The command, for reproducing.
    pub command: String,
    /// Reduced sizes?
    pub quick: bool,
    /// CPU model, cores, memory.
    pub machine: Value,
    /// Drain runs, every repetition.
    pub drain: Vec<DrainResult>,
    /// Replays of the archive stream (after the archive contender's drain).
    pub replay: Vec<ReplayResult>,
    /// The drain runs folded: median and range per mode, queue type and contender.
    pub drain_table: Vec<DrainRow>,
    /// Criterion routing figures.
    pub routing: Vec<RoutingEstimate>,
    /// API runs.
    pub api: Vec<ApiResult>,
    /// End-to-end latency.
    pub latency: Option<LatencyResult>,
    /// Peers or sections that could not run, and why.
    pub skipped: Vec<String>,
}

impl Results {
    /// Empty results for this machine.
    pub fn new(quick: bool) -> Self {
        Self {
            date: chrono::Utc::now().to_rfc3339(),
            command: format!("cargo xtask bench{}", if quick { " --quick" } else { "" }),
            quick,
            machine: machine(),
            drain: Vec::new(),
            replay: Vec::new(),
            drain_table: Vec::new(),
            routing: Vec::new(),
            api: Vec::new(),
            latency: None,
            skipped: Vec::new(),
        }
    }

    /// Writes the JSON file.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")?;
        Ok(())
    }

    /// Prints the tables.
    pub fn print(&self) {
        println!("\nmachine: {}", self.machine);
        if !self.drain.is_empty() {
            summary::print(&self.drain_table);
            self.print_drain_ratios();
        }
        for r in &self.replay {
            println!(
                "replay from the archive stream to one queue ({}): {} events in {:.2} s, {:.0} events/s, lost {}",
                r.queue_type, r.events, r.seconds, r.events_per_sec, r.lost
            );
        }
        if !self.routing.is_empty() {
            println!("\n{:<50} {:>12}", "routing (criterion)", "mean");
            for r in &self.routing {
                println!("{:<50} {:>12}", r.id, human_ns(r.mean_ns));
            }
        }
        if !self.api.is_empty() {
            println!(
                "\n{:<14} {:>6} {:>9} {:>10} {:>8} {:>8} {:>9} {:>5}",
                "api", "conns", "created", "req/s", "p50 ms", "p99 ms", "events", "lost"
            );
            for r in &self.api {
                println!(
                    "{:<14} {:>6} {:>9} {:>10.0} {:>8.2} {:>8.2} {:>9} {:>5}",
                    r.service,
                    r.concurrency,
                    r.created,
                    r.requests_per_sec,
                    r.p50_ms,
                    r.p99_ms,
                    r.events_delivered,
                    r.lost
                );
            }
            let find = |name: &str| self.api.iter().find(|r| r.service == name);
            if let (Some(ours), Some(peer)) = (find("user-service"), find("fastapi-peer")) {
                println!(
                    "user-service vs FastAPI peer: throughput {:.1}x, p99 {:.2}x lower",
                    ours.requests_per_sec / peer.requests_per_sec,
                    peer.p99_ms / ours.p99_ms
                );
            }
        }
        if let Some(l) = &self.latency {
            println!(
                "\nend to end at {}/s for {}s: {} created, {} visible, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (poll {} ms)",
                l.rate_per_sec,
                l.seconds,
                l.created,
                l.visible,
                l.p50_ms,
                l.p99_ms,
                l.max_ms,
                l.poll_interval_ms
            );
        }
        for s in &self.skipped {
            println!("skipped: {s}");
        }
    }

    /// Folds the drain runs into the table (medians and ranges); call before printing.
    pub fn summarize(&mut self) {
        self.drain_table = summary::rows(&self.drain);
    }

    fn drain_row(&self, mode: &str, contender: &str, queue_type: &str) -> Option<&DrainRow> {
        self.drain_table
            .iter()
            .find(|r| r.mode == mode && r.contender == contender && r.queue_type == queue_type)
    }

    /// The ratios each mode's table implies, from the medians.
    fn print_drain_ratios(&self) {
        for mode in ["shared", "separated"] {
            for queue_type in ["quorum", "classic"] {
                let rate = |name: &str| {
                    self.drain_row(mode, name, queue_type)
                        .map(|r| r.msgs_per_sec.median)
                };
                let pairs = [
                    (
                        "dispatcher-where",
                        "python-router",
                        "dispatcher-where vs python-router",
                    ),
                    (
                        "dispatcher-10k-where",
                        "dispatcher",
                        "10,000-route table vs one route",
                    ),
                    (
                        "relay-amqprs",
                        "relay-lapin",
                        "relay-amqprs vs relay-lapin (rate)",
                    ),
                    ("dispatcher-x2", "dispatcher", "2 replicas vs one"),
                    ("dispatcher-x3", "dispatcher", "3 replicas vs one"),
                    ("dispatcher-ordered", "dispatcher", "ordered vs one replica"),
                    (
                        "dispatcher-archive",
                        "dispatcher",
                        "archive on vs off (goal >= 0.70)",
                    ),
                    ("dispatcher-tapped", "dispatcher", "tap attached vs none"),
                    (
                        "dispatcher-templated",
                        "dispatcher",
                        "templated exchange target vs plain queue target",
                    ),
                    (
                        "dispatcher-templated",
                        "dispatcher-exchange",
                        "templated vs plain routing key, same exchange",
                    ),
                ];
                for (ours, theirs, label) in pairs {
                    if let (Some(a), Some(b)) = (rate(ours), rate(theirs)) {
                        println!("{label} ({mode}, {queue_type}): {:.2}", a / b);
                    }
                }
                let cpu = |name: &str| {
                    self.drain_row(mode, name, queue_type)
                        .and_then(|r| r.forwarder_cpu_us_per_msg)
                        .map(|c| c.median)
                };
                for (ours, label) in [
                    ("dispatcher-archive", "archive on vs off"),
                    ("dispatcher-tapped", "tap attached vs none"),
                    (
                        "dispatcher-templated",
                        "templated exchange vs plain queue target",
                    ),
                ] {
                    if let (Some(with), Some(without)) = (cpu(ours), cpu("dispatcher")) {
                        println!(
                            "dispatcher CPU per message, {label} ({mode}, {queue_type}): {with:.1} µs vs {without:.1} µs"
                        );
                    }
                }
                for r in self.drain.iter().filter(|r| {
                    r.mode == mode
                        && r.queue_type == queue_type
                        && r.contender == "dispatcher-tapped"
                }) {
                    if let Some(seen) = r.tap {
                        println!(
                            "the tap ({mode}, {queue_type}, #{}) showed {} events, dropped {}",
                            r.repetition, seen.events, seen.dropped
                        );
                    }
                }
                if let (Some(amqprs), Some(lapin)) = (cpu("relay-amqprs"), cpu("relay-lapin")) {
                    println!(
                        "relay CPU per message ({mode}, {queue_type}): amqprs {amqprs:.1} µs, lapin {lapin:.1} µs ({:+.0}%)",
                        (amqprs / lapin - 1.0) * 100.0
                    );
                }
                let total = |name: &str| {
                    self.drain_row(mode, name, queue_type).map(|r| {
                        r.broker_cpu_us_per_msg.median
                            + r.forwarder_cpu_us_per_msg.map_or(0.0, |c| c.median)
                    })
                };
                if let (Some(shovel), Some(dispatcher)) =
                    (total("shovel"), total("dispatcher-where"))
                {
                    println!(
                        "CPU per forwarded message, broker + forwarder ({mode}, {queue_type}): \
                         shovel {shovel:.1} µs, dispatcher-where {dispatcher:.1} µs"
                    );
                }
            }
        }
    }
}

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// Every `new/estimates.json` under criterion's folder, by benchmark id.
pub fn criterion_estimates(dir: &Path) -> Vec<RoutingEstimate> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    if let Some(estimate) = read_estimate(&p) {
                        found.push(estimate);
                    }
                } else if p
                    .file_name()
                    .is_some_and(|n| n != "report" && n != "base" && n != "change")
                {
                    stack.push(p);
                }
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found
}

fn read_estimate(new_dir: &Path) -> Option<RoutingEstimate> {
    let estimates: Value =
        serde_json::from_str(&std::fs::read_to_string(new_dir.join("estimates.json")).ok()?)
            .ok()?;
    let benchmark: Value =
        serde_json::from_str(&std::fs::read_to_string(new_dir.join("benchmark.json")).ok()?)
            .ok()?;
    Some(RoutingEstimate {
        id: benchmark["full_id"].as_str()?.to_owned(),
        mean_ns: estimates["mean"]["point_estimate"].as_f64()?,
    })
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let rabbit = std::process::Command::new("rabbitmqctl")
        .arg("version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({ "cpu": model, "cores": cores, "memory_gib": (mem_gib * 10.0).round() / 10.0, "rabbitmq": rabbit })
}
