//! End to end: at a steady rate of `POST /users`, the delay from each POST's response to
//! the user's snapshot being visible on order-service (`GET /users/{id}` answers 200),
//! through the outbox, the broker, the dispatcher and the order consumer.

use std::time::{Duration, Instant};

use anyhow::Context;
use e2e::{Options, PrivateBroker, System};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

/// The run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    /// Target POST rate.
    pub rate_per_sec: u64,
    /// Seconds of load.
    pub seconds: u64,
    /// Users created.
    pub created: u64,
    /// Snapshots that became visible.
    pub visible: u64,
    /// Delay percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Worst, milliseconds.
    pub max_ms: f64,
    /// How often each snapshot was polled for (the delay's resolution), milliseconds.
    pub poll_interval_ms: f64,
}

const POLL: Duration = Duration::from_millis(1);

/// Runs the whole system (release binaries) on `broker` and measures.
pub async fn run(broker: &PrivateBroker, rate: u64, seconds: u64) -> anyhow::Result<LatencyResult> {
    let options = Options {
        amqp_url: broker.url(),
        rust_log: "warn".to_owned(),
        ..Options::default()
    };
    let system = System::start(options).await?;
    let users = system.users.url("/users");
    let orders = system.orders()?.url("/users");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * seconds;
    let mut tasks = Vec::with_capacity(usize::try_from(total)?);
    let run = events::testing::unique("lat");
    for n in 0..total {
        ticker.tick().await;
        let (client, users, orders, run) =
            (client.clone(), users.clone(), orders.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            one(&client, &users, &orders, &run, n).await
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let mut visible = 0;
    for task in tasks {
        if let Ok(Ok(micros)) = task.await {
            histogram.saturating_record(micros.max(1));
            visible += 1;
        }
    }
    system.shutdown().await?;
    Ok(LatencyResult {
        rate_per_sec: rate,
        seconds,
        created: total,
        visible,
        p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: histogram.max() as f64 / 1000.0,
        poll_interval_ms: POLL.as_secs_f64() * 1000.0,
    })
}

/// Creates one user and polls its snapshot; returns the delay in microseconds.
async fn one(
    client: &reqwest::Client,
    users: &str,
    orders: &str,
    run: &str,
    n: u64,
) -> anyhow::Result<u64> {
    let body = json!({"name": format!("Latency {n}"), "email": format!("{run}.{n}@example.com")});
    let response = client.post(users).json(&body).send().await?;
    anyhow::ensure!(
        response.status().as_u16() == 201,
        "POST answered {}",
        response.status()
    );
    let user: Value = response.json().await?;
    let created = Instant::now();
    let id = user["id"].as_i64().context("no id")?;
    let url = format!("{orders}/{id}");
    let deadline = created + Duration::from_secs(60);
    loop {
        let r = client.get(&url).send().await?;
        if r.status().is_success() {
            return Ok(u64::try_from(created.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "snapshot {id} not visible within 60s"
        );
        tokio::time::sleep(POLL).await;
    }
}
