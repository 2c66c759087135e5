//! Broker loss: the broker closes the dispatcher's consume connection, then its publish
//! connection, mid-stream (`rabbitmqctl close_connection`, as an operator or a broker
//! restart would). The dispatcher reconnects and nothing is lost.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use crate::common::{Broker, Names, RoutesDir, Running, WAIT};
use events::testing::{drain, eventually, message_count, wait_for_count};

const N: u32 = 2000;

/// The Erlang pid (`<rabbit@host.a.b.c>`) of the connection named `name`, via rabbitmqctl.
fn connection_pid(name: &str) -> Option<String> {
    let output = Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--no-table-headers",
            "--quiet",
        ])
        .output()
        .expect("rabbitmqctl must be installed next to the test broker for this test");
    let needle = format!("\"{name}\"");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.contains(&needle))
        .and_then(|line| line.split('\t').next())
        .map(str::to_owned)
}

async fn close_connection(name: &str) {
    let name = name.to_owned();
    let pid = eventually(WAIT, &format!("connection {name} in rabbitmqctl"), || {
        let name = name.clone();
        async move {
            tokio::task::spawn_blocking(move || connection_pid(&name))
                .await
                .unwrap()
        }
    })
    .await;
    let status = tokio::task::spawn_blocking(move || {
        Command::new("rabbitmqctl")
            .args(["close_connection", &pid, "fault test"])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "rabbitmqctl close_connection failed");
}

#[tokio::test]
async fn closed_connections_are_reopened_and_nothing_is_lost() {
    let names = Names::new("loss");
    let routes = RoutesDir::new(&names.simple("r", "t", "out"));
    let broker = Broker::new().await;
    broker.declare(&[&names.source()]).await;
    let ids: HashSet<String> = broker
        .publish_many(&names.source(), "t", N)
        .await
        .into_iter()
        .collect();

    let running = Running::start(&routes.path, |s| s.prefetch = 50).await;
    let instance = running.get("/healthz").await.1["instance"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_count(&broker.connection, &names.q("out"), N / 10, WAIT).await;
    close_connection(&format!("{instance} consume")).await;
    running.wait_ready().await;
    close_connection(&format!("{instance} publish")).await;
    running.wait_ready().await;
    wait_for_count(
        &broker.connection,
        &names.q("out"),
        N,
        Duration::from_secs(60),
    )
    .await;

    let metrics = running.metrics().await;
    let sessions: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dispatcher_broker_sessions_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        sessions >= 2,
        "the dispatcher reconnected ({sessions} sessions)"
    );
    running.stop().await;

    let channel = broker.channel().await;
    let received = drain(&channel, &names.q("out")).await;
    let seen: HashSet<String> = received
        .iter()
        .map(|m| {
            serde_json::from_slice::<serde_json::Value>(&m.delivery.data).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.difference(&seen).count(), 0, "no event is lost");
    assert_eq!(
        message_count(&broker.connection, &names.source()).await,
        Some(0)
    );
    broker.cleanup(&names.queues(&["out"])).await;
}
