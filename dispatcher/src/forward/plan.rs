//! What is decided for a delivery when it arrives, before anything is published: its
//! type is read, it is routed by the running generation, and the properties to publish
//! with get the dispatch headers.

use std::sync::Arc;

use events::TraceParent;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, ShortString};
use tracing::{Level, Span};

use super::context::{GENERATION_HEADER, ROUTES_HEADER, generation_value, headers_of};
use crate::routes::Decision;
use crate::routes::event::Incoming;
use crate::state::Generation;

/// What was decided for a delivery when it arrived.
pub(super) enum Plan {
    /// Publish to the decision's targets (to `unrouted` when it has none), with the
    /// dispatch headers added to these properties.
    Publish {
        decision: Arc<Decision>,
        properties: BasicProperties,
    },
    /// The event cannot be read: dead-letter it with the reason.
    Unreadable {
        reason: &'static str,
        message: String,
        properties: BasicProperties,
    },
}

/// Reads the type, routes, and builds the properties to publish with.
pub(super) fn plan(
    generation: &Generation,
    properties: BasicProperties,
    body: &[u8],
) -> (Plan, Span) {
    let routed = Incoming::read(&properties, body).and_then(|incoming| {
        let span = span_for(&properties, &incoming.event_type);
        let _entered = span.enter();
        let decision = generation
            .table
            .route(&incoming.event_type, || incoming.doc.read())?;
        drop(_entered);
        Ok((decision, span))
    });
    match routed {
        Ok((decision, span)) => {
            let properties = with_dispatch_headers(properties, generation.number, &decision);
            let plan = Plan::Publish {
                decision,
                properties,
            };
            (plan, span)
        }
        Err(error) => {
            let span = span_for(&properties, "");
            let plan = Plan::Unreadable {
                reason: error.reason(),
                message: error.to_string(),
                properties,
            };
            (plan, span)
        }
    }
}

/// The `forward` span (only when debug logging is on: building it costs).
fn span_for(properties: &BasicProperties, event_type: &str) -> Span {
    if !tracing::enabled!(Level::DEBUG) {
        return Span::none();
    }
    let event_id = properties.message_id().as_ref().map(|id| id.as_str());
    let trace_id = TraceParent::from_amqp(properties).map(|t| t.trace_id());
    tracing::debug_span!(
        "forward",
        event_id = event_id.unwrap_or_default(),
        event_type,
        trace_id = trace_id.as_deref().unwrap_or_default(),
    )
}

/// The original properties plus `x-dispatch-generation` and, when routes matched,
/// `x-dispatch-routes`. The properties are moved, only their header table is copied.
fn with_dispatch_headers(
    properties: BasicProperties,
    generation: u64,
    decision: &Decision,
) -> BasicProperties {
    let mut headers = headers_of(&properties);
    headers.insert(
        ShortString::from(GENERATION_HEADER),
        generation_value(generation),
    );
    if !decision.targets.is_empty() {
        headers.insert(
            ShortString::from(ROUTES_HEADER),
            AMQPValue::LongString(decision.route_names.as_str().into()),
        );
    }
    properties.with_headers(headers)
}
