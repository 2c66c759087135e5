//! HTTP: user snapshots (read-only), orders, health, readiness and metrics. Every error
//! is a JSON `{"error", "details"}` body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use events::http::{
    ApiError, HttpObserver, JsonBody, metrics_response, not_found_fallback, observe,
};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::apply::{Snapshot, UserState};
use crate::db::Readers;
use crate::metrics::Metrics;
use crate::order_store::{self, Placed};
use crate::orders::{NewOrder, Order, OrderRequest};
use crate::snapshots;
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

/// The service's routes, with the observe middleware and the body limit.
pub fn router(state: AppState, observer: HttpObserver) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/users", get(list_users))
        .route("/users/{id}", get(get_user))
        .route("/orders", post(create_order))
        .route("/orders/{id}", get(get_order))
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(observer, observe))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.consuming.load(Ordering::SeqCst) {
        Json(json!({"status": "ready", "consuming": true})).into_response()
    } else {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not ready")
            .with_details(json!({"consuming": false}))
            .into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics_response(&state.registry)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// A user as the API shows it.
#[derive(Debug, Serialize)]
struct UserView {
    user_id: i64,
    name: String,
    email: String,
    version: u64,
    updated_at: Option<DateTime<Utc>>,
    last_event_id: String,
}

impl UserView {
    /// `None` for a tombstone.
    fn of(snapshot: Snapshot) -> Option<Self> {
        let UserState::Live { name, email } = snapshot.state else {
            return None;
        };
        Some(Self {
            user_id: snapshot.user_id,
            name,
            email,
            version: snapshot.version,
            updated_at: snapshot.updated_at,
            last_event_id: snapshot.last_event_id,
        })
    }
}

fn id_of(path: Result<Path<i64>, PathRejection>, what: &str) -> Result<i64, ApiError> {
    match path {
        Ok(Path(id)) => Ok(id),
        Err(_) => Err(
            ApiError::new(StatusCode::BAD_REQUEST, format!("invalid {what} id"))
                .with_details(json!({"id": "must be an integer"})),
        ),
    }
}

async fn get_user(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<UserView>, ApiError> {
    let id = id_of(path, "user")?;
    let snapshot = state
        .readers
        .read(move |c| snapshots::get(c, id))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    snapshot
        .and_then(UserView::of)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("unknown user").with_details(json!({"user_id": id})))
}

/// `GET /users` query: `limit` (1..=500) and `after` (the last user id of the previous page).
#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<u32>,
    after: Option<i64>,
}

async fn list_users(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid query")
            .with_details(json!({"query": e.body_text()}))
    })?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid query")
            .with_details(json!({"limit": format!("must be between 1 and {MAX_PAGE}")})));
    }
    let after = query.after.unwrap_or(i64::MIN);
    let page = state
        .readers
        .read(move |c| snapshots::list_live(c, after, limit))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let full = page.len() == usize::try_from(limit).unwrap_or(usize::MAX);
    let next = page.last().filter(|_| full).map(|s| s.user_id);
    let users: Vec<UserView> = page.into_iter().filter_map(UserView::of).collect();
    Ok(Json(json!({"users": users, "next_after": next})))
}

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
