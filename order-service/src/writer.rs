//! The one writer connection, on its own thread. Everything that writes goes through it:
//! a batch of events is applied in one `BEGIN IMMEDIATE` transaction (group commit), an
//! order is placed in another (with its `order_placed` in the outbox), confirmed
//! outbox rows are marked published. Transient failures (busy, I/O) are retried with backoff;
//! a batch that fails for good is replayed event by event so one bad event cannot block
//! the others.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::db::{self, StoreError};
use crate::event::Incoming;
use crate::order_store::{self, Placed};
use crate::orders::NewOrder;
use crate::snapshots::{self, Recorded};
use crate::{order_history, outbox_store};

/// How long an order waits on a busy database before the request fails with 503.
pub const ORDER_DEADLINE: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_millis(10);
const MAX_RETRY: Duration = Duration::from_secs(1);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A transient failure persisted and shutdown was requested: not committed.
    #[error("shutdown requested while retrying: {0}")]
    Abandoned(StoreError),
    /// A transient failure outlasted the caller's deadline: not committed.
    #[error("database still busy after {0:?}: {1}")]
    TimedOut(Duration, StoreError),
    /// A failure that retrying cannot fix.
    #[error(transparent)]
    Permanent(StoreError),
    /// The writer thread is gone.
    #[error("the database writer has stopped")]
    Stopped,
}

/// The result of one event in a batch: what was recorded, or why the store refused it
/// for good.
pub type EventResult = Result<Recorded, StoreError>;

enum Command {
    Apply {
        events: Vec<Incoming>,
        reply: oneshot::Sender<Result<Vec<EventResult>, WriteError>>,
    },
    Place {
        order: NewOrder,
        reply: oneshot::Sender<Result<Placed, WriteError>>,
    },
    MarkPublished {
        seqs: Vec<i64>,
        reply: oneshot::Sender<Result<(), WriteError>>,
    },
}

/// A handle to the writer thread; cheap to clone. The thread ends when every handle is
/// dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    commands: mpsc::Sender<Command>,
    placed: Arc<Notify>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Apply { events, .. } => write!(f, "Apply({} events)", events.len()),
            Self::Place { order, .. } => write!(f, "Place(user {})", order.user_id),
            Self::MarkPublished { seqs, .. } => write!(f, "MarkPublished({} rows)", seqs.len()),
        }
    }
}

/// How the writer behaves.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Processed event ids older than this are forgotten (`None`: kept forever).
    pub dedupe_retention: Option<Duration>,
    /// Once cancelled, a transient failure is not retried any more.
    pub stop: CancellationToken,
    /// Counts transient failures that were retried.
    pub retries: Counter,
}

/// Opens and migrates the database at `path`, then starts the writer thread.
pub fn start(path: &Path, options: WriterOptions) -> Result<(Writer, JoinHandle<()>), StoreError> {
    let mut connection = db::open(path)?;
    db::migrate(&mut connection)?;
    let (commands, receiver) = mpsc::channel(16);
    let placed = Arc::new(Notify::new());
    let thread = Thread {
        connection,
        options,
        last_prune: None,
        placed: placed.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || thread.run(receiver))
        .map_err(StoreError::WriterThread)?;
    Ok((Writer { commands, placed }, handle))
}

impl Writer {
    /// Applies `events` in one transaction; one result per event, in order. `Err` means
    /// nothing was committed.
    pub async fn apply(&self, events: Vec<Incoming>) -> Result<Vec<EventResult>, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Apply { events, reply }).await?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Stores `order` if its user is live.
    pub async fn place(&self, order: NewOrder) -> Result<Placed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Place { order, reply }).await?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Marks outbox rows published (their publish was confirmed).
    pub async fn mark_published(&self, seqs: Vec<i64>) -> Result<(), WriteError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::MarkPublished { seqs, reply }).await?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }

    /// Signalled after each order commit: its event waits in the outbox.
    pub fn placed(&self) -> Arc<Notify> {
        self.placed.clone()
    }

    async fn send(&self, command: Command) -> Result<(), WriteError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| WriteError::Stopped)
    }
}

struct Thread {
    connection: Connection,
    options: WriterOptions,
    last_prune: Option<Instant>,
    placed: Arc<Notify>,
}

