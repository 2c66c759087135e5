//! The saga through the router: an order is placed `pending` with its `order_placed` in
//! the outbox, and a payment event moves it to `confirmed` or `cancelled`, which
//! `GET /orders/{id}` shows with its history.

use events::CloudEvent;
use rusqlite::Connection;

use super::*;
use crate::outbox_store;
use crate::payment::{PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentEvent, PaymentOutcome};
use crate::snapshots::Recorded;

const ORDER: &str = r#"{"user_id":1,"items":[{"sku":"A","quantity":2,"unit_price_cents":150}]}"#;

fn payment(id: &str, order_id: i64, outcome: PaymentOutcome) -> Incoming {
    Incoming::Payment(PaymentEvent {
        event_id: id.into(),
        order_id,
        amount_cents: 300,
        outcome,
        time: None,
    })
}

fn paid(id: &str, order_id: i64) -> Incoming {
    payment(
        id,
        order_id,
        PaymentOutcome::Succeeded {
            payment_id: Some("pay-1".into()),
        },
    )
}

fn refused(id: &str, order_id: i64) -> Incoming {
    payment(
        id,
        order_id,
        PaymentOutcome::Failed {
            reason: "over_limit".into(),
        },
    )
}

impl Harness {
    async fn place(&self) -> Value {
        let (status, created, _) = self.post_order(ORDER).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created
    }

    fn outbox(&self) -> Vec<CloudEvent> {
        let db = Connection::open(self._dir.path().join("orders.db")).unwrap();
        outbox_store::pending(&db, 100)
            .unwrap()
            .into_iter()
            .map(|row| CloudEvent::from_json(&row.body).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn a_placed_order_is_pending_and_its_order_placed_waits_in_the_outbox() {
    let h = harness().await;
    let created = h.place().await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["version"], 1);
    let history = created["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{created}");
    assert_eq!(history[0]["status"], "pending");
    assert_eq!(history[0]["event_type"], "order_placed");
    let outbox = h.outbox();
    assert_eq!(outbox.len(), 1);
    let placed = &outbox[0];
    assert_eq!(placed.ty, "order_placed");
    assert_eq!(history[0]["event_id"], placed.id.as_str());
    let data = placed.data.as_ref().unwrap();
    assert_eq!(data["order_id"], created["id"]);
    assert_eq!(data["total_cents"], 300);
    assert_eq!(data["user_id"], 1);
    assert_eq!(
        placed.subject.as_deref(),
        Some(created["id"].to_string().as_str())
    );
}

#[tokio::test]
async fn a_refused_order_leaves_nothing_in_the_outbox() {
    let h = harness().await;
    let (status, _, _) = h
        .post_order(r#"{"user_id":2,"items":[{"sku":"A","quantity":1,"unit_price_cents":1}]}"#)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(h.outbox().is_empty());
}

#[tokio::test]
async fn a_successful_payment_confirms_and_the_history_names_its_event() {
    let h = harness().await;
    let id = h.place().await["id"].as_i64().unwrap();
    let results = h.writer.apply(vec![paid("p-1", id)]).await.unwrap();
    assert!(matches!(results[0], Ok(Recorded::Moved(_))), "{results:?}");
    let (status, order) = h.get(&format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["version"], 2);
    let history = order["history"].as_array().unwrap();
    let statuses: Vec<&str> = history
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["pending", "confirmed"]);
    assert_eq!(history[1]["event_id"], "p-1");
    assert_eq!(history[1]["event_type"], PAYMENT_SUCCEEDED);
    assert!(history[1]["at"].is_string());
    assert!(history[1].get("reason").is_none(), "{order}");
}

#[tokio::test]
async fn a_failed_payment_cancels_with_its_reason_and_redeliveries_change_nothing() {
    let h = harness().await;
    let id = h.place().await["id"].as_i64().unwrap();
    let results = h
        .writer
        .apply(vec![
            refused("f-1", id),
            refused("f-1", id),
            refused("f-2", id),
        ])
        .await
        .unwrap();
    let labels: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok(Recorded::Moved(_)) => "moved",
            Ok(Recorded::Ignored(ignored)) => ignored.reason(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(labels, ["moved", "duplicate", "stale"]);
    let (_, order) = h.get(&format!("/orders/{id}")).await;
    assert_eq!(order["status"], "cancelled");
    let history = order["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{order}");
    assert_eq!(history[1]["event_type"], PAYMENT_FAILED);
    assert_eq!(history[1]["reason"], "over_limit");
}

#[tokio::test]
async fn a_contradicting_or_unknown_payment_is_refused_and_changes_nothing() {
    let h = harness().await;
    let id = h.place().await["id"].as_i64().unwrap();
    h.writer.apply(vec![refused("f-1", id)]).await.unwrap();
    let results = h
        .writer
        .apply(vec![paid("p-1", id), paid("p-2", 999)])
        .await
        .unwrap();
    let reasons: Vec<&str> = results
        .iter()
        .map(|r| match r {
            Ok(Recorded::Refused(refusal)) => refusal.reason(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(reasons, ["payment_conflict", "unknown_order"]);
    let (_, order) = h.get(&format!("/orders/{id}")).await;
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["history"].as_array().unwrap().len(), 2);
}
