//! HTTP: user snapshots (read-only), orders, health, readiness and metrics, and their
//! OpenAPI document (`/openapi.json`, Swagger UI at `/docs`). Every error is a JSON
//! `{"error", "details"}` body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use events::api_docs::ErrorBody;
use events::http::{
    ApiError, HttpObserver, JsonBody, metrics_response, not_found_fallback, observe,
};
use prometheus_client::registry::Registry;
use serde::Serialize;
use serde_json::json;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_users;
use crate::db::Readers;
use crate::metrics::Metrics;
use crate::openapi::{ApiDoc, IdPath};
use crate::order_store::{self, Placed};
use crate::orders::{NewOrder, Order, OrderRequest};
use crate::writer::{WriteError, Writer};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Page size of `GET /users` when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 50;
/// Largest page size of `GET /users`.
pub const MAX_PAGE: u32 = 500;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Read connections.
    pub readers: Readers,
    /// The database writer (orders).
    pub writer: Writer,
    /// True while the consumer consumes.
    pub consuming: Arc<AtomicBool>,
    /// Service metrics.
    pub metrics: Metrics,
    /// Everything `/metrics` renders.
    pub registry: Arc<Registry>,
}

/// The service's routes, `/openapi.json` and `/docs`, with the observe middleware and
/// the body limit.
pub fn router(state: AppState, observer: HttpObserver) -> Router {
    let (routes, openapi) = api_routes().split_for_parts();
    routes
        .merge(events::api_docs::routes(&openapi))
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(observer, observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// Every API route, each registered with its handler's `#[utoipa::path]`: the router and
/// the OpenAPI document come from the same list.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_order))
        .routes(routes!(get_order))
        .routes(routes!(api_users::list_users))
        .routes(routes!(api_users::get_user))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The OpenAPI document that `/openapi.json` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// The answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `GET /readyz` while ready.
#[derive(Debug, Serialize, ToSchema)]
struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// Always `true`: the queue is being consumed.
    consuming: bool,
}

#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "The process runs", body = Health)),
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "operations",
    summary = "Readiness: consuming the queue",
    responses(
        (status = 200, description = "Consuming the queue", body = Ready),
        (status = 503, description = "Connecting or reconnecting to the broker; `details`: `{\"consuming\": false}`", body = ErrorBody),
    ),
)]
async fn readyz(State(state): State<AppState>) -> Response {
    if state.consuming.load(Ordering::SeqCst) {
        Json(Ready {
            status: "ready",
            consuming: true,
        })
        .into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready")
            .with_details(json!({"consuming": false}))
            .into_response()
    }
}

#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "OpenMetrics text",
               content_type = "application/openmetrics-text", body = String)),
)]
async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(&state.registry)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// The `{id}` of a path, or a `400` naming `what` when it is not an integer.
pub(crate) fn id_of(path: Result<Path<i64>, PathRejection>, what: &str) -> Result<i64, ApiError> {
    match path {
        Ok(Path(id)) => Ok(id),
        Err(_) => Err(
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid {what} id"))
                .with_details(json!({"id": "must be an integer"})),
        ),
    }
}

#[utoipa::path(
    post, path = "/orders", operation_id = "create_order", tag = "orders",
    summary = "Place an order",
    description = "Stores the order `pending` and, in the same transaction, its `order_placed` \
event; the payment events then make it `confirmed` or `cancelled`. The user must have a live \
snapshot here (a user created a moment ago may not be known yet).",
    request_body = OrderRequest,
    responses(
        (status = 201, description = "Placed: `status` `pending`, `version` 1", body = Order,
         headers(("Location" = String, description = "`/orders/{id}`"))),
        (status = 400, description = "Malformed JSON, or not `application/json`", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "`unknown user`; `invalid order` listing every field's problem by path (`items[0].quantity`); `invalid request body` for an unknown field or a wrong type", body = ErrorBody),
        (status = 503, description = "The database stayed busy for 5 s", body = ErrorBody),
    ),
)]
async fn create_order(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<OrderRequest>,
) -> Result<Response, ApiError> {
    let order = NewOrder::parse(request).map_err(|problems| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid order")
            .with_details(json!(problems.0))
    })?;
    let user_id = order.user_id;
    match state.writer.place(order).await {
        Ok(Placed::Created(order)) => {
            state.metrics.orders_created.inc();
            tracing::info!(
                order_id = order.id,
                user_id,
                total_cents = order.total_cents,
                "order created"
            );
            let location = format!("/orders/{}", order.id);
            Ok((
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json(order),
            )
                .into_response())
        }
        Ok(Placed::UnknownUser) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown user",
        )
        .with_details(json!({"user_id": "no such user (unknown or deleted)"}))),
        Err(WriteError::TimedOut(..) | WriteError::Abandoned(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database busy, retry later",
        )),
        Err(error) => Err(ApiError::internal(&error)),
    }
}

#[utoipa::path(
    get, path = "/orders/{id}", operation_id = "get_order", tag = "orders",
    summary = "Read an order: its saga status, version and history",
    params(IdPath),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "Unknown order", body = ErrorBody),
    ),
)]
async fn get_order(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Order>, ApiError> {
    let id = id_of(path, "order")?;
    state
        .readers
        .read(move |c| order_store::get(c, id))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("unknown order").with_details(json!({"order_id": id})))
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
