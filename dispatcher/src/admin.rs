//! The admin HTTP API on `DISPATCHER_ADDR`: health, readiness, Prometheus metrics, the
//! running table (`GET /routes`) and a synchronous reload (`POST /reload`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use events::http::{ApiError, metrics_response, not_found_fallback, observe};
use serde_json::json;

use crate::broker::DeclareError;
use crate::metrics::NodeLabel;
use crate::reload::{ReloadError, reload};
use crate::state::{Shared, route_views};

/// The admin router.
pub fn router(shared: Arc<Shared>) -> Router {
    let observer = shared.metrics.http.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/routes", get(routes))
        .route("/reload", post(reload_now))
        .fallback(not_found_fallback)
        .layer(axum::middleware::from_fn_with_state(observer, observe))
        .with_state(shared)
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "instance": shared.instance }))
}

/// Ready or not, with the broker node each connection reached (passwords redacted).
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let generation = shared.generation().number;
    let nodes = shared.endpoints.reached_nodes();
    match shared.readiness() {
        None => Json(json!({ "status": "ready", "generation": generation, "broker_nodes": nodes }))
            .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not_ready", "reason": reason, "generation": generation,
                "broker_nodes": nodes,
            })),
        )
            .into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    // Set at scrape time from the endpoints, so the forwarder need not know the metric.
    let gauge = &shared.metrics.broker_node;
    gauge.clear();
    for (connection, node) in shared.endpoints.reached_nodes() {
        gauge.get_or_create(&NodeLabel { connection, node }).set(1);
    }
    metrics_response(&shared.metrics.registry)
}

async fn routes(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let generation = shared.generation();
    let table = &generation.table;
    Json(json!({
        "generation": generation.number,
        "loaded_at": generation.loaded_at,
        "sha256": generation.sha256,
        "file": shared.settings.routes.display().to_string(),
        "source": table.source,
        "unrouted": table.unrouted,
        "dead_letter": table.dead_letter,
        "routes": route_views(table),
        "last_reload_error": shared.last_error.load_full().as_deref(),
    }))
}

async fn reload_now(
    State(shared): State<Arc<Shared>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match reload(&shared, "http").await {
        Ok(outcome) => Ok(Json(json!(outcome))),
        Err(error) => Err(refusal(&error)),
    }
}

/// 422 when the file is at fault, 404 when it is missing, 503 when the broker is.
fn refusal(error: &ReloadError) -> ApiError {
    let status = match error {
        ReloadError::Missing(_) => StatusCode::NOT_FOUND,
        ReloadError::Invalid(_)
        | ReloadError::SourceChanged { .. }
        | ReloadError::Declare(DeclareError::MissingExchange(_) | DeclareError::Queue { .. }) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ReloadError::Read { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        ReloadError::BrokerUnavailable | ReloadError::Declare(DeclareError::Broker(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    ApiError::new(status, "reload refused; the running table stays")
        .with_details(json!({ "reason": error.to_string(), "errors": error.route_errors() }))
}
