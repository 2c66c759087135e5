//! Tests of the writer thread against real SQLite files.

use std::time::Duration;

use super::*;
use crate::apply::Ignored;
use crate::event::{Change, UserEvent, UserEventType};

fn options() -> WriterOptions {
    WriterOptions {
        dedupe_retention: Some(Duration::from_secs(3600)),
        stop: CancellationToken::new(),
        retries: Counter::default(),
    }
}

fn event(id: &str, user_id: i64, version: u64, name: &str) -> Incoming {
    Incoming::User(UserEvent {
        event_id: id.into(),
        ty: UserEventType::Created,
        user_id,
        version,
        change: Change::Upsert {
            name: name.into(),
            email: format!("{name}@example.com"),
        },
        updated_at: None,
        time: None,
    })
}

fn stored_names(path: &Path) -> Vec<String> {
    let db = Connection::open(path).unwrap();
    let mut statement = db
        .prepare("SELECT name FROM users ORDER BY user_id")
        .unwrap();
    statement
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_batch_is_applied_in_order_with_one_result_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let (writer, thread) = start(&path, options()).unwrap();
    let results = writer
        .apply(vec![
            event("a", 1, 1, "ann"),
            event("b", 2, 1, "bob"),
            event("a", 1, 1, "ann"),
        ])
        .await
        .unwrap();
    assert!(matches!(results[0], Ok(Recorded::Applied(_))));
    assert!(matches!(results[1], Ok(Recorded::Applied(_))));
    assert!(
        matches!(results[2], Ok(Recorded::Ignored(Ignored::Duplicate))),
        "{results:?}"
    );
    drop(writer);
    thread.join().unwrap();
    assert_eq!(stored_names(&path), ["ann", "bob"]);
}

#[tokio::test]
async fn an_event_the_store_refuses_is_isolated_and_the_others_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let (writer, _thread) = start(&path, options()).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON users WHEN NEW.name = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom refused'); END;",
        )
        .unwrap();
    let results = writer
        .apply(vec![
            event("a", 1, 1, "ann"),
            event("b", 2, 1, "boom"),
            event("c", 3, 1, "cat"),
        ])
        .await
        .unwrap();
    assert!(matches!(results[0], Ok(Recorded::Applied(_))));
    assert!(
        matches!(&results[1], Err(error) if error.to_string().contains("boom refused")),
        "{results:?}"
    );
    assert!(matches!(results[2], Ok(Recorded::Applied(_))));
    assert_eq!(stored_names(&path), ["ann", "cat"]);
}

#[tokio::test]
async fn a_busy_database_is_retried_until_the_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let options = options();
    let retries = options.retries.clone();
    let (writer, _thread) = start(&path, options).unwrap();
    let mut blocker = Connection::open(&path).unwrap();
    let lock = blocker
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    let pending = tokio::spawn(async move { writer.apply(vec![event("a", 1, 1, "ann")]).await });
    events::testing::eventually(Duration::from_secs(10), "a retried write", || async {
        (retries.get() > 0).then_some(())
    })
    .await;
    assert!(!pending.is_finished(), "nothing is committed while locked");
    lock.commit().unwrap();
    let results = pending.await.unwrap().unwrap();
    assert!(matches!(results[0], Ok(Recorded::Applied(_))));
    assert_eq!(stored_names(&path), ["ann"]);
}

#[tokio::test]
async fn on_shutdown_a_busy_write_is_abandoned_and_nothing_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let options = options();
    options.stop.cancel();
    let (writer, _thread) = start(&path, options).unwrap();
    let mut blocker = Connection::open(&path).unwrap();
    let lock = blocker
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    let err = writer
        .apply(vec![event("a", 1, 1, "ann")])
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Abandoned(_)), "{err}");
    lock.rollback().unwrap();
    assert!(stored_names(&path).is_empty());
}

#[tokio::test]
async fn orders_go_through_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let (writer, _thread) = start(&dir.path().join("o.db"), options()).unwrap();
    writer.apply(vec![event("a", 1, 1, "ann")]).await.unwrap();
    let order = |user_id| NewOrder {
        user_id,
        items: vec![crate::orders::LineItem {
            sku: "s".into(),
            quantity: 1,
            unit_price_cents: 3,
        }],
        total_cents: 3,
    };
    assert!(matches!(
        writer.place(order(1)).await.unwrap(),
        Placed::Created(_)
    ));
    assert_eq!(writer.place(order(2)).await.unwrap(), Placed::UnknownUser);
}
