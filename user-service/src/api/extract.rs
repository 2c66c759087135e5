//! Request parts, parsed with JSON errors: the user id in the path, the paging query, the
//! `Idempotency-Key` header and the request's trace.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use events::TraceParent;
use events::http::{ApiError, RequestTrace};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::IdempotencyKey;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page.
pub const MAX_LIMIT: u32 = 1000;
/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The `{id}` of `/users/{id}`. Anything that is not a positive 64-bit integer names no
/// user: `404`.
#[derive(Debug, Clone, Copy)]
pub struct UserId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "unreadable path")
                    .with_details(json!({"path": e.body_text()}))
            })?;
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(Self(id)),
            _ => {
                let shown: String = raw.chars().take(40).collect();
                Err(ApiError::not_found(format!("no user with id {shown:?}"))
                    .with_details(json!({"id": "user ids are positive integers"})))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawPage {
    limit: Option<String>,
    after: Option<String>,
}

/// `?limit=&after=` of `GET /users`: `limit` 1 to [`MAX_LIMIT`] (default
/// [`DEFAULT_LIMIT`]), `after` a cursor from a previous page (default: the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many users at most.
    pub limit: u32,
    /// Only users after this cursor (an id).
    pub after: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<RawPage>::from_request_parts(parts, state)
            .await
            .map_err(|e| bad_query(json!({"query": e.body_text()})))?;
        let mut problems = serde_json::Map::new();
        let limit = match raw.limit.as_deref().map(str::parse::<u32>) {
            None => DEFAULT_LIMIT,
            Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => limit,
            Some(_) => {
                let problem = format!("must be an integer from 1 to {MAX_LIMIT}");
                problems.insert("limit".into(), Value::String(problem));
                DEFAULT_LIMIT
            }
        };
        let after = match raw.after.as_deref().map(str::parse::<i64>) {
            None => 0,
            Some(Ok(after)) if after >= 0 => after,
            Some(_) => {
                let problem = "must be a `next_cursor` from a previous page";
                problems.insert("after".into(), Value::String(problem.into()));
                0
            }
        };
        if problems.is_empty() {
            Ok(Self { limit, after })
        } else {
            Err(bad_query(Value::Object(problems)))
        }
    }
}

fn bad_query(details: Value) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid query parameters").with_details(details)
}

/// The `Idempotency-Key` header, if sent: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyHeader(pub Option<String>);

impl IdempotencyHeader {
    /// The key bound to the request body it came with (its canonical JSON's SHA-256, so
    /// whitespace and key order do not matter).
    pub fn for_body(self, body: &Value) -> Option<IdempotencyKey> {
        let key = self.0?;
        let canonical = serde_json::to_vec(body).unwrap_or_default();
        Some(IdempotencyKey {
            key,
            request_hash: hex::encode(Sha256::digest(&canonical)),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        match value.to_str() {
            Ok(key) if valid_key(key) => Ok(Self(Some(key.to_owned()))),
            _ => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid Idempotency-Key header")
                .with_details(json!({
                    "Idempotency-Key": format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters")
                }))),
        }
    }
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The request's trace, set by `events::http::observe` (a new root if it is missing).
#[derive(Debug, Clone, Copy)]
pub struct Trace(pub TraceParent);

impl<S: Send + Sync> FromRequestParts<S> for Trace {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let trace = parts
            .extensions
            .get::<RequestTrace>()
            .map_or_else(TraceParent::new_root, |RequestTrace(trace)| *trace);
        Ok(Self(trace))
    }
}
