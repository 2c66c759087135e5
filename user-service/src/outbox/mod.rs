//! The outbox relay: publishes committed events to the dispatch queue in commit order,
//! pipelined with publisher confirms, and marks a row published only after its confirm.
//! It wakes on every commit and on a timer; when the broker is away it reconnects with
//! backoff while the API keeps serving and the backlog grows. A crash between publish and
//! mark republishes the event with the same id (at-least-once). Published rows and old
//! idempotency records are pruned after the retention period.

mod prune;
mod publish;

use std::time::Duration;

use events::amqp::{self, PublishError, Publisher};
use events::backoff::Backoff;
use events::{AmqpSettings, Endpoints};
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
pub use prune::prune;
use publish::publish_batch;

/// Rows read and published per round trip.
const BATCH: u32 = 512;

/// What the relay needs to know.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub amqp: AmqpSettings,
    /// Where events go (declared with `events::amqp::declare_queue`).
    pub queue: String,
    /// Wake-up period when no commit signals (also notices a dead connection).
    pub poll_interval: Duration,
}

/// Why a connected session ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum RelayError {
    #[error("cannot set up the outbox channel: {0}")]
    Setup(#[source] lapin::Error),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("no confirm within {0:?}")]
    ConfirmTimeout(Duration),
    #[error("the broker connection is gone")]
    ConnectionLost,
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Runs the relay until `shutdown`, reconnecting with the shared [`Backoff`] whenever a
/// session fails (to connect, to set up, or later).
pub async fn relay(
    store: Store,
    settings: RelaySettings,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let endpoints = Endpoints::from(&settings.amqp);
    loop {
        backoff.session_started();
        let Some(connection) = connect(&endpoints, &shutdown).await else {
            return;
        };
        let result = session(&store, &connection, &settings, &metrics, &shutdown).await;
        let _ = connection
            .close(200, "user-service outbox relay".into())
            .await;
        let Err(error) = result else {
            return;
        };
        tracing::warn!(%error, queue = %settings.queue, "outbox relay lost the broker");
        if !backoff.sleep(&shutdown).await {
            return;
        }
    }
}

/// Connects, retrying until it works or shutdown (`None`).
async fn connect(endpoints: &Endpoints, shutdown: &CancellationToken) -> Option<Connection> {
    amqp::connect(endpoints, "user-service outbox", shutdown)
        .await
        .ok()
}

/// One session on a connection: opens a confirm channel, declares the queue, then
/// publishes until shutdown (`Ok`) or a broker failure (`Err`).
async fn session(
    store: &Store,
    connection: &Connection,
    settings: &RelaySettings,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), RelayError> {
    let publisher = open(connection, settings).await.inspect_err(|_| {
        metrics.failed("connect");
    })?;
    metrics.broker_connected.set(1);
    tracing::info!(queue = %settings.queue, "outbox relay connected");
    let result = serve(store, &publisher, connection, settings, metrics, shutdown).await;
    metrics.broker_connected.set(0);
    result
}

/// Opens a confirm channel and declares the queue.
async fn open(connection: &Connection, settings: &RelaySettings) -> Result<Publisher, RelayError> {
    let publisher = Publisher::new(connection)
        .await
        .map_err(RelayError::Setup)?;
    amqp::declare_queue(
        publisher.channel(),
        &settings.queue,
        settings.amqp.queue_type,
    )
    .await
    .map_err(RelayError::Setup)?;
    Ok(publisher)
}

/// Publishes until shutdown (`Ok`) or a broker failure (`Err`).
async fn serve(
    store: &Store,
    publisher: &Publisher,
    connection: &Connection,
    settings: &RelaySettings,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), RelayError> {
    let committed = store.committed();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            drained = drain(store, publisher, &settings.queue, metrics) => {
                drained?;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = committed.notified() => {}
            () = tokio::time::sleep(settings.poll_interval) => {
                if !connection.status().connected() {
                    return Err(RelayError::ConnectionLost);
                }
            }
        }
    }
}

/// Publishes every pending row, batch by batch; returns how many were confirmed.
async fn drain(
    store: &Store,
    publisher: &Publisher,
    queue: &str,
    metrics: &Metrics,
) -> Result<usize, RelayError> {
    let mut total = 0;
    loop {
        let rows = store.pending(BATCH).await?;
        if rows.is_empty() {
            return Ok(total);
        }
        let (confirmed, failure) = publish_batch(publisher, queue, &rows, metrics).await;
        if confirmed > 0 {
            let seqs = rows[..confirmed].iter().map(|row| row.seq).collect();
            store.mark_published(seqs).await?;
            total += confirmed;
            tracing::debug!(confirmed, "outbox batch published");
        }
        if let Some(error) = failure {
            return Err(error);
        }
    }
}
