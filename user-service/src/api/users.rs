//! The `/users` handlers: parse, call the store, shape the response. The store answers
//! only after the change and its event are committed.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use events::api_docs::ErrorBody;
use events::http::ApiError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::body::StrictJson;
use super::docs::{NewUserBody, UserIdPath, UserPatchBody};
use super::extract::{IdempotencyHeader, Page, Trace, UserId};
use super::{AppState, store_error};
use crate::domain::{Problems, User, UserFields};
use crate::store::Created;

/// `POST /users`: `201` with the user and its `Location`; an idempotent retry gets the
/// first response again (with `Idempotent-Replayed: true`).
#[utoipa::path(
    post, path = "/users", operation_id = "create_user", tag = "users",
    summary = "Create a user",
    description = "Creates a user and, in the same transaction, its `user_created` event. \
With an `Idempotency-Key`, a retry with the same key and the same JSON document gets the first \
response again and creates nothing.",
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
         pattern = "^[!-~]+$",
         description = "1 to 255 visible ASCII characters; kept for the outbox retention period"),
    ),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the first response to this key)",
         body = User, headers(
            ("Location" = String, description = "`/users/{id}`"),
            ("Idempotent-Replayed" = String, description = "`true` on a replayed response"),
         )),
        (status = 400, description = "Malformed JSON, not `application/json`, a member named twice, or an invalid `Idempotency-Key`", body = ErrorBody),
        (status = 409, description = "The email is taken (compared case-insensitively)", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "Every field's problem (missing, wrong type, invalid, unknown), or an `Idempotency-Key` reused with another body", body = ErrorBody),
        (status = 503, description = "The service is shutting down", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    get, path = "/users/{id}", operation_id = "get_user", tag = "users",
    summary = "Read a user",
    params(UserIdPath),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "The path cannot be read", body = ErrorBody),
        (status = 404, description = "No such user (anything that is not a positive 64-bit integer names no user)", body = ErrorBody),
    ),
)]
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
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UserPage {
    /// Oldest first, newest last.
    users: Vec<User>,
    /// Pass as `after` for the next page; `null` on the last page.
    #[schema(example = "2", required = true)]
    next_cursor: Option<String>,
}

/// `GET /users?limit=&after=`: users in creation order (newest last) and a cursor.
#[utoipa::path(
    get, path = "/users", operation_id = "list_users", tag = "users",
    summary = "List users",
    description = "Users in creation order, newest last. `next_cursor` is `null` on the last page; \
otherwise pass it as `after` for the next page.",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
         description = "Page size, 1 to 1000 (default 50)"),
        ("after" = Option<String>, Query, pattern = "^[0-9]+$",
         description = "A `next_cursor` from a previous page (default: the start)"),
    ),
    responses(
        (status = 200, description = "One page", body = UserPage),
        (status = 400, description = "Invalid query parameters, each named", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    patch, path = "/users/{id}", operation_id = "update_user", tag = "users",
    summary = "Change a user's name and/or email",
    description = "`200` with `version` + 1 and a `user_updated` event; a change that changes \
nothing answers `200` with the user as it is (same version, no event).",
    params(UserIdPath),
    request_body = UserPatchBody,
    responses(
        (status = 200, description = "The user after the change", body = User),
        (status = 400, description = "Malformed JSON, not `application/json`, a member named twice, or an unreadable path", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Another user has this email", body = ErrorBody),
        (status = 413, description = "The body is over 64 KiB", body = ErrorBody),
        (status = 422, description = "Every field's problem; `{}` gives neither field", body = ErrorBody),
        (status = 503, description = "The service is shutting down", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    delete, path = "/users/{id}", operation_id = "delete_user", tag = "users",
    summary = "Delete a user",
    description = "`204` and a `user_deleted` event with the next version. Ids are never reused.",
    params(UserIdPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The path cannot be read", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 503, description = "The service is shutting down", body = ErrorBody),
    ),
)]
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
