//! The HTTP plumbing through a router: JSON errors for rejections and unknown paths,
//! `traceparent` continued or started, and requests counted by route and status.

use super::*;
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tower::ServiceExt;

#[derive(serde::Deserialize)]
struct Named {
    #[allow(dead_code)]
    name: String,
}

fn app(registry: &mut Registry) -> Router {
    let observer = HttpObserver::register(registry);
    Router::new()
        .route(
            "/named",
            post(|JsonBody(_): JsonBody<Named>| async { StatusCode::CREATED }),
        )
        .route(
            "/trace",
            get(
                |axum::Extension(RequestTrace(t)): axum::Extension<RequestTrace>| async move {
                    t.trace_id()
                },
            ),
        )
        .fallback(not_found_fallback)
        .layer(axum::middleware::from_fn_with_state(observer, observe))
        .layer(axum::extract::DefaultBodyLimit::max(1024))
}

async fn call(app: Router, req: Request) -> (StatusCode, Value, axum::http::HeaderMap) {
    let response = app.oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body, headers)
}

fn post_json(body: &str, content_type: Option<&str>) -> Request {
    let mut builder = Request::post("/named");
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn json_rejections_become_json_errors_with_the_right_status() {
    let mut registry = Registry::default();
    let app = app(&mut registry);
    let json = Some("application/json");
    let cases = [
        (post_json("{", json), StatusCode::BAD_REQUEST),
        (post_json(r#"{"name":"a"}"#, None), StatusCode::BAD_REQUEST),
        (
            post_json(r#"{"name":"a"}"#, Some("text/plain")),
            StatusCode::BAD_REQUEST,
        ),
        (
            post_json(r#"{"name":1}"#, json),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            post_json(&format!(r#"{{"name":"{}"}}"#, "x".repeat(2000)), json),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (post_json(r#"{"name":"a"}"#, json), StatusCode::CREATED),
    ];
    for (req, expected) in cases {
        let (status, body, _) = call(app.clone(), req).await;
        assert_eq!(status, expected, "{body}");
        if !status.is_success() {
            assert!(body["error"].is_string(), "{body}");
            assert!(body.get("details").is_some(), "{body}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_get_a_json_404() {
    let mut registry = Registry::default();
    let (status, body, _) = call(
        app(&mut registry),
        Request::get("/nope").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such endpoint");
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued_and_echoed() {
    let mut registry = Registry::default();
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let req = Request::get("/trace")
        .header(TRACEPARENT_HEADER, incoming)
        .body(Body::empty())
        .unwrap();
    let (status, body, headers) = call(app(&mut registry), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "4bf92f3577b34da6a3ce929d0e0e4736");
    let echoed: TraceParent = headers[TRACEPARENT_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(echoed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace() {
    let mut registry = Registry::default();
    let req = Request::get("/trace")
        .header(TRACEPARENT_HEADER, "garbage")
        .body(Body::empty())
        .unwrap();
    let (_, body, headers) = call(app(&mut registry), req).await;
    assert_eq!(body.as_str().unwrap().len(), 32);
    assert!(headers.contains_key(TRACEPARENT_HEADER));
}

#[tokio::test]
async fn requests_are_counted_by_route_and_status() {
    let mut registry = Registry::default();
    let app = app(&mut registry);
    call(app.clone(), post_json("{", Some("application/json"))).await;
    call(app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    let text = match metrics_response(&registry).into_body().collect().await {
        Ok(body) => String::from_utf8(body.to_bytes().to_vec()).unwrap(),
        Err(e) => panic!("{e}"),
    };
    assert!(
        text.contains(r#"http_requests_total{method="POST",route="/named",status="400"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}
