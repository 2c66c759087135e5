//! End to end: the three real binaries on free ports, with temporary databases and
//! routes files, against the real broker, exercised the way a user does on day one.

use std::time::Duration;

use e2e::{Options, System};
use events::testing::{broker, eventually, take_one, unique};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

async fn snapshot_where(system: &System, id: i64, check: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, &format!("snapshot of user {id}"), || async {
        system.snapshot(id).await.unwrap().filter(|s| check(s))
    })
    .await
}

#[tokio::test]
async fn a_created_user_reaches_order_service_and_updates_and_deletes_follow() {
    let system = System::start(Options::default()).await.unwrap();
    let email = format!("{}@example.com", unique("alice"));
    let user = system.create_user("Alice", &email).await.unwrap();
    let id = user["id"].as_i64().unwrap();
    let snapshot = snapshot_where(&system, id, |_| true).await;
    assert_eq!(snapshot["name"], "Alice");
    assert_eq!(snapshot["email"], email);
    assert_eq!(snapshot["version"], 1);

    let patched = system
        .http
        .patch(system.users.url(&format!("/users/{id}")))
        .json(&json!({"name": "Alice Liddell"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let snapshot = snapshot_where(&system, id, |s| s["version"] == 2).await;
    assert_eq!(snapshot["name"], "Alice Liddell");

    let deleted = system
        .http
        .delete(system.users.url(&format!("/users/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    eventually(WAIT, "the snapshot to be gone", || async {
        system.snapshot(id).await.unwrap().is_none().then_some(())
    })
    .await;
    system.shutdown().await.unwrap();
}

async fn generation(system: &System) -> (u64, Value) {
    let body: Value = system
        .http
        .get(system.dispatcher.url("/routes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["generation"].as_u64().unwrap(),
        body["last_reload_error"].clone(),
    )
}

async fn wait_generation(system: &System, above: u64) -> u64 {
    eventually(
        WAIT,
        &format!("a routing table generation above {above}"),
        || async {
            let (now, _) = generation(system).await;
            (now > above).then_some(now)
        },
    )
    .await
}

/// Creates a user and asserts its event reaches `queue` (and order-service). Earlier
/// users' events in `queue` are skipped.
async fn user_event_reaches(system: &System, queue: &str) {
    let connection = broker().await;
    let channel = connection.create_channel().await.unwrap();
    let email = format!("{}@example.com", unique("live"));
    let id = system.create_user("Live Edit", &email).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    loop {
        let message = take_one(&channel, queue, WAIT).await;
        let event: Value = serde_json::from_slice(&message.delivery.data).unwrap();
        if event["data"]["id"] == id {
            break;
        }
        assert!(
            event["data"]["id"].as_i64().unwrap() < id,
            "only earlier users' events before it"
        );
    }
    snapshot_where(system, id, |_| true).await;
}

#[tokio::test]
async fn live_edits_of_routes_toml_apply_to_the_next_event_and_a_broken_edit_is_refused() {
    let system = System::start(Options::default()).await.unwrap();
    let connection = broker().await;
    let (audit, archive) = (unique("e2e.audit"), unique("e2e.archive"));
    let route = |name: &str, queue: &str| {
        format!("\n[[route]]\nname = \"{name}\"\nevent = \"user_created\"\nto = [\"{queue}\"]\n")
    };

    // An in-place write, as `echo >>` or a simple editor does.
    let (g0, _) = generation(&system).await;
    std::fs::write(
        &system.routes,
        system.queues.routes_toml(&route("audit", &audit)),
    )
    .unwrap();
    let g1 = wait_generation(&system, g0).await;
    user_event_reaches(&system, &audit).await;

    // A rename-save, as vim and most IDEs do.
    let tmp = system.dir.path().join(".routes.toml.swp");
    let both = format!("{}{}", route("audit", &audit), route("archive", &archive));
    std::fs::write(&tmp, system.queues.routes_toml(&both)).unwrap();
    std::fs::rename(&tmp, &system.routes).unwrap();
    let g2 = wait_generation(&system, g1).await;
    user_event_reaches(&system, &archive).await;

    // A broken edit: refused with its position, the last good table keeps routing.
    std::fs::write(
        &system.routes,
        "source = \"x\"\n[[route]]\nname = \"oops\"\nevent = 42\n",
    )
    .unwrap();
    let error = eventually(WAIT, "the refused reload to be reported", || async {
        let (now, error) = generation(&system).await;
        assert_eq!(now, g2, "a broken table must not be loaded");
        (!error.is_null()).then_some(error)
    })
    .await;
    assert!(
        error.to_string().contains("routes.toml:"),
        "file:line:col in {error}"
    );
    user_event_reaches(&system, &audit).await;
    user_event_reaches(&system, &archive).await;

    events::testing::delete_queues(&connection, &[&audit, &archive]).await;
    system.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_traceparent_of_a_post_shows_in_the_logs_of_all_three_services() {
    let system = System::start(Options::default()).await.unwrap();
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let response = system
        .http
        .post(system.users.url("/users"))
        .header("traceparent", &traceparent)
        .json(&json!({"name": "Traced", "email": format!("{}@example.com", unique("trace"))}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    snapshot_where(&system, id, |_| true).await;
    for service in [&system.users, &system.dispatcher, system.orders().unwrap()] {
        eventually(WAIT, "the trace id in the logs", || async {
            service.logged(&trace_id).then_some(())
        })
        .await;
        let line = service
            .logs()
            .into_iter()
            .find(|l| l.contains(&trace_id))
            .unwrap();
        let parsed: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("JSON log line: {line}"));
        assert!(parsed.is_object());
    }
    system.shutdown().await.unwrap();
}

#[tokio::test]
async fn users_created_while_order_service_is_down_all_arrive_once_it_starts() {
    let options = Options {
        with_orders: false,
        ..Options::default()
    };
    let mut system = System::start(options).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let email = format!("{}@example.com", unique(&format!("offline{i}")));
        ids.push(
            system
                .create_user(&format!("Offline {i}"), &email)
                .await
                .unwrap()["id"]
                .as_i64()
                .unwrap(),
        );
    }
    system.start_orders().await.unwrap();
    for id in ids {
        let snapshot = snapshot_where(&system, id, |_| true).await;
        assert_eq!(snapshot["version"], 1);
    }
    system.shutdown().await.unwrap();
}
