//! Unknown paths, wrong methods and the operational endpoints.

use axum::http::{StatusCode, header};

use crate::{TestApp, json_request, request};

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let app = TestApp::fresh();
    for uri in ["/", "/nope", "/users/1/extra", "/USERS", "/users/"] {
        app.call(request("GET", uri))
            .await
            .assert_error(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_json_405_with_allow() {
    let app = TestApp::fresh();
    for (method, uri) in [
        ("PUT", "/users"),
        ("DELETE", "/users"),
        ("POST", "/users/1"),
        ("PUT", "/users/1"),
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
    ] {
        let reply = app.call(request(method, uri)).await;
        reply.assert_error(StatusCode::METHOD_NOT_ALLOWED);
        assert!(reply.headers.contains_key(header::ALLOW), "{method} {uri}");
    }
}

#[tokio::test]
async fn healthz_is_ok() {
    let app = TestApp::fresh();
    let reply = app.call(request("GET", "/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_the_database_the_broker_and_the_backlog() {
    let app = TestApp::fresh();
    app.created("A", "a@x.io").await;
    app.created("B", "b@x.io").await;
    let reply = app.call(request("GET", "/readyz")).await;
    // No relay runs here: the broker is reported disconnected, yet the service is ready.
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        serde_json::json!({"database": "ok", "broker": "disconnected", "outbox_backlog": 2})
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_show_the_backlog() {
    let app = TestApp::fresh();
    app.created("A", "a@x.io").await;
    app.call(json_request("POST", "/users", "{")).await;
    app.call(request("GET", "/users/77")).await;
    let reply = app.call(request("GET", "/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.body.as_str().unwrap();
    for expected in [
        r#"http_requests_total{method="POST",route="/users",status="201"} 1"#,
        r#"http_requests_total{method="POST",route="/users",status="400"} 1"#,
        r#"http_requests_total{method="GET",route="/users/{id}",status="404"} 1"#,
        "http_request_duration_seconds_bucket",
        "outbox_backlog 1",
        "sqlite_commit_group_size_count",
        "broker_connected 0",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}
