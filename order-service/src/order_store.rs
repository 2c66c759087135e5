//! Orders in SQLite: stored only for a user whose snapshot is live, checked in the same
//! transaction as the insert; stored `pending`, with its `order_placed` event in the
//! outbox of the same transaction (the order and its event commit together or not at
//! all).

use chrono::{DateTime, SubsecRound, Utc};
use events::CloudEvent;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

use crate::db::StoreError;
use crate::order_history::{self, HistoryEntry};
use crate::orders::{LineItem, NewOrder, Order};
use crate::outbox_store;
use crate::payment::ORDER_PLACED;
use crate::snapshots::{format_time, parse_time};
use crate::status::OrderStatus;

/// The `source` of the events this service emits.
pub const SOURCE: &str = "order-service";

/// What placing an order did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Stored.
    Created(Order),
    /// No live snapshot of the user: unknown, or deleted.
    UnknownUser,
}

/// Stores `order` on `tx` (an open write transaction) if its user is live. `now` is
/// kept at the stored (microsecond) precision, so the order reads back identically.
pub fn place(tx: &Connection, order: &NewOrder, now: DateTime<Utc>) -> Result<Placed, StoreError> {
    let now = now.trunc_subsecs(6);
    let live = tx
        .prepare_cached("SELECT 1 FROM users WHERE user_id = ?1 AND deleted = 0")?
        .query_row([order.user_id], |_| Ok(()))
        .optional()?
        .is_some();
    if !live {
        return Ok(Placed::UnknownUser);
    }
    tx.prepare_cached("INSERT INTO orders (user_id, total_cents, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![order.user_id, order.total_cents, format_time(now)])?;
    let id = tx.last_insert_rowid();
    let mut insert = tx.prepare_cached(
        "INSERT INTO order_items (order_id, position, sku, quantity, unit_price_cents)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (position, item) in order.items.iter().enumerate() {
        insert.execute(params![
            id,
            i64::try_from(position).unwrap_or(i64::MAX),
            item.sku,
            item.quantity,
            item.unit_price_cents
        ])?;
    }
    let placed = placed_event(id, order);
    let entry = HistoryEntry {
        version: 1,
        status: OrderStatus::Pending,
        at: now,
        event_id: placed.id.clone(),
        event_type: ORDER_PLACED.to_owned(),
        reason: None,
    };
    order_history::record(tx, id, &entry)?;
    outbox_store::push(tx, &placed.to_json_vec(), now.timestamp())?;
    Ok(Placed::Created(Order {
        id,
        user_id: order.user_id,
        items: order.items.clone(),
        total_cents: order.total_cents,
        created_at: now,
        status: OrderStatus::Pending,
        version: 1,
        history: vec![entry],
    }))
}

/// The `order_placed` event of order `id`: `{order_id, user_id, total_cents}`, subject
/// the order id.
fn placed_event(id: i64, order: &NewOrder) -> CloudEvent {
    let data = json!({"order_id": id, "user_id": order.user_id, "total_cents": order.total_cents});
    CloudEvent::new(SOURCE, ORDER_PLACED, data).with_subject(id.to_string())
}

/// The order `id`, with its items.
pub fn get(connection: &Connection, id: i64) -> Result<Option<Order>, StoreError> {
    let head = connection
        .prepare_cached("SELECT user_id, total_cents, created_at FROM orders WHERE id = ?1")?
        .query_row([id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    let Some((user_id, total_cents, created_at)) = head else {
        return Ok(None);
    };
    let Some(state) = order_history::state(connection, id)? else {
        return Ok(None);
    };
    let mut statement = connection.prepare_cached(
        "SELECT sku, quantity, unit_price_cents FROM order_items
         WHERE order_id = ?1 ORDER BY position",
    )?;
    let items = statement
        .query_map([id], |row| {
            Ok(LineItem {
                sku: row.get(0)?,
                quantity: row.get(1)?,
                unit_price_cents: row.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Order {
        id,
        user_id,
        items,
        total_cents,
        created_at: parse_time(&created_at)?,
        status: state.status,
        version: state.version,
        history: order_history::history(connection, id)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Change, UserEvent, UserEventType};

    fn db_with_users() -> Connection {
        let mut db = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut db).unwrap();
        for (id, user_id, version, change) in [
            (
                "e1",
                1,
                1,
                Change::Upsert {
                    name: "ann".into(),
                    email: "a@x.io".into(),
                },
            ),
            (
                "e2",
                2,
                1,
                Change::Upsert {
                    name: "bob".into(),
                    email: "b@x.io".into(),
                },
            ),
            ("e3", 2, 2, Change::Delete),
        ] {
            let event = UserEvent {
                event_id: id.into(),
                ty: UserEventType::Created,
                user_id,
                version,
                change,
                updated_at: None,
                time: None,
            };
            crate::snapshots::apply(&db, &event, 0).unwrap();
        }
        db
    }

    fn order(user_id: i64) -> NewOrder {
        NewOrder {
            user_id,
            items: vec![
                LineItem {
                    sku: "a".into(),
                    quantity: 2,
                    unit_price_cents: 100,
                },
                LineItem {
                    sku: "b".into(),
                    quantity: 1,
                    unit_price_cents: 5,
                },
            ],
            total_cents: 205,
        }
    }

    #[test]
    fn an_order_for_a_live_user_is_stored_and_reads_back() {
        let db = db_with_users();
        let now = parse_time("2026-11-22T10:00:00.5Z").unwrap();
        let Placed::Created(created) = place(&db, &order(1), now).unwrap() else {
            panic!("not created")
        };
        assert_eq!(get(&db, created.id).unwrap(), Some(created));
        assert_eq!(get(&db, 999).unwrap(), None);
    }

    #[test]
    fn an_order_for_an_unknown_or_deleted_user_is_refused() {
        let db = db_with_users();
        assert_eq!(
            place(&db, &order(2), Utc::now()).unwrap(),
            Placed::UnknownUser
        );
        assert_eq!(
            place(&db, &order(3), Utc::now()).unwrap(),
            Placed::UnknownUser
        );
    }
}
