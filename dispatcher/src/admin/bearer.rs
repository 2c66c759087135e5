//! The admin API's bearer token check: a request to a guarded endpoint passes only with
//! `Authorization: Bearer <token>`, else `401` with a JSON body and
//! `WWW-Authenticate: Bearer`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use events::http::ApiError;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::settings::AdminToken;
use crate::state::Shared;

/// Lets the request through when no token is configured or it carries the right one.
pub async fn require_token(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    match &shared.admin_token {
        Some(token) if !presents(request.headers(), token) => unauthorized(),
        _ => next.run(request).await,
    }
}

/// Whether `headers` carry `Authorization: Bearer <token>` (scheme case-insensitive).
fn presents(headers: &HeaderMap, token: &AdminToken) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer)
    else {
        return false;
    };
    same(given, token.expose())
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares in constant time. Hashing both sides first gives equal-length inputs, so
/// not even the token's length leaks through timing (`ct_eq` on slices of different
/// lengths returns early).
fn same(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.as_slice().ct_eq(expected.as_slice()).into()
}

fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this admin endpoint requires `Authorization: Bearer <token>` (DISPATCHER_ADMIN_TOKEN)",
    )
    .into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(s: &str) -> AdminToken {
        s.parse().unwrap()
    }

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    #[test]
    fn the_right_bearer_token_passes_whatever_the_scheme_case() {
        assert!(presents(&headers("Bearer abc"), &token("abc")));
        assert!(presents(&headers("bearer abc"), &token("abc")));
    }

    #[test]
    fn a_wrong_missing_or_non_bearer_credential_fails() {
        assert!(!presents(&headers("Bearer abd"), &token("abc")));
        assert!(!presents(&headers("Bearer ab"), &token("abc")));
        assert!(!presents(&headers("Bearer abcd"), &token("abc")));
        assert!(!presents(&headers("Basic abc"), &token("abc")));
        assert!(!presents(&headers("abc"), &token("abc")));
        assert!(!presents(&HeaderMap::new(), &token("abc")));
    }
}
