//! `Idempotency-Key` on `POST /users`.

use axum::http::{StatusCode, header};
use futures_util::future::join_all;

use crate::{Reply, TestApp, json_request, request};

async fn post_with_key(app: &TestApp, key: &str, body: &str) -> Reply {
    let mut request = json_request("POST", "/users", body);
    request
        .headers_mut()
        .insert("idempotency-key", key.parse().unwrap());
    app.call(request).await
}

async fn user_count(app: &TestApp) -> usize {
    let reply = app.call(request("GET", "/users")).await;
    reply.body["users"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_first_response() {
    let app = TestApp::fresh();
    let body = r#"{"name":"Ann","email":"ann@x.io"}"#;
    let first = post_with_key(&app, "key-1", body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // The same JSON document, spelled differently, is the same request.
    let retry = post_with_key(&app, "key-1", r#"{ "email": "ann@x.io", "name": "Ann" }"#).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
    assert_eq!(
        retry.headers[header::LOCATION],
        first.headers[header::LOCATION]
    );
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(user_count(&app).await, 1, "nothing new was created");
    assert_eq!(app.outbox().await.len(), 1, "no second event");
}

#[tokio::test]
async fn a_replay_returns_the_first_response_even_after_the_user_changed() {
    let app = TestApp::fresh();
    let body = r#"{"name":"Ann","email":"ann@x.io"}"#;
    let first = post_with_key(&app, "key-2", body).await;
    let uri = format!("/users/{}", first.body["id"]);
    app.call(json_request("PATCH", &uri, r#"{"name":"Anne"}"#))
        .await;
    let retry = post_with_key(&app, "key-2", body).await;
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.body, first.body);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_422() {
    let app = TestApp::fresh();
    post_with_key(&app, "key-3", r#"{"name":"Ann","email":"ann@x.io"}"#).await;
    let other = post_with_key(&app, "key-3", r#"{"name":"Bob","email":"bob@x.io"}"#).await;
    other.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn different_keys_create_different_users() {
    let app = TestApp::fresh();
    post_with_key(&app, "a", r#"{"name":"Ann","email":"ann@x.io"}"#).await;
    let second = post_with_key(&app, "b", r#"{"name":"Bob","email":"bob@x.io"}"#).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert!(second.headers.get("idempotent-replayed").is_none());
    assert_eq!(user_count(&app).await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_user() {
    let app = TestApp::fresh();
    let body = r#"{"name":"Ann","email":"ann@x.io"}"#;
    // Polled together, so their commands reach the writer in one group.
    let replies = join_all((0..10).map(|_| post_with_key(&app, "same", body))).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::CREATED));
    assert!(replies.windows(2).all(|w| w[0].body == w[1].body));
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn an_invalid_key_is_a_400() {
    let app = TestApp::fresh();
    let body = r#"{"name":"Ann","email":"ann@x.io"}"#;
    for key in [String::new(), "x".repeat(300), "has space".to_owned()] {
        let mut request = json_request("POST", "/users", body);
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        app.call(request)
            .await
            .assert_error(StatusCode::BAD_REQUEST);
    }
    let mut request = json_request("POST", "/users", body);
    request.headers_mut().insert(
        "idempotency-key",
        axum::http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
    );
    app.call(request)
        .await
        .assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(user_count(&app).await, 0);
}
