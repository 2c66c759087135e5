//! The order saga's payment half. The driver plays order-service: it publishes
//! `order_placed` to the dispatcher and reads the answers from the order queue, where
//! order-service will read them. saga-payment answers `payment_succeeded` or
//! `payment_failed`: over the limit, a gateway error, or fast while its breaker is open.
//! The journey: one paid order, one over the limit, three that make the gateway fail and
//! open the breaker, one while it is open, and, after the recovery timeout, one that
//! closes it again.

use std::time::Duration;

use anyhow::{Context, ensure};
use events::{CloudEvent, TraceParent};
use serde_json::json;

use super::catalog::{Demo, SAGA_MISSING};
use super::journal::{Hop, Journal, print_header, print_hop};
use super::stage::{Names, Options, Plan, ServiceSpec, Stage, ms, with_stage};
use crate::payment::{FAILED, FailReason, PaymentAnswer, SUCCEEDED, cents};

/// How long the breaker stays open in the demo.
pub const RECOVERY: Duration = Duration::from_millis(1_500);

/// Largest amount the demo's payment service accepts, in cents.
pub const LIMIT_CENTS: i64 = 100_000;

/// One order of the journey: id, amount, the expected answer, and why.
struct Order {
    id: i64,
    total_cents: i64,
    reason: Option<FailReason>,
    breaker: &'static str,
    note: &'static str,
}

const fn order(
    id: i64,
    total_cents: i64,
    reason: Option<FailReason>,
    breaker: &'static str,
    note: &'static str,
) -> Order {
    Order {
        id,
        total_cents,
        reason,
        breaker,
        note,
    }
}

const BEFORE_RECOVERY: [Order; 6] = [
    order(1, 3_000, None, "closed", "paid"),
    order(
        2,
        500_000,
        Some(FailReason::OverLimit),
        "closed",
        "refused: over the limit (the gateway is not called)",
    ),
    order(
        3,
        2_013,
        Some(FailReason::GatewayError),
        "closed",
        "the gateway fails (1 of 3)",
    ),
    order(
        4,
        2_013,
        Some(FailReason::GatewayError),
        "closed",
        "the gateway fails (2 of 3)",
    ),
    order(
        5,
        2_013,
        Some(FailReason::GatewayError),
        "open",
        "the gateway fails (3 of 3): the breaker opens",
    ),
    order(
        6,
        4_000,
        Some(FailReason::CircuitOpen),
        "open",
        "arrives while the breaker is open: fails fast",
    ),
];

const AFTER_RECOVERY: Order = order(
    7,
    4_000,
    None,
    "closed",
    "the trial payment succeeds: the breaker closes",
);

/// One answered order.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaStep {
    /// The answer as it arrived in the order queue.
    pub hop: Hop,
    /// Its data.
    pub answer: PaymentAnswer,
}

/// What the saga's payment half declares and starts.
pub fn plan(names: &Names) -> Plan {
    let args = [
        ("--limit-cents", LIMIT_CENTS.to_string()),
        ("--breaker-failures", "3".to_owned()),
        ("--breaker-recovery-ms", RECOVERY.as_millis().to_string()),
    ];
    Plan {
        source: names.of("dispatch"),
        queues: ["dispatch", "unrouted", "payment", "order"]
            .map(|q| names.of(q))
            .to_vec(),
        exchanges: Vec::new(),
        services: vec![ServiceSpec {
            binary: "saga-payment",
            label: "saga-payment".to_owned(),
            queue: names.of("payment"),
            args: args
                .into_iter()
                .flat_map(|(k, v)| [k.to_owned(), v])
                .collect(),
        }],
    }
}

/// Runs the payment half; returns the answers in order.
pub async fn run(options: &Options) -> anyhow::Result<Vec<SagaStep>> {
    let names = Names::new(&options.prefix, Demo::Saga);
    println!(
        "saga: {}\n\nNOT COMPLETE: this needs {SAGA_MISSING}\n",
        Demo::Saga.about()
    );
    with_stage(Demo::Saga, plan(&names), options, async |stage| {
        journey(stage).await
    })
    .await
}

async fn journey(stage: &mut Stage) -> anyhow::Result<Vec<SagaStep>> {
    let mut orders = Journal::open(stage, &stage.names.of("order")).await?;
    print_header("answered by", "routed by");
    orders.start_clock();
    let mut steps = Vec::new();
    for order in &BEFORE_RECOVERY {
        let step = place(stage, &mut orders, order, &steps).await?;
        steps.push(step);
    }
    println!(
        "  … waiting {} (the breaker's recovery timeout)",
        ms(RECOVERY)
    );
    // The breaker opened before order 5's answer was sent, so once this much time has
    // passed since that answer arrived, the next payment is its trial, however slow
    // the machine.
    tokio::time::sleep(RECOVERY).await;
    let step = place(stage, &mut orders, &AFTER_RECOVERY, &steps).await?;
    steps.push(step);
    println!(
        "\nthe payment half completed in {}; order-service would now confirm orders 1 and 7 \
         and cancel the others (the compensation)",
        ms(orders.elapsed())
    );
    orders.close().await;
    Ok(steps)
}

async fn place(
    stage: &mut Stage,
    orders: &mut Journal,
    order: &Order,
    answered: &[SagaStep],
) -> anyhow::Result<SagaStep> {
    let name = format!(
        "order {} ({}: {})",
        order.id,
        cents(order.total_cents),
        order.note
    );
    let placed = CloudEvent::new(
        "order-service (played by the demo)",
        "order_placed",
        json!({"order_id": order.id, "user_id": 1, "total_cents": order.total_cents}),
    )
    .with_subject(order.id.to_string())
    .with_traceparent(&TraceParent::new_root());
    stage
        .publisher
        .publish_to_queue(
            &stage.plan.source,
            &placed.to_json_vec(),
            placed.amqp_properties(),
        )
        .await
        .with_context(|| format!("{name} failed: publishing order_placed"))?;
    let hop = orders
        .wait_for(&name, stage.options.timeout, &mut stage.fleet, |e| {
            (e.ty == SUCCEEDED || e.ty == FAILED)
                && e.data.as_ref().and_then(|d| d["order_id"].as_i64()) == Some(order.id)
        })
        .await?;
    let answer: PaymentAnswer = serde_json::from_value(hop.data.clone())
        .with_context(|| format!("{name}: the answer's data is not a payment answer"))?;
    let note = format!(
        " · order {}, {}: {} (breaker {})",
        order.id,
        cents(order.total_cents),
        answer.message,
        answer.breaker
    );
    let before = answered.last().map(|s| s.hop.at).unwrap_or_default();
    print_hop(answered.len() + 1, &hop, before, &note);
    ensure!(
        answer.reason == order.reason && answer.breaker == order.breaker,
        "{name} failed: expected {:?} with the breaker {}, got {:?} with the breaker {} ({})",
        order.reason,
        order.breaker,
        answer.reason,
        answer.breaker,
        answer.message
    );
    Ok(SagaStep { hop, answer })
}
