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
    /// The broker.
    pub amqp: AmqpSettings,
    /// Where events go (declared with `events::amqp::declare_queue`).
    pub queue: String,
    /// Wake-up period when no commit signals (also notices a dead connection).
    pub poll_interval: Duration,
}

/// Why a connected session ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum RelayError {
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("no confirm within {0:?}")]
    ConfirmTimeout(Duration),
    #[error("the broker connection is gone")]
    ConnectionLost,
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Runs the relay until `shutdown`.
pub async fn relay(
    store: Store,
    settings: RelaySettings,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut delays = amqp::reconnect_backoff();
    let endpoints = Endpoints::from(&settings.amqp);
    loop {
        let Some((connection, publisher)) = open(&endpoints, &settings, &metrics, &shutdown).await
        else {
            return;
        };
        metrics.broker_connected.set(1);
        tracing::info!(queue = %settings.queue, "outbox relay connected");
        let result = serve(
            &store,
            &publisher,
            &connection,
            &settings,
            &metrics,
            &shutdown,
        )
        .await;
        metrics.broker_connected.set(0);
        let _ = connection
            .close(200, "user-service outbox relay".into())
            .await;
        let Err((error, published)) = result else {
            return;
        };
        if published {
            delays = amqp::reconnect_backoff();
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "outbox relay lost the broker");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Connects (retrying until it works or shutdown), opens a confirm channel and declares
/// the queue. `None` on shutdown.
async fn open(
    endpoints: &Endpoints,
    settings: &RelaySettings,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Option<(Connection, Publisher)> {
    let mut delays = amqp::reconnect_backoff();
    loop {
        let connection = amqp::connect(endpoints, "user-service outbox", shutdown)
            .await
            .ok()?;
        let ready = async {
            let publisher = Publisher::new(&connection).await?;
            amqp::declare_queue(
                publisher.channel(),
                &settings.queue,
                settings.amqp.queue_type,
            )
            .await?;
            Ok::<_, lapin::Error>(publisher)
        };
        match ready.await {
            Ok(publisher) => return Some((connection, publisher)),
            Err(error) => {
                metrics.failed("connect");
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(%error, queue = %settings.queue, "cannot set up the outbox channel");
                let _ = connection.close(200, "setup failed".into()).await;
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Publishes until shutdown (`Ok`) or a broker failure (`Err`, with whether anything
/// was published in this session).
async fn serve(
    store: &Store,
    publisher: &Publisher,
    connection: &Connection,
    settings: &RelaySettings,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Result<(), (RelayError, bool)> {
    let committed = store.committed();
    let mut published_any = false;
    loop {
        let drained = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            result = drain(store, publisher, &settings.queue, metrics) => result,
        };
        match drained {
            Ok(count) => published_any |= count > 0,
            Err(error) => return Err((error, published_any)),
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = committed.notified() => {}
            () = tokio::time::sleep(settings.poll_interval) => {
                if !connection.status().connected() {
                    return Err((RelayError::ConnectionLost, published_any));
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
