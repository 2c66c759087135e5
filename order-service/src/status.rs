//! The order's state machine in the saga, pure: given the stored order (if any) and one
//! payment event, what happens. No I/O here, so the rules are tested as a table.
//!
//! | stored order             | payment event                     | effect                        |
//! |--------------------------|-----------------------------------|-------------------------------|
//! | none                     | any                               | refuse: `unknown_order`       |
//! | `pending` (version 1)    | `payment_succeeded`, same amount  | move to `confirmed` (v2)      |
//! | `pending`                | `payment_succeeded`, other amount | refuse: `amount_mismatch`     |
//! | `pending`                | `payment_failed`                  | move to `cancelled` (v2): the compensation |
//! | `confirmed`              | `payment_succeeded` (new id)      | ignore: stale                 |
//! | `cancelled`              | `payment_failed` (new id)         | ignore: stale                 |
//! | `confirmed`              | `payment_failed`                  | refuse: `payment_conflict`    |
//! | `cancelled`              | `payment_succeeded`               | refuse: `payment_conflict`    |
//!
//! A redelivery with the same event id never gets here: it is a duplicate (the store
//! checks the processed ids first). `confirmed` and `cancelled` are final. An answer
//! that repeats the decision already applied (the payment service answering the same
//! order again under a new id) is stale and changes nothing. An answer that contradicts
//! it is not ignored: money taken for a cancelled order needs a refund, so it goes to
//! the dead-letter queue for a person, as does a payment for an order that does not
//! exist here (order ids come only from this service) or for another amount.

use serde::Serialize;

use crate::apply::Ignored;
use crate::payment::{PaymentEvent, PaymentOutcome};

/// Where an order is in the saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, `order_placed` emitted, waiting for the payment.
    Pending,
    /// Paid.
    Confirmed,
    /// The payment failed: the order is cancelled (the compensation).
    Cancelled,
}

impl OrderStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the state machine needs to know of a stored order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderState {
    /// The current status.
    pub status: OrderStatus,
    /// Counts the order's transitions from 1 (`pending`).
    pub version: u64,
    /// What the order costs.
    pub total_cents: i64,
}

/// Why a payment event cannot be applied: it goes to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such order here.
    #[error("order {0} is unknown to this service")]
    UnknownOrder(i64),
    /// The order's final status contradicts the event.
    #[error("order {order_id} is already {status}: {event_type} contradicts it")]
    Conflict {
        /// The order.
        order_id: i64,
        /// Its final status.
        status: OrderStatus,
        /// The contradicting event's type.
        event_type: &'static str,
    },
    /// The amount paid is not the order's total.
    #[error("order {order_id} costs {total_cents} cents but {amount_cents} were paid")]
    AmountMismatch {
        /// The order.
        order_id: i64,
        /// What it costs.
        total_cents: i64,
        /// What the event says was paid.
        amount_cents: i64,
    },
}

impl Refusal {
    /// A short, stable code for the dead-letter header and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownOrder(_) => "unknown_order",
            Self::Conflict { .. } => "payment_conflict",
            Self::AmountMismatch { .. } => "amount_mismatch",
        }
    }
}

/// The effect of one payment event on a stored order (nothing is written yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Store the order at this status and version.
    Move {
        /// The new status.
        to: OrderStatus,
        /// The new version.
        version: u64,
    },
    /// Leave the order as it is.
    Ignore(Ignored),
    /// Dead-letter the event.
    Refuse(Refusal),
}

/// The rules (see the module table).
pub fn transition(current: Option<OrderState>, event: &PaymentEvent) -> Transition {
    let Some(order) = current else {
        return Transition::Refuse(Refusal::UnknownOrder(event.order_id));
    };
    let decided = match event.outcome {
        PaymentOutcome::Succeeded { .. } => OrderStatus::Confirmed,
        PaymentOutcome::Failed { .. } => OrderStatus::Cancelled,
    };
    match order.status {
        OrderStatus::Pending
            if decided == OrderStatus::Confirmed && event.amount_cents != order.total_cents =>
        {
            Transition::Refuse(Refusal::AmountMismatch {
                order_id: event.order_id,
                total_cents: order.total_cents,
                amount_cents: event.amount_cents,
            })
        }
        OrderStatus::Pending => Transition::Move {
            to: decided,
            version: order.version + 1,
        },
        status if status == decided => Transition::Ignore(Ignored::Stale {
            stored: order.version,
        }),
        status => Transition::Refuse(Refusal::Conflict {
            order_id: event.order_id,
            status,
            event_type: event.event_type(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(amount_cents: i64) -> PaymentEvent {
        PaymentEvent {
            event_id: "p1".into(),
            order_id: 9,
            amount_cents,
            outcome: PaymentOutcome::Succeeded {
                payment_id: Some("pay-1".into()),
            },
            time: None,
        }
    }

    fn failed() -> PaymentEvent {
        PaymentEvent {
            outcome: PaymentOutcome::Failed {
                reason: "over_limit".into(),
            },
            ..paid(500)
        }
    }

    fn at(status: OrderStatus, version: u64) -> Option<OrderState> {
        Some(OrderState {
            status,
            version,
            total_cents: 500,
        })
    }

    #[test]
    fn the_saga_rules_table() {
        use OrderStatus::{Cancelled, Confirmed, Pending};
        let conflict = |status, event_type| {
            Transition::Refuse(Refusal::Conflict {
                order_id: 9,
                status,
                event_type,
            })
        };
        #[rustfmt::skip]
        let table: Vec<(&str, Option<OrderState>, PaymentEvent, Transition)> = vec![
            ("unknown order", None, paid(500), Transition::Refuse(Refusal::UnknownOrder(9))),
            ("paid confirms", at(Pending, 1), paid(500), Transition::Move { to: Confirmed, version: 2 }),
            ("failed cancels", at(Pending, 1), failed(), Transition::Move { to: Cancelled, version: 2 }),
            ("paid another amount", at(Pending, 1), paid(499), Transition::Refuse(Refusal::AmountMismatch { order_id: 9, total_cents: 500, amount_cents: 499 })),
            ("paid again", at(Confirmed, 2), paid(500), Transition::Ignore(Ignored::Stale { stored: 2 })),
            ("failed again", at(Cancelled, 2), failed(), Transition::Ignore(Ignored::Stale { stored: 2 })),
            ("failed after paid", at(Confirmed, 2), failed(), conflict(Confirmed, "payment_failed")),
            ("paid after cancelled", at(Cancelled, 2), paid(500), conflict(Cancelled, "payment_succeeded")),
        ];
        for (name, current, event, expected) in table {
            assert_eq!(transition(current, &event), expected, "case: {name}");
        }
    }

    #[test]
    fn a_failed_payment_cancels_whatever_amount_it_names() {
        let event = PaymentEvent {
            amount_cents: 1,
            ..failed()
        };
        assert_eq!(
            transition(at(OrderStatus::Pending, 1), &event),
            Transition::Move {
                to: OrderStatus::Cancelled,
                version: 2
            }
        );
    }

    #[test]
    fn statuses_parse_back_and_refusals_have_stable_reasons() {
        for status in [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("shipped"), None);
        assert_eq!(Refusal::UnknownOrder(1).reason(), "unknown_order");
        let conflict = Refusal::Conflict {
            order_id: 1,
            status: OrderStatus::Cancelled,
            event_type: "payment_succeeded",
        };
        assert_eq!(conflict.reason(), "payment_conflict");
        assert!(conflict.to_string().contains("already cancelled"));
    }
}
