//! The real binary: settings from the environment, the bound port in its log, the trace
//! id of each event in its JSON logs, and exit code 0 on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use common::{Fixture, WAIT, http, upsert};
use events::TraceParent;
use events::testing::{amqp_url, eventually, queue_type};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Collects the child's stdout lines as they come.
fn collect(stdout: tokio::process::ChildStdout) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn find_line(lines: &Mutex<Vec<String>>, needles: &[&str]) -> Option<Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .find(|line| needles.iter().all(|n| line.contains(n)))
        .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_the_trace_id_of_each_event_in_json_and_exits_0_on_sigterm() {
    let fx = Fixture::new("order.bin").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_order-service"))
        .env("ORDER_SERVICE_ADDR", "127.0.0.1:0")
        .env("ORDER_DB", fx.db())
        .env("ORDER_QUEUE", &fx.queue)
        .env("AMQP_URL", amqp_url())
        .env("QUEUE_TYPE", queue_type().as_str())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = collect(child.stdout.take().unwrap());
    let listening = eventually(WAIT, "the listening line", || async {
        find_line(&lines, &["listening on http://"])
    })
    .await;
    let base = format!("http://{}", listening["addr"].as_str().unwrap());

    let trace: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let event = upsert(1, 1, "ann").with_traceparent(&trace);
    fx.publish(&event).await;
    let applied = eventually(WAIT, "the applied line", || async {
        find_line(&lines, &["event applied", &event.id])
    })
    .await;
    assert_eq!(
        applied["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
        "{applied}"
    );
    assert_eq!(applied["span"]["event_type"], "user_created", "{applied}");
    let response = http().get(format!("{base}/users/1")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the service exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    fx.cleanup().await;
}
