//! A quick load generator for `POST /users`: N concurrent connections (one HTTP/1.1
//! keep-alive client each) for a fixed time, then requests/s and latency percentiles.
//!
//! ```sh
//! cargo run --release -p user-service --example load -- --url http://127.0.0.1:8000 -c 32 -d 10
//! ```
//! Only ever point it at a service on this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of the user-service.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Concurrent connections.
    #[arg(short, long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(short, long, default_value_t = 10)]
    duration: u64,
}

#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    created: u64,
    other: u64,
    errors: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let run = format!("{:08x}", rand_u32());
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let url = format!("{}/users", args.url.trim_end_matches('/'));
        let run = run.clone();
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut tally = Tally::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                let body = format!(
                    r#"{{"name":"Load {worker} {n}","email":"l{run}.{worker}.{n}@load.test"}}"#
                );
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        let micros = sent.elapsed().as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                        if status == 201 {
                            tally.created += 1
                        } else {
                            tally.other += 1
                        }
                    }
                    Err(_) => tally.errors += 1,
                }
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await.unwrap();
        total.latencies_us.extend(tally.latencies_us);
        total.created += tally.created;
        total.other += tally.other;
        total.errors += tally.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let index = ((total.latencies_us.len() as f64 * p) as usize)
            .min(total.latencies_us.len().saturating_sub(1));
        f64::from(total.latencies_us.get(index).copied().unwrap_or(0)) / 1000.0
    };
    println!(
        "{} connections, {elapsed:.1} s: {} created ({:.0} req/s), {} other statuses, {} errors; \
         latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.concurrency,
        total.created,
        total.created as f64 / elapsed,
        total.other,
        total.errors,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
