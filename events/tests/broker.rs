//! The shared helpers against the real broker: queue declaration and confirmed publish.

use std::time::Duration;

use events::amqp::{self, PublishError, Publisher, declare_queue};
use events::lapin::BasicProperties;
use events::lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use events::lapin::types::FieldTable;
use events::testing::{broker, delete_queues, message_count, queue_type, take_one, unique};
use events::{CloudEvent, QueueType};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn declaring_a_queue_twice_gives_the_same_queue_and_its_dead_letter_queue() {
    let conn = broker().await;
    let channel = conn.create_channel().await.unwrap();
    let name = unique("events.declare");
    declare_queue(&channel, &name, queue_type()).await.unwrap();
    declare_queue(&channel, &name, queue_type()).await.unwrap();
    assert_eq!(message_count(&conn, &name).await, Some(0));
    assert_eq!(
        message_count(&conn, &format!("{name}.dead")).await,
        Some(0),
        "the .dead queue exists"
    );
    delete_queues(&conn, &[&name]).await;
}

#[tokio::test]
async fn a_declaration_with_other_arguments_is_refused_which_is_why_everyone_uses_the_helper() {
    let conn = broker().await;
    let channel = conn.create_channel().await.unwrap();
    let name = unique("events.inequivalent");
    declare_queue(&channel, &name, QueueType::Quorum)
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    let err = other
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");
    delete_queues(&conn, &[&name]).await;
}

