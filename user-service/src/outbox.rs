//! The outbox relay: publishes committed events to the dispatch queue in commit order,
//! pipelined with publisher confirms, and marks a row published only after its confirm.
//! It wakes on every commit and on a timer; when the broker is away it reconnects with
//! backoff while the API keeps serving and the backlog grows. A crash between publish and
//! mark republishes the event with the same id (at-least-once). Published rows and old
//! idempotency records are pruned after the retention period.

use std::time::Duration;

use events::amqp::{self, PERSISTENT, PendingConfirm, PublishError, Publisher};
use events::envelope::CONTENT_TYPE;
use events::{AmqpSettings, CloudEvent};
use lapin::{BasicProperties, Connection};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::{Metrics, TypeLabel};
use crate::store::{OutboxRow, Store, StoreError};

/// Rows read and published per round trip.
const BATCH: u32 = 512;
/// How long a confirm may take before the connection is considered dead.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows deleted per prune transaction, so pruning never holds the writer for long.
const PRUNE_CHUNK: u32 = 5_000;

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
enum RelayError {
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
    loop {
        let Some((connection, publisher)) = open(&settings, &metrics, &shutdown).await else {
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
    settings: &RelaySettings,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> Option<(Connection, Publisher)> {
    let mut delays = amqp::reconnect_backoff();
    loop {
        let connection = amqp::connect(&settings.amqp.url, "user-service outbox", shutdown)
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

/// Sends the whole batch, then waits for each confirm in order. Returns the length of the
/// confirmed prefix and the first failure; rows after a failure are retried later (a row
/// confirmed after a failed one is then published twice: duplicates are allowed).
async fn publish_batch(
    publisher: &Publisher,
    queue: &str,
    rows: &[OutboxRow],
    metrics: &Metrics,
) -> (usize, Option<RelayError>) {
    let mut sent: Vec<(PendingConfirm, String)> = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in rows {
        let (properties, event_type, span) = describe(row);
        let result = publisher
            .send("", queue, &row.body, properties)
            .instrument(span)
            .await;
        match result {
            Ok(pending) => sent.push((pending, event_type)),
            Err(error) => {
                failure = Some(RelayError::Publish(error));
                break;
            }
        }
    }
    let mut confirmed = 0;
    for (pending, event_type) in sent {
        let error = match tokio::time::timeout(CONFIRM_TIMEOUT, pending.wait()).await {
            Ok(Ok(())) => {
                confirmed += 1;
                metrics
                    .events_published
                    .get_or_create(&TypeLabel { event_type })
                    .inc();
                continue;
            }
            Ok(Err(error)) => RelayError::Publish(error),
            Err(_) => RelayError::ConfirmTimeout(CONFIRM_TIMEOUT),
        };
        metrics.failed(match &error {
            RelayError::Publish(e) => e.reason(),
            _ => "timeout",
        });
        failure = Some(error);
        break;
    }
    (confirmed, failure)
}

/// The AMQP properties of a stored event, its type and a span for its publish. A row that
/// is not a readable event (never written by this service) is still published, with
/// minimal properties, so that the dispatcher dead-letters it with a reason.
fn describe(row: &OutboxRow) -> (BasicProperties, String, tracing::Span) {
    match CloudEvent::from_json(&row.body) {
        Ok(event) => {
            let trace_id = event
                .traceparent()
                .map(|t| t.trace_id())
                .unwrap_or_default();
            let span = tracing::debug_span!("publish", event_id = %event.id, event_type = %event.ty, %trace_id);
            (event.amqp_properties(), event.ty, span)
        }
        Err(error) => {
            tracing::error!(seq = row.seq, %error, "outbox row is not a readable event");
            let properties = BasicProperties::default()
                .with_content_type(CONTENT_TYPE.into())
                .with_delivery_mode(PERSISTENT);
            (properties, "unreadable".to_owned(), tracing::Span::none())
        }
    }
}

/// Deletes published rows and idempotency records older than `retention`, in chunks,
/// every `retention / 4` (between 50 ms and one minute), until `shutdown`.
pub async fn prune(store: Store, retention: Duration, shutdown: CancellationToken) {
    let period = (retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let before_ms = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(retention_ms);
        loop {
            match store.prune(before_ms, PRUNE_CHUNK).await {
                Ok(pruned) if pruned.events > 0 || pruned.idempotency_keys > 0 => {
                    tracing::debug!(
                        events = pruned.events,
                        keys = pruned.idempotency_keys,
                        "outbox pruned"
                    );
                    let more = pruned.events.max(pruned.idempotency_keys) >= u64::from(PRUNE_CHUNK);
                    if !more {
                        break;
                    }
                }
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "pruning the outbox failed");
                    break;
                }
            }
        }
    }
}
