//! The payment gateway, simulated. Like a payment provider's sandbox, some amounts fail on
//! purpose: an amount ending in 13 cents (20.13, 7.13) gets a gateway error, so that a
//! demo or a test can make the gateway fail when it wants. `failure_rate` adds random
//! failures on top, to watch the circuit breaker open and close under a flaky gateway.

use std::time::Duration;

/// Amounts whose cents are this value fail with a gateway error.
pub const FAILING_CENTS: i64 = 13;

/// A charge the gateway could not make (a timeout, a 5xx: worth retrying later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payment gateway error: {0}")]
pub struct GatewayError(pub String);

/// The simulated gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Time each charge takes.
    latency: Duration,
    /// Share of charges that fail at random, from 0.0 to 1.0.
    failure_rate: f64,
}

impl Gateway {
    /// A gateway that answers after `latency` and fails `failure_rate` of charges at random.
    pub fn new(latency: Duration, failure_rate: f64) -> Self {
        Self {
            latency,
            failure_rate: failure_rate.clamp(0.0, 1.0),
        }
    }

    /// Charges `amount_cents` for `order`; returns the payment id.
    pub async fn charge(&self, order: i64, amount_cents: i64) -> Result<String, GatewayError> {
        tokio::time::sleep(self.latency).await;
        if amount_cents % 100 == FAILING_CENTS {
            return Err(GatewayError(format!(
                "502 from the gateway (test amount ending in .{FAILING_CENTS})"
            )));
        }
        if self.failure_rate > 0.0 && rand::random_bool(self.failure_rate) {
            return Err(GatewayError("timed out (random failure)".to_owned()));
        }
        Ok(format!("pay-{order}-{}", uuid::Uuid::now_v7().simple()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ordinary_amounts_are_charged() {
        let gateway = Gateway::new(Duration::ZERO, 0.0);
        let id = gateway.charge(7, 3_000).await.unwrap();
        assert!(id.starts_with("pay-7-"), "{id}");
    }

    #[tokio::test]
    async fn amounts_ending_in_13_cents_fail() {
        let gateway = Gateway::new(Duration::ZERO, 0.0);
        let error = gateway.charge(7, 2_013).await.unwrap_err();
        assert!(error.to_string().contains("502"), "{error}");
    }

    #[tokio::test]
    async fn a_failure_rate_of_one_fails_every_charge() {
        let gateway = Gateway::new(Duration::ZERO, 1.0);
        assert!(gateway.charge(7, 3_000).await.is_err());
    }
}
