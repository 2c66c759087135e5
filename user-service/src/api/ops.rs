//! Operational endpoints: liveness, readiness (database, broker, backlog) and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::AppState;

/// `GET /healthz`: 200 while the process serves.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 while the database answers (the API serves without the broker, so
/// a missing broker is reported, not failed); 503 when the database does not.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let broker = if state.metrics.is_broker_connected() {
        "connected"
    } else {
        "disconnected"
    };
    match state.store.backlog().await {
        Ok(backlog) => (
            StatusCode::OK,
            Json(json!({ "database": "ok", "broker": broker, "outbox_backlog": backlog })),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "database": "unavailable",
                    "broker": broker,
                    "outbox_backlog": state.metrics.outbox_backlog.get(),
                })),
            )
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    events::http::metrics_response(&state.registry)
}
