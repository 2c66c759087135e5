//! Handler tests: the whole router through `tower::ServiceExt::oneshot` (no socket),
//! on a real SQLite file in a temporary folder. No broker is needed: events stay in the
//! outbox, where the tests read them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod create;
mod docs;
mod errors;
mod fuzz;
mod hostile;
mod idempotency;
mod users;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use serde_json::Value;
use tower::ServiceExt;
use user_service::api::{AppState, router};
use user_service::metrics::Metrics;
use user_service::store::{Store, WriterThread};

/// A router on a fresh database.
#[derive(Debug)]
pub struct TestApp {
    pub router: Router,
    pub store: Store,
    _writer: WriterThread,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn fresh() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::default();
        let observer = events::http::HttpObserver::register(&mut registry);
        let metrics = Metrics::register(&mut registry);
        let (store, writer) = Store::open(&dir.path().join("users.db"), &metrics).unwrap();
        let state = AppState {
            store: store.clone(),
            metrics,
            registry: std::sync::Arc::new(registry),
        };
        Self {
            router: router(state, observer),
            store,
            _writer: writer,
            _dir: dir,
        }
    }

    /// Sends `request`; returns the status, headers and body (JSON, or a JSON string of
    /// the raw text when it is not JSON, or null when empty).
    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `POST /users` with a JSON body; returns the reply.
    pub async fn create(&self, body: &str) -> Reply {
        self.call(json_request("POST", "/users", body)).await
    }

    /// Creates a user that must succeed; returns its JSON.
    pub async fn created(&self, name: &str, email: &str) -> Value {
        let body = serde_json::json!({ "name": name, "email": email }).to_string();
        let reply = self.create(&body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// The types of the events waiting in the outbox, in commit order.
    pub async fn outbox(&self) -> Vec<events::CloudEvent> {
        self.store
            .pending(10_000)
            .await
            .unwrap()
            .iter()
            .map(|row| events::CloudEvent::from_json(&row.body).unwrap())
            .collect()
    }
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the status and that the body is a JSON error; returns `details`.
    pub fn assert_error(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        assert!(
            self.body["error"].is_string(),
            "no error text: {}",
            self.body
        );
        assert!(
            self.body.get("details").is_some(),
            "no details: {}",
            self.body
        );
        &self.body["details"]
    }
}

pub fn json_request(method: &str, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

pub fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}
