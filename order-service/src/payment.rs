//! Payment events as this service reads them: a [`CloudEvent`] of type
//! `payment_succeeded` or `payment_failed` (the saga's answer to `order_placed`) turned
//! into a typed [`PaymentEvent`], or a [`Poison`] saying why it cannot be applied.

use chrono::{DateTime, Utc};
use events::{CloudEvent, EnvelopeError};
use serde::Deserialize;

use crate::event::Poison;

/// The event type of a successful payment: the order is confirmed.
pub const PAYMENT_SUCCEEDED: &str = "payment_succeeded";
/// The event type of a refused or failed payment: the order is cancelled.
pub const PAYMENT_FAILED: &str = "payment_failed";
/// The event type order-service emits when an order is placed.
pub const ORDER_PLACED: &str = "order_placed";

/// What the payment service decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Charged; the payment service's id for the charge, if it gave one.
    Succeeded { payment_id: Option<String> },
    /// Not charged, and why (`over_limit`, `gateway_error`, `circuit_open`, ...).
    Failed { reason: String },
}

/// One payment event, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    /// The CloudEvents `id` (the dedupe key, and what the order's history names).
    pub event_id: String,
    /// The order paid for.
    pub order_id: i64,
    /// The amount the payment service handled, in cents.
    pub amount_cents: i64,
    /// Paid or not.
    pub outcome: PaymentOutcome,
    /// The event's `time` attribute.
    pub time: Option<DateTime<Utc>>,
}

/// `data` of a payment event. Unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct PaymentData {
    order_id: i64,
    amount_cents: i64,
    #[serde(default)]
    payment_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl PaymentEvent {
    /// The CloudEvents `type` this event came as.
    pub fn event_type(&self) -> &'static str {
        match self.outcome {
            PaymentOutcome::Succeeded { .. } => PAYMENT_SUCCEEDED,
            PaymentOutcome::Failed { .. } => PAYMENT_FAILED,
        }
    }

    /// Reads a payment event out of a CloudEvent whose type is one of the two.
    pub fn from_cloud_event(event: &CloudEvent) -> Result<Self, Poison> {
        let data: PaymentData = event.data_as().map_err(|e| match e {
            EnvelopeError::Data(message) => Poison::BadData(message),
            EnvelopeError::Missing(_) => Poison::BadData("missing `data`".to_owned()),
            other => Poison::Envelope(other),
        })?;
        if data.order_id < 1 {
            return Err(Poison::BadData(format!(
                "data.order_id must be a positive integer, found {}",
                data.order_id
            )));
        }
        let outcome = match event.ty.as_str() {
            PAYMENT_SUCCEEDED => PaymentOutcome::Succeeded {
                payment_id: data.payment_id,
            },
            PAYMENT_FAILED => PaymentOutcome::Failed {
                reason: data
                    .reason
                    .ok_or_else(|| Poison::BadData("payment_failed needs data.reason".into()))?,
            },
            other => return Err(Poison::UnknownType(other.to_owned())),
        };
        Ok(Self {
            event_id: event.id.clone(),
            order_id: data.order_id,
            amount_cents: data.amount_cents,
            outcome,
            time: event.time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(ty: &str, data: serde_json::Value) -> CloudEvent {
        CloudEvent::new("saga-payment", ty, data)
    }

    #[test]
    fn a_success_is_read_with_its_payment_id_and_unknown_fields_ignored() {
        let e = event(
            PAYMENT_SUCCEEDED,
            json!({"order_id": 3, "amount_cents": 900, "payment_id": "pay-1", "breaker": "closed"}),
        );
        let payment = PaymentEvent::from_cloud_event(&e).unwrap();
        assert_eq!((payment.order_id, payment.amount_cents), (3, 900));
        assert_eq!(payment.event_id, e.id);
        assert_eq!(
            payment.outcome,
            PaymentOutcome::Succeeded {
                payment_id: Some("pay-1".into())
            }
        );
        assert_eq!(payment.event_type(), PAYMENT_SUCCEEDED);
    }

    #[test]
    fn a_failure_is_read_with_its_reason() {
        let e = event(
            PAYMENT_FAILED,
            json!({"order_id": 3, "amount_cents": 900, "reason": "over_limit"}),
        );
        let payment = PaymentEvent::from_cloud_event(&e).unwrap();
        assert_eq!(
            payment.outcome,
            PaymentOutcome::Failed {
                reason: "over_limit".into()
            }
        );
    }

    #[test]
    fn bad_payment_events_are_poison_with_bad_data() {
        let cases = [
            event(PAYMENT_FAILED, json!({"order_id": 3, "amount_cents": 900})),
            event(PAYMENT_SUCCEEDED, json!({"order_id": 0, "amount_cents": 1})),
            event(
                PAYMENT_SUCCEEDED,
                json!({"order_id": "3", "amount_cents": 1}),
            ),
            event(PAYMENT_SUCCEEDED, json!({"amount_cents": 1})),
        ];
        for e in cases {
            let err = PaymentEvent::from_cloud_event(&e).unwrap_err();
            assert_eq!(err.reason(), "bad_data", "{err}");
        }
    }
}
