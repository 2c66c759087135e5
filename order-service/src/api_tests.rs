//! Handler tests through `Router` + `oneshot`, against a real SQLite file.

use axum::body::Body;
use axum::http::Request;
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::*;
use crate::event::{Change, Incoming, UserEvent, UserEventType};
use crate::writer::WriterOptions;

struct Harness {
    app: Router,
    writer: Writer,
    consuming: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

fn user(id: &str, user_id: i64, version: u64, change: Change) -> Incoming {
    Incoming::User(UserEvent {
        event_id: id.into(),
        ty: UserEventType::Created,
        user_id,
        version,
        change,
        updated_at: Some(Utc::now()),
        time: None,
    })
}

fn named(name: &str) -> Change {
    Change::Upsert {
        name: name.into(),
        email: format!("{name}@example.com"),
    }
}

/// Users 1 (ann), 2 (deleted), 3 (cat).
async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.db");
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let observer = HttpObserver::register(&mut registry);
    let options = WriterOptions {
        dedupe_retention: None,
        stop: CancellationToken::new(),
        retries: metrics.store_retries.clone(),
    };
    let (writer, _thread) = crate::writer::start(&path, options).unwrap();
    writer
        .apply(vec![
            user("a1", 1, 1, named("ann")),
            user("b1", 2, 1, named("bob")),
            user("b2", 2, 2, Change::Delete),
            user("c1", 3, 1, named("cat")),
        ])
        .await
        .unwrap();
    let consuming = Arc::new(AtomicBool::new(false));
    let state = AppState {
        readers: Readers::new(&path),
        writer: writer.clone(),
        consuming: consuming.clone(),
        metrics,
        registry: Arc::new(registry),
    };
    Harness {
        app: router(state, observer),
        writer,
        consuming,
        _dir: dir,
    }
}

impl Harness {
    async fn call(&self, request: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body, headers)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, body, _) = self
            .call(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        (status, body)
    }

    async fn post_order(
        &self,
        body: impl Into<Body>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let request = Request::post("/orders")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap();
        self.call(request).await
    }
}

fn assert_json_error(status: StatusCode, body: &Value, expected: StatusCode, error: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert!(body.get("details").is_some(), "{body}");
}

#[tokio::test]
async fn healthz_is_ok_and_readyz_follows_the_consumer() {
    let h = harness().await;
    assert_eq!(h.get("/healthz").await.0, StatusCode::OK);
    let (status, body) = h.get("/readyz").await;
    assert_json_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "not ready");
    assert_eq!(body["details"]["consuming"], false);
    h.consuming.store(true, Ordering::SeqCst);
    let (status, body) = h.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["consuming"], true);
}

#[tokio::test]
async fn a_known_user_is_returned_with_its_snapshot_fields() {
    let h = harness().await;
    let (status, body) = h.get("/users/1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], 1);
    assert_eq!(body["name"], "ann");
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["version"], 1);
    assert_eq!(body["last_event_id"], "a1");
    assert!(body["updated_at"].is_string(), "{body}");
}

#[tokio::test]
async fn unknown_and_deleted_users_are_404_and_a_bad_id_is_400() {
    let h = harness().await;
    let (status, body) = h.get("/users/2").await;
    assert_json_error(status, &body, StatusCode::NOT_FOUND, "unknown user");
    let (status, body) = h.get("/users/999").await;
    assert_json_error(status, &body, StatusCode::NOT_FOUND, "unknown user");
    let (status, body) = h.get("/users/abc").await;
    assert_json_error(status, &body, StatusCode::BAD_REQUEST, "invalid user id");
}

#[tokio::test]
async fn users_are_listed_in_pages_without_the_deleted() {
    let h = harness().await;
    let (status, body) = h.get("/users").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(body["next_after"], Value::Null);
    let (_, page) = h.get("/users?limit=1").await;
    assert_eq!(page["users"][0]["user_id"], 1);
    assert_eq!(page["next_after"], 1);
    let (_, page) = h.get("/users?limit=1&after=1").await;
    assert_eq!(page["users"][0]["user_id"], 3);
    for bad in [
        "/users?limit=0",
        "/users?limit=501",
        "/users?limit=x",
        "/users?after=y",
    ] {
        let (status, body) = h.get(bad).await;
        assert_json_error(status, &body, StatusCode::BAD_REQUEST, "invalid query");
    }
}

