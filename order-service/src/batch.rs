//! One batch: read each delivery, apply the events in one transaction, dead-letter the
//! poison (confirmed), then settle: reject what could not be dead-lettered and ack the
//! rest with one `multiple` ack. Nothing is acked before the commit.

use events::amqp::Publisher;
use events::{CloudEvent, TraceParent};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use tracing::Span;

use crate::consume::{Ended, EventConsumer, Lost};
use crate::disposition::{Disposition, dispositions};
use crate::event::{Incoming, Poison};
use crate::writer::WriteError;

/// One delivery and what it says.
struct Message {
    delivery: Delivery,
    span: Span,
    read: Result<Incoming, Poison>,
}

impl EventConsumer {
    /// Applies, dead-letters and acks one batch. `Err` ends the session.
    pub(crate) async fn handle(
        &self,
        publisher: &Publisher,
        batch: Vec<Delivery>,
    ) -> Result<(), Ended> {
        let messages: Vec<Message> = batch.into_iter().map(Message::read).collect();
        let events: Vec<Incoming> = messages
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
        let ends = dispositions(messages.iter().map(|m| &m.read), results);
        let mut rejected = vec![false; messages.len()];
        let mut pending = Vec::new();
        for (index, (message, disposition)) in messages.iter().zip(&ends).enumerate() {
            if let Disposition::DeadLetter(poison) = disposition {
                let queue = &self.settings.queue;
                match crate::dead_letter::send(publisher, queue, &message.delivery, poison).await {
                    Ok(confirm) => pending.push((index, confirm)),
                    Err(error) => return Err(Ended::Lost(Lost::DeadLetter(error))),
                }
            }
        }
        for (index, confirm) in pending {
            match confirm.wait().await {
                Ok(()) => {}
                Err(error) if error.is_connection_error() => {
                    return Err(Ended::Lost(Lost::DeadLetter(error)));
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
        for (message, disposition) in messages.iter().zip(&ends) {
            disposition.record(&message.span, &self.metrics);
        }
        ack_all_but(&messages, &rejected).await
    }
}

async fn reject(delivery: &Delivery) -> Result<(), Ended> {
    let result = delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await;
    settled(result)
}

/// lapin answers `Ok(false)` when the channel died before the ack or reject could be
/// sent: the broker will redeliver, so this session is over.
fn settled(result: Result<bool, lapin::Error>) -> Result<(), Ended> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(Ended::Lost(Lost::ChannelClosed)),
        Err(error) => Err(Ended::Lost(Lost::Settle(error))),
    }
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
    settled(delivery.acker.ack(BasicAckOptions { multiple: true }).await)
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
            .and_then(|event| Incoming::from_cloud_event(&event));
        Self {
            delivery,
            span,
            read,
        }
    }
}
