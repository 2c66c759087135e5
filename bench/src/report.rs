//! The results: a table for people (with the ratios against each peer) and JSON for
//! machines (`bench/results.json`), with the machine they were measured on.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::api::ApiResult;
use crate::drain::DrainResult;
use crate::latency::LatencyResult;
use crate::replay::ReplayResult;

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
    /// Drain runs.
    pub drain: Vec<DrainResult>,
    /// Replays of the archive stream (after the archive contender's drain).
    pub replay: Vec<ReplayResult>,
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
            println!(
                "\n{:<22} {:<8} {:>8} {:>8} {:>10} {:>11} {:>14} {:>8} {:>5}",
                "drain",
                "queues",
                "msgs",
                "msg/s",
                "vs shovel",
                "fwd cpu µs",
                "broker cpu µs",
                "rss MiB",
                "lost"
            );
            for r in &self.drain {
                let shovel = self.drain_rate("shovel", &r.queue_type);
                let ratio =
                    shovel.map_or(String::from("-"), |s| format!("{:.2}", r.msgs_per_sec / s));
                println!(
                    "{:<22} {:<8} {:>8} {:>8.0} {:>10} {:>11} {:>14.1} {:>8} {:>5}",
                    r.contender,
                    r.queue_type,
                    r.messages,
                    r.msgs_per_sec,
                    ratio,
                    r.forwarder_cpu_us_per_msg
                        .map_or("-".into(), |c| format!("{c:.1}")),
                    r.broker_cpu_us_per_msg,
                    r.forwarder_peak_rss_mib
                        .map_or("-".into(), |m| format!("{m:.1}")),
                    r.lost
                );
            }
            for queue_type in ["quorum", "classic"] {
                if let (Some(small), Some(large)) = (
                    self.drain_rate("dispatcher", queue_type),
                    self.drain_rate("dispatcher-10k-where", queue_type),
                ) {
                    println!(
                        "10,000-route table vs one route ({queue_type}): {:.2}",
                        large / small
                    );
                }
                if let (Some(off), Some(on)) = (
                    self.drain_rate("dispatcher", queue_type),
                    self.drain_rate("dispatcher-archive", queue_type),
                ) {
                    let cpu = |name: &str| {
                        self.drain
                            .iter()
                            .find(|r| r.contender == name && r.queue_type == queue_type)
                            .and_then(|r| r.forwarder_cpu_us_per_msg)
                    };
                    println!(
                        "archive on vs off ({queue_type}): drain rate {:.2} (goal ≥ 0.70), dispatcher CPU per message {} µs vs {} µs",
                        on / off,
                        cpu("dispatcher-archive").map_or("-".into(), |c| format!("{c:.1}")),
                        cpu("dispatcher").map_or("-".into(), |c| format!("{c:.1}")),
                    );
                }
                if let (Some(none), Some(tapped)) = (
                    self.drain_rate("dispatcher", queue_type),
                    self.drain_rate("dispatcher-tapped", queue_type),
                ) {
                    let seen = self
                        .drain
                        .iter()
                        .find(|r| r.contender == "dispatcher-tapped" && r.queue_type == queue_type)
                        .and_then(|r| r.tap)
                        .unwrap_or_default();
                    println!(
                        "tap attached vs none ({queue_type}): {:.3} (the tap showed {} events, dropped {})",
                        tapped / none,
                        seen.events,
                        seen.dropped
                    );
                }
                if let (Some(plain), Some(templated)) = (
                    self.drain_rate("dispatcher", queue_type),
                    self.drain_rate("dispatcher-templated", queue_type),
                ) {
                    println!(
                        "templated exchange target vs plain queue target ({queue_type}): {:.2}",
                        templated / plain
                    );
                    if let Some(exchange) = self.drain_rate("dispatcher-exchange", queue_type) {
                        println!(
                            "templated vs plain routing key, same exchange ({queue_type}): {:.2}",
                            templated / exchange
                        );
                    }
                }
                if let Some(one) = self.drain_rate("dispatcher", queue_type) {
                    let scaled: Vec<String> =
                        ["dispatcher-x2", "dispatcher-x3", "dispatcher-ordered"]
                            .iter()
                            .filter_map(|name| {
                                let rate = self.drain_rate(name, queue_type)?;
                                Some(format!("{name} {:.2}", rate / one))
                            })
                            .collect();
                    if !scaled.is_empty() {
                        println!("vs one replica ({queue_type}): {}", scaled.join(", "));
                    }
                }
                let total = |name: &str| {
                    self.drain
                        .iter()
                        .find(|r| r.contender == name && r.queue_type == queue_type)
                        .map(|r| {
                            r.broker_cpu_us_per_msg + r.forwarder_cpu_us_per_msg.unwrap_or(0.0)
                        })
                };
                if let (Some(shovel), Some(dispatcher)) = (total("shovel"), total("dispatcher")) {
                    println!(
                        "CPU per forwarded message, broker + forwarder ({queue_type}): \
                         shovel {shovel:.1} µs, dispatcher {dispatcher:.1} µs"
                    );
                }
            }
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

    fn drain_rate(&self, contender: &str, queue_type: &str) -> Option<f64> {
        self.drain
            .iter()
            .find(|r| r.contender == contender && r.queue_type == queue_type)
            .map(|r| r.msgs_per_sec)
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
