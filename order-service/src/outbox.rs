//! The outbox relay: publishes the events committed with orders (`order_placed`) to the
//! dispatch queue in commit order, pipelined with publisher confirms, and marks a row
//! published only after its confirm. It wakes on every order and on a timer; while the
//! broker is away it reconnects with backoff, the API keeps taking orders and the backlog
//! waits in SQLite. A crash between publish and mark republishes the event with the same
//! id (at-least-once; the payment service answers a repeated order once).

use std::time::Duration;

use events::amqp::{self, PublishError, Publisher};
use events::backoff::Backoff;
use events::{AmqpSettings, CloudEvent, Endpoints};
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::db::{Readers, StoreError};
use crate::outbox_store::{self, OutboxRow};
use crate::writer::{WriteError, Writer};

/// Rows read and published per round trip.
const BATCH: u32 = 256;
/// How long a confirm may take before the connection is considered dead.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// Wake-up period when no order signals (also notices a dead connection).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the relay needs to know.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Broker URL and queue type.
    pub amqp: AmqpSettings,
    /// Where events go (declared with `events::amqp::declare_queue`).
    pub queue: String,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("cannot set up the outbox channel: {0}")]
    Setup(#[source] lapin::Error),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("no confirm within {0:?}")]
    ConfirmTimeout(Duration),
    #[error("the broker connection is gone")]
    ConnectionLost,
    #[error("reading the outbox: {0}")]
    Read(#[from] StoreError),
    #[error("marking rows published: {0}")]
    Mark(#[from] WriteError),
}

/// Runs the relay until `shutdown`, reconnecting with the shared [`Backoff`] whenever a
/// session fails.
pub async fn relay(
    readers: Readers,
    writer: Writer,
    settings: RelaySettings,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let endpoints = Endpoints::from(&settings.amqp);
    loop {
        backoff.session_started();
        let Ok(connection) = amqp::connect(&endpoints, "order-service outbox", &shutdown).await
        else {
            return;
        };
        let result = session(&readers, &writer, &connection, &settings, &shutdown).await;
        let _ = connection
            .close(200, "order-service outbox relay".into())
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

/// One connection: a confirm channel, the queue declared, then publish until shutdown
/// (`Ok`) or a failure (`Err`).
async fn session(
    readers: &Readers,
    writer: &Writer,
    connection: &Connection,
    settings: &RelaySettings,
    shutdown: &CancellationToken,
) -> Result<(), RelayError> {
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
    tracing::info!(queue = %settings.queue, "outbox relay connected");
    let placed = writer.placed();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            drained = drain(readers, writer, &publisher, &settings.queue) => drained?,
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = placed.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {
                if !connection.status().connected() {
                    return Err(RelayError::ConnectionLost);
                }
            }
        }
    }
}

/// Publishes every pending row, batch by batch.
async fn drain(
    readers: &Readers,
    writer: &Writer,
    publisher: &Publisher,
    queue: &str,
) -> Result<(), RelayError> {
    loop {
        let rows = readers.read(|c| outbox_store::pending(c, BATCH)).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let (confirmed, failure) = publish_batch(publisher, queue, &rows).await;
        if confirmed > 0 {
            let seqs = rows[..confirmed].iter().map(|row| row.seq).collect();
            writer.mark_published(seqs).await?;
            tracing::debug!(confirmed, "outbox batch published");
        }
        if let Some(error) = failure {
            return Err(error);
        }
    }
}

/// Sends the whole batch, then waits for each confirm in order: the length of the
/// confirmed prefix and the first failure (later rows are published again next time).
async fn publish_batch(
    publisher: &Publisher,
    queue: &str,
    rows: &[OutboxRow],
) -> (usize, Option<RelayError>) {
    let mut sent = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in rows {
        let properties = match CloudEvent::from_json(&row.body) {
            Ok(event) => event.amqp_properties(),
            // Only this service writes the outbox; publish it anyway so that the
            // dispatcher dead-letters it with a reason rather than it blocking the queue.
            Err(error) => {
                tracing::error!(seq = row.seq, %error, "outbox row is not a readable event");
                lapin::BasicProperties::default().with_delivery_mode(amqp::PERSISTENT)
            }
        };
        match publisher.send("", queue, &row.body, properties).await {
            Ok(pending) => sent.push(pending),
            Err(error) => {
                failure = Some(RelayError::Publish(error));
                break;
            }
        }
    }
    let mut confirmed = 0;
    for pending in sent {
        match tokio::time::timeout(CONFIRM_TIMEOUT, pending.wait()).await {
            Ok(Ok(())) => confirmed += 1,
            Ok(Err(error)) => return (confirmed, Some(RelayError::Publish(error))),
            Err(_) => return (confirmed, Some(RelayError::ConfirmTimeout(CONFIRM_TIMEOUT))),
        }
    }
    (confirmed, failure)
}
