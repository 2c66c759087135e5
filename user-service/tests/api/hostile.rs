//! Bodies a buggy or hostile client sends: repeated member names, names of invisible
//! characters, bidirectional controls, values that grow when normalised. Each is refused
//! with a JSON error that names the culprit, and nothing is stored.

use axum::http::StatusCode;
use serde_json::json;

use crate::{TestApp, json_request, request};

async fn user_count(app: &TestApp) -> usize {
    let reply = app.call(request("GET", "/users")).await;
    reply.body["users"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_repeated_member_name_is_a_400_naming_it_and_stores_nothing() {
    let app = TestApp::fresh();
    let reply = app
        .create(r#"{"name":"Alice","email":"alice@x.io","name":"Mallory"}"#)
        .await;
    let details = reply.assert_error(StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["error"], "repeated member name in JSON body");
    let problem = details["body"].as_str().unwrap();
    assert!(
        problem.starts_with("the member `name` appears more than once"),
        "{problem}"
    );
    assert!(problem.contains("RFC 7493"), "{problem}");
    assert_eq!(user_count(&app).await, 0);
    assert!(app.outbox().await.is_empty());
}

#[tokio::test]
async fn a_repeat_deep_inside_the_body_is_refused_too_and_named_by_its_path() {
    let app = TestApp::fresh();
    let body = r#"{"name":"A","email":"a@x.io","extra":{"list":[0,{"k":1,"k":2}]}}"#;
    let reply = app.create(body).await;
    let details = reply.assert_error(StatusCode::BAD_REQUEST);
    let problem = details["body"].as_str().unwrap();
    assert!(problem.contains("`extra.list[1].k`"), "{problem}");
}

#[tokio::test]
async fn a_patch_with_a_repeated_member_changes_nothing() {
    let app = TestApp::fresh();
    let user = app.created("Alice", "alice@x.io").await;
    let uri = format!("/users/{}", user["id"]);
    let body = r#"{"email":"a2@x.io","email":"a3@x.io"}"#;
    let reply = app.call(json_request("PATCH", &uri, body)).await;
    let details = reply.assert_error(StatusCode::BAD_REQUEST);
    assert!(details["body"].as_str().unwrap().contains("`email`"));
    let now = app.call(request("GET", &uri)).await;
    assert_eq!(now.body, user);
}

#[tokio::test]
async fn a_name_of_only_invisible_characters_is_a_422_naming_the_character() {
    let app = TestApp::fresh();
    let body = json!({"name": "\u{200B}\u{200B}", "email": "zw@x.io"}).to_string();
    let reply = app.create(&body).await;
    let details = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    let problem = details["name"].as_str().unwrap();
    assert!(
        problem.contains("U+200B ZERO WIDTH SPACE at position 1"),
        "{problem}"
    );
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn a_bidirectional_control_in_a_name_is_a_422_naming_it_and_its_position() {
    let app = TestApp::fresh();
    for (name, expected) in [
        (
            "ab\u{202E}cd",
            "U+202E RIGHT-TO-LEFT OVERRIDE at position 3",
        ),
        ("\u{2066}x", "U+2066 LEFT-TO-RIGHT ISOLATE at position 1"),
        ("Ali\u{200F}", "U+200F RIGHT-TO-LEFT MARK at position 4"),
        ("x\u{061C}", "U+061C ARABIC LETTER MARK at position 2"),
    ] {
        let body = json!({"name": name, "email": "bidi@x.io"}).to_string();
        let reply = app.create(&body).await;
        let details = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
        let problem = details["name"].as_str().unwrap();
        assert!(problem.contains("bidirectional control"), "{problem}");
        assert!(problem.contains(expected), "{name:?}: {problem}");
    }
    let user = app.created("Alice", "alice@x.io").await;
    let uri = format!("/users/{}", user["id"]);
    let body = json!({"name": "Alice\u{202E}"}).to_string();
    let reply = app.call(json_request("PATCH", &uri, &body)).await;
    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(user_count(&app).await, 1);
}

#[tokio::test]
async fn an_email_that_lowercasing_makes_too_long_is_a_422() {
    let app = TestApp::fresh();
    // 254 characters as sent, 380 once lowercased (`İ` → `i` + U+0307).
    let email = format!("a@{}.com", "İ".repeat(126));
    let body = json!({"name": "Long", "email": email}).to_string();
    let reply = app.create(&body).await;
    let details = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY);
    let problem = details["email"].as_str().unwrap();
    assert!(problem.contains("at most 254 characters"), "{problem}");
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn names_and_emails_are_stored_normalised() {
    let app = TestApp::fresh();
    let user = app.created("Zoe\u{308}", "ZOE\u{308}@Example.com").await;
    assert_eq!(user["name"], "Zoë");
    assert_eq!(user["email"], "zoë@example.com");
    // The composed spelling is the same address: a conflict.
    let body = json!({"name": "Other", "email": "zoë@example.com"}).to_string();
    app.create(&body).await.assert_error(StatusCode::CONFLICT);
}
