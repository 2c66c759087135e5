//! Graceful shutdown loses nothing: publish N events, stop the dispatcher mid-stream,
//! start it again, and every one of the N arrives (duplicates are allowed, not loss).

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{Broker, Names, RoutesDir, Running};
use events::testing::{drain, message_count, wait_for_count};

const N: u32 = 2000;

#[tokio::test]
async fn stopping_mid_stream_and_restarting_loses_nothing() {
    let names = Names::new("shutdown");
    let routes = RoutesDir::new(&names.simple("r", "t", "out"));
    let broker = Broker::new().await;
    broker.declare(&[&names.source()]).await;
    let ids: HashSet<String> = broker
        .publish_many(&names.source(), "t", N)
        .await
        .into_iter()
        .collect();

    // A small prefetch keeps the first run from finishing before it is stopped.
    let running = Running::start(&routes.path, |s| s.prefetch = 20).await;
    wait_for_count(
        &broker.connection,
        &names.q("out"),
        N / 20,
        Duration::from_secs(30),
    )
    .await;
    running.stop().await;
    let forwarded = message_count(&broker.connection, &names.q("out"))
        .await
        .unwrap();
    assert!(
        forwarded < N,
        "stopped mid-stream ({forwarded} of {N} forwarded)"
    );

    let running = Running::start(&routes.path, |_| {}).await;
    wait_for_count(
        &broker.connection,
        &names.q("out"),
        N,
        Duration::from_secs(60),
    )
    .await;
    running.stop().await;

    let channel = broker.channel().await;
    let received = drain(&channel, &names.q("out")).await;
    let seen: HashSet<String> = received
        .iter()
        .map(|m| {
            let value: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
            value["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let lost: Vec<&String> = ids.difference(&seen).collect();
    assert!(lost.is_empty(), "{} events lost", lost.len());
    assert!(
        received.len() - seen.len() <= 20,
        "duplicates are bounded by the prefetch: {} duplicates",
        received.len() - seen.len()
    );
    assert_eq!(
        message_count(&broker.connection, &names.source()).await,
        Some(0)
    );
    broker.cleanup(&names.queues(&["out"])).await;
}
