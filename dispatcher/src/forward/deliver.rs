//! One delivery: read its type, route it with the running generation, publish the body
//! byte for byte to every target (confirmed, retried with backoff), and say how it
//! ended. Each message ends in exactly one [`Fate`]; the session maps fates to acks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::amqp::{PublishError, Publisher};
use events::envelope::event_type;
use events::{EnvelopeError, TraceParent};
use futures_util::future::join_all;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use tracing::{Instrument, Level, Span};

use crate::routes::{EventDoc, Target};
use crate::state::{Generation, Shared};

/// Header naming the routes that matched (comma-separated).
pub const ROUTES_HEADER: &str = "x-dispatch-routes";
/// Header with the table generation that routed the event.
pub const GENERATION_HEADER: &str = "x-dispatch-generation";
/// Header saying why an event was dead-lettered: `<reason code>: <message>`.
pub const ERROR_HEADER: &str = "x-dispatch-error";

/// A confirm that takes longer than this means a stuck channel: the session is ended and
/// the broker redelivers (a safety net; confirms normally take milliseconds).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

/// How a delivery ended.
#[derive(Debug)]
pub enum Fate {
    /// Every publish it needed is confirmed: ack it.
    Done(Outcome),
    /// Not even the dead-letter publish was confirmed: reject it with requeue.
    Requeue,
    /// The broker connection failed, or a confirm never came: end the session (the
    /// broker requeues the delivery).
    Lost(anyhow::Error),
}

/// Where a settled delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// To every target of the matching routes.
    Forwarded,
    /// No route matched: to the `unrouted` queue.
    Unrouted,
    /// To the `dead_letter` queue, for this reason code.
    DeadLettered(&'static str),
}

/// What every delivery handler needs.
#[derive(Debug)]
pub struct Context {
    /// The confirm-mode channel of the publish connection.
    pub publisher: Publisher,
    /// Tables, metrics.
    pub shared: Arc<Shared>,
}

/// Why publishing to the targets failed.
enum Failure {
    Lost(anyhow::Error),
    Refused { target: String, error: PublishError },
}

/// Handles one delivery to its end.
pub async fn handle(
    context: Arc<Context>,
    tag: u64,
    properties: BasicProperties,
    body: Vec<u8>,
) -> (u64, Fate) {
    let started = Instant::now();
    let generation = context.shared.generation();
    let event_type = event_type(&properties, &body);
    let span = if tracing::enabled!(Level::DEBUG) {
        let event_id = properties.message_id().as_ref().map(|id| id.as_str());
        let trace_id = TraceParent::from_amqp(&properties).map(|t| t.trace_id());
        tracing::debug_span!(
            "forward",
            event_id = event_id.unwrap_or_default(),
            event_type = event_type.as_deref().unwrap_or_default(),
            trace_id = trace_id.as_deref().unwrap_or_default(),
        )
    } else {
        Span::none()
    };
    let fate = route_and_publish(&context, &generation, event_type, properties, &body)
        .instrument(span)
        .await;
    let metrics = &context.shared.metrics;
    metrics.latency.observe(started.elapsed().as_secs_f64());
    if let Fate::Done(Outcome::DeadLettered(reason)) = &fate {
        metrics
            .dead_lettered
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: (*reason).to_owned(),
            })
            .inc();
    }
    (tag, fate)
}

async fn route_and_publish(
    context: &Context,
    generation: &Generation,
    event_type: Result<String, EnvelopeError>,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    let table = &generation.table;
    let decision = match event_type
        .and_then(|ty| table.route(&ty, || EventDoc::from_amqp(&properties, body)))
    {
        Ok(decision) => decision,
        Err(error) => {
            let reason = error.reason();
            // Boxed: cold paths must not bloat every in-flight delivery's future.
            return Box::pin(dead_letter(
                context,
                generation,
                reason,
                &error.to_string(),
                properties,
                body,
            ))
            .await;
        }
    };
    let mut headers = headers_of(&properties);
    headers.insert(
        GENERATION_HEADER.into(),
        AMQPValue::LongLongInt(i64::try_from(generation.number).unwrap_or(i64::MAX)),
    );
    if decision.targets.is_empty() {
        let unrouted = Target::Queue(table.unrouted.clone());
        let properties = properties.with_headers(headers);
        return match publish_all(context, &[&unrouted], body, &properties).await {
            Ok(()) => {
                context.shared.metrics.unrouted.inc();
                tracing::debug!(generation = generation.number, "unrouted");
                Fate::Done(Outcome::Unrouted)
            }
            Err(failure) => Box::pin(failed(context, generation, failure, properties, body)).await,
        };
    }
    headers.insert(
        ROUTES_HEADER.into(),
        AMQPValue::LongString(decision.route_names.as_str().into()),
    );
    let properties = properties.with_headers(headers);
    let targets: Vec<&Target> = decision.targets.iter().map(|&t| table.target(t)).collect();
    match publish_all(context, &targets, body, &properties).await {
        Ok(()) => {
            for &route in &decision.routes {
                generation.counters.routes[route].inc();
            }
            for &target in &decision.targets {
                generation.counters.targets[target].inc();
            }
            tracing::debug!(
                routes = %decision.route_names,
                targets = targets.len(),
                generation = generation.number,
                "forwarded"
            );
            Fate::Done(Outcome::Forwarded)
        }
        Err(failure) => Box::pin(failed(context, generation, failure, properties, body)).await,
    }
}

