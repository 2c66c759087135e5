//! The order saga, end to end: order-service's real HTTP API takes each order
//! (`POST /orders`: `pending`, and `order_placed` through its outbox), the dispatcher
//! routes it to saga-payment, which answers `payment_succeeded` or `payment_failed`
//! (over the limit, a gateway error, or fast while its breaker is open), and
//! order-service moves the order to `confirmed` or `cancelled` (the compensation), which
//! `GET /orders/{id}` shows with its history. The journey: one paid order, one over the
//! limit, three that make the gateway fail and open the breaker, one while it is open,
//! and, after the recovery timeout, one that closes it again.

use std::time::Duration;

use anyhow::{Context, ensure};
use events::{CloudEvent, TraceParent};
use serde_json::{Value, json};

use super::catalog::Demo;
use super::journal::{Hop, Journal, print_header, print_hop};
use super::order_api::OrderApi;
use super::stage::{Names, Options, Plan, ServiceSpec, Stage, ms, with_stage};
use crate::payment::{FAILED, FailReason, PaymentAnswer, SUCCEEDED, cents};
/// How long the breaker stays open in the demo.
pub const RECOVERY: Duration = Duration::from_millis(1_500);

/// Largest amount the demo's payment service accepts, in cents.
pub const LIMIT_CENTS: i64 = 100_000;

/// One order of the journey: its number, amount, the expected answer, and why.
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

/// The demo's user (order-service takes orders only for users it knows).
pub const USER_ID: i64 = 1;

/// One order of the journey, as the demo saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaStep {
    /// The id order-service gave it.
    pub order_id: i64,
    /// `order_placed`, as the journal saw it.
    pub placed: Hop,
    /// The payment's answer, as the journal saw it.
    pub hop: Hop,
    /// Its data.
    pub answer: PaymentAnswer,
    /// The order as `GET /orders/{id}` showed it at the end (`status`, `history`).
    pub order: Value,
}

