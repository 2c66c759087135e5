//! Archive and replay end to end: order-service rebuilt from the archive after its
//! database is lost, and a new route given the history while the existing targets get
//! nothing twice.

use std::time::{Duration, SystemTime};

use e2e::replay::{delete_database, sent_to, snapshot_rows};
use e2e::{Options, System};
use events::testing::{eventually, message_count, unique};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// Waits until the dispatcher has archived `count` events.
async fn archived(system: &System, count: u64) {
    eventually(WAIT, &format!("{count} events archived"), || async {
        let routes = system.dispatcher_routes().await.ok()?;
        (routes["archive"]["archived"].as_u64() == Some(count)).then_some(())
    })
    .await;
}

async fn send(system: &System, method: reqwest::Method, path: &str, status: u16) {
    let response = system
        .http
        .request(method, system.users.url(path))
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), status, "{path}");
}

#[tokio::test]
async fn order_service_rebuilt_by_a_replay_has_the_same_snapshots_row_for_row() {
    let mut system = System::start(Options::default()).await.unwrap();
    system.enable_archive("").await.unwrap();
    let from =
        humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(1)).to_string();
    let run = unique("rebuild");
    let mut ids = Vec::new();
    for n in 0..4 {
        let user = system
            .create_user(&format!("User {n}"), &format!("{run}.{n}@example.com"))
            .await
            .unwrap();
        ids.push(user["id"].as_i64().unwrap());
    }
    send(
        &system,
        reqwest::Method::PATCH,
        &format!("/users/{}", ids[0]),
        200,
    )
    .await;
    send(
        &system,
        reqwest::Method::PATCH,
        &format!("/users/{}", ids[1]),
        200,
    )
    .await;
    send(
        &system,
        reqwest::Method::DELETE,
        &format!("/users/{}", ids[2]),
        204,
    )
    .await;
    archived(&system, 7).await;
    let db = system.dir.path().join("orders.db");
    let before = eventually(WAIT, "order-service to apply all 7 events", || async {
        let rows = snapshot_rows(&db).ok()?;
        let versions: Vec<i64> = rows.iter().map(|r| r.3).collect();
        let tombstones = rows.iter().filter(|r| r.4).count();
        (versions == [2, 2, 2, 1] && tombstones == 1).then_some(rows)
    })
    .await;

    // The loss: order-service stops, its database is deleted, it starts empty.
    system.orders.as_mut().unwrap().stop().await.unwrap();
    delete_database(&db).unwrap();
    system.start_orders().await.unwrap();
    assert!(snapshot_rows(&db).unwrap().is_empty());

    let summary = system
        .replay(&["--route", "user-snapshots", "--from", &from])
        .await
        .unwrap();
    assert_eq!(sent_to(&summary, &system.queues.order), 7, "{summary}");
    // Wait for the same versions and deletions, then compare every column.
    let shape = |rows: &[e2e::replay::Row]| -> Vec<(i64, i64, bool)> {
        rows.iter().map(|r| (r.0, r.3, r.4)).collect()
    };
    let after = eventually(WAIT, "the snapshots rebuilt", || async {
        let rows = snapshot_rows(&db).ok()?;
        (shape(&rows) == shape(&before)).then_some(rows)
    })
    .await;
    assert_eq!(after, before, "identical, row for row");
    assert!(system.snapshot(ids[2]).await.unwrap().is_none());

    system.delete_archive().await.unwrap();
    system.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_new_route_gets_the_history_and_the_existing_targets_nothing_twice() {
    let options = Options {
        with_orders: false,
        ..Options::default()
    };
    let system = System::start(options).await.unwrap();
    system.enable_archive("").await.unwrap();
    let run = unique("history");
    for n in 0..3 {
        system
            .create_user(&format!("User {n}"), &format!("{run}.{n}@example.com"))
            .await
            .unwrap();
    }
    archived(&system, 3).await;
    let connection =
        events::amqp::connect_once(&system.endpoints(), "e2e-replay", Duration::from_secs(10))
            .await
            .unwrap();
    let queues = &system.queues;
    for queue in [&queues.order, &queues.tap] {
        events::testing::wait_for_count(&connection, queue, 3, WAIT).await;
    }

    let audit = format!("{}.audit", queues.dispatch);
    let route =
        format!("\n[[route]]\nname = \"audit\"\nevent = \"user_created\"\nto = [\"{audit}\"]\n");
    system.enable_archive(&route).await.unwrap();
    let summary = system
        .replay(&["--route", "audit", "--from", "1h"])
        .await
        .unwrap();
    assert_eq!(sent_to(&summary, &audit), 3, "{summary}");
    assert!(summary.contains("read 3 events"), "{summary}");
    // The replay ended with every publish confirmed: the counts are final.
    assert_eq!(message_count(&connection, &audit).await, Some(3));
    assert_eq!(message_count(&connection, &queues.order).await, Some(3));
    assert_eq!(message_count(&connection, &queues.tap).await, Some(3));

    events::testing::delete_queues(&connection, &[audit.as_str()]).await;
    let _ = connection.close(200, "ok".into()).await;
    system.delete_archive().await.unwrap();
    system.shutdown().await.unwrap();
}
