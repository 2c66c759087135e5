//! The `/users` handlers: parse, call the store, shape the response. The store answers
//! only after the change and its event are committed.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::http::ApiError;
use serde::Serialize;
use serde_json::{Value, json};

use super::body::StrictJson;
use super::extract::{IdempotencyHeader, Page, Trace, UserId};
use super::{AppState, store_error};
use crate::domain::{Problems, User, UserFields};
use crate::store::Created;

/// `POST /users`: `201` with the user and its `Location`; an idempotent retry gets the
/// first response again (with `Idempotent-Replayed: true`).
pub(super) async fn create(
    State(state): State<AppState>,
    Trace(trace): Trace,
    key: IdempotencyHeader,
    StrictJson(body): StrictJson,
) -> Result<Response, ApiError> {
    let key = key.for_body(&body);
    let new_user = fields(body)?.into_new_user().map_err(invalid)?;
    let created = state
        .store
        .create(new_user, trace, key)
        .await
        .map_err(store_error)?;
    Ok(match created {
        Created::New(user) => created_response(&user, false),
        Created::Replayed(user) => created_response(&user, true),
    })
}

/// `GET /users/{id}`.
pub(super) async fn get(
    State(state): State<AppState>,
    UserId(id): UserId,
) -> Result<Json<User>, ApiError> {
    match state.store.get(id).await.map_err(store_error)? {
        Some(user) => Ok(Json(user)),
        None => Err(ApiError::not_found(format!("no user with id {id}"))),
    }
}

/// One page of `GET /users`.
#[derive(Debug, Serialize)]
pub(super) struct UserPage {
    /// Oldest first, newest last.
    users: Vec<User>,
    /// Pass as `after` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// `GET /users?limit=&after=`: users in creation order (newest last) and a cursor.
pub(super) async fn list(
    State(state): State<AppState>,
    page: Page,
) -> Result<Json<UserPage>, ApiError> {
    // One more than asked tells whether another page follows.
    let mut users = state
        .store
        .list(page.after, page.limit + 1)
        .await
        .map_err(store_error)?;
    let more = users.len() > page.limit as usize;
    users.truncate(page.limit as usize);
    let next_cursor = more
        .then(|| users.last().map(|u| u.id.to_string()))
        .flatten();
    Ok(Json(UserPage { users, next_cursor }))
}

/// `PATCH /users/{id}`: name and/or email; `200` with `version` + 1.
pub(super) async fn update(
    State(state): State<AppState>,
    UserId(id): UserId,
    Trace(trace): Trace,
    StrictJson(body): StrictJson,
) -> Result<Json<User>, ApiError> {
    let patch = fields(body)?.into_patch().map_err(invalid)?;
    let user = state
        .store
        .update(id, patch, trace)
        .await
        .map_err(store_error)?;
    Ok(Json(user))
}

/// `DELETE /users/{id}`: `204`.
pub(super) async fn delete(
    State(state): State<AppState>,
    UserId(id): UserId,
    Trace(trace): Trace,
) -> Result<StatusCode, ApiError> {
    state.store.delete(id, trace).await.map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body as the fields of a user; a body that is not a JSON object is a `422`.
fn fields(body: Value) -> Result<UserFields, ApiError> {
    serde_json::from_value(body).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request body").with_details(
            json!({ "body": format!("expected a JSON object with name and email: {e}") }),
        )
    })
}

fn invalid(problems: Problems) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid fields")
        .with_details(problems.to_json())
}

fn created_response(user: &User, replayed: bool) -> Response {
    let mut response = (StatusCode::CREATED, Json(user)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/users/{}", user.id)) {
        headers.insert(header::LOCATION, location);
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}
