//! The cold paths of a delivery, boxed by their callers so that they do not grow the
//! future kept for every in-flight delivery: retrying a refused publish, and
//! dead-lettering.

use std::time::Duration;

use events::amqp::PublishError;
use lapin::BasicProperties;
use lapin::types::AMQPValue;

use super::deliver::{
    CONFIRM_TIMEOUT, Context, ERROR_HEADER, Failure, Fate, GENERATION_HEADER, Outcome,
    generation_value, headers_of, publish,
};
use crate::routes::Target;
use crate::state::Generation;

/// A refused publish: dead-letter the event; a lost connection: end the session.
pub(super) async fn failed(
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

/// Retries a refused publish with doubling backoff, each attempt bounded.
pub(super) async fn retry(
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
pub(super) async fn dead_letter(
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
        generation_value(generation.number),
    );
    let properties = properties.with_headers(headers);
    let target = Target::Queue(generation.table.dead_letter.clone());
    let targets = [&target];
    let published = publish(context, &targets, body, &properties);
    match tokio::time::timeout(CONFIRM_TIMEOUT, published).await {
        Err(_) => Fate::Lost(anyhow::anyhow!(
            "no publisher confirm within {CONFIRM_TIMEOUT:?}"
        )),
        Ok(Ok(())) => Fate::Done(Outcome::DeadLettered(reason)),
        Ok(Err(Failure::Lost(error))) => Fate::Lost(error),
        Ok(Err(Failure::Refused { target, error })) => {
            tracing::error!(%target, %error, "dead-letter publish refused; the event is requeued");
            context.shared.metrics.requeued.inc();
            Fate::Requeue
        }
    }
}
