//! The named end of each message: applied (a snapshot changed), moved (an order changed
//! status), ignored (stale or duplicate), or dead-lettered with a reason; and what each
//! end logs and counts.

use chrono::Utc;
use tracing::Span;

use crate::apply::Ignored;
use crate::event::{Change, Incoming, Poison, UserEvent};
use crate::metrics::Metrics;
use crate::order_history::Moved;
use crate::snapshots::Recorded;
use crate::writer::EventResult;

/// How one message ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Its snapshot change is committed.
    Applied(UserEvent),
    /// Its order transition is committed.
    Moved(Moved),
    /// Committed as processed, nothing changed.
    Ignored(Ignored),
    /// It goes to `<queue>.dead` with this reason.
    DeadLetter(Poison),
}

/// Pairs each read message with the writer's result for it: `results` holds one entry
/// per message that was read as an event, in order.
pub fn dispositions<'a>(
    reads: impl IntoIterator<Item = &'a Result<Incoming, Poison>>,
    results: Vec<EventResult>,
) -> Vec<Disposition> {
    let mut results = results.into_iter();
    reads
        .into_iter()
        .map(|read| match read {
            Err(poison) => Disposition::DeadLetter(poison.clone()),
            Ok(event) => match results.next() {
                Some(Ok(Recorded::Applied(_))) => match event {
                    Incoming::User(user) => Disposition::Applied(user.clone()),
                    // Impossible (a snapshot comes from a user event); still not lost.
                    Incoming::Payment(_) => Disposition::DeadLetter(Poison::ApplyFailed(
                        "a payment event changed a user snapshot".into(),
                    )),
                },
                Some(Ok(Recorded::Moved(moved))) => Disposition::Moved(moved),
                Some(Ok(Recorded::Ignored(ignored))) => Disposition::Ignored(ignored),
                Some(Ok(Recorded::Refused(refusal))) => {
                    Disposition::DeadLetter(Poison::Refused(refusal))
                }
                Some(Err(error)) => Disposition::DeadLetter(Poison::ApplyFailed(error.to_string())),
                // Impossible (one result per event); the message still is not lost.
                None => {
                    Disposition::DeadLetter(Poison::ApplyFailed("no result from the store".into()))
                }
            },
        })
        .collect()
}

impl Disposition {
    /// Logs one line in the message's span and updates the metrics.
    pub fn record(&self, span: &Span, metrics: &Metrics) {
        let _entered = span.enter();
        match self {
            Self::Applied(event) => {
                metrics.apply(event.ty.as_str());
                if let Some(time) = event.time {
                    let lag = (Utc::now() - time).num_microseconds().unwrap_or(0).max(0);
                    #[allow(clippy::cast_precision_loss)] // microseconds fit an f64 well
                    metrics.lag.observe(lag as f64 / 1e6);
                }
                let deleted = event.change == Change::Delete;
                tracing::info!(
                    user_id = event.user_id,
                    version = event.version,
                    deleted,
                    "event applied"
                );
            }
            Self::Moved(moved) => {
                metrics.apply(&moved.entry.event_type);
                tracing::info!(
                    order_id = moved.order_id,
                    status = moved.entry.status.as_str(),
                    version = moved.entry.version,
                    reason = moved.entry.reason.as_deref(),
                    "order moved"
                );
            }
            Self::Ignored(ignored) => {
                metrics.ignore(ignored.reason());
                let stored = match ignored {
                    Ignored::Stale { stored } => Some(*stored),
                    Ignored::Duplicate => None,
                };
                tracing::info!(
                    reason = ignored.reason(),
                    stored_version = stored,
                    "event ignored"
                );
            }
            Self::DeadLetter(poison) => {
                metrics.reject(poison.reason());
                tracing::warn!(reason = poison.reason(), error = %poison, "event dead-lettered");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Snapshot;
    use crate::db::StoreError;
    use crate::event::UserEventType;

    fn event(id: &str) -> UserEvent {
        UserEvent {
            event_id: id.into(),
            ty: UserEventType::Deleted,
            user_id: 1,
            version: 1,
            change: Change::Delete,
            updated_at: None,
            time: Some(chrono::DateTime::UNIX_EPOCH),
        }
    }

    #[test]
    fn results_are_paired_with_the_messages_that_were_events() {
        let reads = vec![
            Ok(Incoming::User(event("a"))),
            Err(Poison::UnknownType("x".into())),
            Ok(Incoming::User(event("b"))),
            Ok(Incoming::User(event("c"))),
        ];
        let snapshot = Snapshot {
            user_id: 1,
            version: 1,
            last_event_id: "a".into(),
            updated_at: None,
            state: crate::apply::UserState::Deleted,
        };
        let results = vec![
            Ok(Recorded::Applied(snapshot)),
            Ok(Recorded::Ignored(Ignored::Duplicate)),
            Err(StoreError::Corrupt("refused".to_owned())),
        ];
        assert_eq!(
            dispositions(&reads, results),
            vec![
                Disposition::Applied(event("a")),
                Disposition::DeadLetter(Poison::UnknownType("x".into())),
                Disposition::Ignored(Ignored::Duplicate),
                Disposition::DeadLetter(Poison::ApplyFailed(
                    "stored value is invalid: refused".into()
                )),
            ]
        );
    }

    #[test]
    fn a_missing_result_dead_letters_rather_than_loses_the_message() {
        let reads = vec![Ok(Incoming::User(event("a")))];
        assert!(matches!(
            dispositions(&reads, Vec::new())[0],
            Disposition::DeadLetter(Poison::ApplyFailed(_))
        ));
    }

    #[test]
    fn recording_counts_by_reason() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        let span = Span::none();
        Disposition::Applied(event("a")).record(&span, &metrics);
        Disposition::Ignored(Ignored::Stale { stored: 3 }).record(&span, &metrics);
        Disposition::DeadLetter(Poison::BadData("x".into())).record(&span, &metrics);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"order_events_applied_total{type="user_deleted"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"order_events_ignored_total{reason="stale"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"order_events_rejected_total{reason="bad_data"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("order_snapshot_lag_seconds_count 1"),
            "{text}"
        );
    }
}
