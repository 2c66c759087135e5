//! The archive stream and `dispatcher replay` against the real broker: every consumed
//! event archived byte for byte, replay by the current table and to one queue, replayed
//! events never archived again, the archive added, refused and removed by reloads.

use clap::Parser;
use dispatcher::cli::{Cli, Command};
use dispatcher::replay::{ReplayArgs, Summary};
use events::lapin::BasicProperties;
use events::testing::{drain, eventually, take_one, wait_for_count};
use serde_json::json;

use crate::common::{Broker, Names, RoutesDir, Running, WAIT, header};

fn archived(names: &Names, stream: &str) -> String {
    format!(
        "{}[archive]\nstream = {stream:?}\nmax_age = \"1h\"\nmax_bytes = \"50MB\"\n\n[[route]]\nname = \"users\"\nevent = \"user_created\"\nto = [{:?}]\n",
        names.header(),
        names.q("users")
    )
}

/// `dispatcher replay` parsed from these arguments (plus the test broker).
fn replay_args(routes: &RoutesDir, args: &[&str]) -> ReplayArgs {
    let url = events::testing::amqp_url();
    let path = routes.path.display().to_string();
    let mut argv = vec![
        "dispatcher",
        "replay",
        "--routes",
        &path,
        "--amqp-url",
        &url,
    ];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Some(Command::Replay(args)) => *args,
        other => panic!("not a replay: {other:?}"),
    }
}

async fn replay(routes: &RoutesDir, args: &[&str]) -> Summary {
    let args = replay_args(routes, args);
    tokio::time::timeout(WAIT, dispatcher::replay::replay(&args, false))
        .await
        .expect("a replay ends at the end of the stream as it was at start")
        .unwrap()
}

#[tokio::test]
async fn every_consumed_event_is_archived_byte_for_byte_and_replayed_by_the_table() {
    let names = Names::new("archive");
    let stream = names.q("archive");
    let routes = RoutesDir::new(&archived(&names, &stream));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;
    let channel = broker.channel().await;

    let created = broker
        .publish_event(&names.source(), "user_created", json!({"id": 1}))
        .await;
    broker
        .publish_event(&names.source(), "order_placed", json!({}))
        .await;
    let odd = BasicProperties::default()
        .with_message_id("odd-1".into())
        .with_app_id("tests".into());
    broker
        .publish_raw(&names.source(), b"\xffnot json", odd)
        .await;
    take_one(&channel, &names.q("users"), WAIT).await;
    take_one(&channel, &names.unrouted(), WAIT).await;
    take_one(&channel, &names.dead(), WAIT).await;
    eventually(WAIT, "3 events archived", || async {
        let (_, body) = running.get("/routes").await;
        (body["archive"]["archived"] == 3).then_some(body)
    })
    .await;
    let (_, body) = running.get("/routes").await;
    assert_eq!(body["archive"]["stream"], stream);
    assert_eq!(body["archive"]["max_age_seconds"], 3600);
    let metrics = running.metrics().await;
    assert!(
        metrics.contains(&format!(
            "dispatcher_events_archived_total{{stream=\"{stream}\"}} 3"
        )),
        "{metrics}"
    );

    // The whole archive to one queue: every event, byte for byte, with its properties.
    let copies = names.q("copies");
    let summary = replay(&routes, &["--from", "10m", "--to-queue", &copies]).await;
    assert_eq!(summary.read, 3);
    assert_eq!(summary.sent.get(&copies), Some(&3));
    wait_for_count(&broker.connection, &copies, 3, WAIT).await;
    let got = drain(&channel, &copies).await;
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.delivery.data.as_slice()).collect();
    assert_eq!(bodies[0], created.to_json_vec().as_slice());
    assert_eq!(bodies[2], b"\xffnot json");
    let odd = &got[2].delivery.properties;
    assert_eq!(odd.message_id().as_ref().unwrap().as_str(), "odd-1");
    assert_eq!(odd.app_id().as_ref().unwrap().as_str(), "tests");
    for message in &got {
        let properties = &message.delivery.properties;
        assert!(header(properties, "x-dispatch-received-at").is_some());
        assert_eq!(
            header(properties, "x-dispatch-replay"),
            Some(summary.id.clone())
        );
        assert_eq!(
            header(properties, "x-dispatch-replayed-from"),
            Some(stream.clone())
        );
        assert_eq!(header(properties, "x-stream-offset"), None);
    }

    // By the table: only the routed event goes, to its route's target.
    let summary = replay(&routes, &["--from", "10m"]).await;
    assert_eq!(
        (summary.read, summary.unrouted, summary.unreadable),
        (3, 1, 1)
    );
    assert_eq!(summary.sent.get(&names.q("users")), Some(&1));
    let again = take_one(&channel, &names.q("users"), WAIT).await;
    assert_eq!(again.delivery.data, created.to_json_vec());
    assert_eq!(
        header(&again.delivery.properties, "x-dispatch-routes").as_deref(),
        Some("users")
    );

    // A dry run counts and sends nothing.
    let summary = replay(
        &routes,
        &["--from", "10m", "--dry-run", "--type", "user_created"],
    )
    .await;
    assert_eq!(
        (summary.read, summary.filtered, summary.unreadable),
        (3, 1, 1)
    );
    assert_eq!(summary.sent.get(&names.q("users")), Some(&1));
    assert!(drain(&channel, &names.q("users")).await.is_empty());

    running.stop().await;
    broker
        .cleanup(&[names.queues(&["users", "copies"]), vec![stream]].concat())
        .await;
}

