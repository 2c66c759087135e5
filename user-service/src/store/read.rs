//! Reads: a small pool of read-only connections used from `spawn_blocking`, and the
//! queries (shared with the writer where it reads before writing).

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, Row};

use super::{DatabaseError, OutboxRow, StoreError, schema};
use crate::domain::User;

/// Idle read connections kept for reuse; more are opened under load and closed after.
const IDLE_READERS: usize = 8;

/// Read-only connections, handed to one blocking task at a time. The mutex is only held
/// to take or return a connection, never across a query or an `.await`.
#[derive(Debug)]
pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `query` on a pooled connection on the blocking thread pool.
    pub(super) async fn run<T, F>(self: &std::sync::Arc<Self>, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = query(&conn);
            pool.give_back(conn);
            result
        })
        .await
        .map_err(|e| StoreError::from(DatabaseError::ReadTask(e)))?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => Ok(schema::open_reader(&self.path)?),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

const USER_COLUMNS: &str = "id, name, email, version, created_at, updated_at";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
        version: row.get(3)?,
        created_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

pub(super) fn user_by_id(conn: &Connection, id: i64) -> Result<Option<User>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))?
        .query_row([id], user_from_row)
        .optional()?)
}

pub(super) fn users_after(
    conn: &Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<User>, StoreError> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let users = statement
        .query_map(rusqlite::params![after, limit], user_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(users)
}

pub(super) fn pending(conn: &Connection, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, body FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?1",
    )?;
    let rows = statement
        .query_map([limit], |row| {
            Ok(OutboxRow {
                seq: row.get(0)?,
                body: row.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(super) fn backlog(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM outbox WHERE published_at IS NULL")?
        .query_row([], |row| row.get(0))?)
}
