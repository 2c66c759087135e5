//! The writer thread and its group commit: take every command that is queued (up to
//! [`MAX_GROUP`]), apply each in its own savepoint inside one `BEGIN IMMEDIATE`
//! transaction, commit once, then answer each command and wake the outbox relay.

use std::sync::Arc;
use std::thread::JoinHandle;

use chrono::{DateTime, Utc};
use events::TraceParent;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{Notify, mpsc, oneshot};

use super::{Created, DatabaseError, IdempotencyKey, Pruned, StoreError, ops};
use crate::domain::{NewUser, User, UserPatch};
use crate::metrics::Metrics;

/// The most commands committed in one transaction.
const MAX_GROUP: usize = 1024;

/// One operation for the writer.
#[derive(Debug)]
pub(super) enum Op {
    Create {
        user: NewUser,
        trace: TraceParent,
        key: Option<IdempotencyKey>,
    },
    Update {
        id: i64,
        patch: UserPatch,
        trace: TraceParent,
    },
    Delete {
        id: i64,
        trace: TraceParent,
    },
    MarkPublished {
        seqs: Vec<i64>,
    },
    Prune {
        before_ms: i64,
        limit: u32,
    },
}

/// What an operation did, sent back after the commit.
#[derive(Debug)]
pub(super) enum Outcome {
    Created(Created),
    Updated(User),
    Deleted { version: u64 },
    Marked(u64),
    Pruned(Pruned),
}

impl Outcome {
    /// How the outbox backlog changes when this outcome is committed.
    fn backlog_delta(&self) -> i64 {
        match self {
            Self::Created(Created::New(_)) | Self::Updated(_) | Self::Deleted { .. } => 1,
            Self::Marked(count) => -i64::try_from(*count).unwrap_or(i64::MAX),
            Self::Created(Created::Replayed(_)) | Self::Pruned(_) => 0,
        }
    }
}

/// An operation and where to send its result.
#[derive(Debug)]
pub(super) struct Command {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// The writer thread; it ends when every [`super::Store`] is dropped.
#[derive(Debug)]
pub struct WriterThread(JoinHandle<()>);

impl WriterThread {
    /// Waits for the thread to finish its last commit (call after dropping the stores).
    pub async fn join(self) {
        let joined = tokio::task::spawn_blocking(move || self.0.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the database writer thread panicked");
        }
    }
}

pub(super) fn spawn(
    conn: Connection,
    commands: mpsc::Receiver<Command>,
    committed: Arc<Notify>,
    metrics: Metrics,
) -> std::io::Result<WriterThread> {
    std::thread::Builder::new()
        .name("sqlite-writer".to_owned())
        .spawn(move || run(conn, commands, &committed, &metrics))
        .map(WriterThread)
}

fn run(
    mut conn: Connection,
    mut commands: mpsc::Receiver<Command>,
    committed: &Notify,
    metrics: &Metrics,
) {
    while let Some(first) = commands.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match commands.try_recv() {
                Ok(command) => group.push(command),
                Err(_) => break,
            }
        }
        metrics.commit_group_size.observe(group.len() as f64);
        commit_group(&mut conn, group, committed, metrics);
    }
    tracing::debug!("database writer stopped");
}

fn commit_group(conn: &mut Connection, group: Vec<Command>, committed: &Notify, metrics: &Metrics) {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => return fail_all(group.into_iter().map(|c| c.reply), error),
    };
    let now = Utc::now();
    let mut done = Vec::with_capacity(group.len());
    for Command { op, reply } in group {
        done.push((reply, in_savepoint(&mut tx, op, now)));
    }
    if let Err(error) = tx.commit() {
        return fail_all(done.into_iter().map(|(reply, _)| reply), error);
    }
    let delta: i64 = done
        .iter()
        .filter_map(|(_, result)| result.as_ref().ok())
        .map(Outcome::backlog_delta)
        .sum();
    metrics.outbox_backlog.inc_by(delta);
    if done
        .iter()
        .any(|(_, r)| r.as_ref().is_ok_and(|o| o.backlog_delta() > 0))
    {
        committed.notify_one();
    }
    for (reply, result) in done {
        // The requester may have gone away (client disconnected): the change stands.
        let _ = reply.send(result);
    }
}

fn fail_all(
    replies: impl Iterator<Item = oneshot::Sender<Result<Outcome, StoreError>>>,
    error: rusqlite::Error,
) {
    tracing::error!(%error, "database commit failed");
    let error = Arc::new(error);
    for reply in replies {
        let _ = reply.send(Err(DatabaseError::Sqlite(error.clone()).into()));
    }
}

/// Applies `op` in a savepoint: kept on success, rolled back (dropped) on failure.
fn in_savepoint(
    tx: &mut Transaction<'_>,
    op: Op,
    now: DateTime<Utc>,
) -> Result<Outcome, StoreError> {
    let savepoint = tx.savepoint()?;
    let outcome = apply(&savepoint, op, now)?;
    savepoint.commit()?;
    Ok(outcome)
}

fn apply(conn: &Connection, op: Op, now: DateTime<Utc>) -> Result<Outcome, StoreError> {
    Ok(match op {
        Op::Create { user, trace, key } => {
            Outcome::Created(ops::create(conn, &user, &trace, key.as_ref(), now)?)
        }
        Op::Update { id, patch, trace } => {
            Outcome::Updated(ops::update(conn, id, patch, &trace, now)?)
        }
        Op::Delete { id, trace } => Outcome::Deleted {
            version: ops::delete(conn, id, &trace, now)?,
        },
        Op::MarkPublished { seqs } => Outcome::Marked(ops::mark_published(conn, &seqs, now)?),
        Op::Prune { before_ms, limit } => Outcome::Pruned(ops::prune(conn, before_ms, limit)?),
    })
}
