//! The loop every example service runs, the way the system's own services do it:
//! connect with retry, declare its queue the shared way, consume with a bounded prefetch
//! and manual acks, hand each event to the service's [`Step`], publish what it emits with
//! publisher confirms, and only then ack. Broker loss: reconnect with backoff and resume.

use std::future::Future;

use anyhow::Context;
use events::amqp::{self, ConnectError, PublishError, Publisher, declare_queue};
use events::backoff::Backoff;
use events::{AmqpSettings, CloudEvent, EnvelopeError};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Deliveries in flight per service: enough to keep it busy, few enough to bound memory.
const PREFETCH: u16 = 20;

/// The arguments every example service takes (flattened into its own).
#[derive(Debug, Clone, clap::Args)]
pub struct StepArgs {
    /// Broker URL and queue type.
    #[command(flatten)]
    pub amqp: AmqpSettings,
    /// The queue this service consumes.
    #[arg(long)]
    pub queue: String,
    /// Where it publishes the events it emits: the dispatcher's source queue.
    #[arg(long)]
    pub dispatch: String,
}

/// What a service does after handling one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Publish this event to the dispatch queue: the routing table decides where it goes.
    Next(CloudEvent),
    /// Answer a request straight to its `reply_to` queue, with its `correlation_id`.
    Reply {
        /// The requester's reply queue (an exclusive queue or `amq.rabbitmq.reply-to.…`).
        to: String,
        /// Copied from the request, so that the requester can match the answer.
        correlation_id: String,
        /// The answer.
        event: CloudEvent,
    },
}

/// Why a service refuses an event: it is dead-lettered to `<queue>.dead`, never retried.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The message is not a readable event, or its data has the wrong shape.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The event is readable but cannot be handled (said why).
    #[error("{0}")]
    Invalid(String),
}

/// One service: what it declares besides its queue, and what it does with each event.
pub trait Step: Send {
    /// Declares what the service needs besides its own queue (an exchange and a binding).
    fn declare(&self, channel: &Channel) -> impl Future<Output = Result<(), lapin::Error>> + Send {
        let _ = channel;
        async { Ok(()) }
    }

    /// Handles one event. The delivery's properties carry `reply_to` and `correlation_id`.
    fn handle(
        &mut self,
        event: CloudEvent,
        properties: &BasicProperties,
    ) -> impl Future<Output = Result<Outcome, Refusal>> + Send;
}

/// The next event of a journey: same subject and trace as `cause`, new id and time.
pub fn follow(cause: &CloudEvent, source: &str, ty: &str, data: serde_json::Value) -> CloudEvent {
    let mut next = CloudEvent::new(source, ty, data);
    next.subject.clone_from(&cause.subject);
    match cause.traceparent() {
        Some(trace) => next.with_traceparent(&trace.child()),
        None => next,
    }
}

/// A service's whole life: telemetry, the stop signal (SIGINT/SIGTERM), then [`run`].
pub async fn main(name: &str, args: &StepArgs, step: impl Step) -> anyhow::Result<()> {
    events::telemetry::init(name)?;
    run(name, args, step, events::shutdown::on_signal()).await
}

/// Consumes `args.queue` until `shutdown`, reconnecting after broker loss.
pub async fn run(
    name: &str,
    args: &StepArgs,
    mut step: impl Step,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let endpoints = events::Endpoints::new(&args.amqp).context("the broker settings")?;
    let mut backoff = Backoff::new();
    loop {
        backoff.session_started();
        let connection = match amqp::connect(&endpoints, name, &shutdown).await {
            Ok(connection) => connection,
            Err(ConnectError::Cancelled) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let ended = session(&connection, args, &mut step, &shutdown).await;
        let _ = connection.close(200, "stopping".into()).await;
        if let Err(error) = ended {
            tracing::warn!(
                error = format!("{error:#}"),
                "lost the broker, reconnecting"
            );
            if backoff.sleep(&shutdown).await {
                continue;
            }
        }
        tracing::info!("stopped");
        return Ok(());
    }
}

/// One connection's life. `Ok` on shutdown, `Err` when the broker was lost.
async fn session(
    connection: &Connection,
    args: &StepArgs,
    step: &mut impl Step,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let publisher = Publisher::new(connection).await?;
    let channel = connection.create_channel().await?;
    declare_queue(&channel, &args.queue, args.amqp.queue_type)
        .await
        .with_context(|| format!("declaring {}", args.queue))?;
    step.declare(&channel)
        .await
        .context("declaring the service's exchange and binding")?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            args.queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %args.queue, "consuming");
    let ended = loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => break Err(error.into()),
            None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
        };
        if let Err(error) = settle(&publisher, &args.dispatch, step, delivery).await {
            break Err(error);
        }
    };
    // Closed before the consumer is dropped: lapin 4.12.3 can deadlock when the last
    // handle of a consumer is dropped while its connection fails (see order-service).
    let _ = connection.close(200, "stopping".into()).await;
    drop(consumer);
    ended
}