#[tokio::test]
async fn an_order_for_a_known_user_is_created_and_can_be_read_back() {
    let h = harness().await;
    let (status, created, headers) = h
        .post_order(r#"{"user_id":1,"items":[{"sku":"A","quantity":2,"unit_price_cents":150},{"sku":"B","quantity":1,"unit_price_cents":99}]}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["user_id"], 1);
    assert_eq!(created["total_cents"], 399);
    assert_eq!(created["items"][1]["sku"], "B");
    assert!(created["created_at"].is_string());
    let id = created["id"].as_i64().unwrap();
    assert_eq!(headers[header::LOCATION], format!("/orders/{id}"));
    let (status, read) = h.get(&format!("/orders/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, created);
}

#[tokio::test]
async fn an_order_for_an_unknown_or_deleted_user_is_422_unknown_user() {
    let h = harness().await;
    for user_id in [2, 999] {
        let body = format!(
            r#"{{"user_id":{user_id},"items":[{{"sku":"A","quantity":1,"unit_price_cents":1}}]}}"#
        );
        let (status, body, _) = h.post_order(body).await;
        assert_json_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown user",
        );
    }
}

#[tokio::test]
async fn an_invalid_order_lists_each_field_problem() {
    let h = harness().await;
    let (status, body, _) = h
        .post_order(r#"{"user_id":1,"items":[{"sku":"","quantity":0,"unit_price_cents":-5}]}"#)
        .await;
    assert_json_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid order",
    );
    assert_eq!(body["details"]["items[0].sku"], "must not be empty");
    assert_eq!(body["details"]["items[0].quantity"], "must be at least 1");
    assert_eq!(
        body["details"]["items[0].unit_price_cents"],
        "must not be negative"
    );
    let (status, body, _) = h.post_order(r#"{"user_id":1,"items":[]}"#).await;
    assert_json_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid order",
    );
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_syntax_type_or_size_get_json_errors() {
    let h = harness().await;
    let (status, body, _) = h.post_order(r#"{"user_id":1,"items":["#).await;
    assert_json_error(status, &body, StatusCode::BAD_REQUEST, "malformed JSON");
    let (status, body, _) = h.post_order(r#"{"user_id":"one","items":[]}"#).await;
    assert_json_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
    );
    let (status, body, _) = h.post_order(r#"{"user_id":1,"itemz":[]}"#).await;
    assert_json_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid request body",
    );
    let huge = format!(
        r#"{{"user_id":1,"items":[{{"sku":"{}"}}]}}"#,
        "x".repeat(BODY_LIMIT)
    );
    let (status, body, _) = h.post_order(huge).await;
    assert_json_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large",
    );
    let request = Request::post("/orders")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let (status, body, _) = h.call(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn unknown_orders_paths_and_methods_get_json_errors() {
    let h = harness().await;
    let (status, body) = h.get("/orders/999").await;
    assert_json_error(status, &body, StatusCode::NOT_FOUND, "unknown order");
    let (status, body) = h.get("/orders/x").await;
    assert_json_error(status, &body, StatusCode::BAD_REQUEST, "invalid order id");
    let (status, body) = h.get("/nope").await;
    assert_json_error(status, &body, StatusCode::NOT_FOUND, "no such endpoint");
    let request = Request::delete("/users/1").body(Body::empty()).unwrap();
    let (status, body, _) = h.call(request).await;
    assert_json_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
    );
}

#[tokio::test]
async fn metrics_include_the_service_and_http_metrics() {
    let h = harness().await;
    h.get("/users/1").await;
    let response = h
        .app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    for name in [
        "order_snapshot_lag_seconds",
        "order_store_retries",
        "order_consuming",
        "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 1",
    ] {
        assert!(text.contains(name), "{name} missing in {text}");
    }
}

#[path = "api_saga_tests.rs"]
mod saga;
