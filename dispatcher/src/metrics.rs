//! Prometheus metrics of the dispatcher. Per-route and per-target counters are
//! resolved once per table generation, so the hot path only increments atomics.

use events::http::HttpObserver;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::routes::RoutingTable;

/// Label of per-route counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

/// Label of per-target counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    /// The target as displayed (queue name, or `exchange/routing_key`).
    pub target: String,
}

/// Label of the archive counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabel {
    /// The archive stream's name.
    pub stream: String,
}

/// Label of dead-letter counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Reason code (`not_json`, `missing_type`, `unroutable`, ...).
    pub reason: String,
}

/// Label of reload counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`, `unchanged` or `error`.
    pub result: String,
}

/// Labels of the broker node gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabel {
    /// The connection's name (`<instance> consume`, `<instance> publish`).
    pub connection: String,
    /// The node's URL, password redacted.
    pub node: String,
}

/// Every metric the dispatcher exports.
#[derive(Debug)]
pub struct Metrics {
    /// `dispatcher_events_routed_total{route}`.
    pub routed: Family<RouteLabel, Counter>,
    /// `dispatcher_events_published_total{target}`.
    pub published: Family<TargetLabel, Counter>,
    /// `dispatcher_events_unrouted_total`.
    pub unrouted: Counter,
    /// `dispatcher_events_dead_lettered_total{reason}`.
    pub dead_lettered: Family<ReasonLabel, Counter>,
    /// `dispatcher_events_archived_total{stream}`: confirmed archive copies.
    pub archived: Family<StreamLabel, Counter>,
    /// `dispatcher_publish_retries_total`.
    pub retries: Counter,
    /// `dispatcher_events_requeued_total`: could not be settled, left to the broker.
    pub requeued: Counter,
    /// `dispatcher_reloads_total{result}`.
    pub reloads: Family<ResultLabel, Counter>,
    /// `dispatcher_routes_generation`.
    pub generation: Gauge,
    /// `dispatcher_routes`: routes in the running table.
    pub routes: Gauge,
    /// `dispatcher_in_flight`: deliveries received and not yet settled.
    pub in_flight: Gauge,
    /// `dispatcher_in_flight_bytes`: the bodies of those deliveries, in bytes.
    pub in_flight_bytes: Gauge,
    /// `dispatcher_in_flight_bytes_peak`: the highest `in_flight_bytes` since start.
    pub in_flight_bytes_peak: Gauge,
    /// `dispatcher_broker_sessions_total`: connections established (1 + reconnects).
    pub sessions: Counter,
    /// `dispatcher_broker_node{connection,node}`: 1 for the node each connection reached.
    pub broker_node: Family<NodeLabel, Gauge>,
    /// `dispatcher_forward_latency_seconds`: delivery received to settled.
    pub latency: Histogram,
    /// Per-request HTTP metrics of the admin endpoints.
    pub http: HttpObserver,
    /// The registry holding them all.
    pub registry: Registry,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = HttpObserver::register(&mut registry);
        let metrics = Self {
            routed: Family::default(),
            published: Family::default(),
            unrouted: Counter::default(),
            dead_lettered: Family::default(),
            archived: Family::default(),
            retries: Counter::default(),
            requeued: Counter::default(),
            reloads: Family::default(),
            generation: Gauge::default(),
            routes: Gauge::default(),
            in_flight: Gauge::default(),
            in_flight_bytes: Gauge::default(),
            in_flight_bytes_peak: Gauge::default(),
            sessions: Counter::default(),
            broker_node: Family::default(),
            latency: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            http,
            registry: Registry::default(),
        };
        let registry_ref = registry.sub_registry_with_prefix("dispatcher");
        registry_ref.register(
            "events_routed",
            "Events matched by each route",
            metrics.routed.clone(),
        );
        registry_ref.register(
            "events_published",
            "Confirmed publishes per target",
            metrics.published.clone(),
        );
        registry_ref.register(
            "events_unrouted",
            "Events no route matched (sent to the unrouted queue)",
            metrics.unrouted.clone(),
        );
        registry_ref.register(
            "events_dead_lettered",
            "Events sent to the dead-letter queue, by reason",
            metrics.dead_lettered.clone(),
        );
        registry_ref.register(
            "events_archived",
            "Events appended to the archive stream (confirmed), by stream",
            metrics.archived.clone(),
        );
        registry_ref.register(
            "publish_retries",
            "Publishes retried after a nack or a return",
            metrics.retries.clone(),
        );
        registry_ref.register("events_requeued", "Events left unacked for redelivery because not even the dead-letter publish was confirmed", metrics.requeued.clone());
        registry_ref.register(
            "reloads",
            "Routing table reloads by result",
            metrics.reloads.clone(),
        );
        registry_ref.register(
            "broker_node",
            "The broker node each connection reached last (password redacted)",
            metrics.broker_node.clone(),
        );
        registry_ref.register(
            "routes_generation",
            "Generation of the running routing table",
            metrics.generation.clone(),
        );
        registry_ref.register(
            "routes",
            "Routes in the running routing table",
            metrics.routes.clone(),
        );
        registry_ref.register(
            "in_flight",
            "Deliveries received and not yet settled",
            metrics.in_flight.clone(),
        );
        registry_ref.register(
            "in_flight_bytes",
            "Bytes of the bodies of the deliveries in flight (bounded by --max-in-flight-bytes plus one body)",
            metrics.in_flight_bytes.clone(),
        );
        registry_ref.register(
            "in_flight_bytes_peak",
            "Highest dispatcher_in_flight_bytes since start",
            metrics.in_flight_bytes_peak.clone(),
        );
        registry_ref.register(
            "broker_sessions",
            "Broker sessions started (1 + reconnects)",
            metrics.sessions.clone(),
        );
        registry_ref.register(
            "forward_latency_seconds",
            "From delivery to settled (all publishes confirmed)",
            metrics.latency.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Counts a reload attempt.
    pub fn reload(&self, result: &str) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// The counters of one table, resolved once.
    pub fn for_table(&self, table: &RoutingTable) -> TableCounters {
        TableCounters {
            routes: table
                .routes()
                .iter()
                .map(|r| {
                    self.routed
                        .get_or_create(&RouteLabel {
                            route: r.name.clone(),
                        })
                        .clone()
                })
                .collect(),
            targets: table
                .targets()
                .iter()
                .map(|t| {
                    self.published
                        .get_or_create(&TargetLabel {
                            target: target_label(t),
                        })
                        .clone()
                })
                .collect(),
            archived: table.archive.as_ref().map(|archive| {
                self.archived
                    .get_or_create(&StreamLabel {
                        stream: archive.stream.clone(),
                    })
                    .clone()
            }),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A target as a metric label: the queue, or `exchange/routing_key`.
pub fn target_label(target: &crate::routes::Target) -> String {
    match target {
        crate::routes::Target::Queue(q) => q.clone(),
        crate::routes::Target::Exchange {
            exchange,
            routing_key,
        } => format!("{exchange}/{routing_key}"),
    }
}

/// Counter handles of one table: index = route id / target id.
#[derive(Debug, Clone, Default)]
pub struct TableCounters {
    pub routes: Vec<Counter>,
    pub targets: Vec<Counter>,
    /// The archive's counter, when the table has an archive.
    pub archived: Option<Counter>,
}
