//! User snapshots in SQLite: apply one event inside the caller's transaction (dedupe by
//! event id, then the rules of [`crate::apply`]), and read snapshots back for the API.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::apply::{Effect, Ignored, Snapshot, UserState, effect_of};
use crate::db::StoreError;
use crate::event::UserEvent;
use crate::order_history::Moved;
use crate::status::Refusal;

/// What applying one event (a user event or a payment event) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The snapshot was replaced by this one.
    Applied(Snapshot),
    /// An order moved to a new status.
    Moved(Moved),
    /// Nothing changed.
    Ignored(Ignored),
    /// The order's state machine refused the payment event: nothing was written, not
    /// even the event id (it goes to the dead-letter queue, and may be replayed).
    Refused(Refusal),
}

/// Applies `event` on `tx` (an open write transaction): an event id seen before is a
/// duplicate; otherwise [`effect_of`] rules, and the id is recorded as processed in the same
/// transaction as the effect. `now` is the processing time in Unix seconds.
pub fn apply(tx: &Connection, event: &UserEvent, now: i64) -> Result<Recorded, StoreError> {
    if is_processed(tx, &event.event_id)? {
        return Ok(Recorded::Ignored(Ignored::Duplicate));
    }
    let current = get(tx, event.user_id)?;
    let recorded = match effect_of(current.as_ref(), event) {
        Effect::Apply(snapshot) => {
            save(tx, &snapshot)?;
            Recorded::Applied(snapshot)
        }
        Effect::Ignore(ignored) => Recorded::Ignored(ignored),
    };
    mark_processed(tx, &event.event_id, now)?;
    Ok(recorded)
}

/// Records `event_id` as processed at `now` (Unix seconds).
pub(crate) fn mark_processed(tx: &Connection, event_id: &str, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO processed_events (event_id, processed_at) VALUES (?1, ?2)")?
        .execute(params![event_id, now])?;
    Ok(())
}

/// Whether `event_id` was processed (and not forgotten yet).
pub(crate) fn is_processed(connection: &Connection, event_id: &str) -> Result<bool, StoreError> {
    Ok(connection
        .prepare_cached("SELECT 1 FROM processed_events WHERE event_id = ?1")?
        .query_row([event_id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn save(connection: &Connection, snapshot: &Snapshot) -> Result<(), StoreError> {
    let (name, email, deleted) = match &snapshot.state {
        UserState::Live { name, email } => (Some(name.as_str()), Some(email.as_str()), false),
        UserState::Deleted => (None, None, true),
    };
    let version = i64::try_from(snapshot.version)
        .map_err(|_| StoreError::Corrupt(format!("version {} too large", snapshot.version)))?;
    connection
        .prepare_cached(
            "INSERT INTO users (user_id, name, email, version, deleted, updated_at, last_event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, email = excluded.email,
               version = excluded.version, deleted = excluded.deleted,
               updated_at = excluded.updated_at, last_event_id = excluded.last_event_id",
        )?
        .execute(params![
            snapshot.user_id,
            name,
            email,
            version,
            deleted,
            snapshot.updated_at.map(format_time),
            snapshot.last_event_id,
        ])?;
    Ok(())
}

const COLUMNS: &str = "user_id, name, email, version, deleted, updated_at, last_event_id";

/// The stored snapshot of `user_id`, tombstones included.
pub fn get(connection: &Connection, user_id: i64) -> Result<Option<Snapshot>, StoreError> {
    let raw = connection
        .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE user_id = ?1"))?
        .query_row([user_id], RawSnapshot::from_row)
        .optional()?;
    raw.map(RawSnapshot::into_snapshot).transpose()
}

/// Up to `limit` live users with an id greater than `after`, by id (oldest first).
pub fn list_live(
    connection: &Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<Snapshot>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM users WHERE deleted = 0 AND user_id > ?1 ORDER BY user_id LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![after, limit], RawSnapshot::from_row)?;
    rows.map(|raw| raw?.into_snapshot()).collect()
}

/// Forgets processed event ids older than `before` (Unix seconds). Versions still
/// protect against an old event coming back; only its label changes (stale, not
/// duplicate).
pub fn prune_processed(connection: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(connection
        .prepare_cached("DELETE FROM processed_events WHERE processed_at < ?1")?
        .execute([before])?)
}

/// Timestamps are stored as RFC 3339 text, UTC, microseconds.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Reads a timestamp written by [`format_time`].
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("bad timestamp {text:?}")))
}

/// A row as SQLite returns it, before its values are checked.
struct RawSnapshot {
    user_id: i64,
    name: Option<String>,
    email: Option<String>,
    version: i64,
    deleted: bool,
    updated_at: Option<String>,
    last_event_id: String,
}

