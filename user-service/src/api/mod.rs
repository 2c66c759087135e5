//! The HTTP API (axum): the routes, their shared state, and how every failure becomes a
//! JSON `{"error", "details"}` body — including unknown paths (404), wrong methods (405),
//! oversized bodies (413) and, should a handler ever panic, a 500 that says nothing
//! internal. A body whose objects repeat a member name is refused (`400`). The routes
//! and their OpenAPI document (`/openapi.json`, Swagger UI at `/docs`) are built together.

mod body;
mod docs;
mod extract;
mod ops;
mod users;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use events::http::{ApiError, HttpObserver, not_found_fallback, observe};
use prometheus_client::registry::Registry;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// The largest request body accepted (64 KiB); larger is a `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    /// The service's metrics (broker state for `/readyz`).
    pub metrics: Metrics,
    /// Everything `/metrics` renders.
    pub registry: Arc<Registry>,
}

/// The application: routes, `/openapi.json` and `/docs`, JSON fallbacks, per-request
/// tracing and metrics (`observe`), the body limit, and a panic guard.
pub fn router(state: AppState, observer: HttpObserver) -> Router {
    let (routes, openapi) = api_routes().split_for_parts();
    routes
        .merge(events::api_docs::routes(&openapi))
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(observer, observe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// Every API route, each registered with its handler's `#[utoipa::path]`: the router and
/// the OpenAPI document come from the same list.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(users::create, users::list))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// The OpenAPI document that `/openapi.json` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this path",
    )
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// The status and body of each store failure.
fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound(id) => ApiError::not_found(format!("no user with id {id}")),
        StoreError::EmailTaken => ApiError::new(StatusCode::CONFLICT, "email already taken")
            .with_details(json!({
                "email": "another user has this email (emails are compared case-insensitively)"
            })),
        StoreError::IdempotencyMismatch => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Idempotency-Key already used with a different request body",
        )
        .with_details(json!({ "Idempotency-Key": "use a new key for a different request" })),
        StoreError::WriterGone => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down",
        ),
        error @ StoreError::Database(_) => ApiError::internal(&error),
    }
}
