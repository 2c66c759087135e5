//! The saga's payment service: takes `order_placed`, answers `payment_succeeded` or
//! `payment_failed` (order-service confirms or cancels the order). Amounts over the
//! limit are refused; the rest are charged through a circuit breaker around a simulated
//! flaky gateway (see `patterns::payment`).

use std::time::Duration;

use clap::Parser;
use events::CloudEvent;
use lapin::BasicProperties;
use patterns::breaker::{BreakerSettings, CircuitBreaker};
use patterns::gateway::Gateway;
use patterns::payment::{OrderPlaced, Payments};
use patterns::step::{self, Outcome, Refusal, Step, StepArgs, follow};

const NAME: &str = "saga-payment";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    step: StepArgs,
    /// Largest amount paid, in cents; larger orders are refused.
    #[arg(long, default_value_t = 100_000)]
    limit_cents: i64,
    /// Consecutive gateway failures that open the circuit breaker.
    #[arg(long, default_value_t = 3)]
    breaker_failures: u32,
    /// How long the breaker stays open before a trial payment, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    breaker_recovery_ms: u64,
    /// Time the simulated gateway takes per charge, in milliseconds.
    #[arg(long, default_value_t = 10)]
    gateway_latency_ms: u64,
    /// Share of charges the simulated gateway fails at random (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    gateway_failure_rate: f64,
}

struct Payment(Payments);

impl Step for Payment {
    async fn handle(&mut self, event: CloudEvent, _: &BasicProperties) -> Result<Outcome, Refusal> {
        let order: OrderPlaced = event.data_as()?;
        let answer = self.0.pay(&order).await;
        tracing::info!(order = order.order_id, outcome = answer.event_type(), breaker = %answer.breaker, "answered");
        let data = serde_json::to_value(&answer).map_err(|e| Refusal::Invalid(e.to_string()))?;
        Ok(Outcome::Next(follow(
            &event,
            NAME,
            answer.event_type(),
            data,
        )))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let breaker = CircuitBreaker::new(BreakerSettings {
        failure_threshold: args.breaker_failures,
        recovery_timeout: Duration::from_millis(args.breaker_recovery_ms),
    });
    let gateway = Gateway::new(
        Duration::from_millis(args.gateway_latency_ms),
        args.gateway_failure_rate,
    );
    let payments = Payments::new(args.limit_cents, breaker, gateway);
    step::main(NAME, &args.step, Payment(payments)).await
}