impl RawSnapshot {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            user_id: row.get(0)?,
            name: row.get(1)?,
            email: row.get(2)?,
            version: row.get(3)?,
            deleted: row.get(4)?,
            updated_at: row.get(5)?,
            last_event_id: row.get(6)?,
        })
    }

    fn into_snapshot(self) -> Result<Snapshot, StoreError> {
        let state = match (self.deleted, self.name, self.email) {
            (true, _, _) => UserState::Deleted,
            (false, Some(name), Some(email)) => UserState::Live { name, email },
            (false, _, _) => {
                return Err(StoreError::Corrupt(format!(
                    "live user {} without name or email",
                    self.user_id
                )));
            }
        };
        Ok(Snapshot {
            user_id: self.user_id,
            version: u64::try_from(self.version)
                .map_err(|_| StoreError::Corrupt(format!("negative version {}", self.version)))?,
            last_event_id: self.last_event_id,
            updated_at: self.updated_at.as_deref().map(parse_time).transpose()?,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Change, UserEventType};
    use proptest::prelude::{Just, Strategy};

    fn db() -> Connection {
        let mut connection = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut connection).unwrap();
        connection
    }

    fn event(id: &str, user_id: i64, version: u64, change: Change) -> UserEvent {
        UserEvent {
            event_id: id.to_owned(),
            ty: UserEventType::Updated,
            user_id,
            version,
            change,
            updated_at: Some(parse_time("2026-11-22T10:00:00.123456Z").unwrap()),
            time: None,
        }
    }

    fn named(name: &str) -> Change {
        Change::Upsert {
            name: name.to_owned(),
            email: format!("{name}@example.com"),
        }
    }

    #[test]
    fn an_applied_snapshot_reads_back_identically() {
        let db = db();
        let Recorded::Applied(snapshot) = apply(&db, &event("e1", 1, 1, named("ann")), 0).unwrap()
        else {
            panic!("not applied")
        };
        assert_eq!(get(&db, 1).unwrap(), Some(snapshot));
        assert_eq!(get(&db, 2).unwrap(), None);
    }

    #[test]
    fn a_processed_event_id_is_a_duplicate_even_after_a_newer_event() {
        let db = db();
        apply(&db, &event("e1", 1, 1, named("ann")), 0).unwrap();
        apply(&db, &event("e2", 1, 2, named("bob")), 0).unwrap();
        let again = apply(&db, &event("e1", 1, 1, named("ann")), 0).unwrap();
        assert_eq!(again, Recorded::Ignored(Ignored::Duplicate));
        let stale = apply(&db, &event("x1", 1, 1, named("zed")), 0).unwrap();
        assert_eq!(stale, Recorded::Ignored(Ignored::Stale { stored: 2 }));
    }

    #[test]
    fn a_tombstone_is_kept_and_hidden_from_the_list() {
        let db = db();
        for (id, user, version, change) in [
            ("a1", 1, 1, named("ann")),
            ("b1", 2, 1, named("bob")),
            ("c1", 3, 1, named("cat")),
            ("b2", 2, 2, Change::Delete),
        ] {
            apply(&db, &event(id, user, version, change), 0).unwrap();
        }
        assert_eq!(get(&db, 2).unwrap().unwrap().state, UserState::Deleted);
        let ids = |v: Vec<Snapshot>| v.into_iter().map(|s| s.user_id).collect::<Vec<_>>();
        assert_eq!(ids(list_live(&db, 0, 10).unwrap()), [1, 3]);
        assert_eq!(ids(list_live(&db, 1, 10).unwrap()), [3]);
        assert_eq!(ids(list_live(&db, 0, 1).unwrap()), [1]);
    }

    /// Events of user 1 at versions 1..=n (true: a delete), delivered in some order with
    /// repeats, through the SQL store.
    fn stored_after(steps: &[(u64, bool)]) -> Option<Snapshot> {
        let db = db();
        for &(version, is_delete) in steps {
            let change = if is_delete {
                Change::Delete
            } else {
                named(&format!("v{version}"))
            };
            apply(&db, &event(&format!("e{version}"), 1, version, change), 0).unwrap();
        }
        get(&db, 1).unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn the_store_converges_to_the_in_order_state_whatever_the_delivery_order(
            (history, delivered) in proptest::collection::vec(proptest::bool::ANY, 1..10)
                .prop_flat_map(|deletes| {
                    let history: Vec<(u64, bool)> =
                        (1u64..).zip(deletes).map(|(v, d)| (v, d && v > 1)).collect();
                    let repeats = proptest::collection::vec(proptest::sample::select(history.clone()), 0..6);
                    (Just(history), repeats)
                })
                .prop_flat_map(|(history, repeats)| {
                    let delivered: Vec<_> = history.iter().copied().chain(repeats).collect();
                    (Just(history), Just(delivered).prop_shuffle())
                })
        ) {
            proptest::prop_assert_eq!(stored_after(&delivered), stored_after(&history));
        }
    }

    #[test]
    fn pruning_forgets_old_ids_but_versions_still_protect() {
        let db = db();
        apply(&db, &event("e1", 1, 1, named("ann")), 100).unwrap();
        apply(&db, &event("e2", 1, 2, named("bob")), 200).unwrap();
        assert_eq!(prune_processed(&db, 150).unwrap(), 1);
        let again = apply(&db, &event("e1", 1, 1, named("ann")), 300).unwrap();
        assert_eq!(again, Recorded::Ignored(Ignored::Stale { stored: 2 }));
    }
}
