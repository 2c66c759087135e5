//! The real `dispatcher` binary: SIGHUP reloads, SIGTERM exits 0 after settling what is
//! in flight, and the per-event debug line carries the event's trace id (JSON logs).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::{Broker, Names, RoutesDir, WAIT};
use events::TraceParent;
use events::testing::{eventually, take_one};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

/// The binary, its collected stdout lines, and its admin address.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    addr: String,
}

impl Process {
    async fn start(routes: &std::path::Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dispatcher"))
            .args([
                "--routes",
                routes.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .env("AMQP_URL", events::testing::amqp_url())
            .env("QUEUE_TYPE", events::testing::queue_type().as_str())
            .env("RUST_LOG", "info,dispatcher=debug")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let addr = eventually(WAIT, "the admin address in the log", || {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                l.split("listening on http://")
                    .nth(1)
                    .map(|rest| rest.split('"').next().unwrap_or(rest).to_owned())
            });
            async move { found }
        })
        .await;
        let process = Self { child, lines, addr };
        eventually(WAIT, "readiness", || async {
            let status = reqwest::get(format!("http://{}/readyz", process.addr))
                .await
                .ok()?
                .status();
            (status == 200).then_some(())
        })
        .await;
        process
    }

    fn signal(&self, signal: Signal) {
        kill(
            Pid::from_raw(i32::try_from(self.child.id()).unwrap()),
            signal,
        )
        .unwrap();
    }

    fn log_contains(&self, needle: &str) -> Option<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    async fn generation(&self) -> u64 {
        let body: serde_json::Value = reqwest::get(format!("http://{}/routes", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["generation"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn sighup_reloads_sigterm_exits_zero_and_logs_carry_the_trace_id() {
    let names = Names::new("binary");
    // The watched directory holds a symlink to a file elsewhere: edits to that file
    // produce no watcher event, so the reload below can only come from SIGHUP.
    let elsewhere = RoutesDir::new(&names.simple("r", "t", "one"));
    let watched = tempfile::tempdir().unwrap();
    let link = watched.path().join("routes.toml");
    std::os::unix::fs::symlink(&elsewhere.path, &link).unwrap();
    let broker = Broker::new().await;
    let mut process = Process::start(&link).await;

    let trace = TraceParent::new_root();
    let event = events::CloudEvent::new("user-service", "t", json!({})).with_traceparent(&trace);
    broker
        .publisher
        .publish_to_queue(
            &names.source(),
            &event.to_json_vec(),
            event.amqp_properties(),
        )
        .await
        .unwrap();
    let channel = broker.channel().await;
    take_one(&channel, &names.q("one"), WAIT).await;
    let line = eventually(WAIT, "the forwarded line with the trace id", || {
        let found = process.log_contains(&trace.trace_id());
        async move { found }
    })
    .await;
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["span"]["event_id"], event.id.as_str(), "{line}");
    assert_eq!(line["span"]["event_type"], "t", "{line}");

    elsewhere.write(&names.simple("r", "t", "two"));
    process.signal(Signal::SIGHUP);
    eventually(WAIT, "generation 2 after SIGHUP", || async {
        (process.generation().await == 2).then_some(())
    })
    .await;
    assert!(process.log_contains("\"trigger\":\"sighup\"").is_some());
    broker.publish_event(&names.source(), "t", json!({})).await;
    take_one(&channel, &names.q("two"), WAIT).await;

    process.signal(Signal::SIGTERM);
    let status = tokio::task::spawn_blocking(move || process.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    broker.cleanup(&names.queues(&["one", "two"])).await;
}

#[tokio::test]
async fn the_binary_refuses_to_start_on_an_invalid_table_and_says_where() {
    let routes = RoutesDir::new("[[route]]\nname = \"r\"\nevent = \"a.\"\nto = [\"q\"]\n");
    let output = tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_dispatcher"))
            .args([
                "--routes",
                routes.path.to_str().unwrap(),
                "--addr",
                "127.0.0.1:0",
            ])
            .output()
            .unwrap();
        (output, routes)
    })
    .await
    .unwrap()
    .0;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("routes.toml:3:9: event pattern `a.` has an empty word"),
        "{stderr}"
    );
}
