//! The service's Prometheus metrics (HTTP metrics come from `events::http::HttpObserver`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label: an event type.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// `user_created`, `user_updated` or `user_deleted`.
    pub r#type: String,
}

/// Label: a reason code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// `stale`, `duplicate`, or a dead-letter reason such as `not_json`.
    pub reason: String,
}

/// Every metric of the consumer and the order API.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `order_events_applied_total{type}`: events that changed a snapshot.
    pub applied: Family<TypeLabel, Counter>,
    /// `order_events_ignored_total{reason}`: stale or duplicate events.
    pub ignored: Family<ReasonLabel, Counter>,
    /// `order_events_rejected_total{reason}`: events sent to the dead-letter queue.
    pub rejected: Family<ReasonLabel, Counter>,
    /// `order_snapshot_lag_seconds`: commit time minus event time, per applied event.
    pub lag: Histogram,
    /// `order_apply_batch_size`: events per SQLite transaction.
    pub batch_size: Histogram,
    /// `order_store_retries_total`: transient database failures that were retried.
    pub store_retries: Counter,
    /// `order_consuming`: 1 while consuming the input queue.
    pub consuming: Gauge,
    /// `order_orders_created_total`: orders stored.
    pub orders_created: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            applied: Family::default(),
            ignored: Family::default(),
            rejected: Family::default(),
            lag: Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0,
            ]),
            batch_size: Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]),
            store_retries: Counter::default(),
            consuming: Gauge::default(),
            orders_created: Counter::default(),
        };
        let m = metrics.clone();
        registry.register(
            "order_events_applied",
            "Events that changed a snapshot",
            m.applied,
        );
        registry.register(
            "order_events_ignored",
            "Events ignored as stale or duplicate",
            m.ignored,
        );
        registry.register(
            "order_events_rejected",
            "Events dead-lettered, by reason",
            m.rejected,
        );
        registry.register(
            "order_snapshot_lag_seconds",
            "Time from the event to its snapshot commit",
            m.lag,
        );
        registry.register(
            "order_apply_batch_size",
            "Events applied per SQLite transaction",
            m.batch_size,
        );
        registry.register(
            "order_store_retries",
            "Transient database failures that were retried",
            m.store_retries,
        );
        registry.register(
            "order_consuming",
            "1 while the input queue is being consumed",
            m.consuming,
        );
        registry.register("order_orders_created", "Orders stored", m.orders_created);
        metrics
    }

    /// Counts an event sent to the dead-letter queue.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts an ignored event.
    pub fn ignore(&self, reason: &str) {
        self.ignored
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts an applied event of `ty`.
    pub fn apply(&self, ty: &str) {
        self.applied
            .get_or_create(&TypeLabel {
                r#type: ty.to_owned(),
            })
            .inc();
    }
}
