//! The service's own metrics (the HTTP ones come from `events::http::HttpObserver`):
//! outbox backlog, events published, publish failures, broker state, commit group sizes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a published event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub event_type: String,
}

/// Label of a publish failure.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A short code: `broker_error`, `nacked`, `unroutable`, `timeout` (a confirm that
    /// never came), `connect` (the channel or queue set-up failed after connecting).
    pub reason: String,
}

/// Handles on every metric; clones share the values.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Outbox rows not yet confirmed by the broker.
    pub outbox_backlog: Gauge,
    /// Events confirmed by the broker, by type (a republished event counts again).
    pub events_published: Family<TypeLabel, Counter>,
    /// Publishes and channel set-ups that failed, by reason.
    pub publish_failures: Family<ReasonLabel, Counter>,
    /// 1 while the relay holds a broker connection, else 0.
    pub broker_connected: Gauge,
    /// Commands committed per SQLite transaction (group commit).
    pub commit_group_size: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            outbox_backlog: Gauge::default(),
            events_published: Family::default(),
            publish_failures: Family::default(),
            broker_connected: Gauge::default(),
            commit_group_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
        };
        registry.register(
            "outbox_backlog",
            "Outbox events not yet confirmed by the broker",
            metrics.outbox_backlog.clone(),
        );
        registry.register(
            "events_published",
            "Events confirmed by the broker, by type",
            metrics.events_published.clone(),
        );
        registry.register(
            "event_publish_failures",
            "Failed publishes and channel set-ups, by reason",
            metrics.publish_failures.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while the outbox relay is connected to the broker",
            metrics.broker_connected.clone(),
        );
        registry.register(
            "sqlite_commit_group_size",
            "Commands committed per SQLite transaction",
            metrics.commit_group_size.clone(),
        );
        metrics
    }

    /// Counts one failure with `reason`.
    pub fn failed(&self, reason: &str) {
        self.publish_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Whether the relay currently holds a broker connection.
    pub fn is_broker_connected(&self) -> bool {
        self.broker_connected.get() > 0
    }
}
