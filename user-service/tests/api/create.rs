//! `POST /users`: success, validation, conflicts, malformed input, limits.

use axum::http::{StatusCode, header};
use serde_json::json;

use crate::{TestApp, json_request};

#[tokio::test]
async fn a_valid_user_is_created_with_201_a_location_and_version_1() {
    let app = TestApp::fresh();
    let reply = app
        .create(r#"{"name":"  Alice ","email":"Alice@Example.COM"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["id"].as_i64().unwrap();
    assert_eq!(reply.headers[header::LOCATION], format!("/users/{id}"));
    assert_eq!(reply.body["name"], "Alice");
    assert_eq!(reply.body["email"], "alice@example.com");
    assert_eq!(reply.body["version"], 1);
    assert!(reply.body["created_at"].is_string());
    assert_eq!(reply.body["created_at"], reply.body["updated_at"]);
}

#[tokio::test]
async fn creating_writes_a_user_created_event_with_the_request_trace() {
    let app = TestApp::fresh();
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = json_request("POST", "/users", r#"{"name":"Bo","email":"bo@x.io"}"#);
    request
        .headers_mut()
        .insert("traceparent", trace.parse().unwrap());
    let reply = app.call(request).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let events = app.outbox().await;
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.ty, "user_created");
    assert_eq!(event.source, "user-service");
    assert_eq!(
        event.subject.as_deref(),
        Some(reply.body["id"].to_string().as_str())
    );
    assert_eq!(
        event.traceparent().unwrap().trace_id(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let data = event.data.as_ref().unwrap();
    assert_eq!(data["id"], reply.body["id"]);
    assert_eq!(data["email"], "bo@x.io");
    assert_eq!(data["version"], 1);
    assert_eq!(data["updated_at"], reply.body["updated_at"]);
}

#[tokio::test]
async fn unicode_names_are_stored_as_sent() {
    let app = TestApp::fresh();
    for (i, name) in ["Zoë Ångström", "山田太郎", "Ἀριστοτέλης", "👩‍💻"]
        .iter()
        .enumerate()
    {
        let user = app.created(name, &format!("u{i}@x.io")).await;
        assert_eq!(user["name"], *name);
    }
}

#[tokio::test]
async fn a_name_of_100_characters_is_accepted_and_101_is_refused() {
    let app = TestApp::fresh();
    // Multi-byte characters: the limit counts characters, not bytes.
    let user = app.created(&"é".repeat(100), "ok@x.io").await;
    assert_eq!(user["name"].as_str().unwrap().chars().count(), 100);
    let body = json!({"name": "é".repeat(101), "email": "no@x.io"}).to_string();
    let details = app
        .create(&body)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY)
        .clone();
    assert!(
        details["name"].as_str().unwrap().contains("100"),
        "{details}"
    );
}

#[tokio::test]
async fn an_email_taken_in_another_case_is_a_409() {
    let app = TestApp::fresh();
    app.created("A", "same@example.com").await;
    let reply = app
        .create(r#"{"name":"B","email":"SAME@Example.com"}"#)
        .await;
    reply.assert_error(StatusCode::CONFLICT);
    assert_eq!(app.outbox().await.len(), 1, "no event for a refused create");
}

#[tokio::test]
async fn every_missing_or_invalid_field_is_listed_in_a_422() {
    let app = TestApp::fresh();
    let reply = app.create("{}").await;
    let details = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(details["name"], "is required");
    assert_eq!(details["email"], "is required");

    let reply = app
        .create(r#"{"name":"   ","email":"not-an-email","age":3}"#)
        .await;
    let details = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(details["name"], "must not be empty");
    assert!(
        details["email"]
            .as_str()
            .unwrap()
            .contains("name@example.com")
    );
    assert!(details["age"].as_str().unwrap().contains("unknown field"));
}

#[tokio::test]
async fn wrong_json_types_are_a_422_per_field() {
    let app = TestApp::fresh();
    let reply = app.create(r#"{"name":42,"email":["a@b.co"]}"#).await;
    let details = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(details["name"], "must be a string (got a number)");
    assert_eq!(details["email"], "must be a string (got an array)");
    for body in ["[]", "\"text\"", "12", "null"] {
        app.create(body)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = TestApp::fresh();
    for body in [
        "{",
        r#"{"name":"a","#,
        "",
        "nul",
        "{\"name\":\"\u{0}\"",
        "\u{feff}{}",
    ] {
        app.create(body).await.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_missing_or_wrong_content_type_is_a_400() {
    let app = TestApp::fresh();
    let body = r#"{"name":"a","email":"a@b.co"}"#;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = json_request("POST", "/users", body);
        request.headers_mut().remove(header::CONTENT_TYPE);
        if let Some(value) = content_type {
            request
                .headers_mut()
                .insert(header::CONTENT_TYPE, value.parse().unwrap());
        }
        let details = app.call(request).await;
        details.assert_error(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413() {
    let app = TestApp::fresh();
    let body = json!({"name": "a".repeat(70 * 1024), "email": "a@b.co"}).to_string();
    app.create(&body)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is read (and refused for its content, not its size).
    let body = json!({"name": "a".repeat(60 * 1024), "email": "a@b.co"}).to_string();
    app.create(&body)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY);
}
