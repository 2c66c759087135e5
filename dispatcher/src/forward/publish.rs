//! Publishing one delivery's body to its targets: send to each, await every confirm,
//! retry a refused publish alone with doubling backoff (each attempt bounded).

use std::time::Duration;

use events::amqp::{PendingConfirm, PublishError};
use futures_util::future::join_all;
use lapin::BasicProperties;

use super::context::{Awaiting, CONFIRM_TIMEOUT, Session};
use crate::routes::Target;

/// Why publishing to the targets failed.
pub(super) enum Failure {
    /// The connection failed, or a confirm never came: the session must end.
    Lost(anyhow::Error),
    /// The broker refused the message for `target`, retries included.
    Refused { target: String, error: PublishError },
}

/// Sends to every target, then waits for every confirm; a nacked or returned publish is
/// retried alone with doubling backoff.
pub(super) async fn publish(
    session: &Session,
    targets: &[&Target],
    body: &[u8],
    properties: &BasicProperties,
) -> Result<(), Failure> {
    if let [target] = targets {
        let sent = send(session, target, body, properties.clone()).await?;
        let awaiting = Awaiting::new(&session.awaiting);
        let result = sent.wait().await;
        drop(awaiting);
        return confirmed(session, target, body, properties, result).await;
    }
    let mut pending = Vec::with_capacity(targets.len());
    for target in targets {
        pending.push(
            send(session, target, body, properties.clone())
                .await?
                .wait(),
        );
    }
    let awaiting = Awaiting::new(&session.awaiting);
    let results = join_all(pending).await;
    drop(awaiting);
    for (target, result) in targets.iter().zip(results) {
        confirmed(session, target, body, properties, result).await?;
    }
    Ok(())
}

async fn send(
    session: &Session,
    target: &Target,
    body: &[u8],
    properties: BasicProperties,
) -> Result<PendingConfirm, Failure> {
    session
        .publisher
        .send(target.exchange(), target.routing_key(), body, properties)
        .await
        .map_err(|e| Failure::Lost(e.into()))
}

/// Maps one confirm to the outcome, retrying a refusal.
async fn confirmed(
    session: &Session,
    target: &Target,
    body: &[u8],
    properties: &BasicProperties,
    result: Result<(), PublishError>,
) -> Result<(), Failure> {
    match result {
        Ok(()) => Ok(()),
        Err(error) if error.is_connection_error() => Err(Failure::Lost(error.into())),
        // Boxed: a retry is rare, and its state must not grow every delivery's future.
        Err(error) => Box::pin(retry(session, target, body, properties, error)).await,
    }
}

/// Retries a refused publish with doubling backoff, each attempt bounded.
async fn retry(
    session: &Session,
    target: &Target,
    body: &[u8],
    properties: &BasicProperties,
    mut error: PublishError,
) -> Result<(), Failure> {
    let settings = &session.shared.settings;
    let mut delay = settings.retry_backoff;
    for attempt in 1..=settings.publish_retries {
        tracing::debug!(%target, attempt, %error, "publish refused, retrying");
        session.shared.metrics.retries.inc();
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
        let publish = session.publisher.publish(
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
