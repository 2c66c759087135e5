//! The service against the real broker and real SQLite files: events become snapshots,
//! poison is dead-lettered without blocking, orders need a known user, state survives a
//! restart and redeliveries are deduplicated.

use std::collections::BTreeMap;

use events::lapin::BasicProperties;
use events::testing::{drain, eventually, message_count};
use order_service::dead_letter::{DETAIL_HEADER, reason_of};
use serde_json::json;

use crate::{Fixture, Service, WAIT, deleted, upsert};

const APPLIED: &str = "order_events_applied_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_user_events_become_snapshots_visible_over_http() {
    let fx = Fixture::new("order.snapshots").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    for event in [
        upsert(1, 1, "ann"),
        upsert(1, 2, "anne"),
        upsert(2, 1, "bob"),
        deleted(2, 2),
    ] {
        fx.publish(&event).await;
    }
    let user = service.wait_user_version(1, 2).await;
    assert_eq!(user["name"], "anne");
    assert_eq!(user["email"], "anne@example.com");
    assert_eq!(user["updated_at"], "2026-11-22T10:00:00Z");
    service
        .wait_metric(&format!("{APPLIED}{{type=\"user_deleted\"}}"), 1.0)
        .await;
    let (status, body) = service.get("/users/2").await;
    assert_eq!(status, 404, "a deleted user is gone: {body}");
    let (_, list) = service.get("/users").await;
    assert_eq!(list["users"].as_array().unwrap().len(), 1, "{list}");
    eventually(WAIT, "the queue drained and acked", || async {
        (message_count(&fx.connection, &fx.queue).await == Some(0)).then_some(())
    })
    .await;
    service.stop().await.unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_reason_and_the_next_event_is_applied() {
    let fx = Fixture::new("order.poison").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    fx.publish_raw(b"this is not json").await;
    fx.publish_raw(br#"{"specversion":"1.0","id":"x1","source":"s"}"#)
        .await;
    fx.publish(&events::CloudEvent::new(
        "user-service",
        "user_renamed",
        json!({}),
    ))
    .await;
    fx.publish(&events::CloudEvent::new(
        "user-service",
        "user_created",
        json!({"id": 5}),
    ))
    .await;
    fx.publish(&upsert(3, 1, "cat")).await;
    service.wait_user_version(3, 1).await;

    let dead_queue = format!("{}.dead", fx.queue);
    events::testing::wait_for_count(&fx.connection, &dead_queue, 4, WAIT).await;
    let channel = fx.connection.create_channel().await.unwrap();
    let dead = drain(&channel, &dead_queue).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            let headers = m.delivery.properties.headers().as_ref().unwrap();
            assert!(
                events::envelope::header_string(headers, DETAIL_HEADER).is_some(),
                "the detail header is set"
            );
            reason_of(headers).unwrap()
        })
        .collect();
    assert_eq!(
        reasons,
        ["not_json", "missing_type", "unknown_type", "bad_data"]
    );
    assert_eq!(
        dead[0].delivery.data, b"this is not json",
        "the body is kept"
    );
    let rejected = service
        .metric("order_events_rejected_total{reason=\"not_json\"}")
        .await;
    assert_eq!(rejected, 1.0);
    service.stop().await.unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_taken_for_a_known_user_and_refused_for_an_unknown_one() {
    let fx = Fixture::new("order.orders").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    fx.publish(&upsert(7, 1, "gus")).await;
    service.wait_user_version(7, 1).await;
    let items = json!([{"sku": "MUG-1", "quantity": 3, "unit_price_cents": 450}]);
    let (status, order) = service
        .post("/orders", &json!({"user_id": 7, "items": items}))
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["total_cents"], 1350);
    let (status, read) = service
        .get(&format!("/orders/{}", order["id"].as_i64().unwrap()))
        .await;
    assert_eq!((status, &read), (200, &order));
    let (status, body) = service
        .post("/orders", &json!({"user_id": 8, "items": items}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "unknown user");
    service.stop().await.unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_over_the_same_database_keeps_state_and_dedupes_a_redelivered_event() {
    let fx = Fixture::new("order.restart").await;
    let first = upsert(1, 1, "ann");
    let second = upsert(1, 2, "anne");
    let service = Service::start(&fx.queue, &fx.db()).await;
    fx.publish(&first).await;
    fx.publish(&second).await;
    service.wait_user_version(1, 2).await;
    service.stop().await.unwrap();

    let service = Service::start_unready(&fx.queue, &fx.db()).await;
    let (status, user) = service.get("/users/1").await;
    assert_eq!((status, &user["version"]), (200, &json!(2)), "state kept");
    service.wait_ready().await;
    fx.publish(&second).await;
    fx.publish(&first).await;
    fx.publish(&upsert(1, 1, "stale twin")).await;
    service
        .wait_metric("order_events_ignored_total{reason=\"duplicate\"}", 2.0)
        .await;
    service
        .wait_metric("order_events_ignored_total{reason=\"stale\"}", 1.0)
        .await;
    let (_, user) = service.get("/users/1").await;
    assert_eq!(user["name"], "anne");
    assert_eq!(user["last_event_id"], second.id.as_str());
    service.stop().await.unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_stream_loses_nothing_and_a_restart_converges() {
    let fx = Fixture::new("order.shutdown").await;
    // 40 users × 10 versions, interleaved, some events published twice.
    let mut expected = BTreeMap::new();
    let mut stream = Vec::new();
    for version in 1..=10u64 {
        for id in 1..=40i64 {
            let event = if version == 10 && id % 4 == 0 {
                deleted(id, version)
            } else {
                upsert(id, version, &format!("u{id}v{version}"))
            };
            if id % 7 == 0 {
                stream.push(event.clone());
            }
            expected.insert(id, (version, event.ty == "user_deleted"));
            stream.push(event);
        }
    }
    for event in &stream {
        fx.publish(event).await;
    }
    // Small batches, so that the stop lands mid-stream.
    let service = Service::start_with(&fx.queue, &fx.db(), |s| s.prefetch = 5).await;
    service.wait_ready().await;
    eventually(WAIT, "some events applied", || async {
        let text = service.metrics().await;
        text.contains("order_events_applied_total{").then_some(())
    })
    .await;
    service.stop().await.unwrap();

    let service = Service::start(&fx.queue, &fx.db()).await;
    for (id, (version, is_deleted)) in expected {
        if is_deleted {
            eventually(WAIT, &format!("user {id} deleted"), || async {
                (service.get(&format!("/users/{id}")).await.0 == 404).then_some(())
            })
            .await;
        } else {
            service.wait_user_version(id, version).await;
        }
    }
    eventually(WAIT, "the queue drained and acked", || async {
        (message_count(&fx.connection, &fx.queue).await == Some(0)).then_some(())
    })
    .await;
    assert_eq!(
        message_count(&fx.connection, &format!("{}.dead", fx.queue)).await,
        Some(0),
        "nothing was dead-lettered"
    );
    service.stop().await.unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_mode_event_is_read_too() {
    let fx = Fixture::new("order.binary").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    let properties = BasicProperties::default()
        .with_type("user_created".into())
        .with_message_id("bin-1".into())
        .with_app_id("legacy".into())
        .with_content_type("application/json".into());
    let body = json!({"id": 9, "name": "ivy", "email": "ivy@example.com", "version": 1});
    fx.publisher
        .publish_to_queue(&fx.queue, body.to_string().as_bytes(), properties)
        .await
        .unwrap();
    let user = service.wait_user_version(9, 1).await;
    assert_eq!(user["last_event_id"], "bin-1");
    service.stop().await.unwrap();
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_that_cannot_be_dead_lettered_is_rejected_and_does_not_block_the_queue() {
    let fx = Fixture::new("order.nodead").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    // Without its `.dead` queue the confirmed dead-letter publish comes back unroutable.
    let channel = fx.connection.create_channel().await.unwrap();
    channel
        .queue_delete(
            format!("{}.dead", fx.queue).as_str().into(),
            Default::default(),
        )
        .await
        .unwrap();
    fx.publish_raw(b"poison").await;
    fx.publish(&upsert(4, 1, "dan")).await;
    service.wait_user_version(4, 1).await;
    service
        .wait_metric("order_events_rejected_total{reason=\"not_json\"}", 1.0)
        .await;
    eventually(WAIT, "the queue drained", || async {
        (message_count(&fx.connection, &fx.queue).await == Some(0)).then_some(())
    })
    .await;
    service.stop().await.unwrap();
    fx.cleanup().await;
}