/// Handles one delivery to its end: acked after its outcome is confirmed, dead-lettered
/// when refused, requeued when the publish was refused. `Err` only when the broker is lost.
async fn settle(
    publisher: &Publisher,
    dispatch: &str,
    step: &mut impl Step,
    delivery: Delivery,
) -> anyhow::Result<()> {
    let handled = match CloudEvent::from_amqp(&delivery.properties, &delivery.data) {
        Ok(event) => {
            let span = tracing::info_span!("handle", event_id = %event.id, event_type = %event.ty);
            step.handle(event, &delivery.properties)
                .instrument(span)
                .await
        }
        Err(error) => Err(Refusal::from(error)),
    };
    let outcome = match handled {
        Ok(outcome) => outcome,
        Err(refusal) => {
            tracing::warn!(error = %refusal, "refused: dead-lettered");
            delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await?;
            return Ok(());
        }
    };
    match publish(publisher, dispatch, &outcome).await {
        Ok(()) => {
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        Err(error) if error.is_connection_error() => return Err(error.into()),
        Err(PublishError::Returned { .. }) if matches!(outcome, Outcome::Reply { .. }) => {
            // The requester is gone (its reply queue with it): nobody waits for this answer.
            tracing::warn!("reply returned: the requester left");
            delivery.acker.ack(BasicAckOptions::default()).await?;
        }
        Err(error) => {
            // Redelivered; the queue's delivery limit ends a loop that cannot succeed.
            tracing::warn!(%error, "publish refused: requeued");
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await?;
        }
    }
    Ok(())
}

async fn publish(
    publisher: &Publisher,
    dispatch: &str,
    outcome: &Outcome,
) -> Result<(), PublishError> {
    match outcome {
        Outcome::Next(event) => {
            tracing::info!(event_type = %event.ty, event_id = %event.id, "emitted");
            publisher
                .publish_to_queue(dispatch, &event.to_json_vec(), event.amqp_properties())
                .await
        }
        Outcome::Reply {
            to,
            correlation_id,
            event,
        } => {
            let properties = event
                .amqp_properties()
                .with_correlation_id(correlation_id.as_str().into());
            publisher
                .publish_to_queue(to, &event.to_json_vec(), properties)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_next_event_keeps_the_subject_and_the_trace_of_its_cause() {
        let trace = events::TraceParent::new_root();
        let cause = CloudEvent::new("a", "x.created", json!({}))
            .with_subject("reg-1")
            .with_traceparent(&trace);
        let next = follow(&cause, "b", "x.paid", json!({"n": 1}));
        assert_eq!(next.subject.as_deref(), Some("reg-1"));
        assert_eq!(next.ty, "x.paid");
        assert_eq!(next.source, "b");
        assert_ne!(next.id, cause.id);
        let next_trace = next.traceparent().expect("a trace");
        assert_eq!(next_trace.trace_id(), trace.trace_id());
    }

    #[test]
    fn an_event_without_a_trace_passes_none_on() {
        let cause = CloudEvent::new("a", "x.created", json!({}));
        let next = follow(&cause, "b", "x.paid", json!({}));
        assert!(next.traceparent().is_none());
        assert!(next.subject.is_none());
    }
}
