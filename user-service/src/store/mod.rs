//! SQLite storage. One writer connection lives on its own thread and takes commands over
//! a bounded channel; it drains every queued command into one `BEGIN IMMEDIATE`
//! transaction (group commit), one savepoint per command so a refused command does not
//! undo the others, and replies only after the commit. Each change writes the user row,
//! its outbox row (the complete CloudEvent) and, for an idempotent create, the response
//! to replay, atomically. Reads use separate read-only connections (WAL).

mod ops;
mod read;
mod schema;
mod writer;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use events::TraceParent;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::domain::{NewUser, User, UserPatch};
use crate::metrics::Metrics;
use read::ReadPool;
pub use schema::SCHEMA_VERSION;
pub use writer::WriterThread;
use writer::{Command, Op, Outcome};

/// Commands waiting for the writer; senders wait (back-pressure) when it is full.
const WRITE_QUEUE: usize = 4096;

/// Why a store operation did not happen. The API maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No user has this id.
    #[error("no user with id {0}")]
    NotFound(i64),
    /// Another user has this email.
    #[error("the email is already taken")]
    EmailTaken,
    /// The idempotency key was first used with another request body.
    #[error("the idempotency key was used with a different request")]
    IdempotencyMismatch,
    /// The writer thread has stopped (shutting down, or it failed).
    #[error("the database writer has stopped")]
    WriterGone,
    /// The database failed (an internal error: the API answers 500).
    #[error("database error: {0}")]
    Database(#[source] DatabaseError),
}

/// What failed inside the store, with its cause.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// SQLite reported an error. Shared: a failed group commit answers every command
    /// of the group with it.
    #[error(transparent)]
    Sqlite(Arc<rusqlite::Error>),
    /// A stored idempotent response could not be read back.
    #[error("stored idempotent response is unreadable: {0}")]
    UnreadableResponse(#[source] serde_json::Error),
    /// A response could not be serialized for an idempotency record.
    #[error("serializing a response: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A read on the blocking thread pool did not run to completion.
    #[error("read task failed: {0}")]
    ReadTask(#[source] tokio::task::JoinError),
    /// The writer answered with another operation's result (a bug).
    #[error("unexpected writer reply {0}")]
    UnexpectedReply(String),
}

impl From<DatabaseError> for StoreError {
    fn from(error: DatabaseError) -> Self {
        Self::Database(error)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        DatabaseError::Sqlite(Arc::new(error)).into()
    }
}

/// An `Idempotency-Key` and the hash of the request body it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The key as the client sent it.
    pub key: String,
    /// Hex SHA-256 of the request body.
    pub request_hash: String,
}

/// What a create did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new user was stored.
    New(User),
    /// The idempotency key was seen with the same body: the first response, nothing new.
    Replayed(User),
}

/// An outbox row waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Commit order.
    pub seq: i64,
    /// The complete structured-mode CloudEvent.
    pub body: Vec<u8>,
}

/// What one prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Published outbox rows removed.
    pub events: u64,
    /// Idempotency records removed.
    pub idempotency_keys: u64,
}

/// A cheap, cloneable handle on the database.
#[derive(Debug, Clone)]
pub struct Store {
    commands: mpsc::Sender<Command>,
    reads: Arc<ReadPool>,
    committed: Arc<Notify>,
}

impl Store {
    /// Opens (creating and migrating) the database at `path` and starts the writer thread.
    /// The returned [`WriterThread`] ends once every `Store` clone is dropped.
    pub fn open(path: &Path, metrics: &Metrics) -> anyhow::Result<(Self, WriterThread)> {
        let conn = schema::open_writer(path)?;
        let backlog = read::backlog(&conn).context("counting the outbox backlog")?;
        metrics
            .outbox_backlog
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let committed = Arc::new(Notify::new());
        let (commands, receiver) = mpsc::channel(WRITE_QUEUE);
        let thread = writer::spawn(conn, receiver, committed.clone(), metrics.clone())
            .context("starting the database writer thread")?;
        let store = Self {
            commands,
            reads: Arc::new(ReadPool::new(path.to_owned())),
            committed,
        };
        Ok((store, thread))
    }

    /// Notified after every commit that added outbox rows.
    pub fn committed(&self) -> Arc<Notify> {
        self.committed.clone()
    }

    /// Creates a user (or replays the first response of an idempotent retry).
    pub async fn create(
        &self,
        user: NewUser,
        trace: TraceParent,
        key: Option<IdempotencyKey>,
    ) -> Result<Created, StoreError> {
        match self.send(Op::Create { user, trace, key }).await? {
            Outcome::Created(created) => Ok(created),
            other => Err(unexpected(&other)),
        }
    }

    /// Applies `patch` to user `id`: version + 1, a `user_updated` event.
    pub async fn update(
        &self,
        id: i64,
        patch: UserPatch,
        trace: TraceParent,
    ) -> Result<User, StoreError> {
        match self.send(Op::Update { id, patch, trace }).await? {
            Outcome::Updated(user) => Ok(user),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes user `id`; returns the version of the `user_deleted` event.
    pub async fn delete(&self, id: i64, trace: TraceParent) -> Result<u64, StoreError> {
        match self.send(Op::Delete { id, trace }).await? {
            Outcome::Deleted { version } => Ok(version),
            other => Err(unexpected(&other)),
        }
    }

    /// Marks outbox rows published (those not already marked); returns how many changed.
    pub async fn mark_published(&self, seqs: Vec<i64>) -> Result<u64, StoreError> {
        match self.send(Op::MarkPublished { seqs }).await? {
            Outcome::Marked(count) => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    /// Removes up to `limit` outbox rows published before `before_ms` (unix ms) and the
    /// idempotency records older than that.
    pub async fn prune(&self, before_ms: i64, limit: u32) -> Result<Pruned, StoreError> {
        match self.send(Op::Prune { before_ms, limit }).await? {
            Outcome::Pruned(pruned) => Ok(pruned),
            other => Err(unexpected(&other)),
        }
    }

    /// The user with this id, if any.
    pub async fn get(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.reads.run(move |conn| read::user_by_id(conn, id)).await
    }

    /// Up to `limit` users with an id above `after`, oldest first.
    pub async fn list(&self, after: i64, limit: u32) -> Result<Vec<User>, StoreError> {
        self.reads
            .run(move |conn| read::users_after(conn, after, limit))
            .await
    }

    /// The first `limit` unpublished outbox rows, in commit order.
    pub async fn pending(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.reads.run(move |conn| read::pending(conn, limit)).await
    }

    /// How many outbox rows await publishing; also proves the database answers.
    pub async fn backlog(&self) -> Result<u64, StoreError> {
        self.reads.run(read::backlog).await
    }

    async fn send(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command { op, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        response.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn unexpected(outcome: &Outcome) -> StoreError {
    // The writer answers each op with its own outcome variant; this is a bug if reached.
    DatabaseError::UnexpectedReply(format!("{outcome:?}")).into()
}

#[cfg(test)]
mod tests;
