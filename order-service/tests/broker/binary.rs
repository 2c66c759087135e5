//! The real binary: settings from the environment, the bound port in its log, the trace
//! id of each event in its JSON logs, and exit code 0 on SIGTERM.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use events::TraceParent;
use events::testing::{amqp_url, eventually, queue_type};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Fixture, WAIT, deleted, http, upsert};

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

/// The binary, started on the fixture's queue and database; its stdout lines; its URL.
async fn spawn(fx: &Fixture) -> (Child, Arc<Mutex<Vec<String>>>, String) {
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
    (child, lines, base)
}

fn pid(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_the_trace_id_of_each_event_in_json_and_exits_0_on_sigterm() {
    let fx = Fixture::new("order.bin").await;
    let (mut child, lines, base) = spawn(&fx).await;
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

    kill(pid(&child), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the service exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_stream_loses_nothing_and_its_restart_converges() {
    let fx = Fixture::new("order.kill9").await;
    // 50 users × 8 versions, the last version of every fifth user a delete.
    let mut stream = Vec::new();
    for version in 1..=8u64 {
        for id in 1..=50i64 {
            stream.push(if version == 8 && id % 5 == 0 {
                deleted(id, version)
            } else {
                upsert(id, version, &format!("u{id}v{version}"))
            });
        }
    }
    let (child, lines, _) = spawn(&fx).await;
    let (publisher, queue) = (fx.publisher.clone(), fx.queue.clone());
    let publishing = tokio::spawn(async move {
        for event in &stream {
            let body = event.to_json_vec();
            publisher
                .publish_to_queue(&queue, &body, event.amqp_properties())
                .await
                .unwrap();
        }
    });
    // Killed while events are still being published and applied.
    eventually(WAIT, "some events applied", || async {
        find_line(&lines, &["event applied"])
    })
    .await;
    kill(pid(&child), Signal::SIGKILL).unwrap();
    drop(child);

    let (mut child, _, base) = spawn(&fx).await;
    publishing.await.unwrap();
    let client = http();
    for id in 1..=50i64 {
        let expected = if id % 5 == 0 { 404 } else { 200 };
        eventually(WAIT, &format!("user {id} converged"), || async {
            let response = client.get(format!("{base}/users/{id}")).send().await.ok()?;
            let status = response.status().as_u16();
            let body: Value = response.json().await.ok()?;
            let done = status == expected && (expected == 404 || body["version"] == 8);
            done.then_some(())
        })
        .await;
    }
    eventually(WAIT, "the queue drained", || async {
        let count = events::testing::message_count(&fx.connection, &fx.queue).await;
        (count == Some(0)).then_some(())
    })
    .await;
    kill(pid(&child), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    fx.cleanup().await;
}
