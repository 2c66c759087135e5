//! `dispatcher tap` (the real binary) following a real dispatcher binary with an admin
//! token: it sees forwarded, unrouted and dead-lettered events with their routes,
//! targets and reasons, its filters keep only what they name, and without the token it
//! fails saying why. And a tap client that stops reading: every event is still
//! forwarded, and when it reads again it is told how many it lost.

use std::process::Stdio;

use events::lapin::BasicProperties;
use events::testing::eventually;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{Broker, Names, RoutesDir};
use crate::spawned::{Dispatcher, WAIT};

const TOKEN: &str = "tap-admin-token-Zq81";

/// Starts `dispatcher tap ARGS` against `addr` with `env`, and waits until it is attached.
async fn tap(addr: &str, env: &[(&str, &str)], args: &[&str]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dispatcher"));
    command
        .args(["tap", "--addr", addr])
        .args(args)
        .env_remove("DISPATCHER_ADMIN_TOKEN")
        .env_remove("DISPATCHER_ADMIN_TOKEN_FILE")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let attached = tokio::time::timeout(WAIT, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.starts_with("tapping ") {
                return;
            }
        }
        panic!("dispatcher tap ended before attaching");
    });
    attached
        .await
        .expect("dispatcher tap attached within the wait");
    child
}

/// Waits for `child` to exit 0 and returns its standard output's lines.
async fn lines(child: Child) -> Vec<String> {
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("dispatcher tap ended within the wait")
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn dispatcher_tap_shows_each_outcome_and_filters_with_the_admin_token() {
    let names = Names::new("tap");
    let routes = RoutesDir::new(&names.simple("users", "user.created", "users"));
    let dispatcher =
        Dispatcher::start(&routes.path, &[], &[("DISPATCHER_ADMIN_TOKEN", TOKEN)]).await;
    let addr = dispatcher.addr.clone();
    // Consuming, so its queues are declared before anything is published.
    eventually(WAIT, "the dispatcher to be ready", || dispatcher.ready()).await;

    let refused = Command::new(env!("CARGO_BIN_EXE_dispatcher"))
        .args(["tap", "--addr", &addr, "--limit", "1"])
        .env_remove("DISPATCHER_ADMIN_TOKEN")
        .env_remove("DISPATCHER_ADMIN_TOKEN_FILE")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("401") && said.contains("DISPATCHER_ADMIN_TOKEN"),
        "{said}"
    );

    let everything = tap(
        &addr,
        &[("DISPATCHER_ADMIN_TOKEN", TOKEN)],
        &["--json", "--body", "--limit", "3"],
    )
    .await;
    let token_file = routes.dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let filtered = tap(
        &addr,
        &[("DISPATCHER_ADMIN_TOKEN_FILE", token_file.to_str().unwrap())],
        &["--type", "order.*", "--outcome", "unrouted", "--limit", "1"],
    )
    .await;

    let broker = Broker::new().await;
    let source = names.source();
    let created = broker
        .publish_event(&source, "user.created", json!({ "id": 1 }))
        .await;
    let placed = broker
        .publish_event(&source, "order.placed", json!({ "id": 2 }))
        .await;
    let properties =
        BasicProperties::default().with_content_type(events::envelope::CONTENT_TYPE.into());
    broker.publish_raw(&source, b"not json", properties).await;

    let seen: Vec<Value> = lines(everything)
        .await
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let by_outcome = |outcome: &str| {
        seen.iter()
            .find(|e| e["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no {outcome} event in {seen:?}"))
    };
    let forwarded = by_outcome("forwarded");
    assert_eq!(forwarded["id"], created.id.as_str());
    assert_eq!(forwarded["type"], "user.created");
    assert_eq!(forwarded["routes"], json!(["users"]));
    assert_eq!(forwarded["targets"], json!([names.q("users")]));
    assert!(forwarded["body"].as_str().unwrap().contains("user.created"));
    let unrouted = by_outcome("unrouted");
    assert_eq!(unrouted["id"], placed.id.as_str());
    assert_eq!(unrouted["targets"], json!([names.unrouted()]));
    let dead = by_outcome("dead_lettered");
    assert_eq!(dead["reason"], "not_json");
    assert_eq!(dead["targets"], json!([names.dead()]));

    let filtered = lines(filtered).await;
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert!(filtered[0].contains("unrouted"), "{filtered:?}");
    assert!(filtered[0].contains("order.placed"), "{filtered:?}");
    assert!(filtered[0].contains(placed.id.as_str()), "{filtered:?}");

    drop(dispatcher);
    broker.cleanup(&names.queues(&["users"])).await;
}

/// Events of about 3 kB, so that a tap with bodies writes far more than the socket
/// buffers hold.
const STALLED_EVENTS: u32 = 6_000;

#[tokio::test]
async fn a_tap_that_stops_reading_never_holds_up_forwarding_and_is_told_what_it_lost() {
    let names = Names::new("tap-stalled");
    let routes = RoutesDir::new(&names.simple("users", "user.created", "users"));
    let running = crate::common::Running::start(&routes.path, |_| {}).await;
    let broker = Broker::new().await;
    // Attached, then never read while the events flow.
    let mut stalled = reqwest::get(running.url("/tap?body=true")).await.unwrap();
    assert_eq!(stalled.status(), 200);
    eventually(WAIT, "the tap to be attached", || async {
        let (_, stats) = running.get("/stats").await;
        (stats["tap_watchers"] == 1).then_some(())
    })
    .await;

    let pad = "x".repeat(3_000);
    let mut confirms = Vec::new();
    for n in 0..STALLED_EVENTS {
        let event = events::CloudEvent::new("test", "user.created", json!({ "n": n, "pad": pad }));
        let confirm = broker
            .publisher
            .send(
                "",
                &names.source(),
                &event.to_json_vec(),
                event.amqp_properties(),
            )
            .await
            .unwrap();
        confirms.push(confirm.wait());
    }
    for result in futures_util::future::join_all(confirms).await {
        result.unwrap();
    }
    let target = names.q("users");
    eventually(WAIT, "every event forwarded", || async {
        let count = events::testing::message_count(&broker.connection, &target).await;
        (count == Some(STALLED_EVENTS)).then_some(())
    })
    .await;

    // Reading again: the oldest events were dropped for this client, and it is told.
    let mut seen = String::new();
    let dropped = tokio::time::timeout(WAIT, async {
        while let Some(chunk) = stalled.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(at) = seen.find("event: dropped\ndata: ") {
                let rest = &seen[at + "event: dropped\ndata: ".len()..];
                if let Some(end) = rest.find('\n') {
                    let data: Value = serde_json::from_str(&rest[..end]).unwrap();
                    return data["dropped"].as_u64().unwrap();
                }
            }
        }
        panic!("the tap ended without a dropped notice");
    })
    .await
    .expect("a dropped notice within the wait");
    assert!(dropped > 0);
    drop(stalled);
    running.stop().await;
    broker.cleanup(&names.queues(&["users"])).await;
}
