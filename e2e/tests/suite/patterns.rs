//! The patterns of `examples/`, each through the real dispatcher binary and the example
//! services on the real broker: the same journeys as `cargo xtask demo <name>`, on queue
//! names of their own, with nothing left behind on the broker afterwards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use events::AmqpSettings;
use events::lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use events::lapin::types::FieldTable;
use events::lapin::{Connection, ExchangeKind};
use events::testing::{amqp_url, broker, queue_type, unique};
use patterns::demo::{Demo, Names, Options, Plan, chain, fanout, rpc, saga};
use patterns::payment::FailReason;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The demo's options on a prefix no other test uses.
fn options() -> Options {
    let amqp = AmqpSettings {
        url: amqp_url(),
        queue_type: queue_type(),
        ..AmqpSettings::default()
    };
    Options {
        prefix: unique("e2e"),
        ..Options::new(
            amqp,
            e2e::process::bin_dir(),
            root().join("examples/routes"),
        )
    }
}

async fn queue_exists(connection: &Connection, queue: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let passive = QueueDeclareOptions::durable().passive();
    let found = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .is_ok();
    let _ = channel.close(200, "ok".into()).await;
    found
}

async fn exchange_exists(connection: &Connection, exchange: &str) -> bool {
    let channel = connection.create_channel().await.unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let found = channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = channel.close(200, "ok".into()).await;
    found
}

/// Every queue (with its `.dead` queue) and exchange of `plan` is gone.
async fn assert_cleaned_up(plan: &Plan) {
    let connection = broker().await;
    assert!(!plan.queues.is_empty());
    for queue in &plan.queues {
        for name in [queue.clone(), format!("{queue}.dead")] {
            assert!(
                !queue_exists(&connection, &name).await,
                "{name} was left behind"
            );
        }
    }
    for exchange in &plan.exchanges {
        assert!(
            !exchange_exists(&connection, exchange).await,
            "{exchange} was left behind"
        );
    }
    let _ = connection.close(200, "ok".into()).await;
}

#[tokio::test]
async fn the_chain_goes_from_registration_to_notification_through_the_dispatcher() {
    let options = options();
    let hops = chain::run(&options).await.unwrap();
    let events: Vec<&str> = hops.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "registration.created",
            "registration.paid",
            "registration.completed",
            "notification.sent"
        ]
    );
    let by: Vec<&str> = hops.iter().map(|h| h.by.as_str()).collect();
    assert_eq!(
        by,
        [
            "registration",
            "chain-payment",
            "chain-course",
            "chain-notification"
        ]
    );
    assert_eq!(
        hops[2].routes, "completion-to-notification,journal",
        "through the topic exchange"
    );
    assert_eq!(hops[3].data["message"], "Welcome to rust-101, ada!");
    assert_eq!(hops[1].data["amount_cents"], 12_000);
    assert_cleaned_up(&chain::plan(&Names::new(&options.prefix, Demo::Chain))).await;
}

#[tokio::test]
async fn rpc_answers_every_call_with_its_own_reply_on_both_kinds_of_reply_queue() {
    let options = options();
    let runs = rpc::run(&options).await.unwrap();
    let modes: Vec<&str> = runs.iter().map(|r| r.mode).collect();
    assert_eq!(modes, ["exclusive callback queue", "direct reply-to"]);
    for run in &runs {
        assert_eq!(run.calls, rpc::CALLS, "{run:?}");
        assert_eq!(run.matched, rpc::CALLS, "{run:?}");
        assert!(run.p50 <= run.p99, "{run:?}");
    }
    assert_cleaned_up(&rpc::plan(&Names::new(&options.prefix, Demo::Rpc))).await;
}

#[tokio::test]
async fn fanout_reaches_two_queues_and_a_queue_bound_to_the_exchange() {
    let options = options();
    let names = Names::new(&options.prefix, Demo::Fanout);
    let hops = fanout::run(&options).await.unwrap();
    let listeners: BTreeSet<&str> = hops.iter().map(|h| h.by.as_str()).collect();
    assert_eq!(listeners, BTreeSet::from(fanout::LISTENERS));
    let event_ids: BTreeSet<&str> = hops
        .iter()
        .map(|h| h.data["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(event_ids.len(), 1, "one event, three receipts: {hops:?}");
    let audit = hops.iter().find(|h| h.by == "audit").unwrap();
    assert_eq!(
        audit.data["via"],
        names.of("broadcast"),
        "the audit queue hears the exchange"
    );
    assert_cleaned_up(&fanout::plan(&names)).await;
}

#[tokio::test]
async fn saga_orders_are_confirmed_or_cancelled_by_payment_behind_its_breaker() {
    let options = options();
    let steps = saga::run(&options).await.unwrap();
    assert_eq!(steps.len(), 7);
    let reasons: Vec<Option<FailReason>> = steps.iter().map(|s| s.answer.reason).collect();
    use FailReason::{CircuitOpen, GatewayError, OverLimit};
    assert_eq!(
        reasons,
        [
            None,
            Some(OverLimit),
            Some(GatewayError),
            Some(GatewayError),
            Some(GatewayError),
            Some(CircuitOpen),
            None
        ]
    );
    let breaker: Vec<&str> = steps.iter().map(|s| s.answer.breaker.as_str()).collect();
    assert_eq!(
        breaker,
        [
            "closed", "closed", "closed", "closed", "open", "open", "closed"
        ]
    );
    let statuses: Vec<&str> = steps
        .iter()
        .map(|s| s.order["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "confirmed",
            "cancelled",
            "cancelled",
            "cancelled",
            "cancelled",
            "cancelled",
            "confirmed"
        ]
    );
    for step in &steps {
        assert_eq!(step.placed.by, "order-service", "{step:?}");
        assert_eq!(step.placed.routes, "orders-to-payment,journal", "{step:?}");
        assert_eq!(step.hop.routes, "payments-to-orders,journal", "{step:?}");
        assert_eq!(step.answer.order_id, step.order_id);
        let history = step.order["history"].as_array().unwrap();
        assert_eq!(history.len(), 2, "{step:?}");
        assert_eq!(history[0]["event_type"], "order_placed");
        assert_eq!(history[1]["event_type"], step.hop.event.as_str());
    }
    assert_eq!(steps[5].order["history"][1]["reason"], "circuit_open");
    assert!(steps[0].answer.payment_id.is_some() && steps[6].answer.payment_id.is_some());
    assert_cleaned_up(&saga::plan(&Names::new(&options.prefix, Demo::Saga))).await;
}

#[tokio::test]
async fn a_journey_that_stops_fails_naming_its_hop_and_still_cleans_up() {
    // The chain's table with `registration.paid` routed nowhere but the journal (and
    // without its [[test]] cases, which would refuse it).
    let table =
        std::fs::read_to_string(root().join("examples/routes").join(Demo::Chain.routes())).unwrap();
    let head = table.split("[[test]]").next().unwrap();
    let broken = head.replace(
        "event = \"registration.paid\"",
        "event = \"registration.paid.nowhere\"",
    );
    assert_ne!(broken, head, "the route to break is in the table");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(Demo::Chain.routes()), broken).unwrap();
    let options = Options {
        routes_dir: dir.path().to_path_buf(),
        timeout: Duration::from_secs(5),
        ..options()
    };
    let error = chain::run(&options).await.unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("hop 3 (course: registration.completed) failed"),
        "{message}"
    );
    assert_cleaned_up(&chain::plan(&Names::new(&options.prefix, Demo::Chain))).await;
}
