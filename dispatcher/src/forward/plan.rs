//! What is decided for a delivery when it arrives, before anything is published: its
//! type is read, it is routed by the running generation, and the properties to publish
//! with get the dispatch headers. A copy that the connection could not carry (its
//! content header frame over `frame_max`) is dead-lettered as `headers_too_large`.

use std::sync::Arc;

use events::TraceParent;
use events::amqp::content_header_frame_size;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use tracing::{Level, Span};

use super::context::{GENERATION_HEADER, ROUTES_HEADER, generation_value, headers_of};
use super::quote::{QUOTE_LIMIT, bounded};
use crate::routes::Decision;
use crate::routes::event::Incoming;
use crate::routes::shape::{Shaped, TEMPLATE_FIELD_MISSING};
use crate::state::Generation;

/// What was decided for a delivery when it arrived.
pub(super) enum Plan {
    /// Publish to the decision's targets (to `unrouted` when it has none), with the
    /// dispatch headers added to these properties.
    Publish {
        decision: Arc<Decision>,
        properties: BasicProperties,
        /// Per target of the decision, when its routes shape what is sent.
        copies: Option<Box<[TargetCopy]>>,
    },
    /// The event cannot be read, or cannot be forwarded as it is: dead-letter it.
    DeadLetter {
        reason: &'static str,
        message: String,
        properties: BasicProperties,
        /// The route at fault, if one is.
        route: Option<String>,
    },
}

/// How one target's copy differs from the plain forwarded one.
pub(super) struct TargetCopy {
    /// The rendered routing key, when the target's is a template.
    pub routing_key: Option<String>,
    /// The properties with the routes' headers, when they add some.
    pub properties: Option<BasicProperties>,
}

/// Reason code of an event whose forwarded copy would not fit the connection's frame.
pub const HEADERS_TOO_LARGE: &str = "headers_too_large";

/// Reads the type, routes, and builds the properties to publish with, which must fit
/// in a content header frame of `frame_max` bytes.
pub(super) fn plan(
    generation: &Generation,
    properties: BasicProperties,
    body: &[u8],
    frame_max: u32,
) -> (Plan, Span) {
    let table = &generation.table;
    let routed = Incoming::read(&properties, body).and_then(|incoming| {
        let span = span_for(&properties, &incoming.event_type);
        let _entered = span.enter();
        let routed = if table.has_shaping() {
            // The event is read before routing (no parse: the type's pass already
            // split it), so that templates render from the same reading.
            let event = incoming.doc.read()?;
            let decision = table.route(&incoming.event_type, || {
                Ok::<_, events::EnvelopeError>(event.clone())
            })?;
            let shaped = table
                .shapes(&decision)
                .then(|| table.shape(&decision, &event));
            (decision, shaped)
        } else {
            let decision = table.route(&incoming.event_type, || incoming.doc.read())?;
            (decision, None)
        };
        drop(_entered);
        Ok((routed, span))
    });
    match routed {
        Ok(((decision, shaped), span)) => {
            let shaped = match shaped.transpose() {
                Ok(shaped) => shaped,
                Err(error) => {
                    let plan = Plan::DeadLetter {
                        reason: TEMPLATE_FIELD_MISSING,
                        message: error.to_string(),
                        properties,
                        route: Some(error.route),
                    };
                    return (plan, span);
                }
            };
            (
                fitted(generation.number, decision, properties, frame_max, shaped),
                span,
            )
        }
        Err(error) => {
            let span = span_for(&properties, "");
            let plan = Plan::DeadLetter {
                reason: error.reason(),
                message: error.to_string(),
                properties,
                route: None,
            };
            (plan, span)
        }
    }
}

/// Publish with the dispatch headers, or dead-letter when that copy's content header
/// frame would be over `frame_max`.
fn fitted(
    generation: u64,
    decision: Arc<Decision>,
    properties: BasicProperties,
    frame_max: u32,
    shaped: Option<Vec<Shaped>>,
) -> Plan {
    let previous = properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ROUTES_HEADER).cloned());
    let properties = with_dispatch_headers(properties, generation, &decision);
    let copies: Option<Box<[TargetCopy]>> = shaped.map(|shaped| {
        shaped
            .into_iter()
            .map(|one| TargetCopy {
                routing_key: one.routing_key,
                properties: (!one.headers.is_empty())
                    .then(|| with_route_headers(&properties, &one.headers)),
            })
            .collect()
    });
    let size = copies
        .iter()
        .flatten()
        .filter_map(|c| c.properties.as_ref())
        .chain([&properties])
        .map(content_header_frame_size)
        .max()
        .unwrap_or(0);
    if size <= usize::try_from(frame_max).unwrap_or(usize::MAX) {
        return Plan::Publish {
            decision,
            properties,
            copies,
        };
    }
    Plan::DeadLetter {
        reason: HEADERS_TOO_LARGE,
        message: format!(
            "the forwarded copy's content header frame would be {size} bytes, over the connection's frame_max of {frame_max} bytes"
        ),
        properties: restore_routes_header(properties, previous),
        route: None,
    }
}

/// The forwarded properties plus a route's `headers` (a route's value wins over the
/// event's header of the same name; the event's other headers are kept).
fn with_route_headers(
    properties: &BasicProperties,
    headers: &[(String, String)],
) -> BasicProperties {
    let mut table = headers_of(properties);
    for (name, value) in headers {
        table.insert(
            ShortString::from(name.as_str()),
            AMQPValue::LongString(value.as_str().into()),
        );
    }
    properties.clone().with_headers(table)
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
        event_type = %bounded(event_type, QUOTE_LIMIT),
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

/// The properties as they arrived, but for `x-dispatch-generation` (which a dead letter
/// sets anyway): the `x-dispatch-routes` this dispatcher added is taken out again, and
/// the one the message came with, if any, put back.
fn restore_routes_header(
    properties: BasicProperties,
    previous: Option<AMQPValue>,
) -> BasicProperties {
    let Some(headers) = properties.headers().as_ref() else {
        return properties;
    };
    let mut headers = headers.inner().clone();
    match previous {
        Some(value) => headers.insert(ShortString::from(ROUTES_HEADER), value),
        None => headers.remove(ROUTES_HEADER),
    };
    properties.with_headers(FieldTable::from(headers))
}