#[tokio::test]
async fn a_rejected_message_lands_in_the_dead_letter_queue() {
    let conn = broker().await;
    let publisher = Publisher::new(&conn).await.unwrap();
    let name = unique("events.reject");
    declare_queue(publisher.channel(), &name, queue_type())
        .await
        .unwrap();
    publisher
        .publish_to_queue(&name, b"poison", BasicProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let message = events::testing::eventually(Duration::from_secs(5), "a message", || async {
        channel
            .basic_get(name.as_str().into(), Default::default())
            .await
            .unwrap()
    })
    .await;
    message
        .delivery
        .acker
        .reject(events::lapin::options::BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let dead = take_one(&channel, &format!("{name}.dead"), Duration::from_secs(5)).await;
    assert_eq!(dead.delivery.data, b"poison");
    delete_queues(&conn, &[&name]).await;
}

#[tokio::test]
async fn a_confirmed_publish_to_an_existing_queue_succeeds_and_keeps_the_envelope() {
    let conn = broker().await;
    let publisher = Publisher::new(&conn).await.unwrap();
    let name = unique("events.publish");
    declare_queue(publisher.channel(), &name, queue_type())
        .await
        .unwrap();
    let event = CloudEvent::new("test", "user_created", json!({"id": 1, "version": 1}));
    publisher
        .publish_to_queue(&name, &event.to_json_vec(), event.amqp_properties())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let message = take_one(&channel, &name, Duration::from_secs(5)).await;
    let back = CloudEvent::from_amqp(&message.delivery.properties, &message.delivery.data).unwrap();
    assert_eq!(back.id, event.id);
    assert_eq!(
        *message.delivery.properties.delivery_mode(),
        Some(2),
        "persistent"
    );
    delete_queues(&conn, &[&name]).await;
}

#[tokio::test]
async fn a_confirmed_publish_to_a_missing_queue_is_an_error_not_a_success() {
    let conn = broker().await;
    let publisher = Publisher::new(&conn).await.unwrap();
    let missing = unique("events.missing");
    let err = publisher
        .publish_to_queue(&missing, b"{}", BasicProperties::default())
        .await
        .unwrap_err();
    match &err {
        PublishError::Returned {
            code,
            text,
            routing_key,
            ..
        } => {
            assert_eq!(*code, 312);
            assert_eq!(text, "NO_ROUTE");
            assert_eq!(routing_key, &missing);
        }
        other => panic!("expected a returned message, got {other:?}"),
    }
    assert_eq!(err.reason(), "unroutable");
    // The channel stays usable after a return.
    let name = unique("events.after-return");
    declare_queue(publisher.channel(), &name, queue_type())
        .await
        .unwrap();
    publisher
        .publish_to_queue(&name, b"{}", BasicProperties::default())
        .await
        .unwrap();
    delete_queues(&conn, &[&name]).await;
}

#[tokio::test]
async fn a_publish_to_an_exchange_with_no_binding_is_returned() {
    let conn = broker().await;
    let publisher = Publisher::new(&conn).await.unwrap();
    let exchange = unique("events.exchange");
    publisher
        .channel()
        .exchange_declare(
            exchange.as_str().into(),
            events::lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = publisher
        .publish(&exchange, "no.binding", b"{}", BasicProperties::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Returned { code: 312, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_with_the_password_redacted() {
    let err = amqp::connect_once(
        &"amqp://guest:guest@127.0.0.1:1/%2f".into(),
        "test",
        Duration::from_secs(3),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("guest:***@127.0.0.1:1"),
        "password redacted: {err}"
    );
}

#[tokio::test]
async fn a_list_of_urls_skips_a_dead_node_and_names_the_node_it_reached() {
    let live = events::testing::amqp_url();
    let settings = events::AmqpSettings {
        url: format!("amqp://guest:guest@127.0.0.1:1/%2f,{live}"),
        ..events::AmqpSettings::from_env().unwrap()
    };
    let endpoints = events::Endpoints::new(&settings).unwrap();
    let connection = amqp::connect_once(&endpoints, "two-nodes", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(connection.status().connected());
    assert_eq!(
        endpoints.node_of("two-nodes"),
        Some(events::settings::redact_url(&live))
    );
    connection.close(200, "ok".into()).await.unwrap();
}

#[tokio::test]
async fn each_new_connection_starts_at_the_node_after_the_one_reached_last() {
    // The shared broker under two URLs (differing only in a harmless option) stands for
    // two nodes.
    let url = events::testing::amqp_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let url_a = format!("{url}{separator}heartbeat=60");
    let url_b = format!("{url}{separator}heartbeat=59");
    let settings = events::AmqpSettings {
        url: format!("{url_a},{url_b}"),
        ..events::AmqpSettings::from_env().unwrap()
    };
    let endpoints = events::Endpoints::new(&settings).unwrap();
    let mut reached = Vec::new();
    for name in ["first", "second", "third"] {
        let connection = amqp::connect_once(&endpoints, name, Duration::from_secs(5))
            .await
            .unwrap();
        reached.push(endpoints.node_of(name).unwrap());
        connection.close(200, "ok".into()).await.unwrap();
    }
    let (a, b) = (
        events::settings::redact_url(&url_a),
        events::settings::redact_url(&url_b),
    );
    assert_eq!(reached, [a.clone(), b, a]);
}

#[tokio::test]
async fn when_every_node_fails_each_is_named_without_its_password() {
    let endpoints = events::Endpoints::from(
        "amqp://u:Pw-Both-Dead-31@127.0.0.1:1/%2f,amqp://u:Pw-Both-Dead-31@127.0.0.1:2/%2f",
    );
    let err = amqp::connect_once(&endpoints, "dead", Duration::from_secs(3))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("no broker node answered"), "{err}");
    assert!(
        err.contains("u:***@127.0.0.1:1") && err.contains("u:***@127.0.0.1:2"),
        "{err}"
    );
    assert!(!err.contains("Pw-Both-Dead-31"), "{err}");
    assert_eq!(endpoints.node_of("dead"), None);
}

#[tokio::test]
async fn connect_with_retry_stops_when_cancelled() {
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let err = amqp::connect(
        &"amqp://guest:guest@127.0.0.1:1/%2f".into(),
        "test",
        &cancel,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, amqp::ConnectError::Cancelled), "{err}");
}