/// What the saga declares and starts (order-service is started by the journey, on a
/// free port).
pub fn plan(names: &Names) -> Plan {
    let args = [
        ("--limit-cents", LIMIT_CENTS.to_string()),
        ("--breaker-failures", "3".to_owned()),
        ("--breaker-recovery-ms", RECOVERY.as_millis().to_string()),
    ];
    Plan {
        source: names.of("dispatch"),
        queues: ["dispatch", "unrouted", "payment", "order", "journal"]
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

/// Runs the saga; returns each order's journey, in order.
pub async fn run(options: &Options) -> anyhow::Result<Vec<SagaStep>> {
    let names = Names::new(&options.prefix, Demo::Saga);
    println!("saga: {}", Demo::Saga.about());
    with_stage(Demo::Saga, plan(&names), options, async |stage| {
        journey(stage).await
    })
    .await
}

async fn journey(stage: &mut Stage) -> anyhow::Result<Vec<SagaStep>> {
    let dir = tempfile::tempdir()?;
    let mut journal = Journal::open(stage, &stage.names.of("journal")).await?;
    let api = OrderApi::start(stage, dir.path()).await?;
    publish(stage, &user_created())
        .await
        .context("publishing user_created")?;
    api.wait_for_user(USER_ID, stage).await?;
    println!("order-service is up on its own database and knows user {USER_ID}");
    print_header("emitted by", "routed by");
    journal.start_clock();
    let mut steps = Vec::new();
    for order in &BEFORE_RECOVERY {
        steps.push(place(stage, &api, &mut journal, order, &steps).await?);
    }
    println!(
        "  … waiting {} (the breaker's recovery timeout)",
        ms(RECOVERY)
    );
    // The breaker opened before order 5's answer was sent, so once this much time has
    // passed since that answer arrived, the next payment is its trial, however slow
    // the machine.
    tokio::time::sleep(RECOVERY).await;
    steps.push(place(stage, &api, &mut journal, &AFTER_RECOVERY, &steps).await?);
    println!(
        "\nthe saga completed in {}: {} orders confirmed, {} cancelled (the compensation)",
        ms(journal.elapsed()),
        steps
            .iter()
            .filter(|s| s.order["status"] == "confirmed")
            .count(),
        steps
            .iter()
            .filter(|s| s.order["status"] == "cancelled")
            .count(),
    );
    journal.close().await;
    Ok(steps)
}

/// The demo's user, as user-service would announce it.
fn user_created() -> CloudEvent {
    let data = json!({"id": USER_ID, "name": "Ada", "email": "ada@example.com", "version": 1});
    CloudEvent::new("user-service (played by the demo)", "user_created", data)
        .with_subject(USER_ID.to_string())
        .with_traceparent(&TraceParent::new_root())
}

async fn publish(stage: &Stage, event: &CloudEvent) -> anyhow::Result<()> {
    stage
        .publisher
        .publish_to_queue(
            &stage.plan.source,
            &event.to_json_vec(),
            event.amqp_properties(),
        )
        .await?;
    Ok(())
}

async fn place(
    stage: &mut Stage,
    api: &OrderApi,
    journal: &mut Journal,
    order: &Order,
    answered: &[SagaStep],
) -> anyhow::Result<SagaStep> {
    let name = format!(
        "order {} ({}: {})",
        order.id,
        cents(order.total_cents),
        order.note
    );
    let created = api
        .place(USER_ID, order.total_cents)
        .await
        .with_context(|| format!("{name} failed"))?;
    let id = created["id"]
        .as_i64()
        .context("no id in the created order")?;
    ensure!(
        created["status"] == "pending",
        "{name} failed: created as {created}"
    );
    let is = |ty: &str, e: &CloudEvent| {
        e.ty == ty && e.data.as_ref().and_then(|d| d["order_id"].as_i64()) == Some(id)
    };
    let timeout = stage.options.timeout;
    let placed = journal
        .wait_for(
            &format!("{name}: order_placed"),
            timeout,
            &mut stage.fleet,
            |e| is("order_placed", e),
        )
        .await?;
    let before = answered
        .last()
        .map(|s| s.order_hop_at())
        .unwrap_or_default();
    let n = answered.len() * 3;
    print_hop(
        n + 1,
        &placed,
        before,
        &format!(" · POST /orders → {id}, pending"),
    );
    let hop = journal
        .wait_for(
            &format!("{name}: payment"),
            timeout,
            &mut stage.fleet,
            |e| is(SUCCEEDED, e) || is(FAILED, e),
        )
        .await?;
    let answer: PaymentAnswer = serde_json::from_value(hop.data.clone())
        .with_context(|| format!("{name}: the answer's data is not a payment answer"))?;
    let note = format!(" · {} (breaker {})", answer.message, answer.breaker);
    print_hop(n + 2, &hop, placed.at, &note);
    let final_order = api
        .wait_final(id, stage)
        .await
        .with_context(|| format!("{name} failed"))?;
    let expected = if order.reason.is_none() {
        "confirmed"
    } else {
        "cancelled"
    };
    let history: Vec<&str> = final_order["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    println!(
        "  {:>3} {:>9}  {:>10}  {:<20} GET /orders/{id}: {} (history: {})",
        format!("{}.", n + 3),
        "",
        "",
        "order-service",
        final_order["status"].as_str().unwrap_or("?"),
        history.join(" → ")
    );
    ensure!(
        answer.reason == order.reason && answer.breaker == order.breaker,
        "{name} failed: expected {:?} with the breaker {}, got {:?} with the breaker {} ({})",
        order.reason,
        order.breaker,
        answer.reason,
        answer.breaker,
        answer.message
    );
    ensure!(
        final_order["status"] == expected && history == ["pending", expected],
        "{name} failed: expected {expected} after pending, order-service shows {final_order}"
    );
    Ok(SagaStep {
        order_id: id,
        placed,
        hop,
        answer,
        order: final_order,
    })
}

impl SagaStep {
    fn order_hop_at(&self) -> Duration {
        self.hop.at
    }
}
