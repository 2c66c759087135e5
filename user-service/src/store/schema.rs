//! Opening the database: its folder created if missing, WAL, `synchronous=NORMAL`, a busy
//! timeout, foreign keys, and the schema migrated to the current version at start-up
//! (`PRAGMA user_version` is the schema version).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// How long a connection waits on a lock held by another before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, in order: the schema version is the number applied. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: users, the outbox and idempotency records.
    r"
    -- AUTOINCREMENT: an id is never reused, so consumers never mix a new user with the
    -- versions of a deleted one.
    CREATE TABLE users (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        name       TEXT    NOT NULL,
        email      TEXT    NOT NULL UNIQUE,
        version    INTEGER NOT NULL,
        created_at TEXT    NOT NULL,
        updated_at TEXT    NOT NULL
    );
    -- One row per event, in commit order (seq); published_at (unix ms) once confirmed.
    CREATE TABLE outbox (
        seq          INTEGER PRIMARY KEY,
        event_id     TEXT    NOT NULL UNIQUE,
        event_type   TEXT    NOT NULL,
        body         BLOB    NOT NULL,
        created_at   INTEGER NOT NULL,
        published_at INTEGER
    );
    CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;
    CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
    -- The first response to a POST with an Idempotency-Key, to replay it.
    CREATE TABLE idempotency (
        key          TEXT    PRIMARY KEY,
        request_hash TEXT    NOT NULL,
        response     TEXT    NOT NULL,
        created_at   INTEGER NOT NULL
    );
    CREATE INDEX idempotency_created ON idempotency (created_at);
    ",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Opens the writer connection, creating the file and its folder, and migrates the schema.
pub fn open_writer(path: &Path) -> anyhow::Result<Connection> {
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating the database folder {}", folder.display()))?;
    }
    let mut conn = Connection::open(path)
        .with_context(|| format!("opening the database {}", path.display()))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .context("switching the database to WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!(
            "the database {} refused WAL mode (got {mode})",
            path.display()
        );
    }
    configure(&conn)?;
    migrate(&mut conn).with_context(|| format!("migrating {}", path.display()))?;
    Ok(conn)
}

/// Opens a read-only connection (WAL: reads never block the writer).
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> anyhow::Result<()> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: usize = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > SCHEMA_VERSION {
        bail!(
            "the database has schema version {current}, newer than this binary's \
             {SCHEMA_VERSION}: run a newer user-service"
        );
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)
            .with_context(|| format!("applying migration {}", index + 1))?;
    }
    if current < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tracing::info!(
            from = current,
            to = SCHEMA_VERSION,
            "database schema migrated"
        );
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_created_and_the_schema_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/users.db");
        let conn = open_writer(&path).unwrap();
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn opening_twice_keeps_the_data_and_does_not_migrate_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let conn = open_writer(&path).unwrap();
        conn.execute(
            "INSERT INTO users (name, email, version, created_at, updated_at) \
             VALUES ('a', 'a@b.co', 1, 'x', 'x')",
            [],
        )
        .unwrap();
        drop(conn);
        let conn = open_writer(&path).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn a_database_from_a_newer_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = format!("{:#}", open_writer(&path).unwrap_err());
        assert!(err.contains("newer than this binary"), "{err}");
    }
}