async fn failed(
    context: &Context,
    generation: &Generation,
    failure: Failure,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    match failure {
        Failure::Lost(error) => Fate::Lost(error),
        Failure::Refused { target, error } => {
            let message = format!("publishing to {target} failed: {error}");
            Box::pin(dead_letter(
                context,
                generation,
                error.reason(),
                &message,
                properties,
                body,
            ))
            .await
        }
    }
}

/// Sends to every target, then waits for every confirm; a nacked or returned publish is
/// retried alone with doubling backoff.
async fn publish_all(
    context: &Context,
    targets: &[&Target],
    body: &[u8],
    properties: &BasicProperties,
) -> Result<(), Failure> {
    let mut pending = Vec::with_capacity(targets.len());
    for target in targets {
        let sent = context
            .publisher
            .send(
                target.exchange(),
                target.routing_key(),
                body,
                properties.clone(),
            )
            .await
            .map_err(|e| Failure::Lost(e.into()))?;
        pending.push(sent.wait());
    }
    let Ok(results) = tokio::time::timeout(CONFIRM_TIMEOUT, join_all(pending)).await else {
        return Err(Failure::Lost(anyhow::anyhow!(
            "no publisher confirm within {CONFIRM_TIMEOUT:?}"
        )));
    };
    for (target, result) in targets.iter().zip(results) {
        match result {
            Ok(()) => {}
            Err(error) if error.is_connection_error() => return Err(Failure::Lost(error.into())),
            Err(error) => Box::pin(retry(context, target, body, properties, error)).await?,
        }
    }
    Ok(())
}

async fn retry(
    context: &Context,
    target: &Target,
    body: &[u8],
    properties: &BasicProperties,
    mut error: PublishError,
) -> Result<(), Failure> {
    let settings = &context.shared.settings;
    let mut delay = settings.retry_backoff;
    for attempt in 1..=settings.publish_retries {
        tracing::debug!(%target, attempt, %error, "publish refused, retrying");
        context.shared.metrics.retries.inc();
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
        let publish = context.publisher.publish(
            target.exchange(),
            target.routing_key(),
            body,
            properties.clone(),
        );
        match tokio::time::timeout(CONFIRM_TIMEOUT, publish).await {
            Err(_) => {
                return Err(Failure::Lost(anyhow::anyhow!(
                    "no publisher confirm within {CONFIRM_TIMEOUT:?}"
                )));
            }
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if e.is_connection_error() => return Err(Failure::Lost(e.into())),
            Ok(Err(e)) => error = e,
        }
    }
    Err(Failure::Refused {
        target: target.to_string(),
        error,
    })
}

/// Sends the original message to `dead_letter` with the reason in a header.
async fn dead_letter(
    context: &Context,
    generation: &Generation,
    reason: &'static str,
    message: &str,
    properties: BasicProperties,
    body: &[u8],
) -> Fate {
    let event_id = properties.message_id().as_ref().map(|id| id.to_string());
    tracing::warn!(reason, error = message, event_id, "event dead-lettered");
    let mut headers = headers_of(&properties);
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(format!("{reason}: {message}").into()),
    );
    headers.insert(
        GENERATION_HEADER.into(),
        AMQPValue::LongLongInt(i64::try_from(generation.number).unwrap_or(i64::MAX)),
    );
    let properties = properties.with_headers(headers);
    let target = Target::Queue(generation.table.dead_letter.clone());
    match publish_all(context, &[&target], body, &properties).await {
        Ok(()) => Fate::Done(Outcome::DeadLettered(reason)),
        Err(Failure::Lost(error)) => Fate::Lost(error),
        Err(Failure::Refused { target, error }) => {
            tracing::error!(%target, %error, "dead-letter publish refused; the event is requeued");
            context.shared.metrics.requeued.inc();
            Fate::Requeue
        }
    }
}

fn headers_of(properties: &BasicProperties) -> FieldTable {
    properties.headers().clone().unwrap_or_default()
}
