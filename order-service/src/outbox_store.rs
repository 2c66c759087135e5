//! The outbox table: an event written in the same transaction as the change it
//! announces, read back in commit order by [`crate::outbox`], marked once confirmed, and
//! forgotten after the retention period.

use rusqlite::{Connection, params};

use crate::db::StoreError;

/// One event waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Commit order.
    pub seq: i64,
    /// The CloudEvent, as JSON.
    pub body: Vec<u8>,
}

/// Adds `body` to the outbox on `tx` (the caller's open write transaction). `now` is in
/// Unix seconds.
pub fn push(tx: &Connection, body: &[u8], now: i64) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT INTO outbox (body, created_at) VALUES (?1, ?2)")?
        .execute(params![body, now])?;
    Ok(())
}

/// Up to `limit` unpublished rows, oldest first.
pub fn pending(connection: &Connection, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, body FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?1",
    )?;
    let rows = statement.query_map([limit], |row| {
        Ok(OutboxRow {
            seq: row.get(0)?,
            body: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Marks rows published (their publish was confirmed). `now` is in Unix seconds.
pub fn mark_published(tx: &Connection, seqs: &[i64], now: i64) -> Result<(), StoreError> {
    let mut statement = tx.prepare_cached("UPDATE outbox SET published_at = ?1 WHERE seq = ?2")?;
    for seq in seqs {
        statement.execute(params![now, seq])?;
    }
    Ok(())
}

/// Forgets rows published before `before` (Unix seconds); unpublished rows are kept.
pub fn prune_published(tx: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(tx
        .prepare_cached("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ?1")?
        .execute([before])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut db = Connection::open_in_memory().unwrap();
        crate::db::migrate(&mut db).unwrap();
        db
    }

    #[test]
    fn rows_come_back_in_order_until_marked_and_only_published_ones_are_pruned() {
        let db = db();
        for body in [b"a", b"b", b"c"] {
            push(&db, body, 100).unwrap();
        }
        let rows = pending(&db, 2).unwrap();
        let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, [b"a", b"b"]);
        mark_published(&db, &[rows[0].seq], 200).unwrap();
        let left: Vec<Vec<u8>> = pending(&db, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.body)
            .collect();
        assert_eq!(left, [b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(prune_published(&db, 300).unwrap(), 1);
        assert_eq!(pending(&db, 10).unwrap().len(), 2, "unpublished rows stay");
    }
}
