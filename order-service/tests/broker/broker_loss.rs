//! Losing the broker: the service reconnects with backoff and resumes consuming, both
//! when the broker cancels its consumer and when it closes its connection.

use std::process::Command;

use events::lapin::options::QueueDeleteOptions;
use events::testing::eventually;

use crate::{Fixture, Service, WAIT, upsert};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_queue_cancels_the_consumer_and_the_service_redeclares_it_and_resumes() {
    let fx = Fixture::new("order.cancelled").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    fx.publish(&upsert(1, 1, "ann")).await;
    service.wait_user_version(1, 1).await;

    let channel = fx.connection.create_channel().await.unwrap();
    channel
        .queue_delete(fx.queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    // Publishing needs the queue back: the service declares it again when it reconnects.
    eventually(WAIT, "the queue declared again", || async {
        events::testing::message_count(&fx.connection, &fx.queue).await
    })
    .await;
    service.wait_ready().await;
    fx.publish(&upsert(1, 2, "anne")).await;
    service.wait_user_version(1, 2).await;
    service.stop().await.unwrap();
    fx.cleanup().await;
}

/// The broker-side id of the connection named `name`, from `rabbitmqctl`.
fn connection_pid(name: &str) -> Option<String> {
    let output = Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "-q"])
        .output()
        .expect(
            "this test closes a connection from the broker side with `rabbitmqctl`, \
             the broker's CLI: put it on PATH (it comes with rabbitmq-server)",
        );
    assert!(output.status.success(), "rabbitmqctl failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.contains(&format!("\"{name}\"")))
        .and_then(|line| line.split('\t').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_broker_is_reopened_and_consuming_resumes() {
    let fx = Fixture::new("order.closed").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    fx.publish(&upsert(1, 1, "ann")).await;
    service.wait_user_version(1, 1).await;

    let name = format!("order-service {}", fx.queue);
    let first = eventually(WAIT, "the service's connection", || async {
        connection_pid(&name)
    })
    .await;
    let closed = Command::new("rabbitmqctl")
        .args(["close_connection", &first, "test: simulated broker loss"])
        .output()
        .unwrap();
    assert!(closed.status.success(), "{closed:?}");
    eventually(WAIT, "a new connection", || async {
        connection_pid(&name).filter(|pid| *pid != first)
    })
    .await;
    fx.publish(&upsert(1, 2, "anne")).await;
    service.wait_user_version(1, 2).await;
    service.stop().await.unwrap();
    fx.cleanup().await;
}
