//! End to end: at a steady rate of `POST /users`, the delay from each POST's response to
//! the user's snapshot being visible on order-service, through the outbox, the broker,
//! the dispatcher and the order consumer.
//!
//! Visibility is observed by one poller reading order-service's user list every
//! millisecond from the oldest user not seen yet, so the measuring load stays the same
//! however many users are in flight (polling each user separately would add thousands
//! of requests per second and measure its own overload).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// How often order-service was polled (the delay's resolution), milliseconds.
    pub poll_interval_ms: f64,
}

const POLL: Duration = Duration::from_millis(1);

type Times = Arc<Mutex<HashMap<i64, Instant>>>;

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
    let responded: Times = Arc::default();
    let seen: Times = Arc::default();
    let total = rate * seconds;
    let poller = tokio::spawn(poll(client.clone(), orders, seen.clone(), total));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut posts = Vec::with_capacity(usize::try_from(total)?);
    let run = events::testing::unique("lat");
    for n in 0..total {
        ticker.tick().await;
        let (client, users, run, responded) = (
            client.clone(),
            users.clone(),
            run.clone(),
            responded.clone(),
        );
        posts.push(tokio::spawn(async move {
            let body =
                json!({"name": format!("Latency {n}"), "email": format!("{run}.{n}@example.com")});
            let response = client.post(&users).json(&body).send().await?;
            anyhow::ensure!(
                response.status().as_u16() == 201,
                "POST answered {}",
                response.status()
            );
            let user: Value = response.json().await?;
            let at = Instant::now();
            let id = user["id"].as_i64().context("no id")?;
            if let Ok(mut map) = responded.lock() {
                map.insert(id, at);
            }
            Ok(())
        }));
    }
    for post in posts {
        post.await??;
    }
    let _ = tokio::time::timeout(Duration::from_secs(120), poller).await;
    system.shutdown().await?;
    let responded = responded.lock().map(|m| m.clone()).unwrap_or_default();
    let seen = seen.lock().map(|m| m.clone()).unwrap_or_default();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    let mut visible = 0;
    for (id, at) in &responded {
        if let Some(seen_at) = seen.get(id) {
            let micros = u64::try_from(seen_at.saturating_duration_since(*at).as_micros())
                .unwrap_or(u64::MAX);
            histogram.saturating_record(micros.max(1));
            visible += 1;
        }
    }
    Ok(LatencyResult {
        rate_per_sec: rate,
        seconds,
        created: u64::try_from(responded.len())?,
        visible,
        p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: histogram.max() as f64 / 1000.0,
        poll_interval_ms: POLL.as_secs_f64() * 1000.0,
    })
}

/// Reads `GET /users?after=<oldest unseen - 1>` every millisecond until `total` users were
/// seen, noting when each first appeared.
async fn poll(client: reqwest::Client, orders: String, seen: Times, total: u64) {
    let mut floor = 0i64; // every id <= floor has been seen
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let url = format!("{orders}?after={floor}&limit=500");
        if let Ok(response) = client.get(&url).send().await
            && let Ok(page) = response.json::<Value>().await
        {
            let now = Instant::now();
            let mut map = match seen.lock() {
                Ok(map) => map,
                Err(_) => return,
            };
            for user in page["users"].as_array().into_iter().flatten() {
                if let Some(id) = user["user_id"].as_i64() {
                    map.entry(id).or_insert(now);
                }
            }
            while map.contains_key(&(floor + 1)) {
                floor += 1;
            }
            if u64::try_from(map.len()).unwrap_or(0) >= total {
                return;
            }
        }
        tokio::time::sleep(POLL).await;
    }
}
