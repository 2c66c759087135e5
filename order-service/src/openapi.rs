//! The OpenAPI document's frame (title, description, tags) and the path parameters. The
//! operations come from the handlers' `#[utoipa::path]` annotations, registered with
//! their routes in [`crate::api::router`], so the document lists exactly the routes the
//! router serves.

use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};

/// The document's frame; the router adds the operations.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "order-service",
        description = "User snapshots fed by events (read-only here), and orders: each order is \
the order side of a choreography saga, stored `pending` with its `order_placed` event, then \
`confirmed` or `cancelled` by the payment events.\n\n\
Every error is `{\"error\": \"…\", \"details\": …}`. An unknown path is `404` and a wrong \
method `405`, both with that body. A body over 64 KiB is `413`.",
    ),
    tags(
        (name = "orders", description = "Place orders and follow them through the saga."),
        (name = "users", description = "The snapshots of users, as the events made them."),
        (name = "operations", description = "Liveness, readiness and metrics."),
    )
)]
pub struct ApiDoc;

/// The `{id}` of `/users/{id}` and `/orders/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(
    dead_code,
    reason = "a parameter for the document: the handler reads the path"
)]
pub struct IdPath {
    /// A 64-bit integer; anything else is a `400`.
    #[param(example = 1)]
    id: i64,
}
