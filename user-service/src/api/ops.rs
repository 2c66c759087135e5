//! Operational endpoints: liveness, readiness (database, broker, backlog) and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

/// The answer of `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `GET /readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Readiness {
    /// `ok`, or `unavailable` when the database does not answer.
    #[schema(example = "ok", pattern = "^(ok|unavailable)$")]
    database: &'static str,
    /// `connected` or `disconnected`: the API serves without the broker.
    #[schema(example = "connected", pattern = "^(connected|disconnected)$")]
    broker: &'static str,
    /// Committed events not yet published.
    outbox_backlog: i64,
}

/// `GET /healthz`: 200 while the process serves.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    summary = "Liveness",
    responses((status = 200, description = "The process runs", body = Health)),
)]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: 200 while the database answers (the API serves without the broker, so
/// a missing broker is reported, not failed); 503 when the database does not.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    summary = "Readiness",
    description = "`200` while the database answers: without the broker the API keeps serving, \
so `broker: disconnected` and a growing `outbox_backlog` are reported, not failed.",
    responses(
        (status = 200, description = "The database answers", body = Readiness),
        (status = 503, description = "The database does not answer", body = Readiness),
    ),
)]
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let broker = if state.metrics.is_broker_connected() {
        "connected"
    } else {
        "disconnected"
    };
    match state.store.backlog().await {
        Ok(backlog) => (
            StatusCode::OK,
            Json(Readiness {
                database: "ok",
                broker,
                outbox_backlog: i64::try_from(backlog).unwrap_or(i64::MAX),
            }),
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    database: "unavailable",
                    broker,
                    outbox_backlog: state.metrics.outbox_backlog.get(),
                }),
            )
        }
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "OpenMetrics text",
               content_type = "application/openmetrics-text", body = String)),
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    events::http::metrics_response(&state.registry)
}
