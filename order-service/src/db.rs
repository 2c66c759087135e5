//! The SQLite database file: opening (WAL, `synchronous=FULL`), the schema and its
//! migrations, the error split (transient: retry; permanent: do not), and a small pool
//! of read connections used from `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode};

/// How long SQLite itself waits on a lock before answering `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// Schema migrations, applied in order; `PRAGMA user_version` counts the applied ones.
const MIGRATIONS: &[&str] = &[
    // 1: snapshots, processed event ids, orders.
    "CREATE TABLE users (
        user_id       INTEGER PRIMARY KEY,
        name          TEXT,
        email         TEXT,
        version       INTEGER NOT NULL,
        deleted       INTEGER NOT NULL DEFAULT 0,
        updated_at    TEXT,
        last_event_id TEXT NOT NULL
     );
     CREATE TABLE processed_events (
        event_id     TEXT PRIMARY KEY,
        processed_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX processed_events_by_time ON processed_events (processed_at);
     CREATE TABLE orders (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id     INTEGER NOT NULL,
        total_cents INTEGER NOT NULL,
        created_at  TEXT NOT NULL
     );
     CREATE TABLE order_items (
        order_id         INTEGER NOT NULL REFERENCES orders (id),
        position         INTEGER NOT NULL,
        sku              TEXT NOT NULL,
        quantity         INTEGER NOT NULL,
        unit_price_cents INTEGER NOT NULL,
        PRIMARY KEY (order_id, position)
     ) WITHOUT ROWID;",
    // 2: the saga: order status and version, each transition, and the outbox of events
    // to publish. Orders from before have no history and stay `pending`.
    "ALTER TABLE orders ADD COLUMN status TEXT NOT NULL DEFAULT 'pending';
     ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
     CREATE TABLE order_history (
        order_id   INTEGER NOT NULL REFERENCES orders (id),
        version    INTEGER NOT NULL,
        status     TEXT NOT NULL,
        at         TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        event_type TEXT NOT NULL,
        reason     TEXT,
        PRIMARY KEY (order_id, version)
     ) WITHOUT ROWID;
     CREATE TABLE outbox (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        body         BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        published_at INTEGER
     );
     CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;",
];

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database folder could not be created.
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file's schema is newer than this binary knows.
    #[error("database schema version {found} is newer than this binary's {known}")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The number of migrations this binary has.
        known: usize,
    },
    /// A stored value cannot be read back (a corrupted or hand-edited row).
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
    /// A blocking read task did not run to completion.
    #[error("database read task failed: {0}")]
    ReadTask(#[source] tokio::task::JoinError),
    /// The writer thread could not be started.
    #[error("cannot start the database writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
}

impl StoreError {
    /// Whether retrying later may succeed: a lock held elsewhere, an I/O hiccup, a full
    /// disk. Anything else would fail the same way again.
    pub fn is_transient(&self) -> bool {
        let Self::Sqlite(error) = self else {
            return false;
        };
        matches!(
            error.sqlite_error_code(),
            Some(
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DiskFull
                    | ErrorCode::CannotOpen
                    | ErrorCode::OutOfMemory
                    | ErrorCode::FileLockingProtocolFailed
                    | ErrorCode::SchemaChanged
            )
        )
    }
}

/// Opens (creating the file and its folder) and sets the connection up.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    let connection = Connection::open(path)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // FULL, not NORMAL: a message is acked once its transaction commits, and an acked
    // message is never redelivered, so a commit must survive a power loss too, not only
    // a process crash. One WAL fsync per group-committed batch (about 0.3 ms here).
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

/// Applies the migrations the file has not seen yet, in one transaction.
pub fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let applied: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = MIGRATIONS.len();
    let applied_count = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied_count > known {
        return Err(StoreError::SchemaTooNew {
            found: applied,
            known,
        });
    }
    for (version, sql) in (1i64..).zip(MIGRATIONS).skip(applied_count) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tracing::info!(version, "database migrated");
    }
    tx.commit()?;
    Ok(())
}

/// Read connections, opened on demand and kept for reuse (at most [`Readers::KEEP`]).
#[derive(Debug, Clone)]
pub struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Readers {
    /// How many idle connections are kept.
    const KEEP: usize = 8;

    /// A pool for the database at `path` (which [`open`] has created).
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `query` on a read connection on the blocking pool.
    pub async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let connection = pool.take()?;
            let result = query(&connection);
            pool.give_back(connection);
            result
        })
        .await
        .map_err(StoreError::ReadTask)?
    }

    fn take(&self) -> Result<Connection, StoreError> {
        // The lock is only held to pop or push; a poisoned lock still holds valid data.
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => {
                let connection = open(&self.path)?;
                connection.pragma_update(None, "query_only", "ON")?;
                Ok(connection)
            }
        }
    }

    fn give_back(&self, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < Self::KEEP {
            idle.push(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_harmless_and_creates_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/orders.db");
        let mut connection = open(&path).unwrap();
        migrate(&mut connection).unwrap();
        migrate(&mut connection).unwrap();
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let mode: String = connection
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // 2 = FULL: an acked event's commit survives a power loss.
        let synchronous: i64 = connection
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(synchronous, 2);
    }

    #[test]
    fn a_schema_from_a_newer_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = open(&dir.path().join("o.db")).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut connection).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn busy_is_transient_and_a_constraint_is_not() {
        let busy = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        let constraint = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        ));
        assert!(busy.is_transient());
        assert!(!constraint.is_transient());
        assert!(!StoreError::Corrupt("x".into()).is_transient());
    }

    #[tokio::test]
    async fn readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        migrate(&mut open(&path).unwrap()).unwrap();
        let readers = Readers::new(&path);
        let result = readers
            .read(|c| Ok(c.execute("DELETE FROM users", [])?))
            .await;
        assert!(result.is_err());
        let count = readers
            .read(|c| Ok(c.query_row("SELECT count(*) FROM users", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(count, 0);
    }
}
