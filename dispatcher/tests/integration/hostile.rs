//! What a buggy or hostile producer can send, against the real broker: headers near the
//! connection's frame size, a huge bad attribute, many large bodies; and an admin API
//! that answers while the forwarder's runtime is busy.

use crate::common::{Broker, Names, RoutesDir, Running, WAIT, header};
use events::amqp::content_header_frame_size;
use events::lapin::BasicProperties;
use events::lapin::types::{AMQPValue, FieldTable};
use events::testing::{take_one, wait_for_count};
use serde_json::json;

/// The frame size the dispatcher negotiates in these tests (the broker's is 128 KiB).
const FRAME_MAX: usize = 16_384;

fn with_frame_max(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}frame_max={FRAME_MAX}")
}

/// Properties whose content header frame is exactly `size` bytes, the padding in `x-big`.
fn properties_of_size(size: usize) -> BasicProperties {
    let with = |padding: usize| {
        let mut headers = FieldTable::default();
        headers.insert(
            "x-big".into(),
            AMQPValue::LongString("p".repeat(padding).into()),
        );
        headers.insert("x-tenant".into(), AMQPValue::LongString("acme".into()));
        BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_message_id("big-1".into())
            .with_headers(headers)
    };
    let properties = with(size - content_header_frame_size(&with(0)));
    assert_eq!(content_header_frame_size(&properties), size);
    properties
}

