//! The AMQP loop: consume the input queue with a bounded prefetch and manual acks; take
//! every delivery at hand (up to the prefetch) as one batch and hand it to [`crate::batch`]
//! (one SQLite transaction, dead-letters, one `multiple` ack). Broker loss: reconnect
//! with backoff and resume. Shutdown: the batch in hand is finished (committed, acked),
//! then it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use events::amqp::{self, ConnectError, Publisher, declare_queue, reconnect_backoff};
use events::{AmqpSettings, Endpoints};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use tokio_util::sync::CancellationToken;

use crate::batch::take_ready;
use crate::metrics::Metrics;
use crate::writer::{WriteError, Writer};

/// What the consumer needs to know.
#[derive(Debug, Clone)]
pub struct ConsumeSettings {
    /// Broker URL and queue type.
    pub amqp: AmqpSettings,
    /// The input queue.
    pub queue: String,
    /// Most unacked deliveries at once (and most events per transaction).
    pub prefetch: u16,
}

/// The event consumer: broker in, writer out.
#[derive(Debug, Clone)]
pub struct EventConsumer {
    /// Where and how to consume.
    pub settings: ConsumeSettings,
    /// The database writer.
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
    Lost(String),
    /// The database writer is gone: nothing more can be applied.
    Fatal(WriteError),
}

impl EventConsumer {
    /// Consumes until `shutdown`; `Err` only if the database writer stopped.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WriteError> {
        let mut delays = reconnect_backoff();
        let endpoints = Endpoints::from(&self.settings.amqp);
        loop {
            let url = &endpoints;
            let name = format!("order-service {}", self.settings.queue);
            let connection = match amqp::connect(url, &name, &shutdown).await {
                Ok(connection) => connection,
                Err(ConnectError::Cancelled) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "cannot connect to the broker");
                    continue;
                }
            };
            let mut progressed = false;
            let ended = self
                .connected(&connection, &shutdown, &mut progressed)
                .await;
            let error = match ended {
                Ended::Shutdown => {
                    tracing::info!("consumer stopped");
                    return Ok(());
                }
                Ended::Fatal(error) => return Err(error),
                Ended::Lost(error) => error,
            };
            if progressed {
                delays = reconnect_backoff();
            }
            let delay = delays.next().unwrap_or(std::time::Duration::from_secs(5));
            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "lost the broker, reconnecting");
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn set_consuming(&self, on: bool) {
        self.consuming.store(on, Ordering::SeqCst);
        self.metrics.consuming.set(i64::from(on));
    }

    /// One connection's life: set up, consume until it ends, close the connection.
    async fn connected(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
        progressed: &mut bool,
    ) -> Ended {
        match self.open(connection).await {
            Ok((publisher, mut consumer)) => {
                let ended = self
                    .session(&publisher, &mut consumer, shutdown, progressed)
                    .await;
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
                Ended::Lost(format!("setting up the consumer: {error}"))
            }
        }
    }

    async fn session(
        &self,
        publisher: &Publisher,
        consumer: &mut Consumer,
        shutdown: &CancellationToken,
        progressed: &mut bool,
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
                Some(Err(error)) => return Ended::Lost(error.to_string()),
                None => return Ended::Lost("the broker cancelled the consumer".to_owned()),
            };
            let (batch, lost) = take_ready(consumer, first, self.settings.prefetch);
            if let Err(ended) = self.handle(publisher, batch).await {
                return ended;
            }
            *progressed = true;
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
