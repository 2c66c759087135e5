//! The order side of the saga on the real broker: `POST /orders` emits `order_placed`
//! to the dispatch queue, `payment_succeeded` / `payment_failed` from the order queue
//! confirm or cancel the order, a redelivery changes nothing, and a contradicting or
//! unknown payment is dead-lettered with its reason.

use events::CloudEvent;
use events::testing::{drain, eventually};
use order_service::dead_letter::reason_of;
use serde_json::{Value, json};

use crate::{Fixture, Service, WAIT, dispatch_queue, upsert};

fn payment(ty: &str, order_id: i64, amount_cents: i64) -> CloudEvent {
    let data = match ty {
        "payment_succeeded" => json!({"order_id": order_id, "amount_cents": amount_cents,
                                      "payment_id": format!("pay-{order_id}")}),
        _ => json!({"order_id": order_id, "amount_cents": amount_cents, "reason": "over_limit"}),
    };
    CloudEvent::new("saga-payment", ty, data)
}

async fn place(service: &Service, unit_price_cents: i64) -> i64 {
    let body = json!({"user_id": 1, "items": [{"sku": "A", "quantity": 1,
                                               "unit_price_cents": unit_price_cents}]});
    let (status, order) = service.post("/orders", &body).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "pending");
    order["id"].as_i64().unwrap()
}

async fn wait_status(service: &Service, id: i64, status: &str) -> Value {
    eventually(WAIT, &format!("order {id} {status}"), || async {
        let (_, order) = service.get(&format!("/orders/{id}")).await;
        (order["status"] == status).then_some(order)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_placed_through_the_outbox_and_confirmed_or_cancelled_by_payments() {
    let fx = Fixture::new("order.saga").await;
    let service = Service::start(&fx.queue, &fx.db()).await;
    fx.publish(&upsert(1, 1, "ann")).await;
    service.wait_user_version(1, 1).await;

    let paid = place(&service, 300).await;
    let refused = place(&service, 500_000).await;
    let dispatch = dispatch_queue(&fx.queue);
    events::testing::wait_for_count(&fx.connection, &dispatch, 2, WAIT).await;
    let channel = fx.connection.create_channel().await.unwrap();
    let placed: Vec<CloudEvent> = drain(&channel, &dispatch)
        .await
        .iter()
        .map(|m| CloudEvent::from_amqp(&m.delivery.properties, &m.delivery.data).unwrap())
        .collect();
    let ids: Vec<i64> = placed
        .iter()
        .map(|e| e.data.as_ref().unwrap()["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [paid, refused], "in commit order");
    assert!(
        placed
            .iter()
            .all(|e| e.ty == "order_placed" && e.source == "order-service")
    );
    assert_eq!(placed[1].data.as_ref().unwrap()["total_cents"], 500_000);

    let success = payment("payment_succeeded", paid, 300);
    let failure = payment("payment_failed", refused, 500_000);
    fx.publish(&success).await;
    fx.publish(&failure).await;
    fx.publish(&failure).await; // a redelivery
    let confirmed = wait_status(&service, paid, "confirmed").await;
    assert_eq!(confirmed["history"][1]["event_id"], success.id.as_str());
    assert_eq!(confirmed["history"][0]["event_id"], placed[0].id.as_str());
    let cancelled = wait_status(&service, refused, "cancelled").await;
    assert_eq!(cancelled["history"][1]["reason"], "over_limit");
    service
        .wait_metric("order_events_ignored_total{reason=\"duplicate\"}", 1.0)
        .await;

    // Money taken for a cancelled order, and a payment for no order: a person must look.
    fx.publish(&payment("payment_succeeded", refused, 500_000))
        .await;
    fx.publish(&payment("payment_succeeded", 9_999, 1)).await;
    let dead_queue = format!("{}.dead", fx.queue);
    events::testing::wait_for_count(&fx.connection, &dead_queue, 2, WAIT).await;
    let reasons: Vec<String> = drain(&channel, &dead_queue)
        .await
        .iter()
        .map(|m| reason_of(m.delivery.properties.headers().as_ref().unwrap()).unwrap())
        .collect();
    assert_eq!(reasons, ["payment_conflict", "unknown_order"]);
    let (_, still) = service.get(&format!("/orders/{refused}")).await;
    assert_eq!(still["status"], "cancelled");
    assert_eq!(still["history"].as_array().unwrap().len(), 2);
    service.stop().await.unwrap();
    fx.cleanup().await;
}
