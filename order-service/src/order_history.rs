//! The saga in SQLite: an order's status and version, each transition in
//! `order_history` (with the time and the event that caused it), and applying one
//! payment event inside the caller's transaction (dedupe by event id, then the rules of
//! [`crate::status`]).

use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::apply::Ignored;
use crate::db::StoreError;
use crate::payment::{PaymentEvent, PaymentOutcome};
use crate::snapshots::{Recorded, format_time, is_processed, mark_processed, parse_time};
use crate::status::{OrderState, OrderStatus, Transition, transition};

/// One transition of an order, as `GET /orders/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The order's version after it (1: placed).
    pub version: u64,
    /// The status it moved to.
    pub status: OrderStatus,
    /// When this service recorded it.
    pub at: DateTime<Utc>,
    /// The event that caused it (for `pending`: the `order_placed` it emitted).
    pub event_id: String,
    /// That event's type.
    pub event_type: String,
    /// Why the payment failed, for `cancelled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// An order that moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The order.
    pub order_id: i64,
    /// The transition recorded.
    pub entry: HistoryEntry,
}

/// Appends `entry` to the history of `order_id` on `tx`.
pub fn record(tx: &Connection, order_id: i64, entry: &HistoryEntry) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO order_history (order_id, version, status, at, event_id, event_type, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        order_id,
        to_i64(entry.version)?,
        entry.status.as_str(),
        format_time(entry.at),
        entry.event_id,
        entry.event_type,
        entry.reason,
    ])?;
    Ok(())
}

/// The transitions of `order_id`, oldest first.
pub fn history(connection: &Connection, order_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT version, status, at, event_id, event_type, reason FROM order_history
         WHERE order_id = ?1 ORDER BY version",
    )?;
    let rows = statement.query_map([order_id], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, Option<String>>(5)?,
        ))
    })?;
    rows.map(|row| {
        let (version, status, at, event_id, event_type, reason) = row?;
        Ok(HistoryEntry {
            version: from_i64(version)?,
            status: parse_status(&status)?,
            at: parse_time(&at)?,
            event_id,
            event_type,
            reason,
        })
    })
    .collect()
}

/// The status, version and total of `order_id`, if it exists.
pub fn state(connection: &Connection, order_id: i64) -> Result<Option<OrderState>, StoreError> {
    let row = connection
        .prepare_cached("SELECT status, version, total_cents FROM orders WHERE id = ?1")?
        .query_row([order_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    row.map(|(status, version, total_cents)| {
        Ok(OrderState {
            status: parse_status(&status)?,
            version: from_i64(version)?,
            total_cents,
        })
    })
    .transpose()
}

/// Applies one payment event on `tx` (an open write transaction). A processed event id
/// is a duplicate; otherwise the state machine decides. A move or an ignore records the
/// event id in the same transaction; a refusal writes nothing.
pub fn apply_payment(
    tx: &Connection,
    event: &PaymentEvent,
    now: DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    if is_processed(tx, &event.event_id)? {
        return Ok(Recorded::Ignored(Ignored::Duplicate));
    }
    let recorded = match transition(state(tx, event.order_id)?, event) {
        Transition::Refuse(refusal) => return Ok(Recorded::Refused(refusal)),
        Transition::Ignore(ignored) => Recorded::Ignored(ignored),
        Transition::Move { to, version } => {
            let entry = HistoryEntry {
                version,
                status: to,
                at: now.trunc_subsecs(6),
                event_id: event.event_id.clone(),
                event_type: event.event_type().to_owned(),
                reason: match &event.outcome {
                    PaymentOutcome::Failed { reason } => Some(reason.clone()),
                    PaymentOutcome::Succeeded { .. } => None,
                },
            };
            tx.prepare_cached("UPDATE orders SET status = ?1, version = ?2 WHERE id = ?3")?
                .execute(params![to.as_str(), to_i64(version)?, event.order_id])?;
            record(tx, event.order_id, &entry)?;
            Recorded::Moved(Moved {
                order_id: event.order_id,
                entry,
            })
        }
    };
    mark_processed(tx, &event.event_id, now.timestamp())?;
    Ok(recorded)
}

fn parse_status(text: &str) -> Result<OrderStatus, StoreError> {
    OrderStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("bad status {text:?}")))
}

fn to_i64(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| StoreError::Corrupt(format!("version {version} too large")))
}

fn from_i64(version: i64) -> Result<u64, StoreError> {
    u64::try_from(version).map_err(|_| StoreError::Corrupt(format!("negative version {version}")))
}
