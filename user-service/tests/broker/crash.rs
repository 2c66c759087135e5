//! The real binary, killed with SIGKILL after commit and before publish: on restart the
//! outbox delivers everything that was committed, in order.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use events::testing::{broker, delete_queues};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::outage::collect;
use crate::proxy::{Proxy, upstream};
use crate::{WAIT, broker_url, declared_queue};

/// Starts the binary on port 0; returns it and the address from its "listening" line.
async fn spawn(db: &Path, queue: &str, amqp_url: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_user-service"))
        .env("USER_SERVICE_ADDR", "127.0.0.1:0")
        .env("USER_DB", db)
        .env("DISPATCH_QUEUE", queue)
        .env("AMQP_URL", amqp_url)
        .env("QUEUE_TYPE", events::testing::queue_type().as_str())
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "pretty")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some((_, rest)) = line.split_once("listening on http://") {
                let addr = rest.split_whitespace().next().unwrap();
                return addr.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("user-service exited before it listened");
    })
    .await
    .expect("user-service to log its address");
    // Keep reading so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test]
async fn events_committed_before_a_kill_9_are_delivered_after_the_restart() {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = declared_queue(&channel, "user-service.crash").await;
    // The broker is unreachable while the first process runs: commit, never publish.
    let proxy = Proxy::start(upstream(&broker_url()).await, false).await;
    let amqp_url = proxy.amqp_url(&broker_url());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.db");

    let (mut first, addr) = spawn(&db, &queue, &amqp_url).await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let response = client
            .post(format!("http://{addr}/users"))
            .json(&serde_json::json!({"name": format!("K {i}"), "email": format!("k{i}@x.io")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let user: serde_json::Value = response.json().await.unwrap();
        ids.push(user["id"].as_i64().unwrap());
    }
    first.kill().await.unwrap(); // SIGKILL: no graceful anything.

    proxy.switch_on();
    let (_second, _) = spawn(&db, &queue, &amqp_url).await;
    let (arrived, _) = collect(&channel, &queue, &ids).await;
    assert_eq!(arrived, ids, "everything committed, in commit order");
    delete_queues(&connection, &[&queue]).await;
}
