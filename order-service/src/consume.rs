//! The AMQP loop: consume the input queue with a bounded prefetch and manual acks; take
//! every delivery at hand (up to the prefetch) as one batch, apply it in one SQLite
//! transaction, dead-letter the poison, then ack the batch with one `multiple` ack.
//! Nothing is acked before its effect is committed. Broker loss: reconnect with backoff
//! and resume. Shutdown: the batch in hand is finished (committed, acked), then it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use events::amqp::{self, ConnectError, Publisher, declare_queue, reconnect_backoff};
use events::{AmqpSettings, CloudEvent, TraceParent};
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use lapin::{Connection, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::event::{Poison, UserEvent};
use crate::metrics::Metrics;
use crate::outcome::{Fate, fates};
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
enum Ended {
    /// Shutdown was requested (the batch in hand, if any, was finished).
    Shutdown,
    /// The connection or a channel failed: reconnect.
    Lost(String),
    /// The database writer is gone: nothing more can be applied.
    Fatal(WriteError),
}

/// One delivery and what it says.
struct Message {
    delivery: Delivery,
    span: Span,
    read: Result<UserEvent, Poison>,
}

impl EventConsumer {
    /// Consumes until `shutdown`; `Err` only if the database writer stopped.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WriteError> {
        let mut delays = reconnect_backoff();
        loop {
            let url = &self.settings.amqp.url;
            let connection = match amqp::connect(url, "order-service", &shutdown).await {
                Ok(connection) => connection,
                Err(ConnectError::Cancelled) => return Ok(()),
                Err(error) => {
                    tracing::warn!(%error, "cannot connect to the broker");
                    continue;
                }
            };
            let mut progressed = false;
            let ended = self.session(&connection, &shutdown, &mut progressed).await;
            self.set_consuming(false);
            let _ = connection.close(200, "order-service stopping".into()).await;
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

    async fn session(
        &self,
        connection: &Connection,
        shutdown: &CancellationToken,
        progressed: &mut bool,
    ) -> Ended {
        let (publisher, mut consumer) = match self.open(connection).await {
            Ok(opened) => opened,
            Err(error) => return Ended::Lost(format!("setting up the consumer: {error}")),
        };
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
            let (batch, lost) = take_ready(&mut consumer, first, self.settings.prefetch);
            if let Err(ended) = self.handle(&publisher, batch).await {
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

    /// Applies, dead-letters and acks one batch. `Err` ends the session.
    async fn handle(&self, publisher: &Publisher, batch: Vec<Delivery>) -> Result<(), Ended> {
        let messages: Vec<Message> = batch.into_iter().map(Message::read).collect();
        let events: Vec<UserEvent> = messages
            .iter()
            .filter_map(|m| m.read.as_ref().ok().cloned())
            .collect();
        let results = if events.is_empty() {
            Vec::new()
        } else {
            #[allow(clippy::cast_precision_loss)] // a batch is at most 65535 events
            self.metrics.batch_size.observe(events.len() as f64);
            self.writer
                .apply(events)
                .await
                .map_err(|error| match error {
                    WriteError::Abandoned(_) => Ended::Shutdown,
                    other => Ended::Fatal(other),
                })?
        };
        let fates = fates(messages.iter().map(|m| &m.read), results);
        let mut rejected = vec![false; messages.len()];
        let mut pending = Vec::new();
        for (index, (message, fate)) in messages.iter().zip(&fates).enumerate() {
            if let Fate::DeadLetter(poison) = fate {
                let queue = &self.settings.queue;
                match crate::dead_letter::send(publisher, queue, &message.delivery, poison).await {
                    Ok(confirm) => pending.push((index, confirm)),
                    Err(error) => return Err(Ended::Lost(error.to_string())),
                }
            }
        }
        for (index, confirm) in pending {
            match confirm.wait().await {
                Ok(()) => {}
                Err(error) if error.is_connection_error() => {
                    return Err(Ended::Lost(error.to_string()));
                }
                Err(error) => {
                    let message = &messages[index];
                    message.span.in_scope(|| {
                        tracing::warn!(%error, "dead-letter publish failed, rejecting instead");
                    });
                    reject(&message.delivery).await?;
                    rejected[index] = true;
                }
            }
        }
        for (message, fate) in messages.iter().zip(&fates) {
            fate.record(&message.span, &self.metrics);
        }
        ack_all_but(&messages, &rejected).await
    }
}

/// The first delivery plus every one already received, up to `limit`; and the error that
/// ended the stream, if it ended.
fn take_ready(
    consumer: &mut Consumer,
    first: Delivery,
    limit: u16,
) -> (Vec<Delivery>, Option<String>) {
    let mut batch = vec![first];
    while batch.len() < usize::from(limit) {
        match consumer.next().now_or_never() {
            Some(Some(Ok(delivery))) => batch.push(delivery),
            Some(Some(Err(error))) => return (batch, Some(error.to_string())),
            Some(None) => return (batch, Some("the broker cancelled the consumer".to_owned())),
            None => break,
        }
    }
    (batch, None)
}

async fn reject(delivery: &Delivery) -> Result<(), Ended> {
    delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .map(|_| ())
        .map_err(|e| Ended::Lost(e.to_string()))
}

/// Acks every delivery not rejected, with one `multiple` ack on the highest tag: every
/// earlier delivery of this channel is settled by now (this batch, or an earlier one).
async fn ack_all_but(messages: &[Message], rejected: &[bool]) -> Result<(), Ended> {
    let highest = messages
        .iter()
        .zip(rejected)
        .filter(|(_, rejected)| !**rejected)
        .map(|(m, _)| &m.delivery)
        .max_by_key(|d| d.delivery_tag);
    let Some(delivery) = highest else {
        return Ok(());
    };
    delivery
        .acker
        .ack(BasicAckOptions { multiple: true })
        .await
        .map(|_| ())
        .map_err(|e| Ended::Lost(e.to_string()))
}

impl Message {
    fn read(delivery: Delivery) -> Self {
        let properties = &delivery.properties;
        let cloud = CloudEvent::from_amqp(properties, &delivery.data);
        let short = |v: &Option<lapin::types::ShortString>| {
            v.as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default()
        };
        let (event_id, event_type) = match &cloud {
            Ok(event) => (event.id.clone(), event.ty.clone()),
            Err(_) => (short(properties.message_id()), short(properties.kind())),
        };
        let trace = TraceParent::from_amqp(properties)
            .or_else(|| cloud.as_ref().ok().and_then(CloudEvent::traceparent));
        let trace_id = trace.map(|t| t.trace_id()).unwrap_or_default();
        let span = tracing::info_span!("event", %event_id, %event_type, %trace_id);
        let read = cloud
            .map_err(Poison::from)
            .and_then(|event| UserEvent::from_cloud_event(&event));
        Self {
            delivery,
            span,
            read,
        }
    }
}
