//! The admin HTTP API on `DISPATCHER_ADDR`: health, readiness, Prometheus metrics, the
//! running table (`GET /routes`), a synchronous reload (`POST /reload`), and what
//! shows events live (`GET /tap`, `GET /stats`, `POST /explain`, the dashboard at `/`,
//! see `admin/live.rs`). It is served
//! on a thread and runtime of its own, so that it answers whatever the forwarder's
//! runtime is doing. With an admin token set, every endpoint but the probes and the
//! metrics requires it (see [`bearer`]).

pub mod bearer;
mod live;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use anyhow::Context as _;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use events::http::{ApiError, metrics_response, not_found_fallback, observe};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::broker::DeclareError;
use crate::metrics::NodeLabel;
use crate::reload::{ReloadError, reload};
use crate::state::{Shared, route_views};

/// The admin server running on its own thread.
#[derive(Debug)]
pub struct AdminServer {
    finished: oneshot::Receiver<anyhow::Result<()>>,
}

impl AdminServer {
    /// Starts serving [`router`] on `listener` on a new thread with a single-threaded
    /// runtime of its own, until `stop`.
    pub fn spawn(
        listener: TcpListener,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        // A listener belongs to the runtime that registered it: hand over the socket.
        let listener = listener
            .into_std()
            .context("handing the admin listener to its thread")?;
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name("dispatcher-admin".to_owned())
            .spawn(move || {
                let result = serve_here(listener, shared, stop);
                let _ = done.send(result);
            })
            .context("starting the admin thread")?;
        Ok(Self { finished })
    }

    /// Waits until the server stopped, with its result.
    pub async fn finished(self) -> anyhow::Result<()> {
        self.finished
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the admin thread panicked")))
    }
}

fn serve_here(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the admin runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener).context("admin listener")?;
        // Tap streams never end by themselves: end them, or shutdown would wait on them.
        let tap = shared.tap.clone();
        let closing = stop.clone();
        tokio::spawn(async move {
            closing.cancelled().await;
            tap.close();
        });
        axum::serve(listener, router(shared))
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .context("admin HTTP server")
    })
}

/// The admin router. `/healthz`, `/readyz` and `/metrics` are always open (probes and
/// scrapers), and so is the dashboard page at `/`, which holds no data (its script
/// sends the token to the guarded endpoints it reads); every other endpoint, today and added later, is guarded by the admin token
/// when one is set. `GET /routes` is guarded too: it shows no event, but it shows the
/// routing rules and the broker topology, which an operator who set a token means to
/// keep private.
pub fn router(shared: Arc<Shared>) -> Router {
    let observer = shared.metrics.http.clone();
    let guarded = Router::new()
        .route("/routes", get(routes))
        .route("/reload", post(reload_now))
        .route("/tap", get(live::tap))
        .route("/stats", get(live::stats))
        .route("/explain", post(live::explain))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            bearer::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/", get(live::dashboard))
        .merge(guarded)
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
        None => Json(json!({
            "status": "ready", "generation": generation, "broker_nodes": nodes,
            "role": shared.role(),
        }))
        .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not_ready", "reason": reason, "generation": generation,
                "broker_nodes": nodes, "role": shared.role(),
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
        "archive": table.archive.as_ref().map(|archive| json!({
            "stream": archive.stream,
            "max_age_seconds": archive.max_age.map(|age| age.as_secs()),
            "max_bytes": archive.max_bytes,
            "archived": generation.counters.archived.as_ref().map(|c| c.get()),
        })),
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
        | ReloadError::ArchiveRetentionChanged { .. }
        | ReloadError::Declare(
            DeclareError::MissingExchange(_)
            | DeclareError::Queue { .. }
            | DeclareError::Archive { .. },
        ) => StatusCode::UNPROCESSABLE_ENTITY,
        ReloadError::Read { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        ReloadError::BrokerUnavailable | ReloadError::Declare(DeclareError::Broker(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    ApiError::new(status, "reload refused; the running table stays")
        .with_details(json!({ "reason": error.to_string(), "errors": error.route_errors() }))
}