impl Thread {
    fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        while let Some(command) = receiver.blocking_recv() {
            match command {
                Command::Apply { events, reply } => {
                    let _ = reply.send(self.apply(&events));
                    self.prune_if_due();
                }
                Command::Place { order, reply } => {
                    let deadline = Instant::now() + ORDER_DEADLINE;
                    let result = self.with_retry(Some(deadline), |tx| {
                        order_store::place(tx, &order, Utc::now())
                    });
                    if matches!(result, Ok(Placed::Created(_))) {
                        self.placed.notify_one();
                    }
                    let _ = reply.send(result);
                }
                Command::MarkPublished { seqs, reply } => {
                    let now = Utc::now().timestamp();
                    let result =
                        self.with_retry(None, |tx| outbox_store::mark_published(tx, &seqs, now));
                    let _ = reply.send(result);
                    self.prune_if_due();
                }
            }
        }
        tracing::debug!("database writer stopped");
    }

    fn apply(&mut self, events: &[Incoming]) -> Result<Vec<EventResult>, WriteError> {
        let now = Utc::now();
        let batch = self.with_retry(None, |tx| {
            events
                .iter()
                .map(|event| apply_one(tx, event, now))
                .collect::<Result<Vec<_>, _>>()
        });
        match batch {
            Ok(recorded) => Ok(recorded.into_iter().map(Ok).collect()),
            Err(WriteError::Permanent(error)) if events.len() > 1 => {
                tracing::warn!(%error, events = events.len(), "batch refused, applying one by one");
                events
                    .iter()
                    .map(|event| self.apply_alone(event, now))
                    .collect()
            }
            Err(WriteError::Permanent(error)) => Ok(vec![Err(error)]),
            Err(other) => Err(other),
        }
    }

    fn apply_alone(
        &mut self,
        event: &Incoming,
        now: chrono::DateTime<Utc>,
    ) -> Result<EventResult, WriteError> {
        match self.with_retry(None, |tx| apply_one(tx, event, now)) {
            Ok(recorded) => Ok(Ok(recorded)),
            Err(WriteError::Permanent(error)) => Ok(Err(error)),
            Err(other) => Err(other),
        }
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction and commits, retrying transient
    /// failures with backoff until it succeeds, `deadline` passes or shutdown begins.
    fn with_retry<T>(
        &mut self,
        deadline: Option<Instant>,
        mut work: impl FnMut(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, WriteError> {
        let started = Instant::now();
        let mut delay = FIRST_RETRY;
        loop {
            let error = match transaction(&mut self.connection, &mut work) {
                Ok(value) => return Ok(value),
                Err(error) if !error.is_transient() => return Err(WriteError::Permanent(error)),
                Err(error) => error,
            };
            self.options.retries.inc();
            if self.options.stop.is_cancelled() {
                return Err(WriteError::Abandoned(error));
            }
            if deadline.is_some_and(|d| Instant::now() + delay > d) {
                return Err(WriteError::TimedOut(started.elapsed(), error));
            }
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "database write failed, retrying");
            std::thread::sleep(delay);
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    fn prune_if_due(&mut self) {
        let Some(retention) = self.options.dedupe_retention else {
            return;
        };
        if self.last_prune.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let secs = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        let before = Utc::now().timestamp().saturating_sub(secs);
        match transaction(&mut self.connection, |tx| {
            Ok(
                snapshots::prune_processed(tx, before)?
                    + outbox_store::prune_published(tx, before)?,
            )
        }) {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "forgot old processed event ids and outbox rows"),
            Err(error) => tracing::warn!(%error, "pruning processed event ids failed"),
        }
    }
}

/// Applies one event of either kind on `tx`.
fn apply_one(
    tx: &Connection,
    event: &Incoming,
    now: chrono::DateTime<Utc>,
) -> Result<Recorded, StoreError> {
    match event {
        Incoming::User(user) => snapshots::apply(tx, user, now.timestamp()),
        Incoming::Payment(payment) => order_history::apply_payment(tx, payment, now),
    }
}

fn transaction<T>(
    connection: &mut Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = work(&tx)?;
    tx.commit()?;
    Ok(value)
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
