//! Forwarding against the real broker: properties kept, unrouted and dead-letter paths,
//! fan-out to queues and an exchange, retries then dead-letter for unroutable targets.

use crate::common::{Broker, Names, RoutesDir, Running, WAIT, header};
use events::lapin::BasicProperties;
use events::lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions};
use events::lapin::types::{AMQPValue, FieldTable};
use events::lapin::{Channel, ExchangeKind};
use events::testing::{take_one, wait_for_count};
use serde_json::json;

#[tokio::test]
async fn a_forwarded_event_keeps_its_body_and_properties_and_gains_dispatch_headers() {
    let names = Names::new("props");
    let routes = RoutesDir::new(&names.simple("orders", "user_created", "out"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    );
    headers.insert("x-tenant".into(), AMQPValue::LongString("acme".into()));
    let properties = BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_message_id("msg-1".into())
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_timestamp(1_790_000_000)
        .with_type("user_created".into())
        .with_app_id("user-service".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    let body = br#"{"specversion":"1.0","id":"msg-1","source":"user-service","type":"user_created","data":{"id":1, "spaces" :  true}}"#;
    broker
        .publish_raw(&names.source(), body, properties.clone())
        .await;

    let channel = broker.channel().await;
    let got = take_one(&channel, &names.q("out"), WAIT).await;
    assert_eq!(
        got.delivery.data, body,
        "the body is forwarded byte for byte"
    );
    let p = &got.delivery.properties;
    assert_eq!(p.content_type(), properties.content_type());
    assert_eq!(p.message_id(), properties.message_id());
    assert_eq!(p.correlation_id(), properties.correlation_id());
    assert_eq!(p.reply_to(), properties.reply_to());
    assert_eq!(p.timestamp(), properties.timestamp());
    assert_eq!(p.kind(), properties.kind());
    assert_eq!(p.app_id(), properties.app_id());
    assert_eq!(p.delivery_mode(), &Some(2));
    assert_eq!(header(p, "x-tenant").as_deref(), Some("acme"));
    assert_eq!(
        header(p, "traceparent").as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(header(p, "x-dispatch-routes").as_deref(), Some("orders"));
    assert_eq!(header(p, "x-dispatch-generation").as_deref(), Some("1"));

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

#[tokio::test]
async fn an_event_no_route_matches_goes_to_the_unrouted_queue() {
    let names = Names::new("unrouted");
    let routes = RoutesDir::new(&names.simple("orders", "user_created", "out"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    let event = broker
        .publish_event(&names.source(), "order_placed", json!({"id": 7}))
        .await;
    let channel = broker.channel().await;
    let got = take_one(&channel, &names.unrouted(), WAIT).await;
    assert_eq!(got.delivery.data, event.to_json_vec());
    assert_eq!(header(&got.delivery.properties, "x-dispatch-routes"), None);
    assert_eq!(
        header(&got.delivery.properties, "x-dispatch-generation").as_deref(),
        Some("1")
    );

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

#[tokio::test]
async fn unreadable_messages_go_to_the_dead_letter_queue_with_the_reason() {
    let names = Names::new("dead");
    let routes = RoutesDir::new(&names.simple("orders", "user_created", "out"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    let cases: [(&[u8], &str); 3] = [
        (b"\xff not json at all", "not_json: "),
        (
            br#"{"specversion":"1.0","id":"1","source":"s"}"#,
            "missing_type: ",
        ),
        (br#"[1, 2, 3]"#, "not_an_object: "),
    ];
    let props = BasicProperties::default().with_message_id("bad".into());
    for (body, _) in &cases {
        broker
            .publish_raw(&names.source(), body, props.clone())
            .await;
    }
    // A good event after the bad ones still flows.
    broker
        .publish_event(&names.source(), "user_created", json!({"id": 1}))
        .await;

    let channel = broker.channel().await;
    for (body, reason) in &cases {
        let got = take_one(&channel, &names.dead(), WAIT).await;
        assert_eq!(&got.delivery.data, body, "the body is kept byte for byte");
        assert_eq!(got.delivery.properties.message_id(), props.message_id());
        let error = header(&got.delivery.properties, "x-dispatch-error").unwrap();
        assert!(
            error.starts_with(reason),
            "{error:?} should start with {reason:?}"
        );
    }
    take_one(&channel, &names.q("out"), WAIT).await;
    let metrics = running.metrics().await;
    assert!(
        metrics.contains("dispatcher_events_dead_lettered_total{reason=\"not_json\"} 1"),
        "{metrics}"
    );

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

/// A durable direct exchange for a test (deleted with [`delete_exchange`]).
async fn declare_exchange(channel: &Channel, exchange: &str) {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

async fn delete_exchange(channel: &Channel, exchange: &str) {
    channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn fan_out_reaches_two_queues_and_an_exchange_once_each() {
    let names = Names::new("fanout");
    let broker = Broker::new().await;
    let exchange = names.q("exchange");
    let channel = broker.channel().await;
    declare_exchange(&channel, &exchange).await;
    let bound = names.q("bound");
    broker.declare(&[&bound]).await;
    channel
        .queue_bind(
            bound.as_str().into(),
            exchange.as_str().into(),
            "audit.fr".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let text = format!(
        "{}[[route]]\nname = \"all\"\nevent = \"user.*\"\nto = [{:?}, {:?}]\n\n[[route]]\nname = \"fr\"\nevent = \"user.created\"\nwhere = {{ \"data.country\" = \"FR\" }}\nto = [{:?}, {{ exchange = {exchange:?}, routing_key = \"audit.fr\" }}]\n",
        names.header(),
        names.q("a"),
        names.q("b"),
        names.q("b"),
    );
    let routes = RoutesDir::new(&text);
    let running = Running::start(&routes.path, |_| {}).await;

    broker
        .publish_event(&names.source(), "user.created", json!({"country": "FR"}))
        .await;
    broker
        .publish_event(&names.source(), "user.created", json!({"country": "DE"}))
        .await;
    for queue in [names.q("a"), names.q("b")] {
        wait_for_count(&broker.connection, &queue, 2, WAIT).await;
    }
    let audit = take_one(&channel, &bound, WAIT).await;
    assert_eq!(
        header(&audit.delivery.properties, "x-dispatch-routes").as_deref(),
        Some("all,fr")
    );
    let b = events::testing::drain(&channel, &names.q("b")).await;
    assert_eq!(
        b.len(),
        2,
        "each target gets an event once even when two routes name it"
    );
    running.stop().await;
    assert!(
        events::testing::drain(&channel, &bound).await.is_empty(),
        "only the FR event reached the exchange"
    );
    delete_exchange(&channel, &exchange).await;
    broker
        .cleanup(&[names.queues(&["a", "b"]), vec![bound]].concat())
        .await;
}

#[tokio::test]
async fn an_unroutable_exchange_target_is_retried_then_dead_lettered() {
    let names = Names::new("unroutable");
    let broker = Broker::new().await;
    let exchange = names.q("exchange");
    let channel = broker.channel().await;
    declare_exchange(&channel, &exchange).await;
    let text = format!(
        "{}[[route]]\nname = \"nowhere\"\nevent = \"t\"\nto = [{{ exchange = {exchange:?}, routing_key = \"unbound\" }}]\n",
        names.header()
    );
    let routes = RoutesDir::new(&text);
    let running = Running::start(&routes.path, |s| s.publish_retries = 2).await;

    broker.publish_event(&names.source(), "t", json!({})).await;
    let got = take_one(&channel, &names.dead(), WAIT).await;
    let error = header(&got.delivery.properties, "x-dispatch-error").unwrap();
    assert!(
        error.starts_with("unroutable: publishing to exchange"),
        "{error}"
    );
    let metrics = running.metrics().await;
    assert!(
        metrics.contains("dispatcher_publish_retries_total 2"),
        "{metrics}"
    );

    running.stop().await;
    delete_exchange(&channel, &exchange).await;
    broker.cleanup(&names.queues(&[])).await;
}

#[tokio::test]
async fn a_table_naming_a_missing_exchange_is_refused() {
    let names = Names::new("noexchange");
    let routes = RoutesDir::new(&names.simple("r", "t", "out"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;
    routes.write(&format!(
        "{}[[route]]\nname = \"r\"\nevent = \"t\"\nto = [{{ exchange = {:?} }}]\n",
        names.header(),
        names.q("missing-exchange")
    ));
    let (status, body) = running.post("/reload").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["details"]["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{body}"
    );
    assert_eq!(running.generation().await, 1);
    assert!(
        running.get("/readyz").await.0 == 200,
        "a refused reload does not stop the flow"
    );
    broker.publish_event(&names.source(), "t", json!({})).await;
    take_one(&broker.channel().await, &names.q("out"), WAIT).await;
    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}
