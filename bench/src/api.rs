//! `POST /users` throughput and latency at a fixed concurrency, for user-service and its
//! peer (the FastAPI + sqlite3 + pika proof of concept, `bench/peers/fastapi_users`), each
//! against the same private broker; afterwards the events each published are counted.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use e2e::{PrivateBroker, Service, Spec};
use events::QueueType;
use events::amqp::{connect_once, declare_queue};
use events::testing::{delete_queues, message_count, unique};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use tokio::process::{Child, Command};

/// One API's run.
#[derive(Debug, Clone, Serialize)]
pub struct ApiResult {
    /// `user-service` or `fastapi-peer`.
    pub service: String,
    /// Concurrent connections.
    pub concurrency: usize,
    /// Seconds of load.
    pub seconds: f64,
    /// `201` responses.
    pub created: u64,
    /// Other responses or transport errors.
    pub errors: u64,
    /// Created per second.
    pub requests_per_sec: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Events found in the dispatch queue afterwards.
    pub events_delivered: u64,
    /// Created users whose event never arrived (must be 0).
    pub lost: u64,
}

/// Runs a closed loop of `concurrency` clients posting new users to `base` for `duration`.
pub async fn load(
    base: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(Histogram<u64>, u64, u64, f64)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let counter = Arc::new(AtomicU64::new(0));
    let run = unique("u");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, counter, url, run) = (
            client.clone(),
            counter.clone(),
            format!("{base}/users"),
            run.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let (mut ok, mut errors) = (0u64, 0u64);
            while started.elapsed() < duration {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = json!({"name": format!("Load User {n}"), "email": format!("{run}.{n}@example.com")});
                let sent = Instant::now();
                let response = client.post(&url).json(&body).send().await;
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                match response {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let _ = r.bytes().await;
                        ok += 1;
                        histogram.saturating_record(micros.max(1));
                    }
                    _ => errors += 1,
                }
            }
            Ok::<_, anyhow::Error>((histogram, ok, errors))
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors) = (0, 0);
    for task in tasks {
        let (h, o, e) = task.await??;
        histogram.add(h)?;
        ok += o;
        errors += e;
    }
    Ok((histogram, ok, errors, started.elapsed().as_secs_f64()))
}

/// Loads one service (already listening at `base`, publishing to `queue`), then counts.
async fn measure(
    name: &str,
    base: &str,
    broker: &PrivateBroker,
    queue: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<ApiResult> {
    let (histogram, created, errors, seconds) = load(base, concurrency, duration).await?;
    let connection = connect_once(
        &broker.endpoints(),
        "bench-api-count",
        Duration::from_secs(10),
    )
    .await?;
    // user-service publishes through its outbox: give the relay time to drain.
    let deadline = Instant::now() + Duration::from_secs(120);
    let delivered = loop {
        let count = u64::from(message_count(&connection, queue).await.unwrap_or(0));
        if count >= created || Instant::now() > deadline {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    delete_queues(&connection, &[queue]).await;
    Ok(ApiResult {
        service: name.to_owned(),
        concurrency,
        seconds,
        created,
        errors,
        requests_per_sec: created as f64 / seconds,
        p50_ms: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
        events_delivered: delivered,
        lost: created.saturating_sub(delivered),
    })
}

async fn fresh_queue(broker: &PrivateBroker) -> anyhow::Result<String> {
    let queue = unique("bench.api.dispatch");
    let connection =
        connect_once(&broker.endpoints(), "bench-api", Duration::from_secs(10)).await?;
    declare_queue(
        &connection.create_channel().await?,
        &queue,
        QueueType::Quorum,
    )
    .await?;
    Ok(queue)
}

/// user-service under load.
pub async fn user_service(
    broker: &PrivateBroker,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<ApiResult> {
    let dir = tempfile::tempdir()?;
    let queue = fresh_queue(broker).await?;
    let spec = Spec::new("user-service")
        .env("AMQP_URL", broker.url())
        .env("USER_SERVICE_ADDR", "127.0.0.1:0")
        .env("USER_DB", dir.path().join("users.db").display().to_string())
        .env("DISPATCH_QUEUE", &queue)
        .env("RUST_LOG", "warn");
    let mut service = Service::start(spec).await?;
    let result = measure(
        "user-service",
        &service.url(""),
        broker,
        &queue,
        concurrency,
        duration,
    )
    .await;
    service.stop().await?;
    result
}

/// The Python peer under load, or why it cannot run here.
pub async fn fastapi_peer(
    broker: &PrivateBroker,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Result<ApiResult, String>> {
    let venv = match python_env().await {
        Ok(venv) => venv,
        Err(reason) => return Ok(Err(format!("{reason:#}"))),
    };
    let dir = tempfile::tempdir()?;
    let queue = fresh_queue(broker).await?;
    let port = e2e::broker::free_port()?;
    let mut child = Command::new(venv.join("bin/uvicorn"))
        .args([
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--log-level",
            "warning",
        ])
        .current_dir(peer_dir())
        .env("AMQP_URL", broker.url())
        .env("USER_DB", dir.path().join("peer.db"))
        .env("DISPATCH_QUEUE", &queue)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start uvicorn")?;
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base, &mut child).await?;
    let result = measure("fastapi-peer", &base, broker, &queue, concurrency, duration).await;
    child.kill().await?;
    result.map(Ok)
}

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/fastapi_users")
}

/// A virtualenv with FastAPI, uvicorn and pika, made once under the target folder.
async fn python_env() -> anyhow::Result<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-venv");
    if venv.join("bin/uvicorn").is_file() {
        return Ok(venv);
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .await
        .context("python3 is not available")?;
    if !status.success() {
        bail!("python3 -m venv failed ({status}); install python3-venv");
    }
    let status = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "-r"])
        .arg(peer_dir().join("requirements.txt"))
        .status()
        .await?;
    if !status.success() {
        bail!("pip could not install FastAPI, uvicorn and pika ({status})");
    }
    Ok(venv)
}

async fn wait_healthy(base: &str, child: &mut Child) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the FastAPI peer exited ({status})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the FastAPI peer did not answer /healthz within 30s")
}
