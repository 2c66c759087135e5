//! The read-only user snapshots over HTTP: `GET /users/{id}` and `GET /users`.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use events::api_docs::ErrorBody;
use events::http::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::api::{AppState, DEFAULT_PAGE, MAX_PAGE, id_of};
use crate::apply::{Snapshot, UserState};
use crate::openapi::IdPath;
use crate::snapshots;

/// A user as the API shows it: the snapshot of a live user.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    /// The user's id at user-service.
    user_id: i64,
    /// The name, as the last applied event gave it.
    name: String,
    /// The email, as the last applied event gave it.
    email: String,
    /// The version of the last applied event.
    version: u64,
    /// The event's `updated_at` (or its `time`).
    #[schema(required = true)]
    updated_at: Option<DateTime<Utc>>,
    /// The id of the event that produced this snapshot.
    last_event_id: String,
}

/// One page of `GET /users`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    /// Live users by id, oldest first.
    users: Vec<UserView>,
    /// Pass as `after` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_after: Option<i64>,
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

#[utoipa::path(
    get, path = "/users/{id}", operation_id = "get_user", tag = "users",
    summary = "Read a user's snapshot",
    params(IdPath),
    responses(
        (status = 200, description = "The snapshot", body = UserView),
        (status = 400, description = "`id` is not an integer", body = ErrorBody),
        (status = 404, description = "Unknown user: never seen, or deleted", body = ErrorBody),
    ),
)]
pub(crate) async fn get_user(
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_after` of the previous page (default: the start).
    after: Option<i64>,
}

#[utoipa::path(
    get, path = "/users", operation_id = "list_users", tag = "users",
    summary = "List live users",
    description = "Live users by id, oldest first. Pass `next_after` as `after` for the next page.",
    params(PageQuery),
    responses(
        (status = 200, description = "One page", body = UserPage),
        (status = 400, description = "A bad query", body = ErrorBody),
    ),
)]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
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
    Ok(Json(UserPage {
        users,
        next_after: next,
    }))
}
