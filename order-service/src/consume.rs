//! The AMQP loop: consume the input queue with a bounded prefetch and manual acks; take
//! every delivery at hand (up to the prefetch) as one batch and hand it to [`crate::batch`]
//! (one SQLite transaction, dead-letters, one `multiple` ack). Broker loss: reconnect
//! with backoff and resume. Shutdown: the batch in hand is finished (committed, acked),
//! then it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use events::amqp::{self, ConnectError, PublishError, Publisher, declare_queue};
use events::backoff::Backoff;
use events::{AmqpSettings, Endpoints};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::writer::{WriteError, Writer};

/// What the consumer needs to know.
#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    /// Broker URL and queue type.
    pub amqp: AmqpSettings,
    pub queue: String,
    /// Most unacked deliveries at once (and most events per transaction).
    pub prefetch: u16,
}

/// The event consumer: broker in, writer out.
#[derive(Debug, Clone)]
pub struct EventConsumer {
    /// Where and how to consume.
    pub settings: ConsumeSettings,
    pub writer: Writer,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// True while consuming (what `/readyz` reports).
    pub consuming: Arc<AtomicBool>,
}

/// How a session with the broker ended.
pub(crate) enum Ended {
    /// Shutdown was requested (the batch in hand, if any, was finished).
    Shutdown,
    /// The connection or a channel failed: reconnect.
    Lost(Lost),
    /// The database writer is gone: nothing more can be applied.
    Fatal(WriteError),
}

/// Why the broker was lost; the consumer reconnects.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Lost {
    #[error("cannot connect: {0}")]
    Connect(#[source] ConnectError),
    #[error("setting up the consumer: {0}")]
    Setup(#[source] lapin::Error),
    #[error("consuming: {0}")]
    Consume(#[source] lapin::Error),
    #[error("the broker cancelled the consumer")]
    ConsumerCancelled,
    #[error("dead-lettering: {0}")]
    DeadLetter(#[source] PublishError),
    #[error("the channel closed before settling")]
    ChannelClosed,
    #[error("settling: {0}")]
    Settle(#[source] lapin::Error),
}

impl EventConsumer {
    /// Consumes until `shutdown`, reconnecting with the shared [`Backoff`] when the broker
    /// is lost; `Err` only if the database writer stopped.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WriteError> {
        let mut backoff = Backoff::new();
        let endpoints = Endpoints::from(&self.settings.amqp);
        loop {
            backoff.session_started();
            let url = &endpoints;
            let name = format!("order-service {}", self.settings.queue);
            let ended = match amqp::connect(url, &name, &shutdown).await {
                Ok(connection) => self.connected(&connection, &shutdown).await,
                Err(ConnectError::Cancelled) => Ended::Shutdown,
                Err(error) => Ended::Lost(Lost::Connect(error)),
            };
            let error = match ended {
                Ended::Shutdown => {
                    tracing::info!("consumer stopped");
                    return Ok(());
                }
                Ended::Fatal(error) => return Err(error),
                Ended::Lost(error) => error,
            };
            tracing::warn!(%error, "lost the broker, reconnecting");
            if !backoff.sleep(&shutdown).await {
                return Ok(());
            }
        }
    }

    fn set_consuming(&self, on: bool) {
        self.consuming.store(on, Ordering::SeqCst);
        self.metrics.consuming.set(i64::from(on));
    }

    /// One connection's life: set up, consume until it ends, close the connection.
    async fn connected(&self, connection: &Connection, shutdown: &CancellationToken) -> Ended {
        match self.open(connection).await {
            Ok((publisher, mut consumer)) => {
                let ended = self.session(&publisher, &mut consumer, shutdown).await;
                self.set_consuming(false);
                let _ = connection.close(200, "order-service stopping".into()).await;
                // Dropped only now, on purpose: lapin 4.12.3 deadlocks (lock-order
                // inversion between its consumer map and channel status) when the last
                // handle of a consumer is dropped inside its connection-error path while
                // deliveries are still arriving. Holding ours until the connection is
                // closed keeps that drop out of the locked path.
                drop(consumer);
                drop(publisher);
                ended
            }
            Err(error) => {
                let _ = connection.close(200, "order-service stopping".into()).await;
                Ended::Lost(Lost::Setup(error))
            }
        }
    }

    async fn session(
        &self,
        publisher: &Publisher,
        consumer: &mut Consumer,
        shutdown: &CancellationToken,
    ) -> Ended {
        self.set_consuming(true);
        tracing::info!(queue = %self.settings.queue, prefetch = self.settings.prefetch, "consuming");
        loop {
            let next = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ended::Shutdown,
                next = consumer.next() => next,
            };
            let first = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(error)) => return Ended::Lost(Lost::Consume(error)),
                None => return Ended::Lost(Lost::ConsumerCancelled),
            };
            let (batch, lost) = take_ready(consumer, first, self.settings.prefetch);
            if let Err(ended) = self.handle(publisher, batch).await {
                return ended;
            }
            if let Some(error) = lost {
                return Ended::Lost(error);
            }
        }
    }

    async fn open(&self, connection: &Connection) -> Result<(Publisher, Consumer), lapin::Error> {
        let queue = self.settings.queue.as_str();
        let publisher = Publisher::new(connection).await?;
        declare_queue(publisher.channel(), queue, self.settings.amqp.queue_type).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "order-service".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((publisher, consumer))
    }
}

/// The first delivery plus every one already received, up to `limit`; and why the
/// stream ended, if it ended.
fn take_ready(
    consumer: &mut Consumer,
    first: Delivery,
    limit: u16,
) -> (Vec<Delivery>, Option<Lost>) {
    let mut batch = vec![first];
    while batch.len() < usize::from(limit) {
        match consumer.next().now_or_never() {
            Some(Some(Ok(delivery))) => batch.push(delivery),
            Some(Some(Err(error))) => return (batch, Some(Lost::Consume(error))),
            Some(None) => return (batch, Some(Lost::ConsumerCancelled)),
            None => break,
        }
    }
    (batch, None)
}
