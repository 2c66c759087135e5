//! The store on a real SQLite file: group commit, one event per change in commit order,
//! idempotency keys, pruning, and a backlog that survives a restart.

use super::*;
use crate::domain::{Email, UserName};
use prometheus_client::registry::Registry;

fn new_user(name: &str, email: &str) -> NewUser {
    NewUser {
        name: UserName::parse(name).unwrap(),
        email: Email::parse(email).unwrap(),
    }
}

fn open(dir: &tempfile::TempDir) -> (Store, WriterThread, Metrics) {
    let metrics = Metrics::register(&mut Registry::default());
    let (store, writer) = Store::open(&dir.path().join("users.db"), &metrics).unwrap();
    (store, writer, metrics)
}

fn key(key: &str, hash: &str) -> Option<IdempotencyKey> {
    Some(IdempotencyKey {
        key: key.into(),
        request_hash: hash.into(),
    })
}

async fn create(store: &Store, name: &str, email: &str) -> Result<User, StoreError> {
    match store
        .create(new_user(name, email), TraceParent::new_root(), None)
        .await?
    {
        Created::New(user) => Ok(user),
        Created::Replayed(user) => panic!("unexpected replay of {user:?}"),
    }
}

#[tokio::test]
async fn concurrent_creates_commit_together_and_a_duplicate_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer, metrics) = open(&dir);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        // User 7's email is taken by user 3 in a different case.
        let email = if i == 7 {
            "USER3@x.io".to_owned()
        } else {
            format!("user{i}@x.io")
        };
        tasks.push(tokio::spawn(
            async move { create(&store, "n", &email).await },
        ));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        matches!(failed[0], Err(StoreError::EmailTaken)),
        "{failed:?}"
    );
    assert_eq!(store.backlog().await.unwrap(), 49);
    assert_eq!(metrics.outbox_backlog.get(), 49);
    assert_eq!(store.list(0, 100).await.unwrap().len(), 49);
}

#[tokio::test]
async fn each_change_writes_one_event_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer, _) = open(&dir);
    let user = create(&store, "Ann", "ann@x.io").await.unwrap();
    let patch = UserPatch {
        name: Some(UserName::parse("Anne").unwrap()),
        email: None,
    };
    let updated = store
        .update(user.id, patch, TraceParent::new_root())
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.email, "ann@x.io");
    let version = store
        .delete(user.id, TraceParent::new_root())
        .await
        .unwrap();
    assert_eq!(version, 3);
    let rows = store.pending(10).await.unwrap();
    let types: Vec<String> = rows
        .iter()
        .map(|r| events::CloudEvent::from_json(&r.body).unwrap().ty)
        .collect();
    assert_eq!(types, ["user_created", "user_updated", "user_deleted"]);
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[tokio::test]
async fn a_patch_that_changes_nothing_keeps_the_version_and_writes_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer, _) = open(&dir);
    let user = create(&store, "Ann", "ann@x.io").await.unwrap();
    let same = UserPatch {
        name: Some(UserName::parse("Ann").unwrap()),
        email: Some(Email::parse("ANN@x.io").unwrap()),
    };
    let unchanged = store
        .update(user.id, same, TraceParent::new_root())
        .await
        .unwrap();
    assert_eq!(unchanged, user);
    assert_eq!(store.backlog().await.unwrap(), 1, "only user_created");
}

#[tokio::test]
async fn changing_a_missing_user_is_not_found_and_writes_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer, _) = open(&dir);
    let patch = UserPatch {
        name: Some(UserName::parse("x").unwrap()),
        email: None,
    };
    let trace = TraceParent::new_root();
    let updated = store.update(9, patch, trace).await;
    assert!(
        matches!(updated, Err(StoreError::NotFound(9))),
        "{updated:?}"
    );
    let deleted = store.delete(9, trace).await;
    assert!(
        matches!(deleted, Err(StoreError::NotFound(9))),
        "{deleted:?}"
    );
    assert_eq!(store.backlog().await.unwrap(), 0);
}

#[tokio::test]
async fn an_idempotency_key_replays_and_refuses_another_body() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer, _) = open(&dir);
    let trace = TraceParent::new_root();
    let first = store
        .create(new_user("A", "a@x.io"), trace, key("k1", "h1"))
        .await
        .unwrap();
    let Created::New(user) = first else {
        panic!("{first:?}")
    };
    let again = store
        .create(new_user("A", "a@x.io"), trace, key("k1", "h1"))
        .await
        .unwrap();
    assert_eq!(again, Created::Replayed(user));
    let other = store
        .create(new_user("B", "b@x.io"), trace, key("k1", "h2"))
        .await;
    assert!(
        matches!(other, Err(StoreError::IdempotencyMismatch)),
        "{other:?}"
    );
    assert_eq!(store.backlog().await.unwrap(), 1);
}

#[tokio::test]
async fn published_rows_leave_the_backlog_and_are_pruned_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _writer, metrics) = open(&dir);
    create(&store, "A", "a@x.io").await.unwrap();
    create(&store, "B", "b@x.io").await.unwrap();
    let rows = store.pending(10).await.unwrap();
    let first = vec![rows[0].seq];
    assert_eq!(store.mark_published(first.clone()).await.unwrap(), 1);
    assert_eq!(store.mark_published(first).await.unwrap(), 0, "marked once");
    assert_eq!(metrics.outbox_backlog.get(), 1);
    assert_eq!(store.pending(10).await.unwrap(), rows[1..]);

    let past = chrono::Utc::now().timestamp_millis() - 60_000;
    assert_eq!(store.prune(past, 100).await.unwrap(), Pruned::default());
    let future = chrono::Utc::now().timestamp_millis() + 60_000;
    let pruned = store.prune(future, 100).await.unwrap();
    assert_eq!(pruned.events, 1, "only the published row goes");
    assert_eq!(store.backlog().await.unwrap(), 1);
}

#[tokio::test]
async fn the_backlog_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, writer, _) = open(&dir);
    create(&store, "A", "a@x.io").await.unwrap();
    drop(store);
    writer.join().await;
    let (store, _writer, metrics) = open(&dir);
    assert_eq!(metrics.outbox_backlog.get(), 1);
    assert_eq!(store.pending(10).await.unwrap().len(), 1);
}
