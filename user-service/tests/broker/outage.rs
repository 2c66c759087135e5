//! Broker outages, made with a switchable TCP proxy in front of the shared broker: the
//! API keeps answering `201`, the backlog shows in `/readyz`, and every event arrives once
//! the broker is reachable again, none missing, first deliveries in commit order.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use events::testing::{broker, delete_queues, drain, eventually, message_count};
use lapin::Channel;
use serde_json::Value;

use crate::proxy::{Proxy, upstream};
use crate::{Service, WAIT, body, broker_url, declared_queue, settings};

/// Collects events from `queue` until every id of `expected` (user ids, in commit order)
/// has arrived; returns the user ids in first-delivery order and the duplicate count.
pub async fn collect(channel: &Channel, queue: &str, expected: &[i64]) -> (Vec<i64>, usize) {
    let mut first_seen = Vec::new();
    let mut event_ids = HashSet::new();
    let mut duplicates = 0;
    let deadline = Instant::now() + WAIT;
    while first_seen.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {} events in {queue}; got {first_seen:?}",
            expected.len()
        );
        for message in drain(channel, queue).await {
            let event = body(&message);
            if event_ids.insert(event["id"].as_str().unwrap().to_owned()) {
                first_seen.push(event["data"]["id"].as_i64().unwrap());
            } else {
                duplicates += 1;
            }
        }
        if first_seen.len() < expected.len() {
            // Polling the condition, not a synchronization sleep.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (first_seen, duplicates)
}

async fn create_many(service: &Service, prefix: &str, count: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..count {
        let user = service
            .create(&format!("{prefix} {i}"), &format!("{prefix}{i}@x.io"))
            .await;
        ids.push(user["id"].as_i64().unwrap());
    }
    ids
}

async fn broker_state(service: &Service) -> Value {
    service.readyz().await["broker"].clone()
}

#[tokio::test]
async fn events_written_while_the_broker_is_unreachable_arrive_in_order_once_it_is_back() {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = declared_queue(&channel, "user-service.outage").await;
    let proxy = Proxy::start(upstream(&broker_url()).await, false).await;
    let dir = tempfile::tempdir().unwrap();
    let service =
        Service::start(settings(dir.path(), &queue, &proxy.amqp_url(&broker_url()))).await;

    let ids = create_many(&service, "down", 20).await;
    let ready = service.readyz().await;
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["broker"], "disconnected");
    assert_eq!(ready["outbox_backlog"], 20);
    assert_eq!(message_count(&connection, &queue).await, Some(0));

    proxy.switch_on();
    let (arrived, _duplicates) = collect(&channel, &queue, &ids).await;
    assert_eq!(arrived, ids, "none missing, in commit order");
    eventually(WAIT, "the backlog to drain", || async {
        let ready = service.readyz().await;
        (ready["outbox_backlog"] == 0 && ready["broker"] == "connected").then_some(())
    })
    .await;

    service.stop().await;
    delete_queues(&connection, &[&queue]).await;
}

#[tokio::test]
async fn a_connection_cut_mid_stream_loses_nothing_and_keeps_first_delivery_order() {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = declared_queue(&channel, "user-service.cut").await;
    let proxy = Proxy::start(upstream(&broker_url()).await, true).await;
    let dir = tempfile::tempdir().unwrap();
    let service =
        Service::start(settings(dir.path(), &queue, &proxy.amqp_url(&broker_url()))).await;
    eventually(WAIT, "the relay to connect", || async {
        (broker_state(&service).await == "connected").then_some(())
    })
    .await;

    let mut ids = create_many(&service, "before", 10).await;
    proxy.switch_off();
    ids.extend(create_many(&service, "during", 10).await);
    eventually(WAIT, "the relay to notice the cut", || async {
        (broker_state(&service).await == "disconnected").then_some(())
    })
    .await;
    ids.extend(create_many(&service, "still", 5).await);
    proxy.switch_on();

    let (arrived, duplicates) = collect(&channel, &queue, &ids).await;
    assert_eq!(
        arrived, ids,
        "none missing, first deliveries in commit order"
    );
    assert!(duplicates <= ids.len(), "{duplicates} duplicates");

    service.stop().await;
    delete_queues(&connection, &[&queue]).await;
}
