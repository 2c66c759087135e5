//! The admin router through `tower::ServiceExt::oneshot`, no socket: which endpoints the
//! admin token guards, and what a refused request gets.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::router;
use crate::settings::Settings;
use crate::state::Shared;

const TABLE: &str = r#"
source = "admin.source"
unrouted = "admin.unrouted"
dead_letter = "admin.dead"

[[route]]
name = "users"
event = "user.created"
to = ["admin.users"]
"#;

const TOKEN: &str = "Xq7-admin-token-9Zr";

fn shared(token: Option<&str>) -> Arc<Shared> {
    let settings = Settings::with_routes("routes.toml");
    let endpoints = events::Endpoints::new(&settings.amqp).unwrap();
    let table = crate::routes::load("routes.toml", TABLE).unwrap();
    let token = token.map(|t| t.parse().unwrap());
    Arc::new(Shared::new(settings, endpoints, table, "00".to_owned()).with_admin_token(token))
}

async fn call(
    shared: &Arc<Shared>,
    method: Method,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = router(shared.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn with_a_token_set_routes_and_reload_refuse_a_request_without_it() {
    let shared = shared(Some(TOKEN));
    for (method, path) in [(Method::GET, "/routes"), (Method::POST, "/reload")] {
        let (status, challenge, body) = call(&shared, method, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{path}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = json["error"].as_str().unwrap();
        assert!(error.contains("Authorization: Bearer"), "{error}");
        assert!(!body.contains(TOKEN), "{body}");
    }
}

#[tokio::test]
async fn a_wrong_token_or_scheme_is_refused() {
    let shared = shared(Some(TOKEN));
    let wrong = format!("Bearer {TOKEN}x");
    let basic = format!("Basic {TOKEN}");
    for value in [wrong.as_str(), basic.as_str(), "Bearer "] {
        let (status, _, _) = call(&shared, Method::GET, "/routes", Some(value)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{value}");
    }
}

#[tokio::test]
async fn the_right_token_opens_routes_and_reaches_the_reload() {
    let shared = shared(Some(TOKEN));
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = call(&shared, Method::GET, "/routes", Some(&auth)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("admin.source"), "{body}");
    // The reload itself fails here (the file does not exist), but past the guard.
    let (status, challenge, body) = call(&shared, Method::POST, "/reload", Some(&auth)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(challenge, None);
    assert!(body.contains("reload refused"), "{body}");
}

#[tokio::test]
async fn probes_and_metrics_stay_open_with_a_token_set() {
    let shared = shared(Some(TOKEN));
    let (status, _, _) = call(&shared, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    // Not connected to a broker here: not ready, but answered, not refused.
    let (status, _, body) = call(&shared, Method::GET, "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, _, body) = call(&shared, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("dispatcher_"), "{body}");
}

#[tokio::test]
async fn without_a_token_every_endpoint_is_open() {
    let shared = shared(None);
    let (status, _, body) = call(&shared, Method::GET, "/routes", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = call(&shared, Method::POST, "/reload", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unknown_path_is_not_found_with_or_without_a_token() {
    let shared = shared(Some(TOKEN));
    let (status, _, _) = call(&shared, Method::GET, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
