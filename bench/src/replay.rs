//! Replay throughput: `dispatcher replay --to-queue` over the archive stream the archive
//! contender just filled, timed from the process start to its exit (every publish
//! confirmed by then), and the queue counted.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use e2e::PrivateBroker;
use e2e::process::binary;
use events::QueueType;
use events::amqp::connect_once;
use events::testing::message_count;
use serde::Serialize;

/// One replay run.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayResult {
    /// The queue type of the drain that filled the stream (the stream is a stream).
    pub queue_type: String,
    /// Events in the stream, all replayed.
    pub events: u64,
    /// From the replay's start to its exit.
    pub seconds: f64,
    /// Events per second, stream to queue.
    pub events_per_sec: f64,
    /// Events not in the queue at the end (must be 0).
    pub lost: u64,
}

/// Replays everything archived in the last hour (by the table at `routes`) to `queue`.
pub async fn measure(
    broker: &PrivateBroker,
    routes: &Path,
    queue: &str,
    queue_type: QueueType,
    n: u64,
) -> anyhow::Result<ReplayResult> {
    let started = Instant::now();
    let output = tokio::process::Command::new(binary("dispatcher")?)
        .args(["replay", "--from", "1h", "--to-queue", queue])
        .env("ROUTES_FILE", routes)
        .env("AMQP_URL", broker.url())
        .env("QUEUE_TYPE", queue_type.as_str())
        .kill_on_drop(true)
        .output()
        .await
        .context("running dispatcher replay")?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        output.status.success(),
        "dispatcher replay failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let connection =
        connect_once(&broker.endpoints(), "bench-replay", Duration::from_secs(10)).await?;
    let delivered = u64::from(message_count(&connection, queue).await.unwrap_or(0));
    let _ = connection.close(200, "ok".into()).await;
    Ok(ReplayResult {
        queue_type: queue_type.as_str().to_owned(),
        events: n,
        seconds,
        events_per_sec: n as f64 / seconds.max(1e-9),
        lost: n.saturating_sub(delivered),
    })
}
