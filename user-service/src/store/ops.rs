//! The SQL of each write, run by the writer inside a savepoint: a user change always
//! writes its outbox row in the same transaction.

use chrono::{DateTime, Utc};
use events::{CloudEvent, TraceParent};
use rusqlite::{Connection, OptionalExtension, params};

use super::read::user_by_id;
use super::{Created, DatabaseError, IdempotencyKey, Pruned, StoreError};
use crate::domain::{self, NewUser, User, UserPatch};

pub(super) fn create(
    conn: &Connection,
    new: &NewUser,
    trace: &TraceParent,
    key: Option<&IdempotencyKey>,
    now: DateTime<Utc>,
) -> Result<Created, StoreError> {
    if let Some(key) = key
        && let Some(first) = replay(conn, key)?
    {
        return Ok(Created::Replayed(first));
    }
    ensure_email_free(conn, new.email.as_str(), None)?;
    let at = domain::timestamp(now);
    conn.prepare_cached(
        "INSERT INTO users (name, email, version, created_at, updated_at) \
         VALUES (?1, ?2, 1, ?3, ?3)",
    )?
    .execute(params![new.name.as_str(), new.email.as_str(), at])?;
    let user = User {
        id: conn.last_insert_rowid(),
        name: new.name.as_str().to_owned(),
        email: new.email.as_str().to_owned(),
        version: 1,
        created_at: at.clone(),
        updated_at: at,
    };
    insert_event(conn, &domain::created_event(&user, now, trace), now)?;
    if let Some(key) = key {
        remember(conn, key, &user, now)?;
    }
    Ok(Created::New(user))
}

/// The first response for `key`, if it was seen with the same request.
fn replay(conn: &Connection, key: &IdempotencyKey) -> Result<Option<User>, StoreError> {
    let seen: Option<(String, String)> = conn
        .prepare_cached("SELECT request_hash, response FROM idempotency WHERE key = ?1")?
        .query_row([&key.key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match seen {
        None => Ok(None),
        Some((hash, _)) if hash != key.request_hash => Err(StoreError::IdempotencyMismatch),
        Some((_, response)) => serde_json::from_str(&response)
            .map(Some)
            .map_err(|e| DatabaseError::UnreadableResponse(e).into()),
    }
}

fn remember(
    conn: &Connection,
    key: &IdempotencyKey,
    user: &User,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let response = serde_json::to_string(user).map_err(DatabaseError::Serialize)?;
    conn.prepare_cached(
        "INSERT INTO idempotency (key, request_hash, response, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        key.key,
        key.request_hash,
        response,
        now.timestamp_millis()
    ])?;
    Ok(())
}

fn ensure_email_free(
    conn: &Connection,
    email: &str,
    except_id: Option<i64>,
) -> Result<(), StoreError> {
    let owner: Option<i64> = conn
        .prepare_cached("SELECT id FROM users WHERE email = ?1")?
        .query_row([email], |row| row.get(0))
        .optional()?;
    match owner {
        Some(id) if Some(id) != except_id => Err(StoreError::EmailTaken),
        _ => Ok(()),
    }
}

pub(super) fn update(
    conn: &Connection,
    id: i64,
    patch: UserPatch,
    trace: &TraceParent,
    now: DateTime<Utc>,
) -> Result<User, StoreError> {
    let current = user_by_id(conn, id)?.ok_or(StoreError::NotFound(id))?;
    let name = patch
        .name
        .map_or_else(|| current.name.clone(), |n| n.as_str().to_owned());
    let email = patch
        .email
        .map_or_else(|| current.email.clone(), |e| e.as_str().to_owned());
    if name == current.name && email == current.email {
        // Nothing changes (a retried PATCH, say): no new version, no event.
        return Ok(current);
    }
    if email != current.email {
        ensure_email_free(conn, &email, Some(id))?;
    }
    let user = User {
        name,
        email,
        version: current.version + 1,
        updated_at: domain::timestamp(now),
        ..current
    };
    conn.prepare_cached(
        "UPDATE users SET name = ?1, email = ?2, version = ?3, updated_at = ?4 WHERE id = ?5",
    )?
    .execute(params![
        user.name,
        user.email,
        user.version,
        user.updated_at,
        id
    ])?;
    insert_event(conn, &domain::updated_event(&user, now, trace), now)?;
    Ok(user)
}

pub(super) fn delete(
    conn: &Connection,
    id: i64,
    trace: &TraceParent,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let current = user_by_id(conn, id)?.ok_or(StoreError::NotFound(id))?;
    conn.prepare_cached("DELETE FROM users WHERE id = ?1")?
        .execute([id])?;
    let version = current.version + 1;
    insert_event(conn, &domain::deleted_event(id, version, now, trace), now)?;
    Ok(version)
}

fn insert_event(
    conn: &Connection,
    event: &CloudEvent,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO outbox (event_id, event_type, body, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        event.id,
        event.ty,
        event.to_json_vec(),
        now.timestamp_millis()
    ])?;
    Ok(())
}

pub(super) fn mark_published(
    conn: &Connection,
    seqs: &[i64],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(
        "UPDATE outbox SET published_at = ?1 WHERE seq = ?2 AND published_at IS NULL",
    )?;
    let mut marked = 0;
    for seq in seqs {
        marked += statement.execute(params![now.timestamp_millis(), seq])? as u64;
    }
    Ok(marked)
}

pub(super) fn prune(conn: &Connection, before_ms: i64, limit: u32) -> Result<Pruned, StoreError> {
    let events = conn
        .prepare_cached(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox \
             WHERE published_at IS NOT NULL AND published_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before_ms, limit])?;
    let idempotency_keys = conn
        .prepare_cached(
            "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency \
             WHERE created_at < ?1 LIMIT ?2)",
        )?
        .execute(params![before_ms, limit])?;
    Ok(Pruned {
        events: events as u64,
        idempotency_keys: idempotency_keys as u64,
    })
}