#[tokio::test]
async fn a_replayed_event_is_not_archived_again() {
    let names = Names::new("rearchive");
    let stream = names.q("archive");
    let routes = RoutesDir::new(&archived(&names, &stream));
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;
    let channel = broker.channel().await;
    broker
        .publish_event(&names.source(), "user_created", json!({"id": 1}))
        .await;
    take_one(&channel, &names.q("users"), WAIT).await;

    // Back through the dispatcher's own source: forwarded, but not archived twice.
    let summary = replay(&routes, &["--from", "10m", "--to-queue", &names.source()]).await;
    assert_eq!(summary.sent.get(&names.source()), Some(&1));
    let forwarded = take_one(&channel, &names.q("users"), WAIT).await;
    assert_eq!(
        header(&forwarded.delivery.properties, "x-dispatch-replay"),
        Some(summary.id)
    );
    let (_, body) = running.get("/routes").await;
    assert_eq!(body["archive"]["archived"], 1);
    let summary = replay(&routes, &["--from", "10m", "--dry-run"]).await;
    assert_eq!(summary.read, 1, "the stream holds the original only");

    running.stop().await;
    broker
        .cleanup(&[names.queues(&["users"]), vec![stream]].concat())
        .await;
}

#[tokio::test]
async fn a_reload_adds_and_removes_the_archive_but_refuses_a_retention_change() {
    let names = Names::new("archive-reload");
    let stream = names.q("archive");
    let plain = names.simple("users", "user_created", "users");
    let routes = RoutesDir::new(&plain);
    let broker = Broker::new().await;
    let running = Running::start(&routes.path, |_| {}).await;
    assert!(running.get("/routes").await.1["archive"].is_null());

    routes.write(&archived(&names, &stream));
    running.wait_generation(2).await;
    assert_eq!(running.get("/routes").await.1["archive"]["stream"], stream);
    let channel = broker.channel().await;
    broker
        .publish_event(&names.source(), "user_created", json!({"id": 1}))
        .await;
    take_one(&channel, &names.q("users"), WAIT).await;
    let summary = replay(&routes, &["--from", "10m", "--dry-run"]).await;
    assert_eq!(summary.read, 1);

    routes.write(&archived(&names, &stream).replace("max_age = \"1h\"", "max_age = \"2h\""));
    let (status, body) = running.post("/reload").await;
    assert_eq!(status, 422, "{body}");
    let reason = body["details"]["reason"].as_str().unwrap();
    assert!(reason.contains("cannot be changed by a reload"), "{reason}");
    assert!(
        reason.contains("max_age = 1h") && reason.contains("max_age = 2h"),
        "{reason}"
    );
    assert_eq!(running.generation().await, 2);

    routes.write(&plain);
    running.wait_generation(3).await;
    assert!(running.get("/routes").await.1["archive"].is_null());
    broker
        .publish_event(&names.source(), "user_created", json!({"id": 2}))
        .await;
    take_one(&channel, &names.q("users"), WAIT).await;
    let metrics = running.metrics().await;
    assert!(
        metrics.contains(&format!(
            "dispatcher_events_archived_total{{stream=\"{stream}\"}} 1"
        )),
        "{metrics}"
    );

    running.stop().await;
    broker
        .cleanup(&[names.queues(&["users"]), vec![stream]].concat())
        .await;
}

#[tokio::test]
async fn a_replay_without_an_archive_or_with_an_unknown_route_says_why() {
    let names = Names::new("replay-errors");
    let plain = RoutesDir::new(&names.simple("users", "user_created", "users"));
    let args = replay_args(&plain, &["--from", "1h"]);
    let error = dispatcher::replay::replay(&args, false).await.unwrap_err();
    assert!(
        error.to_string().contains("has no [archive] table"),
        "{error:#}"
    );

    let stream = names.q("archive");
    let archived = RoutesDir::new(&archived(&names, &stream));
    let args = replay_args(&archived, &["--from", "1h", "--route", "nope"]);
    let error = dispatcher::replay::replay(&args, false).await.unwrap_err();
    assert!(
        error.to_string().contains("--route nope: no such route"),
        "{error:#}"
    );

    // The stream was never declared: no dispatcher ran with this table.
    let args = replay_args(&archived, &["--from", "1h"]);
    let error = dispatcher::replay::replay(&args, false).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("is not on the broker"),
        "{error:#}"
    );
}