#[tokio::test]
async fn headers_near_the_frame_size_are_dead_lettered_and_the_connection_stays_up() {
    let names = Names::new("frame");
    let routes = RoutesDir::new(&names.simple("orders", "user_created", "out"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |s| s.amqp.url = with_frame_max(&s.amqp.url)).await;

    // It reaches the dispatcher (under the frame size, with room for a header the broker
    // may add), but the copy with the dispatch headers would not fit.
    let properties = properties_of_size(FRAME_MAX - 40);
    let body = br#"{"specversion":"1.0","id":"big-1","source":"s","type":"user_created"}"#;
    broker.publish_raw(&names.source(), body, properties).await;
    let good = broker
        .publish_event(&names.source(), "user_created", json!({"id": 2}))
        .await;

    let channel = broker.channel().await;
    let dead = take_one(&channel, &names.dead(), WAIT).await;
    assert_eq!(dead.delivery.data, body, "the body is kept byte for byte");
    let p = &dead.delivery.properties;
    let error = header(p, "x-dispatch-error").unwrap();
    assert!(error.starts_with("headers_too_large: "), "{error}");
    assert!(
        error.contains(&format!("frame_max of {FRAME_MAX} bytes")),
        "{error}"
    );
    assert_eq!(header(p, "x-dispatch-dropped").as_deref(), Some("x-big"));
    assert_eq!(header(p, "x-big"), None);
    assert_eq!(header(p, "x-tenant").as_deref(), Some("acme"));
    assert_eq!(p.message_id().as_ref().map(|m| m.as_str()), Some("big-1"));
    let forwarded = take_one(&channel, &names.q("out"), WAIT).await;
    assert_eq!(forwarded.delivery.data, good.to_json_vec());

    let metrics = running.metrics().await;
    assert!(
        metrics.contains("dispatcher_events_dead_lettered_total{reason=\"headers_too_large\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        running.metric("dispatcher_broker_sessions_total").await,
        1.0,
        "the connection was never closed"
    );
    assert_eq!(running.get("/readyz").await.0, 200);

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

#[tokio::test]
async fn a_huge_bad_attribute_makes_a_bounded_error_header() {
    let names = Names::new("huge-attr");
    let routes = RoutesDir::new(&names.simple("orders", "user_created", "out"));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;

    let version = "9".repeat(3_000_000);
    let body = json!({"specversion": version, "id": "1", "source": "s", "type": "user_created"});
    let body = serde_json::to_vec(&body).unwrap();
    let properties = BasicProperties::default()
        .with_content_type("application/cloudevents+json".into())
        .with_message_id("huge-1".into());
    broker.publish_raw(&names.source(), &body, properties).await;

    let channel = broker.channel().await;
    let dead = take_one(&channel, &names.dead(), WAIT).await;
    assert_eq!(dead.delivery.data, body);
    let error = header(&dead.delivery.properties, "x-dispatch-error").unwrap();
    assert!(error.len() < 1200, "the reason is {} bytes", error.len());
    assert!(error.contains("bytes in all)"), "{error}");
    assert_eq!(
        running.metric("dispatcher_broker_sessions_total").await,
        1.0
    );

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

#[tokio::test]
async fn the_bodies_in_flight_stay_within_the_bytes_budget() {
    const BUDGET: u64 = 1024 * 1024;
    const COUNT: u32 = 40;
    let names = Names::new("budget");
    let routes = RoutesDir::new(&names.simple("orders", "user_created", "out"));
    let broker = Broker::new().await;
    broker.declare(&[&names.source()]).await;
    let padding = "x".repeat(256 * 1024);
    let mut largest = 0;
    for n in 0..COUNT {
        let event = events::CloudEvent::new("s", "user_created", json!({"n": n, "pad": padding}));
        let body = event.to_json_vec();
        largest = largest.max(body.len());
        broker
            .publish_raw(&names.source(), &body, event.amqp_properties())
            .await;
    }
    // Started after the queue is full, so the whole prefetch window arrives at once.
    let running = Running::start(&routes.path, |s| s.max_in_flight_bytes = BUDGET).await;

    wait_for_count(&broker.connection, &names.q("out"), COUNT, WAIT).await;
    let peak = running.metric("dispatcher_in_flight_bytes_peak").await;
    assert!(peak > 0.0, "bodies were counted");
    assert!(
        peak < (BUDGET + largest as u64) as f64,
        "peak {peak} over budget {BUDGET} + largest body {largest}"
    );
    let settled =
        || async { (running.metric("dispatcher_in_flight_bytes").await == 0.0).then_some(()) };
    events::testing::eventually(WAIT, "every body to settle", settled).await;

    running.stop().await;
    broker.cleanup(&names.queues(&["out"])).await;
}

#[tokio::test]
async fn the_admin_api_answers_while_the_forwarders_runtime_is_blocked() {
    let names = Names::new("admin-thread");
    let routes = RoutesDir::new(&names.simple("orders", "user_created", "out"));
    let broker = Broker::new().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut settings = dispatcher::Settings::with_routes(&routes.path);
    settings.amqp.url = events::testing::amqp_url();
    settings.amqp.queue_type = events::testing::queue_type();
    let shutdown = tokio_util::sync::CancellationToken::new();

    // The dispatcher on a single-threaded runtime of its own, as in production.
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    let stop = shutdown.clone();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        handle_tx.send(runtime.handle().clone()).unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            dispatcher::serve(listener, settings, stop).await
        })
    });
    let handle = handle_rx.await.unwrap();
    let client = reqwest::Client::builder().timeout(WAIT).build().unwrap();
    let get = |path: &str| client.get(format!("http://{addr}{path}")).send();
    events::testing::eventually(WAIT, "the dispatcher to be ready", || async {
        let status = get("/readyz").await.ok()?.status();
        (status == 200).then_some(())
    })
    .await;

    // Block the dispatcher's runtime thread until the admin API has answered.
    let (blocked_tx, blocked_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    handle.spawn(async move {
        blocked_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    blocked_rx.await.unwrap();
    let health = get("/healthz")
        .await
        .expect("/healthz answers while the forwarder is blocked");
    assert_eq!(health.status(), 200);
    let metrics = get("/metrics").await.expect("/metrics answers too");
    assert_eq!(metrics.status(), 200);

    release_tx.send(()).unwrap();
    shutdown.cancel();
    let stopped = tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap();
    stopped.unwrap().unwrap();
    broker.cleanup(&names.queues(&["out"])).await;
}
