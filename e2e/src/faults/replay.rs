//! `replay-killed`: users stream through a system with an `[archive]`; a replay of the
//! archive to one queue is killed with `kill -9` halfway, then run again to its end.
//! Every acknowledged user's event must be in that queue (duplicates are counted).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use events::amqp::connect_once;
use events::lapin::options::{BasicAckOptions, BasicGetOptions};
use events::testing::message_count;
use serde_json::Value;

use super::{Row, Scale, inject::all_serving};
use crate::broker::PrivateBroker;
use crate::replay::sent_to;
use crate::stream::{Producer, tally};
use crate::system::{Options, System};

/// Runs the scenario on `broker`.
pub async fn replay_killed(broker: &PrivateBroker, scale: Scale) -> anyhow::Result<Row> {
    let options = Options {
        amqp_url: broker.url(),
        rust_log: "info".to_owned(),
        ..Options::default()
    };
    let system = System::start(options).await?;
    system.enable_archive("").await?;
    let producer = Producer::start(system.http.clone(), system.users.url(""), scale.rate);
    tokio::time::sleep(scale.load * 2).await;
    let ids = producer.stop().await.ids();
    let through = tally(&system, &ids, Duration::from_secs(120)).await?;
    let n = ids.len();
    wait_archived(&system, n).await?;

    let queue = format!("{}.replayed", system.queues.dispatch);
    let connection =
        connect_once(&system.endpoints(), "fault-replay", Duration::from_secs(10)).await?;
    // Paced so that it runs about four seconds: time to kill it halfway.
    let rate = format!("{}/s", (n / 4).max(10));
    let args = ["--from", "1h", "--to-queue", queue.as_str()];
    let mut first = system.spawn_replay(&[&args[..], &["--rate", &rate]].concat())?;
    let half = u32::try_from(n / 2).unwrap_or(u32::MAX);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let count = message_count(&connection, &queue).await.unwrap_or(0);
        if count >= half || tokio::time::Instant::now() > deadline {
            break count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let finished_before = first.try_wait()?.is_some();
    first.kill().await.context("kill -9 of the replay")?;
    let summary = system.replay(&args).await?;
    let second = sent_to(&summary, &queue);

    let seen = drain_ids(&connection, &queue).await?;
    let missing: Vec<i64> = ids
        .iter()
        .filter(|id| !seen.contains_key(id))
        .copied()
        .collect();
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    let serving = all_serving(&system).await;
    let mut notes =
        format!("replay killed -9 after {at_kill} of {n} copies; the second run sent {second}");
    if finished_before || u64::from(at_kill) >= n as u64 {
        notes.push_str("; FAILED: the first replay was not killed halfway");
    }
    if through.lost > 0 {
        notes.push_str(&format!(
            "; {} users never went through the system",
            through.lost
        ));
    }
    if !missing.is_empty() {
        notes.push_str(&format!(
            "; missing ids {:?}",
            &missing[..missing.len().min(10)]
        ));
    }
    events::testing::delete_queues(&connection, &[queue.as_str()]).await;
    let _ = connection.close(200, "ok".into()).await;
    system.delete_archive().await?;
    system.shutdown().await?;
    Ok(Row {
        scenario: "replay-killed".into(),
        sent: n,
        lost: missing.len() + through.lost,
        duplicates,
        serving,
        notes,
    })
}

/// Waits until the dispatcher archived `n` events (2 minutes at most).
async fn wait_archived(system: &System, n: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let routes = system.dispatcher_routes().await?;
        let archived = routes["archive"]["archived"].as_u64().unwrap_or(0);
        if archived >= n as u64 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {archived} of {n} events archived within 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Takes every message of `queue`; how many times each user id was seen.
async fn drain_ids(
    connection: &events::lapin::Connection,
    queue: &str,
) -> anyhow::Result<BTreeMap<i64, usize>> {
    let channel = connection.create_channel().await?;
    let mut seen = BTreeMap::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await?
    {
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await?;
        let event: Value = serde_json::from_slice(&message.delivery.data).unwrap_or_default();
        if let Some(id) = event["data"]["id"].as_i64() {
            *seen.entry(id).or_default() += 1;
        }
    }
    let _ = channel.close(200, "ok".into()).await;
    Ok(seen)
}
