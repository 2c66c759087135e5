//! What the relay publishes: envelope, properties, order, versions, republishing, pruning.

use events::TraceParent;
use events::testing::{broker, delete_queues, drain, eventually, take_one, wait_for_count};
use lapin::types::AMQPValue;
use reqwest::Method;
use serde_json::json;

use crate::{Service, WAIT, body, broker_url, declared_queue, settings};

#[tokio::test]
async fn a_created_users_event_arrives_with_the_envelope_and_amqp_properties() {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = declared_queue(&channel, "user-service.created").await;
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(settings(dir.path(), &queue, &broker_url())).await;

    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let user = json!({"name": "Alice", "email": "Alice@Example.com"});
    let (status, created) = service
        .send(
            Method::POST,
            "/users",
            Some(user),
            &[("traceparent", incoming)],
        )
        .await;
    assert_eq!(status, 201);

    let message = take_one(&channel, &queue, WAIT).await;
    let event = body(&message);
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["source"], "user-service");
    assert_eq!(event["type"], "user_created");
    assert_eq!(event["subject"], created["id"].to_string());
    assert_eq!(event["datacontenttype"], "application/json");
    assert!(event["time"].is_string());
    assert_eq!(
        event["data"],
        json!({
            "id": created["id"], "name": "Alice", "email": "alice@example.com",
            "version": 1, "updated_at": created["updated_at"],
        })
    );

    let properties = &message.delivery.properties;
    let id = event["id"].as_str().unwrap();
    let short =
        |value: &Option<lapin::types::ShortString>| value.as_ref().map(|s| s.as_str().to_owned());
    assert_eq!(
        short(properties.content_type()).as_deref(),
        Some("application/cloudevents+json")
    );
    assert_eq!(short(properties.message_id()).as_deref(), Some(id));
    assert_eq!(short(properties.kind()).as_deref(), Some("user_created"));
    assert_eq!(short(properties.app_id()).as_deref(), Some("user-service"));
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert!(properties.timestamp().is_some_and(|t| t > 0));
    let trace = TraceParent::from_amqp(properties).expect("a traceparent header");
    assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    let headers = properties.headers().as_ref().unwrap();
    assert!(matches!(
        headers.inner().get("traceparent"),
        Some(AMQPValue::LongString(_))
    ));

    service.stop().await;
    delete_queues(&connection, &[&queue]).await;
}

#[tokio::test]
async fn patch_and_delete_events_follow_in_order_with_versions_2_and_3() {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = declared_queue(&channel, "user-service.changes").await;
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(settings(dir.path(), &queue, &broker_url())).await;

    let user = service.create("Bob", "bob@x.io").await;
    let path = format!("/users/{}", user["id"]);
    let patch = json!({"name": "Robert"});
    let (status, _) = service.send(Method::PATCH, &path, Some(patch), &[]).await;
    assert_eq!(status, 200);
    let (status, _) = service.send(Method::DELETE, &path, None, &[]).await;
    assert_eq!(status, 204);

    wait_for_count(&connection, &queue, 3, WAIT).await;
    let events: Vec<_> = drain(&channel, &queue).await.iter().map(body).collect();
    let seen: Vec<(&str, u64)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("user_created", 1),
            ("user_updated", 2),
            ("user_deleted", 3)
        ]
    );
    assert_eq!(events[1]["data"]["name"], "Robert");
    assert_eq!(events[2]["data"], json!({"id": user["id"], "version": 3}));

    service.stop().await;
    delete_queues(&connection, &[&queue]).await;
}

#[tokio::test]
async fn an_event_published_but_not_marked_is_republished_after_a_restart_with_the_same_id() {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = declared_queue(&channel, "user-service.republish").await;
    let dir = tempfile::tempdir().unwrap();
    let service = Service::start(settings(dir.path(), &queue, &broker_url())).await;
    service.create("Cy", "cy@x.io").await;
    let first = body(&take_one(&channel, &queue, WAIT).await);
    eventually(WAIT, "the outbox row to be marked published", || async {
        (service.readyz().await["outbox_backlog"] == 0).then_some(())
    })
    .await;
    let db = service.db.clone();
    service.stop().await;

    // A crash between the confirm and the mark leaves the row unmarked.
    let sqlite = rusqlite::Connection::open(&db).unwrap();
    let unmarked = sqlite
        .execute("UPDATE outbox SET published_at = NULL", [])
        .unwrap();
    assert_eq!(unmarked, 1);
    drop(sqlite);

    let service = Service::start(settings(dir.path(), &queue, &broker_url())).await;
    let again = body(&take_one(&channel, &queue, WAIT).await);
    assert_eq!(
        again["id"], first["id"],
        "the same event, so consumers dedupe it"
    );
    assert_eq!(again, first);
    service.stop().await;
    delete_queues(&connection, &[&queue]).await;
}

#[tokio::test]
async fn published_rows_are_pruned_after_the_retention_period() {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = declared_queue(&channel, "user-service.prune").await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(dir.path(), &queue, &broker_url());
    settings.outbox_retention = std::time::Duration::from_millis(300);
    let service = Service::start(settings).await;
    service.create("Di", "di@x.io").await;
    service.create("Ed", "ed@x.io").await;
    wait_for_count(&connection, &queue, 2, WAIT).await;

    let db = service.db.clone();
    eventually(WAIT, "the published outbox rows to be pruned", || {
        let db = db.clone();
        async move {
            let sqlite = rusqlite::Connection::open(&db).unwrap();
            let rows: i64 = sqlite
                .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))
                .unwrap();
            (rows == 0).then_some(())
        }
    })
    .await;
    // The users stay; only the delivered events go.
    let (_, page) = service.send(Method::GET, "/users", None, &[]).await;
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    service.stop().await;
    delete_queues(&connection, &[&queue]).await;
}
