//! One pipelined batch: send every row, then wait for each confirm in order.

use std::time::Duration;

use events::CloudEvent;
use events::amqp::{PERSISTENT, PendingConfirm, Publisher};
use events::envelope::CONTENT_TYPE;
use lapin::BasicProperties;
use tracing::Instrument;

use super::RelayError;
use crate::metrics::{Metrics, TypeLabel};
use crate::store::OutboxRow;

/// How long a confirm may take before the connection is considered dead.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the whole batch, then waits for each confirm in order. Returns the length of the
/// confirmed prefix and the first failure; rows after a failure are retried later (a row
/// confirmed after a failed one is then published twice: duplicates are allowed).
pub(super) async fn publish_batch(
    publisher: &Publisher,
    queue: &str,
    rows: &[OutboxRow],
    metrics: &Metrics,
) -> (usize, Option<RelayError>) {
    let mut sent: Vec<(PendingConfirm, String)> = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in rows {
        let (properties, event_type, span) = describe(row);
        let result = publisher
            .send("", queue, &row.body, properties)
            .instrument(span)
            .await;
        match result {
            Ok(pending) => sent.push((pending, event_type)),
            Err(error) => {
                failure = Some(RelayError::Publish(error));
                break;
            }
        }
    }
    let mut confirmed = 0;
    for (pending, event_type) in sent {
        let error = match tokio::time::timeout(CONFIRM_TIMEOUT, pending.wait()).await {
            Ok(Ok(())) => {
                confirmed += 1;
                metrics
                    .events_published
                    .get_or_create(&TypeLabel { event_type })
                    .inc();
                continue;
            }
            Ok(Err(error)) => RelayError::Publish(error),
            Err(_) => RelayError::ConfirmTimeout(CONFIRM_TIMEOUT),
        };
        metrics.failed(match &error {
            RelayError::Publish(e) => e.reason(),
            _ => "timeout",
        });
        failure = Some(error);
        break;
    }
    (confirmed, failure)
}

/// The AMQP properties of a stored event, its type and a span for its publish. A row that
/// is not a readable event (never written by this service) is still published, with
/// minimal properties, so that the dispatcher dead-letters it with a reason.
fn describe(row: &OutboxRow) -> (BasicProperties, String, tracing::Span) {
    match CloudEvent::from_json(&row.body) {
        Ok(event) => {
            let trace_id = event
                .traceparent()
                .map(|t| t.trace_id())
                .unwrap_or_default();
            let span = tracing::debug_span!("publish", event_id = %event.id, event_type = %event.ty, %trace_id);
            (event.amqp_properties(), event.ty, span)
        }
        Err(error) => {
            tracing::error!(seq = row.seq, %error, "outbox row is not a readable event");
            let properties = BasicProperties::default()
                .with_content_type(CONTENT_TYPE.into())
                .with_delivery_mode(PERSISTENT);
            (properties, "unreadable".to_owned(), tracing::Span::none())
        }
    }
}
