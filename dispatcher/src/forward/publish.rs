//! Publishing one delivery's body to its destinations: send to each, await every
//! confirm, then retry each refused (nacked or returned) publish by its own policy
//! (attempts, doubling backoff up to a cap, a maximum age), all of them at once. When
//! some stay refused, the failure says which destinations did confirm.

use std::time::Instant;

use chrono::{DateTime, Utc};
use events::amqp::{PendingConfirm, PublishError};
use futures_util::future::join_all;
use lapin::BasicProperties;

use super::context::{Awaiting, CONFIRM_TIMEOUT, Session};
use crate::routes::retry::RetryPolicy;

/// One publish of the body.
pub(super) struct Outgoing<'a> {
    /// `""` for a queue.
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub properties: &'a BasicProperties,
    /// How a refusal is retried.
    pub policy: RetryPolicy,
}

/// Why publishing failed.
pub(super) enum Failure {
    /// The connection failed, or a confirm never came: the session must end.
    Lost(anyhow::Error),
    /// The broker refused at least one publish, retries included.
    Refused(Refused),
}

/// What a refused fan-out leaves behind.
pub(super) struct Refused {
    /// The first refused send (by index).
    pub index: usize,
    /// Its last error.
    pub error: PublishError,
    /// Publishes tried to it, the first included.
    pub attempts: u32,
    /// When the first publish was refused.
    pub first_failed_at: DateTime<Utc>,
    /// The sends that were confirmed (indexes, ascending).
    pub delivered: Vec<usize>,
}

/// Sends every publish, then waits for every confirm; refused ones are retried.
pub(super) async fn publish(
    session: &Session,
    sends: &[Outgoing<'_>],
    body: &[u8],
) -> Result<(), Failure> {
    if let [one] = sends {
        let sent = send(session, one, body).await?;
        let awaiting = Awaiting::new(&session.awaiting);
        let result = sent.wait().await;
        drop(awaiting);
        return match result {
            Ok(()) => Ok(()),
            Err(error) if error.is_connection_error() => Err(Failure::Lost(error.into())),
            Err(error) => {
                Box::pin(retry_refused(
                    session,
                    sends,
                    body,
                    Vec::new(),
                    vec![(0, error)],
                ))
                .await
            }
        };
    }
    let mut pending = Vec::with_capacity(sends.len());
    for one in sends {
        pending.push(send(session, one, body).await?.wait());
    }
    let awaiting = Awaiting::new(&session.awaiting);
    let results = join_all(pending).await;
    drop(awaiting);
    let mut delivered = Vec::with_capacity(sends.len());
    let mut refused = Vec::new();
    for (index, result) in results.into_iter().enumerate() {
        match result {
            Ok(()) => delivered.push(index),
            Err(error) if error.is_connection_error() => return Err(Failure::Lost(error.into())),
            Err(error) => refused.push((index, error)),
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    // Boxed: a retry is rare, and its state must not grow every delivery's future.
    Box::pin(retry_refused(session, sends, body, delivered, refused)).await
}

async fn send(
    session: &Session,
    one: &Outgoing<'_>,
    body: &[u8],
) -> Result<PendingConfirm, Failure> {
    session
        .publisher
        .send(one.exchange, one.routing_key, body, one.properties.clone())
        .await
        .map_err(|e| Failure::Lost(e.into()))
}

/// Retries every refused send at once, each by its policy.
async fn retry_refused(
    session: &Session,
    sends: &[Outgoing<'_>],
    body: &[u8],
    mut delivered: Vec<usize>,
    refused: Vec<(usize, PublishError)>,
) -> Result<(), Failure> {
    let first_failed_at = Utc::now();
    let retries = refused.into_iter().map(|(index, error)| async move {
        (index, retry(session, &sends[index], body, error).await)
    });
    let mut first: Option<(usize, PublishError, u32)> = None;
    for (index, outcome) in join_all(retries).await {
        match outcome {
            Ok(()) => delivered.push(index),
            Err(Retried::Lost(error)) => return Err(Failure::Lost(error)),
            Err(Retried::Refused { error, attempts }) => {
                if first.as_ref().is_none_or(|(i, _, _)| index < *i) {
                    first = Some((index, error, attempts));
                }
            }
        }
    }
    let Some((index, error, attempts)) = first else {
        return Ok(());
    };
    delivered.sort_unstable();
    Err(Failure::Refused(Refused {
        index,
        error,
        attempts,
        first_failed_at,
        delivered,
    }))
}

enum Retried {
    Lost(anyhow::Error),
    Refused { error: PublishError, attempts: u32 },
}

/// Retries one refused publish while its policy allows: up to `attempts` publishes in
/// all, waiting the doubling backoff before each, none starting after `max_age`.
async fn retry(
    session: &Session,
    one: &Outgoing<'_>,
    body: &[u8],
    mut error: PublishError,
) -> Result<(), Retried> {
    let policy = one.policy;
    let started = Instant::now();
    let mut attempts = 1;
    while attempts < policy.attempts {
        let delay = policy.delay(attempts - 1);
        if started.elapsed() + delay > policy.max_age {
            break;
        }
        tracing::debug!(exchange = one.exchange, routing_key = one.routing_key, attempt = attempts + 1,
            %error, "publish refused, retrying");
        session.shared.metrics.retries.inc();
        tokio::time::sleep(delay).await;
        attempts += 1;
        let publish =
            session
                .publisher
                .publish(one.exchange, one.routing_key, body, one.properties.clone());
        match tokio::time::timeout(CONFIRM_TIMEOUT, publish).await {
            Err(_) => {
                return Err(Retried::Lost(anyhow::anyhow!(
                    "no publisher confirm within {CONFIRM_TIMEOUT:?}"
                )));
            }
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) if e.is_connection_error() => return Err(Retried::Lost(e.into())),
            Ok(Err(e)) => error = e,
        }
    }
    Err(Retried::Refused { error, attempts })
}
