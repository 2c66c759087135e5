//! The saga's payment decision for one `order_placed`: refuse amounts over the limit
//! without touching the gateway; otherwise charge through the circuit breaker. Every
//! order gets exactly one answer, `payment_succeeded` or `payment_failed`, and a
//! redelivered order gets the same answer again, without a second charge.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::breaker::{CallError, CircuitBreaker};
use crate::gateway::Gateway;

/// The event type of a successful payment.
pub const SUCCEEDED: &str = "payment_succeeded";
/// The event type of a refused or failed payment (order-service compensates: cancels).
pub const FAILED: &str = "payment_failed";

/// How many answers are remembered for redeliveries (the oldest are forgotten first).
/// A real payment service keeps them in its database.
const REMEMBERED: usize = 10_000;

/// The `data` of an `order_placed` event, as far as payment reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: i64,
    /// What to charge, in cents.
    pub total_cents: i64,
}

/// Why a payment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// The amount is over the limit: refused, the gateway was not called.
    OverLimit,
    /// The amount is zero or negative.
    InvalidAmount,
    /// The gateway failed.
    GatewayError,
    /// The breaker is open: the gateway was not called.
    CircuitOpen,
}

/// One answer: the `data` of a `payment_succeeded` or `payment_failed` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentAnswer {
    /// The order paid for.
    pub order_id: i64,
    /// The amount, in cents.
    pub amount_cents: i64,
    /// The gateway's payment id, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payment_id: Option<String>,
    /// Why it failed, when it failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<FailReason>,
    /// A sentence for people.
    pub message: String,
    /// The breaker's state after this payment: `closed`, `open` or `half-open`.
    pub breaker: String,
}

impl PaymentAnswer {
    /// [`SUCCEEDED`] or [`FAILED`].
    pub fn event_type(&self) -> &'static str {
        if self.reason.is_none() {
            SUCCEEDED
        } else {
            FAILED
        }
    }
}

/// The payment service's state: limit, breaker, gateway, and the answers given.
#[derive(Debug)]
pub struct Payments {
    limit_cents: i64,
    breaker: CircuitBreaker,
    gateway: Gateway,
    answered: HashMap<i64, PaymentAnswer>,
    oldest: VecDeque<i64>,
}

impl Payments {
    /// Refuses amounts over `limit_cents`; charges the rest through `breaker`.
    pub fn new(limit_cents: i64, breaker: CircuitBreaker, gateway: Gateway) -> Self {
        Self {
            limit_cents,
            breaker,
            gateway,
            answered: HashMap::new(),
            oldest: VecDeque::new(),
        }
    }

    /// The answer for `order` (the same one again for an order already answered).
    pub async fn pay(&mut self, order: &OrderPlaced) -> PaymentAnswer {
        if let Some(answer) = self.answered.get(&order.order_id) {
            tracing::info!(
                order = order.order_id,
                "already answered: same answer again"
            );
            return answer.clone();
        }
        let (payment_id, failure) = self.decide(order).await;
        let answer = PaymentAnswer {
            order_id: order.order_id,
            amount_cents: order.total_cents,
            payment_id,
            reason: failure.as_ref().map(|(reason, _)| *reason),
            message: failure.map_or_else(|| "paid".to_owned(), |(_, message)| message),
            breaker: self.breaker.state(Instant::now()).to_string(),
        };
        self.remember(answer.clone());
        answer
    }

    async fn decide(
        &mut self,
        order: &OrderPlaced,
    ) -> (Option<String>, Option<(FailReason, String)>) {
        let amount = order.total_cents;
        if amount <= 0 {
            let message = format!("amount {} is not positive", cents(amount));
            return (None, Some((FailReason::InvalidAmount, message)));
        }
        if amount > self.limit_cents {
            let message = format!(
                "{} is over the limit of {}",
                cents(amount),
                cents(self.limit_cents)
            );
            return (None, Some((FailReason::OverLimit, message)));
        }
        let gateway = &self.gateway;
        match self
            .breaker
            .call(|| gateway.charge(order.order_id, amount))
            .await
        {
            Ok(payment_id) => (Some(payment_id), None),
            Err(CallError::Failed(error)) => {
                (None, Some((FailReason::GatewayError, error.to_string())))
            }
            Err(CallError::Open(open)) => (None, Some((FailReason::CircuitOpen, open.to_string()))),
        }
    }

    fn remember(&mut self, answer: PaymentAnswer) {
        if self.oldest.len() == REMEMBERED
            && let Some(forgotten) = self.oldest.pop_front()
        {
            self.answered.remove(&forgotten);
        }
        self.oldest.push_back(answer.order_id);
        self.answered.insert(answer.order_id, answer);
    }
}

/// `1234` cents as `12.34`.
pub fn cents(amount: i64) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::breaker::BreakerSettings;

    fn payments(failure_threshold: u32) -> Payments {
        let breaker = CircuitBreaker::new(BreakerSettings {
            failure_threshold,
            recovery_timeout: Duration::from_secs(60),
        });
        Payments::new(100_000, breaker, Gateway::new(Duration::ZERO, 0.0))
    }

    fn order(order_id: i64, total_cents: i64) -> OrderPlaced {
        OrderPlaced {
            order_id,
            total_cents,
        }
    }

    #[tokio::test]
    async fn an_amount_within_the_limit_is_paid() {
        let answer = payments(3).pay(&order(1, 3_000)).await;
        assert_eq!(answer.event_type(), SUCCEEDED);
        assert!(answer.payment_id.is_some());
        assert_eq!(answer.breaker, "closed");
    }

    #[tokio::test]
    async fn an_amount_over_the_limit_is_refused_and_does_not_count_against_the_gateway() {
        let mut payments = payments(1);
        let answer = payments.pay(&order(1, 500_000)).await;
        assert_eq!(answer.reason, Some(FailReason::OverLimit));
        assert_eq!(answer.message, "5000.00 is over the limit of 1000.00");
        assert_eq!(
            answer.breaker, "closed",
            "a business refusal is not a gateway failure"
        );
    }

    #[tokio::test]
    async fn gateway_failures_open_the_breaker_and_the_next_order_fails_fast() {
        let mut payments = payments(2);
        assert_eq!(
            payments.pay(&order(1, 2_013)).await.reason,
            Some(FailReason::GatewayError)
        );
        let second = payments.pay(&order(2, 2_013)).await;
        assert_eq!(second.reason, Some(FailReason::GatewayError));
        assert_eq!(second.breaker, "open");
        let third = payments.pay(&order(3, 3_000)).await;
        assert_eq!(third.reason, Some(FailReason::CircuitOpen));
        assert!(
            third.message.starts_with("circuit open"),
            "{}",
            third.message
        );
    }

    #[tokio::test]
    async fn a_redelivered_order_gets_the_same_answer_without_a_second_charge() {
        let mut payments = payments(3);
        let first = payments.pay(&order(1, 3_000)).await;
        let again = payments.pay(&order(1, 3_000)).await;
        assert_eq!(first, again, "same payment id: charged once");
    }

    #[tokio::test]
    async fn zero_and_negative_amounts_are_refused() {
        let mut payments = payments(3);
        assert_eq!(
            payments.pay(&order(1, 0)).await.reason,
            Some(FailReason::InvalidAmount)
        );
        assert_eq!(
            payments.pay(&order(2, -5)).await.reason,
            Some(FailReason::InvalidAmount)
        );
    }

    #[test]
    fn cents_are_shown_with_two_decimals() {
        assert_eq!(cents(123_456), "1234.56");
        assert_eq!(cents(5), "0.05");
        assert_eq!(cents(-1_013), "-10.13");
    }
}
